// plugin.cpp — dlopen/dlsym of the plugin and the RAII TestEngine wrapper used by integration tests.
#include "support/plugin.h"
#include "support/loop_driver.h"

#include <dlfcn.h>
#include <sys/ioctl.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

namespace epoll_echo::test {
namespace {

// dlsym() returns void*; the C ABI functions are plain C function pointers of the declared type.
template <typename Function>
bool lookUp(void* handle, const char* name, Function& out, std::string& error) {
  ::dlerror();
  void* symbol = ::dlsym(handle, name);
  if (symbol == nullptr) {
    const char* reason = ::dlerror();
    error += std::string(error.empty() ? "" : "; ") + "missing symbol " + name + " (" +
             (reason != nullptr ? reason : "NULL value") + ")";
    return false;
  }
  out = reinterpret_cast<Function>(symbol);
  return true;
}

}  // namespace

const std::vector<std::string>& apiFunctionNames() {
#define EPOLL_ECHO_TEST_API_NAME(name, minor) "epoll_echo_" #name,
  static const std::vector<std::string> names = {EPOLL_ECHO_FUNCTION_TABLE(EPOLL_ECHO_TEST_API_NAME)};
#undef EPOLL_ECHO_TEST_API_NAME
  return names;
}

Plugin::Plugin(const std::string& path) : path_(path) {
  handle_ = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle_ == nullptr) {
    const char* reason = ::dlerror();
    error_ = "dlopen " + path + ": " + (reason != nullptr ? reason : "unknown error");
    return;
  }
  std::string missing;
#define EPOLL_ECHO_TEST_API_LOOKUP(name, minor) lookUp(handle_, "epoll_echo_" #name, api_.name, missing);
  EPOLL_ECHO_FUNCTION_TABLE(EPOLL_ECHO_TEST_API_LOOKUP)
#undef EPOLL_ECHO_TEST_API_LOOKUP
  if (!missing.empty()) error_ = path + ": " + missing;
}

Plugin::Plugin(Plugin&& other) noexcept
    : path_(std::move(other.path_)),
      handle_(std::exchange(other.handle_, nullptr)),
      error_(std::move(other.error_)),
      api_(std::exchange(other.api_, PluginApi{})) {}

Plugin::~Plugin() { unload(); }

bool Plugin::unload() {
  if (handle_ == nullptr) return true;
  api_ = PluginApi{};
  int result = ::dlclose(std::exchange(handle_, nullptr));
  if (result != 0) {
    const char* reason = ::dlerror();
    error_ = "dlclose " + path_ + ": " + (reason != nullptr ? reason : "unknown error");
    return false;
  }
  return true;
}

bool isPluginResident(const std::string& path) {
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
  if (handle == nullptr) return false;
  ::dlclose(handle);  // RTLD_NOLOAD still took a reference
  return true;
}

epoll_echo_config_t loopbackConfig(uint32_t listeners) {
  epoll_echo_config_t config;
  std::memset(&config, 0, sizeof config);
  config.size = sizeof config;
  config.port = 0;
  config.listeners = listeners;
  std::strcpy(config.bind_address, "127.0.0.1");
  config.backend = testBackend();
  const char* threading = std::getenv("EPOLL_ECHO_TEST_THREADING");
  if (threading != nullptr && std::strcmp(threading, "external") == 0) config.threading = EPOLL_ECHO_THREADING_EXTERNAL;
  return config;
}

uint32_t testBackend() {
  const char* name = std::getenv("EPOLL_ECHO_TEST_BACKEND");
  if (name == nullptr || std::strcmp(name, "epoll") == 0) return EPOLL_ECHO_BACKEND_EPOLL;
  if (std::strcmp(name, "io_uring") == 0) return EPOLL_ECHO_BACKEND_IO_URING;
  ADD_FAILURE() << "EPOLL_ECHO_TEST_BACKEND=" << name << " is neither epoll nor io_uring";
  return EPOLL_ECHO_BACKEND_EPOLL;
}

TestEngine::TestEngine(const PluginApi& api) : api_(api), driver_(std::make_unique<LoopDriver>()) {}

TestEngine::~TestEngine() { destroy(); }

int TestEngine::create(const epoll_echo_config_t& config, std::string* detail) {
  destroy();
  externalLoop_ = config.size >= offsetof(epoll_echo_config_t, threading) + sizeof config.threading &&
                  config.threading == EPOLL_ECHO_THREADING_EXTERNAL;
  char buffer[512] = {};
  int code = api_.create(&config, &engine_, buffer, sizeof buffer);
  if (detail != nullptr) *detail = buffer;
  return code;
}

