// stress_fairness_test.cpp — a firehose client (always data in flight, reads never blocking) and a
// ping-pong client on the same worker: the read budget bounds how much the firehose is served
// while the neighbour waits for one echo. The bound is counted in bytes, not time, so a busy
// machine cannot break it; latency is reported alongside, not judged.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "stress/stress_clients.h"
#include "stress/stress_server.h"

namespace epoll_echo::test {
namespace {

constexpr int kWarmUpPings = 200;
constexpr int kPings = kSanitizedBuild ? 1000 : 3000;
// The engine settings of this case, given explicitly so the bound below does not follow defaults.
constexpr std::uint64_t kHighWater = 192 * 1024;
constexpr std::uint64_t kReadBudget = 256 * 1024;
// The firehose's receive buffer, fixed (no autotuning) so that what it can hold is known.
constexpr int kFirehoseReceiveBuffer = 256 * 1024;
constexpr std::size_t kFirehoseReadSize = 256 * 1024;

// The most a TCP send buffer grows to (tcp_wmem's third field): the server's echo to the firehose
// may already sit there, queued before the neighbour's ping arrived.
std::uint64_t maxSendBuffer() {
  std::ifstream file("/proc/sys/net/ipv4/tcp_wmem");
  std::uint64_t minimum = 0, initial = 0, maximum = 0;
  file >> minimum >> initial >> maximum;
  return maximum > 0 ? maximum : 4u << 20;
}

struct Latency {
  double p50 = 0, p99 = 0, max = 0;
};

Latency summarize(std::vector<double> micros) {
  Latency latency;
  latency.p50 = percentile(micros, 50);
  latency.p99 = percentile(micros, 99);
  latency.max = micros.empty() ? 0 : micros.back();
  return latency;
}

Latency measure(int fd, int count) {
  std::string error;
  std::vector<double> micros = pingPongMicros(fd, count, deadlineIn(std::chrono::seconds(30)), &error);
  EXPECT_EQ(micros.size(), static_cast<std::size_t>(count)) << error;
  return summarize(std::move(micros));
}

// Ping-pong next to the firehose, both driven by this one thread so that no scheduling delay of
// ours can be counted against the server: while a ping waits for its echo, the firehose is fed
// 64 KiB whenever it takes it and drained whenever it has data. Each round trip's time, the
// most firehose bytes received during any one of them, and the firehose's total.
struct LoadedPings {
  std::vector<double> micros;
  std::uint64_t mostFirehoseBytesPerPing = 0;
  std::uint64_t firehoseBytes = 0;
};

LoadedPings pingNextToFirehose(int neighbour, int firehose, int count) {
  LoadedPings result;
  const Deadline deadline = deadlineIn(std::chrono::seconds(60));
  std::vector<unsigned char> out(64 * 1024), in(kFirehoseReadSize);
  fillPattern(1, 0, out.data(), out.size());
  unsigned char message[64], echo[64];
  std::string error;
  for (int i = 0; i < count && Clock::now() < deadline; ++i) {
    fillPattern(static_cast<std::uint64_t>(i), 0, message, sizeof message);
    const auto start = Clock::now();
    if (!sendAll(neighbour, message, sizeof message, deadline, &error)) {
      ADD_FAILURE() << "ping " << i << ": " << error;
      return result;
    }
    std::size_t echoed = 0;
    std::uint64_t during = 0;
    while (echoed < sizeof echo && Clock::now() < deadline) {
      pollfd polled[2] = {{neighbour, POLLIN, 0}, {firehose, POLLIN | POLLOUT, 0}};
      if (::poll(polled, 2, 100) <= 0) continue;
      if (polled[1].revents & POLLOUT) ::send(firehose, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (polled[1].revents & POLLIN) {
        const ssize_t got = ::recv(firehose, in.data(), in.size(), MSG_DONTWAIT);
        if (got > 0) during += static_cast<std::uint64_t>(got);
      }
      if (polled[0].revents & POLLIN) {
        const ssize_t got = ::recv(neighbour, echo + echoed, sizeof echo - echoed, MSG_DONTWAIT);
        if (got > 0) echoed += static_cast<std::size_t>(got);
        if (got == 0) break;
      }
    }
    if (echoed < sizeof echo) {
      ADD_FAILURE() << "ping " << i << ": no echo before the deadline";
      return result;
    }
    result.micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    result.mostFirehoseBytesPerPing = std::max(result.mostFirehoseBytesPerPing, during);
    result.firehoseBytes += during;
    EXPECT_EQ(std::memcmp(message, echo, sizeof echo), 0) << "ping " << i;
  }
  return result;
}

TEST(StressFairnessTest, FirehoseDoesNotDelayItsNeighbour) {
  // One worker: both clients share its loop.
  StressServer server(1, {"--high-water", std::to_string(kHighWater), "--read-budget", std::to_string(kReadBudget)});
  ASSERT_TRUE(server.started()) << server.error();
  std::string error;
  UniqueFd neighbour = connectLoopback(server.port(), deadlineIn(std::chrono::seconds(5)), &error);
  UniqueFd firehose = connectLoopback(server.port(), deadlineIn(std::chrono::seconds(5)), &error);
  ASSERT_TRUE(neighbour && firehose) << error;
  ASSERT_EQ(::setsockopt(firehose.get(), SOL_SOCKET, SO_RCVBUF, &kFirehoseReceiveBuffer, sizeof kFirehoseReceiveBuffer),
            0);
  int receiveBuffer = 0;  // what the kernel made of it (it doubles the value for its bookkeeping)
  socklen_t length = sizeof receiveBuffer;
  ASSERT_EQ(::getsockopt(firehose.get(), SOL_SOCKET, SO_RCVBUF, &receiveBuffer, &length), 0);
  measure(neighbour.get(), kWarmUpPings);
  const Latency alone = measure(neighbour.get(), kPings);

  pingNextToFirehose(neighbour.get(), firehose.get(), kWarmUpPings);  // the firehose reaches full speed
  const auto start = Clock::now();
  const LoadedPings loadedPings = pingNextToFirehose(neighbour.get(), firehose.get(), kPings);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double firehoseMibPerSecond = static_cast<double>(loadedPings.firehoseBytes) / (1 << 20) / seconds;
  const Latency loaded = summarize(loadedPings.micros);

  // While the neighbour waits for one echo, its ping is read in the worker's next batch at the
  // latest, and echoed at that batch's end: the firehose meanwhile gets at most two turns of the
  // worker, each its output buffer flushed (at most the high water) and one read budget echoed
  // (a connection whose budget ran out is read again only in the next pass). The firehose client may also receive what was queued
  // before the ping came: its own receive buffer and the server's send buffer (tcp_wmem max), and
  // one recv() may straddle the echo. These terms are the whole bound: no slack. A worker that
  // read the firehose until it ran dry would hand it more whenever the firehose keeps up.
  const std::uint64_t boundBytes = static_cast<std::uint64_t>(receiveBuffer) + maxSendBuffer() +
                                   2 * (kHighWater + kReadBudget) + kFirehoseReadSize;
  reportFigures("ping-pong alone p50 " + fixed(alone.p50) + " us, p99 " + fixed(alone.p99) +
                    " us; next to a firehose (" + fixed(firehoseMibPerSecond) + " MiB/s echoed) p50 " +
                    fixed(loaded.p50) + " us, p99 " + fixed(loaded.p99) + " us, max " + fixed(loaded.max) +
                    " us; the firehose received at most " + std::to_string(loadedPings.mostFirehoseBytesPerPing >> 10) +
                    " KiB during one ping (bound " + std::to_string(boundBytes >> 10) + " KiB)",
                {{"alone_p50_us", alone.p50},
                 {"alone_p99_us", alone.p99},
                 {"loaded_p50_us", loaded.p50},
                 {"loaded_p99_us", loaded.p99},
                 {"loaded_max_us", loaded.max},
                 {"firehose_mib_per_s", firehoseMibPerSecond},
                 {"firehose_kib_per_ping_max", static_cast<double>(loadedPings.mostFirehoseBytesPerPing >> 10)}});
  EXPECT_EQ(loadedPings.micros.size(), static_cast<std::size_t>(kPings));
  EXPECT_GT(loadedPings.firehoseBytes, 0u);
  EXPECT_LE(loadedPings.mostFirehoseBytesPerPing, boundBytes);
  EXPECT_EQ(server.stop(deadlineIn(std::chrono::seconds(10))), "");
}

}  // namespace
}  // namespace epoll_echo::test
