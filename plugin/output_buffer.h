// OutputBuffer: the bytes of one connection that the kernel has not accepted yet.
//
//   +-------------------+------------------+------------------+
//   |  already sent     |  pending bytes   |   free space     |
//   +-------------------+------------------+------------------+
//   0               begin_             end_             capacity_
//
// The memory is an anonymous mapping of its own, grown (doubled, with a copy) up to the
// connection's limit as bytes arrive and unmapped when the last pending byte is sent. A connection
// therefore holds at most its limit rounded up to a page, and the memory goes back to the system
// at once instead of into an allocator arena that may keep it (docs/reliability.md, "The memory
// bound"). An idle connection owns no memory here.
#pragma once

#include <cstddef>

namespace epoll_echo {

// Owned by one Connection, touched only by its worker thread.
class OutputBuffer {
 public:
  // `reserveBytes`: the most the owner lets pend; the mapping grows by doubling up to it (rounded
  // up to a page), and beyond it only as far as an append needs.
  explicit OutputBuffer(size_t reserveBytes) noexcept : reserve_(reserveBytes) {}
  ~OutputBuffer() { clear(); }
  OutputBuffer(const OutputBuffer&) = delete;
  OutputBuffer& operator=(const OutputBuffer&) = delete;

  bool empty() const noexcept { return begin_ == end_; }
  size_t size() const noexcept { return end_ - begin_; }
  const char* data() const noexcept { return storage_ + begin_; }
  // Bytes mapped now (0 while empty); at most this many are resident.
  size_t capacity() const noexcept { return capacity_; }

  // Appends bytes after the pending ones. Throws std::bad_alloc; the buffer is then unchanged.
  void append(const char* bytes, size_t count);
  // Drops `count` bytes from the front (count <= size()); unmaps the memory when empty.
  void consume(size_t count) noexcept;
  // Drops every pending byte and unmaps the memory.
  void clear() noexcept;
  // Exchanges the pending bytes (and their mappings) with `other`; each keeps its own reserve.
  void swap(OutputBuffer& other) noexcept;

 private:
  void makeRoom(size_t count);
  void remap(size_t capacity);

  const size_t reserve_;
  char* storage_ = nullptr;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace epoll_echo
