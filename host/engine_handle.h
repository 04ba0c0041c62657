// engine_handle.h — one engine of a loaded plugin, owned from create to destroy, with the plugin's error
// codes turned into one-line exceptions that carry epoll_echo_last_error()'s detail.
#pragma once

#include <epoll_echo.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "options.h"
#include "plugin_library.h"

namespace epoll_echo::host {

// A failed engine call; what() names the call, the code and the plugin's detail.
class PluginCallError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One connection taken out of a paused engine: its state (the fd stays owned by that engine) and
// the bytes it had read but not yet echoed.
struct ExportedConnection {
  epoll_echo_connection_state_t state{};
  std::vector<unsigned char> pending;
};

// The host's handle on one engine inside the plugin (the engine itself is plugin/engine.h's Engine,
// on the other side of the C ABI): owns an epoll_echo_engine_t. The PluginLibrary must outlive it.
// create/start/stop/destroy are [control] calls (the plugin serialises them); stats() may run on
// any thread meanwhile, so the stop helper thread and the main thread's stats reads may overlap.
class EngineHandle {
 public:
  // epoll_echo_create() with the options' port, worker count and bind address. Throws PluginCallError.
  EngineHandle(const PluginLibrary& plugin, const Options& options);
  EngineHandle(const EngineHandle&) = delete;
  EngineHandle& operator=(const EngineHandle&) = delete;
  ~EngineHandle();  // epoll_echo_destroy(): stops the engine first if it still runs

  void start();  // binds and starts every listener; throws PluginCallError ("bind ...: Address already in use")
  // ABI 1.6 (canStartPaused()): all of start() but the threads; resume() runs them. Throws PluginCallError.
  void startPaused();
  bool canStartPaused() const { return functions_.start_paused != nullptr; }
  void stop();   // joins every plugin thread; throws PluginCallError
  epoll_echo_stats_t stats() const;  // zeroed counters if the call fails: stats are advisory
  std::string lastError() const;     // epoll_echo_last_error(): why the last call or a worker failed
  // The counters of worker `index`; zeroed if the call fails.
  epoll_echo_counters_t workerCounters(uint32_t index) const;
  // Everything worker `index` reports (its io_uring counters too); zeroed if the call fails.
  epoll_echo_worker_stats_t workerStats(uint32_t index) const;

  // Hot-swap hand-over (ABI 1.1; the plugin must supportsHandover()). Each throws PluginCallError.
  void pause();
  void resume();
  void handoverComplete();
  void handoverCounts(uint32_t& listeners, uint32_t& connections) const;
  int exportListener(uint32_t index) const;  // borrowed: the fd stays owned by this engine
  // Each listening socket of the `count` once (borrowed): workers sharing one socket (socket
  // activation) export it each, and an engine refuses a listener it holds already.
  std::vector<int> exportDistinctListeners(uint32_t count) const;
  ExportedConnection exportConnection(uint32_t index) const;
  // Its descriptor, worker and flags without the pending bytes (pending_bytes tells how many).
  epoll_echo_connection_state_t exportConnectionState(uint32_t index) const;
  void importListener(int fd);
  void importConnection(const ExportedConnection& connection);
  // ABI 1.5 (the plugin must supportsDrop()): forget an imported connection again.
  void dropConnection(int fd);
  bool canDropConnections() const { return functions_.drop_connection != nullptr; }

 private:
  std::string describeFailure(const char* call, int code, const std::string& detail) const;
  void check(const char* call, int code) const;  // throws PluginCallError unless code is OK

  const PluginFunctions& functions_;
  epoll_echo_engine_t* engine_ = nullptr;
};

}  // namespace epoll_echo::host
