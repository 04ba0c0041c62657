// bench_report.h — the figures of one run, printed as a human table and as one JSON line.
#pragma once

#include <cstdint>
#include <string>

#include "bench_options.h"
#include "fairness.h"
#include "latency_histogram.h"
#include "process_sampler.h"

namespace epoll_echo::bench {

struct BenchReport {
  double windowSeconds = 0;
  uint64_t messages = 0;
  uint64_t bytesVerified = 0;
  uint64_t mismatches = 0;
  uint64_t errors = 0;
  uint64_t scheduledSends = 0;  // open loop: sends due inside the window
  uint64_t lateSends = 0;       // of those, due while --depth were in flight, or never sent
  Fairness fairness;            // echo mode: round trips per connection inside the window
  LatencyHistogram latency;
  LatencyHistogram sendLag;     // open loop: the generator's own delay (ThreadResult::sendLag)
  ProcessSample serverBefore, serverAfter;
  ProcessSample clientBefore, clientAfter;
  std::string firstError;
  int64_t oldestUnanswered = 0;  // ns; echo mode: see ThreadResult
  // Idle mode: connections held open (echo verified) when the RSS was sampled again, and how
  // long the server's RSS took to settle (rssStable = false: the deadline passed first).
  uint64_t idleConnections = 0;
  bool rssStable = false;
  double rssSettleSeconds = 0;
};

void printTable(const BenchOptions& options, const BenchReport& report);
void printJson(const BenchOptions& options, const BenchReport& report);

}  // namespace epoll_echo::bench
