// stress_hostile_test.cpp — resets, half-closes, connect-and-close floods and clients that vanish
// while the server is writing to them: the server survives, and its connection count and
// descriptor count return to where they started.
#include <gtest/gtest.h>

#include "stress/stress_clients.h"
#include "stress/stress_server.h"

namespace epoll_echo::test {
namespace {

constexpr int kMixRounds = kSanitizedBuild ? 10 : 40;
constexpr int kFloodConnections = kSanitizedBuild ? 500 : 2000;
constexpr std::uint64_t kSeed = 0x5eed0004;

TEST(StressHostileTest, AbusiveClientsLeaveNoConnectionOrFdBehind) {
  StressServer server(2);
  ASSERT_TRUE(server.started()) << server.error();
  const int baselineFds = server.openFds();
  const auto start = Clock::now();
  ASSERT_EQ(runHostileMix(server.port(), kMixRounds, kSeed, deadlineIn(std::chrono::seconds(60))), "");

  // A flood of connections closed at once, half of them with a reset.
  std::string error;
  for (int i = 0; i < kFloodConnections; ++i) {
    UniqueFd client = connectLoopback(server.port(), deadlineIn(std::chrono::seconds(5)), &error);
    ASSERT_TRUE(client) << "flood connection " << i << ": " << error;
    if (i % 2 == 0) setLingerZero(client.get());
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

  // Still serving, and nothing left behind.
  std::vector<EchoJob> probe =
      makeEchoJobs(server.port(), 1, 65536, true, kSeed, deadlineIn(std::chrono::seconds(5)), &error);
  ASSERT_EQ(probe.size(), 1u) << error;
  EXPECT_EQ(runEchoJobs(probe, deadlineIn(std::chrono::seconds(10))), "");
  probe.clear();
  const auto settleStart = Clock::now();
  EXPECT_EQ(server.waitForQuiet(0, baselineFds, deadlineIn(std::chrono::seconds(15))), "");
  const double settleMs = std::chrono::duration<double, std::milli>(Clock::now() - settleStart).count();
  const auto stats = server.stats(deadlineIn(std::chrono::seconds(5)));
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->accepted, stats->closed);
  reportFigures(std::to_string(kMixRounds) + " rounds of reset/half-close/connect-close/vanish + " +
                    std::to_string(kFloodConnections) + " connect-and-close in " + fixed(seconds) +
                    " s: accepted=" + std::to_string(stats->accepted) + " closed=" + std::to_string(stats->closed) +
                    " active=" + std::to_string(stats->active) + ", fds " + std::to_string(baselineFds) + " -> " +
                    std::to_string(server.openFds()) + " (settled in " + fixed(settleMs) + " ms)",
                {{"hostile_accepted", static_cast<double>(stats->accepted)},
                 {"hostile_seconds", seconds},
                 {"settle_ms", settleMs}});
  EXPECT_EQ(server.stop(deadlineIn(std::chrono::seconds(10))), "");
}

}  // namespace
}  // namespace epoll_echo::test
