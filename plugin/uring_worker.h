// UringWorker: the io_uring backend. One thread, one SO_REUSEPORT listening socket, one ring, one
// eventfd to wake it, and the connections it accepted. Echoes everything it reads back.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config.h"
#include "connection.h"
#include "connection_budget.h"
#include "output_buffer.h"
#include "unique_fd.h"
#include "worker_base.h"

namespace epoll_echo {

// A connection and the operations the ring holds for it: at most one recv (a multishot one stays
// armed across messages) and at most one send. Its bytes keep their order because a send never
// points into `pending`, where a recv appends: it sends either the provided buffer a recv just
// filled (when nothing else was owed) or `outgoing`, the owed bytes taken out of `pending` whole.
struct UringConnection : Connection {
  UringConnection(UniqueFd socket, size_t highWaterBytes)
      : Connection(std::move(socket), highWaterBytes), outgoing(highWaterBytes) {}
  // Everything the client is owed, in this order: the held buffer's rest, `outgoing`, `pending`.
  size_t owedBytes() const noexcept { return heldLength + outgoing.size() + pending.size(); }
  // What the connection holds for its client, against high_water_bytes: the owed bytes, with
  // `outgoing` counted by its mapping, which a partial send does not shrink (it is unmapped once
  // sent whole). So it never owes more than the mark, and each of its two mappings is at most
  // the mark rounded up to a page.
  size_t heldBytes() const noexcept { return heldLength + outgoing.capacity() + pending.size(); }
  bool idle() const noexcept { return !recvArmed && !sendArmed; }

  OutputBuffer outgoing;  // being sent (or next to be); nothing is appended while a send is in flight
  bool recvArmed = false;
  bool recvMultishot = false;  // the recv armed (or last armed) was a multishot one
  bool sendArmed = false;
  bool recvRetry = false;  // on the retry list: its recv found no free buffer
  int heldBuffer = -1;     // the provided buffer being echoed (the send in flight is from it), or -1
  uint32_t heldOffset = 0;
  uint32_t heldLength = 0;
};

// Thread rules as EventWorker's. The ring lives for one run: start() sets it up (disabled, so that
// the worker's thread, which enables it, is its single issuer) and the thread tears it down after
// cancelling every operation, so between runs nothing is in flight and a hand-over sees every
// byte still owed in the connections' output buffers.
class UringWorker final : public WorkerBase<UringConnection> {
 public:
  // 0 when this process can set up a ring as the workers do, else the errno io_uring_setup gave
  // (ENOSYS: no io_uring, EPERM: the io_uring_disabled sysctl or a seccomp filter).
  static int probe() noexcept;
  // "io_uring_setup: Operation not permitted (...)" for an errno probe() or start() got: what it
  // means for this backend.
  static std::string describeSetupError(int error);

  // Takes ownership of a bound, listening, non-blocking socket; counts its connections in
  // `budget`, which must outlive it, and hands connections to its peers through `balancer` (null:
  // it keeps what it accepts). Throws EngineError.
  UringWorker(uint32_t index, const EngineConfig& config, ConnectionBudget& budget, ConnectionBalancer* balancer,
              UniqueFd listener, FailureReport reportFailure);
  ~UringWorker() override;

  void start() override;
  void adoptConnection(UniqueFd socket, const char* pending, size_t pendingBytes, bool peerClosed) override;
  void takeHandedOff() noexcept override;

 private:
  // A completion copied out of the ring, so that handling it may submit freely.
  struct Completion {
    uint64_t userData;
    int32_t result;
    uint32_t flags;
  };
  // The provided-buffer ring and its buffers: mapped once, registered with each run's ring.
  struct BufferPool {
    void* mapping = nullptr;
    size_t mappingBytes = 0;
    io_uring_buf_ring* ring = nullptr;
    char* buffers = nullptr;
    ~BufferPool();
  };

  void releaseBackendState() noexcept override;
  void forgetConnection(UringConnection& connection) noexcept override;
  void run() noexcept;
  bool enableRing() noexcept;
  void loop();
  void quiesce();
  int submitAndWait(bool block);
  size_t reapCompletions();
  void handle(const Completion& completion);
  io_uring_sqe* nextSqe();
  void runDeferredWork();
  void closeIdleConnections();

  void armWakeup();
  void onWakeup(int result);
  void armAccept();
  void onAccept(int result, uint32_t flags);
  void acceptReady();
  void addConnection(UniqueFd socket);
  UringConnection* registerAccepted(UniqueFd socket) noexcept;
  void serveHandedOff();
  UringConnection* registerConnection(UniqueFd socket);

  void serve(UringConnection& connection);
  bool mayRead(UringConnection& connection);
  void armRecv(UringConnection& connection);
  void onRecv(UringConnection& connection, int result, uint32_t flags);
  bool onBytes(UringConnection& connection, int buffer, uint32_t length);
  void sendHeld(UringConnection& connection);
  void sendOutgoing(UringConnection& connection);
  void onSend(UringConnection& connection, int result);
  bool keepHeldRemainder(UringConnection& connection);
  void collectOwed(UringConnection& connection);
  void recycleBuffer(int id) noexcept;
  char* bufferAt(int id) const noexcept;
  void closeConnection(UringConnection& connection);
  void finishClose(UringConnection& connection);

  std::optional<io_uring> ring_;  // set up by start(), torn down by the thread when it leaves
  BufferPool pool_;
  const uint32_t bufferBytes_;  // one provided buffer: the most one recv reads
  bool recvMultishot_ = true;  // cleared when the kernel refuses a limited multishot recv
  uint64_t wakeupValue_ = 0;    // the eventfd read's target
  uint32_t inFlight_ = 0;  // operations the ring holds (a multishot accept counts once)
  size_t lastReaped_ = 0;  // completions the last loop pass handled: how long the next one waits

  // Closed, waiting for the ring to give back their last operation before the socket closes.
  std::vector<std::unique_ptr<UringConnection>> closing_;
  std::vector<UringConnection*> retryList_;  // recvs that found no free buffer: retried next pass
  std::vector<UringConnection*> retrying_;

  bool acceptArmed_ = false;
  bool acceptMultishot_ = false;  // armed: a multishot accept (no cap), else a poll of the listener
};

}  // namespace epoll_echo
