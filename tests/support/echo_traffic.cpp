// echo_traffic.cpp — the poll() loop behind runEchoJobs(): writes are paced by POLLOUT, reads by
// POLLIN, and each received chunk is compared with the regenerated stream at its offset.
#include "support/echo_traffic.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace epoll_echo::test {
namespace {

constexpr std::size_t kChunk = 64 * 1024;

std::string jobError(std::size_t index, const EchoJob& job, const std::string& what) {
  return "connection " + std::to_string(index) + " (sent " + std::to_string(job.sent) + ", received " +
         std::to_string(job.received) + " of " + std::to_string(job.total) + "): " + what;
}

// Sends the next chunk of the job's stream; "" or an error.
std::string pumpOut(EchoJob& job, unsigned char* buffer) {
  std::size_t size = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, job.total - job.sent));
  fillPattern(job.seed, job.sent, buffer, size);
  ssize_t written = ::send(job.socket.get(), buffer, size, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (written > 0) job.sent += static_cast<std::uint64_t>(written);
  if (written < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    return std::string("send: ") + std::strerror(errno);
  }
  if (job.sent == job.total && job.halfClose && !job.writeShut) {
    if (::shutdown(job.socket.get(), SHUT_WR) != 0) return std::string("shutdown: ") + std::strerror(errno);
    job.writeShut = true;
  }
  return "";
}

// Reads what is there and checks it against the stream; "" or an error.
std::string pumpIn(EchoJob& job, unsigned char* buffer, unsigned char* expected) {
  ssize_t count = ::recv(job.socket.get(), buffer, kChunk, MSG_DONTWAIT);
  if (count < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return "";
    return std::string("recv: ") + std::strerror(errno);
  }
  if (count == 0) {
    if (job.received < job.total) return "EOF before the whole echo arrived";
    job.sawEof = true;
    return "";
  }
  if (job.received + static_cast<std::uint64_t>(count) > job.total) return "more bytes echoed than sent";
  if (job.received + static_cast<std::uint64_t>(count) > job.sent) return "echoed bytes that were never sent";
  fillPattern(job.seed, job.received, expected, static_cast<std::size_t>(count));
  if (std::memcmp(buffer, expected, static_cast<std::size_t>(count)) != 0) {
    std::size_t at = 0;
    while (buffer[at] == expected[at]) ++at;
    return "echo differs at byte " + std::to_string(job.received + at);
  }
  job.received += static_cast<std::uint64_t>(count);
  return "";
}

}  // namespace

std::vector<EchoJob> makeEchoJobs(uint16_t port, std::size_t count, std::uint64_t bytesEach, bool halfClose,
                                  std::uint64_t firstSeed, Deadline deadline, std::string* error) {
  std::vector<EchoJob> jobs(count);
  for (std::size_t i = 0; i < count; ++i) {
    jobs[i].socket = connectLoopback(port, deadline, error);
    if (!jobs[i].socket) return {};
    jobs[i].seed = firstSeed + i;
    jobs[i].total = bytesEach;
    jobs[i].halfClose = halfClose;
  }
  return jobs;
}

std::string runEchoJobs(std::vector<EchoJob>& jobs, Deadline deadline) {
  std::vector<unsigned char> buffer(kChunk), expected(kChunk);
  for (auto& job : jobs) {
    setNonBlocking(job.socket.get(), true);
    if (job.total == 0 && job.halfClose && !job.writeShut) {
      std::string failure = pumpOut(job, buffer.data());
      if (!failure.empty()) return failure;
    }
  }
  std::vector<pollfd> polled;
  std::vector<std::size_t> indexOf;
  for (;;) {
    polled.clear();
    indexOf.clear();
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      if (jobs[i].done()) continue;
      short events = POLLIN;
      if (jobs[i].sent < jobs[i].total) events |= POLLOUT;
      polled.push_back({jobs[i].socket.get(), events, 0});
      indexOf.push_back(i);
    }
    if (polled.empty()) return "";
    int ready = ::poll(polled.data(), polled.size(), millisecondsLeft(deadline));
    if (ready < 0 && errno != EINTR) return std::string("poll: ") + std::strerror(errno);
    if (ready == 0) {
      const std::size_t first = indexOf.front();
      return jobError(first, jobs[first],
                      "timed out with " + std::to_string(polled.size()) + " connections unfinished");
    }
    for (std::size_t k = 0; k < polled.size() && ready > 0; ++k) {
      if (polled[k].revents == 0) continue;
      EchoJob& job = jobs[indexOf[k]];
      std::string failure;
      if (polled[k].revents & (POLLIN | POLLERR | POLLHUP)) failure = pumpIn(job, buffer.data(), expected.data());
      if (failure.empty() && (polled[k].revents & POLLOUT) && job.sent < job.total) {
        failure = pumpOut(job, buffer.data());
      }
      if (!failure.empty()) return jobError(indexOf[k], job, failure);
    }
  }
}

}  // namespace epoll_echo::test
