// Unit tests of OutputBuffer: order is kept, memory is held only while bytes are pending.
#include "output_buffer.h"

#include <gtest/gtest.h>

#include <string>

namespace epoll_echo {
namespace {

std::string contents(const OutputBuffer& buffer) { return std::string(buffer.data(), buffer.size()); }

TEST(OutputBufferTest, StartsEmptyWithoutMemory) {
  OutputBuffer buffer;
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(buffer.capacity(), 0u);
}

TEST(OutputBufferTest, KeepsBytesInOrderAcrossAppendsAndConsumes) {
  OutputBuffer buffer;
  buffer.append("hello ", 6);
  buffer.append("world", 5);
  EXPECT_EQ(contents(buffer), "hello world");
  buffer.consume(6);
  EXPECT_EQ(contents(buffer), "world");
  buffer.append("!", 1);
  EXPECT_EQ(contents(buffer), "world!");
}

TEST(OutputBufferTest, ReleasesMemoryWhenDrained) {
  OutputBuffer buffer;
  buffer.append("abc", 3);
  EXPECT_GT(buffer.capacity(), 0u);
  buffer.consume(3);
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(buffer.capacity(), 0u);
}

TEST(OutputBufferTest, ConsumingMoreThanPendingEmptiesIt) {
  OutputBuffer buffer;
  buffer.append("abc", 3);
  buffer.consume(10);
  EXPECT_TRUE(buffer.empty());
}

TEST(OutputBufferTest, GrowsPastItsInitialCapacityKeepingEveryByte) {
  OutputBuffer buffer;
  std::string expected;
  for (int i = 0; i < 1000; ++i) {
    const std::string piece = std::to_string(i) + ",";
    buffer.append(piece.data(), piece.size());
    expected += piece;
    if (i % 7 == 0) {
      buffer.consume(2);
      expected.erase(0, 2);
    }
  }
  EXPECT_EQ(contents(buffer), expected);
}

TEST(OutputBufferTest, CompactsInsteadOfGrowingWhenMostIsSent) {
  OutputBuffer buffer;
  const std::string block(10000, 'x');
  buffer.append(block.data(), block.size());
  const size_t capacity = buffer.capacity();
  buffer.consume(9000);
  buffer.append(block.data(), 8000);
  EXPECT_EQ(buffer.capacity(), capacity);
  EXPECT_EQ(buffer.size(), 9000u);
}

TEST(OutputBufferTest, ClearDropsEverything) {
  OutputBuffer buffer;
  buffer.append("abc", 3);
  buffer.clear();
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(buffer.capacity(), 0u);
}

}  // namespace
}  // namespace epoll_echo
