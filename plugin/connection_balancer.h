// ConnectionBalancer: the "exact" balance between an engine's workers. A worker that accepts a
// connection while it holds more than the least-loaded worker hands the socket, not yet
// registered, to that worker through a queue and wakes it; so at accept time no worker holds
// more than one connection above another, whatever the kernel's SO_REUSEPORT hash chose.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "thread_annotations.h"
#include "unique_fd.h"

namespace epoll_echo {

// Owned by the Engine, which outlives its workers; every member is safe from any worker thread.
// The counts are what each worker holds (registered, adopted, or queued for it), kept by the
// workers themselves: a close lowers its worker's count, so a later accept fills the gap, but no
// connection already open moves.
class ConnectionBalancer {
 public:
  explicit ConnectionBalancer(uint32_t workers);
  ConnectionBalancer(const ConnectionBalancer&) = delete;
  ConnectionBalancer& operator=(const ConnectionBalancer&) = delete;

  // Gives worker `index` the eventfd that wakes it (its own, open as long as the worker); -1
  // takes the worker out of the choice (it closed, or its loop failed).
  void setWakeup(uint32_t index, int eventFd) noexcept;

  // Worker `self` accepted `socket`. Returns it when `self` should register it (it holds no more
  // than any other worker); otherwise queues it for the least-loaded worker, wakes that worker,
  // and returns an empty UniqueFd. Either way the connection is counted for its new holder.
  UniqueFd place(uint32_t self, UniqueFd socket) noexcept EPOLL_ECHO_EXCLUDES(mutex_);
  // The sockets queued for worker `index` since its last call, each already counted for it.
  std::vector<UniqueFd> takeQueued(uint32_t index) noexcept EPOLL_ECHO_EXCLUDES(mutex_);

  // Worker `index` holds one more connection (adopted from a previous engine) or one fewer (closed,
  // handed over, or a queued socket it could not register).
  void arrived(uint32_t index) noexcept { slots_[index].count.fetch_add(1, std::memory_order_relaxed); }
  void left(uint32_t index, uint32_t connections = 1) noexcept {
    slots_[index].count.fetch_sub(connections, std::memory_order_relaxed);
  }
  uint32_t count(uint32_t index) const noexcept { return slots_[index].count.load(std::memory_order_relaxed); }

 private:
  struct alignas(64) Slot {
    std::atomic<uint32_t> count{0};
    std::atomic<int> eventFd{-1};
  };
  uint32_t leastLoaded(uint32_t self) const noexcept EPOLL_ECHO_REQUIRES(mutex_);

  const uint32_t workers_;
  std::unique_ptr<Slot[]> slots_;
  // Held for one choice and one push: two workers accepting at once cannot both pick the worker
  // that was least loaded before either counted its connection.
  Mutex mutex_;
  std::vector<std::vector<UniqueFd>> queues_ EPOLL_ECHO_GUARDED_BY(mutex_);  // one per worker
};

}  // namespace epoll_echo
