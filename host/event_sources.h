// event_sources.h — the file descriptors the host's main loop polls: the signalfd for the blocked
// signals, timerfds for the stats and monitoring ticks, and an eventfd the stop thread raises.
#pragma once

#include <signal.h>

#include <chrono>
#include <cstdint>
#include <optional>

#include "unique_fd.h"

namespace epoll_echo::host {

// The signals the host handles synchronously: SIGINT, SIGTERM (stop), SIGHUP (reload), SIGUSR1
// (stats), SIGUSR2 (upgrade the process).
sigset_t serverSignals();

// Blocks serverSignals() in the calling thread. Call it in main() before the plugin is loaded and
// before any thread starts: threads inherit the mask, so no plugin worker can take a signal and
// every one stays pending for the signalfd. Throws std::system_error.
void blockServerSignals();

// A non-blocking signalfd for serverSignals(). Main thread only.
class SignalFd {
 public:
  SignalFd();  // throws std::system_error
  int fd() const { return fd_.get(); }
  std::optional<int> read();  // the next pending signal number, or nullopt when none is pending

 private:
  UniqueFd fd_;
};

// A periodic CLOCK_MONOTONIC timerfd. Main thread only.
class TimerFd {
 public:
  explicit TimerFd(std::chrono::milliseconds period);  // throws std::system_error
  int fd() const { return fd_.get(); }
  uint64_t consumeExpirations();  // ticks since the last call (0 if none)

 private:
  UniqueFd fd_;
};

// A one-shot CLOCK_MONOTONIC timerfd that can be re-armed: the --watch debounce and retry timer.
// Main thread only.
class OneShotTimer {
 public:
  OneShotTimer();  // disarmed; throws std::system_error
  int fd() const { return fd_.get(); }
  void arm(std::chrono::milliseconds delay);  // replaces any pending expiry; throws std::system_error
  void disarm();
  bool consumeExpiry();  // true once after the timer fired

 private:
  UniqueFd fd_;
};

// A one-shot notification from another thread: the stop thread raises it when stop() returned.
class EventFd {
 public:
  EventFd();  // throws std::system_error
  int fd() const { return fd_.get(); }
  void raise();    // [any-thread], async-signal-safe
  bool consume();  // true if raised since the last consume

 private:
  UniqueFd fd_;
};

}  // namespace epoll_echo::host
