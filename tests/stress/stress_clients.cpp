// stress_clients.cpp — the stress suite's client behaviours. Pacing uses poll() timeouts; every
// loop is bounded by a count and by the caller's deadline.
#include "stress/stress_clients.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <random>

namespace epoll_echo::test {
namespace {

constexpr std::size_t kMaxChunk = 256 * 1024;
constexpr auto kShortTimeout = std::chrono::seconds(10);

// Log-uniform in [1, kMaxChunk]: small writes and reads are as likely as big ones.
std::size_t randomChunk(std::mt19937_64& rng) {
  std::uniform_real_distribution<double> exponent(0.0, std::log2(static_cast<double>(kMaxChunk)));
  return std::max<std::size_t>(1, static_cast<std::size_t>(std::exp2(exponent(rng))));
}

struct Pacing {
  std::mt19937_64 rng;
  Clock::time_point readAfter{};
};

std::string sendSome(EchoJob& job, Pacing& pacing, std::vector<unsigned char>& buffer) {
  const std::size_t size =
      static_cast<std::size_t>(std::min<std::uint64_t>(randomChunk(pacing.rng), job.total - job.sent));
  fillPattern(job.seed, job.sent, buffer.data(), size);
  const ssize_t written = ::send(job.socket.get(), buffer.data(), size, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (written > 0) job.sent += static_cast<std::uint64_t>(written);
  if (written < 0 && errno != EAGAIN && errno != EINTR) return std::string("send: ") + std::strerror(errno);
  return "";
}

std::string receiveSome(EchoJob& job, Pacing& pacing, std::vector<unsigned char>& buffer,
                        std::vector<unsigned char>& expected) {
  const ssize_t count = ::recv(job.socket.get(), buffer.data(), randomChunk(pacing.rng), MSG_DONTWAIT);
  if (count < 0) return errno == EAGAIN || errno == EINTR ? "" : std::string("recv: ") + std::strerror(errno);
  if (count == 0) return "EOF before the whole echo arrived";
  const auto got = static_cast<std::size_t>(count);
  if (job.received + got > job.sent) return "echoed bytes that were never sent";
  fillPattern(job.seed, job.received, expected.data(), got);
  if (std::memcmp(buffer.data(), expected.data(), got) != 0) {
    std::size_t at = 0;
    while (buffer[at] == expected[at]) ++at;
    return "echo differs at byte " + std::to_string(job.received + at);
  }
  job.received += got;
  // One read in eight is followed by a pause of up to 3 ms: a reader slower than the writer.
  if (pacing.rng() % 8 == 0) {
    pacing.readAfter = Clock::now() + std::chrono::microseconds(pacing.rng() % 3000);
  }
  return "";
}

}  // namespace

std::string runRandomEchoJobs(std::vector<EchoJob>& jobs, std::uint64_t seed, Deadline deadline) {
  std::vector<unsigned char> buffer(kMaxChunk), expected(kMaxChunk);
  std::vector<Pacing> pacing(jobs.size());
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    pacing[i].rng.seed(seed * 1000003 + i);
    setNonBlocking(jobs[i].socket.get(), true);
  }
  std::vector<pollfd> polled;
  std::vector<std::size_t> indexOf;
  while (Clock::now() < deadline) {
    polled.clear();
    indexOf.clear();
    const auto now = Clock::now();
    Deadline wakeAt = deadline;
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      if (jobs[i].received == jobs[i].total) continue;
      short events = jobs[i].sent < jobs[i].total ? POLLOUT : 0;
      if (pacing[i].readAfter <= now) {
        events |= POLLIN;
      } else {
        wakeAt = std::min(wakeAt, pacing[i].readAfter);
      }
      polled.push_back({jobs[i].socket.get(), events, 0});
      indexOf.push_back(i);
    }
    if (polled.empty()) return "";
    if (::poll(polled.data(), polled.size(), millisecondsLeft(wakeAt)) < 0 && errno != EINTR) {
      return std::string("poll: ") + std::strerror(errno);
    }
    for (std::size_t k = 0; k < polled.size(); ++k) {
      const std::size_t i = indexOf[k];
      std::string failure;
      if (polled[k].revents & (POLLIN | POLLERR | POLLHUP)) failure = receiveSome(jobs[i], pacing[i], buffer, expected);
      if (failure.empty() && (polled[k].revents & POLLOUT)) failure = sendSome(jobs[i], pacing[i], buffer);
      if (!failure.empty()) {
        return "connection " + std::to_string(i) + " (sent " + std::to_string(jobs[i].sent) + ", received " +
               std::to_string(jobs[i].received) + " of " + std::to_string(jobs[i].total) + "): " + failure;
      }
    }
  }
  std::uint64_t missing = 0;
  for (const EchoJob& job : jobs) missing += job.total - job.received;
  return "timed out with " + std::to_string(missing) + " bytes not echoed yet";
}

