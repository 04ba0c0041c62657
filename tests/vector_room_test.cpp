// Unit tests of reserveRoom: room reserved one element ahead, as a worker does for each
// connection it registers, must not reallocate at every step. Counts reallocations, not time.
#include "vector_room.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <vector>

namespace epoll_echo {
namespace {

// Reallocations while `count` elements are added one at a time, each after reserving room for it.
std::size_t reallocationsWhileGrowingTo(std::size_t count) {
  std::vector<int> items;
  std::size_t reallocations = 0;
  for (std::size_t added = 0; added < count; ++added) {
    const std::size_t capacity = items.capacity();
    reserveRoom(items, items.size() + 1);
    if (items.capacity() != capacity) ++reallocations;
    EXPECT_GE(items.capacity(), items.size() + 1);
    items.push_back(static_cast<int>(added));
  }
  return reallocations;
}

TEST(VectorRoomTest, GrowsGeometricallyOneElementAtATime) {
  // Doubling from 1 reaches 4096 in 13 steps; exact reservations would take 4096.
  EXPECT_LE(reallocationsWhileGrowingTo(4096), 13u);
}

TEST(VectorRoomTest, LeavesEnoughRoomAlone) {
  std::vector<int> items;
  items.reserve(10);
  const int* storage = items.data();
  reserveRoom(items, 10);
  reserveRoom(items, 3);
  EXPECT_EQ(items.capacity(), 10u);
  EXPECT_EQ(items.data(), storage);
}

TEST(VectorRoomTest, ReservesAtLeastTheCountAskedFor) {
  std::vector<int> items;
  items.reserve(4);
  reserveRoom(items, 100);  // more than twice the capacity: the count itself
  EXPECT_GE(items.capacity(), 100u);
  reserveRoom(items, items.capacity() + 1);
  EXPECT_GE(items.capacity(), 200u);
}

}  // namespace
}  // namespace epoll_echo
