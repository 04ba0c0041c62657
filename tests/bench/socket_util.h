// socket_util.h — opening a TCP socket to the server (numeric loopback address), blocking or not.
#pragma once

#include <cstdint>
#include <string>

namespace epoll_echo::bench {

// Returns a CLOEXEC socket with TCP_NODELAY, connected (blocking) or connecting (non-blocking),
// or -1 with `error` naming the failing call.
int openSocket(const std::string& host, uint16_t port, bool blocking, std::string& error);

}  // namespace epoll_echo::bench
