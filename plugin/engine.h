// Engine: the object behind epoll_echo_engine_t — its configuration, its workers, its state, the
// sockets imported for a hand-over and the detail of its last error. Holds no global state, so
// several engines can share a process.
#pragma once

#include <sys/epoll.h>
#include <sys/types.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config.h"
#include "connection_balancer.h"
#include "connection_budget.h"
#include "epoll_echo.h"
#include "event_worker.h"
#include "listener.h"
#include "thread_annotations.h"
#include "unique_fd.h"

namespace epoll_echo {

// A socket as the kernel knows it, whichever descriptor refers to it: its SO_COOKIE, 64 bits
// never reused while the system runs (a socket's inode number is: sockfs counts in 32 bits).
using SocketIdentity = uint64_t;

// Control calls (start, stop, pause, resume, the hand-over) may come from any thread; each holds
// controlMutex_ throughout, so they run one at a time. stats, workerCounters and the error record
// may run on any thread at any time, concurrently with a control call: they take only the
// short-lived stateMutex_ or errorMutex_, which no one holds while waiting for a thread.
// Lock order: controlMutex_, then stateMutex_. Every throwing member leaves the engine as it was
// and throws EngineError.
class Engine {
 public:
  explicit Engine(EngineConfig config) : config_(std::move(config)), backend_(config_.backend) {}
  ~Engine() { stop(); }
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  void start() EPOLL_ECHO_EXCLUDES(controlMutex_, stateMutex_);
  // All of start() but running the workers: sockets registered, nothing read until resume().
  void startPaused() EPOLL_ECHO_EXCLUDES(controlMutex_, stateMutex_);
  // Idempotent; joins every worker thread before it returns.
  void stop() noexcept EPOLL_ECHO_EXCLUDES(controlMutex_, stateMutex_);
  void pause() EPOLL_ECHO_EXCLUDES(controlMutex_, stateMutex_);
  void resume() EPOLL_ECHO_EXCLUDES(controlMutex_, stateMutex_);

  // Hand-over (engine_handover.cpp). The queries are const: they change nothing a caller sees,
  // but still serialise with the other control calls.
  void handoverCounts(uint32_t& listeners, uint32_t& connections) const EPOLL_ECHO_EXCLUDES(controlMutex_);
  int exportListener(uint32_t index) const EPOLL_ECHO_EXCLUDES(controlMutex_);
  // Returns false (state filled, nothing copied) when `capacity` is too small for the bytes.
  bool exportConnection(uint32_t index, epoll_echo_connection_state_t& state, void* pending, size_t capacity) const
      EPOLL_ECHO_EXCLUDES(controlMutex_);
  void completeHandover() EPOLL_ECHO_EXCLUDES(controlMutex_, stateMutex_);
  void importListener(int fd) EPOLL_ECHO_EXCLUDES(controlMutex_, stateMutex_);
  void importConnection(const epoll_echo_connection_state_t& state, const void* pending)
      EPOLL_ECHO_EXCLUDES(controlMutex_, stateMutex_);
  void dropConnection(int fd) EPOLL_ECHO_EXCLUDES(controlMutex_, stateMutex_);

  // External-loop mode (engine_loop.cpp). loopFd() returns the loop's epoll fd; loopRun() does
  // one pass of every worker that has work and returns when to call it again (-1, 0, > 0 ms).
  int loopFd() const EPOLL_ECHO_EXCLUDES(stateMutex_);
  int loopRun() EPOLL_ECHO_EXCLUDES(controlMutex_, stateMutex_);

  epoll_echo_stats_t stats() const EPOLL_ECHO_EXCLUDES(stateMutex_);
  // Worker `index`'s counters; returns false when index is out of range.
  bool workerCounters(uint32_t index, epoll_echo_counters_t& out, epoll_echo_uring_counters_t& uring) const
      EPOLL_ECHO_EXCLUDES(stateMutex_);

  // Records the detail of a failed call, `first` followed by `second`: the next failure replaces
  // it, a success leaves it. Const and noexcept so that every path, a failed stats() included,
  // can record, and from any thread (a worker reports its own failure); without memory for the
  // text it keeps a fixed one.
  void setLastError(const char* first, const char* second = "") const noexcept EPOLL_ECHO_EXCLUDES(errorMutex_);
  std::string lastError() const EPOLL_ECHO_EXCLUDES(errorMutex_);

 private:
  struct ImportedConnection {
    UniqueFd fd;  // empty once dropped
    std::string pending;
    uint32_t worker = 0;
    bool peerClosed = false;
    SocketIdentity identity = 0;
  };
  // A connection adopted by a worker that has not run since (start_paused, or an import while
  // paused), which drop_connection may still take back: its worker and that worker's descriptor.
  struct UnservedConnection {
    uint32_t worker = 0;
    int fd = -1;
  };
  using UnservedConnections = std::unordered_map<SocketIdentity, UnservedConnection>;
  using WorkerList = std::vector<std::unique_ptr<EventWorker>>;