int TestEngine::start() {
  const int code = api_.start(engine_);
  if (code == EPOLL_ECHO_OK && externalLoop_ && !driver_->start(api_, engine_)) {
    ADD_FAILURE() << "the loop driver did not start: " << driver_->error();
  }
  return code;
}

int TestEngine::stop() {
  driver_->stop();
  return api_.stop(engine_);
}

void TestEngine::destroy() {
  driver_->stop();
  if (engine_ != nullptr && api_.destroy != nullptr) api_.destroy(std::exchange(engine_, nullptr));
}

std::string TestEngine::loopError() const { return driver_->error(); }

void TestEngine::stopLoopDriver() { driver_->stop(); }

::testing::AssertionResult TestEngine::createAndStart(const epoll_echo_config_t& config) {
  std::string detail;
  int code = create(config, &detail);
  if (code != EPOLL_ECHO_OK) {
    return ::testing::AssertionFailure() << "create: " << describeCode(api_, code) << ": " << detail;
  }
  code = start();
  if (code != EPOLL_ECHO_OK) {
    return ::testing::AssertionFailure() << "start: " << describeCode(api_, code) << ": " << lastError();
  }
  return ::testing::AssertionSuccess();
}

epoll_echo_stats_t TestEngine::stats(int* code) const {
  epoll_echo_stats_t snapshot;
  std::memset(&snapshot, 0, sizeof snapshot);
  snapshot.size = sizeof snapshot;
  int result = api_.stats(engine_, &snapshot);
  if (code != nullptr) *code = result;
  return snapshot;
}

epoll_echo_worker_stats_t TestEngine::workerStats(uint32_t index, int* code) const {
  epoll_echo_worker_stats_t snapshot;
  std::memset(&snapshot, 0, sizeof snapshot);
  snapshot.size = sizeof snapshot;
  int result = api_.worker_stats(engine_, index, &snapshot);
  if (code != nullptr) *code = result;
  return snapshot;
}

std::string TestEngine::lastError() const {
  char buffer[512] = {};
  int length = api_.last_error(engine_, buffer, sizeof buffer);
  return length < 0 ? "(last_error failed: " + describeCode(api_, length) + ")" : std::string(buffer);
}

epoll_echo_stats_t TestEngine::waitForStats(const std::function<bool(const epoll_echo_stats_t&)>& settled,
                                            Deadline deadline, bool* ok) const {
  for (;;) {
    epoll_echo_stats_t snapshot = stats();
    bool done = settled(snapshot);
    if (done || Clock::now() >= deadline) {
      if (ok != nullptr) *ok = done;
      return snapshot;
    }
    // Counters change without an event the test could wait on; re-check every few milliseconds.
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

std::vector<UniqueFd> connectClients(uint16_t port, size_t count, std::chrono::milliseconds timeout) {
  std::vector<UniqueFd> clients;
  std::string error;
  for (size_t i = 0; i < count; ++i) {
    clients.push_back(connectLoopback(port, deadlineIn(timeout), &error));
    EXPECT_TRUE(clients.back()) << "client " << i << ": " << error;
  }
  return clients;
}

::testing::AssertionResult waitUntilAccepted(const TestEngine& engine, size_t count,
                                             std::chrono::milliseconds timeout) {
  bool accepted = false;
  const epoll_echo_stats_t stats = engine.waitForStats(
      [count](const epoll_echo_stats_t& s) { return s.total.accepted == count; }, deadlineIn(timeout), &accepted);
  if (accepted) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "the engine accepted " << stats.total.accepted << " of " << count
                                       << " connections";
}

std::string describeCode(const PluginApi& api, int code) {
  const char* name = api.error_name != nullptr ? api.error_name(code) : nullptr;
  return std::string(name != nullptr ? name : "?") + " (" + std::to_string(code) + ")";
}

bool pausedConnectionsHoldBytes(const PluginApi& api, epoll_echo_engine_t* engine, size_t count, size_t bytes) {
  for (uint32_t index = 0; index < count; ++index) {
    epoll_echo_connection_state_t state{};
    state.size = sizeof state;
    int waiting = 0;
    if (api.export_connection(engine, index, &state, nullptr, 0) != EPOLL_ECHO_OK) return false;
    if (::ioctl(state.fd, FIONREAD, &waiting) != 0 || static_cast<size_t>(waiting) < bytes) return false;
  }
  return true;
}

}  // namespace epoll_echo::test
