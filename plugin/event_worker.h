// EventWorker: what the Engine needs from a worker, whichever backend moves its bytes (Worker:
// epoll, UringWorker: io_uring). Control calls only: each backend's event loop is its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "connection.h"
#include "counters.h"
#include "unique_fd.h"

namespace epoll_echo {

// Created, started, joined and destroyed by its Engine inside control calls, which come from any
// thread but one at a time (the engine's control lock). Between start() and join() the worker's
// own thread alone touches its sockets, connections and buffers; the control side touches them
// only while that thread is not running (the hand-over accessors assert it in debug builds).
// requestStop() and counters() are the exceptions: any thread, any time.
class EventWorker {
 public:
  // Called on the worker's thread when its loop stops on an unexpected error, with the reason
  // ("worker 0: epoll_wait: Bad file descriptor"). Must not throw.
  using FailureReport = std::function<void(const std::string&)>;

  virtual ~EventWorker() = default;

  // Starts (or, after a pause, restarts) the thread; every connection's idle clock starts now, so
  // neither a pause nor a hand-over counts as idle time. Throws std::system_error or EngineError.
  virtual void start() = 0;
  // Asks the thread to leave its loop; returns at once. Safe from any thread, any number of times.
  virtual void requestStop() noexcept = 0;
  // Waits for the thread to leave its loop (after requestStop()). When it returns, the worker has
  // no operation in flight: every byte it read and did not send is in a connection's `pending`.
  virtual void join() noexcept = 0;
  // After join(): closes every connection, the listening socket and the worker's own descriptors.
  // The worker cannot start again; its counters stay readable.
  virtual void closeAll() noexcept = 0;
  // After join(): closes this worker's copies of its sockets, which now live on in another
  // engine, counting the connections as handed over, and its own descriptors as closeAll() does.
  virtual void releaseAll() noexcept = 0;

  // Hand-over, only while the thread is not running: before start() or after join().
  virtual int listenerFd() const noexcept = 0;
  virtual size_t connectionCount() const noexcept = 0;
  // Connection `index`, marked shared: once exported, a copy of its descriptor may outlive this
  // worker's (a host that keeps one while the engine is resumed), so closing it must remove it
  // from the epoll set explicitly.
  virtual const Connection& exportConnectionAt(size_t index) = 0;
  // Takes a connection from a previous engine with the bytes still owed to it. Throws.
  virtual void adoptConnection(UniqueFd socket, const char* pending, size_t pendingBytes, bool peerClosed) = 0;
  // Gives back an adopted connection that has not been served since (the engine's drop while
  // paused): takes the one whose descriptor is `fd` out of the table (and the epoll set), closes
  // this worker's copy and counts it as handed over. Returns false when no connection has `fd`.
  virtual bool releaseConnection(int fd) noexcept = 0;
  // With the exact balance, after join(): registers the connections other workers accepted and
  // queued for this one after its thread stopped taking them (it takes them itself when woken),
  // so that a pause, a hand-over or a stop finds every connection in a worker's table. A socket it
  // cannot register is closed and counted (accept_errors). Never throws.
  virtual void takeHandedOff() noexcept = 0;

  virtual const WorkerCounters& counters() const noexcept = 0;
};

}  // namespace epoll_echo
