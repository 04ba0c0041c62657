// The worker's per-message system calls, made without glibc's cancellation bookkeeping.
//
// glibc's recv(), send() and epoll_wait() are thread-cancellation points: in a process with more
// than one thread (always the case for a plugin: the host's threads plus its workers) every call
// switches asynchronous cancellation on and off around the system call. At 100 ping-pong
// connections that bookkeeping was about 1 % of the engine's CPU time, a third of all the user-space
// time the engine spends (perf, docs/benchmarks.md). syscall(2) is not a cancellation point, and
// the engine never cancels its threads: stop() asks a worker to leave through its eventfd.
//
// Each function has the contract of the glibc function it replaces: the result, or -1 with errno.
// Sanitizer builds call the glibc functions, so that the interceptors still check every buffer.
#pragma once

#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstddef>

// GCC says __SANITIZE_*__; Clang only answers __has_feature.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define EPOLL_ECHO_RAW_SYSCALLS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define EPOLL_ECHO_RAW_SYSCALLS 0
#endif
#endif
#ifndef EPOLL_ECHO_RAW_SYSCALLS
#define EPOLL_ECHO_RAW_SYSCALLS 1
#endif
#if !EPOLL_ECHO_RAW_SYSCALLS
#include <sys/socket.h>
#endif

namespace epoll_echo::raw {

#if EPOLL_ECHO_RAW_SYSCALLS

inline ssize_t recv(int fd, void* buffer, size_t length) noexcept {
  return ::syscall(SYS_recvfrom, fd, buffer, length, 0, nullptr, nullptr);
}

inline ssize_t send(int fd, const void* bytes, size_t length, int flags) noexcept {
  return ::syscall(SYS_sendto, fd, bytes, length, flags, nullptr, 0);
}

inline int epollWait(int epollFd, epoll_event* events, int maxEvents, int timeoutMs) noexcept {
  // epoll_wait(2) itself is missing on some architectures (aarch64): epoll_pwait with no mask
  // is the same call everywhere.
  return static_cast<int>(::syscall(SYS_epoll_pwait, epollFd, events, maxEvents, timeoutMs, nullptr, 0));
}

#else
inline ssize_t recv(int fd, void* buffer, size_t length) noexcept { return ::recv(fd, buffer, length, 0); }
inline ssize_t send(int fd, const void* bytes, size_t length, int flags) noexcept {
  return ::send(fd, bytes, length, flags);
}
inline int epollWait(int epollFd, epoll_event* events, int maxEvents, int timeoutMs) noexcept {
  return ::epoll_wait(epollFd, events, maxEvents, timeoutMs);
}
#endif

}  // namespace epoll_echo::raw
