// plugin.h — tests reach the engine only as a host would: dlopen() the built plugin, dlsym() every
// epoll_echo_* function, and drive engines through an RAII wrapper. Nothing links the plugin.
#pragma once

#include <epoll_echo.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "support/net.h"
#include "support/timeouts.h"

namespace epoll_echo::test {

// Every function of the C ABI, looked up by name. Plain data: copies stay valid while the
// Plugin that filled it stays loaded.
struct PluginApi {
#define EPOLL_ECHO_TEST_API_MEMBER(name, minor) decltype(&epoll_echo_##name) name = nullptr;
  EPOLL_ECHO_FUNCTION_TABLE(EPOLL_ECHO_TEST_API_MEMBER)
#undef EPOLL_ECHO_TEST_API_MEMBER
};

// The names PluginApi resolves ("epoll_echo_create", ...), from EPOLL_ECHO_FUNCTION_TABLE.
const std::vector<std::string>& apiFunctionNames();

// One dlopen() handle of a plugin file (RTLD_NOW | RTLD_LOCAL), closed by the destructor or
// unload(). Move-only; load/unload from one thread. glibc counts handles per object: the object is
// only unmapped when its last handle closes.
class Plugin {
 public:
  explicit Plugin(const std::string& path = EPOLL_ECHO_PLUGIN_PATH);
  Plugin(Plugin&& other) noexcept;
  Plugin& operator=(Plugin&& other) = delete;
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;
  ~Plugin();

  // True when dlopen succeeded and every API function was found; otherwise error() says which
  // path, symbol and dlerror() text failed.
  bool loaded() const { return handle_ != nullptr && error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }
  const PluginApi& api() const { return api_; }
  void* handle() const { return handle_; }

  // dlclose() now; returns false (and sets error()) if dlclose reported a failure.
  bool unload();

 private:
  std::string path_;
  void* handle_ = nullptr;
  std::string error_;
  PluginApi api_;
};

// True when `path` is still mapped in this process (dlopen with RTLD_NOLOAD).
bool isPluginResident(const std::string& path = EPOLL_ECHO_PLUGIN_PATH);

// A config for a loopback test engine: port 0 (kernel's choice), bind 127.0.0.1, defaults elsewhere.
// Its backend is testBackend(). With EPOLL_ECHO_TEST_THREADING=external in the environment,
// threading is EXTERNAL: ctest runs the engine's behaviour suites a second time that way, each
// engine driven by a LoopDriver.
epoll_echo_config_t loopbackConfig(uint32_t listeners = 1);
// The backend the engine suites run against: EPOLL_ECHO_TEST_BACKEND=epoll (the default) or
// io_uring; ctest runs each engine suite once per backend (tests/CMakeLists.txt).
uint32_t testBackend();

class LoopDriver;

// Base fixture of the tests that drive the plugin through its C ABI: a fresh dlopen() per test,
// and a failed load stops the test with the path, the symbol and dlerror().
class PluginTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(plugin_.loaded()) << plugin_.error(); }
  const PluginApi& api() const { return plugin_.api(); }
  Plugin plugin_;
};

// One engine of the plugin under test (not the plugin's own Engine class, nor the host's handle):
// owns one engine handle, create → start → stop, destroyed by the destructor. Returns the plugin's
// codes unchanged so tests can assert on them. Not thread-safe itself, but stats() may be called
// from any thread while the engine exists (the C ABI allows it).
class TestEngine {
 public:
  explicit TestEngine(const PluginApi& api);
  TestEngine(const TestEngine&) = delete;
  TestEngine& operator=(const TestEngine&) = delete;
  ~TestEngine();

  int create(const epoll_echo_config_t& config, std::string* detail = nullptr);
  // An engine created with threading EXTERNAL is served by a LoopDriver thread from a successful
  // start() until stop() or destroy(), which end it before they reach the plugin.
  int start();
  int stop();
  void destroy();
  // Why the LoopDriver gave up (loop_run failed), or empty.
  std::string loopError() const;
  // Ends the LoopDriver thread now (a hand-over's old engine, before handover_complete closes its
  // loop fd); stop() and destroy() do it too.
  void stopLoopDriver();
  // create() then start(), the preamble of most engine tests:
  //   ASSERT_TRUE(engine.createAndStart(loopbackConfig(2)));
  // On failure the message names the step, the code and the plugin's detail.
  ::testing::AssertionResult createAndStart(const epoll_echo_config_t& config);

  epoll_echo_engine_t* handle() const { return engine_; }
  // Snapshot of the summed stats; `code` (when given) receives the return code.
  epoll_echo_stats_t stats(int* code = nullptr) const;
  epoll_echo_worker_stats_t workerStats(uint32_t index, int* code = nullptr) const;
  std::string lastError() const;
  uint16_t port() const { return static_cast<uint16_t>(stats().port); }

  // Polls stats() until `settled` holds or the deadline passes (the engine's counters move
  // asynchronously to the client's view). Returns the last snapshot either way; `ok` says which.
  epoll_echo_stats_t waitForStats(const std::function<bool(const epoll_echo_stats_t&)>& settled, Deadline deadline,
                                  bool* ok = nullptr) const;

 private:
  PluginApi api_;
  epoll_echo_engine_t* engine_ = nullptr;
  bool externalLoop_ = false;
  std::unique_ptr<LoopDriver> driver_;
};

// True when connections 0..count-1 of a PAUSED engine each have at least `bytes` waiting in their
// socket (FIONREAD on the exported descriptor): what its workers will find when it resumes.
bool pausedConnectionsHoldBytes(const PluginApi& api, epoll_echo_engine_t* engine, size_t count, size_t bytes);

// `count` clients connected to 127.0.0.1:port, each failure a test failure naming the client.
std::vector<UniqueFd> connectClients(uint16_t port, size_t count, std::chrono::milliseconds timeout = kIoTimeout);

// Waits until the engine has accepted `count` connections since it started: the clients
// connected are all in its workers' tables, where a pause finds them.
::testing::AssertionResult waitUntilAccepted(const TestEngine& engine, size_t count,
                                             std::chrono::milliseconds timeout = kIoTimeout);

// "EPOLL_ECHO_EBIND (-6)" for failure messages.
std::string describeCode(const PluginApi& api, int code);

}  // namespace epoll_echo::test
