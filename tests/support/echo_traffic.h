// echo_traffic.h — drives many echo connections at once from one thread (poll() over non-blocking
// sockets): each sends its own deterministic byte stream while reading the echo back, and every
// echoed byte is checked against the stream, so a lost, duplicated or reordered byte is reported.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "support/net.h"
#include "support/timeouts.h"

namespace epoll_echo::test {

// One connection's part of the traffic. Owns the socket.
struct EchoJob {
  UniqueFd socket;
  std::uint64_t seed = 0;   // selects the byte stream (fillPattern)
  std::uint64_t total = 0;  // bytes to send, and to expect back
  bool halfClose = false;   // shutdown(SHUT_WR) after the last byte, then expect EOF
  std::uint64_t sent = 0;   // progress, for diagnostics
  std::uint64_t received = 0;
  bool writeShut = false;
  bool sawEof = false;

  bool done() const { return received == total && (!halfClose || sawEof); }
};

// Opens `count` loopback connections to `port`, job i with seed `firstSeed + i`.
std::vector<EchoJob> makeEchoJobs(uint16_t port, std::size_t count, std::uint64_t bytesEach, bool halfClose,
                                  std::uint64_t firstSeed, Deadline deadline, std::string* error);

// Runs the jobs until all are done or the deadline passes. Returns "" on success, otherwise the
// first failure with the connection index and byte offset.
std::string runEchoJobs(std::vector<EchoJob>& jobs, Deadline deadline);

// `bytes` in a plain build, a quarter of it (at least 64 KiB) under a sanitizer.
constexpr std::uint64_t scaledForSanitizers(std::uint64_t bytes) {
  return !kSanitizedBuild ? bytes : (bytes / 4 > 65536 ? bytes / 4 : 65536);
}

}  // namespace epoll_echo::test
