// Copying size-first structs across the C boundary with the Linux copy_struct_from_user rule:
// read min(caller size, own size), missing fields are zero, a longer struct's tail must be zero.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "epoll_echo.h"

namespace epoll_echo {

// Sizes outside this range are refused before anything is read: below it there is no room for
// the size field and its padding, above it a garbage size would make us read far past the struct.
inline constexpr uint32_t kMinStructSize = 8;
inline constexpr uint32_t kMaxStructSize = 4096;

inline bool structSizeValid(uint32_t size) { return size >= kMinStructSize && size <= kMaxStructSize; }

// Reads a caller's struct into `out`. Returns 0 or EPOLL_ECHO_ESIZE.
template <class T>
int copyStructIn(const void* source, T& out) {
  static_assert(std::is_trivially_copyable_v<T>);
  uint32_t callerSize = 0;
  std::memcpy(&callerSize, source, sizeof callerSize);
  if (!structSizeValid(callerSize)) return EPOLL_ECHO_ESIZE;
  const auto* bytes = static_cast<const unsigned char*>(source);
  for (uint32_t i = sizeof(T); i < callerSize; ++i) {
    if (bytes[i] != 0) return EPOLL_ECHO_ESIZE;
  }
  std::memset(&out, 0, sizeof out);
  std::memcpy(&out, source, std::min<size_t>(callerSize, sizeof(T)));
  return EPOLL_ECHO_OK;
}

// Writes `value` into a caller's struct up to the caller's size, zeroes fields the plugin does not
// know, and sets the size field to the number of bytes the plugin filled. Returns 0 or ESIZE.
template <class T>
int copyStructOut(const T& value, void* destination) {
  static_assert(std::is_trivially_copyable_v<T>);
  uint32_t callerSize = 0;
  std::memcpy(&callerSize, destination, sizeof callerSize);
  if (!structSizeValid(callerSize)) return EPOLL_ECHO_ESIZE;
  const uint32_t written = static_cast<uint32_t>(std::min<size_t>(callerSize, sizeof(T)));
  auto* bytes = static_cast<unsigned char*>(destination);
  std::memcpy(bytes, &value, written);
  if (callerSize > written) std::memset(bytes + written, 0, callerSize - written);
  std::memcpy(bytes, &written, sizeof written);
  return EPOLL_ECHO_OK;
}

}  // namespace epoll_echo
