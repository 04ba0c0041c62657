// stress_soak_test.cpp — the other stress cases mixed in rounds for EPOLL_ECHO_SOAK_SECONDS
// (off by default): after every round the server must be back to no connection, its baseline
// descriptor count, and no memory growth beyond allocator noise.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

#include "stress/stress_clients.h"
#include "stress/stress_server.h"

namespace epoll_echo::test {
namespace {

constexpr std::size_t kEchoClients = 16;
constexpr std::uint64_t kEchoBytes = scaledForSanitizers(2u << 20);
constexpr std::size_t kStalledClients = 8;
constexpr int kHostileRounds = 3;
// After each round every connection has drained and closed, so RSS holds only what a round
// leaves behind for good: the same allowance as stress_memory_test's "given back" (batch-buffer
// pages touched for the first time, allocator pages of freed Connection objects). Output buffers
// are unmapped when they drain, so a leaked one would show at once.
constexpr long kAllowedGrowthKib = 2 * 1024;

// One round of every behaviour at once-ish; "" or the first failure.
std::string soakRound(std::uint16_t port, std::uint64_t seed) {
  std::string error;
  std::vector<EchoJob> stalled =
      makeEchoJobs(port, kStalledClients, 0, false, seed, deadlineIn(std::chrono::seconds(10)), &error);
  if (stalled.empty()) return error;
  std::vector<int> fds;
  for (EchoJob& job : stalled) {
    setNonBlocking(job.socket.get(), true);
    fds.push_back(job.socket.get());
  }
  std::vector<std::uint64_t> sent;
  error =
      sendUntilStalled(fds, seed, 8u << 20, std::chrono::milliseconds(100), deadlineIn(std::chrono::seconds(20)), sent);
  if (!error.empty()) return "stalled clients: " + error;
  std::vector<EchoJob> echo = makeEchoJobs(port, kEchoClients, kEchoBytes, seed % 2 == 0, seed + 1000,
                                           deadlineIn(std::chrono::seconds(10)), &error);
  if (echo.empty()) return error;
  error = runRandomEchoJobs(echo, seed, deadlineIn(std::chrono::seconds(60)));
  if (!error.empty()) return "echo clients: " + error;
  error = runHostileMix(port, kHostileRounds, seed, deadlineIn(std::chrono::seconds(60)));
  if (!error.empty()) return "hostile clients: " + error;
  for (std::size_t i = 0; i < stalled.size(); ++i) stalled[i].total = stalled[i].sent = sent[i];
  error = runRandomEchoJobs(stalled, seed + 2000, deadlineIn(std::chrono::seconds(60)));
  return error.empty() ? "" : "stalled clients reading: " + error;
}

TEST(StressSoakTest, MixedAbuseLeavesNoGrowth) {
  const char* setting = std::getenv("EPOLL_ECHO_SOAK_SECONDS");
  const long soakSeconds = setting ? std::strtol(setting, nullptr, 10) : 0;
  if (soakSeconds <= 0) GTEST_SKIP() << "soak mode is off: set EPOLL_ECHO_SOAK_SECONDS=N to run it for N seconds";

  StressServer server(2);
  ASSERT_TRUE(server.started()) << server.error();
  const int baselineFds = server.openFds();
  const Deadline end = deadlineIn(std::chrono::seconds(soakSeconds));
  std::vector<long> rssAfterRound;
  for (int round = 0; round < 1000000 && (round == 0 || Clock::now() < end); ++round) {
    ASSERT_EQ(soakRound(server.port(), 0x50a1c000 + static_cast<std::uint64_t>(round)), "") << "round " << round;
    ASSERT_EQ(server.waitForQuiet(0, baselineFds, deadlineIn(std::chrono::seconds(15))), "") << "after round " << round;
    rssAfterRound.push_back(server.rssKib());
  }
  // malloc keeps freed buffers for reuse, so RSS climbs to the rounds' peak use and stays there;
  // a leak keeps climbing. Compare the peaks of the first and the second half of the run.
  const auto half = rssAfterRound.begin() + static_cast<std::ptrdiff_t>((rssAfterRound.size() + 1) / 2);
  const long firstHalfKib = *std::max_element(rssAfterRound.begin(), half);
  const long secondHalfKib = half == rssAfterRound.end() ? firstHalfKib : *std::max_element(half, rssAfterRound.end());
  reportFigures(std::to_string(rssAfterRound.size()) + " soak rounds in " + std::to_string(soakSeconds) +
                    " s: server RSS after round 1 " + std::to_string(rssAfterRound.front() / 1024) +
                    " MiB, peak of the first half " + std::to_string(firstHalfKib / 1024) +
                    " MiB, of the second half " + std::to_string(secondHalfKib / 1024) + " MiB, after the last " +
                    std::to_string(rssAfterRound.back() / 1024) + " MiB; fds back to " + std::to_string(baselineFds) +
                    " after every round",
                {{"soak_rounds", static_cast<double>(rssAfterRound.size())},
                 {"soak_rss_first_half_kib", static_cast<double>(firstHalfKib)},
                 {"soak_rss_second_half_kib", static_cast<double>(secondHalfKib)}});
  if (!kSanitizedBuild) {
    EXPECT_LE(secondHalfKib, firstHalfKib + kAllowedGrowthKib);
  }
  EXPECT_EQ(server.stop(deadlineIn(std::chrono::seconds(20))), "");
}

}  // namespace
}  // namespace epoll_echo::test
