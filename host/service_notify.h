// service_notify.h — sd_notify(3)-style readiness messages to a service manager: one datagram to
// the AF_UNIX socket named by $NOTIFY_SOCKET, without a libsystemd dependency.
#pragma once

#include <string>

namespace epoll_echo::host {

// Sends `state` (newline-separated assignments such as "READY=1\nSTATUS=...") to $NOTIFY_SOCKET:
// a path, or an abstract-namespace name written with a leading '@'. Returns "" when it was sent or
// NOTIFY_SOCKET is unset, otherwise why not ("sendto /run/x: No such file or directory"): a lost
// notification is a warning, never a reason to stop serving. Any thread.
std::string notifyServiceManager(const std::string& state);

}  // namespace epoll_echo::host
