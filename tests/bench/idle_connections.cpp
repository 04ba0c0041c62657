// idle_connections.cpp — idle mode. Connections are opened in bounded batches (non-blocking
// connect, one message sent and its echo verified under poll()), so a slow or full accept queue
// costs time, never a hang; each batch and the RSS wait have a deadline.
#include "idle_connections.h"

#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "client_thread.h"
#include "socket_util.h"

namespace epoll_echo::bench {
namespace {

constexpr uint32_t kBatch = 256;                        // connections being set up at once: well under somaxconn
constexpr Nanoseconds kBatchDeadline = 10'000'000'000;  // one batch; loopback needs milliseconds
constexpr Nanoseconds kOpenDeadline = 120'000'000'000;  // all batches together
constexpr uint32_t kFdMargin = 64;                      // stdio, /proc files, slack
// 127.0.0.2, .3, …: each source address has its own ~28k ephemeral ports towards the server.
constexpr uint32_t kConnectionsPerSource = 20000;
constexpr auto kRssPollInterval = std::chrono::milliseconds(50);
constexpr int kRssStableSamples = 10;     // 0.5 s without change counts as settled
constexpr uint64_t kRssToleranceKib = 8;  // two pages: below 1 byte per connection at 10k
constexpr Nanoseconds kRssDeadline = 15'000'000'000;

struct Pending {
  int fd = -1;
  uint32_t index = 0;  // connection number: its pattern stream
  bool connecting = true;
  uint32_t sent = 0;
  uint32_t received = 0;
  Nanoseconds started = 0;
};

// Soft RLIMIT_NOFILE up to the hard limit; the generator needs one descriptor per connection.
void raiseFileLimit(uint32_t connections) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0)
    throw std::runtime_error(std::string("getrlimit: ") + std::strerror(errno));
  const rlim_t needed = static_cast<rlim_t>(connections) + kFdMargin;
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < needed) {
    throw std::runtime_error("--connections " + std::to_string(connections) + " needs " + std::to_string(needed) +
                             " file descriptors, but the hard RLIMIT_NOFILE is " + std::to_string(limit.rlim_max) +
                             " (raise it: prlimit --nofile=N, or ulimit -Hn as root)");
  }
  if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= needed) return;
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0)
    throw std::runtime_error(std::string("setrlimit: ") + std::strerror(errno));
}

// Source address of connection `index` for an IPv4 server; ::1 has no siblings, so none for IPv6.
std::string sourceFor(const std::string& host, uint32_t index) {
  if (host.find(':') != std::string::npos) return {};
  return "127.0.0." + std::to_string(2 + index / kConnectionsPerSource);
}

class IdleOpener {
 public:
  IdleOpener(const BenchOptions& options, const EchoPattern& pattern, BenchReport& report)
      : options_(options), pattern_(pattern), report_(report), buffer_(std::max<uint32_t>(options.messageSize, 4096)) {}

  // Opens connections [first, first + count), leaves the served ones in `open`.
  void runBatch(uint32_t first, uint32_t count, std::vector<int>& open) {
    std::vector<Pending> pending;
    for (uint32_t i = first; i < first + count; ++i) {
      Pending p;
      p.index = i;
      p.started = nowNanoseconds();
      std::string error;
      p.fd = openSocket(options_.host, options_.port, /*blocking=*/false, error, sourceFor(options_.host, i));
      if (p.fd < 0) {
        fail(error);
        continue;
      }
      pending.push_back(p);
    }
    const Nanoseconds deadline = nowNanoseconds() + kBatchDeadline;
    std::vector<pollfd> polls;
    while (!pending.empty()) {
      const Nanoseconds now = nowNanoseconds();
      if (now >= deadline) {
        for (auto& p : pending) {
          ::close(p.fd);
          fail("connection " + std::to_string(p.index) + ": no echo within 10 s");
        }
        return;
      }
      polls.clear();
      for (const auto& p : pending) {
        const bool wantsOut = p.connecting || p.sent < options_.messageSize;
        polls.push_back(pollfd{p.fd, static_cast<short>(wantsOut ? POLLOUT : POLLIN), 0});
      }
      const int timeoutMs = static_cast<int>(std::min<Nanoseconds>((deadline - now) / 1'000'000 + 1, 1000));
      if (::poll(polls.data(), polls.size(), timeoutMs) < 0 && errno != EINTR) {
        throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
      }
      // Serve every ready socket; the finished and the failed leave `pending` (order kept irrelevant).
      for (size_t k = polls.size(); k-- > 0;) {
        if (polls[k].revents == 0) continue;
        Pending& p = pending[k];
        const int state = step(p, polls[k].revents);
        if (state == 0) continue;
        if (state > 0) {
          open.push_back(p.fd);
          report_.latency.record(static_cast<uint64_t>(nowNanoseconds() - p.started));
          ++report_.messages;
        } else {
          ::close(p.fd);
        }
        pending[k] = pending.back();
        pending.pop_back();
      }
    }
  }

