// Worker: the epoll backend. One thread, one SO_REUSEPORT listening socket, one epoll instance, one eventfd to wake
// it, and the connections it accepted. Echoes everything it reads back to the same connection.
#pragma once

#include <sys/epoll.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "config.h"
#include "connection.h"
#include "connection_budget.h"
#include "read_rotation.h"
#include "unique_fd.h"
#include "worker_base.h"

namespace epoll_echo {

// The epoll backend. Thread rules as EventWorker's. In external-loop mode the worker has no
// thread: prepare() instead of start(), and the engine calls step() itself, under its control
// lock, from the application's loop thread (only epoll workers serve in that mode).
class Worker final : public WorkerBase<Connection> {
 public:
  // Takes ownership of a bound, listening, non-blocking socket; counts its connections in
  // `budget`, which must outlive it, and hands connections to its peers through `balancer` (null:
  // it keeps what it accepts). Throws EngineError.
  Worker(uint32_t index, const EngineConfig& config, ConnectionBudget& budget, ConnectionBalancer* balancer,
         UniqueFd listener, FailureReport reportFailure);
  ~Worker() override;

  void start() override;
  // What start() does but the thread: the worker is ready for the engine to call step().
  void prepare();
  // One pass of the event loop: waits up to timeoutMs (0: not at all) for events, works them,
  // then the deferred work (resumed reads, accepts, the idle sweep). Returns false when the loop
  // must end: stop requested, or epoll_wait failed (failed() then says so).
  bool step(int timeoutMs) noexcept;
  // When step() must run again even without an event: -1 never, 0 at once, else milliseconds.
  int nextTimeoutMs() const;
  bool failed() const noexcept { return failed_; }
  // The worker's epoll instance, which the engine's loop fd watches in external-loop mode.
  int epollFd() const noexcept { return epoll_.get(); }
  // Fires the eventfd so that the epoll instance is readable: in external-loop mode, the
  // application's loop then calls step() once after start and resume, with no special call.
  using WorkerBase::wake;

  void adoptConnection(UniqueFd socket, const char* pending, size_t pendingBytes, bool peerClosed) override;
  void takeHandedOff() noexcept override;

 private:
  void releaseBackendState() noexcept override;
  void forgetConnection(Connection& connection) noexcept override;
  void run() noexcept;
  void dispatch(const epoll_event& event);
  void onWakeup();
  void runDeferredWork();
  void closeIdleConnections();

  void onAccept();
  bool acceptOne();
  void parkAtCap();
  bool addConnection(UniqueFd socket);
  Connection* registerConnection(UniqueFd socket);

  void onReadable(Connection& connection);
  void onWritable(Connection& connection);
  bool echo(Connection& connection, const char* bytes, size_t count);
  // The last echo in the batch is this connection's: its next bytes extend that entry.
  bool endsBatch(const Connection& connection) const noexcept {
    return connection.batched && batch_.back().connection == &connection;
  }
  void sendBatch();
  bool sendNow(Connection& connection, const char* bytes, size_t count);
  bool flushPending(Connection& connection);
  void queueForResume(Connection& connection);
  void closeConnection(Connection& connection);

  UniqueFd epoll_;
  std::vector<std::unique_ptr<Connection>> closedThisBatch_;  // freed after the batch
  ReadRotation<Connection> rotation_;                         // connections with unread data left by their budget
  // Every read lands here, one buffer per worker (idle connections own none). A batch of events
  // is read first and sent second: batch_ lists the echoes read and not sent yet.
  struct BatchedEcho {
    Connection* connection;
    uint32_t offset;  // in batchBuffer_ (512 KiB)
    uint32_t length;
  };
  std::unique_ptr<char[]> batchBuffer_;
  std::vector<BatchedEcho> batch_;
  size_t batchBytes_ = 0;  // the start of batchBuffer_ that batch_ uses

  bool acceptPending_ = false;  // the accept budget ran out with connections still queued
};

}  // namespace epoll_echo
