// client_thread.cpp — echo mode: long-lived connections, `depth` messages in flight each; a
// completed message immediately issues the next one (closed loop), or (open loop, --rate) each
// message goes at its scheduled time; every received byte is compared with the connection's pattern.
#include "client_thread.h"

#include <sys/epoll.h>
#include <sys/prctl.h>
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
// Open loop: small against the gap between two sends (~4 us at 250k messages/s).
constexpr unsigned long kTimerSlackNanoseconds = 1000;
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
  if (!options_.timelinePath.empty()) {
    result_.slowestPerMillisecond.assign(
        static_cast<std::size_t>((timeline_.measureEnd - timeline_.runStart) / 1'000'000 + 1), 0);
  }
  if (options_.mode == Mode::Echo && options_.rate > 0) {
    runOpenLoop();
  } else if (options_.mode == Mode::Echo) {
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
      if ((events[i].events & EPOLLIN) && !onReadable(connection)) continue;
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
  recordUnanswered(now);
}

// Open loop: every connection sends on the schedule whatever the server does; a message due while
// `depth` are in flight goes as soon as one completes, and its latency still counts from when it was due.
void ClientThread::runOpenLoop() {
  schedule_.emplace(options_.rate, options_.connections, timeline_.runStart);
  byStream_.assign(options_.connections, nullptr);
  for (auto& connection : connections_) byStream_[connection->stream] = connection.get();
  // The default timer slack (50 us) lets every timed wake-up come that late: a delay of the
  // generator's own, charged to the server. This thread is the generator's; nothing else sees it.
  ::prctl(PR_SET_TIMERSLACK, kTimerSlackNanoseconds, 0, 0, 0);
  Nanoseconds now = nowNanoseconds();
  epoll_event events[kMaxEvents];
  while (now < timeline_.measureEnd) {
    advanceSchedule(now);
    // Sub-millisecond: epoll_wait's milliseconds would add up to 1 ms of the generator's own delay.
    const Nanoseconds wake = std::min(schedule_->slotTime(nextSlot_), timeline_.measureEnd);
    const Nanoseconds wait = std::clamp<Nanoseconds>(wake - nowNanoseconds(), 0, 50'000'000);
    const timespec timeout{static_cast<time_t>(wait / 1'000'000'000), static_cast<long>(wait % 1'000'000'000)};
    const int count = ::epoll_pwait2(epoll_, events, kMaxEvents, &timeout, nullptr);
    now = nowNanoseconds();
    for (int i = 0; i < count; ++i) {
      auto& connection = *static_cast<Connection*>(events[i].data.ptr);
      if (connection.dead) continue;
      if ((events[i].events & EPOLLIN) && !onReadable(connection)) continue;
      if (events[i].events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))
        fail(connection, "connection closed by the server", false);
    }
    // Completions issued the messages they had held back (complete()); send them.
    for (Connection* connection : sendQueue_) {
      if (!connection->dead) trySend(*connection);
    }
    sendQueue_.clear();
  }
  for (auto& connection : connections_) {
    result_.messagesPerConnection.push_back(connection->windowMessages);
    countSchedule(*connection);
  }
  recordUnanswered(now);
}

// Passes every slot due by `now`, in order: O(1) per send, however many connections (the loop
// before scanned all of them twice per wake-up). A message due on one of this thread's
// connections is sent now, or counted late when `depth` are in flight.
void ClientThread::advanceSchedule(Nanoseconds now) {
  const uint64_t due = schedule_->slotsDueBy(now);
  for (; nextSlot_ < due; ++nextSlot_) {
    Connection* connection = byStream_[schedule_->connectionOf(nextSlot_)];
    if (connection == nullptr || connection->dead) continue;
    ++connection->due;
    issueDue(*connection);
    const Nanoseconds intended = schedule_->slotTime(nextSlot_);
    if (connection->issued < connection->due) {
      if (inWindow(intended)) ++result_.lateSends;
      continue;
    }
    if (inWindow(intended)) result_.sendLag.record(static_cast<uint64_t>(now - intended));
    sendQueue_.push_back(connection);
  }
  // After the pass: a connection with several messages due (the generator woke late) sends them
  // in one send(), as the closed loop does with the echoes of one read; one that has nothing left
  // to send costs no system call.
  for (Connection* connection : sendQueue_) {
    if (!connection->dead) trySend(*connection);
  }
  sendQueue_.clear();
}

