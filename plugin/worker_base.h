// WorkerBase: what the epoll and io_uring workers both need around their event loops — the
// thread and its stop request, the eventfd that wakes it, the connection table, the accept
// back-off and cap state, the idle clock, the counters — so each backend keeps only its loop.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cassert>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "config.h"
#include "connection.h"
#include "connection_balancer.h"
#include "connection_budget.h"
#include "counters.h"
#include "engine_error.h"
#include "event_worker.h"
#include "unique_fd.h"
#include "worker_policy.h"

namespace epoll_echo {

// Thread rules as EventWorker's; everything protected here belongs to the worker's thread between
// start() and join(), except stopRequested_ and the counters. ConnectionType is Connection or a
// backend's extension of it. No virtual call on the event path: the backends are final and use
// these members directly; the one hook, releaseBackendState(), runs on the control side.
template <typename ConnectionType>
class WorkerBase : public EventWorker {
 public:
  WorkerBase(const WorkerBase&) = delete;
  WorkerBase& operator=(const WorkerBase&) = delete;

  void requestStop() noexcept final {
    if (!wakeup_) return;
    stopRequested_.store(true, std::memory_order_release);
    wake();
  }
  void join() noexcept final {
    if (thread_.joinable()) thread_.join();
  }
  void closeAll() noexcept final { dropAll(counters_.closed); }
  void releaseAll() noexcept final { dropAll(counters_.handed_over); }

  int listenerFd() const noexcept final {
    assert(!running());
    return listener_.get();
  }
  size_t connectionCount() const noexcept final {
    assert(!running());
    return connections_.size();
  }
  const Connection& exportConnectionAt(size_t index) final {
    assert(!running());
    connections_[index]->shared = true;
    return *connections_[index];
  }

  // A scan of the table: drops are few (the connections a hand-over's pause revises), and the
  // table's order changes as connections leave, so no index of it would stay true.
  bool releaseConnection(int fd) noexcept final {
    assert(!running());
    for (const auto& connection : connections_) {
      if (connection->fd.get() != fd) continue;
      forgetConnection(*connection);
      const std::unique_ptr<ConnectionType> released = untrack(*connection);  // our copy closes with it
      counters_.handed_over.add(1);
      return true;
    }
    return false;
  }

  const WorkerCounters& counters() const noexcept final { return counters_; }

 protected:
  using Clock = std::chrono::steady_clock;

  // Takes ownership of a bound, listening, non-blocking socket; creates the wake-up eventfd with
  // `eventfdFlags` (EFD_CLOEXEC and the backend's choice of blocking). `balancer`, when not null,
  // must outlive the worker. Throws EngineError.
  WorkerBase(uint32_t index, const EngineConfig& config, ConnectionBudget& budget, ConnectionBalancer* balancer,
             UniqueFd listener, FailureReport reportFailure, int eventfdFlags)
      : index_(index),
        config_(config),
        reportFailure_(std::move(reportFailure)),
        budget_(budget),
        balancer_(balancer),
        listener_(std::move(listener)),
        idleTimeout_(std::chrono::milliseconds(config.idleTimeoutMs)),
        idleSweepPeriod_(policy::idleSweepPeriodFor(std::chrono::milliseconds(config.idleTimeoutMs))) {
    wakeup_.reset(::eventfd(0, eventfdFlags));
    if (!wakeup_) throwErrno(EPOLL_ECHO_ESYSTEM, "eventfd (worker " + std::to_string(index_) + ")");
  }
  // The backend's destructor must requestStop() and join() itself: its members die before these.
  ~WorkerBase() override = default;

  // True from start() until join(): the worker's thread may be using everything but the counters.
  bool running() const noexcept { return thread_.joinable(); }

  void wake() noexcept {
    const uint64_t one = 1;
    // EAGAIN means the counter is already non-zero: the worker will wake anyway.
    [[maybe_unused]] ssize_t ignored = ::write(wakeup_.get(), &one, sizeof one);
  }

