// fairness.cpp — Jain's index in doubles: 100,000 connections of 10^9 round trips still fit
// (sum x^2 ~ 10^23, well inside a double's range; relative error ~1e-16 per term).
#include "fairness.h"

#include <algorithm>

namespace epoll_echo::bench {

Fairness computeFairness(const std::vector<uint64_t>& roundTrips) {
  Fairness result;
  if (roundTrips.empty()) return result;
  const auto [least, busiest] = std::minmax_element(roundTrips.begin(), roundTrips.end());
  result.least = *least;
  result.busiest = *busiest;
  double sum = 0;
  double sumOfSquares = 0;
  for (uint64_t count : roundTrips) {
    const auto x = static_cast<double>(count);
    sum += x;
    sumOfSquares += x * x;
  }
  if (sumOfSquares > 0) result.jainIndex = sum * sum / (static_cast<double>(roundTrips.size()) * sumOfSquares);
  if (result.least > 0) {
    result.spreadPercent = (static_cast<double>(result.busiest) / static_cast<double>(result.least) - 1) * 100;
  } else {
    result.starved = result.busiest > 0;
  }
  return result;
}

}  // namespace epoll_echo::bench
