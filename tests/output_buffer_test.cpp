// Unit tests of OutputBuffer: order is kept, memory is held only while bytes are pending, and
// never more of it than the reserve while the bytes fit in it.
#include "output_buffer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <random>
#include <string>

namespace epoll_echo {
namespace {

constexpr size_t kReserve = 64 * 1024;

std::string contents(const OutputBuffer& buffer) { return std::string(buffer.data(), buffer.size()); }

size_t roundUpToPage(size_t bytes) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

TEST(OutputBufferTest, StartsEmptyWithoutMemory) {
  OutputBuffer buffer(kReserve);
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(buffer.capacity(), 0u);
}

TEST(OutputBufferTest, KeepsBytesInOrderAcrossAppendsAndConsumes) {
  OutputBuffer buffer(kReserve);
  buffer.append("hello ", 6);
  buffer.append("world", 5);
  EXPECT_EQ(contents(buffer), "hello world");
  buffer.consume(6);
  EXPECT_EQ(contents(buffer), "world");
  buffer.append("!", 1);
  EXPECT_EQ(contents(buffer), "world!");
}

TEST(OutputBufferTest, ReleasesMemoryWhenDrained) {
  OutputBuffer buffer(kReserve);
  buffer.append("abc", 3);
  EXPECT_GT(buffer.capacity(), 0u);
  buffer.consume(3);
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(buffer.capacity(), 0u);
}

TEST(OutputBufferTest, ConsumingMoreThanPendingEmptiesIt) {
  OutputBuffer buffer(kReserve);
  buffer.append("abc", 3);
  buffer.consume(10);
  EXPECT_TRUE(buffer.empty());
}

TEST(OutputBufferTest, GrowsPastItsInitialCapacityKeepingEveryByte) {
  OutputBuffer buffer(kReserve);
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
  OutputBuffer buffer(kReserve);
  const std::string block(10000, 'x');
  buffer.append(block.data(), block.size());
  const size_t capacity = buffer.capacity();
  buffer.consume(9000);
  buffer.append(block.data(), 8000);
  EXPECT_EQ(buffer.capacity(), capacity);
  EXPECT_EQ(buffer.size(), 9000u);
}

TEST(OutputBufferTest, ClearDropsEverything) {
  OutputBuffer buffer(kReserve);
  buffer.append("abc", 3);
  buffer.clear();
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(buffer.capacity(), 0u);
}

// The io_uring worker sends from one buffer while it appends to another: a swap moves the bytes
// (and their memory, not copied: the data pointer moves with them) and leaves each reserve put.
TEST(OutputBufferTest, SwapExchangesBytesAndMemory) {
  OutputBuffer sending(kReserve), arriving(kReserve);
  arriving.append("first", 5);
  const char* first = arriving.data();
  sending.swap(arriving);
  EXPECT_EQ(contents(sending), "first");
  EXPECT_EQ(sending.data(), first);
  EXPECT_TRUE(arriving.empty());
  EXPECT_EQ(arriving.capacity(), 0u);
  arriving.append("second", 6);
  sending.consume(5);
  EXPECT_EQ(sending.capacity(), 0u);
  sending.swap(arriving);
  EXPECT_EQ(contents(sending), "second");
  EXPECT_TRUE(arriving.empty());
}

// The engine keeps what a connection owes at or below the reserve (its high-water mark); the
// mapping must then never exceed the reserve rounded up to a page, however the bytes come and go:
// that is the per-connection term of the documented memory bound.
TEST(OutputBufferTest, NeverMapsMoreThanTheReserveWhileTheBytesFitInIt) {
  OutputBuffer buffer(kReserve);
  std::mt19937 random(7);
  std::string expected;
  const std::string source(kReserve, 'y');
  size_t mostMapped = 0;
  for (int step = 0; step < 5000; ++step) {
    const size_t room = kReserve - buffer.size();
    const size_t append = std::uniform_int_distribution<size_t>(0, room)(random);
    buffer.append(source.data(), append);
    expected.append(source.data(), append);
    mostMapped = std::max(mostMapped, buffer.capacity());
    const size_t consume = std::uniform_int_distribution<size_t>(0, buffer.size())(random);
    buffer.consume(consume);
    expected.erase(0, consume);
  }
  EXPECT_EQ(contents(buffer), expected);
  EXPECT_EQ(mostMapped, roundUpToPage(kReserve));
}

TEST(OutputBufferTest, GrowsPastTheReserveOnlyAsFarAsAnAppendNeeds) {
  OutputBuffer buffer(kReserve);
  const std::string block(3 * kReserve + 5, 'z');
  buffer.append(block.data(), block.size());
  EXPECT_EQ(buffer.capacity(), roundUpToPage(block.size()));
  buffer.append("!", 1);
  EXPECT_EQ(contents(buffer), block + "!");
}

}  // namespace
}  // namespace epoll_echo
