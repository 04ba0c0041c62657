// OutputBuffer: append at the end, consume from the front; slide the pending bytes to the front
// when the end is reached, grow the mapping only when they do not fit.
#include "output_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <utility>

namespace epoll_echo {
namespace {

// Transparent huge pages (when the system enables them for every mapping) would make one touched
// byte of a large buffer cost 2 MiB; a buffer that could hold a huge page asks for small pages.
constexpr size_t kHugePageBytes = 2u << 20;

size_t pageBytes() noexcept {
  static const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return page;
}

size_t roundUpToPage(size_t bytes) noexcept {
  const size_t page = pageBytes();
  return (bytes + page - 1) / page * page;
}

}  // namespace

void OutputBuffer::append(const char* bytes, size_t count) {
  if (count == 0) return;
  makeRoom(count);
  std::memcpy(storage_ + end_, bytes, count);
  end_ += count;
}

void OutputBuffer::consume(size_t count) noexcept {
  begin_ += std::min(count, size());
  if (empty()) clear();
}

void OutputBuffer::clear() noexcept {
  if (storage_ != nullptr) ::munmap(storage_, capacity_);
  storage_ = nullptr;
  capacity_ = begin_ = end_ = 0;
}

void OutputBuffer::swap(OutputBuffer& other) noexcept {
  std::swap(storage_, other.storage_);
  std::swap(capacity_, other.capacity_);
  std::swap(begin_, other.begin_);
  std::swap(end_, other.end_);
}

void OutputBuffer::makeRoom(size_t count) {
  if (capacity_ - end_ >= count) return;
  const size_t pending = size();
  if (capacity_ - pending < count) {
    // Doubling keeps the remaps few; past the reserve only for what the bytes need.
    remap(roundUpToPage(std::max(pending + count, std::min(capacity_ * 2, reserve_))));
    return;
  }
  // The pages at the front were touched when the buffer filled up from 0: sliding the bytes there
  // makes nothing new resident.
  std::memmove(storage_, storage_ + begin_, pending);
  begin_ = 0;
  end_ = pending;
}

// Maps `capacity` bytes and moves the pending bytes to its front. Not mremap: sanitizers do not
// intercept it, so ThreadSanitizer kept the moved range's history and reported the next mapping
// placed there by another worker as a race. Growth is rare (a backlog doubling up to the mark),
// so copying the pending bytes costs little.
void OutputBuffer::remap(size_t capacity) {
  void* mapped = ::mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) throw std::bad_alloc();
  if (capacity >= kHugePageBytes) ::madvise(mapped, capacity, MADV_NOHUGEPAGE);
  char* grown = static_cast<char*>(mapped);
  const size_t pending = size();
  if (pending > 0) std::memcpy(grown, storage_ + begin_, pending);
  if (storage_ != nullptr) ::munmap(storage_, capacity_);
  storage_ = grown;
  capacity_ = capacity;
  begin_ = 0;
  end_ = pending;
}

}  // namespace epoll_echo
