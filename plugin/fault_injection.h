// Fault injection for tests: builds compiled with EPOLL_ECHO_FAULT_INJECTION (never the shipped
// plugin, see plugin/CMakeLists.txt) can make the worker's epoll_wait fail, to check that the
// failure is reported, make the kernel refuse the io_uring worker's limited multishot recv, to
// check its one-shot fallback, shrink the io_uring worker's queues, to check completions that
// overflow, and fail a worker's start, to check that the workers started before it are joined. Other builds call raw::epollWait and add no flag.
#pragma once

#include <sys/epoll.h>

#include <cstdint>

#include "counters.h"
#include "raw_syscalls.h"

#ifdef EPOLL_ECHO_FAULT_INJECTION
#include <cerrno>
#include <cstdlib>
#include <string>

#include "engine_error.h"
#endif

namespace epoll_echo::fault {

// epoll_wait, except in a fault-injection build with EPOLL_ECHO_FAULT_EPOLL_WAIT=<errno> in the
// environment: there, once the worker has accepted a connection, it fails with that errno (so a
// test chooses the moment by connecting).
inline int epollWait(const WorkerCounters& counters, int epollFd, epoll_event* events, int maxEvents,
                     int timeoutMs) noexcept {
#ifdef EPOLL_ECHO_FAULT_INJECTION
  if (counters.accepted.get() > 0) {
    if (const char* injected = std::getenv("EPOLL_ECHO_FAULT_EPOLL_WAIT")) {
      errno = std::atoi(injected);
      return -1;
    }
  }
#else
  (void)counters;
#endif
  return raw::epollWait(epollFd, events, maxEvents, timeoutMs);
}

// Extra recv flags (the SQE's ioprio) for a limited multishot recv: none, except in a
// fault-injection build with EPOLL_ECHO_FAULT_REFUSE_RECV_LIMIT in the environment, where a flag
// no kernel knows makes the kernel refuse the recv with EINVAL, as one without the limit does.
inline uint16_t multishotRecvFlags() noexcept {
#ifdef EPOLL_ECHO_FAULT_INJECTION
  if (std::getenv("EPOLL_ECHO_FAULT_REFUSE_RECV_LIMIT") != nullptr) return uint16_t{1} << 15;
#endif
  return 0;
}

// The size of one of the io_uring worker's queues: `entries`, except in a fault-injection build
// with EPOLL_ECHO_FAULT_URING_RING_ENTRIES=<n> in the environment, where both queues hold n, so
// that a test overflows the completion queue (and fills the submission queue) with a few
// connections.
inline unsigned uringRingEntries(unsigned entries) noexcept {
#ifdef EPOLL_ECHO_FAULT_INJECTION
  if (const char* injected = std::getenv("EPOLL_ECHO_FAULT_URING_RING_ENTRIES")) {
    return static_cast<unsigned>(std::atoi(injected));
  }
#endif
  return entries;
}

// Nothing, except in a fault-injection build with EPOLL_ECHO_FAULT_WORKER_START=<i> in the
// environment: there the start of worker i fails as an io_uring worker's does when its ring cannot
// be set up (ENOMEM, the memlock limit), after the workers before it started.
inline void workerStart(size_t index) {
#ifdef EPOLL_ECHO_FAULT_INJECTION
  if (const char* injected = std::getenv("EPOLL_ECHO_FAULT_WORKER_START")) {
    if (std::strtoul(injected, nullptr, 10) == index) {
      throw EngineError(EPOLL_ECHO_ESYSTEM, "worker " + std::to_string(index) + ": injected start failure");
    }
  }
#else
  (void)index;
#endif
}

}  // namespace epoll_echo::fault