  // Before each run: no stop pending, accepting not parked (a slot may have freed while the thread
  // was away, its wake-up drained), and every idle clock starting now.
  void resetForRun() noexcept {
    stopRequested_.store(false, std::memory_order_relaxed);
    stopping_ = false;
    acceptCapped_ = false;
    budget_.unpark(index_);
    if (balancer_) balancer_->setWakeup(index_, wakeup_.get());
    restartIdleClocks();
  }

  // A socket this worker just accepted: returned to be registered here, or (exact balance) handed
  // to a worker that holds fewer connections, which then registers it (an empty UniqueFd back).
  UniqueFd placeAccepted(UniqueFd socket) noexcept {
    return balancer_ ? balancer_->place(index_, std::move(socket)) : std::move(socket);
  }
  // An accepted or handed-off socket could not be registered (it is closed): counted.
  void registrationFailed() noexcept {
    counters_.accept_errors.add(1);
    if (balancer_) balancer_->left(index_);
  }

  // The loop ends on an unexpected error: counted, and reported with the errno's text (none when
  // `error` is 0: `call` then says it all).
  void fail(const char* call, int error) noexcept {
    failed_ = true;
    if (balancer_) balancer_->setWakeup(index_, -1);  // it serves no more: send it nothing
    counters_.worker_failures.add(1);
    try {
      const std::string what = "worker " + std::to_string(index_) + ": " + call;
      reportFailure_((error != 0 ? describeErrno(what, error) : what) + "; it serves no more connections");
    } catch (...) {
      // No memory for the message: the failure counter still tells.
    }
  }

  // An accept failed with `error`: counted, and accepting paused unless the error concerned only
  // that connection. Returns true when accepting is paused.
  bool onAcceptError(int error) noexcept {
    counters_.accept_errors.add(1);
    if (policy::isTransientAcceptError(error)) return false;
    // EMFILE, ENFILE, ENOBUFS, ENOMEM, or an error we do not know: waiting beats spinning on it.
    pauseAccepting();
    return true;
  }

  // Leaves the connection in the kernel's accept queue (the client waits instead of being reset)
  // and retries after a growing back-off, or as soon as one of our own connections closes.
  void pauseAccepting() noexcept {
    acceptBackoff_ = policy::nextAcceptBackoff(acceptBackoff_);
    acceptPaused_ = true;
    acceptResumeAt_ = Clock::now() + acceptBackoff_;
    counters_.accept_pauses.add(1);
  }

  // An echo server answers each small message at once: no Nagle delay.
  void setNoDelay(int fd) noexcept {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    counters_.syscalls.add(1);
  }

  // Puts a connection in the table. The caller reserved its room (so this cannot throw).
  ConnectionType* track(std::unique_ptr<ConnectionType> connection) noexcept {
    connection->lastActive = now_;
    connection->slot = static_cast<uint32_t>(connections_.size());
    connections_.push_back(std::move(connection));
    return connections_.back().get();
  }

  // Takes a connection out of the table (the last one moves into its slot) and gives its
  // engine-wide slot back: a freed descriptor is the best moment to try accepting again.
  std::unique_ptr<ConnectionType> untrack(ConnectionType& connection) noexcept {
    budget_.give(index_);
    if (balancer_) balancer_->left(index_);
    if (acceptPaused_) acceptResumeAt_ = Clock::now();
    if (acceptCapped_) {
      acceptCapped_ = false;
      budget_.unpark(index_);
    }
    const uint32_t slot = connection.slot;
    std::swap(connections_[slot], connections_.back());
    connections_[slot]->slot = slot;
    std::unique_ptr<ConnectionType> owned = std::move(connections_.back());
    connections_.pop_back();
    return owned;
  }