 private:
  void fail(const std::string& message) {
    ++report_.errors;
    if (report_.firstError.empty()) report_.firstError = message;
  }

  // Advances one connection: 0 = still going, 1 = echo verified, -1 = failed (already counted).
  int step(Pending& p, short revents) {
    const std::string name = "connection " + std::to_string(p.index) + ": ";
    if (p.connecting) {
      int error = 0;
      socklen_t length = sizeof error;
      ::getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &error, &length);
      if (error != 0) {
        fail(name + "connect: " + std::strerror(error));
        return -1;
      }
      if (!(revents & POLLOUT)) return 0;
      p.connecting = false;
    }
    if (p.sent < options_.messageSize) {
      const ssize_t n = ::send(p.fd, pattern_.slice(p.index, p.sent), options_.messageSize - p.sent, MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        fail(name + "send: " + std::strerror(errno));
        return -1;
      }
      if (n > 0) p.sent += static_cast<uint32_t>(n);
      return 0;  // the echo is read once POLLIN is asked for
    }
    // One recv per wake-up: the loop is bounded by the batch deadline either way.
    const ssize_t n = ::recv(p.fd, buffer_.data(), buffer_.size(), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    if (n <= 0) {
      fail(name + (n == 0 ? std::string("closed by the server before the echo")
                          : "recv: " + std::string(std::strerror(errno))));
      return -1;
    }
    const uint32_t length = static_cast<uint32_t>(n);
    if (p.received + length > options_.messageSize || !pattern_.matches(p.index, p.received, buffer_.data(), length)) {
      ++report_.mismatches;
      if (report_.firstError.empty()) report_.firstError = name + "echoed bytes differ from those sent";
      return -1;
    }
    p.received += length;
    report_.bytesVerified += length;
    return p.received == options_.messageSize ? 1 : 0;
  }

  const BenchOptions& options_;
  const EchoPattern& pattern_;
  BenchReport& report_;
  std::vector<char> buffer_;
};

// Polls the server's VmRSS until kRssStableSamples samples in a row stay within the tolerance,
// or the deadline passes; returns the last sample.
ProcessSample waitForStableRss(pid_t pid, BenchReport& report) {
  const Nanoseconds start = nowNanoseconds();
  std::vector<uint64_t> recent;
  ProcessSample sample = sampleProcess(pid);
  while (sample.valid && nowNanoseconds() - start < kRssDeadline) {
    recent.push_back(sample.rssKib);
    if (recent.size() > static_cast<size_t>(kRssStableSamples)) recent.erase(recent.begin());
    if (recent.size() == static_cast<size_t>(kRssStableSamples)) {
      const auto [low, high] = std::minmax_element(recent.begin(), recent.end());
      if (*high - *low <= kRssToleranceKib) {
        report.rssStable = true;
        break;
      }
    }
    std::this_thread::sleep_for(kRssPollInterval);
    sample = sampleProcess(pid);
  }
  report.rssSettleSeconds = static_cast<double>(nowNanoseconds() - start) / 1e9;
  return sample;
}

}  // namespace

BenchReport runIdle(const BenchOptions& options, const EchoPattern& pattern) {
  raiseFileLimit(options.connections);
  BenchReport report;
  report.serverBefore = sampleProcess(options.serverPid);
  report.clientBefore = sampleProcess(::getpid());
  if (!report.serverBefore.valid) throw std::runtime_error("cannot read /proc/" + std::to_string(options.serverPid));
  std::vector<int> open;
  open.reserve(options.connections);
  IdleOpener opener(options, pattern, report);
  const Nanoseconds start = nowNanoseconds();
  for (uint32_t first = 0; first < options.connections; first += kBatch) {
    if (nowNanoseconds() - start > kOpenDeadline) {
      report.errors += options.connections - first;
      if (report.firstError.empty()) report.firstError = "not all connections opened within 120 s";
      break;
    }
    opener.runBatch(first, std::min(kBatch, options.connections - first), open);
  }
  report.windowSeconds = static_cast<double>(nowNanoseconds() - start) / 1e9;
  report.idleConnections = open.size();
  report.serverAfter = waitForStableRss(options.serverPid, report);
  report.clientAfter = sampleProcess(::getpid());
  for (const int fd : open) ::close(fd);
  return report;
}

}  // namespace epoll_echo::bench
