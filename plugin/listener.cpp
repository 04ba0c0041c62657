// Listening sockets: an exclusive probe bind first, then one SO_REUSEPORT socket per worker.
#include "listener.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>

#include "engine_error.h"
#include "socket_address.h"

namespace epoll_echo {
namespace {

enum class Sharing { kExclusive, kReusePort };

void setOption(int fd, int level, int name, int value, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0)
    throwErrno(EPOLL_ECHO_EBIND, std::string("setsockopt ") + what);
}

UniqueFd bindSocket(const SocketAddress& address, Sharing sharing) {
  UniqueFd socket(::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!socket) throwErrno(EPOLL_ECHO_EBIND, "socket for " + address.toString());
  // SO_REUSEADDR lets a restarted server bind while old connections sit in TIME_WAIT.
  setOption(socket.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
  if (sharing == Sharing::kReusePort) setOption(socket.get(), SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
  // "::" should also serve IPv4 whatever net.ipv6.bindv6only says, like the original's all-interfaces.
  if (address.family() == AF_INET6) setOption(socket.get(), IPPROTO_IPV6, IPV6_V6ONLY, 0, "IPV6_V6ONLY");
  if (::bind(socket.get(), address.get(), address.length()) != 0)
    throwErrno(EPOLL_ECHO_EBIND, "bind " + address.toString());
  return socket;
}

// All interfaces: IPv6 dual-stack where the kernel has IPv6, else IPv4.
SocketAddress resolveBindAddress(const EngineConfig& config) {
  if (!config.bindAddress.empty()) return *SocketAddress::parse(config.bindAddress, config.port);
  UniqueFd probe(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe && errno == EAFNOSUPPORT) return SocketAddress::anyIpv4(config.port);
  return SocketAddress::anyIpv6(config.port);
}

// SO_REUSEPORT would let us join a group that another server of the same user already runs on
// this port and silently split its traffic. A bind without SO_REUSEPORT fails if anything listens
// there, so it proves the port is ours; for port 0 it is also how the kernel picks the port.
uint16_t claimPort(const SocketAddress& address) {
  UniqueFd probe = bindSocket(address, Sharing::kExclusive);
  auto bound = SocketAddress::localOf(probe.get());
  if (!bound) throwErrno(EPOLL_ECHO_EBIND, "getsockname " + address.toString());
  return bound->port();
}

}  // namespace

ListenerSet openListeners(const EngineConfig& config) {
  SocketAddress address = resolveBindAddress(config);
  ListenerSet set;
  set.port = claimPort(address);
  address.setPort(set.port);
  set.sockets.reserve(config.workers);
  for (uint32_t i = 0; i < config.workers; ++i) {
    UniqueFd socket = bindSocket(address, Sharing::kReusePort);
    if (::listen(socket.get(), config.backlog) != 0) throwErrno(EPOLL_ECHO_EBIND, "listen " + address.toString());
    set.sockets.push_back(std::move(socket));
  }
  return set;
}

}  // namespace epoll_echo
