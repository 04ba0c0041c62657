// Worker: the event loop. Edge-triggered client sockets registered once for IN|OUT|RDHUP, so
// the steady state costs one recv and one send per echoed message and no epoll_ctl at all.
// Each batch of events is worked in two passes: up to 16 ready connections are read first, then
// their echoes are sent (kMaxBatchedEchoes). At 100 ping-pong connections the engine needed about 4 % less CPU per message
// than when it sent each echo right after its read (docs/benchmarks.md), most likely because like
// system calls back to back keep the kernel's receive and send paths hot in the caches.
#include "worker.h"

#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <new>

#include "engine_error.h"
#include "fault_injection.h"
#include "raw_syscalls.h"
#include "vector_room.h"
#include "worker_policy.h"

namespace epoll_echo {
namespace {

// One read fills at most this much; a shorter read proves the socket's receive queue is empty
// (epoll(7)), which saves the extra read that would only return EAGAIN. As large as the default
// read budget: with 64 KiB, a 64 KiB message filled it exactly and cost a second read each time.
// Only the pages a read touches are resident.
constexpr size_t kReadChunk = 256 * 1024;
// The batch buffer, one per worker: the bytes read in this batch and not sent yet. The batch is
// sent early whenever the next read might not fit.
constexpr size_t kBatchBufferBytes = 2 * kReadChunk;
static_assert(kBatchBufferBytes <= UINT32_MAX, "batch offsets are 32-bit");
constexpr int kMaxEventsPerWait = 256;
// Echoes per batch: after this many reads the batch is sent, then reading goes on. The first
// connection read waits for every other read of its batch before its echo leaves, so an unbounded
// batch (every connection epoll reports, 100 at 100 ping-pong connections) put whole passes of
// reads in front of some echoes and stretched the latency tail; 16 reads bound that wait to a few
// microseconds and still keep like system calls together (docs/benchmarks.md, "Tail latency").
// Reserved once per worker.
constexpr size_t kMaxBatchedEchoes = 16;
// epoll user data for the two non-connection fds; connections use their own address.
char listenerTag;
char wakeupTag;

}  // namespace

Worker::Worker(uint32_t index, const EngineConfig& config, ConnectionBudget& budget, ConnectionBalancer* balancer,
               UniqueFd listener, FailureReport reportFailure)
    : WorkerBase(index, config, budget, balancer, std::move(listener), std::move(reportFailure),
                 EFD_CLOEXEC | EFD_NONBLOCK),
      batchBuffer_(new char[kBatchBufferBytes]) {
  batch_.reserve(kMaxBatchedEchoes);
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) throwErrno(EPOLL_ECHO_ESYSTEM, "epoll_create1 (worker " + std::to_string(index_) + ")");
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.ptr = &wakeupTag;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wakeup_.get(), &event) != 0) {
    throwErrno(EPOLL_ECHO_ESYSTEM, "epoll_ctl ADD eventfd");
  }
  // Edge-triggered: a paused listener (no fd left) must not wake the loop over and over.
  // Exclusive: when workers share one listening socket (an inherited one), a new connection
  // wakes one of them, not all; with a socket of its own it changes nothing.
  event.events = EPOLLIN | EPOLLET | EPOLLEXCLUSIVE;
  event.data.ptr = &listenerTag;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listener_.get(), &event) != 0) {
    throwErrno(EPOLL_ECHO_ESYSTEM, "epoll_ctl ADD listener");
  }
  // Last, once nothing can throw: a worker that is never built must not leave the budget an
  // eventfd number that closes with it (and is soon another descriptor).
  budget_.setWakeup(index_, wakeup_.get());
}

Worker::~Worker() {
  requestStop();
  join();
}

void Worker::start() {
  prepare();
  thread_ = std::thread([this] { run(); });
}

void Worker::prepare() {
  assert(!running());
  // After a pause the eventfd still holds the stop request that ended the previous run.
  uint64_t stale = 0;
  [[maybe_unused]] ssize_t ignored = ::read(wakeup_.get(), &stale, sizeof stale);
  resetForRun();
  // The accept queue may already hold connections that arrived between listen() and now.
  acceptPending_ = true;
}

void Worker::releaseBackendState() noexcept {
  closedThisBatch_.clear();
  rotation_.clear();
  epoll_.reset();
}

void Worker::forgetConnection(Connection& connection) noexcept {
  rotation_.remove(connection);
  // Adopted, so shared: the caller's copy of the socket keeps it in the epoll set after ours closes.
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, connection.fd.get(), nullptr);
  counters_.syscalls.add(1);
}

void Worker::run() noexcept {
  while (step(nextTimeoutMs())) {
  }
}

