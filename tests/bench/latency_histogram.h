// latency_histogram.h — log-linear latency histogram (HdrHistogram-like): every recorded value
// counts, percentiles are exact to within 1/kSubBuckets (~1.6 %) of the value.
#pragma once

#include <array>
#include <cstdint>

namespace epoll_echo::bench {

// One per client thread (no locking); merge() sums them at the end.
class LatencyHistogram {
 public:
  void record(uint64_t nanoseconds);
  void merge(const LatencyHistogram& other);
  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  double mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_); }
  // The value at quantile q (0..1]: the upper bound of the bucket holding it, capped at max().
  uint64_t percentile(double q) const;

 private:
  static constexpr int kSubBits = 6;  // 64 linear sub-buckets per power of two
  static constexpr int kSubBuckets = 1 << kSubBits;
  static constexpr int kBuckets = (64 - kSubBits + 1) * kSubBuckets;
  static int bucketOf(uint64_t value);
  static uint64_t upperBound(int bucket);

  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace epoll_echo::bench
