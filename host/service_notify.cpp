// service_notify.cpp — one socket per message: notifications are rare (start and stop), and a
// socket kept open would be one more descriptor to hand around for nothing.
#include "service_notify.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "event_sources.h"

namespace epoll_echo::host {

std::string notifyServiceManager(const std::string& state) {
  const char* name = std::getenv("NOTIFY_SOCKET");
  if (name == nullptr || *name == '\0') return "";
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::size_t length = std::strlen(name);
  if ((name[0] != '/' && name[0] != '@') || length >= sizeof address.sun_path) {
    return std::string("NOTIFY_SOCKET='") + name + "' is neither an absolute path nor an @abstract name that fits";
  }
  std::memcpy(address.sun_path, name, length);
  // '@' stands for the leading NUL of a Linux abstract socket name; its length then excludes any NUL.
  if (name[0] == '@') address.sun_path[0] = '\0';
  const auto addressLength = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length + (name[0] == '/'));
  const UniqueFd socket(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (socket.get() < 0) return std::string("socket AF_UNIX: ") + std::strerror(errno);
  ssize_t sent = -1;
  do {
    sent = ::sendto(socket.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&address),
                    addressLength);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return std::string("sendto ") + name + ": " + std::strerror(errno);
  return "";
}

}  // namespace epoll_echo::host
