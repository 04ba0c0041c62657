// unique_fd.h — UniqueFd: the single owner of one file descriptor. Move-only; closes in its
// destructor. The one fd owner of the plugin, the host and the test support (internal, header-only:
// never installed, and it never crosses the C ABI).
#pragma once

#include <unistd.h>

#include <utility>

namespace epoll_echo {

// Owns one fd. Not thread-safe; the owner decides which thread touches it.
class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }

  int release() noexcept { return std::exchange(fd_, -1); }

  // Linux releases the descriptor even when close() fails with EINTR, so retrying could close
  // a descriptor another thread has just been given: close once, never retry.
  void reset(int fd = -1) noexcept {
    int old = std::exchange(fd_, fd);
    if (old >= 0) ::close(old);
  }

 private:
  int fd_ = -1;
};

}  // namespace epoll_echo