bool Worker::step(int timeoutMs) noexcept {
  epoll_event events[kMaxEventsPerWait];
  const int count = fault::epollWait(counters_, epoll_.get(), events, kMaxEventsPerWait, timeoutMs);
  counters_.syscalls.add(1);
  if (count < 0) {
    if (errno == EINTR) return true;
    // EBADF, EFAULT, EINVAL: impossible while the worker owns the fd, so a bug or a corrupted
    // process. Retrying would spin; leave, and say so (stats, last error, the host's policy).
    fail("epoll_wait", errno);
    return false;
  }
  if (count > 0) counters_.wakeups.add(1);
  if (idleTimeout_.count() != 0) now_ = Clock::now();
  rotation_.beginPass();
  for (int i = 0; i < count; ++i) dispatch(events[i]);
  rotation_.serveDue([this](Connection& connection) {
    if (!connection.closed) onReadable(connection);
  });
  sendBatch();
  runDeferredWork();
  return !stopping_;
}

int Worker::nextTimeoutMs() const {
  if (rotation_.anyDeferred()) return 0;
  if (acceptPending_ && !acceptPaused_ && !acceptCapped_) return 0;
  const bool sweepDue = idleTimeout_.count() != 0 && !connections_.empty();
  if (!acceptPaused_ && !sweepDue) return -1;
  Clock::time_point deadline = Clock::time_point::max();
  if (acceptPaused_) deadline = acceptResumeAt_;
  if (sweepDue) deadline = std::min(deadline, nextIdleSweep_);
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<int64_t>(left.count(), 0, INT32_MAX));
}

void Worker::dispatch(const epoll_event& event) {
  if (event.data.ptr == &wakeupTag) {
    onWakeup();
    return;
  }
  if (event.data.ptr == &listenerTag) {
    onAccept();
    return;
  }
  auto& connection = *static_cast<Connection*>(event.data.ptr);
  if (connection.closed) return;  // closed earlier in this batch
  if (event.events & EPOLLERR) {
    closeConnection(connection);
    return;
  }
  if (event.events & (EPOLLRDHUP | EPOLLHUP)) connection.finAnnounced = true;
  if (event.events & EPOLLOUT) onWritable(connection);
  if (!connection.closed && (event.events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))) onReadable(connection);
}

// Level-triggered: the counter is read back to zero, or the wake-up would fire on every pass.
void Worker::onWakeup() {
  uint64_t count = 0;
  [[maybe_unused]] ssize_t ignored = ::read(wakeup_.get(), &count, sizeof count);
  counters_.syscalls.add(1);
  if (stopRequested_.load(std::memory_order_acquire)) {
    stopping_ = true;
    return;
  }
  // Otherwise the budget (a connection closed on another worker below the cap: it unparked us
  // first), another worker handing over connections, or both.
  if (!budget_.parked(index_)) acceptCapped_ = false;
  takeHandedOff();
}

// On the worker's thread when woken, or on the control side after join(). Each one's budget slot
// was taken by the worker that accepted it; the engine-wide count does not care which worker
// gives it back.
void Worker::takeHandedOff() noexcept {
  if (!balancer_) return;
  for (UniqueFd& socket : balancer_->takeQueued(index_)) {
    if (!addConnection(std::move(socket))) budget_.give(index_);
  }
}

// Closed connections are freed only now that no event of the pass can refer to them.
void Worker::runDeferredWork() {
  if (acceptPaused_ && Clock::now() >= acceptResumeAt_) acceptPaused_ = false;
  if (acceptPending_ && !acceptPaused_ && !acceptCapped_) onAccept();
  closeIdleConnections();
  closedThisBatch_.clear();
}

void Worker::closeIdleConnections() {
  sweepIdleConnections([this](Connection& connection) { closeConnection(connection); });
}

void Worker::onAccept() {
  if (acceptPaused_ || acceptCapped_) {
    acceptPending_ = true;  // edge-triggered: remember the edge for when the pause ends
    return;
  }
  acceptPending_ = false;
  for (uint32_t i = 0; i < config_.acceptBudget; ++i) {
    if (!budget_.tryTake()) {
      parkAtCap();
      return;
    }
    if (!acceptOne()) return;
  }
  acceptPending_ = true;  // edge-triggered: nobody will tell us about the rest
}

// Returns true when it is worth trying to accept another connection. Called holding a budget
// slot, which becomes the new connection's or goes back.
bool Worker::acceptOne() {
  int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  counters_.syscalls.add(1);
  if (fd >= 0) {
    acceptBackoff_ = std::chrono::milliseconds{0};
    UniqueFd socket = placeAccepted(UniqueFd(fd));
    if (socket && !addConnection(std::move(socket))) budget_.give(index_);
    return true;
  }
  const int error = errno;
  budget_.give(index_);
  if (error == EAGAIN || error == EWOULDBLOCK) return false;
  if (error == EINTR || !onAcceptError(error)) return true;
  acceptPending_ = true;  // the clients left in the queue are accepted when the pause ends
  return false;
}

