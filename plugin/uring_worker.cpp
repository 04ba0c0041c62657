// UringWorker: the io_uring event loop. A multishot accept, a multishot recv per connection into
// provided buffers (the kernel picks one when bytes arrive, so idle connections hold none), and
// the echo sent from that same buffer. A loop pass is one io_uring_enter: it submits every
// operation the previous pass prepared and waits for the next completions.
#include "uring_worker.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <new>
#include <stdexcept>

#include "engine_error.h"
#include "fault_injection.h"
#include "vector_room.h"
#include "worker_policy.h"

namespace epoll_echo {
namespace {

// Single issuer and deferred task work (Linux 6.1): completions are handled only inside the
// worker's own io_uring_enter, never by interrupting it. Disabled at set-up so that the worker's
// thread, which enables the ring, becomes its issuer.
constexpr unsigned kRingFlags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL;
constexpr unsigned kSubmissionEntries = 1024;  // a full queue is submitted early, never an error
// Room for one pass of ~4,000 ping-pong connections (a recv and a send completion each). A
// multishot recv posts one completion per buffer it fills (up to read_budget / buffer + 1 per
// pass), so streams can post more: the kernel keeps the overflow (IORING_FEAT_NODROP) and hands
// it over at the next io_uring_enter.
constexpr unsigned kCompletionEntries = 8192;
constexpr unsigned kCompletionBatch = 256;  // completions copied out of the ring at once
// Batched waits: after a pass that handled n >= kBatchAfter completions (a send and a recv per
// message: 8 busy connections), the next io_uring_enter waits for n / 2 of them (at most
// kMaxBatch) or kBatchWait, whichever comes first. With deferred task work the kernel wakes the
// worker only once that many are ready, so while many connections are busy a pass echoes more
// messages per wake-up (the 100-connection ping-pong's messages per CPU-second rose 1.12x, its
// p99 fell; docs/benchmarks.md); a message waits at most kBatchWait longer, only under that load.
// Fewer busy connections wait for one completion, as before: a batch there would make a lone
// client's message wait for others that may never come.
constexpr size_t kBatchAfter = 16;
constexpr size_t kMaxBatch = 32;
constexpr std::chrono::microseconds kBatchWait{50};
// Provided buffers: the kernel takes one per recv that finds bytes and the worker gives it back
// once the echo is sent or copied, so only connections with bytes in flight hold one.
constexpr unsigned kBufferCount = 256;  // a power of two (the buffer ring's index mask)
constexpr uint32_t kMaxBufferBytes = 32 * 1024;
constexpr uint16_t kBufferGroup = 0;
// Hand-over: how long one wait for cancelled operations may take, and how many such waits; a
// socket operation that ignores a cancel this long means a broken kernel, reported as a failure.
constexpr long kQuiesceWaitNs = 100'000'000;
constexpr int kMaxQuiesceWaits = 100;

// user_data: connections are at least 8-byte aligned, so their low bit says recv or send and
// values below 8 are free for the worker's own operations.
constexpr uint64_t kAcceptData = 1;
constexpr uint64_t kWakeupData = 2;
constexpr uint64_t kCancelData = 3;
constexpr uint64_t kSendBit = 1;

int setUpRing(io_uring& ring, unsigned entries, unsigned completionEntries, unsigned extraFlags) noexcept {
  io_uring_params params{};
  params.flags = kRingFlags | extraFlags | IORING_SETUP_CQSIZE;
  params.cq_entries = completionEntries;
  const int result = io_uring_queue_init_params(entries, &ring, &params);
  return result < 0 ? -result : 0;
}

}  // namespace

int UringWorker::probe() noexcept {
  io_uring ring;
  const int error = setUpRing(ring, 4, kCompletionEntries, 0);
  if (error == 0) io_uring_queue_exit(&ring);
  return error;
}

std::string UringWorker::describeSetupError(int error) {
  std::string detail = describeErrno("io_uring_setup", error);
  if (error == EINVAL) detail += " (it needs Linux 6.1 or later)";
  if (error == EPERM) detail += " (disabled by the kernel.io_uring_disabled sysctl or a seccomp filter)";
  if (error == ENOSYS) detail += " (not in this kernel, or hidden by a seccomp filter)";
  return detail;
}

UringWorker::BufferPool::~BufferPool() {
  if (mapping != nullptr) ::munmap(mapping, mappingBytes);
}

UringWorker::UringWorker(uint32_t index, const EngineConfig& config, ConnectionBudget& budget,
                         ConnectionBalancer* balancer, UniqueFd listener, FailureReport reportFailure)
    // A blocking eventfd: the ring waits for it to be readable (a non-blocking one can fail the
    // read with EAGAIN instead). Writers never block: its counter cannot come near overflowing.
    : WorkerBase(index, config, budget, balancer, std::move(listener), std::move(reportFailure), EFD_CLOEXEC),
      bufferBytes_(std::min({kMaxBufferBytes, config.highWaterBytes, config.readBudgetBytes})) {
  const size_t ringBytes = kBufferCount * sizeof(io_uring_buf);  // a multiple of the page size
  pool_.mappingBytes = ringBytes + size_t{kBufferCount} * bufferBytes_;
  void* mapping = ::mmap(nullptr, pool_.mappingBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapping == MAP_FAILED) throwErrno(EPOLL_ECHO_ENOMEM, "mmap of the io_uring buffers");
  pool_.mapping = mapping;
  pool_.ring = static_cast<io_uring_buf_ring*>(mapping);
  pool_.buffers = static_cast<char*>(mapping) + ringBytes;
  budget_.setWakeup(index_, wakeup_.get());  // last, as in Worker: nothing after it may throw
}

UringWorker::~UringWorker() {
  requestStop();
  join();
}

void UringWorker::start() {
  assert(!running());
  ring_.emplace();
  const unsigned entries = fault::uringRingEntries(kSubmissionEntries);
  const unsigned completionEntries = fault::uringRingEntries(kCompletionEntries);
  if (const int error = setUpRing(*ring_, entries, completionEntries, IORING_SETUP_R_DISABLED); error != 0) {
    ring_.reset();
    throw EngineError(EPOLL_ECHO_ESYSTEM, "worker " + std::to_string(index_) + ": " + describeSetupError(error));
  }
  resetForRun();
  try {
    thread_ = std::thread([this] { run(); });
  } catch (...) {
    io_uring_queue_exit(&*ring_);
    ring_.reset();
    throw;
  }
}

void UringWorker::releaseBackendState() noexcept {
  closing_.clear();  // empty: the thread left only once the ring gave every operation back
  retryList_.clear();
}

// Between runs the ring holds nothing for it: only the retry list may still name it.
void UringWorker::forgetConnection(UringConnection& connection) noexcept {
  retryList_.erase(std::remove(retryList_.begin(), retryList_.end(), &connection), retryList_.end());
}

void UringWorker::run() noexcept {
  if (!enableRing()) return;
  try {
    loop();
  } catch (const std::exception& error) {
    fail(error.what(), 0);
  }
  try {
    quiesce();
  } catch (const std::exception& error) {
    fail(error.what(), 0);
  }
  io_uring_unregister_buf_ring(&*ring_, kBufferGroup);
  io_uring_queue_exit(&*ring_);
  ring_.reset();
}

// On the worker's thread: makes it the ring's single issuer, then hands the ring every buffer.
bool UringWorker::enableRing() noexcept {
  io_uring& ring = *ring_;
  int result = io_uring_enable_rings(&ring);
  if (result == 0) {
    io_uring_register_ring_fd(&ring);  // saves a descriptor look-up per io_uring_enter; optional
    io_uring_buf_ring_init(pool_.ring);
    const int mask = io_uring_buf_ring_mask(kBufferCount);
    for (unsigned id = 0; id < kBufferCount; ++id) {
      io_uring_buf_ring_add(pool_.ring, bufferAt(static_cast<int>(id)), bufferBytes_, static_cast<uint16_t>(id), mask,
                            static_cast<int>(id));
    }
    io_uring_buf_ring_advance(pool_.ring, kBufferCount);
    io_uring_buf_reg registration{};
    registration.ring_addr = reinterpret_cast<uintptr_t>(pool_.ring);
    registration.ring_entries = kBufferCount;
    registration.bgid = kBufferGroup;
    result = io_uring_register_buf_ring(&ring, &registration, 0);
    if (result == 0) return true;
    fail("io_uring_register_buf_ring", -result);
  } else {
    fail("io_uring_enable_rings", -result);
  }
  io_uring_queue_exit(&ring);
  ring_.reset();
  return false;
}

void UringWorker::loop() {
  armWakeup();
  armAccept();
  // Backwards: serving may close a connection, which moves the last one (already served) into its slot.
  for (size_t slot = connections_.size(); slot-- > 0;) serve(*connections_[slot]);
  while (!stopping_) {
    const int result = submitAndWait(true);
    if (result < 0 && result != -EINTR && result != -ETIME && result != -EAGAIN && result != -EBUSY) {
      // EBADF, EFAULT, EINVAL: impossible while the worker owns the ring, so a bug or a corrupted
      // process. Retrying would spin; leave, and say so (stats, last error, the host's policy).
      fail("io_uring_enter", -result);
      return;
    }
    if (idleTimeout_.count() != 0) now_ = Clock::now();
    lastReaped_ = reapCompletions();
    if (lastReaped_ > 0) counters_.wakeups.add(1);
    runDeferredWork();
  }
}

// After the stop request: cancels every operation and waits for the ring to give each back, so
// that the bytes they moved are counted and those they read are kept (in `pending`, for a resume
// or a hand-over).
void UringWorker::quiesce() {
  stopping_ = true;
  for (int wait = 0; inFlight_ > 0 && wait < kMaxQuiesceWaits; ++wait) {
    io_uring_sqe* sqe = nextSqe();
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data64(sqe, kCancelData);
    submitAndWait(false);
    reapCompletions();
  }
  if (inFlight_ > 0) fail("io_uring cancel: operations still in flight after 10 s", 0);
  for (auto& connection : closing_) connection->fd.reset();
  closing_.clear();
  for (size_t slot = connections_.size(); slot-- > 0;) collectOwed(*connections_[slot]);
}

// One io_uring_enter: submits what the pass prepared and waits for a completion, until the next
// deadline (accept back-off, idle sweep) or, for a quiesce, at most kQuiesceWaitNs. After a busy
// pass it waits for a batch of completions instead, for at most kBatchWait.
int UringWorker::submitAndWait(bool block) {
  Clock::time_point deadline = Clock::time_point::max();
  unsigned wanted = 1;
  if (block && lastReaped_ >= kBatchAfter) {
    wanted = static_cast<unsigned>(std::min<size_t>(lastReaped_ / 2, kMaxBatch));
    deadline = Clock::now() + kBatchWait;
  }
  if (!retryList_.empty()) deadline = Clock::time_point::min();
  if (acceptPaused_) deadline = std::min(deadline, acceptResumeAt_);
  if (idleTimeout_.count() != 0 && !connections_.empty()) deadline = std::min(deadline, nextIdleSweep_);
  __kernel_timespec timeout{};
  __kernel_timespec* limit = nullptr;
  if (!block) {
    timeout.tv_nsec = kQuiesceWaitNs;
    limit = &timeout;
  } else if (deadline != Clock::time_point::max()) {
    const auto left = std::max(Clock::duration::zero(), deadline - Clock::now());
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    timeout.tv_sec = ns / 1'000'000'000;
    timeout.tv_nsec = ns % 1'000'000'000;
    limit = &timeout;
  }
  io_uring_cqe* ignored = nullptr;
  counters_.syscalls.add(1);
  return io_uring_submit_and_wait_timeout(&*ring_, &ignored, wanted, limit, nullptr);
}

// Copies the completions out and handles them. Completions that did not fit in the completion
// queue wait in the kernel's overflow list (IORING_FEAT_NODROP), which the peek hands over once
// the queue is empty; a pass that finds them counts once.
size_t UringWorker::reapCompletions() {
  if (io_uring_cq_has_overflow(&*ring_)) counters_.completion_overflows.add(1);
  size_t total = 0;
  for (;;) {
    io_uring_cqe* cqes[kCompletionBatch];
    const unsigned count = io_uring_peek_batch_cqe(&*ring_, cqes, kCompletionBatch);
    Completion copies[kCompletionBatch];
    for (unsigned i = 0; i < count; ++i) copies[i] = {cqes[i]->user_data, cqes[i]->res, cqes[i]->flags};
    io_uring_cq_advance(&*ring_, count);
    for (unsigned i = 0; i < count; ++i) handle(copies[i]);
    total += count;
    if (count < kCompletionBatch) return total;
  }
}

void UringWorker::handle(const Completion& completion) {
  if ((completion.flags & IORING_CQE_F_MORE) == 0) --inFlight_;
  switch (completion.userData) {
    case kAcceptData:
      onAccept(completion.result, completion.flags);
      return;
    case kWakeupData:
      onWakeup(completion.result);
      return;
    case kCancelData:
      return;
    default:
      break;
  }
  auto* connection = reinterpret_cast<UringConnection*>(completion.userData & ~kSendBit);
  if ((completion.userData & kSendBit) != 0) {
    onSend(*connection, completion.result);
  } else {
    onRecv(*connection, completion.result, completion.flags);
  }
}

// A free submission entry, submitting the full queue first when there is none. Counts it in flight.
io_uring_sqe* UringWorker::nextSqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&*ring_);
  if (sqe == nullptr) {
    counters_.syscalls.add(1);
    io_uring_submit(&*ring_);
    sqe = io_uring_get_sqe(&*ring_);
    if (sqe == nullptr) throw std::runtime_error("io_uring_submit: the submission queue stays full");
  }
  ++inFlight_;
  return sqe;
}

