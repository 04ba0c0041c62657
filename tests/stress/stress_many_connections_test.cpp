// stress_many_connections_test.cpp — 10,000 concurrent connections, all open at once and all
// echoing. Client sockets bind to several 127.0.0.x source addresses so that no source address
// runs short of ephemeral ports (and TIME_WAIT from earlier runs spreads over them).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "stress/stress_clients.h"
#include "stress/stress_server.h"

namespace epoll_echo::test {
namespace {

constexpr std::size_t kConnections = kSanitizedBuild ? 4000 : 10000;
constexpr std::size_t kSourceAddresses = 4;  // 127.0.0.2 .. 127.0.0.5
constexpr std::size_t kConnectBatch = 1000;  // below the accept queue (SOMAXCONN 4096)
constexpr std::uint64_t kBytesEach = 64;
constexpr rlim_t kFdMargin = 256;
constexpr std::uint64_t kSeed = 0x5eed0005;

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit. The server child
// spawned afterwards inherits it.
rlim_t raiseFdLimit() {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
  ::getrlimit(RLIMIT_NOFILE, &limit);
  return limit.rlim_cur;
}

UniqueFd failure(const char* call, std::string* error) {
  *error = std::string(call) + ": " + std::strerror(errno);
  return UniqueFd();
}

// Starts a non-blocking connect from 127.0.0.(2 + index % kSourceAddresses).
UniqueFd startConnect(std::uint16_t port, std::size_t index, std::string* error) {
  UniqueFd socket(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!socket) return failure("socket", error);
  const int one = 1;
  // The port is chosen at connect() from the whole 4-tuple, not reserved per source address.
  ::setsockopt(socket.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  sockaddr_in source{};
  source.sin_family = AF_INET;
  source.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1 + static_cast<std::uint32_t>(index % kSourceAddresses));
  if (::bind(socket.get(), reinterpret_cast<sockaddr*>(&source), sizeof source) != 0) {
    return failure("bind source address", error);
  }
  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_port = htons(port);
  server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(socket.get(), reinterpret_cast<sockaddr*>(&server), sizeof server) != 0 && errno != EINPROGRESS) {
    return failure("connect", error);
  }
  return socket;
}

// Waits until every socket of jobs[first, end) is connected; "" or why not.
std::string finishConnects(std::vector<EchoJob>& jobs, std::size_t first, Deadline deadline) {
  std::vector<pollfd> polled;
  for (std::size_t i = first; i < jobs.size(); ++i) polled.push_back({jobs[i].socket.get(), POLLOUT, 0});
  std::size_t done = 0;
  while (done < polled.size()) {
    const int ready = ::poll(polled.data(), polled.size(), millisecondsLeft(deadline));
    if (ready == 0) return std::to_string(polled.size() - done) + " connects unfinished at the deadline";
    if (ready < 0 && errno != EINTR) return std::string("poll: ") + std::strerror(errno);
    for (pollfd& entry : polled) {
      if (entry.fd < 0 || entry.revents == 0) continue;
      int error = 0;
      socklen_t length = sizeof error;
      ::getsockopt(entry.fd, SOL_SOCKET, SO_ERROR, &error, &length);
      if (error != 0) return std::string("connect: ") + std::strerror(error);
      entry.fd = -1;  // poll() ignores negative fds
      ++done;
    }
  }
  return "";
}

TEST(StressManyConnectionsTest, TenThousandConcurrentConnectionsAllEcho) {
  const rlim_t limit = raiseFdLimit();
  if (limit < kConnections + kFdMargin) {
    GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << limit << " is below the " << kConnections + kFdMargin
                 << " descriptors this test needs (raise it with ulimit -Hn or limits.conf)";
  }
  StressServer server(2);
  ASSERT_TRUE(server.started()) << server.error();
  const int baselineFds = server.openFds();
  const long baselineKib = server.rssKib();

  const auto start = Clock::now();
  std::vector<EchoJob> jobs;
  jobs.reserve(kConnections);
  std::string error;
  for (std::size_t first = 0; first < kConnections; first += kConnectBatch) {
    for (std::size_t i = first; i < std::min(kConnections, first + kConnectBatch); ++i) {
      EchoJob job;
      job.socket = startConnect(server.port(), i, &error);
      ASSERT_TRUE(job.socket) << "connection " << i << ": " << error;
      job.seed = kSeed + i;
      job.total = kBytesEach;
      jobs.push_back(std::move(job));
    }
    ASSERT_EQ(finishConnects(jobs, first, deadlineIn(std::chrono::seconds(20))), "") << "batch at " << first;
  }
  const double connectSeconds = std::chrono::duration<double>(Clock::now() - start).count();
  ASSERT_EQ(server.waitForQuiet(kConnections, -1, deadlineIn(std::chrono::seconds(20))), "");

  const auto echoStart = Clock::now();
  ASSERT_EQ(runEchoJobs(jobs, deadlineIn(std::chrono::seconds(60))), "");
  const double echoSeconds = std::chrono::duration<double>(Clock::now() - echoStart).count();
  const long rssKib = server.rssKib();
  const int openFds = server.openFds();
  // Growth over the server's RSS before the first connection, per connection: its Connection
  // object and table slots, plus the pages the one echo touched in each worker's batch buffer and
  // stack (a few KiB in all). The idle figure of docs/benchmarks.md (idle_bytes_per_connection)
  // measures the same growth once the connections are idle, with the batch buffers already warm.
  const double growthBytesPerConnection = static_cast<double>(rssKib - baselineKib) * 1024 / kConnections;
  reportFigures(std::to_string(kConnections) + " concurrent connections from " + std::to_string(kSourceAddresses) +
                    " source addresses: connected in " + fixed(connectSeconds) + " s, all echoed in " +
                    fixed(echoSeconds) + " s; server RSS " + std::to_string(baselineKib) + " -> " +
                    std::to_string(rssKib) + " KiB (" + fixed(growthBytesPerConnection, 0) +
                    " bytes more per connection), " + std::to_string(openFds) + " fds",
                {{"connections", static_cast<double>(kConnections)},
                 {"connect_seconds", connectSeconds},
                 {"echo_seconds", echoSeconds},
                 {"rss_kib", static_cast<double>(rssKib)},
                 {"rss_growth_bytes_per_connection", growthBytesPerConnection}});
  // The per-connection term of the documented memory bound (docs/reliability.md): 1 KiB.
  if (!kSanitizedBuild) {
    EXPECT_LE(growthBytesPerConnection, 1024.0);
  }

  jobs.clear();
  EXPECT_EQ(server.waitForQuiet(0, baselineFds, deadlineIn(std::chrono::seconds(30))), "");
  EXPECT_EQ(server.stop(deadlineIn(std::chrono::seconds(20))), "");
}

}  // namespace
}  // namespace epoll_echo::test
