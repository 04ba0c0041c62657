// ping_pong.h — for the end-to-end hot-swap tests: continuous byte-checked ping-pong on many
// connections while the server reloads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/net.h"

namespace epoll_echo::test {

// Ping-pong on `connections` loopback connections, one thread each: every message has its own
// length and bytes (fillPattern), and the echo must match exactly. A connection that fails
// (error, EOF, wrong byte, no echo within kIoTimeout) stops the load and is reported by error().
// Methods may be called from one controlling thread; the destructor stops and joins.
class PingPongLoad {
 public:
  PingPongLoad(uint16_t port, std::size_t connections);
  PingPongLoad(const PingPongLoad&) = delete;
  PingPongLoad& operator=(const PingPongLoad&) = delete;
  ~PingPongLoad() { stop(); }

  // Waits until `more` round trips completed after this call; false on a failure or the deadline.
  bool waitForProgress(uint64_t more, Deadline deadline);
  void stop();  // joins the threads; idempotent

  std::string error();  // "" while every connection is fine
  uint64_t roundTrips();

 private:
  void run(std::size_t index);
  void fail(const std::string& what);

  std::vector<UniqueFd> sockets_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable progress_;
  uint64_t roundTrips_ = 0;
  std::string error_;
};

}  // namespace epoll_echo::test
