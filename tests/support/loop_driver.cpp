// loop_driver.cpp — see loop_driver.h.
#include "support/loop_driver.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

namespace epoll_echo::test {

bool LoopDriver::start(const PluginApi& api, epoll_echo_engine_t* engine) {
  stop();
  api_ = api;
  engine_ = engine;
  int32_t loopFd = -1;
  const int code = api_.loop_fd(engine_, &loopFd);
  if (code != EPOLL_ECHO_OK) {
    error_ = "loop_fd: " + describeCode(api_, code);
    failed_.store(true);
    return false;
  }
  quit_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!quit_) {
    error_ = "eventfd failed";
    failed_.store(true);
    return false;
  }
  error_.clear();
  failed_.store(false);
  thread_ = std::thread([this, loopFd] { run(loopFd); });
  return true;
}

void LoopDriver::stop() {
  if (!thread_.joinable()) return;
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t ignored = ::write(quit_.get(), &one, sizeof one);
  thread_.join();
  quit_.reset();
}

std::string LoopDriver::error() const { return failed_.load(std::memory_order_acquire) ? error_ : std::string(); }

// The loop every example host has: wait for the fd or the timeout, run, repeat. Bounded by the
// quit eventfd, which stop() fires; a failure ends it (the test reads error()).
void LoopDriver::run(int loopFd) {
  int32_t timeoutMs = 0;
  for (;;) {
    pollfd fds[2] = {{loopFd, POLLIN, 0}, {quit_.get(), POLLIN, 0}};
    const int ready = ::poll(fds, 2, timeoutMs);
    if (ready < 0 && errno != EINTR) {
      error_ = "poll failed";
      failed_.store(true, std::memory_order_release);
      return;
    }
    if (fds[1].revents != 0) return;
    const int code = api_.loop_run(engine_, &timeoutMs);
    runs_.fetch_add(1, std::memory_order_relaxed);
    if (code == EPOLL_ECHO_ESTATE) {
      epoll_echo_stats_t stats{};
      stats.size = sizeof stats;
      // Stopped by the test behind the driver's back (through the plugin's own stop): done.
      if (api_.stats(engine_, &stats) != EPOLL_ECHO_OK || stats.state == EPOLL_ECHO_STATE_STOPPED) return;
      timeoutMs = -1;  // paused (a hand-over): the fd stays quiet until resume
      continue;
    }
    if (code != EPOLL_ECHO_OK) {
      char detail[256] = {};
      api_.last_error(engine_, detail, sizeof detail);
      error_ = "loop_run: " + describeCode(api_, code) + ": " + detail;
      failed_.store(true, std::memory_order_release);
      return;
    }
  }
}

}  // namespace epoll_echo::test
