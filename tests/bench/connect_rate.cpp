// connect_rate.cpp — connect mode: each slot loops connect (non-blocking), send one message,
// verify its echo, close; the latency recorded is the whole cycle, from socket() to the last byte.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "client_connection.h"
#include "client_thread.h"
#include "socket_util.h"

namespace epoll_echo::bench {
namespace {
constexpr int kMaxEvents = 256;
}  // namespace

void ClientThread::setConnectSlots(uint32_t slots, uint64_t firstStream, uint64_t streamStep) {
  nextStream_ = firstStream;
  streamStep_ = streamStep;
  for (uint32_t i = 0; i < slots; ++i) {
    auto slot = std::make_unique<Connection>();
    slot->issueTimes.resize(1);
    connections_.push_back(std::move(slot));
  }
}

void ClientThread::startAttempt(Connection& slot) {
  const Nanoseconds now = nowNanoseconds();
  slot = Connection{};
  slot.issueTimes.resize(1);
  slot.stream = nextStream_;
  nextStream_ += streamStep_;
  std::string error;
  slot.fd = openSocket(options_.host, options_.port, /*blocking=*/false, error);
  if (slot.fd < 0) {
    fail(slot, error, false);
    return;
  }
  slot.connecting = true;
  issue(slot, now);
  epoll_event event{};
  event.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  event.data.ptr = &slot;
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, slot.fd, &event) != 0) {
    fail(slot, std::string("epoll_ctl ADD: ") + std::strerror(errno), false);
  }
}

// The echo of this attempt is complete: close (the client sends the first FIN) and start anew.
void ClientThread::finishAttempt(Connection& slot, Nanoseconds now) {
  ::close(slot.fd);
  slot.fd = -1;
  if (now < timeline_.measureEnd) {
    startAttempt(slot);
  } else {
    slot.dead = true;
  }
}

void ClientThread::runConnectRate() {
  for (auto& slot : connections_) startAttempt(*slot);
  epoll_event events[kMaxEvents];
  Nanoseconds now = nowNanoseconds();
  while (now < timeline_.measureEnd) {
    const int count = ::epoll_wait(epoll_, events, kMaxEvents, waitMs(now));
    now = nowNanoseconds();
    for (int i = 0; i < count; ++i) {
      auto& slot = *static_cast<Connection*>(events[i].data.ptr);
      if (slot.dead) continue;
      if (slot.connecting) {
        if (!(events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) continue;
        int error = 0;
        socklen_t length = sizeof error;
        ::getsockopt(slot.fd, SOL_SOCKET, SO_ERROR, &error, &length);
        if (error != 0) {
          fail(slot, std::string("connect: ") + std::strerror(error), false);
          startAttempt(slot);
          continue;
        }
        slot.connecting = false;
        trySend(slot);
        continue;  // the echo cannot be here yet; EPOLLIN will follow
      }
      if ((events[i].events & EPOLLIN) && !onReadable(slot)) {
        if (now < timeline_.measureEnd) startAttempt(slot);
        continue;
      }
      if (!slot.connecting && (events[i].events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))) {
        fail(slot, "connection closed by the server before the echo", false);
        if (now < timeline_.measureEnd) startAttempt(slot);
      }
    }
  }
}

}  // namespace epoll_echo::bench
