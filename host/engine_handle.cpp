// engine_handle.cpp — the engine lifecycle through the plugin's function pointers.
#include "engine_handle.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <system_error>
#include <vector>

namespace epoll_echo::host {
namespace {

constexpr std::size_t kDetailSize = 512;

epoll_echo_config_t makeConfig(const Options& options) {
  epoll_echo_config_t config;
  std::memset(&config, 0, sizeof config);  // unset fields and padding must be zero (the ABI's rule)
  config.size = sizeof config;
  config.port = options.port;
  config.listeners = options.workers;
  config.high_water_bytes = options.highWaterBytes;
  config.read_budget_bytes = options.readBudgetBytes;
  config.max_connections = options.maxConnections;
  config.idle_timeout_ms = options.idleTimeoutMs;
  config.backend = options.backend;
  config.balance = options.balance;
  // options.h caps the address at 63 bytes; the cap here keeps the terminating NUL regardless.
  const std::size_t length = std::min(options.bindAddress.size(), sizeof config.bind_address - 1);
  std::memcpy(config.bind_address, options.bindAddress.data(), length);
  return config;
}

// The flags that set config fields newer than ABI 1.0, with the minor that added each. A plugin
// older than that would refuse the non-zero tail of the config with ESIZE, a message about struct
// sizes; the flag is named instead. Without those flags the tail is zero: any 1.x plugin serves it.
struct ConfigFieldFlag {
  const char* flag;
  uint32_t minor;
  bool (*given)(const Options&);
};
constexpr ConfigFieldFlag kConfigFieldFlags[] = {
    {"--max-connections", 3, [](const Options& options) { return options.maxConnections != 0; }},
    {"--idle-timeout", 3, [](const Options& options) { return options.idleTimeoutMs != 0; }},
    {"--backend", 4, [](const Options& options) { return options.backend != EPOLL_ECHO_BACKEND_EPOLL; }},
    {"--balance", 5, [](const Options& options) { return options.balance != EPOLL_ECHO_BALANCE_KERNEL; }},
};

void requireConfigFields(const PluginLibrary& plugin, const Options& options) {
  const uint32_t minor = EPOLL_ECHO_ABI_MINOR_OF(plugin.abiVersion());
  for (const ConfigFieldFlag& field : kConfigFieldFlags) {
    if (minor >= field.minor || !field.given(options)) continue;
    throw PluginCallError(std::string(field.flag) + " needs a plugin with ABI 1." + std::to_string(field.minor) +
                          " or later, and " + plugin.path().string() + " has ABI " +
                          formatAbiVersion(plugin.abiVersion()));
  }
}

}  // namespace

EngineHandle::EngineHandle(const PluginLibrary& plugin, const Options& options) : functions_(plugin.functions()) {
  requireConfigFields(plugin, options);
  const epoll_echo_config_t config = makeConfig(options);
  char detail[kDetailSize] = "";
  const int code = functions_.create(&config, &engine_, detail, sizeof detail);
  if (code != EPOLL_ECHO_OK) {
    engine_ = nullptr;
    throw PluginCallError(describeFailure("create", code, detail));
  }
}

EngineHandle::~EngineHandle() { functions_.destroy(engine_); }

void EngineHandle::start() {
  const int code = functions_.start(engine_);
  if (code != EPOLL_ECHO_OK) throw PluginCallError(describeFailure("start", code, lastError()));
}

void EngineHandle::startPaused() {
  const int code = functions_.start_paused(engine_);
  if (code != EPOLL_ECHO_OK) throw PluginCallError(describeFailure("start_paused", code, lastError()));
}

void EngineHandle::stop() {
  const int code = functions_.stop(engine_);
  if (code != EPOLL_ECHO_OK) throw PluginCallError(describeFailure("stop", code, lastError()));
}

epoll_echo_stats_t EngineHandle::stats() const {
  epoll_echo_stats_t stats;
  std::memset(&stats, 0, sizeof stats);
  stats.size = sizeof stats;
  if (functions_.stats(engine_, &stats) != EPOLL_ECHO_OK) {
    std::memset(&stats, 0, sizeof stats);
  }
  return stats;
}

epoll_echo_counters_t EngineHandle::workerCounters(uint32_t index) const { return workerStats(index).counters; }

epoll_echo_worker_stats_t EngineHandle::workerStats(uint32_t index) const {
  epoll_echo_worker_stats_t stats;
  std::memset(&stats, 0, sizeof stats);
  stats.size = sizeof stats;
  if (functions_.worker_stats(engine_, index, &stats) != EPOLL_ECHO_OK) std::memset(&stats, 0, sizeof stats);
  return stats;
}

void EngineHandle::pause() { check("pause", functions_.pause(engine_)); }

void EngineHandle::resume() { check("resume", functions_.resume(engine_)); }

void EngineHandle::handoverComplete() { check("complete the hand-over of", functions_.handover_complete(engine_)); }

void EngineHandle::handoverCounts(uint32_t& listeners, uint32_t& connections) const {
  check("count the sockets of", functions_.handover_counts(engine_, &listeners, &connections));
}

std::vector<int> EngineHandle::exportDistinctListeners(uint32_t count) const {
  std::vector<int> listeners;
  std::set<uint64_t> seen;  // SO_COOKIE: the socket, whichever descriptor names it
  for (uint32_t index = 0; index < count; ++index) {
    const int fd = exportListener(index);
    uint64_t cookie = 0;
    socklen_t length = sizeof cookie;
    if (::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &length) != 0) {
      throw std::system_error(errno, std::generic_category(), "getsockopt SO_COOKIE of a listener");
    }
    if (seen.insert(cookie).second) listeners.push_back(fd);
  }
  return listeners;
}

