// fairness.h — how evenly a server served its connections: the busiest and the least served
// connection's round trips, their spread, and Jain's fairness index over all of them.
#pragma once

#include <cstdint>
#include <vector>

namespace epoll_echo::bench {

struct Fairness {
  uint64_t least = 0;        // round trips of the least served connection
  uint64_t busiest = 0;      // round trips of the busiest connection
  double spreadPercent = 0;  // (busiest / least - 1) * 100; 0 when least is 0
  double jainIndex = 0;      // (sum x)^2 / (n * sum x^2): 1 = perfectly even, 1/n = one connection got all
  bool starved = false;      // some connection completed nothing while others did: spread is infinite
};

// Over per-connection round-trip counts; an empty list or all zeros gives jainIndex 0.
Fairness computeFairness(const std::vector<uint64_t>& roundTrips);

}  // namespace epoll_echo::bench
