// Opening the SO_REUSEPORT listening sockets of an engine, one per worker.
#pragma once

#include <cstdint>
#include <vector>

#include "config.h"
#include "unique_fd.h"

namespace epoll_echo {

struct ListenerSet {
  std::vector<UniqueFd> sockets;  // bound, listening, non-blocking, close-on-exec
  uint16_t port = 0;              // the port they share (the kernel's choice for port 0)
};

// Binds config.workers sockets, one per worker, to the configured address and port. Fails with EngineError
// (EBIND naming the address and the errno text) and leaves nothing open.
ListenerSet openListeners(const EngineConfig& config);

}  // namespace epoll_echo
