// api_header_test.cpp — the ABI header compiles as strict C99/C11/C++11/C++17 (the probes are built
// with -pedantic -Werror, see CMakeLists.txt) and every language sees one documented layout.
#include <epoll_echo.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <set>
#include <type_traits>
#include <vector>

#include "api_header_check.h"

namespace epoll_echo::test {
namespace {

using Probe = size_t (*)(size_t*, size_t);

std::vector<size_t> runProbe(Probe probe) {
  std::vector<size_t> values(EPOLL_ECHO_LAYOUT_CAPACITY);
  size_t count = probe(values.data(), values.size());
  EXPECT_LE(count, values.size());
  values.resize(count < values.size() ? count : values.size());
  return values;
}

// The layout as documented: fixed-width fields, explicit padding, identical on every compiler.
// Pairs are (offset, size) in the order api_header_check.inc writes them.
// clang-format off
const std::vector<size_t> kDocumentedLayout = {
    116,                                                     // config
    0, 4,  4, 4,  8, 4,  12, 4,  16, 4,  20, 4,  24, 4,  28, 4,  32, 64,
    96, 4,  100, 4,                                          // ABI 1.3: max_connections, idle_timeout_ms
    104, 4,  108, 4,                                         // ABI 1.4: threading, backend
    112, 4,                                                  // ABI 1.5: balance
    120,                                                     // counters
    0, 72, 80, 88, 96,
    104, 112,                                                // ABI 1.3: accept_cap_pauses, idle_closed
    160,                                                     // stats
    0, 4,  4, 4,  8, 4,  12, 4,  16, 120,
    136, 4,  140, 4,                                         // ABI 1.4: backend, reserved1
    144, 16,                                                 // ABI 1.5: uring
    144,                                                     // worker stats
    0, 4,  4, 4,  8, 120,
    128, 16,                                                 // ABI 1.5: uring
    16, 0, 8,                                                // uring counters (ABI 1.5)
    24,                                                      // connection state
    0, 4,  4, 4,  8, 4,  12, 4,  16, 8,
    4, EPOLL_ECHO_ABI_PACK(EPOLL_ECHO_ABI_MAJOR, EPOLL_ECHO_ABI_MINOR)};
// clang-format on

TEST(ApiHeaderTest, CProbesSeeTheDocumentedLayout) {
  EXPECT_EQ(runProbe(epollEchoLayoutC99), kDocumentedLayout);
  EXPECT_EQ(runProbe(epollEchoLayoutC11), kDocumentedLayout);
}

TEST(ApiHeaderTest, CxxProbesSeeTheDocumentedLayout) {
  EXPECT_EQ(runProbe(epollEchoLayoutCxx11), kDocumentedLayout);
  EXPECT_EQ(runProbe(epollEchoLayoutCxx17), kDocumentedLayout);
}

// has_unique_object_representations is false for a type with any padding bit: the structs must
// have none, so that the zero-tail rule and memcmp-style comparisons are meaningful.
TEST(ApiHeaderTest, StructsHaveNoImplicitPadding) {
  EXPECT_TRUE(std::has_unique_object_representations_v<epoll_echo_config_t>);
  EXPECT_TRUE(std::has_unique_object_representations_v<epoll_echo_counters_t>);
  EXPECT_TRUE(std::has_unique_object_representations_v<epoll_echo_stats_t>);
  EXPECT_TRUE(std::has_unique_object_representations_v<epoll_echo_worker_stats_t>);
  EXPECT_TRUE(std::has_unique_object_representations_v<epoll_echo_connection_state_t>);
}

TEST(ApiHeaderTest, SizeFieldComesFirstAndIsUint32) {
  EXPECT_EQ(offsetof(epoll_echo_config_t, size), 0u);
  EXPECT_EQ(offsetof(epoll_echo_stats_t, size), 0u);
  EXPECT_EQ(offsetof(epoll_echo_worker_stats_t, size), 0u);
  EXPECT_EQ(offsetof(epoll_echo_connection_state_t, size), 0u);
  EXPECT_TRUE((std::is_same_v<decltype(epoll_echo_config_t::size), uint32_t>));
  EXPECT_TRUE((std::is_same_v<decltype(epoll_echo_stats_t::size), uint32_t>));
  EXPECT_TRUE((std::is_same_v<decltype(epoll_echo_worker_stats_t::size), uint32_t>));
  EXPECT_TRUE((std::is_same_v<decltype(epoll_echo_connection_state_t::size), uint32_t>));
}

TEST(ApiHeaderTest, StructsAreStandardLayoutAndTrivial) {
  EXPECT_TRUE(std::is_standard_layout_v<epoll_echo_config_t>);
  EXPECT_TRUE(std::is_trivially_copyable_v<epoll_echo_config_t>);
  EXPECT_TRUE(std::is_standard_layout_v<epoll_echo_stats_t>);
  EXPECT_TRUE(std::is_trivially_copyable_v<epoll_echo_stats_t>);
  EXPECT_TRUE(std::is_standard_layout_v<epoll_echo_worker_stats_t>);
  EXPECT_TRUE(std::is_trivially_copyable_v<epoll_echo_worker_stats_t>);
}

// The codes are the X-macro's: 0 for success, then dense negatives, each value used once.
TEST(ApiHeaderTest, ErrorTableIsZeroThenDenseNegatives) {
  std::vector<int> codes;
#define EPOLL_ECHO_COLLECT(name, value, text) codes.push_back(value);
  EPOLL_ECHO_ERROR_TABLE(EPOLL_ECHO_COLLECT)
#undef EPOLL_ECHO_COLLECT
  ASSERT_FALSE(codes.empty());
  EXPECT_EQ(std::set<int>(codes.begin(), codes.end()).size(), codes.size());
  for (size_t i = 0; i < codes.size(); ++i) EXPECT_EQ(codes[i], -static_cast<int>(i));
  EXPECT_EQ(EPOLL_ECHO_OK, 0);
}

TEST(ApiHeaderTest, VersionMacrosRoundTrip) {
  uint32_t packed = EPOLL_ECHO_ABI_PACK(EPOLL_ECHO_ABI_MAJOR, EPOLL_ECHO_ABI_MINOR);
  EXPECT_EQ(EPOLL_ECHO_ABI_MAJOR_OF(packed), static_cast<uint32_t>(EPOLL_ECHO_ABI_MAJOR));
  EXPECT_EQ(EPOLL_ECHO_ABI_MINOR_OF(packed), static_cast<uint32_t>(EPOLL_ECHO_ABI_MINOR));
  EXPECT_EQ(EPOLL_ECHO_ABI_MAJOR_OF(EPOLL_ECHO_ABI_PACK(3, 0x1ffff)), 3u);  // minor is masked
  EXPECT_EQ(EPOLL_ECHO_ABI_MINOR_OF(EPOLL_ECHO_ABI_PACK(3, 0x1ffff)), 0xffffu);
}

}  // namespace
}  // namespace epoll_echo::test
