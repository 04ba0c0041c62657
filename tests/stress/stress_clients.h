// stress_clients.h — client behaviours the stress suite throws at the server: randomly paced echo
// streams checked byte for byte, writers that never read, resets, half-closes, connect-and-close
// floods, and a ping-pong latency probe. All non-blocking, all bounded by a deadline.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "support/echo_traffic.h"
#include "support/net.h"

namespace epoll_echo::test {

// Runs the jobs like runEchoJobs(), but each send and each recv uses a random size
// (1 byte .. 256 KiB, log-uniform) and reads are randomly held back for up to a few ms, so the
// server sees every segmentation and pacing. Seeded: a failure replays. "" or the first failure.
std::string runRandomEchoJobs(std::vector<EchoJob>& jobs, std::uint64_t seed, Deadline deadline);

// Sends pattern bytes (socket i: stream `firstSeed + i`) on non-blocking sockets until none of
// them accepts more for `stallFor` (the server stopped reading them and every buffer on the way is
// full) or each sent `limitEach`. Fills sent[i]; returns "" or a send error.
std::string sendUntilStalled(const std::vector<int>& fds, std::uint64_t firstSeed, std::uint64_t limitEach,
                             std::chrono::milliseconds stallFor, Deadline deadline, std::vector<std::uint64_t>& sent);

// The abuse mix of the hostile-clients case, `rounds` times each: a reset after sending (SO_LINGER
// 0), a half-close that must get its whole echo then EOF, a connect-and-close, and a client that
// vanishes with a reset while the server still has bytes for it. "" or the first failure.
std::string runHostileMix(std::uint16_t port, int rounds, std::uint64_t seed, Deadline deadline);

// Round-trip times in microseconds of `count` 64-byte messages on a connected socket, stopping
// early at the deadline; an empty vector on failure (`error` says why).
std::vector<double> pingPongMicros(int fd, int count, Deadline deadline, std::string* error);

// The p-th percentile (0..100) of `values` (sorted in place); 0 for an empty set.
double percentile(std::vector<double>& values, double p);

}  // namespace epoll_echo::test
