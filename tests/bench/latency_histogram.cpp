// latency_histogram.cpp — bucket arithmetic of the log-linear histogram: values below 64 have a
// bucket each; above, each power of two is split in 64 equal sub-buckets.
#include "latency_histogram.h"

#include <algorithm>
#include <cmath>

namespace epoll_echo::bench {

int LatencyHistogram::bucketOf(uint64_t value) {
  if (value < kSubBuckets) return static_cast<int>(value);
  const int highBit = 63 - __builtin_clzll(value);  // >= kSubBits
  const int shift = highBit - kSubBits;
  const int sub = static_cast<int>((value >> shift) & (kSubBuckets - 1));
  return (shift + 1) * kSubBuckets + sub;
}

uint64_t LatencyHistogram::upperBound(int bucket) {
  if (bucket < kSubBuckets) return static_cast<uint64_t>(bucket);
  const int shift = bucket / kSubBuckets - 1;
  const uint64_t sub = static_cast<uint64_t>(bucket % kSubBuckets);
  return ((uint64_t{kSubBuckets} + sub + 1) << shift) - 1;
}

void LatencyHistogram::record(uint64_t nanoseconds) {
  ++buckets_[static_cast<size_t>(bucketOf(nanoseconds))];
  ++count_;
  sum_ += nanoseconds;
  min_ = std::min(min_, nanoseconds);
  max_ = std::max(max_, nanoseconds);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

uint64_t LatencyHistogram::percentile(double q) const {
  if (count_ == 0) return 0;
  const auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= std::max<uint64_t>(rank, 1)) return std::min(upperBound(static_cast<int>(i)), max_);
  }
  return max_;
}

}  // namespace epoll_echo::bench
