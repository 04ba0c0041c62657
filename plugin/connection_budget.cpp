// ConnectionBudget: a compare-and-swap count, and a Dekker-style hand-shake between a worker that
// parks at the cap and one that frees a slot, so that no wake-up can fall between the two.
#include "connection_budget.h"

#include <unistd.h>

namespace epoll_echo {

ConnectionBudget::ConnectionBudget(uint32_t limit, uint32_t workers)
    : limit_(limit), workers_(workers), parked_(std::make_unique<Parked[]>(workers)) {}

bool ConnectionBudget::tryTake() noexcept {
  if (!capped()) return true;
  uint32_t open = open_.load(std::memory_order_relaxed);
  do {
    if (open >= limit_) return false;
  } while (!open_.compare_exchange_weak(open, open + 1, std::memory_order_seq_cst, std::memory_order_relaxed));
  return true;
}

void ConnectionBudget::give(uint32_t self) noexcept {
  if (!capped()) return;
  const uint32_t before = open_.fetch_sub(1, std::memory_order_seq_cst);
  // Still at or above the cap (adopted connections can put it above): nobody may accept yet.
  if (before > limit_) return;
  for (uint32_t i = 0; i < workers_; ++i) {
    Parked& parked = parked_[i];
    if (i == self || !parked.waiting.load(std::memory_order_seq_cst)) continue;
    if (!parked.waiting.exchange(false, std::memory_order_seq_cst) || parked.eventFd < 0) continue;
    const uint64_t one = 1;
    // EAGAIN means the counter is already non-zero: the worker wakes anyway.
    [[maybe_unused]] ssize_t ignored = ::write(parked.eventFd, &one, sizeof one);
  }
}

bool ConnectionBudget::park(uint32_t index) noexcept {
  // Flag first, count second; give() does the reverse. With both seq_cst, either give() sees the
  // flag and wakes us, or we see the freed slot here.
  parked_[index].waiting.store(true, std::memory_order_seq_cst);
  if (open_.load(std::memory_order_seq_cst) < limit_) {
    parked_[index].waiting.store(false, std::memory_order_relaxed);
    return false;
  }
  return true;
}

}  // namespace epoll_echo