void UringWorker::runDeferredWork() {
  retrying_.swap(retryList_);
  for (UringConnection* connection : retrying_) {
    connection->recvRetry = false;
    armRecv(*connection);
  }
  retrying_.clear();
  if (acceptPaused_ && Clock::now() >= acceptResumeAt_) acceptPaused_ = false;
  armAccept();
  closeIdleConnections();
}

void UringWorker::closeIdleConnections() {
  sweepIdleConnections([this](UringConnection& connection) { closeConnection(connection); });
}

void UringWorker::armWakeup() {
  io_uring_sqe* sqe = nextSqe();
  io_uring_prep_read(sqe, wakeup_.get(), &wakeupValue_, sizeof wakeupValue_, 0);
  io_uring_sqe_set_data64(sqe, kWakeupData);
}

void UringWorker::onWakeup(int result) {
  if (stopping_) return;
  if (stopRequested_.load(std::memory_order_acquire)) {
    stopping_ = true;
    return;
  }
  if (result < 0 && result != -EINTR && result != -EAGAIN) {
    fail("eventfd read", -result);
    stopping_ = true;
    return;
  }
  // Otherwise the budget (a connection closed on another worker below the cap: it unparked us
  // first), another worker handing over connections, or both.
  serveHandedOff();
  if (acceptCapped_ && !budget_.parked(index_)) {
    acceptCapped_ = false;
    budget_.unpark(index_);
  }
  armWakeup();
}

