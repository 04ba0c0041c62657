// engine_hostile_clients_test.cpp — clients that misbehave must not hurt the engine or their
// neighbours: one that never reads (memory stays bounded by backpressure, nothing is dropped),
// resets in the middle of the echo, and a firehose sharing a worker with a ping-pong client.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <thread>
#include <vector>

#include "support/echo_traffic.h"
#include "support/plugin.h"
#include "support/timeouts.h"

namespace epoll_echo::test {
namespace {

class EngineHostileClientsTest : public PluginTest {};

// Sends as much of the job's stream as the socket takes right now; false on a send error.
bool sendWhatFits(EchoJob& job, std::vector<unsigned char>& buffer, uint64_t cap) {
  while (job.sent < cap) {
    size_t size = static_cast<size_t>(std::min<uint64_t>(buffer.size(), cap - job.sent));
    fillPattern(job.seed, job.sent, buffer.data(), size);
    ssize_t written = ::send(job.socket.get(), buffer.data(), size, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (written > 0) {
      job.sent += static_cast<uint64_t>(written);
    } else {
      return written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
    }
  }
  return true;
}

// True when none of the sockets becomes writable within `quiet`: everyone's buffers are full.
bool allStalled(const std::vector<EchoJob>& jobs, std::chrono::milliseconds quiet) {
  std::vector<pollfd> polled;
  for (const auto& job : jobs) polled.push_back({job.socket.get(), POLLOUT, 0});
  return ::poll(polled.data(), polled.size(), static_cast<int>(quiet.count())) == 0;
}

// A client that never reads must be paused, not buffered without end: the server owes each such
// connection at most high_water_bytes, whatever the read budget (a read never asks for more than
// the mark leaves room for). Small figures, so that one oversized read shows.
void expectNeverReadingClientsBounded(const PluginApi& api, uint32_t highWater, uint32_t readBudget) {
  epoll_echo_config_t config = loopbackConfig(1);
  config.high_water_bytes = highWater;
  config.read_budget_bytes = readBudget;
  TestEngine engine(api);
  std::string error;
  ASSERT_TRUE(engine.createAndStart(config));
  const size_t clients = 3;
  const uint64_t bound = clients * uint64_t{highWater};
  const uint64_t cap = 256u << 20;  // far above what kernel buffers can hold: the stall must come first
  auto jobs = makeEchoJobs(engine.port(), clients, cap, false, 42, deadlineIn(kIoTimeout), &error);
  ASSERT_EQ(jobs.size(), clients) << error;
  for (auto& job : jobs) setNonBlocking(job.socket.get(), true);

  std::vector<unsigned char> buffer(64 * 1024);
  uint64_t worstPending = 0;
  bool stalled = false;
  const Deadline deadline = deadlineIn(kBulkTimeout);
  while (!stalled && Clock::now() < deadline) {
    for (auto& job : jobs) ASSERT_TRUE(sendWhatFits(job, buffer, cap)) << "send failed";
    epoll_echo_stats_t stats = engine.stats();
    worstPending = std::max(worstPending, stats.total.bytes_in - stats.total.bytes_out);
    stalled = allStalled(jobs, std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(stalled) << "the clients could always send more: the server kept reading ("
                       << engine.stats().total.bytes_in << " bytes in)";
  epoll_echo_stats_t stats = engine.waitForStats(
      [&](const epoll_echo_stats_t& s) { return s.total.backpressure_pauses >= clients; }, deadlineIn(kIoTimeout));
  worstPending = std::max(worstPending, stats.total.bytes_in - stats.total.bytes_out);
  EXPECT_GE(stats.total.backpressure_pauses, clients);
  EXPECT_LE(worstPending, bound) << "bytes buffered in the server above high_water per connection";

  // Paused connections must not keep the worker busy.
  const uint64_t syscallsBefore = engine.stats().total.syscalls;
  EXPECT_TRUE(allStalled(jobs, std::chrono::milliseconds(200)));
  EXPECT_LT(engine.stats().total.syscalls - syscallsBefore, 200u) << "the worker spins while connections are paused";

  // Now read: every byte the clients sent comes back, in order.
  uint64_t sent = 0;
  for (auto& job : jobs) {
    job.total = job.sent;
    sent += job.sent;
  }
  ASSERT_EQ(runEchoJobs(jobs, deadlineIn(kBulkTimeout)), "");
  stats = engine.waitForStats([&](const epoll_echo_stats_t& s) { return s.total.bytes_out == sent; },
                              deadlineIn(kIoTimeout));
  EXPECT_EQ(stats.total.bytes_in, sent);
  EXPECT_EQ(stats.total.bytes_out, sent);
}

TEST_F(EngineHostileClientsTest, NeverReadingClientsAreBoundedByBackpressure) {
  expectNeverReadingClientsBounded(api(), 16 * 1024, 4096);
}

// A read budget above the mark: one pass's reads must still stop at the mark.
TEST_F(EngineHostileClientsTest, NeverReadingClientsAreBoundedWithABudgetAboveTheMark) {
  expectNeverReadingClientsBounded(api(), 16 * 1024, 64 * 1024);
}

// SO_LINGER 0 close while the engine is writing back: the engine drops just that connection.
TEST_F(EngineHostileClientsTest, ResetMidStreamLeavesOthersServed) {
  TestEngine engine(api());
  std::string error;
  ASSERT_TRUE(engine.createAndStart(loopbackConfig(1)));
  auto neighbour = makeEchoJobs(engine.port(), 1, 100000, false, 1, deadlineIn(kIoTimeout), &error);
  ASSERT_EQ(neighbour.size(), 1u) << error;
  ASSERT_EQ(runEchoJobs(neighbour, deadlineIn(kIoTimeout)), "");

  const size_t victims = 8;
  auto resetters = makeEchoJobs(engine.port(), victims, 1u << 20, false, 100, deadlineIn(kIoTimeout), &error);
  ASSERT_EQ(resetters.size(), victims) << error;
  std::vector<unsigned char> buffer(64 * 1024);
  for (auto& job : resetters) {
    setNonBlocking(job.socket.get(), true);
    ASSERT_TRUE(sendWhatFits(job, buffer, job.total));
  }
  // Wait until the engine is echoing to the victims, then reset them all mid-stream.
  engine.waitForStats([&](const epoll_echo_stats_t& s) { return s.total.bytes_out > 100000 + victims * 65536; },
                      deadlineIn(kIoTimeout));
  for (auto& job : resetters) {
    ASSERT_TRUE(setLingerZero(job.socket.get()));
    job.socket.reset();
  }
  bool ok = false;
  epoll_echo_stats_t stats =
      engine.waitForStats([&](const epoll_echo_stats_t& s) { return s.total.closed == victims && s.total.active == 1; },
                          deadlineIn(kIoTimeout), &ok);
  EXPECT_TRUE(ok) << "closed " << stats.total.closed << " active " << stats.total.active;
  EXPECT_EQ(stats.state, EPOLL_ECHO_STATE_RUNNING);

  neighbour[0].total += 300000;  // the old connection keeps working...
  ASSERT_EQ(runEchoJobs(neighbour, deadlineIn(kIoTimeout)), "");
  auto fresh = makeEchoJobs(engine.port(), 2, 200000, true, 7, deadlineIn(kIoTimeout), &error);
  ASSERT_EQ(fresh.size(), 2u) << error;  // ...and new ones are served
  ASSERT_EQ(runEchoJobs(fresh, deadlineIn(kIoTimeout)), "");
}

constexpr size_t kFirehoseChunk = 256 * 1024;  // the default read budget

// Streams continuously (reading what comes back) until told to stop; counts echoed bytes. `error`
// is only written by this thread and read after it was joined; `failed` is the shared signal.
void runFirehose(uint16_t port, const std::atomic<bool>& stop, std::atomic<uint64_t>& echoed, std::atomic<bool>& failed,
                 std::string& error) {
  UniqueFd socket = connectLoopback(port, deadlineIn(kIoTimeout), &error);
  if (!socket) {
    failed = true;
    return;
  }
  setNonBlocking(socket.get(), true);
  std::vector<unsigned char> chunk(kFirehoseChunk, 'f');
  const Deadline deadline = deadlineIn(kBulkTimeout);
  while (!stop.load() && Clock::now() < deadline) {
    pollfd entry{socket.get(), POLLIN | POLLOUT, 0};
    if (::poll(&entry, 1, 100) < 0 && errno != EINTR) break;
    if (entry.revents & POLLOUT) ::send(socket.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (entry.revents & (POLLIN | POLLERR | POLLHUP)) {
      ssize_t count = ::recv(socket.get(), chunk.data(), chunk.size(), MSG_DONTWAIT);
      if (count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR)) {
        error = "firehose connection closed by the engine";
        failed = true;
        return;
      }
      if (count > 0) echoed += static_cast<uint64_t>(count);
    }
  }
}

// Joins a thread on every path out of a test, ASSERT failures included.
struct StopAndJoin {
  std::atomic<bool>& stop;
  std::thread& thread;
  ~StopAndJoin() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
};

// Polls `echoed` until it reaches `target`; false when the firehose failed or the deadline passed.
bool waitForFirehose(const std::atomic<uint64_t>& echoed, uint64_t target, const std::atomic<bool>& failed,
                     Deadline deadline) {
  while (echoed.load() < target && !failed.load() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // polling a counter, not syncing
  }
  return echoed.load() >= target;
}

// One worker, so both clients share it: the budgets must give the ping a turn between the
// firehose's reads, and the firehose its turns between the pings. Decided by order, not speed:
// each ping is answered while the firehose keeps the worker busy, and between two pings the
// firehose is demonstrably served again (so the pings cannot all finish before it even runs).
TEST_F(EngineHostileClientsTest, BusyNeighbourDoesNotStarvePingClient) {
  TestEngine engine(api());
  std::string error;
  ASSERT_TRUE(engine.createAndStart(loopbackConfig(1)));
  UniqueFd ping = connectLoopback(engine.port(), deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(ping) << error;

  std::atomic<bool> stop{false}, failed{false};
  std::atomic<uint64_t> echoed{0};
  std::string firehoseError;
  std::thread firehose([&] { runFirehose(engine.port(), stop, echoed, failed, firehoseError); });
  StopAndJoin joiner{stop, firehose};

  // Several read budgets' worth echoed: the firehose is streaming before the first ping.
  ASSERT_TRUE(waitForFirehose(echoed, 4u << 20, failed, deadlineIn(kIoTimeout)))
      << "the firehose never got going: " << echoed.load() << " bytes echoed";

  const int kPings = 20;
  for (int pings = 0; pings < kPings; ++pings) {
    std::string message(64, static_cast<char>('a' + pings % 26)), reply(64, '\0');
    ASSERT_TRUE(sendAll(ping.get(), message, deadlineIn(kIoTimeout), &error)) << error;
    ASSERT_TRUE(receiveExactly(ping.get(), reply.data(), reply.size(), deadlineIn(kIoTimeout), &error))
        << "ping " << pings << " not answered next to a firehose: " << error;
    ASSERT_EQ(reply, message);
    // One more chunk of the firehose's (a read budget) echoed: it is streaming again.
    const uint64_t echoedAtReply = echoed.load();
    ASSERT_TRUE(waitForFirehose(echoed, echoedAtReply + kFirehoseChunk, failed, deadlineIn(kIoTimeout)))
        << "the firehose was starved after ping " << pings << " (" << echoedAtReply << " bytes echoed)";
  }
  stop = true;
  firehose.join();
  EXPECT_FALSE(failed.load()) << firehoseError;
}

}  // namespace
}  // namespace epoll_echo::test