// At max_connections: the clients wait in the kernel's accept queue, as when no fd is left, until
// a close on any worker of this engine frees a slot and wakes this one.
void Worker::parkAtCap() {
  acceptPending_ = true;
  if (!budget_.park(index_)) return;  // a slot freed meanwhile: accept again on the next pass
  acceptCapped_ = true;
  counters_.accept_cap_pauses.add(1);
}

// Returns false when the connection could not be registered (it is closed, and counted).
bool Worker::addConnection(UniqueFd socket) {
  setNoDelay(socket.get());
  if (registerConnection(std::move(socket)) == nullptr) {
    registrationFailed();
    return false;
  }
  counters_.accepted.add(1);
  return true;
}

void Worker::adoptConnection(UniqueFd socket, const char* pending, size_t pendingBytes, bool peerClosed) {
  assert(!running());
  Connection* connection = registerConnection(std::move(socket));
  if (connection == nullptr) {
    throw EngineError(EPOLL_ECHO_ESYSTEM,
                      "worker " + std::to_string(index_) + " cannot register an adopted connection");
  }
  restoreAdopted(*connection, pending, pendingBytes, peerClosed, [this](Connection& adopted) {
    closeConnection(adopted);
    closedThisBatch_.clear();
  });
}

// Puts a socket in the connection table and the epoll set. Returns nullptr, having closed the
// socket, when memory is short or epoll refuses it.
Connection* Worker::registerConnection(UniqueFd socket) {
  std::unique_ptr<Connection> connection;
  try {
    connection = std::make_unique<Connection>(std::move(socket), config_.highWaterBytes);
    // Reserved here so that closing a connection or queueing it for later never allocates.
    const size_t tracked = connections_.size() + closedThisBatch_.size() + 1;
    reserveRoom(connections_, connections_.size() + 1);
    reserveRoom(closedThisBatch_, tracked);
    rotation_.reserve(tracked);
  } catch (const std::bad_alloc&) {
    return nullptr;  // the socket closes with `connection` or `socket`
  }
  epoll_event event{};
  event.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  event.data.ptr = connection.get();
  counters_.syscalls.add(1);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, connection->fd.get(), &event) != 0) return nullptr;
  return track(std::move(connection));
}

void Worker::onReadable(Connection& connection) {
  // A connection whose budget ran out in the previous pass is read at the end of this one, after
  // every connection epoll reports now, whatever it reports for this one.
  if (connection.readPaused || connection.peerClosed || ReadRotation<Connection>::waiting(connection)) return;
  size_t budget = config_.readBudgetBytes;
  while (!connection.closed) {
    // Never more than the high-water mark leaves room for, so what the connection owes its client
    // (the output buffer plus the batch) never exceeds the mark whatever the read budget: the
    // documented memory bound per connection.
    if (connection.owed() >= config_.highWaterBytes) {
      // Bytes still in the batch may all be sent: look again once it went (the next pass).
      // Bytes in the output buffer wait for EPOLLOUT, which resumes reading once half drained.
      if (connection.batched) {
        queueForResume(connection);
      } else {
        connection.readPaused = true;
        counters_.backpressure_pauses.add(1);
      }
      return;
    }
    const size_t wanted = std::min({kReadChunk, budget, config_.highWaterBytes - connection.owed()});
    // Room for this read and, unless this connection has its entry already, one more echo; else
    // the batch goes now (which may close this connection or fill its output buffer: check again).
    if (batchBytes_ + wanted > kBatchBufferBytes || (!endsBatch(connection) && batch_.size() == kMaxBatchedEchoes)) {
      sendBatch();
      continue;
    }
    char* const into = batchBuffer_.get() + batchBytes_;
    // recv, not read: read() goes through the VFS layer first (vfs_read, sock_read_iter,
    // fdget_pos), which cost the engine about 3 % of its CPU at 100 ping-pong connections.
    const ssize_t count = raw::recv(connection.fd.get(), into, wanted);
    counters_.syscalls.add(1);
    if (count > 0) {
      counters_.bytes_in.add(static_cast<uint64_t>(count));
      connection.lastActive = now_;
      if (!echo(connection, into, static_cast<size_t>(count))) return;
      // After a FIN the short-read rule does not hold: read on until recv() returns 0.
      if (static_cast<size_t>(count) < wanted && !connection.finAnnounced) return;
      if (budget <= static_cast<size_t>(count)) {
        queueForResume(connection);
        return;
      }
      budget -= static_cast<size_t>(count);
    } else if (count == 0) {
      connection.peerClosed = true;  // half-close: finish echoing, then close (sendBatch or onWritable)
      if (connection.pending.empty() && !connection.batched) closeConnection(connection);
      return;
    } else if (errno != EINTR) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) closeConnection(connection);
      return;
    }
  }
}

