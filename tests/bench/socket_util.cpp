// socket_util.cpp — socket + TCP_NODELAY + (bind) + connect for IPv4 or IPv6 numeric addresses.
#include "socket_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace epoll_echo::bench {

namespace {

// Fills `address` from a numeric IPv4 or IPv6 text; returns its length, 0 when not numeric.
socklen_t toAddress(const std::string& text, uint16_t port, sockaddr_storage& address) {
  address = sockaddr_storage{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (::inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    return sizeof *v4;
  }
  if (::inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    return sizeof *v6;
  }
  return 0;
}

}  // namespace

int openSocket(const std::string& host, uint16_t port, bool blocking, std::string& error, const std::string& source) {
  sockaddr_storage address{};
  const socklen_t length = toAddress(host, port, address);
  if (length == 0) {
    error = "not a numeric address: " + host;
    return -1;
  }
  sockaddr_storage local{};
  const socklen_t localLength = source.empty() ? 0 : toAddress(source, 0, local);
  if (!source.empty() && (localLength == 0 || local.ss_family != address.ss_family)) {
    error = "source " + source + " is not a numeric address of the same family as " + host;
    return -1;
  }
  const int fd = ::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC | (blocking ? 0 : SOCK_NONBLOCK), 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (localLength != 0) {
#ifdef IP_BIND_ADDRESS_NO_PORT
    // Without it bind() picks a port unique to the source address alone; deferred to connect(),
    // the port only has to be unique per (source, destination) pair.
    ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), localLength) != 0) {
      error = std::string("bind ") + source + ": " + std::strerror(errno);
      ::close(fd);
      return -1;
    }
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), length) != 0 && errno != EINPROGRESS) {
    error = std::string("connect ") + host + ":" + std::to_string(port) + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace epoll_echo::bench
