// server.cpp — signal, timer, watch, reload and stop handling of the running host (see server.h).
#include "server.h"

#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <system_error>
#include <utility>
#include <vector>

#include "file_signature.h"
#include "log.h"
#include "service_notify.h"

namespace epoll_echo::host {
namespace {

// The accept-error and worker-failure checks run every second whatever --stats-interval says:
// running out of file descriptors or losing a worker must be reported even when nobody asked.
constexpr std::chrono::milliseconds kMonitorPeriod{1000};

// The descriptors waitForEvents() polls, by their index in its pollfd array.
enum PollSlot : std::size_t {
  kSignalSlot,       // SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2
  kStopDoneSlot,     // the stop thread has returned from stop()
  kMonitorSlot,      // the accept-error and worker-failure checks
  kStatsSlot,        // --stats-interval (absent without it)
  kWatchSlot,        // --watch: the plugin's directory (absent without it)
  kReloadTimerSlot,  // --watch: the debounce or retry delay has passed
  kPollSlotCount
};

// The counters of workers 0..count-1.
std::vector<epoll_echo_counters_t> workerCounters(const EngineHandle& engine, uint32_t count) {
  std::vector<epoll_echo_counters_t> workers(count);
  for (uint32_t index = 0; index < count; ++index) workers[index] = engine.workerCounters(index);
  return workers;
}

std::string signalName(int signal) { return std::string("SIG") + sigabbrev_np(signal); }

}  // namespace

Server::Server(std::unique_ptr<LoadedEngine> serving, const std::filesystem::path& pluginPath, const Options& options,
               SignalFd& signals, std::unique_ptr<MetricsServer> metrics, std::optional<Program> program,
               const CarriedStats& carried)
    : serving_(std::move(serving)),
      pluginPath_(pluginPath),
      options_(options),
      signals_(signals),
      monitorTimer_(kMonitorPeriod),
      totals_(carried),
      program_(std::move(program)),
      connectionCap_(options.maxConnections),
      metrics_(std::move(metrics)) {
  if (options.statsIntervalSeconds > 0) statsTimer_.emplace(std::chrono::seconds(options.statsIntervalSeconds));
  if (options.watch) watcher_.emplace(pluginPath_);
  if (metrics_) metrics_->start([this] { return formatMetrics(metricsSnapshot()); });
}

Server::~Server() {
  // run() joins the helper; this only matters if run() was left by an exception.
  if (stopThread_.joinable()) stopThread_.join();
}

int Server::run() {
  while (!stopFinished_) waitForEvents();
  return finishStop();
}

void Server::waitForEvents() {
  std::array<pollfd, kPollSlotCount> fds{};
  fds[kSignalSlot] = {signals_.fd(), POLLIN, 0};
  fds[kStopDoneSlot] = {stopDone_.fd(), POLLIN, 0};
  fds[kMonitorSlot] = {monitorTimer_.fd(), POLLIN, 0};
  fds[kStatsSlot] = {statsTimer_ ? statsTimer_->fd() : -1, POLLIN, 0};  // poll() skips a negative fd
  fds[kWatchSlot] = {watcher_ ? watcher_->fd() : -1, POLLIN, 0};
  fds[kReloadTimerSlot] = {reloadTimer_.fd(), POLLIN, 0};
  if (::poll(fds.data(), fds.size(), -1) < 0) {
    if (errno == EINTR) return;
    throw std::system_error(errno, std::generic_category(), "poll");
  }
  const auto ready = [&fds](PollSlot slot) { return fds[slot].revents != 0; };
  // A finished stop first: a stop signal that arrives just after it must not force an exit.
  if (ready(kStopDoneSlot) && stopDone_.consume()) stopFinished_ = true;
  if (ready(kSignalSlot)) {
    while (const std::optional<int> signal = signals_.read()) onSignal(*signal);
  }
  if (ready(kMonitorSlot) && monitorTimer_.consumeExpirations() > 0) {
    checkAcceptWarnings(stats());
    checkWorkerFailures(serving_->engine().stats());
  }
  if (ready(kStatsSlot) && statsTimer_->consumeExpirations() > 0) printStats();
  if (ready(kWatchSlot) && watcher_->consumeChanges()) onPluginChanged();
  if (ready(kReloadTimerSlot) && reloadTimer_.consumeExpiry()) onReloadTimer();
}

void Server::onSignal(int signal) {
  if (successor_) {
    passOnToSuccessor(signal);
    return;
  }
  switch (signal) {
    case SIGINT:
    case SIGTERM:
      if (stopFinished_) break;
      if (stopSignal_) forceExit(signal);
      beginStop(signal);
      break;
    case SIGUSR1:
      printStats();
      break;
    case SIGHUP:
      reloadOnSignal();
      break;
    case SIGUSR2:
      upgradeOnSignal();
      break;
    default:
      break;
  }
}

void Server::beginStop(int signal) {
  logLine(signalName(signal) + " received: stopping (send SIGINT or SIGTERM again to exit at once)");
  stopEngine(signal);
}

// The policy for a worker that stopped on an unexpected error: the engine no longer serves every
// connection it holds, so the host does not pretend to. It logs why, stops the engine and exits
// with kExitFailure, for a service manager to restart it.
void Server::checkWorkerFailures(const epoll_echo_stats_t& serving) {
  if (stopSignal_ || serving.total.worker_failures == 0) return;
  failure_ = serving_->engine().lastError();
  logLine("engine failure: " + failure_ + "; stopping, exit status " + std::to_string(kExitFailure));
  stopEngine(SIGTERM);
}

void Server::stopEngine(int signal) {
  stopSignal_ = signal;
  reloadTimer_.disarm();
  // A service manager that waits for the stop (Type=notify) learns it has begun.
  if (const std::string problem = notifyServiceManager("STOPPING=1"); !problem.empty()) {
    logLine("warning: cannot notify the service manager: " + problem);
  }
  EngineHandle& engine = serving_->engine();  // no reload replaces it from now on
  const auto stopEngine = [this, &engine] {
    try {
      engine.stop();
    } catch (const std::exception& error) {
      stopError_ = error.what();
    }
    stopDone_.raise();
  };
  try {
    stopThread_ = std::thread(stopEngine);
  } catch (const std::system_error& error) {
    // No thread to spare: stop on this one. A second signal then waits until stop returns.
    logLine(std::string("cannot start the stop thread (") + error.what() + "): stopping on the main thread");
    stopEngine();
  }
}

void Server::forceExit(int signal) {
  logLine(signalName(signal) + " received again while stopping: exiting now without waiting for the engine");
  // _exit, not exit: the engine's threads may still run plugin code, so no destructor and no
  // dlclose() may run. The kernel closes every socket and frees the plugin's memory copy.
  ::_exit(128 + signal);
}

int Server::finishStop() {
  if (successor_) {
    // The successor accepts on the same socket already: the scrapes begun here are answered.
    if (metrics_) metrics_->finish();
    while (const std::optional<int> signal = signals_.read()) passOnToSuccessor(*signal);
    return kExitOk;
  }
  if (stopThread_.joinable()) stopThread_.join();
  if (!stopError_.empty()) {
    logLine(stopError_);
    return kExitFailure;
  }
  if (!failure_.empty()) {
    logLine("stopped after an engine failure: " + formatCounters(stats().total));
    return kExitFailure;
  }
  const auto elapsed = std::chrono::steady_clock::now() - started_;
  const long long tenths = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() / 100;
  logLine("stopped on " + signalName(stopSignal_.value_or(SIGTERM)) + " after " + std::to_string(tenths / 10) + "." +
          std::to_string(tenths % 10) + " s: " + formatCounters(stats().total));
  return kExitOk;
}

void Server::onPluginChanged() {
  if (stopSignal_) return;
  reloadTimer_.arm(watchPolicy_.fileChanged());  // re-arming pushes the reload back until writes are quiet
}

void Server::onReloadTimer() {
  if (stopSignal_) return;
  const std::optional<ReloadError> error = swapEngine();
  if (!error) {
    watchPolicy_.reloadSucceeded();
    return;
  }
  const auto retry = watchPolicy_.reloadFailed(error->failure(), fileSignature(pluginPath_));
  if (!retry) {
    logRejection(*error);
    return;
  }
  logLine("reload of " + pluginPath_.string() + ": not loadable yet (attempt " + std::to_string(retry->attempt) +
          " of " + std::to_string(WatchedReloadPolicy::kMaxLoadAttempts) + "), retrying in " +
          std::to_string(retry->delay.count()) + " ms in case it is still being written: " + error->reason());
  reloadTimer_.arm(retry->delay);
}

void Server::reloadOnSignal() {
  if (stopSignal_) {
    logLine("SIGHUP received while stopping: not reloading");
    return;
  }
  reloadTimer_.disarm();  // this reload covers a pending watched one
  watchPolicy_.reloadRequested();
  logLine("SIGHUP received: reloading " + pluginPath_.string());
  if (const std::optional<ReloadError> error = swapEngine()) logRejection(*error);
}

void Server::upgradeOnSignal() {
  if (stopSignal_) {
    logLine("SIGUSR2 received while stopping: not upgrading");
    return;
  }
  if (!program_) {
    logLine("SIGUSR2 received: cannot upgrade: the path this program was started from is unknown");
    return;
  }
  logLine("SIGUSR2 received: upgrading to " + program_->path.string() + " (pid " + std::to_string(::getpid()) + ")");
  UpgradeOutcome outcome;
  try {
    outcome = upgradeProcess(
        *serving_, *program_, [this] { return carriedStats(); }, std::chrono::seconds(options_.upgradeTimeoutSeconds),
        metrics_ ? metrics_->listeningFd() : -1);
  } catch (const UpgradeError& error) {
    logLine(error.what());
    return;
  }
  successor_ = outcome.successor;
  stopFinished_ = true;
  reloadTimer_.disarm();
  logLine("upgraded: pid " + std::to_string(outcome.successor) + " serves now, " +
          countOf(outcome.moved.listeners, "listener") + ", " + countOf(outcome.moved.connections, "connection") +
          " (" + countOf(outcome.pendingBytes, "pending byte") + ") handed over in a pause of " +
          describePause(outcome.pause) + ", the new process prepared in " + formatMilliseconds(outcome.prepare) +
          (outcome.ahead.connections > 0 ? ", " + describeSentAhead(outcome.ahead) : "") + "; pid " +
          std::to_string(::getpid()) + " exits");
}

CarriedStats Server::carriedStats() const {
  const EngineHandle& engine = serving_->engine();
  const epoll_echo_stats_t last = engine.stats();
  return totals_.carry(last.total, workerCounters(engine, last.listeners));
}

void Server::passOnToSuccessor(int signal) const {
  if (::kill(*successor_, signal) == 0) {
    logLine(signalName(signal) + " received during the upgrade: passed on to pid " + std::to_string(*successor_));
  }
}

void Server::logRejection(const ReloadError& error) const {
  logLine(std::string(error.what()) + "; still serving build " + serving_->library().buildId());
}

std::optional<ReloadError> Server::swapEngine() {
  HandoverCounts moved;
  std::unique_ptr<LoadedEngine> next;
  const std::string oldBuild = serving_->library().buildId();
  try {
    next = reloadEngine(*serving_, pluginPath_, options_, moved);
  } catch (const ReloadError& error) {
    return error;
  } catch (const std::exception& error) {  // bad_alloc, a failed syscall of the host's own
    return ReloadError(pluginPath_, error.what(), ReloadFailure::kRefused);
  }
  std::unique_ptr<LoadedEngine> replaced;
  {
    const std::lock_guard<std::mutex> lock(servingMutex_);
    // Counters survive the hand-over; the replaced engine is paused, so they no longer move.
    const EngineHandle& old = serving_->engine();
    const epoll_echo_stats_t last = old.stats();
    totals_.engineReplaced(last.total);
    totals_.workersReplaced(workerCounters(old, last.listeners));
    replaced = std::exchange(serving_, std::move(next));
  }
  replaced.reset();  // the old engine is destroyed and unloaded, outside the lock
  logLine(std::string("reloaded: build ") + serving_->library().buildId() + " serving (was " + oldBuild + "), " +
          countOf(moved.listeners, "listener") + ", " + countOf(moved.connections, "connection") + " handed over");
  return std::nullopt;
}

epoll_echo_stats_t Server::stats() const { return totals_.combine(serving_->engine().stats()); }

MetricsSnapshot Server::metricsSnapshot() const {
  const std::lock_guard<std::mutex> lock(servingMutex_);
  const EngineHandle& engine = serving_->engine();
  const PluginLibrary& library = serving_->library();
  const epoll_echo_stats_t stats = engine.stats();
  MetricsSnapshot snapshot;
  snapshot.state = stats.state;
  snapshot.listeners = stats.listeners;
  snapshot.workers = totals_.combineWorkers(workerCounters(engine, stats.listeners));
  for (uint32_t index = 0; index < stats.listeners; ++index) {
    snapshot.uringWorkers.push_back(engine.workerStats(index).uring);
  }
  snapshot.reloads = totals_.reloads();
  snapshot.buildId = library.buildId();
  const char* version = library.functions().version();
  snapshot.pluginVersion = version ? version : "unknown";
  snapshot.abiVersion = library.abiVersion();
  return snapshot;
}

void Server::printStats() {
  const epoll_echo_stats_t snapshot = stats();
  ServingInfo serving{serving_->library().buildId(), totals_.reloads(), {}};
  for (const epoll_echo_counters_t& worker : workerCounters(serving_->engine(), snapshot.listeners)) {
    serving.activePerWorker.push_back(worker.active);
  }
  printLine(formatStats(snapshot, options_.statsFormat, serving));
  checkAcceptWarnings(snapshot);
}

void Server::checkAcceptWarnings(const epoll_echo_stats_t& stats) {
  const auto now = std::chrono::steady_clock::now();
  if (auto warning = acceptErrors_.observe(stats.total.accept_errors, now)) logLine(*warning);
  if (auto warning = connectionCap_.observe(stats.total.accept_cap_pauses, now)) logLine(*warning);
}

}  // namespace epoll_echo::host
