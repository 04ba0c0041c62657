// OutputBuffer: append at the end, consume from the front, compact or grow only when needed.
#include "output_buffer.h"

#include <algorithm>
#include <cstring>

namespace epoll_echo {
namespace {

// Most partial writes leave less than one read chunk behind; start there to avoid regrowth.
constexpr size_t kInitialCapacity = 16 * 1024;

}  // namespace

void OutputBuffer::append(const char* bytes, size_t count) {
  if (count == 0) return;
  makeRoom(count);
  std::memcpy(storage_.get() + end_, bytes, count);
  end_ += count;
}

void OutputBuffer::consume(size_t count) noexcept {
  begin_ += std::min(count, size());
  if (empty()) clear();
}

void OutputBuffer::clear() noexcept {
  storage_.reset();
  capacity_ = begin_ = end_ = 0;
}

void OutputBuffer::makeRoom(size_t count) {
  if (capacity_ - end_ >= count) return;
  const size_t pending = size();
  if (capacity_ - pending >= count && begin_ >= pending) {
    // Sliding the pending bytes to the front is cheaper than a new allocation when they are
    // few compared with what has been sent already.
    std::memmove(storage_.get(), storage_.get() + begin_, pending);
  } else {
    size_t capacity = std::max(capacity_ * 2, kInitialCapacity);
    while (capacity < pending + count) capacity *= 2;
    // Not make_unique: it would zero-fill, touching every page of a buffer that is mostly
    // still empty, and each touched page counts against the connection's memory bound.
    std::unique_ptr<char[]> grown(new char[capacity]);
    if (pending > 0) std::memcpy(grown.get(), storage_.get() + begin_, pending);
    storage_ = std::move(grown);
    capacity_ = capacity;
  }
  begin_ = 0;
  end_ = pending;
}

}  // namespace epoll_echo
