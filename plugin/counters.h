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

// Aligned to a cache line so that one worker's writes never invalidate another worker's line.
struct alignas(64) WorkerCounters {
  SingleWriterCounter accepted;
  SingleWriterCounter closed;
  SingleWriterCounter bytesIn;
  SingleWriterCounter bytesOut;
  SingleWriterCounter backpressurePauses;
  SingleWriterCounter acceptErrors;
  SingleWriterCounter acceptPauses;
  SingleWriterCounter syscalls;
  SingleWriterCounter wakeups;
  SingleWriterCounter adopted;
  SingleWriterCounter handedOver;
  SingleWriterCounter failures;  // the loop stopped on an unexpected error: 0 or 1

  void addTo(epoll_echo_counters_t& sum) const noexcept {
    const uint64_t gone = closed.get() + handedOver.get();
    const uint64_t opened = accepted.get() + adopted.get();
    sum.accepted += accepted.get();
    sum.closed += closed.get();
    sum.adopted += adopted.get();
    sum.handed_over += handedOver.get();
    // Relaxed loads of several counters may see a close without its accept: clamp at zero.
    sum.active += opened > gone ? opened - gone : 0;
    sum.bytes_in += bytesIn.get();
    sum.bytes_out += bytesOut.get();
    sum.backpressure_pauses += backpressurePauses.get();
    sum.accept_errors += acceptErrors.get();
    sum.accept_pauses += acceptPauses.get();
    sum.syscalls += syscalls.get();
    sum.wakeups += wakeups.get();
    sum.worker_failures += failures.get();
  }
};

}  // namespace epoll_echo