  // A connection from a previous engine, just registered, gets back what it had: its place under
  // the cap (even above it: it is open already), its peer's FIN, the bytes still owed. When memory
  // for those is short, `close` closes it and this rethrows.
  template <typename Close>
  void restoreAdopted(ConnectionType& connection, const char* pending, size_t pendingBytes, bool peerClosed,
                      Close&& close) {
    budget_.take();
    if (balancer_) balancer_->arrived(index_);
    connection.peerClosed = peerClosed;
    connection.shared = true;
    try {
      connection.pending.append(pending, pendingBytes);
    } catch (const std::bad_alloc&) {
      close(connection);
      throw;
    }
    counters_.adopted.add(1);
  }

  void restartIdleClocks() noexcept {
    now_ = Clock::now();
    nextIdleSweep_ = now_ + idleSweepPeriod_;
    for (auto& connection : connections_) connection->lastActive = now_;
  }

  // When a sweep is due, closes with `close` every connection that moved no byte for the timeout.
  // One whose echo is still pending has a client that stopped reading (a byte sent would have
  // restarted its clock): its flush timed out.
  template <typename Close>
  void sweepIdleConnections(Close&& close) {
    if (idleTimeout_.count() == 0 || now_ < nextIdleSweep_) return;
    nextIdleSweep_ = now_ + idleSweepPeriod_;
    counters_.idle_closed.add(policy::closeIdleSince(connections_, now_ - idleTimeout_, close));
  }

  // dropAll's part for the backend's own state: what it tracks besides connections_, and the
  // descriptors it owns besides the listener and the eventfd. Control side, after join().
  virtual void releaseBackendState() noexcept = 0;
  // releaseConnection's part for the backend: whatever it holds for the connection besides the
  // table (an epoll registration, a queue entry). Control side, the thread not running.
  virtual void forgetConnection(ConnectionType& connection) noexcept = 0;

  const uint32_t index_;
  const EngineConfig config_;
  const FailureReport reportFailure_;
  ConnectionBudget& budget_;
  ConnectionBalancer* const balancer_;  // null: the kernel's SO_REUSEPORT choice stands
  UniqueFd listener_;
  UniqueFd wakeup_;     // fired by requestStop(), and by the budget when a slot frees at the cap
  std::thread thread_;  // control side only (start, join)
  std::atomic<bool> stopRequested_{false};
  bool stopping_ = false;  // worker thread only; set when the eventfd fires after requestStop()
  bool failed_ = false;    // the loop ended on an error: the worker serves nothing more

  std::vector<std::unique_ptr<ConnectionType>> connections_;

  bool acceptPaused_ = false;  // no fd available: accepting waits until acceptResumeAt_
  bool acceptCapped_ = false;  // the engine holds max_connections: parked until a slot frees
  Clock::time_point acceptResumeAt_{};
  std::chrono::milliseconds acceptBackoff_{0};

  // Idle timeout: one clock read per loop pass, a store per connection that moves bytes, and a
  // sweep over the connections every idleSweepPeriod_ instead of a timer per connection.
  const Clock::duration idleTimeout_;      // zero: connections never time out
  const Clock::duration idleSweepPeriod_;  // how late an idle connection may be closed
  Clock::time_point now_{};                // this loop pass's clock
  Clock::time_point nextIdleSweep_{};

  WorkerCounters counters_;

 private:
  // After join(): closes every connection (counted as `countAs`), the listener and the eventfd;
  // the worker never runs again, only its counters stay.
  void dropAll(SingleWriterCounter& countAs) noexcept {
    assert(!running());
    for (auto& connection : connections_) connection->fd.reset();
    countAs.add(connections_.size());
    if (balancer_) {
      balancer_->left(index_, static_cast<uint32_t>(connections_.size()));
      balancer_->setWakeup(index_, -1);
    }
    connections_.clear();
    releaseBackendState();
    budget_.setWakeup(index_, -1);  // the eventfd closes below
    listener_.reset();
    wakeup_.reset();
  }
};

}  // namespace epoll_echo
