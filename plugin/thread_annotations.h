// Lock rules the compiler checks: clang's -Wthread-safety attributes behind EPOLL_ECHO_* macros
// (other compilers see nothing), and a mutex that carries them, since libstdc++'s std::mutex does
// not. See https://clang.llvm.org/docs/ThreadSafetyAnalysis.html.
#pragma once

#include <mutex>

#if defined(__clang__)
#define EPOLL_ECHO_THREAD_ATTRIBUTE(x) __attribute__((x))
#else
#define EPOLL_ECHO_THREAD_ATTRIBUTE(x)
#endif

#define EPOLL_ECHO_CAPABILITY(name) EPOLL_ECHO_THREAD_ATTRIBUTE(capability(name))
#define EPOLL_ECHO_SCOPED_CAPABILITY EPOLL_ECHO_THREAD_ATTRIBUTE(scoped_lockable)
// The member may be read or written only while the given mutex is held.
#define EPOLL_ECHO_GUARDED_BY(mutex) EPOLL_ECHO_THREAD_ATTRIBUTE(guarded_by(mutex))
// The caller must hold the mutexes.
#define EPOLL_ECHO_REQUIRES(...) EPOLL_ECHO_THREAD_ATTRIBUTE(requires_capability(__VA_ARGS__))
// The caller must not hold the mutexes: the function takes them itself.
#define EPOLL_ECHO_EXCLUDES(...) EPOLL_ECHO_THREAD_ATTRIBUTE(locks_excluded(__VA_ARGS__))
#define EPOLL_ECHO_ACQUIRE(...) EPOLL_ECHO_THREAD_ATTRIBUTE(acquire_capability(__VA_ARGS__))
#define EPOLL_ECHO_RELEASE(...) EPOLL_ECHO_THREAD_ATTRIBUTE(release_capability(__VA_ARGS__))

namespace epoll_echo {

// std::mutex, annotated so that clang knows what lock() and unlock() do.
class EPOLL_ECHO_CAPABILITY("mutex") Mutex {
 public:
  void lock() EPOLL_ECHO_ACQUIRE() { mutex_.lock(); }
  void unlock() EPOLL_ECHO_RELEASE() { mutex_.unlock(); }

 private:
  std::mutex mutex_;
};

// std::lock_guard for Mutex.
class EPOLL_ECHO_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mutex) EPOLL_ECHO_ACQUIRE(mutex) : mutex_(mutex) { mutex_.lock(); }
  ~MutexLock() EPOLL_ECHO_RELEASE() { mutex_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mutex_;
};

}  // namespace epoll_echo
