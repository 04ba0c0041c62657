// socket_activation.h — systemd socket activation (the sd_listen_fds(3) protocol, without
// libsystemd): the listening sockets a service manager passed as fds 3.. with LISTEN_PID/LISTEN_FDS.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "event_sources.h"

namespace epoll_echo::host {

// Inherited sockets that cannot be served; what() names the fd or the variable and the reason.
class ActivationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Owns the inherited listening sockets. The engine duplicates each one it imports, so the host's
// copies may be closed once the engine has started. Main thread only.
class ActivatedSockets {
 public:
  // Takes fds 3..3+LISTEN_FDS-1 when LISTEN_PID is this process and LISTEN_FDS >= 1: checks that
  // each is a listening TCP socket, sets FD_CLOEXEC on it, and unsets LISTEN_PID, LISTEN_FDS and
  // LISTEN_FDNAMES. Without them (or for another process's LISTEN_PID) the set is empty and the
  // environment untouched. Throws ActivationError for malformed variables or unusable fds.
  static ActivatedSockets fromEnvironment();

  bool empty() const { return sockets_.empty(); }
  std::size_t size() const { return sockets_.size(); }
  int fd(std::size_t index) const { return sockets_[index].get(); }
  // The first socket's local address as --bind would spell it ("127.0.0.1", "::1"); "" when it is
  // bound to all interfaces.
  std::string bindAddress() const;
  void close() { sockets_.clear(); }

 private:
  std::vector<UniqueFd> sockets_;
};

}  // namespace epoll_echo::host
