// loop_driver.h — an external-loop engine's host loop for tests: a thread that poll()s the
// engine's loop fd with the timeout loop_run() asked for, and calls loop_run(), until stopped.
#pragma once

#include <epoll_echo.h>

#include <atomic>
#include <string>
#include <thread>

#include "support/plugin.h"
#include "unique_fd.h"

namespace epoll_echo::test {

// Drives one RUNNING engine created with EPOLL_ECHO_THREADING_EXTERNAL. stop() (or the
// destructor) ends the thread; call it before the engine's stop(), which closes the loop fd.
// A pause from another thread is fine: loop_run() then refuses (ESTATE) and the fd goes quiet.
class LoopDriver {
 public:
  LoopDriver() = default;
  LoopDriver(const LoopDriver&) = delete;
  LoopDriver& operator=(const LoopDriver&) = delete;
  ~LoopDriver() { stop(); }

  // Looks up the loop fd and starts the thread; false (and error()) when loop_fd() fails.
  bool start(const PluginApi& api, epoll_echo_engine_t* engine);
  void stop();
  bool running() const { return thread_.joinable(); }
  // The first loop_run() failure other than the ESTATE of a paused engine, or empty.
  std::string error() const;
  // loop_run() calls made so far.
  uint64_t runs() const { return runs_.load(std::memory_order_relaxed); }

 private:
  void run(int loopFd);

  PluginApi api_;
  epoll_echo_engine_t* engine_ = nullptr;
  UniqueFd quit_;  // eventfd: stop() fires it
  std::thread thread_;
  std::atomic<uint64_t> runs_{0};
  std::atomic<bool> failed_{false};
  std::string error_;  // written by the thread before failed_, read after it
};

}  // namespace epoll_echo::test
