// stress_fd_exhaustion_test.cpp — epoll-server with a lowered RLIMIT_NOFILE under a storm of
// connections held open: no CPU spin, no log flood, and service resumes once descriptors free up.
#include <gtest/gtest.h>

#include <iterator>

#include "stress/stress_clients.h"
#include "stress/stress_server.h"

namespace epoll_echo::test {
namespace {

constexpr int kSpareFds = 16;  // descriptors the server may still open above its baseline
constexpr int kStormConnections = 300;
constexpr std::ptrdiff_t kQueuedProbes = 8;  // storm connections still queued when the storm ends
constexpr auto kHeldWindow = std::chrono::milliseconds(1500);
constexpr double kMaxCpuShare = 0.05;
constexpr std::size_t kMaxWarningLines = 2;  // one per 10 s at most; the window may see the first

bool echoes(std::uint16_t port, Deadline deadline, std::string* error) {
  UniqueFd client = connectLoopback(port, deadline, error);
  char reply[4] = {};
  return client && sendAll(client.get(), "ping", 4, deadline, error) &&
         receiveExactly(client.get(), reply, sizeof reply, deadline, error) && std::string(reply, 4) == "ping";
}

TEST(StressFdExhaustionTest, HeldStormNeitherSpinsNorFloodsAndRecovers) {
  StressServer server(1);
  ASSERT_TRUE(server.started()) << server.error();
  const int baselineFds = server.openFds();
  ASSERT_GT(baselineFds, 0);
  std::string error;
  ASSERT_TRUE(server.setFdLimit(static_cast<std::uint64_t>(baselineFds + kSpareFds), &error)) << error;

  // The kernel completes every handshake into the accept queue; the server can take only a few.
  std::vector<UniqueFd> storm;
  for (int i = 0; i < kStormConnections; ++i) {
    storm.push_back(connectLoopback(server.port(), deadlineIn(std::chrono::seconds(5)), &error));
    ASSERT_TRUE(storm.back()) << "connection " << i << ": " << error;
  }
  const Deadline exhausted = deadlineIn(std::chrono::seconds(10));
  std::optional<ServerStats> stats;
  do {
    stats = server.stats(exhausted);
  } while (stats && stats->acceptErrors == 0 && Clock::now() < exhausted);
  ASSERT_TRUE(stats && stats->acceptErrors > 0) << "the server never ran out of descriptors";

  const double cpuBefore = server.cpuSeconds();
  const std::size_t linesBefore = server.stderrLines();
  const auto windowStart = Clock::now();
  // The measurement window itself: the server is observed (its output read) for a fixed time.
  server.process().waitUntil([] { return false; }, windowStart + kHeldWindow);
  const double window = std::chrono::duration<double>(Clock::now() - windowStart).count();
  const double cpuShare = (server.cpuSeconds() - cpuBefore) / window;
  const std::size_t windowLines = server.stderrLines() - linesBefore;
  stats = server.stats(deadlineIn(std::chrono::seconds(5)));
  ASSERT_TRUE(stats.has_value());

  // Freeing the held connections lets the server drain its queue: the last few of the storm, which
  // waited in the kernel's accept queue all along, are served (not reset), and so is a newcomer.
  std::vector<UniqueFd> queued(std::make_move_iterator(storm.end() - kQueuedProbes),
                               std::make_move_iterator(storm.end()));
  storm.clear();
  const auto recoverStart = Clock::now();
  for (std::size_t i = 0; i < queued.size(); ++i) {
    char reply[4] = {};
    const Deadline deadline = deadlineIn(std::chrono::seconds(10));
    EXPECT_TRUE(sendAll(queued[i].get(), "pong", 4, deadline, &error) &&
                receiveExactly(queued[i].get(), reply, sizeof reply, deadline, &error))
        << "queued connection " << i << ": " << error;
  }
  EXPECT_TRUE(echoes(server.port(), deadlineIn(std::chrono::seconds(10)), &error)) << error;
  const double recoverMs = std::chrono::duration<double, std::milli>(Clock::now() - recoverStart).count();
  queued.clear();
  EXPECT_EQ(server.waitForQuiet(0, baselineFds, deadlineIn(std::chrono::seconds(15))), "");
  const std::size_t warnings = server.stderrLines() - 1;  // all but the start line

  reportFigures("fd limit " + std::to_string(baselineFds + kSpareFds) + ", " + std::to_string(kStormConnections) +
                    " held connections: server CPU " + fixed(cpuShare * 100) + " % over " + fixed(window) + " s, " +
                    std::to_string(windowLines) + " log lines in the window, " + std::to_string(warnings) +
                    " in total, accept_errors=" + std::to_string(stats->acceptErrors) +
                    " accept_pauses=" + std::to_string(stats->acceptPauses) +
                    "; the queued clients and a new one echoed " + fixed(recoverMs) + " ms after the storm closed",
                {{"held_cpu_percent", cpuShare * 100},
                 {"held_log_lines", static_cast<double>(windowLines)},
                 {"accept_errors", static_cast<double>(stats->acceptErrors)},
                 {"accept_pauses", static_cast<double>(stats->acceptPauses)},
                 {"recover_ms", recoverMs}});
  EXPECT_LE(cpuShare, kMaxCpuShare);
  EXPECT_LE(windowLines, kMaxWarningLines);
  EXPECT_LE(warnings, kMaxWarningLines);
  EXPECT_EQ(server.stop(deadlineIn(std::chrono::seconds(10))), "");
}

}  // namespace
}  // namespace epoll_echo::test
