// Validation of the caller's configuration: every refusal names the field and its allowed range.
#include "config.h"

#include <sched.h>
#include <sys/socket.h>

#include <cstring>
#include <thread>

#include "engine_error.h"
#include "socket_address.h"

namespace epoll_echo {
namespace {

[[noreturn]] void refuse(const std::string& field, uint64_t value, const std::string& rule) {
  throw EngineError(EPOLL_ECHO_EINVAL, field + " " + std::to_string(value) + " " + rule);
}

uint32_t usableCpuCount() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    int count = CPU_COUNT(&set);
    if (count > 0) return static_cast<uint32_t>(count);
  }
  unsigned count = std::thread::hardware_concurrency();
  return count > 0 ? count : 1;
}

uint32_t bufferLimit(const char* field, uint32_t value, uint32_t fallback) {
  if (value == 0) return fallback;
  if (value < kMinBufferLimit) refuse(field, value, "is below the minimum " + std::to_string(kMinBufferLimit));
  return value;
}

std::string bindAddressOf(const epoll_echo_config_t& raw) {
  const size_t length = ::strnlen(raw.bind_address, sizeof raw.bind_address);
  if (length == sizeof raw.bind_address) {
    throw EngineError(EPOLL_ECHO_EINVAL, "bind_address is not NUL-terminated within its 64 bytes");
  }
  std::string text(raw.bind_address, length);
  if (!text.empty() && !SocketAddress::parse(text, 0)) {
    throw EngineError(EPOLL_ECHO_EADDRESS, "bind_address \"" + text +
                                               "\" is not a numeric IPv4 or IPv6 address (a zone, as in fe80::1%eth0, "
                                               "must name an interface of this host)");
  }
  return text;
}

}  // namespace

EngineConfig makeEngineConfig(const epoll_echo_config_t& raw) {
  EngineConfig config;
  if (raw.port > 65535) refuse("port", raw.port, "is outside 0..65535");
  config.port = static_cast<uint16_t>(raw.port);
  if (raw.listeners > kMaxWorkers) {
    refuse("listeners", raw.listeners, "is above the maximum " + std::to_string(kMaxWorkers));
  }
  if (raw.threading != EPOLL_ECHO_THREADING_OWN && raw.threading != EPOLL_ECHO_THREADING_EXTERNAL) {
    refuse("threading", raw.threading, "is neither EPOLL_ECHO_THREADING_OWN (0) nor EPOLL_ECHO_THREADING_EXTERNAL (1)");
  }
  config.externalLoop = raw.threading == EPOLL_ECHO_THREADING_EXTERNAL;
  // One thread drives an external-loop engine: more listeners than one would only split its work.
  const uint32_t defaultWorkers = config.externalLoop ? 1 : std::min(usableCpuCount(), kMaxWorkers);
  config.workers = raw.listeners == 0 ? defaultWorkers : raw.listeners;
  if (raw.backlog > static_cast<uint32_t>(INT32_MAX)) refuse("backlog", raw.backlog, "is above INT32_MAX");
  config.backlog = raw.backlog == 0 ? SOMAXCONN : static_cast<int>(raw.backlog);
  config.highWaterBytes = bufferLimit("high_water_bytes", raw.high_water_bytes, kDefaultHighWaterBytes);
  config.readBudgetBytes = bufferLimit("read_budget_bytes", raw.read_budget_bytes, kDefaultReadBudgetBytes);
  config.acceptBudget = raw.accept_budget == 0 ? kDefaultAcceptBudget : raw.accept_budget;
  if (raw.reserved0 != 0) refuse("reserved0", raw.reserved0, "must be zero");
  config.bindAddress = bindAddressOf(raw);
  config.maxConnections = raw.max_connections;  // every value is meaningful, 0 included
  config.idleTimeoutMs = raw.idle_timeout_ms;
  if (raw.backend > EPOLL_ECHO_BACKEND_AUTO) {
    refuse("backend", raw.backend, "is not EPOLL_ECHO_BACKEND_EPOLL (0), _IO_URING (1) or _AUTO (2)");
  }
  if (config.externalLoop && raw.backend == EPOLL_ECHO_BACKEND_IO_URING) {
    refuse("backend", raw.backend,
           "(EPOLL_ECHO_BACKEND_IO_URING) cannot serve EPOLL_ECHO_THREADING_EXTERNAL: the application's loop drives "
           "epoll workers only");
  }
  if (raw.balance > EPOLL_ECHO_BALANCE_EXACT) {
    refuse("balance", raw.balance, "is neither EPOLL_ECHO_BALANCE_KERNEL (0) nor EPOLL_ECHO_BALANCE_EXACT (1)");
  }
  config.balanceExact = raw.balance == EPOLL_ECHO_BALANCE_EXACT;
  // AUTO in an external loop means epoll: the loop fd watches the workers' epoll instances.
  config.backend = config.externalLoop ? EPOLL_ECHO_BACKEND_EPOLL : raw.backend;
  return config;
}

}  // namespace epoll_echo
