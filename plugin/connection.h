// Connection: one accepted client socket and the bytes it still has to be sent.
#pragma once

#include <cstdint>

#include "output_buffer.h"
#include "unique_fd.h"

namespace epoll_echo {

// Owned by its Worker (in the worker's connection table); touched only by the worker thread.
// Its address is the epoll user data, so it never moves while registered.
struct Connection {
  explicit Connection(UniqueFd socket) : fd(std::move(socket)) {}

  UniqueFd fd;
  OutputBuffer pending;
  uint32_t slot = 0;          // index in the worker's connection table
  bool finAnnounced = false;  // epoll reported RDHUP/HUP: read until 0, not just a short read
  bool peerClosed = false;    // the client's FIN was read: close once `pending` is sent
  bool readPaused = false;    // backpressure: not read until `pending` drains
  bool queued = false;        // on the worker's resume list
  bool batched = false;       // has an echo in the worker's batch, not sent yet
  bool closed = false;        // closed in this batch; events still in the batch are stale
  bool shared = false;        // adopted: another engine may still hold a copy of the descriptor
};

}  // namespace epoll_echo
