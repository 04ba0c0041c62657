// ConnectionBudget: the engine's max_connections, shared by its workers. A worker takes a slot
// before each accept and gives it back when the connection closes; a worker that found no slot
// parks, and the worker whose close frees the first slot wakes it through its eventfd.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace epoll_echo {

// Owned by the Engine, which outlives its workers; every member is safe from any worker thread.
// One count for the whole engine rather than max/N per worker: SO_REUSEPORT hashes clients to
// listeners, so a split cap would leave clients queued at a full worker while another had room.
class ConnectionBudget {
 public:
  // `limit` 0 means no cap: then every call returns at once and nothing is counted (no shared
  // cache line between the workers). `workers` is the number of wake-up slots.
  ConnectionBudget(uint32_t limit, uint32_t workers);

  bool capped() const noexcept { return limit_ != 0; }
  // Gives worker `index` the eventfd that wakes it (its own, open as long as the worker).
  void setWakeup(uint32_t index, int eventFd) noexcept { parked_[index].eventFd = eventFd; }

  // Takes a slot for a connection about to be accepted; false at the cap.
  bool tryTake() noexcept;
  // Counts a connection whatever the cap: an adopted connection is already open.
  void take() noexcept {
    if (capped()) open_.fetch_add(1, std::memory_order_seq_cst);
  }
  // Returns a slot (a connection closed, or an accept that found nobody). When that leaves room
  // under the cap, wakes every parked worker but `self`, which notices on its own.
  void give(uint32_t self) noexcept;
  // Parks worker `index` until give() wakes it. Returns false, not parked, when a slot freed up
  // in the meantime: the caller then tries again instead of waiting for a wake-up already missed.
  bool park(uint32_t index) noexcept;
  // Worker `index` resumed accepting: a later give() need not wake it.
  void unpark(uint32_t index) noexcept { parked_[index].waiting.store(false, std::memory_order_relaxed); }
  // Worker `index` is parked and give() has not woken it yet: a wake-up it sees came from elsewhere.
  bool parked(uint32_t index) const noexcept { return parked_[index].waiting.load(std::memory_order_seq_cst); }

  // Connections counted now (0 without a cap).
  uint32_t open() const noexcept { return open_.load(std::memory_order_relaxed); }

 private:
  struct alignas(64) Parked {
    std::atomic<bool> waiting{false};
    int eventFd = -1;
  };

  const uint32_t limit_;
  const uint32_t workers_;
  alignas(64) std::atomic<uint32_t> open_{0};
  std::unique_ptr<Parked[]> parked_;
};

}  // namespace epoll_echo
