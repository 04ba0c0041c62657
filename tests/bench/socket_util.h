// socket_util.h — opening a TCP socket to the server (numeric loopback address), blocking or not,
// optionally from a given source address (idle mode spreads its connections over several).
#pragma once

#include <cstdint>
#include <string>

namespace epoll_echo::bench {

// Returns a CLOEXEC socket with TCP_NODELAY, connected (blocking) or connecting (non-blocking),
// or -1 with `error` naming the failing call. A non-empty `source` (numeric, same family as
// `host`) is bound first, port chosen at connect time.
int openSocket(const std::string& host, uint16_t port, bool blocking, std::string& error,
               const std::string& source = {});

}  // namespace epoll_echo::bench
