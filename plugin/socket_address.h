// SocketAddress: an IPv4 or IPv6 socket address parsed from the numeric text of the config.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>

namespace epoll_echo {

// A value type; copy freely.
class SocketAddress {
 public:
  // Parses "127.0.0.1", "::1", "[::1]", or an IPv6 address with a zone, "fe80::1%eth0" or
  // "fe80::1%2" (numeric only: no name lookup inside a plugin; the zone names an interface).
  static std::optional<SocketAddress> parse(const std::string& text, uint16_t port);
  static SocketAddress anyIpv6(uint16_t port);
  static SocketAddress anyIpv4(uint16_t port);
  // Reads the local address of a bound socket.
  static std::optional<SocketAddress> localOf(int fd);

  int family() const { return storage_.ss_family; }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t length() const { return length_; }
  uint16_t port() const;
  void setPort(uint16_t port);
  // "127.0.0.1:8080", "[::1]:8080" or "[fe80::1%lo]:8080".
  std::string toString() const;

 private:
  sockaddr_storage storage_{};
  socklen_t length_ = 0;
};

}  // namespace epoll_echo
