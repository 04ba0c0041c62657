// WorkerCounters: one worker's statistics, written by that worker only, read by any thread.
#pragma once

#include <atomic>
#include <cstdint>

#include "epoll_echo.h"

namespace epoll_echo {

// A counter with a single writer: a relaxed load and store instead of a locked read-modify-write
// keeps the hot path free of atomic instructions, and readers still never see a torn value.
class SingleWriterCounter {
 public:
  void add(uint64_t amount) noexcept {
    value_.store(value_.load(std::memory_order_relaxed) + amount, std::memory_order_relaxed);
  }
  uint64_t get() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// One SingleWriterCounter per COUNTER of EPOLL_ECHO_COUNTER_TABLE, named as the ABI field it is
// summed into. The gauge `active` is not stored: it is derived from the others when summed.
#define EPOLL_ECHO_MEMBER_COUNTER(field) SingleWriterCounter field;
#define EPOLL_ECHO_MEMBER_GAUGE(field)
#define EPOLL_ECHO_MEMBER(field, kind, minor) EPOLL_ECHO_MEMBER_##kind(field)
#define EPOLL_ECHO_ADD_COUNTER(field) sum.field += field.get();
#define EPOLL_ECHO_ADD_GAUGE(field)
#define EPOLL_ECHO_ADD(field, kind, minor) EPOLL_ECHO_ADD_##kind(field)
#define EPOLL_ECHO_IS_GAUGE(field, kind, minor) +(EPOLL_ECHO_METRIC_##kind == EPOLL_ECHO_METRIC_GAUGE)

// Aligned to a cache line so that one worker's writes never invalidate another worker's line.
struct alignas(64) WorkerCounters {
  EPOLL_ECHO_COUNTER_TABLE(EPOLL_ECHO_MEMBER)
  EPOLL_ECHO_URING_COUNTER_TABLE(EPOLL_ECHO_MEMBER)  // all counters; the epoll worker leaves them at 0

  void addTo(epoll_echo_counters_t& sum) const noexcept {
    static_assert(0 EPOLL_ECHO_COUNTER_TABLE(EPOLL_ECHO_IS_GAUGE) == 1,
                  "addTo derives the one gauge, active; a new gauge needs its own derivation here");
    EPOLL_ECHO_COUNTER_TABLE(EPOLL_ECHO_ADD)
    const uint64_t gone = closed.get() + handed_over.get();
    const uint64_t opened = accepted.get() + adopted.get();
    // Relaxed loads of several counters may see a close without its accept: clamp at zero.
    sum.active += opened > gone ? opened - gone : 0;
  }

  void addTo(epoll_echo_uring_counters_t& sum) const noexcept { EPOLL_ECHO_URING_COUNTER_TABLE(EPOLL_ECHO_ADD) }
};

#undef EPOLL_ECHO_IS_GAUGE
#undef EPOLL_ECHO_ADD
#undef EPOLL_ECHO_ADD_GAUGE
#undef EPOLL_ECHO_ADD_COUNTER
#undef EPOLL_ECHO_MEMBER
#undef EPOLL_ECHO_MEMBER_GAUGE
#undef EPOLL_ECHO_MEMBER_COUNTER

}  // namespace epoll_echo
