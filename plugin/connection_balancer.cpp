// ConnectionBalancer: one short lock per accepted connection (the choice and the push), relaxed
// counts that each worker moves for its own connections, and the target's eventfd to wake it.
#include "connection_balancer.h"

#include <unistd.h>

#include <new>

namespace epoll_echo {

ConnectionBalancer::ConnectionBalancer(uint32_t workers)
    : workers_(workers), slots_(std::make_unique<Slot[]>(workers)), queues_(workers) {}

void ConnectionBalancer::setWakeup(uint32_t index, int eventFd) noexcept {
  slots_[index].eventFd.store(eventFd, std::memory_order_relaxed);
}

// The worker with the fewest connections among those that can be woken; `self` on a tie, so that
// an even spread moves nothing.
uint32_t ConnectionBalancer::leastLoaded(uint32_t self) const noexcept {
  uint32_t best = self;
  uint32_t bestCount = count(self);
  for (uint32_t i = 0; i < workers_; ++i) {
    if (slots_[i].eventFd.load(std::memory_order_relaxed) < 0) continue;
    const uint32_t candidate = count(i);
    if (candidate < bestCount) {
      best = i;
      bestCount = candidate;
    }
  }
  return best;
}

UniqueFd ConnectionBalancer::place(uint32_t self, UniqueFd socket) noexcept {
  bool handedOff = false;
  int wakeup = -1;
  {
    MutexLock lock(mutex_);
    const uint32_t target = leastLoaded(self);
    if (target != self) {
      try {
        queues_[target].push_back(std::move(socket));
        handedOff = true;
        arrived(target);
        wakeup = slots_[target].eventFd.load(std::memory_order_relaxed);
      } catch (const std::bad_alloc&) {
        // No room in the queue: push_back changed nothing and the socket is still ours.
      }
    }
    if (!handedOff) arrived(self);
  }
  if (!handedOff) return socket;
  const uint64_t one = 1;
  // EAGAIN means the counter is already non-zero: the worker wakes anyway. A worker whose loop
  // failed meanwhile (no eventfd) registers its queue when the engine pauses or stops.
  if (wakeup >= 0) {
    [[maybe_unused]] ssize_t ignored = ::write(wakeup, &one, sizeof one);
  }
  return UniqueFd();
}

std::vector<UniqueFd> ConnectionBalancer::takeQueued(uint32_t index) noexcept {
  std::vector<UniqueFd> taken;
  MutexLock lock(mutex_);
  taken.swap(queues_[index]);
  return taken;
}

}  // namespace epoll_echo
