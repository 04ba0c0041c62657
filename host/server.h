// server.h — the host's main loop: waits on the signalfd, the stats and monitoring timers and the
// stop thread's eventfd, and turns each into an action on the running engine.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include "engine.h"
#include "event_sources.h"
#include "options.h"
#include "plugin_library.h"
#include "stats_report.h"

namespace epoll_echo::host {

// Runs a started engine until SIGINT/SIGTERM. Main thread only.
//
// Stopping: the first SIGINT/SIGTERM starts a helper thread that calls epoll_echo_stop() (which
// joins every plugin thread and may take a while with many connections), while the main thread
// keeps reading the signalfd. A second SIGINT/SIGTERM during that time ends the process at once
// with _exit(128 + signal): no destructor runs, so nothing unloads the plugin under its own
// still-running threads. When the helper is done it raises an eventfd; run() joins it and returns.
//
// SIGHUP is handled by reload(): the hook where plugin hot-swap (--watch) will go; today it logs
// that this build cannot reload and keeps serving.
class Server {
 public:
  Server(Engine& engine, const PluginLibrary& plugin, const Options& options, SignalFd& signals);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  // Returns the exit code once the engine has stopped: kExitOk, or kExitFailure if stop failed.
  int run();

 private:
  void waitForEvents();
  void onSignal(int signal);
  void beginStop(int signal);
  [[noreturn]] void forceExit(int signal);
  int finishStop();
  void reload();
  void printStats();
  void checkAcceptErrors(const epoll_echo_stats_t& stats);

  Engine& engine_;
  const PluginLibrary& plugin_;
  const Options& options_;
  SignalFd& signals_;
  TimerFd monitorTimer_;
  std::optional<TimerFd> statsTimer_;
  EventFd stopDone_;
  std::thread stopThread_;
  std::optional<int> stopSignal_;  // the signal that began the stop, once it has begun
  std::string stopError_;          // written by the stop thread, read after joining it
  bool stopFinished_ = false;
  AcceptErrorMonitor acceptErrors_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace epoll_echo::host