void Worker::onWritable(Connection& connection) {
  if (connection.pending.empty() || !flushPending(connection)) return;
  if (connection.pending.empty() && connection.peerClosed) {
    closeConnection(connection);
    return;
  }
  // Hysteresis: resume only well below the mark, so a connection does not flap per packet.
  if (connection.readPaused && connection.pending.size() <= config_.highWaterBytes / 2) {
    connection.readPaused = false;
    queueForResume(connection);  // edge-triggered: the unread data will not be announced again
  }
}

// Takes bytes just read into the batch buffer at `bytes`: sent with the rest of the batch, or,
// when earlier bytes still wait in the output buffer, queued behind them. Returns false when the
// connection was closed.
bool Worker::echo(Connection& connection, const char* bytes, size_t count) {
  if (!connection.pending.empty()) return sendNow(connection, bytes, count);
  batchBytes_ += count;
  // A connection is read by one onReadable() call per loop pass (ReadRotation), and its reads are
  // back to back in the buffer: one entry each (sendBatch() would still be right with two).
  connection.batchedBytes += static_cast<uint32_t>(count);
  if (endsBatch(connection)) {
    batch_.back().length += static_cast<uint32_t>(count);
  } else {
    connection.batched = true;
    batch_.push_back({&connection, static_cast<uint32_t>(bytes - batchBuffer_.get()), static_cast<uint32_t>(count)});
  }
  return true;
}

// The second pass: sends every echo read in this batch. Connections closed since their read are
// skipped (their memory lives until the end of the batch). Half-closed connections whose echo is
// all sent are closed only after every entry went, so a close can never drop a later entry.
void Worker::sendBatch() {
  for (const BatchedEcho& entry : batch_) {
    Connection& connection = *entry.connection;
    connection.batched = false;
    connection.batchedBytes = 0;
    if (!connection.closed) sendNow(connection, batchBuffer_.get() + entry.offset, entry.length);
  }
  for (const BatchedEcho& entry : batch_) {
    Connection& connection = *entry.connection;
    if (!connection.closed && connection.peerClosed && connection.pending.empty()) closeConnection(connection);
  }
  batch_.clear();
  batchBytes_ = 0;
}

// Sends what can be sent now and keeps the rest. Returns false when the connection was closed.
bool Worker::sendNow(Connection& connection, const char* bytes, size_t count) {
  if (connection.pending.empty()) {
    ssize_t sent;
    do {
      sent = raw::send(connection.fd.get(), bytes, count, MSG_NOSIGNAL);
      counters_.syscalls.add(1);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      closeConnection(connection);
      return false;
    }
    const size_t done = sent > 0 ? static_cast<size_t>(sent) : 0;
    counters_.bytes_out.add(done);
    if (done > 0) connection.lastActive = now_;
    bytes += done;
    count -= done;
  }
  try {
    connection.pending.append(bytes, count);
  } catch (const std::bad_alloc&) {
    closeConnection(connection);  // cannot keep the bytes: closing beats silently losing them
    return false;
  }
  return true;
}

// Returns false when the connection was closed.
bool Worker::flushPending(Connection& connection) {
  while (!connection.pending.empty()) {
    const ssize_t sent =
        raw::send(connection.fd.get(), connection.pending.data(), connection.pending.size(), MSG_NOSIGNAL);
    counters_.syscalls.add(1);
    if (sent > 0) {
      counters_.bytes_out.add(static_cast<uint64_t>(sent));
      connection.lastActive = now_;
      connection.pending.consume(static_cast<size_t>(sent));
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    closeConnection(connection);
    return false;
  }
  return true;
}

void Worker::queueForResume(Connection& connection) { rotation_.defer(connection); }

void Worker::closeConnection(Connection& connection) {
  connection.closed = true;
  rotation_.remove(connection);  // rare (a busy connection failing): no pointer to freed memory later
  if (connection.shared) {
    // close() removes a descriptor from the epoll set only when it is the last copy of it.
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, connection.fd.get(), nullptr);
    counters_.syscalls.add(1);
  }
  connection.fd.reset();  // the last copy: close() also removes it from the epoll set
  connection.pending.clear();
  counters_.syscalls.add(1);
  counters_.closed.add(1);
  closedThisBatch_.push_back(untrack(connection));  // reserved by registerConnection: cannot throw
}

}  // namespace epoll_echo
