// stress_memory_test.cpp — clients that never read their echo, then read it slowly: the server's
// resident memory stays under the documented bound (docs/reliability.md, "The memory bound") for
// several buffer settings while other clients are served normally, every byte the stalled clients
// sent still comes back, and once they have left the memory is given back.
#include <unistd.h>

#include <cstdlib>
#include <ostream>

#include <gtest/gtest.h>

#include "stress/stress_clients.h"
#include "stress/stress_server.h"

namespace epoll_echo::test {
namespace {

constexpr std::size_t kListeners = 2;
constexpr std::size_t kStalledClients = kSanitizedBuild ? 8 : 32;
constexpr std::size_t kServedClients = 8;
constexpr std::uint64_t kServedBytes = scaledForSanitizers(4u << 20);
constexpr std::uint64_t kStalledLimit = 32u << 20;  // far above what the buffers on the way hold
constexpr std::uint64_t kSeed = 0x5eed0002;

// The documented bound, term by term (docs/reliability.md):
//   RSS growth <= connections x (high water rounded up to a page + kConnectionKib)
//                 + listeners x kBatchBufferKib + kSlackKib
// A connection's unsent bytes live in a mapping of their own that never exceeds the high-water
// mark rounded up to a page. Its Connection object and its slots in the worker's tables take about
// 150 bytes (docs/benchmarks.md, idle connections): 1 KiB covers that with the allocator's rounding.
constexpr long kConnectionKib = 1;
// Each worker reads into one 512 KiB batch buffer; the warm-up may not have touched all its pages.
constexpr long kBatchBufferKib = 512;
// Everything else: worker and host thread stack pages, the allocator's per-thread arenas growing by
// a page for the Connection objects, the stats path. Measured 0-120 KiB with a 4 KiB high water
// (where the other terms are smallest); 512 KiB leaves room for another allocator or kernel.
constexpr long kSlackKib = 512;
// After the clients have gone, RSS is back within this of the warm baseline (the batch buffers'
// pages the stalled phase touched for the first time are the largest part: up to 2 x 512 KiB).
constexpr long kGivenBackKib = 2 * 1024;
constexpr auto kGivenBackWithin = std::chrono::seconds(1);

struct BufferSetting {
  const char* name;
  std::uint32_t highWaterBytes;    // what the engine uses
  std::vector<std::string> flags;  // what epoll-server is given
};

// The engine's default high water (plugin/config.h, documented in api/epoll_echo.h).
constexpr std::uint32_t kDefaultHighWaterBytes = 128u << 10;

long pageRoundedKib(std::uint32_t bytes) {
  const long page = ::sysconf(_SC_PAGESIZE);
  return (static_cast<long>(bytes) + page - 1) / page * page / 1024;
}

class StressMemoryTest : public ::testing::TestWithParam<BufferSetting> {};

std::string describe(long kib) { return std::to_string(kib) + " KiB"; }

TEST_P(StressMemoryTest, NonReadingClientsKeepServerMemoryBoundedAndGiveItBack) {
  const BufferSetting& setting = GetParam();
  StressServer server(kListeners, setting.flags);
  ASSERT_TRUE(server.started()) << server.error();
  std::string error;
  {  // Warm up: touch each worker's batch buffer so the baseline is the steady state.
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
  // Every buffer full: each stalled connection has reached its high-water mark (the server says
  // so) and the clients can push no more. A busy CPU may hold the server back longer than the
  // clients' stall window, so the clients push again until the server confirms.
  std::vector<std::uint64_t> sent(kStalledClients, 0);
  const Deadline fillDeadline = deadlineIn(std::chrono::seconds(60));
  std::optional<ServerStats> stats;
  do {
    std::vector<std::uint64_t> more;
    ASSERT_EQ(sendUntilStalled(fds, kSeed + 100, kStalledLimit, std::chrono::milliseconds(300), fillDeadline, more),
              "");
    for (std::size_t i = 0; i < more.size(); ++i) sent[i] += more[i];
    stats = server.stats(deadlineIn(std::chrono::seconds(5)));
    ASSERT_TRUE(stats.has_value());
  } while (stats->backpressurePauses < kStalledClients && Clock::now() < fillDeadline);
  ASSERT_GE(stats->backpressurePauses, kStalledClients) << "not every stalled connection reached its high water";
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

  std::uint64_t stalledBytes = 0;
  for (std::uint64_t bytes : sent) stalledBytes += bytes;
  const long perConnectionKib = pageRoundedKib(setting.highWaterBytes) + kConnectionKib;
  const long fixedKib = static_cast<long>(kListeners) * kBatchBufferKib + kSlackKib;
  const long stalledBoundKib = static_cast<long>(kStalledClients) * perConnectionKib + fixedKib;
  const long boundKib = static_cast<long>(kStalledClients + kServedClients) * perConnectionKib + fixedKib;
  const long stalledGrowthKib = stalledKib - baselineKib;

  // The stalled clients now read slowly (random pacing): everything they sent comes back intact.
  for (std::size_t i = 0; i < stalled.size(); ++i) stalled[i].total = stalled[i].sent = sent[i];
  EXPECT_EQ(runRandomEchoJobs(stalled, kSeed + 300, deadlineIn(std::chrono::seconds(60))), "");
  stalled.clear();
  served.clear();
  EXPECT_EQ(server.waitForQuiet(0, baselineFds, deadlineIn(std::chrono::seconds(10))), "");
  // Given back: a drained buffer is unmapped at once, so polling for a second is plenty.
  long afterKib = server.rssKib();
  for (const Deadline givenBack = deadlineIn(kGivenBackWithin);
       afterKib - baselineKib > kGivenBackKib && Clock::now() < givenBack;) {
    afterKib = server.rssKib();
  }

  reportFigures(std::string(setting.name) + ": " + std::to_string(kStalledClients) + " non-reading clients pushed " +
                    std::to_string(stalledBytes >> 20) + " MiB; server RSS " + describe(baselineKib) + " -> " +
                    describe(stalledKib) + " (" + describe(stalledGrowthKib / static_cast<long>(kStalledClients)) +
                    " per stalled connection, bound " + describe(stalledBoundKib / static_cast<long>(kStalledClients)) +
                    "), peak " + describe(peakKib) + " with " + std::to_string(kServedClients) +
                    " more clients echoing " + std::to_string(kServedClients * kServedBytes >> 20) + " MiB in " +
                    fixed(servedSeconds) + " s; after they all left " + describe(afterKib),
                {{"rss_baseline_kib", static_cast<double>(baselineKib)},
                 {"rss_stalled_kib", static_cast<double>(stalledKib)},
                 {"rss_peak_kib", static_cast<double>(peakKib)},
                 {"rss_bound_kib", static_cast<double>(baselineKib + boundKib)},
                 {"rss_after_kib", static_cast<double>(afterKib)},
                 {"rss_growth_kib_per_stalled", static_cast<double>(stalledGrowthKib) / kStalledClients},
                 {"stalled_mib", static_cast<double>(stalledBytes >> 20)}});
  // ASan's quarantine and shadow memory make RSS meaningless there: reported only.
  if (!kSanitizedBuild) {
    EXPECT_LE(stalledGrowthKib, stalledBoundKib) << "with only the stalled clients holding buffers";
    EXPECT_LE(peakKib - baselineKib, boundKib) << "with every client connected";
    EXPECT_LE(afterKib - baselineKib, kGivenBackKib) << "a second after every client left";
  }
  EXPECT_EQ(server.stop(deadlineIn(std::chrono::seconds(10))), "");
}

// The defaults, the smallest legal limits, and large ones with a read budget above the high water.
// EPOLL_ECHO_STRESS_HIGH_WATER=BYTES adds a run with that high water (how the curve in
// docs/benchmarks.md was measured).
std::vector<BufferSetting> settings() {
  std::vector<BufferSetting> all = {{"defaults", kDefaultHighWaterBytes, {}},
                                    {"smallest", 4096, {"--high-water", "4096", "--read-budget", "4096"}},
                                    {"large", 1u << 20, {"--high-water", "1048576", "--read-budget", "4194304"}}};
  if (const char* chosen = std::getenv("EPOLL_ECHO_STRESS_HIGH_WATER"); chosen != nullptr && *chosen != '\0') {
    const auto bytes = static_cast<std::uint32_t>(std::strtoul(chosen, nullptr, 10));
    all.push_back({"chosen", bytes, {"--high-water", std::to_string(bytes)}});
  }
  return all;
}

void PrintTo(const BufferSetting& setting, std::ostream* out) { *out << setting.name; }

INSTANTIATE_TEST_SUITE_P(Settings, StressMemoryTest, ::testing::ValuesIn(settings()),
                         [](const ::testing::TestParamInfo<BufferSetting>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace epoll_echo::test
