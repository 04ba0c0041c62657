// OutputBuffer: the bytes of one connection that the kernel has not accepted yet.
//
//   +-------------------+------------------+------------------+
//   |  already sent     |  pending bytes   |   free space     |
//   +-------------------+------------------+------------------+
//   0               begin_             end_             capacity_
//
// It owns memory only while bytes are pending, so an idle connection costs nothing here.
#pragma once

#include <cstddef>
#include <memory>

namespace epoll_echo {

// Owned by one Connection, touched only by its worker thread.
class OutputBuffer {
 public:
  bool empty() const noexcept { return begin_ == end_; }
  size_t size() const noexcept { return end_ - begin_; }
  const char* data() const noexcept { return storage_.get() + begin_; }
  size_t capacity() const noexcept { return capacity_; }

  // Appends bytes after the pending ones. Throws std::bad_alloc; the buffer is then unchanged.
  void append(const char* bytes, size_t count);
  // Drops `count` bytes from the front (count <= size()); frees the memory when empty.
  void consume(size_t count) noexcept;
  // Takes the pending bytes out (for a hand-over), leaving the buffer empty and memoryless.
  void clear() noexcept;

 private:
  void makeRoom(size_t count);

  std::unique_ptr<char[]> storage_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace epoll_echo
