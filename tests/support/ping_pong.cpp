// ping_pong.cpp — the hot-swap tests' client load (see ping_pong.h).
#include "support/ping_pong.h"

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "support/timeouts.h"

namespace epoll_echo::test {

PingPongLoad::PingPongLoad(uint16_t port, std::size_t connections) {
  for (std::size_t i = 0; i < connections; ++i) {
    std::string error;
    UniqueFd socket = connectLoopback(port, deadlineIn(kIoTimeout), &error);
    if (!socket) {
      fail("connect " + std::to_string(i) + ": " + error);
      return;
    }
    sockets_.push_back(std::move(socket));
  }
  for (std::size_t i = 0; i < sockets_.size(); ++i) threads_.emplace_back([this, i] { run(i); });
}

bool PingPongLoad::waitForProgress(uint64_t more, Deadline deadline) {
  std::unique_lock<std::mutex> lock(mutex_);
  const uint64_t target = roundTrips_ + more;
  return progress_.wait_until(lock, deadline, [&] { return roundTrips_ >= target || !error_.empty(); }) &&
         error_.empty();
}

void PingPongLoad::stop() {
  stopping_ = true;
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

std::string PingPongLoad::error() {
  std::lock_guard<std::mutex> lock(mutex_);
  return error_;
}

uint64_t PingPongLoad::roundTrips() {
  std::lock_guard<std::mutex> lock(mutex_);
  return roundTrips_;
}

void PingPongLoad::run(std::size_t index) {
  std::vector<unsigned char> sent(8192), echoed(8192);
  for (uint64_t round = 0; !stopping_; ++round) {
    const std::size_t size = 1 + (index * 977 + round * 131) % sent.size();
    fillPattern(index + 1, round * sent.size(), sent.data(), size);
    std::string error;
    if (!sendAll(sockets_[index].get(), sent.data(), size, deadlineIn(kIoTimeout), &error) ||
        !receiveExactly(sockets_[index].get(), echoed.data(), size, deadlineIn(kIoTimeout), &error)) {
      return fail("connection " + std::to_string(index) + " round " + std::to_string(round) + ": " + error);
    }
    if (std::memcmp(sent.data(), echoed.data(), size) != 0) {
      return fail("connection " + std::to_string(index) + " round " + std::to_string(round) + ": wrong bytes");
    }
    std::lock_guard<std::mutex> lock(mutex_);
    ++roundTrips_;
    progress_.notify_all();
  }
}

void PingPongLoad::fail(const std::string& what) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (error_.empty()) error_ = what;
  progress_.notify_all();
}

}  // namespace epoll_echo::test
