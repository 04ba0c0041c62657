// client_thread.cpp — echo mode: long-lived connections, `depth` messages in flight each; a
// completed message immediately issues the next one (closed loop), and every received byte is
// compared with the connection's pattern.
#include "client_thread.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <time.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "client_connection.h"

namespace epoll_echo::bench {
namespace {
// Larger than any single echo on loopback, so a short read proves the socket is empty.
constexpr size_t kReadBufferBytes = 256 * 1024;
constexpr int kMaxEvents = 256;
}  // namespace

Nanoseconds nowNanoseconds() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<Nanoseconds>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

ClientThread::ClientThread(const BenchOptions& options, const EchoPattern& pattern, const Timeline& timeline)
    : options_(options), pattern_(pattern), timeline_(timeline), readBuffer_(kReadBufferBytes) {
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_ < 0) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
}

ClientThread::~ClientThread() {
  for (auto& connection : connections_) {
    if (connection->fd >= 0) ::close(connection->fd);
  }
  ::close(epoll_);
}

void ClientThread::addConnection(int fd, uint64_t stream) {
  auto connection = std::make_unique<Connection>();
  connection->fd = fd;
  connection->stream = stream;
  connection->issueTimes.resize(options_.depth);
  epoll_event event{};
  event.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  event.data.ptr = connection.get();
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event) != 0) {
    throw std::runtime_error(std::string("epoll_ctl ADD: ") + std::strerror(errno));
  }
  connections_.push_back(std::move(connection));
}

void ClientThread::run() {
  if (options_.mode == Mode::Echo) {
    runEcho();
  } else {
    runConnectRate();
  }
}

int ClientThread::waitMs(Nanoseconds now) const {
  const Nanoseconds left = timeline_.measureEnd - now;
  return static_cast<int>(std::clamp<Nanoseconds>(left / 1000000 + 1, 0, 50));
}

void ClientThread::runEcho() {
  Nanoseconds now = nowNanoseconds();
  for (auto& connection : connections_) {
    for (uint32_t i = 0; i < options_.depth; ++i) issue(*connection, now);
    trySend(*connection);
  }
  epoll_event events[kMaxEvents];
  while (now < timeline_.measureEnd) {
    const int count = ::epoll_wait(epoll_, events, kMaxEvents, waitMs(now));
    now = nowNanoseconds();
    // All reads first, then all sends: the generator must be cheaper per message than the servers
    // it measures. This and recv() instead of read() took 100-connection ping-pong from ~195k to
    // ~227k messages/s against either server (docs/benchmarks.md).
    for (int i = 0; i < count; ++i) {
      auto& connection = *static_cast<Connection*>(events[i].data.ptr);
      if (connection.dead) continue;
      if ((events[i].events & EPOLLIN) && !onReadable(connection, now)) continue;
      if (events[i].events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
        fail(connection, "connection closed by the server", false);
        continue;
      }
      if (events[i].events & EPOLLOUT) sendQueue_.push_back(&connection);
    }
    for (Connection* connection : sendQueue_) {
      if (!connection->dead) trySend(*connection);
    }
    sendQueue_.clear();
  }
  for (auto& connection : connections_) result_.messagesPerConnection.push_back(connection->windowMessages);
}

void ClientThread::issue(Connection& connection, Nanoseconds now) {
  connection.issueTimes[connection.issued % options_.depth] = now;
  ++connection.issued;
  connection.issuedBytes += options_.messageSize;
}

// Returns false when the connection failed.
bool ClientThread::trySend(Connection& connection) {
  while (connection.sentBytes < connection.issuedBytes) {
    const size_t length =
        static_cast<size_t>(std::min<uint64_t>(connection.issuedBytes - connection.sentBytes, EchoPattern::kPeriod));
    const ssize_t sent =
        ::send(connection.fd, pattern_.slice(connection.stream, connection.sentBytes), length, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;  // EPOLLOUT will follow
      fail(connection, std::string("send: ") + std::strerror(errno), false);
      return false;
    }
    connection.sentBytes += static_cast<uint64_t>(sent);
    if (static_cast<size_t>(sent) < length) return true;
  }
  return true;
}

// Reads until the socket is empty; returns false when the connection failed.
bool ClientThread::onReadable(Connection& connection, Nanoseconds now) {
  for (;;) {
    const ssize_t count = ::recv(connection.fd, readBuffer_.data(), readBuffer_.size(), 0);
    if (count < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      fail(connection, std::string("recv: ") + std::strerror(errno), false);
      return false;
    }
    if (count == 0) {
      fail(connection, "connection closed by the server", false);
      return false;
    }
    const auto length = static_cast<uint64_t>(count);
    if (connection.receivedBytes + length > connection.sentBytes ||
        !pattern_.matches(connection.stream, connection.receivedBytes, readBuffer_.data(), length)) {
      fail(connection, "echoed bytes differ from the bytes sent", true);
      return false;
    }
    connection.receivedBytes += length;
    result_.bytesVerified += length;
    complete(connection, now);
    if (connection.connecting || connection.dead) return true;
    if (options_.mode == Mode::Echo) {
      sendQueue_.push_back(&connection);  // sent after every ready connection has been read
    } else if (!trySend(connection)) {
      return false;
    }
    if (static_cast<size_t>(count) < readBuffer_.size()) return true;  // short read: empty
  }
}

// Accounts every message whose last byte has arrived and issues its successor.
void ClientThread::complete(Connection& connection, Nanoseconds now) {
  while (connection.receivedBytes >= (connection.completed + 1) * options_.messageSize) {
    const Nanoseconds started = connection.issueTimes[connection.completed % options_.depth];
    ++connection.completed;
    if (inWindow(now)) {
      result_.latency.record(static_cast<uint64_t>(now - started));
      ++result_.messages;
      ++connection.windowMessages;
    }
    if (options_.mode == Mode::ConnectRate) {
      finishAttempt(connection, now);
      return;
    }
    issue(connection, now);
  }
}

void ClientThread::fail(Connection& connection, const std::string& why, bool mismatch) {
  if (result_.firstError.empty()) result_.firstError = why;
  ++(mismatch ? result_.mismatches : result_.errors);
  connection.dead = true;
  ::close(connection.fd);
  connection.fd = -1;
}

}  // namespace epoll_echo::bench
