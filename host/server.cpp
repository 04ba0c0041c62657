// server.cpp — signal, timer and stop handling of the running host (see server.h for the design).
#include "server.h"

#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "log.h"

namespace epoll_echo::host {
namespace {

// The accept-error check runs every second whatever --stats-interval says: running out of file
// descriptors must be reported even when nobody asked for stats.
constexpr std::chrono::milliseconds kMonitorPeriod{1000};

std::string signalName(int signal) { return std::string("SIG") + sigabbrev_np(signal); }

}  // namespace

Server::Server(Engine& engine, const PluginLibrary& plugin, const Options& options, SignalFd& signals)
    : engine_(engine), plugin_(plugin), options_(options), signals_(signals), monitorTimer_(kMonitorPeriod) {
  if (options.statsIntervalSeconds > 0) statsTimer_.emplace(std::chrono::seconds(options.statsIntervalSeconds));
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
  pollfd fds[] = {{signals_.fd(), POLLIN, 0},
                  {stopDone_.fd(), POLLIN, 0},
                  {monitorTimer_.fd(), POLLIN, 0},
                  {statsTimer_ ? statsTimer_->fd() : -1, POLLIN, 0}};  // poll() skips a negative fd
  if (::poll(fds, sizeof fds / sizeof fds[0], -1) < 0) {
    if (errno == EINTR) return;
    throw std::system_error(errno, std::generic_category(), "poll");
  }
  // A finished stop first: a stop signal that arrives just after it must not force an exit.
  if (fds[1].revents != 0 && stopDone_.consume()) stopFinished_ = true;
  if (fds[0].revents != 0) {
    while (const std::optional<int> signal = signals_.read()) onSignal(*signal);
  }
  if (fds[2].revents != 0 && monitorTimer_.consumeExpirations() > 0) checkAcceptErrors(engine_.stats());
  if (fds[3].revents != 0 && statsTimer_->consumeExpirations() > 0) printStats();
}

void Server::onSignal(int signal) {
  switch (signal) {
    case SIGINT:
    case SIGTERM:
      if (stopFinished_) break;
      if (stopSignal_) forceExit(signal);
      beginStop(signal);
      break;
    case SIGUSR1: printStats(); break;
    case SIGHUP: reload(); break;
    default: break;
  }
}

void Server::beginStop(int signal) {
  stopSignal_ = signal;
  logLine(signalName(signal) + " received: stopping (send SIGINT or SIGTERM again to exit at once)");
  const auto stopEngine = [this] {
    try {
      engine_.stop();
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
  // dlclose() may run. The kernel closes every socket.
  ::_exit(128 + signal);
}

int Server::finishStop() {
  if (stopThread_.joinable()) stopThread_.join();
  if (!stopError_.empty()) {
    logLine(stopError_);
    return kExitFailure;
  }
  const auto elapsed = std::chrono::steady_clock::now() - started_;
  const long long tenths = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() / 100;
  logLine("stopped on " + signalName(stopSignal_.value_or(SIGTERM)) + " after " + std::to_string(tenths / 10) +
          "." + std::to_string(tenths % 10) + " s: " + formatCounters(engine_.stats().total));
  return kExitOk;
}

void Server::reload() {
  // The hot-swap hook: a later --watch build loads a fresh copy of plugin_.path() here, hands the
  // listening sockets over and keeps this engine if the new one fails.
  logLine("SIGHUP received: plugin reload is not supported by this build; still serving " +
          plugin_.path().string());
}

void Server::printStats() {
  const epoll_echo_stats_t stats = engine_.stats();
  printLine(formatStats(stats, options_.statsFormat));
  checkAcceptErrors(stats);
}

void Server::checkAcceptErrors(const epoll_echo_stats_t& stats) {
  if (auto warning = acceptErrors_.observe(stats.total.accept_errors, std::chrono::steady_clock::now())) {
    logLine(*warning);
  }
}

}  // namespace epoll_echo::host
