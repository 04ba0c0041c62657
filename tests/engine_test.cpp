// engine_test.cpp — the engine echoes correctly over loopback: byte-exact random streams on many
// concurrent connections (1 and 4 listeners, default and tiny budgets), half-close, IPv6, two
// engines in one process, and stats that add up after a known exchange.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "support/echo_traffic.h"
#include "support/expect_echo.h"
#include "support/plugin.h"
#include "support/timeouts.h"

namespace epoll_echo::test {
namespace {

class EngineTest : public PluginTest {};

// Stats after every client has gone: each connection counted once, all bytes echoed.
void expectSettled(const TestEngine& engine, uint64_t connections, uint64_t bytes) {
  bool ok = false;
  epoll_echo_stats_t stats = engine.waitForStats(
      [&](const epoll_echo_stats_t& s) {
        return s.total.closed == connections && s.total.active == 0 && s.total.bytes_out == bytes;
      },
      deadlineIn(kIoTimeout), &ok);
  EXPECT_TRUE(ok) << "closed " << stats.total.closed << " active " << stats.total.active << " bytes_out "
                  << stats.total.bytes_out << ", expected " << connections << " closed, " << bytes << " bytes";
  EXPECT_EQ(stats.total.accepted, connections);
  EXPECT_EQ(stats.total.bytes_in, bytes);
  EXPECT_EQ(stats.total.bytes_out, bytes);
}

// The per-worker counters, summed, are the total (read after traffic stopped, so both are stable).
void expectWorkersSumToTotal(const TestEngine& engine) {
  epoll_echo_stats_t stats = engine.stats();
  epoll_echo_counters_t sum{};
  for (uint32_t i = 0; i < stats.listeners; ++i) {
    int code = 0;
    epoll_echo_worker_stats_t worker = engine.workerStats(i, &code);
    ASSERT_EQ(code, EPOLL_ECHO_OK) << "worker " << i;
    sum.accepted += worker.counters.accepted;
    sum.active += worker.counters.active;
    sum.closed += worker.counters.closed;
    sum.bytes_in += worker.counters.bytes_in;
    sum.bytes_out += worker.counters.bytes_out;
    sum.backpressure_pauses += worker.counters.backpressure_pauses;
    sum.accept_errors += worker.counters.accept_errors;
    sum.accept_pauses += worker.counters.accept_pauses;
  }
  stats = engine.stats();
  EXPECT_EQ(sum.accepted, stats.total.accepted);
  EXPECT_EQ(sum.active, stats.total.active);
  EXPECT_EQ(sum.closed, stats.total.closed);
  EXPECT_EQ(sum.bytes_in, stats.total.bytes_in);
  EXPECT_EQ(sum.bytes_out, stats.total.bytes_out);
  EXPECT_EQ(sum.backpressure_pauses, stats.total.backpressure_pauses);
  EXPECT_EQ(sum.accept_errors, stats.total.accept_errors);
  EXPECT_EQ(sum.accept_pauses, stats.total.accept_pauses);
}

struct EchoCase {
  const char* name;
  uint32_t listeners;
  uint32_t highWater;   // 0 = default
  uint32_t readBudget;  // 0 = default
};

class EngineEchoTest : public EngineTest, public ::testing::WithParamInterface<EchoCase> {};

// Writer and reader run concurrently per connection; every byte is compared with its stream.
// Tiny budgets force backpressure pauses and budget-exhausted resumption on every connection.
TEST_P(EngineEchoTest, EchoesRandomStreamsByteExact) {
  const EchoCase& param = GetParam();
  epoll_echo_config_t config = loopbackConfig(param.listeners);
  config.high_water_bytes = param.highWater;
  config.read_budget_bytes = param.readBudget;
  TestEngine engine(api());
  std::string error;
  ASSERT_TRUE(engine.createAndStart(config));
  EXPECT_EQ(engine.stats().listeners, param.listeners);
  EXPECT_NE(engine.port(), 0);

  const size_t connections = 32;
  const uint64_t bytesEach = scaledForSanitizers(param.highWater == 0 ? 4u << 20 : 1u << 20);
  auto jobs = makeEchoJobs(engine.port(), connections, bytesEach, false, 1000, deadlineIn(kIoTimeout), &error);
  ASSERT_EQ(jobs.size(), connections) << error;
  ASSERT_EQ(runEchoJobs(jobs, deadlineIn(kBulkTimeout)), "");
  jobs.clear();  // closes every client
  expectSettled(engine, connections, connections * bytesEach);
  expectWorkersSumToTotal(engine);
}

INSTANTIATE_TEST_SUITE_P(Configs, EngineEchoTest,
                         ::testing::Values(EchoCase{"OneListener", 1, 0, 0}, EchoCase{"FourListeners", 4, 0, 0},
                                           EchoCase{"TinyBudgets", 2, 4096, 4096}),
                         [](const ::testing::TestParamInfo<EchoCase>& info) { return info.param.name; });

// After FIN the engine still echoes everything pending, then closes: sizes cover no data, a few
// bytes, and more than the high-water mark (so the FIN arrives while output is queued).
TEST_F(EngineTest, HalfCloseEchoesEverythingThenEof) {
  for (uint32_t highWater : {0u, 4096u}) {
    epoll_echo_config_t config = loopbackConfig(1);
    config.high_water_bytes = highWater;
    config.read_budget_bytes = highWater;
    TestEngine engine(api());
    std::string error;
    ASSERT_TRUE(engine.createAndStart(config));
    std::vector<EchoJob> jobs;
    for (uint64_t size : {uint64_t{0}, uint64_t{5}, uint64_t{300000}, scaledForSanitizers(3u << 20)}) {
      auto one = makeEchoJobs(engine.port(), 1, size, true, size, deadlineIn(kIoTimeout), &error);
      ASSERT_EQ(one.size(), 1u) << error;
      jobs.push_back(std::move(one.front()));
    }
    ASSERT_EQ(runEchoJobs(jobs, deadlineIn(kBulkTimeout)), "") << "high water " << highWater;
    EXPECT_EQ(
        engine.waitForStats([](const epoll_echo_stats_t& s) { return s.total.active == 0; }, deadlineIn(kIoTimeout))
            .total.closed,
        4u)
        << "the engine must close a half-closed connection once its echo is flushed";
  }
}

// Sends each client's bytes (stream `i`) and a FIN; then expects every echo whole, then EOF, and
// the engine's stats to add up.
void sendAllThenFinAndCheckEchoes(const TestEngine& engine, std::vector<UniqueFd>& clients,
                                  const std::vector<size_t>& sizes, const std::function<void()>& afterSending) {
  std::string error;
  for (size_t i = 0; i < clients.size(); ++i) {
    std::vector<unsigned char> bytes = randomBytes(sizes[i], i);
    ASSERT_TRUE(sendAll(clients[i].get(), bytes.data(), bytes.size(), deadlineIn(kIoTimeout), &error)) << error;
    ASSERT_EQ(::shutdown(clients[i].get(), SHUT_WR), 0) << std::strerror(errno);
  }
  afterSending();
  for (size_t i = 0; i < clients.size(); ++i) {
    std::vector<unsigned char> echoed(sizes[i]);
    ASSERT_TRUE(receiveExactly(clients[i].get(), echoed.data(), echoed.size(), deadlineIn(kIoTimeout), &error))
        << "client " << i << ": " << error;
    ASSERT_EQ(echoed, randomBytes(sizes[i], i)) << "client " << i;
    ASSERT_TRUE(waitForEof(clients[i].get(), deadlineIn(kIoTimeout), &error)) << "client " << i << ": " << error;
  }
  expectSettled(engine, clients.size(), std::accumulate(sizes.begin(), sizes.end(), uint64_t{0}));
}

// Data and FIN already queued together when the worker reads: it reads the FIN while the echo
// still waits in its unsent batch, and must send the echo before it closes. 300 connections, some
// larger than one full read (the batch is then sent early, mid-connection).
TEST_F(EngineTest, FinReadWithTheDataStillInTheBatchLosesNothing) {
  TestEngine engine(api());
  ASSERT_TRUE(engine.createAndStart(loopbackConfig(1)));
  std::vector<UniqueFd> clients = connectClients(engine.port(), 300);
  std::vector<size_t> sizes;
  for (size_t i = 0; i < clients.size(); ++i) {
    // Every 32nd is 300 KB: more than one 256 KiB read, and within the socket buffers, so
    // sendAll() does not wait for the echo to be read.
    sizes.push_back(i % 32 == 31 ? 300000 : 1 + i * 37);
  }
  sendAllThenFinAndCheckEchoes(engine, clients, sizes, [] {});
}

// 300 connections become readable at once (the engine is paused while they send), each with two
// read budgets (the smallest) and a few bytes: the second resume pass reads those few bytes from
// 256 connections and a full budget from the other 44, more echoes than one batch has room for
// (256), so the batch is sent in parts.
TEST_F(EngineTest, MoreReadyConnectionsThanOneBatchHoldsLoseNothing) {
  epoll_echo_config_t config = loopbackConfig(1);
  config.read_budget_bytes = 4096;
  TestEngine engine(api());
  ASSERT_TRUE(engine.createAndStart(config));
  std::vector<UniqueFd> clients = connectClients(engine.port(), 300);
  ASSERT_TRUE(waitUntilAccepted(engine, clients.size()));
  ASSERT_EQ(api().pause(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  std::vector<size_t> sizes;
  for (size_t i = 0; i < clients.size(); ++i) {
    sizes.push_back(2 * 4096 + 1 + i % 50);  // fits the socket buffers while nobody reads
  }
  sendAllThenFinAndCheckEchoes(engine, clients, sizes, [&] {
    ASSERT_EQ(api().resume(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  });
}

TEST_F(EngineTest, EchoesOverIpv6Loopback) {
  std::string error;
  if (!listenTcp("::1", 0, 1, &error)) GTEST_SKIP() << "no IPv6 loopback here: " << error;
  for (const char* address : {"::1", "[::1]"}) {
    epoll_echo_config_t config = loopbackConfig(2);
    std::strcpy(config.bind_address, address);
    TestEngine engine(api());
    ASSERT_TRUE(engine.createAndStart(config)) << address;
    std::vector<EchoJob> jobs(1);
    jobs[0].socket = connectTcp("::1", engine.port(), deadlineIn(kIoTimeout), &error);
    ASSERT_TRUE(jobs[0].socket) << error;
    jobs[0].total = 100000;
    jobs[0].halfClose = true;
    EXPECT_EQ(runEchoJobs(jobs, deadlineIn(kBulkTimeout)), "") << address;
    // Bound to ::1 only: the IPv4 loopback must not reach it.
    EXPECT_FALSE(connectLoopback(engine.port(), deadlineIn(kIoTimeout), &error)) << address;
  }
}

TEST_F(EngineTest, TwoEnginesInOneProcessEchoAtOnce) {
  TestEngine first(api()), second(api());
  std::string error;
  ASSERT_TRUE(first.createAndStart(loopbackConfig(2)));
  ASSERT_TRUE(second.createAndStart(loopbackConfig(1)));
  ASSERT_NE(first.port(), second.port());
  const uint64_t bytesEach = scaledForSanitizers(1u << 20);
  auto jobs = makeEchoJobs(first.port(), 4, bytesEach, true, 1, deadlineIn(kIoTimeout), &error);
  auto more = makeEchoJobs(second.port(), 3, bytesEach, true, 100, deadlineIn(kIoTimeout), &error);
  ASSERT_EQ(jobs.size() + more.size(), 7u) << error;
  for (auto& job : more) jobs.push_back(std::move(job));
  ASSERT_EQ(runEchoJobs(jobs, deadlineIn(kBulkTimeout)), "");
  jobs.clear();
  expectSettled(first, 4, 4 * bytesEach);
  expectSettled(second, 3, 3 * bytesEach);
  EXPECT_EQ(first.stop(), EPOLL_ECHO_OK);
  // One engine stopping leaves the other serving.
  auto after = makeEchoJobs(second.port(), 1, 1000, true, 7, deadlineIn(kIoTimeout), &error);
  ASSERT_EQ(after.size(), 1u) << error;
  EXPECT_EQ(runEchoJobs(after, deadlineIn(kIoTimeout)), "");
}

// accept_budget 1 leaves connections queued after every wake-up; the listener must be revisited
// without a new edge, or the queued clients would wait forever.
TEST_F(EngineTest, QueuedConnectionsAreAcceptedWithATinyAcceptBudget) {
  epoll_echo_config_t config = loopbackConfig(1);
  config.accept_budget = 1;
  TestEngine engine(api());
  std::string error;
  ASSERT_TRUE(engine.createAndStart(config));
  const size_t connections = 200;
  auto jobs = makeEchoJobs(engine.port(), connections, 100, true, 5, deadlineIn(kIoTimeout), &error);
  ASSERT_EQ(jobs.size(), connections) << error;
  ASSERT_EQ(runEchoJobs(jobs, deadlineIn(kBulkTimeout)), "");
  jobs.clear();
  expectSettled(engine, connections, connections * 100);
}

// Counters move asynchronously to the clients' view, so each expectation waits for them to settle.
TEST_F(EngineTest, StatsCountersAddUpAfterAKnownExchange) {
  TestEngine engine(api());
  std::string error;
  ASSERT_TRUE(engine.createAndStart(loopbackConfig(2)));
  std::vector<EchoJob> jobs;
  uint64_t totalBytes = 0;
  for (uint64_t i = 0; i < 10; ++i) {
    auto one = makeEchoJobs(engine.port(), 1, 1000 * (i + 1), false, i, deadlineIn(kIoTimeout), &error);
    ASSERT_EQ(one.size(), 1u) << error;
    jobs.push_back(std::move(one.front()));
    totalBytes += 1000 * (i + 1);
  }
  ASSERT_EQ(runEchoJobs(jobs, deadlineIn(kIoTimeout)), "");
  bool ok = false;
  epoll_echo_stats_t stats = engine.waitForStats(
      [&](const epoll_echo_stats_t& s) { return s.total.active == 10 && s.total.bytes_out == totalBytes; },
      deadlineIn(kIoTimeout), &ok);
  EXPECT_TRUE(ok) << "active " << stats.total.active << " bytes_out " << stats.total.bytes_out;
  EXPECT_EQ(stats.total.accepted, 10u);
  EXPECT_EQ(stats.total.closed, 0u);
  EXPECT_EQ(stats.total.bytes_in, totalBytes);
  EXPECT_EQ(stats.total.accept_errors, 0u);
  EXPECT_GT(stats.total.syscalls, 0u);
  EXPECT_GT(stats.total.wakeups, 0u);
  expectWorkersSumToTotal(engine);

  jobs.erase(jobs.begin(), jobs.begin() + 4);  // close four clients
  stats = engine.waitForStats([](const epoll_echo_stats_t& s) { return s.total.closed == 4; }, deadlineIn(kIoTimeout));
  EXPECT_EQ(stats.total.closed, 4u);
  EXPECT_EQ(stats.total.active, 6u);
  jobs.clear();
  expectSettled(engine, 10, totalBytes);
  EXPECT_EQ(engine.stop(), EPOLL_ECHO_OK);
  stats = engine.stats();  // counters survive stop
  EXPECT_EQ(stats.state, EPOLL_ECHO_STATE_STOPPED);
  EXPECT_EQ(stats.total.accepted, 10u);
  EXPECT_EQ(stats.total.bytes_out, totalBytes);
}

// The design target is about two system calls per echoed message (read, write) plus amortised
// epoll_wait; ping-pong defeats amortisation, so allow four per message.
TEST_F(EngineTest, PingPongCostsFewSystemCallsPerMessage) {
  TestEngine engine(api());
  ASSERT_TRUE(engine.createAndStart(loopbackConfig(1)));
  UniqueFd client;
  ASSERT_NO_FATAL_FAILURE(expectEchoOnNewConnection(engine.port(), "warm", "127.0.0.1", &client));
  const uint64_t before =
      engine.waitForStats([](const epoll_echo_stats_t& s) { return s.total.bytes_out == 4; }, deadlineIn(kIoTimeout))
          .total.syscalls;
  const int messages = 500;
  for (int i = 0; i < messages; ++i) {
    ASSERT_NO_FATAL_FAILURE(expectEcho(client.get(), std::string(64, static_cast<char>('a' + i % 26))));
  }
  const uint64_t used = engine.stats().total.syscalls - before;
  EXPECT_LE(used, 4u * messages) << used << " system calls for " << messages << " messages";
}

}  // namespace
}  // namespace epoll_echo::test
