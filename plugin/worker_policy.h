// The decisions both worker backends take the same way: which accept errors concern only one
// connection, how long accepting backs off without descriptors, how often idle connections are
// swept.
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>

namespace epoll_echo::policy {

// EMFILE/ENFILE back-off: long enough not to spin, short enough to notice freed fds soon.
inline constexpr std::chrono::milliseconds kFirstAcceptBackoff{10};
inline constexpr std::chrono::milliseconds kMaxAcceptBackoff{500};
// The idle sweep runs every eighth of the timeout: a connection closes at most 12.5 % late. Not
// more often than every 10 ms (a tiny timeout must not turn the worker into a busy loop), and at
// least every second (a long one is still honoured within a second).
inline constexpr std::chrono::milliseconds kMinIdleSweepPeriod{10};
inline constexpr std::chrono::milliseconds kMaxIdleSweepPeriod{1000};

inline std::chrono::steady_clock::duration idleSweepPeriodFor(std::chrono::milliseconds timeout) {
  return std::clamp<std::chrono::steady_clock::duration>(timeout / 8, kMinIdleSweepPeriod, kMaxIdleSweepPeriod);
}

// Closes, with `close`, every connection in `connections` (a vector of owning pointers) that moved
// no byte since `idleSince`, a stalled flush included (a byte sent would have restarted its
// clock). `close` must remove the connection from the vector by moving the last one into its
// slot, which is looked at next. Returns how many it closed.
template <typename Connections, typename Close>
size_t closeIdleSince(Connections& connections, std::chrono::steady_clock::time_point idleSince, Close&& close) {
  size_t closed = 0;
  for (size_t slot = 0; slot < connections.size();) {
    auto& connection = *connections[slot];
    if (connection.lastActive > idleSince) {
      ++slot;
      continue;
    }
    close(connection);
    ++closed;
  }
  return closed;
}

// The next back-off after `previous` (zero after a success).
inline std::chrono::milliseconds nextAcceptBackoff(std::chrono::milliseconds previous) {
  return std::clamp(previous * 2, kFirstAcceptBackoff, kMaxAcceptBackoff);
}

// Errors that concern only the connection being accepted (see accept(2), "Error handling").
inline bool isTransientAcceptError(int error) {
  return error == ECONNABORTED || error == EPROTO || error == EPERM || error == ENETDOWN || error == ENOPROTOOPT ||
         error == EHOSTDOWN || error == ENONET || error == EHOSTUNREACH || error == EOPNOTSUPP || error == ENETUNREACH;
}

}  // namespace epoll_echo::policy
