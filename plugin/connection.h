// Connection: one accepted client socket and the bytes it still has to be sent.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "output_buffer.h"
#include "unique_fd.h"

namespace epoll_echo {

// Owned by its Worker (in the worker's connection table); touched only by the worker thread.
// Its address is the epoll user data, so it never moves while registered.
struct Connection {
  // `highWaterBytes`: the most bytes it may owe its client (pending plus batched), its buffer's size.
  Connection(UniqueFd socket, size_t highWaterBytes) : fd(std::move(socket)), pending(highWaterBytes) {}

  // Bytes read and not sent yet: in the output buffer, or in the worker's batch.
  size_t owed() const noexcept { return pending.size() + batchedBytes; }

  UniqueFd fd;
  OutputBuffer pending;
  // When a byte last moved either way (the worker's clock of that loop pass): the idle timeout's.
  std::chrono::steady_clock::time_point lastActive{};
  uint32_t slot = 0;          // index in the worker's connection table
  uint32_t batchedBytes = 0;  // in the worker's batch, not sent yet
  bool finAnnounced = false;  // epoll reported RDHUP/HUP: read until 0, not just a short read
  bool peerClosed = false;    // the client's FIN was read: close once `pending` is sent
  bool readPaused = false;    // backpressure: not read until `pending` drains
  bool queued = false;        // waits in the worker's ReadRotation for its next read
  bool batched = false;       // has an echo in the worker's batch, not sent yet
  bool closed = false;        // closed in this batch; events still in the batch are stale
  bool shared = false;        // adopted or exported: another engine or host may hold a copy of the descriptor
};

}  // namespace epoll_echo
