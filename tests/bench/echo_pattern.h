// echo_pattern.h — the deterministic byte stream each connection sends: byte N of connection C is
// table[(N + C * kStride) mod 64 KiB]. The table is stored twice over, so any 64 KiB slice starting
// inside it is contiguous: sending and verifying are plain pointer + memcmp, no per-byte work.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace epoll_echo::bench {

class EchoPattern {
 public:
  static constexpr size_t kPeriod = 64 * 1024;  // also the longest slice slice() can give

  EchoPattern();
  // Bytes [offset, offset + length) of stream `stream`; length must be <= kPeriod.
  const char* slice(uint64_t stream, uint64_t offset) const {
    return table_.data() + ((offset + stream * kStride) & (kPeriod - 1));
  }
  // True when `data` equals the stream's bytes at `offset` (any length).
  bool matches(uint64_t stream, uint64_t offset, const char* data, size_t length) const;

 private:
  static constexpr uint64_t kStride = 7919;  // prime: neighbouring connections differ
  std::vector<char> table_;
};

}  // namespace epoll_echo::bench
