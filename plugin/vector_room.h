// vector_room.h — reserving room ahead in a vector that grows one element at a time, so that
// later insertions cannot throw, without copying the whole vector at every step.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace epoll_echo {

// Makes room for at least `count` elements, growing the capacity at least twofold when it must
// grow. std::vector::reserve allocates exactly what it is asked for, so reserving size() + 1
// before each insertion would reallocate and copy every time: quadratic in the number of
// connections a worker takes at once (an upgrade adopts thousands inside the clients' pause).
// Throws std::bad_alloc, leaving the vector as it was.
template <typename T>
void reserveRoom(std::vector<T>& items, std::size_t count) {
  if (count <= items.capacity()) return;
  items.reserve(std::max(count, 2 * items.capacity()));
}

}  // namespace epoll_echo
