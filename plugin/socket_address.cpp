// SocketAddress: parsing and printing of numeric IPv4/IPv6 socket addresses.
#include "socket_address.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>

#include <cstring>

namespace epoll_echo {
namespace {

std::string stripBrackets(const std::string& text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') return text.substr(1, text.size() - 2);
  return text;
}

// The zone of "fe80::1%eth0" or "fe80::1%2": an interface name, or its index in decimal. Names
// are looked up for any address, not only link-local ones as getaddrinfo does, so "::1%lo" works
// too (the kernel ignores the zone of an address that needs none).
std::optional<uint32_t> parseZone(const std::string& zone) {
  if (zone.empty()) return std::nullopt;
  if (zone.find_first_not_of("0123456789") == std::string::npos) {
    if (zone.size() > 10) return std::nullopt;
    const uint64_t index = std::stoull(zone);
    if (index > UINT32_MAX) return std::nullopt;
    return static_cast<uint32_t>(index);
  }
  const unsigned index = ::if_nametoindex(zone.c_str());
  if (index == 0) return std::nullopt;
  return index;
}

// "%lo" (or "%7" for an interface that has gone) for a zone; nothing without one.
std::string zoneSuffix(uint32_t zone) {
  if (zone == 0) return "";
  char name[IF_NAMESIZE];
  if (::if_indextoname(zone, name) != nullptr) return std::string("%") + name;
  return "%" + std::to_string(zone);
}

}  // namespace

std::optional<SocketAddress> SocketAddress::parse(const std::string& text, uint16_t port) {
  SocketAddress address;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address.storage_);
  if (::inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    address.length_ = sizeof(sockaddr_in);
    address.setPort(port);
    return address;
  }
  const std::string bare = stripBrackets(text);
  const size_t percent = bare.find('%');
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address.storage_);
  if (::inet_pton(AF_INET6, bare.substr(0, percent).c_str(), &v6->sin6_addr) != 1) return std::nullopt;
  if (percent != std::string::npos) {
    const std::optional<uint32_t> zone = parseZone(bare.substr(percent + 1));
    if (!zone) return std::nullopt;
    v6->sin6_scope_id = *zone;
  }
  v6->sin6_family = AF_INET6;
  address.length_ = sizeof(sockaddr_in6);
  address.setPort(port);
  return address;
}

SocketAddress SocketAddress::anyIpv6(uint16_t port) { return *parse("::", port); }

SocketAddress SocketAddress::anyIpv4(uint16_t port) { return *parse("0.0.0.0", port); }

std::optional<SocketAddress> SocketAddress::localOf(int fd) {
  SocketAddress address;
  address.length_ = sizeof address.storage_;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address.storage_), &address.length_) != 0) return std::nullopt;
  return address;
}

uint16_t SocketAddress::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

void SocketAddress::setPort(uint16_t port) {
  if (family() == AF_INET) reinterpret_cast<sockaddr_in*>(&storage_)->sin_port = htons(port);
  if (family() == AF_INET6) reinterpret_cast<sockaddr_in6*>(&storage_)->sin6_port = htons(port);
}

std::string SocketAddress::toString() const {
  char text[INET6_ADDRSTRLEN] = "?";
  if (family() == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, text, sizeof text);
    return std::string(text) + ":" + std::to_string(port());
  }
  if (family() == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    return "[" + std::string(text) + zoneSuffix(v6->sin6_scope_id) + "]:" + std::to_string(port());
  }
  return "(unknown address family)";
}

}  // namespace epoll_echo
