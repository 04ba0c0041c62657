// stress_memory_test.cpp — clients that never read their echo, then read it slowly: the server's
// resident memory stays under the documented bound while other clients are served normally, and
// every byte the stalled clients sent still comes back.
#include <gtest/gtest.h>

#include "stress/stress_clients.h"
#include "stress/stress_server.h"

namespace epoll_echo::test {
namespace {

constexpr std::size_t kStalledClients = kSanitizedBuild ? 8 : 32;
constexpr std::size_t kServedClients = 8;
constexpr std::uint64_t kServedBytes = scaledForSanitizers(4u << 20);
constexpr std::uint64_t kStalledLimit = 32u << 20;  // far above what the buffers on the way hold
// epoll-server keeps the engine's defaults: high water 1 MiB, read budget 256 KiB per wake-up.
constexpr long kPerConnectionKib = 1024 + 256;
// Allocator slack, thread stacks touched, the stats path: measured well below this.
constexpr long kConstantKib = 8 * 1024;
constexpr std::uint64_t kSeed = 0x5eed0002;

TEST(StressMemoryTest, NonReadingClientsKeepServerMemoryBounded) {
  StressServer server(2);
  ASSERT_TRUE(server.started()) << server.error();
  std::string error;
  {  // Warm up: touch each worker's read buffer once so the baseline is the steady state.
    std::vector<EchoJob> warmUp =
        makeEchoJobs(server.port(), 4, 256 * 1024, false, kSeed, deadlineIn(std::chrono::seconds(5)), &error);
    ASSERT_EQ(runEchoJobs(warmUp, deadlineIn(std::chrono::seconds(10))), "");
  }
  ASSERT_EQ(server.waitForQuiet(0, -1, deadlineIn(std::chrono::seconds(10))), "");
  const long baselineKib = server.rssKib();
  const int baselineFds = server.openFds();

  std::vector<EchoJob> stalled =
      makeEchoJobs(server.port(), kStalledClients, 0, false, kSeed + 100, deadlineIn(std::chrono::seconds(10)), &error);
  ASSERT_EQ(stalled.size(), kStalledClients) << error;
  std::vector<int> fds;
  for (EchoJob& job : stalled) {
    setNonBlocking(job.socket.get(), true);
    fds.push_back(job.socket.get());
  }
  std::vector<std::uint64_t> sent;
  ASSERT_EQ(sendUntilStalled(fds, kSeed + 100, kStalledLimit, std::chrono::milliseconds(300),
                             deadlineIn(std::chrono::seconds(30)), sent),
            "");
  const long stalledKib = server.rssKib();
  long peakKib = stalledKib;

  // Other clients are served while the stalled ones hold their buffers full.
  std::vector<EchoJob> served = makeEchoJobs(server.port(), kServedClients, kServedBytes, false, kSeed + 200,
                                             deadlineIn(std::chrono::seconds(10)), &error);
  ASSERT_EQ(served.size(), kServedClients) << error;
  const auto start = Clock::now();
  ASSERT_EQ(runRandomEchoJobs(served, kSeed + 200, deadlineIn(std::chrono::seconds(60))), "");
  const double servedSeconds = std::chrono::duration<double>(Clock::now() - start).count();
  peakKib = std::max(peakKib, server.rssKib());

  const auto stats = server.stats(deadlineIn(std::chrono::seconds(5)));
  ASSERT_TRUE(stats.has_value());
  EXPECT_GE(stats->backpressurePauses, kStalledClients);
  std::uint64_t stalledBytes = 0;
  for (std::uint64_t bytes : sent) stalledBytes += bytes;
  const long connections = static_cast<long>(kStalledClients + kServedClients);
  const long boundKib = baselineKib + connections * kPerConnectionKib + kConstantKib;
  const long stalledBoundKib = baselineKib + static_cast<long>(kStalledClients) * kPerConnectionKib + kConstantKib;
  reportFigures(std::to_string(kStalledClients) + " non-reading clients pushed " + std::to_string(stalledBytes >> 20) +
                    " MiB; server RSS " + std::to_string(baselineKib / 1024) + " -> peak " +
                    std::to_string(peakKib / 1024) + " MiB (growth " + std::to_string((peakKib - baselineKib) / 1024) +
                    " MiB = " + std::to_string((stalledKib - baselineKib) / static_cast<long>(kStalledClients)) +
                    " KiB per stalled connection, bound " + std::to_string((boundKib - baselineKib) / 1024) +
                    " MiB); " + std::to_string(kServedClients) + " normal clients echoed " +
                    std::to_string(kServedClients * kServedBytes >> 20) + " MiB in " + fixed(servedSeconds) +
                    " s meanwhile",
                {{"rss_baseline_kib", static_cast<double>(baselineKib)},
                 {"rss_peak_kib", static_cast<double>(peakKib)},
                 {"rss_bound_kib", static_cast<double>(boundKib)},
                 {"rss_growth_kib_per_stalled", static_cast<double>(stalledKib - baselineKib) / kStalledClients},
                 {"stalled_mib", static_cast<double>(stalledBytes >> 20)}});
  // ASan's quarantine and shadow memory make RSS meaningless there: reported only.
  if (!kSanitizedBuild) {
    EXPECT_LE(stalledKib, stalledBoundKib) << "with only the stalled clients holding buffers";
    EXPECT_LE(peakKib, boundKib) << "with every client connected";
  }

  // The stalled clients now read slowly (random pacing): everything they sent comes back intact.
  for (std::size_t i = 0; i < stalled.size(); ++i) stalled[i].total = stalled[i].sent = sent[i];
  EXPECT_EQ(runRandomEchoJobs(stalled, kSeed + 300, deadlineIn(std::chrono::seconds(60))), "");
  stalled.clear();
  served.clear();
  EXPECT_EQ(server.waitForQuiet(0, baselineFds, deadlineIn(std::chrono::seconds(10))), "");
  EXPECT_EQ(server.stop(deadlineIn(std::chrono::seconds(10))), "");
}

}  // namespace
}  // namespace epoll_echo::test
