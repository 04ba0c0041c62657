// server.h — the host's main loop: waits on the signalfd, the stats and monitoring timers, the stop
// thread's eventfd and, with --watch, the plugin directory's inotify fd, and acts on the engine.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "event_sources.h"
#include "loaded_engine.h"
#include "metrics_server.h"
#include "metrics_text.h"
#include "options.h"
#include "plugin_watcher.h"
#include "reload.h"
#include "reload_policy.h"
#include "stats_report.h"
#include "upgrade.h"

namespace epoll_echo::host {

// Runs a started engine until SIGINT/SIGTERM, replacing it on SIGHUP or, with --watch, when the
// plugin file is replaced (reload.h). Owns the serving engine. Main thread only.
//
// Stopping: the first SIGINT/SIGTERM starts a helper thread that calls epoll_echo_stop() (which
// joins every plugin thread and may take a while with many connections), while the main thread
// keeps reading the signalfd. A second SIGINT/SIGTERM during that time ends the process at once
// with _exit(128 + signal): no destructor runs, so nothing unloads the plugin under its own
// still-running threads. When the helper is done it raises an eventfd; run() joins it and returns.
// Reloads run on the main thread between events, so a stop never overlaps one; once a stop has
// begun, reload requests are ignored.
//
// The rules of a reload (when a watched file is reloaded, how often it is retried, the stats kept
// across reloads) are reload_policy.h's; this class carries them out.
//
// SIGUSR2 upgrades the process (upgrade.h): also on the main thread, so a reload and an upgrade
// never overlap, and signals that arrive meanwhile wait in the signalfd. Once a new process serves,
// run() returns kExitOk and every signal still pending is passed on to that process.
//
// With --metrics-listen the server owns a started MetricsServer, whose thread reads
// metricsSnapshot(); a mutex orders those reads with the reload that replaces the serving engine.
// It is stopped (joined) first when the server is destroyed.
class Server {
 public:
  // `program` is what SIGUSR2 starts (nullopt: the path this one was started from is unknown);
  // `carried` continues a predecessor's stats after an upgrade.
  Server(std::unique_ptr<LoadedEngine> serving, const std::filesystem::path& pluginPath, const Options& options,
         SignalFd& signals, std::unique_ptr<MetricsServer> metrics = nullptr, std::optional<Program> program = {},
         const CarriedStats& carried = {});
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  const LoadedEngine& serving() const { return *serving_; }
  epoll_echo_stats_t stats() const;  // the serving engine's snapshot with the replaced engines' totals added
  // Likewise, per worker index, with the serving build; for the metrics thread. [any-thread]
  MetricsSnapshot metricsSnapshot() const;

  // Returns the exit code once the engine has stopped: kExitOk, or kExitFailure if stop failed or
  // a worker failed (the host then stops by itself).
  int run();

 private:
  void waitForEvents();
  void onSignal(int signal);
  void beginStop(int signal);
  void stopEngine(int signal);
  void checkWorkerFailures(const epoll_echo_stats_t& serving);
  [[noreturn]] void forceExit(int signal);
  int finishStop();
  void onPluginChanged();
  void onReloadTimer();
  void reloadOnSignal();
  void upgradeOnSignal();
  CarriedStats carriedStats() const;  // of a paused serving engine
  void passOnToSuccessor(int signal) const;
  std::optional<ReloadError> swapEngine();
  void logRejection(const ReloadError& error) const;  // with the build that keeps serving
  void printStats();
  void checkAcceptWarnings(const epoll_echo_stats_t& stats);

  // serving_ and totals_ change on the main thread only, under servingMutex_: the main thread
  // reads them without it, the metrics thread with it.
  mutable std::mutex servingMutex_;
  std::unique_ptr<LoadedEngine> serving_;
  std::filesystem::path pluginPath_;
  const Options& options_;
  SignalFd& signals_;
  TimerFd monitorTimer_;
  std::optional<TimerFd> statsTimer_;
  std::optional<PluginWatcher> watcher_;
  OneShotTimer reloadTimer_;  // --watch: armed with watchPolicy_'s debounce and retry delays
  WatchedReloadPolicy watchPolicy_;
  StatsAcrossReloads totals_;
  EventFd stopDone_;
  std::thread stopThread_;
  std::optional<int> stopSignal_;  // the signal that began the stop, once it has begun
  std::string stopError_;          // written by the stop thread, read after joining it
  std::string failure_;            // why a worker failed, when that made the host stop
  bool stopFinished_ = false;
  std::optional<Program> program_;
  std::optional<pid_t> successor_;  // the process that took over (SIGUSR2), once it serves
  AcceptErrorMonitor acceptErrors_;
  ConnectionCapMonitor connectionCap_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::unique_ptr<MetricsServer> metrics_;  // last: stopped before anything it reads goes
};

}  // namespace epoll_echo::host