  void requireState(uint32_t expected, const char* operation) const EPOLL_ECHO_EXCLUDES(stateMutex_);
  // CREATED, or PAUSED by startPaused() and not resumed since: the states that take
  // connections; returns which.
  uint32_t requireConnectionImportState(const char* operation) const EPOLL_ECHO_REQUIRES(controlMutex_)
      EPOLL_ECHO_EXCLUDES(stateMutex_);
  // start() and startPaused(): `run` tells whether the workers run at once.
  void bringUp(const char* operation, bool run) EPOLL_ECHO_EXCLUDES(controlMutex_, stateMutex_);
  void setState(uint32_t state) EPOLL_ECHO_EXCLUDES(stateMutex_);
  ListenerSet shareImportedListeners() EPOLL_ECHO_REQUIRES(controlMutex_);
  // The backend the workers will use: the configured one, AUTO resolved. Throws EngineError
  // when io_uring was asked for and cannot be set up.
  uint32_t chooseBackend() const;
  WorkerList createWorkers(std::vector<UniqueFd> listeners, ConnectionBudget& budget, ConnectionBalancer* balancer,
                           uint32_t backend);
  // Gives each imported connection to its worker; returns them by socket when `remember`.
  UnservedConnections adoptImportedConnections(WorkerList& workers, bool remember) EPOLL_ECHO_REQUIRES(controlMutex_);
  void adoptWhilePaused(SocketIdentity identity, UniqueFd socket, const epoll_echo_connection_state_t& state,
                        const void* pending) EPOLL_ECHO_REQUIRES(controlMutex_);
  void dropUnserved(SocketIdentity identity, int fd) EPOLL_ECHO_REQUIRES(controlMutex_);
  static void startAll(WorkerList& workers);
  // The threaded mode starts each worker's thread; the external-loop mode readies the workers and
  // puts their epoll instances in the loop's, which it creates on the first call.
  void runWorkers(WorkerList& workers) EPOLL_ECHO_REQUIRES(controlMutex_);
  void openLoop(const WorkerList& workers) EPOLL_ECHO_REQUIRES(controlMutex_);
  void watchWorkers(const WorkerList& workers, int operation) EPOLL_ECHO_REQUIRES(controlMutex_);
  void closeLoop() noexcept EPOLL_ECHO_REQUIRES(controlMutex_) EPOLL_ECHO_EXCLUDES(stateMutex_);
  void stepReadyWorkers() EPOLL_ECHO_REQUIRES(controlMutex_);
  int nextLoopTimeoutMs() const EPOLL_ECHO_REQUIRES(controlMutex_);
  // Connection `index` counted over all workers in order, and its worker's index; throws ERANGE.
  const Connection& connectionAt(uint32_t index, uint32_t& worker) const EPOLL_ECHO_REQUIRES(controlMutex_);

  const EngineConfig config_;

  mutable Mutex controlMutex_;  // mutable: the const hand-over queries serialise too
  // max_connections, shared by the workers: set once by start(), declared first so that it
  // outlives them.
  std::unique_ptr<ConnectionBudget> budget_ EPOLL_ECHO_GUARDED_BY(controlMutex_);
  // The exact balance between the workers (null: the kernel's hash alone), as the budget.
  std::unique_ptr<ConnectionBalancer> balancer_ EPOLL_ECHO_GUARDED_BY(controlMutex_);
  // Set once by start() and never shrunk, so the workers live as long as the engine; their
  // threads run between start() and the stop() or pause() that joins them.
  WorkerList workers_ EPOLL_ECHO_GUARDED_BY(controlMutex_);
  std::vector<UniqueFd> importedListeners_ EPOLL_ECHO_GUARDED_BY(controlMutex_);              // until start()
  std::vector<ImportedConnection> importedConnections_ EPOLL_ECHO_GUARDED_BY(controlMutex_);  // until start()
  // Theirs, each with its index in importedConnections_, so a second import or a drop of one
  // socket is found without a scan: an upgrade imports thousands while the clients wait.
  std::map<SocketIdentity, size_t> importedIdentities_ EPOLL_ECHO_GUARDED_BY(controlMutex_);
  // From startPaused() to the first resume(): the engine takes connections into its workers
  // directly, and unserved_ holds them so that a drop finds them.
  bool startedPaused_ EPOLL_ECHO_GUARDED_BY(controlMutex_) = false;
  UnservedConnections unserved_ EPOLL_ECHO_GUARDED_BY(controlMutex_);
  // External-loop mode: the epoll instance holding every worker's, from start() to stop(), and
  // which workers it reported ready in the current loopRun().
  UniqueFd loop_ EPOLL_ECHO_GUARDED_BY(controlMutex_);
  std::vector<epoll_event> loopEvents_ EPOLL_ECHO_GUARDED_BY(controlMutex_);
  std::vector<char> workerReady_ EPOLL_ECHO_GUARDED_BY(controlMutex_);
  // Set while a thread is inside loopRun(): a second thread is refused, not queued behind it.
  std::atomic<bool> loopBusy_{false};

  mutable Mutex stateMutex_;
  uint32_t state_ EPOLL_ECHO_GUARDED_BY(stateMutex_) = EPOLL_ECHO_STATE_CREATED;
  uint16_t port_ EPOLL_ECHO_GUARDED_BY(stateMutex_) = 0;
  uint32_t backend_ EPOLL_ECHO_GUARDED_BY(stateMutex_);  // serving since start; before, the configured one
  int loopFd_ EPOLL_ECHO_GUARDED_BY(stateMutex_) = -1;  // loop_'s descriptor, for loopFd() on any thread
  // What stats() reads without the control lock: each worker's counters, in worker order,
  // published by start(). They live inside the workers, which workers_ keeps until destruction.
  std::vector<const WorkerCounters*> counters_ EPOLL_ECHO_GUARDED_BY(stateMutex_);

  // The error record has a lock of its own, held only to copy the text: any thread writes it (a
  // worker reporting its failure, the C boundary after a failed call) without touching the others.
  mutable Mutex errorMutex_;
  mutable std::string lastError_ EPOLL_ECHO_GUARDED_BY(errorMutex_);  // mutable: failed const calls record too
};

}  // namespace epoll_echo