// Issues the connection's due messages while fewer than `depth` are in flight, each stamped with
// its intended time; the caller sends them.
void ClientThread::issueDue(Connection& connection) {
  const auto index = static_cast<uint32_t>(connection.stream);
  while (connection.issued < connection.due && connection.issued - connection.completed < options_.depth) {
    issue(connection, schedule_->intendedTime(index, connection.issued));
  }
}

void ClientThread::recordUnanswered(Nanoseconds end) {
  for (const auto& connection : connections_) {
    if (connection->dead || connection->completed == connection->issued) continue;
    const Nanoseconds issued = connection->issueTimes[connection->completed % options_.depth];
    result_.oldestUnanswered = std::max(result_.oldestUnanswered, end - issued);
  }
}

void ClientThread::recordTimeline(Nanoseconds completed, Nanoseconds roundTrip) {
  const auto index = static_cast<std::size_t>((completed - timeline_.runStart) / 1'000'000);
  if (completed < timeline_.runStart || index >= result_.slowestPerMillisecond.size()) return;
  const auto micros = static_cast<uint32_t>(std::min<Nanoseconds>(roundTrip / 1000, UINT32_MAX));
  result_.slowestPerMillisecond[index] = std::max(result_.slowestPerMillisecond[index], micros);
}

// Sends due inside the window, and those of them still unsent at the end (late, not yet counted).
void ClientThread::countSchedule(const Connection& connection) {
  const auto index = static_cast<uint32_t>(connection.stream);
  const uint64_t first = schedule_->dueBy(index, timeline_.measureStart - 1);
  const uint64_t end = schedule_->dueBy(index, timeline_.measureEnd - 1);
  result_.scheduledSends += end - first;
  // Messages the schedule passed were counted then; those it never reached are late too.
  const uint64_t unsent = std::max(connection.due, first);
  if (unsent < end) result_.lateSends += end - unsent;
}

void ClientThread::issue(Connection& connection, Nanoseconds now) {
  connection.issueTimes[connection.issued % options_.depth] = now;
  ++connection.issued;
  connection.issuedBytes += options_.messageSize;
}

// Returns false when the connection failed. The closed loop times each message from the send()
// that takes its first byte, not from the start of the pass that issued it: a pass of k
// connections reads all k, then sends all k, and a pass-start stamp charged the last message sent
// with the generator's own reads and sends before it (docs/benchmarks.md, "Tail latency").
bool ClientThread::trySend(Connection& connection) {
  if (options_.mode != Mode::Echo || schedule_) return sendIssued(connection);
  const Nanoseconds started = nowNanoseconds();
  const bool alive = sendIssued(connection);
  for (; connection.timedSends < connection.issued &&
         connection.timedSends * options_.messageSize < connection.sentBytes;
       ++connection.timedSends) {
    connection.issueTimes[connection.timedSends % options_.depth] = started;
  }
  return alive;
}

// Hands the issued bytes to send() until the socket is full; returns false when the connection failed.
bool ClientThread::sendIssued(Connection& connection) {
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

// Reads until the socket is empty; returns false when the connection failed. A message completes
// when the recv() that brings its last byte returns, not at the start of the pass.
bool ClientThread::onReadable(Connection& connection) {
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
    complete(connection, nowNanoseconds());
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
    recordTimeline(now, now - started);
    if (inWindow(now)) {
      result_.latency.record(static_cast<uint64_t>(now - started));
      ++result_.messages;
      ++connection.windowMessages;
    }
    if (options_.mode == Mode::ConnectRate) {
      finishAttempt(connection, now);
      return;
    }
    if (!schedule_) issue(connection, now);  // closed loop; the open loop issues on its schedule
  }
  if (schedule_) issueDue(connection);  // the messages that fell due while `depth` were in flight
}

void ClientThread::fail(Connection& connection, const std::string& why, bool mismatch) {
  if (result_.firstError.empty()) result_.firstError = why;
  ++(mismatch ? result_.mismatches : result_.errors);
  connection.dead = true;
  ::close(connection.fd);
  connection.fd = -1;
}

}  // namespace epoll_echo::bench
