// echo_pattern.cpp — fills the pattern table from a fixed-seed xorshift generator, so every run
// and every build sends the same bytes.
#include "echo_pattern.h"

#include <algorithm>
#include <cstring>

namespace epoll_echo::bench {

EchoPattern::EchoPattern() : table_(2 * kPeriod) {
  uint64_t state = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i < kPeriod; ++i) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    table_[i] = static_cast<char>(state >> 56);
  }
  std::copy(table_.begin(), table_.begin() + kPeriod, table_.begin() + kPeriod);
}

bool EchoPattern::matches(uint64_t stream, uint64_t offset, const char* data, size_t length) const {
  while (length > 0) {
    const size_t chunk = std::min(length, kPeriod);
    if (std::memcmp(data, slice(stream, offset), chunk) != 0) return false;
    data += chunk;
    offset += chunk;
    length -= chunk;
  }
  return true;
}

}  // namespace epoll_echo::bench
