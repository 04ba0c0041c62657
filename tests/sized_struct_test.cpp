// Unit tests of the size-first struct rules (copy_struct_from_user semantics).
#include "sized_struct.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace epoll_echo {
namespace {

struct Sample {
  uint32_t size;
  uint32_t a;
  uint64_t b;
};

}  // namespace

template <>
struct FieldEnds<Sample> {
  static constexpr uint32_t values[] = {4, 8, 16};
};

namespace {

TEST(SizedStructTest, ReadsAnOlderSmallerStructWithMissingFieldsAsZero) {
  Sample caller{};
  caller.size = 8;
  caller.a = 7;
  caller.b = 99;  // beyond the caller's size: must not be read
  Sample out{};
  ASSERT_EQ(copyStructIn(&caller, out), EPOLL_ECHO_OK);
  EXPECT_EQ(out.a, 7u);
  EXPECT_EQ(out.b, 0u);
}

TEST(SizedStructTest, AcceptsALargerStructWithAZeroTail) {
  std::vector<unsigned char> bytes(sizeof(Sample) + 32, 0);
  const uint32_t size = static_cast<uint32_t>(bytes.size());
  std::memcpy(bytes.data(), &size, sizeof size);
  bytes[4] = 5;
  Sample out{};
  ASSERT_EQ(copyStructIn(bytes.data(), out), EPOLL_ECHO_OK);
  EXPECT_EQ(out.a, 5u);
}

TEST(SizedStructTest, RefusesALargerStructWithANonZeroTail) {
  std::vector<unsigned char> bytes(sizeof(Sample) + 32, 0);
  const uint32_t size = static_cast<uint32_t>(bytes.size());
  std::memcpy(bytes.data(), &size, sizeof size);
  bytes.back() = 1;
  Sample out{};
  EXPECT_EQ(copyStructIn(bytes.data(), out), EPOLL_ECHO_ESIZE);
}

TEST(SizedStructTest, RefusesSizesOutsideTheAllowedRange) {
  // A buffer as large as the largest refused size the test can back, so a wrong acceptance
  // would show as a wrong code rather than as an out-of-bounds access.
  std::vector<unsigned char> bytes(kMaxStructSize + 16, 0);
  Sample out{};
  for (uint32_t size : {0u, 4u, 7u, kMaxStructSize + 1, 0xffffffffu}) {
    std::memcpy(bytes.data(), &size, sizeof size);
    EXPECT_EQ(copyStructIn(bytes.data(), out), EPOLL_ECHO_ESIZE) << size;
    EXPECT_EQ(copyStructOut(out, bytes.data()), EPOLL_ECHO_ESIZE) << size;
  }
}

// An older header's struct always ends where one of its fields ends; 12 would be half of `b`.
TEST(SizedStructTest, RefusesASizeThatEndsInsideAField) {
  Sample value{sizeof(Sample), 1, 2};
  for (uint32_t size : {9u, 10u, 12u, 15u}) {
    Sample caller = value;
    caller.size = size;
    Sample out{};
    EXPECT_EQ(copyStructIn(&caller, out), EPOLL_ECHO_ESIZE) << size;
    EXPECT_EQ(copyStructOut(value, &caller), EPOLL_ECHO_ESIZE) << size;
  }
  for (uint32_t size : {8u, 16u}) {
    Sample caller = value;
    caller.size = size;
    Sample out{};
    EXPECT_EQ(copyStructIn(&caller, out), EPOLL_ECHO_OK) << size;
  }
}

TEST(SizedStructTest, WritesOnlyUpToTheCallersSize) {
  unsigned char bytes[sizeof(Sample) + 8];
  std::memset(bytes, 0xab, sizeof bytes);
  const uint32_t callerSize = 8;
  std::memcpy(bytes, &callerSize, sizeof callerSize);
  Sample value{sizeof(Sample), 42, 43};
  ASSERT_EQ(copyStructOut(value, bytes), EPOLL_ECHO_OK);
  uint32_t written = 0;
  std::memcpy(&written, bytes, sizeof written);
  EXPECT_EQ(written, 8u);
  EXPECT_EQ(bytes[4], 42);
  EXPECT_EQ(bytes[8], 0xab);  // untouched beyond the caller's struct
}

TEST(SizedStructTest, ZeroesFieldsTheCallerHasButThePluginDoesNotKnow) {
  unsigned char bytes[sizeof(Sample) + 8];
  std::memset(bytes, 0xab, sizeof bytes);
  const uint32_t callerSize = sizeof bytes;
  std::memcpy(bytes, &callerSize, sizeof callerSize);
  Sample value{sizeof(Sample), 1, 2};
  ASSERT_EQ(copyStructOut(value, bytes), EPOLL_ECHO_OK);
  uint32_t written = 0;
  std::memcpy(&written, bytes, sizeof written);
  EXPECT_EQ(written, sizeof(Sample));
  for (size_t i = sizeof(Sample); i < sizeof bytes; ++i) EXPECT_EQ(bytes[i], 0) << i;
}

}  // namespace
}  // namespace epoll_echo