int EngineHandle::exportListener(uint32_t index) const {
  int32_t fd = -1;
  check("export a listener of", functions_.export_listener(engine_, index, &fd));
  return fd;
}

epoll_echo_connection_state_t EngineHandle::exportConnectionState(uint32_t index) const {
  epoll_echo_connection_state_t state{};
  state.size = sizeof state;
  check("export a connection of", functions_.export_connection(engine_, index, &state, nullptr, 0));
  return state;
}

ExportedConnection EngineHandle::exportConnection(uint32_t index) const {
  // Two calls: the first learns pending_bytes, the second copies them (EINVAL from the first
  // only means the buffer was too small, and the state is filled regardless).
  ExportedConnection connection;
  connection.state.size = sizeof connection.state;
  int code = functions_.export_connection(engine_, index, &connection.state, nullptr, 0);
  check("export a connection of", code);
  if (connection.state.pending_bytes == 0) return connection;
  connection.pending.resize(static_cast<std::size_t>(connection.state.pending_bytes));
  code = functions_.export_connection(engine_, index, &connection.state, connection.pending.data(),
                                      connection.pending.size());
  check("export a connection of", code);
  return connection;
}

void EngineHandle::importListener(int fd) { check("import a listener into", functions_.import_listener(engine_, fd)); }

void EngineHandle::importConnection(const ExportedConnection& connection) {
  const void* pending = connection.pending.empty() ? nullptr : connection.pending.data();
  check("import a connection into", functions_.import_connection(engine_, &connection.state, pending));
}

void EngineHandle::dropConnection(int fd) {
  check("drop an imported connection from", functions_.drop_connection(engine_, fd));
}

void EngineHandle::check(const char* call, int code) const {
  if (code != EPOLL_ECHO_OK) throw PluginCallError(describeFailure(call, code, lastError()));
}

std::string EngineHandle::lastError() const {
  std::vector<char> buffer(kDetailSize, '\0');
  const int length = functions_.last_error(engine_, buffer.data(), buffer.size());
  if (length < 0) return "";
  if (static_cast<std::size_t>(length) >= buffer.size()) {  // truncated: the full length is known now
    buffer.assign(static_cast<std::size_t>(length) + 1, '\0');
    functions_.last_error(engine_, buffer.data(), buffer.size());
  }
  return buffer.data();
}

std::string EngineHandle::describeFailure(const char* call, int code, const std::string& detail) const {
  std::string message = std::string("cannot ") + call + " the engine: ";
  message += detail.empty() ? functions_.strerror(code) : detail;
  return message + " (" + functions_.error_name(code) + ")";
}

}  // namespace epoll_echo::host