// Without a cap one multishot accept serves every client. With one, the worker waits for the
// listener to be readable and accepts as the epoll backend does, one slot taken per connection,
// so that the clients past the cap wait in the kernel's queue and no slot is held for a client
// that may arrive at another worker.
void UringWorker::armAccept() {
  if (acceptArmed_ || acceptPaused_ || acceptCapped_ || stopping_) return;
  io_uring_sqe* sqe = nextSqe();
  acceptMultishot_ = !budget_.capped();
  if (acceptMultishot_) {
    io_uring_prep_multishot_accept(sqe, listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  } else {
    io_uring_prep_poll_add(sqe, listener_.get(), POLLIN);
  }
  io_uring_sqe_set_data64(sqe, kAcceptData);
  acceptArmed_ = true;
}

void UringWorker::onAccept(int result, uint32_t flags) {
  const bool stillArmed = (flags & IORING_CQE_F_MORE) != 0;
  if (!stillArmed) acceptArmed_ = false;
  if (!acceptMultishot_) {
    if (result > 0 && !stopping_) acceptReady();
    return;
  }
  if (result >= 0) {
    acceptBackoff_ = std::chrono::milliseconds{0};
    if (UniqueFd socket = placeAccepted(UniqueFd(result))) addConnection(std::move(socket));
    return;
  }
  const int error = -result;
  if (error == ECANCELED || error == EAGAIN || error == EINTR) return;
  onAcceptError(error);
  if (acceptPaused_ && stillArmed) {
    io_uring_sqe* sqe = nextSqe();
    io_uring_prep_cancel64(sqe, kAcceptData, 0);
    io_uring_sqe_set_data64(sqe, kCancelData);
  }
}

// The listener is readable and the engine has a cap: up to accept_budget connections, each with
// the slot it takes.
void UringWorker::acceptReady() {
  for (uint32_t i = 0; i < config_.acceptBudget; ++i) {
    if (!budget_.tryTake()) {
      if (budget_.park(index_)) {
        acceptCapped_ = true;
        counters_.accept_cap_pauses.add(1);
        return;
      }
      continue;  // a slot freed meanwhile
    }
    const int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    counters_.syscalls.add(1);
    if (fd >= 0) {
      acceptBackoff_ = std::chrono::milliseconds{0};
      if (UniqueFd socket = placeAccepted(UniqueFd(fd))) addConnection(std::move(socket));
      continue;
    }
    const int error = errno;
    budget_.give(index_);
    if (error == EAGAIN || error == EWOULDBLOCK) return;
    if (error != EINTR) onAcceptError(error);
    if (acceptPaused_) return;
  }
}

void UringWorker::addConnection(UniqueFd socket) {
  if (UringConnection* connection = registerAccepted(std::move(socket))) serve(*connection);
}

// Returns nullptr when the socket could not be registered (it is closed, and counted).
UringConnection* UringWorker::registerAccepted(UniqueFd socket) noexcept {
  setNoDelay(socket.get());
  UringConnection* connection = registerConnection(std::move(socket));
  if (connection == nullptr) {
    registrationFailed();
    if (budget_.capped()) budget_.give(index_);
    return nullptr;
  }
  counters_.accepted.add(1);
  return connection;
}

// On the worker's thread, woken by the worker that handed them over.
void UringWorker::serveHandedOff() {
  if (!balancer_) return;
  for (UniqueFd& socket : balancer_->takeQueued(index_)) addConnection(std::move(socket));
}

// After join(): registered only; the next start() serves every connection.
void UringWorker::takeHandedOff() noexcept {
  if (!balancer_) return;
  for (UniqueFd& socket : balancer_->takeQueued(index_)) registerAccepted(std::move(socket));
}

void UringWorker::adoptConnection(UniqueFd socket, const char* pending, size_t pendingBytes, bool peerClosed) {
  assert(!running());
  UringConnection* connection = registerConnection(std::move(socket));
  if (connection == nullptr) {
    throw EngineError(EPOLL_ECHO_ENOMEM, "worker " + std::to_string(index_) + " cannot register an adopted connection");
  }
  restoreAdopted(*connection, pending, pendingBytes, peerClosed,
                 [this](UringConnection& adopted) { closeConnection(adopted); });
}

// Puts a socket in the connection table. Returns nullptr, having closed the socket, when memory
// is short.
UringConnection* UringWorker::registerConnection(UniqueFd socket) {
  try {
    auto connection = std::make_unique<UringConnection>(std::move(socket), config_.highWaterBytes);
    // Reserved here so that closing a connection or retrying its recv never allocates.
    const size_t tracked = connections_.size() + closing_.size() + 1;
    reserveRoom(connections_, connections_.size() + 1);
    reserveRoom(closing_, tracked);
    reserveRoom(retryList_, tracked);
    reserveRoom(retrying_, tracked);
    return track(std::move(connection));
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

// Outside a stop: sends what the connection owes, in order (the rest of `outgoing`, then `pending` moved there
// whole), unless a send is in flight; with nothing owed after its client's FIN, closes it. Then
// reads it, if it may.
void UringWorker::serve(UringConnection& connection) {
  if (stopping_) return;
  if (!connection.sendArmed) {
    if (connection.outgoing.empty()) connection.outgoing.swap(connection.pending);
    if (!connection.outgoing.empty()) {
      sendOutgoing(connection);
    } else if (connection.peerClosed) {
      closeConnection(connection);  // half-close: everything echoed
      return;
    }
  }
  armRecv(connection);
}

// Backpressure: a connection is read only while one more read fits under high_water_bytes,
// counting what it holds for its client (UringConnection::heldBytes); once it stops, it is not
// read again until it owes nothing. Counts each pause.
bool UringWorker::mayRead(UringConnection& connection) {
  if (connection.readPaused && connection.owedBytes() == 0) connection.readPaused = false;
  if (!connection.readPaused && connection.heldBytes() + bufferBytes_ > config_.highWaterBytes) {
    connection.readPaused = true;
    counters_.backpressure_pauses.add(1);
  }
  return !connection.readPaused;
}

// One recv per connection, multishot: it stays armed across messages, so a message costs one
// submission (its echo's send) instead of two. Armed with a limit: the kernel ends it once it
// read that many bytes (its last read may fill a whole buffer past the limit), so that one
// arming reads at most read_budget_bytes and at most what high_water_bytes leaves room for.
// That bounds what one connection reads per loop pass (the fairness the epoll backend's read
// budget gives: the kernel would otherwise keep reading a fast sender into every free buffer)
// and what it can hold for its client (high_water_bytes, as under epoll). A kernel that knows no
// such limit (it came to Linux in 2025; Debian 12's 6.1 lacks it) refuses the recv with EINVAL,
// and the worker arms a one-shot recv of one buffer each time instead: the same bounds, a
// submission more per message.
void UringWorker::armRecv(UringConnection& connection) {
  if (connection.recvArmed || connection.recvRetry || connection.closed || connection.peerClosed || stopping_) return;
  if (!mayRead(connection)) return;
  io_uring_sqe* sqe = nextSqe();
  if (recvMultishot_) {
    // mayRead() left room for at least one buffer.
    const size_t room = std::min<size_t>(config_.readBudgetBytes, config_.highWaterBytes - connection.heldBytes());
    io_uring_prep_recv_multishot(sqe, connection.fd.get(), nullptr, 0, 0);
    sqe->ioprio |= fault::multishotRecvFlags();
    sqe->file_index = static_cast<uint32_t>(room - bufferBytes_ + 1);  // the total limit (`optlen` in newer headers)
  } else {
    io_uring_prep_recv(sqe, connection.fd.get(), nullptr, bufferBytes_, 0);
  }
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(sqe, reinterpret_cast<uintptr_t>(&connection));
  connection.recvArmed = true;
  connection.recvMultishot = recvMultishot_;
}

void UringWorker::onRecv(UringConnection& connection, int result, uint32_t flags) {
  const bool ended = (flags & IORING_CQE_F_MORE) == 0;  // else the recv stays armed
  if (ended) connection.recvArmed = false;
  const int buffer = (flags & IORING_CQE_F_BUFFER) != 0 ? static_cast<int>(flags >> IORING_CQE_BUFFER_SHIFT) : -1;
  if (connection.closed) {
    if (buffer >= 0) recycleBuffer(buffer);
    finishClose(connection);
    return;
  }
  if (result > 0) {
    const bool open = onBytes(connection, buffer, static_cast<uint32_t>(result));
    if (open && ended) armRecv(connection);  // its limit reached: the next pass reads on
    return;
  }
  if (buffer >= 0) recycleBuffer(buffer);
  if (result == 0) {
    connection.peerClosed = true;                  // half-close: closed once everything is echoed
    if (!connection.sendArmed) serve(connection);  // else when the send completes
  } else if (result == -ENOBUFS) {
    // Every buffer holds an echo being sent: those sends complete within the pass, so try again.
    counters_.recv_buffer_waits.add(1);
    connection.recvRetry = true;
    retryList_.push_back(&connection);
  } else if (result == -EINVAL && connection.recvMultishot) {
    // No limited multishot recv in this kernel: one-shot recvs from now on (the other
    // connections' multishot recvs of this pass are refused the same way).
    recvMultishot_ = false;
    armRecv(connection);
  } else if (result == -EINTR || result == -EAGAIN) {
    armRecv(connection);
  } else if (result != -ECANCELED) {
    closeConnection(connection);  // ECONNRESET and the like
  }
}

// Bytes a recv put in provided buffer `buffer`: echoed straight from it when the connection owes
// nothing else (and is not stopping); otherwise queued behind what it owes, and the buffer goes
// back to the ring at once, so a connection pins at most the one buffer its send is using.
// Returns false when it closed the connection (no memory to keep the bytes): it may be freed.
bool UringWorker::onBytes(UringConnection& connection, int buffer, uint32_t length) {
  counters_.bytes_in.add(length);
  connection.lastActive = now_;
  if (!stopping_ && !connection.sendArmed && connection.owedBytes() == 0) {
    connection.heldBuffer = buffer;
    connection.heldOffset = 0;
    connection.heldLength = length;
    sendHeld(connection);
    return true;
  }
  try {
    connection.pending.append(bufferAt(buffer), length);
  } catch (const std::bad_alloc&) {
    recycleBuffer(buffer);
    closeConnection(connection);  // cannot keep the bytes: closing beats silently losing them
    return false;
  }
  recycleBuffer(buffer);
  mayRead(connection);  // counts the pause when these bytes reached the mark
  return true;
}

// Sends the echo straight from the buffer the kernel read it into. MSG_DONTWAIT: a send that
// cannot complete now comes back at once, so a client that does not read never pins a buffer.
void UringWorker::sendHeld(UringConnection& connection) {
  io_uring_sqe* sqe = nextSqe();
  io_uring_prep_send(sqe, connection.fd.get(), bufferAt(connection.heldBuffer) + connection.heldOffset,
                     connection.heldLength, MSG_NOSIGNAL | MSG_DONTWAIT);
  io_uring_sqe_set_data64(sqe, reinterpret_cast<uintptr_t>(&connection) | kSendBit);
  connection.sendArmed = true;
}

// Sends `outgoing`, waiting in the kernel until the client makes room. Nothing is appended to
// `outgoing` while the send is in flight (bytes read meanwhile go to `pending`), so the bytes
// being sent never move.
void UringWorker::sendOutgoing(UringConnection& connection) {
  io_uring_sqe* sqe = nextSqe();
  io_uring_prep_send(sqe, connection.fd.get(), connection.outgoing.data(), connection.outgoing.size(), MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, reinterpret_cast<uintptr_t>(&connection) | kSendBit);
  connection.sendArmed = true;
}

void UringWorker::onSend(UringConnection& connection, int result) {
  connection.sendArmed = false;
  if (connection.closed) {
    finishClose(connection);
    return;
  }
  if (result < 0 && result != -EAGAIN && result != -EINTR && result != -ECANCELED) {
    closeConnection(connection);  // EPIPE, ECONNRESET: the client is gone
    return;
  }
  const uint32_t sent = result > 0 ? static_cast<uint32_t>(result) : 0;
  counters_.bytes_out.add(sent);
  if (sent > 0) connection.lastActive = now_;
  if (connection.heldBuffer < 0) {
    connection.outgoing.consume(sent);
  } else {
    connection.heldOffset += sent;
    connection.heldLength -= sent;
    if (connection.heldLength == 0) {
      recycleBuffer(connection.heldBuffer);
      connection.heldBuffer = -1;
    } else if (!keepHeldRemainder(connection)) {  // the client's window is full: wait for it in the kernel
      return;
    }
  }
  if (stopping_) return;
  serve(connection);
}

// Copies the unsent rest of the held buffer into `outgoing` (empty: a buffer is held only while
// nothing else is owed, and `pending` comes after it) and gives the buffer back. Returns false
// when it closed the connection (no memory to keep the bytes): it may be freed.
bool UringWorker::keepHeldRemainder(UringConnection& connection) {
  const int buffer = connection.heldBuffer;
  try {
    connection.outgoing.append(bufferAt(buffer) + connection.heldOffset, connection.heldLength);
  } catch (const std::bad_alloc&) {
    closeConnection(connection);  // cannot keep the bytes: closing beats silently losing them
    return false;
  }
  recycleBuffer(buffer);
  connection.heldBuffer = -1;
  connection.heldLength = 0;
  return true;
}

// After the quiesce: what the connection owes, all in `pending` (for the next run or engine).
void UringWorker::collectOwed(UringConnection& connection) {
  if (connection.outgoing.empty()) return;
  try {
    connection.outgoing.append(connection.pending.data(), connection.pending.size());
  } catch (const std::bad_alloc&) {
    closeConnection(connection);  // cannot keep the bytes: closing beats silently losing them
    return;
  }
  connection.pending.swap(connection.outgoing);
  connection.outgoing.clear();
}

void UringWorker::recycleBuffer(int id) noexcept {
  io_uring_buf_ring_add(pool_.ring, bufferAt(id), bufferBytes_, static_cast<uint16_t>(id),
                        io_uring_buf_ring_mask(kBufferCount), 0);
  io_uring_buf_ring_advance(pool_.ring, 1);
}

char* UringWorker::bufferAt(int id) const noexcept { return pool_.buffers + size_t(id) * bufferBytes_; }

// Counts the close and frees the slot at once; the socket itself closes when the ring has given
// back the connection's operations (cancelled here), so that no completion finds it freed.
void UringWorker::closeConnection(UringConnection& connection) {
  if (connection.closed) return;
  connection.closed = true;
  if (connection.recvRetry) {
    retryList_.erase(std::remove(retryList_.begin(), retryList_.end(), &connection), retryList_.end());
    connection.recvRetry = false;
  }
  connection.pending.clear();
  // A send in flight may still read `outgoing`: its mapping goes with the connection in finishClose().
  if (!connection.sendArmed) connection.outgoing.clear();
  if (connection.heldBuffer >= 0 && !connection.sendArmed) {
    recycleBuffer(connection.heldBuffer);
    connection.heldBuffer = -1;
  }
  counters_.closed.add(1);
  std::unique_ptr<UringConnection> owned = untrack(connection);
  if (owned->idle()) {
    owned->fd.reset();
    counters_.syscalls.add(1);
    return;
  }
  io_uring_sqe* sqe = nextSqe();
  io_uring_prep_cancel_fd(sqe, owned->fd.get(), IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data64(sqe, kCancelData);
  owned->slot = static_cast<uint32_t>(closing_.size());
  closing_.push_back(std::move(owned));  // reserved by registerConnection: cannot throw
}

// A closed connection's operation came back: once it has none left, its socket closes.
void UringWorker::finishClose(UringConnection& connection) {
  if (!connection.idle()) return;
  if (connection.heldBuffer >= 0) recycleBuffer(connection.heldBuffer);
  connection.fd.reset();
  counters_.syscalls.add(1);
  const uint32_t slot = connection.slot;
  std::swap(closing_[slot], closing_.back());
  closing_[slot]->slot = slot;
  closing_.pop_back();
}

}  // namespace epoll_echo
