// notify_socket.h — a datagram socket standing in for systemd's notification socket
// ($NOTIFY_SOCKET): bound to a path or an @abstract name, read with a deadline.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <cstring>
#include <string>

#include "support/net.h"
#include "unique_fd.h"

namespace epoll_echo::test {

// Owns the socket; a path it was bound to is the caller's to remove. Use from one thread.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& name) : socket_(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (name.empty() || name.size() >= sizeof address.sun_path) return;
    std::memcpy(address.sun_path, name.data(), name.size());
    if (name[0] == '@') address.sun_path[0] = '\0';
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    bound_ = socket_ && ::bind(socket_.get(), reinterpret_cast<const sockaddr*>(&address), length) == 0;
  }
  bool bound() const { return bound_; }

  // The next datagram, or "" at the deadline.
  std::string receive(Deadline deadline) {
    pollfd ready{socket_.get(), POLLIN, 0};
    if (::poll(&ready, 1, millisecondsLeft(deadline)) != 1) return "";
    char buffer[512];
    const ssize_t got = ::recv(socket_.get(), buffer, sizeof buffer, 0);
    return got > 0 ? std::string(buffer, static_cast<std::size_t>(got)) : "";
  }

 private:
  UniqueFd socket_;
  bool bound_ = false;
};

}  // namespace epoll_echo::test
