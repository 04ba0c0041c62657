// stress_fairness_test.cpp — a firehose client (always data in flight, reads never blocking) and a
// ping-pong client on the same worker: the read budget must keep the neighbour's latency low.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <thread>

#include "stress/stress_clients.h"
#include "stress/stress_server.h"

namespace epoll_echo::test {
namespace {

constexpr int kWarmUpPings = 200;
constexpr int kPings = kSanitizedBuild ? 1000 : 3000;
constexpr double kMaxP99Micros = 2000;
constexpr int kAttempts = 3;

// Pushes 64 KiB writes whenever the socket takes them and drains whatever comes back, until told
// to stop. Returns bytes echoed back (not checked: the integrity case does that).
std::uint64_t runFirehose(int fd, const std::atomic<bool>& stop, Deadline deadline) {
  std::vector<unsigned char> out(64 * 1024), in(256 * 1024);
  fillPattern(1, 0, out.data(), out.size());
  std::uint64_t received = 0;
  while (!stop.load(std::memory_order_relaxed) && Clock::now() < deadline) {
    pollfd polled{fd, POLLIN | POLLOUT, 0};
    if (::poll(&polled, 1, 100) <= 0) continue;
    if (polled.revents & POLLOUT) ::send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (polled.revents & POLLIN) {
      const ssize_t got = ::recv(fd, in.data(), in.size(), MSG_DONTWAIT);
      if (got > 0) received += static_cast<std::uint64_t>(got);
      if (got == 0) break;
    }
    if (polled.revents & (POLLERR | POLLHUP)) break;
  }
  return received;
}

struct Latency {
  double p50 = 0, p99 = 0, max = 0;
};

Latency measure(int fd, int count) {
  std::string error;
  std::vector<double> micros = pingPongMicros(fd, count, deadlineIn(std::chrono::seconds(30)), &error);
  EXPECT_EQ(micros.size(), static_cast<std::size_t>(count)) << error;
  Latency latency;
  latency.p50 = percentile(micros, 50);
  latency.p99 = percentile(micros, 99);
  latency.max = micros.empty() ? 0 : micros.back();
  return latency;
}

TEST(StressFairnessTest, FirehoseDoesNotDelayItsNeighbour) {
  StressServer server(1);  // one worker: both clients share its loop
  ASSERT_TRUE(server.started()) << server.error();
  std::string error;
  Fd neighbour = connectLoopback(server.port(), deadlineIn(std::chrono::seconds(5)), &error);
  Fd firehose = connectLoopback(server.port(), deadlineIn(std::chrono::seconds(5)), &error);
  ASSERT_TRUE(neighbour && firehose) << error;
  measure(neighbour.get(), kWarmUpPings);
  const Latency alone = measure(neighbour.get(), kPings);

  std::atomic<bool> stop{false};
  std::uint64_t firehoseBytes = 0;
  const auto start = Clock::now();
  std::thread pusher([&] { firehoseBytes = runFirehose(firehose.get(), stop, deadlineIn(std::chrono::seconds(60))); });
  measure(neighbour.get(), kWarmUpPings);  // the firehose is at full speed from here on
  // Unfairness shows in every attempt; a burst from an unrelated process on a 2-core machine
  // shows in one. The best of a few attempts is judged, every attempt is reported.
  Latency loaded = measure(neighbour.get(), kPings);
  std::string attempts = fixed(loaded.p99);
  for (int attempt = 1; attempt < kAttempts && loaded.p99 > kMaxP99Micros; ++attempt) {
    const Latency again = measure(neighbour.get(), kPings);
    attempts += ", " + fixed(again.p99);
    if (again.p99 < loaded.p99) loaded = again;
  }
  stop = true;
  pusher.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double firehoseMibPerSecond = static_cast<double>(firehoseBytes) / (1 << 20) / seconds;

  reportFigures("ping-pong alone p50 " + fixed(alone.p50) + " us, p99 " + fixed(alone.p99) +
                    " us; next to a firehose (" + fixed(firehoseMibPerSecond) + " MiB/s echoed) p50 " +
                    fixed(loaded.p50) + " us, p99 " + fixed(loaded.p99) + " us, max " + fixed(loaded.max) +
                    " us (p99 of each attempt: " + attempts + " us)",
                {{"alone_p50_us", alone.p50},
                 {"alone_p99_us", alone.p99},
                 {"loaded_p50_us", loaded.p50},
                 {"loaded_p99_us", loaded.p99},
                 {"loaded_max_us", loaded.max},
                 {"firehose_mib_per_s", firehoseMibPerSecond}});
  EXPECT_GT(firehoseBytes, 0u);
  // Sanitizers slow every system call several times over: the figure is reported, not judged.
  if (!kSanitizedBuild) {
    EXPECT_LE(loaded.p99, kMaxP99Micros);
  }
  EXPECT_EQ(server.stop(deadlineIn(std::chrono::seconds(10))), "");
}

}  // namespace
}  // namespace epoll_echo::test
