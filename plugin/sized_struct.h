// Copying size-first structs across the C boundary with the Linux copy_struct_from_user rule:
// read min(caller size, own size), missing fields are zero, a longer struct's tail must be zero.
// A size that ends inside one of our fields is refused: no header ever declared such a struct.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "epoll_echo.h"

namespace epoll_echo {

// Sizes outside this range are refused before anything is read: below it there is no room for
// the size field and its padding, above it a garbage size would make us read far past the struct.
inline constexpr uint32_t kMinStructSize = 8;
inline constexpr uint32_t kMaxStructSize = 4096;

// The offsets at which the scalar fields of a boundary struct end, in order (char arrays count as
// one field). An older caller's struct always ends at one of them.
template <class T>
struct FieldEnds;

#define EPOLL_ECHO_FIELD_END(type, field) static_cast<uint32_t>(offsetof(type, field) + sizeof(type::field))
#define EPOLL_ECHO_COUNTER_END(field, kind, minor) EPOLL_ECHO_FIELD_END(epoll_echo_counters_t, field),

#define EPOLL_ECHO_URING_COUNTER_END(field, kind, minor) EPOLL_ECHO_FIELD_END(epoll_echo_uring_counters_t, field),

// Where each counter ends inside epoll_echo_counters_t, from EPOLL_ECHO_COUNTER_TABLE.
inline constexpr uint32_t kCounterEnds[] = {EPOLL_ECHO_COUNTER_TABLE(EPOLL_ECHO_COUNTER_END)};
// The same inside epoll_echo_uring_counters_t, from EPOLL_ECHO_URING_COUNTER_TABLE.
inline constexpr uint32_t kUringCounterEnds[] = {EPOLL_ECHO_URING_COUNTER_TABLE(EPOLL_ECHO_URING_COUNTER_END)};

// A counter table lists every field of its struct in declaration order: each entry ends one
// uint64_t after the previous, and the last at the end of the struct.
template <typename Counters, size_t Count>
constexpr bool counterTableMatches(const uint32_t (&ends)[Count]) {
  uint32_t expected = 0;
  for (uint32_t end : ends) {
    expected += sizeof(uint64_t);
    if (end != expected) return false;
  }
  return expected == sizeof(Counters);
}
static_assert(counterTableMatches<epoll_echo_counters_t>(kCounterEnds),
              "EPOLL_ECHO_COUNTER_TABLE must list epoll_echo_counters_t's fields in order");
static_assert(counterTableMatches<epoll_echo_uring_counters_t>(kUringCounterEnds),
              "EPOLL_ECHO_URING_COUNTER_TABLE must list epoll_echo_uring_counters_t's fields in order");

// The ends of the io_uring counters (the last field of both stats structs) at `offset`.
constexpr auto uringCounterEndsAt(size_t offset) {
  std::array<uint32_t, std::size(kUringCounterEnds)> ends{};
  for (size_t i = 0; i < ends.size(); ++i) ends[i] = static_cast<uint32_t>(offset) + kUringCounterEnds[i];
  return ends;
}

// Two lists of field ends, one after the other.
template <size_t N, size_t M>
constexpr auto joinEnds(const std::array<uint32_t, N>& head, const std::array<uint32_t, M>& tail) {
  std::array<uint32_t, N + M> ends{};
  for (size_t i = 0; i < N; ++i) ends[i] = head[i];
  for (size_t i = 0; i < M; ++i) ends[N + i] = tail[i];
  return ends;
}

// A struct's own field ends (`head`) followed by those of its counters at `countersOffset`, then
// those of the fields after the counters (`tail`).
template <size_t N, size_t M = 0>
constexpr auto withCounterEnds(const uint32_t (&head)[N], size_t countersOffset,
                               const std::array<uint32_t, M>& tail = {}) {
  std::array<uint32_t, N + std::size(kCounterEnds) + M> ends{};
  for (size_t i = 0; i < N; ++i) ends[i] = head[i];
  for (size_t i = 0; i < std::size(kCounterEnds); ++i) {
    ends[N + i] = static_cast<uint32_t>(countersOffset) + kCounterEnds[i];
  }
  for (size_t i = 0; i < M; ++i) ends[N + std::size(kCounterEnds) + i] = tail[i];
  return ends;
}

template <>
struct FieldEnds<epoll_echo_config_t> {
  using T = epoll_echo_config_t;
  static constexpr uint32_t values[] = {EPOLL_ECHO_FIELD_END(T, size),
                                        EPOLL_ECHO_FIELD_END(T, port),
                                        EPOLL_ECHO_FIELD_END(T, listeners),
                                        EPOLL_ECHO_FIELD_END(T, backlog),
                                        EPOLL_ECHO_FIELD_END(T, high_water_bytes),
                                        EPOLL_ECHO_FIELD_END(T, read_budget_bytes),
                                        EPOLL_ECHO_FIELD_END(T, accept_budget),
                                        EPOLL_ECHO_FIELD_END(T, reserved0),
                                        EPOLL_ECHO_FIELD_END(T, bind_address),
                                        EPOLL_ECHO_FIELD_END(T, max_connections),
                                        EPOLL_ECHO_FIELD_END(T, idle_timeout_ms),
                                        EPOLL_ECHO_FIELD_END(T, threading),
                                        EPOLL_ECHO_FIELD_END(T, backend),
                                        EPOLL_ECHO_FIELD_END(T, balance)};
};

template <>
struct FieldEnds<epoll_echo_stats_t> {
  using T = epoll_echo_stats_t;
  static constexpr auto values = joinEnds(
      withCounterEnds({EPOLL_ECHO_FIELD_END(T, size), EPOLL_ECHO_FIELD_END(T, state), EPOLL_ECHO_FIELD_END(T, port),
                       EPOLL_ECHO_FIELD_END(T, listeners)},
                      offsetof(T, total),
                      std::array<uint32_t, 2>{EPOLL_ECHO_FIELD_END(T, backend), EPOLL_ECHO_FIELD_END(T, reserved1)}),
      uringCounterEndsAt(offsetof(T, uring)));
};

template <>
struct FieldEnds<epoll_echo_worker_stats_t> {
  using T = epoll_echo_worker_stats_t;
  static constexpr auto values = withCounterEnds({EPOLL_ECHO_FIELD_END(T, size), EPOLL_ECHO_FIELD_END(T, index)},
                                                 offsetof(T, counters), uringCounterEndsAt(offsetof(T, uring)));
};

template <>
struct FieldEnds<epoll_echo_connection_state_t> {
  using T = epoll_echo_connection_state_t;
  static constexpr uint32_t values[] = {EPOLL_ECHO_FIELD_END(T, size), EPOLL_ECHO_FIELD_END(T, fd),
                                        EPOLL_ECHO_FIELD_END(T, worker), EPOLL_ECHO_FIELD_END(T, flags),
                                        EPOLL_ECHO_FIELD_END(T, pending_bytes)};
};

#undef EPOLL_ECHO_URING_COUNTER_END
#undef EPOLL_ECHO_COUNTER_END
#undef EPOLL_ECHO_FIELD_END

// True for a size in [kMinStructSize, kMaxStructSize] that does not end inside a field of T (a
// size beyond T's own may end anywhere: those fields are a newer header's).
template <class T>
bool structSizeValid(uint32_t size) {
  if (size < kMinStructSize || size > kMaxStructSize) return false;
  if (size >= sizeof(T)) return true;
  const auto& ends = FieldEnds<T>::values;
  static_assert(ends[std::size(ends) - 1] == sizeof(T), "FieldEnds must list every field of the struct");
  return std::binary_search(std::begin(ends), std::end(ends), size);
}

// The caller's size field (the first 4 bytes of any boundary struct).
inline uint32_t callerStructSize(const void* caller) {
  uint32_t size = 0;
  std::memcpy(&size, caller, sizeof size);
  return size;
}

// "stats size 10 is invalid: ..." for a size structSizeValid<T> refused.
template <class T>
std::string describeBadSize(const char* what, uint32_t size) {
  return std::string(what) + " size " + std::to_string(size) + " is invalid: it must be " +
         std::to_string(kMinStructSize) + ".." + std::to_string(kMaxStructSize) +
         ", end on a field boundary, and a struct larger than this plugin's " + std::to_string(sizeof(T)) +
         " bytes needs an all-zero tail";
}

// Reads a caller's struct into `out`. Returns 0 or EPOLL_ECHO_ESIZE.
template <class T>
int copyStructIn(const void* source, T& out) {
  static_assert(std::is_trivially_copyable_v<T>);
  const uint32_t callerSize = callerStructSize(source);
  if (!structSizeValid<T>(callerSize)) return EPOLL_ECHO_ESIZE;
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
  const uint32_t callerSize = callerStructSize(destination);
  if (!structSizeValid<T>(callerSize)) return EPOLL_ECHO_ESIZE;
  const uint32_t written = static_cast<uint32_t>(std::min<size_t>(callerSize, sizeof(T)));
  auto* bytes = static_cast<unsigned char*>(destination);
  std::memcpy(bytes, &value, written);
  if (callerSize > written) std::memset(bytes + written, 0, callerSize - written);
  std::memcpy(bytes, &written, sizeof written);
  return EPOLL_ECHO_OK;
}

}  // namespace epoll_echo
