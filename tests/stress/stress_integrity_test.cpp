// stress_integrity_test.cpp — hundreds of MB of random data through epoll-server, in random send
// and receive sizes with random read pacing, every echoed byte checked against what was sent.
#include <gtest/gtest.h>

#include "stress/stress_clients.h"
#include "stress/stress_server.h"

namespace epoll_echo::test {
namespace {

constexpr std::size_t kConnections = kSanitizedBuild ? 16 : 48;
constexpr std::uint64_t kBytesEach = scaledForSanitizers(8u << 20);
constexpr std::uint64_t kSeed = 0x5eed0001;

TEST(StressIntegrityTest, RandomChunksAndPacingLoseNoByte) {
  StressServer server(2);
  ASSERT_TRUE(server.started()) << server.error();
  const int baselineFds = server.openFds();
  std::string error;
  std::vector<EchoJob> jobs =
      makeEchoJobs(server.port(), kConnections, kBytesEach, false, kSeed, deadlineIn(std::chrono::seconds(10)), &error);
  ASSERT_EQ(jobs.size(), kConnections) << error;

  const auto start = Clock::now();
  const std::string failure = runRandomEchoJobs(jobs, kSeed, deadlineIn(std::chrono::seconds(100)));
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  ASSERT_EQ(failure, "");

  const auto stats = server.stats(deadlineIn(std::chrono::seconds(5)));
  ASSERT_TRUE(stats.has_value());
  const std::uint64_t total = kConnections * kBytesEach;
  EXPECT_EQ(stats->bytesIn, total);
  EXPECT_EQ(stats->bytesOut, total);
  const double megabytes = static_cast<double>(total) / (1 << 20);
  reportFigures(
      std::to_string(kConnections) + " connections x " + std::to_string(kBytesEach >> 20) + " MiB = " +
          std::to_string(static_cast<long>(megabytes)) + " MiB echoed and checked in " + fixed(seconds) + " s (" +
          fixed(megabytes / seconds) + " MiB/s), server RSS " + std::to_string(server.rssKib() / 1024) + " MiB",
      {{"integrity_mib", megabytes}, {"integrity_seconds", seconds}, {"integrity_mib_per_s", megabytes / seconds}});

  jobs.clear();  // closes every client
  EXPECT_EQ(server.waitForQuiet(0, baselineFds, deadlineIn(std::chrono::seconds(10))), "");
  EXPECT_EQ(server.stop(deadlineIn(std::chrono::seconds(10))), "");
}

}  // namespace
}  // namespace epoll_echo::test