std::string sendUntilStalled(const std::vector<int>& fds, std::uint64_t firstSeed, std::uint64_t limitEach,
                             std::chrono::milliseconds stallFor, Deadline deadline, std::vector<std::uint64_t>& sent) {
  std::vector<unsigned char> buffer(64 * 1024);
  sent.assign(fds.size(), 0);
  std::vector<pollfd> polled;
  while (Clock::now() < deadline) {
    polled.clear();
    for (int fd : fds) polled.push_back({fd, POLLOUT, 0});
    const int wait = std::min<int>(static_cast<int>(stallFor.count()), millisecondsLeft(deadline));
    const int ready = ::poll(polled.data(), polled.size(), wait);
    if (ready == 0) return "";  // stalled: the server reads none of them
    if (ready < 0 && errno != EINTR) return std::string("poll: ") + std::strerror(errno);
    bool progress = false;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (!(polled[i].revents & POLLOUT) || sent[i] >= limitEach) continue;
      const std::size_t size = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), limitEach - sent[i]));
      fillPattern(firstSeed + i, sent[i], buffer.data(), size);
      const ssize_t written = ::send(fds[i], buffer.data(), size, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (written > 0) {
        sent[i] += static_cast<std::uint64_t>(written);
        progress = true;
      }
      if (written < 0 && errno != EAGAIN && errno != EINTR) return std::string("send: ") + std::strerror(errno);
    }
    if (!progress) return "";  // every socket that is still writable reached its limit
  }
  return "";
}

namespace {

std::string resetAfterSend(std::uint16_t port, std::uint64_t seed, Deadline deadline) {
  std::string error;
  UniqueFd client = connectLoopback(port, deadline, &error);
  if (!client) return error;
  const auto bytes = randomBytes(4096 + seed % 60000, seed);
  if (!sendAll(client.get(), bytes.data(), bytes.size(), deadline, &error)) return "reset client: " + error;
  setLingerZero(client.get());
  return "";
}

std::string halfCloseEcho(std::uint16_t port, std::uint64_t seed, Deadline deadline) {
  std::string error;
  std::vector<EchoJob> jobs = makeEchoJobs(port, 1, 1 + seed % 300000, true, seed, deadline, &error);
  if (jobs.empty()) return error;
  const std::string failure = runEchoJobs(jobs, deadline);
  return failure.empty() ? "" : "half-close client: " + failure;
}

std::string connectAndClose(std::uint16_t port, Deadline deadline) {
  std::string error;
  UniqueFd client = connectLoopback(port, deadline, &error);
  return client ? "" : "connect-and-close: " + error;
}

// Sends far more than the server can buffer without reading any echo, then resets: the server
// is mid-write (pending bytes, EPOLLOUT awaited) when the connection disappears.
std::string vanishMidWrite(std::uint16_t port, std::uint64_t seed, Deadline deadline) {
  std::string error;
  UniqueFd client = connectLoopback(port, deadline, &error);
  if (!client) return error;
  setNonBlocking(client.get(), true);
  std::vector<std::uint64_t> sent;
  const std::string failure =
      sendUntilStalled({client.get()}, seed, 8u << 20, std::chrono::milliseconds(50), deadline, sent);
  if (!failure.empty()) return "vanishing client: " + failure;
  setLingerZero(client.get());
  return "";
}

}  // namespace

std::string runHostileMix(std::uint16_t port, int rounds, std::uint64_t seed, Deadline deadline) {
  for (int round = 0; round < rounds; ++round) {
    const Deadline step = std::min(deadline, deadlineIn(kShortTimeout));
    const std::uint64_t roundSeed = seed + static_cast<std::uint64_t>(round) * 7919;
    for (std::string failure : {resetAfterSend(port, roundSeed, step), halfCloseEcho(port, roundSeed, step),
                                connectAndClose(port, step), vanishMidWrite(port, roundSeed, step)}) {
      if (!failure.empty()) return "round " + std::to_string(round) + ": " + failure;
    }
    if (Clock::now() >= deadline) return "hostile mix timed out in round " + std::to_string(round);
  }
  return "";
}

std::vector<double> pingPongMicros(int fd, int count, Deadline deadline, std::string* error) {
  std::vector<double> micros;
  micros.reserve(static_cast<std::size_t>(count));
  unsigned char message[64], echo[64];
  for (int i = 0; i < count && Clock::now() < deadline; ++i) {
    fillPattern(static_cast<std::uint64_t>(i), 0, message, sizeof message);
    const auto start = Clock::now();
    if (!sendAll(fd, message, sizeof message, deadline, error) ||
        !receiveExactly(fd, echo, sizeof echo, deadline, error)) {
      return {};
    }
    micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    if (std::memcmp(message, echo, sizeof echo) != 0) {
      if (error) *error = "ping " + std::to_string(i) + " echoed wrong bytes";
      return {};
    }
  }
  return micros;
}

double percentile(std::vector<double>& values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto index = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size())));
  return values[std::min(values.size() - 1, index == 0 ? 0 : index - 1)];
}

}  // namespace epoll_echo::test
