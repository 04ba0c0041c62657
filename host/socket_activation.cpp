// socket_activation.cpp — reading and checking the inherited sockets. The variables are unset once
// taken because they describe this process only: a child inheriting them would misread its fds.
#include "socket_activation.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include "options.h"

namespace epoll_echo::host {
namespace {

constexpr int kFirstListenFd = 3;  // SD_LISTEN_FDS_START: the protocol fixes it

// A strict decimal, or nullopt-like -1 for anything else ("", "3x", "-1").
long parseDecimal(const char* text) {
  if (text == nullptr || *text == '\0') return -1;
  long value = 0;
  const char* end = text + std::strlen(text);
  const auto [next, error] = std::from_chars(text, end, value);
  return (error == std::errc() && next == end && value >= 0) ? value : -1;
}

int socketOption(int fd, int option) {
  int value = -1;
  socklen_t length = sizeof value;
  return ::getsockopt(fd, SOL_SOCKET, option, &value, &length) == 0 ? value : -1;
}

// Why `fd` cannot be served, or "" when it is a listening TCP socket.
std::string unusableReason(int fd) {
  if (::fcntl(fd, F_GETFD) < 0) return std::string("not open (") + std::strerror(errno) + ")";
  const int domain = socketOption(fd, SO_DOMAIN);
  if (domain < 0) return "not a socket";
  if (domain != AF_INET && domain != AF_INET6) return "not an IPv4 or IPv6 socket";
  if (socketOption(fd, SO_TYPE) != SOCK_STREAM) return "not a stream (TCP) socket";
  // SCTP and MPTCP sockets are SOCK_STREAM too; the engine refuses them at import, so say it here.
  if (socketOption(fd, SO_PROTOCOL) != IPPROTO_TCP) return "not a TCP socket (another stream protocol: SCTP, MPTCP)";
  if (socketOption(fd, SO_ACCEPTCONN) != 1) return "not listening (ListenStream= sockets only, Accept=no)";
  return "";
}

void takeSocket(int fd, std::vector<UniqueFd>& sockets) {
  UniqueFd owned(fd);  // owned from here even if refused: the process will not use it otherwise
  const std::string reason = unusableReason(fd);
  if (!reason.empty()) {
    throw ActivationError("socket activation: inherited fd " + std::to_string(fd) + " is " + reason);
  }
  // The manager passes them without close-on-exec so that they survive its exec; ours must not leak.
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0 || ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0) {
    throw ActivationError("socket activation: fcntl FD_CLOEXEC on fd " + std::to_string(fd) + ": " +
                          std::strerror(errno));
  }
  sockets.push_back(std::move(owned));
}

}  // namespace

ActivatedSockets ActivatedSockets::fromEnvironment() {
  ActivatedSockets result;
  const char* pidText = std::getenv("LISTEN_PID");
  const char* countText = std::getenv("LISTEN_FDS");
  if (pidText == nullptr || countText == nullptr) return result;
  // Meant for another process (a parent that exec'd us without clearing them): not ours to take.
  if (parseDecimal(pidText) != static_cast<long>(::getpid())) return result;
  const long count = parseDecimal(countText);
  // The engine runs at least one worker per inherited socket (epoll_echo_import_listener): the
  // worker cap bounds them too.
  if (count < 0 || count > static_cast<long>(kMaxWorkers)) {
    throw ActivationError(std::string("socket activation: LISTEN_FDS='") + countText + "' is not a count of 0-" +
                          std::to_string(kMaxWorkers) + " sockets");
  }
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  std::vector<UniqueFd> sockets;
  for (long index = 0; index < count; ++index) takeSocket(kFirstListenFd + static_cast<int>(index), sockets);
  result.sockets_ = std::move(sockets);
  return result;
}

std::string ActivatedSockets::bindAddress() const {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (sockets_.empty() || ::getsockname(sockets_.front().get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return "";
  }
  char text[INET6_ADDRSTRLEN] = "";
  if (address.ss_family == AF_INET) {
    const auto* ipv4 = reinterpret_cast<const sockaddr_in*>(&address);
    if (ipv4->sin_addr.s_addr == htonl(INADDR_ANY)) return "";
    ::inet_ntop(AF_INET, &ipv4->sin_addr, text, sizeof text);
  } else if (address.ss_family == AF_INET6) {
    const auto* ipv6 = reinterpret_cast<const sockaddr_in6*>(&address);
    if (IN6_IS_ADDR_UNSPECIFIED(&ipv6->sin6_addr)) return "";
    ::inet_ntop(AF_INET6, &ipv6->sin6_addr, text, sizeof text);
  }
  return text;
}

}  // namespace epoll_echo::host
