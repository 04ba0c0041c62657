// abi_state_test.cpp — misuse of the C ABI's stateful half: lifecycle order (start twice, stop
// idempotent, destroy while running), stats/worker_stats/last_error argument and size rules, and
// the [any-thread]/[control] promises exercised from concurrent threads (TSan checks the rest).
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "support/expect_echo.h"
#include "support/plugin.h"
#include "support/timeouts.h"

namespace epoll_echo::test {
namespace {

class AbiStateTest : public PluginTest {
 protected:
  // Starts `engine` on a port that a plain listener already holds, so start fails with EBIND.
  void failStartOnBusyPort(TestEngine& engine, UniqueFd& occupier) {
    std::string error;
    occupier = listenTcp("127.0.0.1", 0, 4, &error);
    ASSERT_TRUE(occupier) << error;
    epoll_echo_config_t config = loopbackConfig();
    config.port = localPort(occupier.get());
    ASSERT_EQ(engine.create(config, &error), EPOLL_ECHO_OK) << error;
    ASSERT_EQ(engine.start(), EPOLL_ECHO_EBIND);
  }
};

TEST_F(AbiStateTest, StartTwiceIsAStateError) {
  TestEngine engine(api());
  ASSERT_TRUE(engine.createAndStart(loopbackConfig()));
  EXPECT_EQ(engine.stats().state, EPOLL_ECHO_STATE_RUNNING);
  EXPECT_EQ(engine.start(), EPOLL_ECHO_ESTATE);
  expectEchoOnNewConnection(engine.port(), "still serving");
  EXPECT_EQ(engine.stop(), EPOLL_ECHO_OK);
  EXPECT_EQ(engine.start(), EPOLL_ECHO_ESTATE) << "an engine runs once";
  EXPECT_EQ(engine.stats().state, EPOLL_ECHO_STATE_STOPPED);
}

TEST_F(AbiStateTest, StopIsIdempotent) {
  TestEngine engine(api());
  std::string error;
  ASSERT_EQ(engine.create(loopbackConfig(), &error), EPOLL_ECHO_OK) << error;
  EXPECT_EQ(engine.stats().state, EPOLL_ECHO_STATE_CREATED);
  EXPECT_EQ(engine.stop(), EPOLL_ECHO_OK);
  EXPECT_EQ(engine.stats().state, EPOLL_ECHO_STATE_STOPPED);
  EXPECT_EQ(engine.stop(), EPOLL_ECHO_OK);
  EXPECT_EQ(engine.start(), EPOLL_ECHO_ESTATE);

  TestEngine running(api());
  ASSERT_TRUE(running.createAndStart(loopbackConfig(2)));
  EXPECT_EQ(running.stop(), EPOLL_ECHO_OK);
  EXPECT_EQ(running.stop(), EPOLL_ECHO_OK);
  EXPECT_EQ(running.stats().state, EPOLL_ECHO_STATE_STOPPED);
}

TEST_F(AbiStateTest, DestroyStopsARunningEngine) {
  const int fdsBefore = countOpenFds();
  {
    TestEngine engine(api());
    std::string error;
    ASSERT_TRUE(engine.createAndStart(loopbackConfig(2)));
    UniqueFd client = connectLoopback(engine.port(), deadlineIn(kIoTimeout), &error);
    ASSERT_TRUE(client) << error;
    expectEchoOnNewConnection(engine.port(), "hello");
    engine.destroy();  // no stop() first
    PeerClose outcome = waitForClose(client.get(), deadlineIn(kIoTimeout));
    EXPECT_TRUE(outcome == PeerClose::Eof || outcome == PeerClose::Reset) << toString(outcome);
  }
  EXPECT_EQ(countOpenFds(), fdsBefore) << describeOpenFds();
}

// A stopped engine keeps its counters but no descriptor: not its sockets, and not the epoll
// instance and eventfd of each worker either (a host may keep stopped engines for their stats).
TEST_F(AbiStateTest, StopReleasesEveryDescriptorAndKeepsTheCounters) {
  const int fdsBefore = countOpenFds();
  TestEngine engine(api());
  ASSERT_TRUE(engine.createAndStart(loopbackConfig(4)));
  const std::string message = "counted";
  expectEchoOnNewConnection(engine.port(), message);
  ASSERT_EQ(engine.stop(), EPOLL_ECHO_OK) << engine.lastError();
  EXPECT_EQ(countOpenFds(), fdsBefore) << describeOpenFds();

  int code = 1;
  const epoll_echo_stats_t stats = engine.stats(&code);
  EXPECT_EQ(code, EPOLL_ECHO_OK);
  EXPECT_EQ(stats.state, EPOLL_ECHO_STATE_STOPPED);
  EXPECT_EQ(stats.listeners, 4u);
  EXPECT_EQ(stats.total.accepted, 1u);
  EXPECT_EQ(stats.total.closed, 1u);
  EXPECT_EQ(stats.total.bytes_in, message.size());
  EXPECT_EQ(stats.total.bytes_out, message.size());
  for (uint32_t index = 0; index < 4; ++index) {
    engine.workerStats(index, &code);
    EXPECT_EQ(code, EPOLL_ECHO_OK) << index;
  }
}

// Every failing call leaves its own message, never an empty or an earlier one: each failure below
// must replace the message the one before it left.
TEST_F(AbiStateTest, EveryFailureLeavesItsOwnMessage) {
  TestEngine engine(api());
  std::string error;
  ASSERT_TRUE(engine.createAndStart(loopbackConfig(2)));
  ASSERT_EQ(engine.start(), EPOLL_ECHO_ESTATE);
  std::string previous = engine.lastError();
  ASSERT_FALSE(previous.empty());
  const auto expectOwnMessage = [&](int code, int expected, const std::string& mentions) {
    EXPECT_EQ(code, expected) << describeCode(api(), code) << " for " << mentions;
    const std::string message = engine.lastError();
    EXPECT_NE(message, previous) << "no message of its own for " << mentions;
    EXPECT_NE(message.find(mentions), std::string::npos) << "\"" << message << "\" does not mention " << mentions;
    previous = message;
  };
  expectOwnMessage(api().stats(engine.handle(), nullptr), EPOLL_ECHO_EINVAL, "stats");
  epoll_echo_stats_t stats{};
  stats.size = 4;
  expectOwnMessage(api().stats(engine.handle(), &stats), EPOLL_ECHO_ESIZE, "size 4");
  epoll_echo_worker_stats_t workerStats{};
  workerStats.size = sizeof workerStats;
  expectOwnMessage(api().worker_stats(engine.handle(), 99, &workerStats), EPOLL_ECHO_ERANGE, "index 99");
  expectOwnMessage(api().worker_stats(engine.handle(), 0, nullptr), EPOLL_ECHO_EINVAL, "worker_stats");
  workerStats.size = 2;
  expectOwnMessage(api().worker_stats(engine.handle(), 0, &workerStats), EPOLL_ECHO_ESIZE, "size 2");
  // last_error's own misuse is the one failure that must not replace the message being read.
  EXPECT_EQ(api().last_error(engine.handle(), nullptr, 8), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(engine.lastError(), previous);

  ASSERT_EQ(api().pause(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  uint32_t count = 0;
  expectOwnMessage(api().handover_counts(engine.handle(), nullptr, &count), EPOLL_ECHO_EINVAL, "listeners");
  expectOwnMessage(api().handover_counts(engine.handle(), &count, nullptr), EPOLL_ECHO_EINVAL, "connections");
  expectOwnMessage(api().export_listener(engine.handle(), 0, nullptr), EPOLL_ECHO_EINVAL, "export_listener");
  expectOwnMessage(api().export_connection(engine.handle(), 0, nullptr, nullptr, 0), EPOLL_ECHO_EINVAL,
                   "export_connection");
  epoll_echo_connection_state_t state{};
  state.size = 4;
  expectOwnMessage(api().export_connection(engine.handle(), 0, &state, nullptr, 0), EPOLL_ECHO_ESIZE, "size 4");

  TestEngine fresh(api());
  ASSERT_EQ(fresh.create(loopbackConfig(), &error), EPOLL_ECHO_OK) << error;
  state.size = 4;
  EXPECT_EQ(api().import_connection(fresh.handle(), &state, nullptr), EPOLL_ECHO_ESIZE);
  EXPECT_NE(fresh.lastError().find("size 4"), std::string::npos) << fresh.lastError();
  EXPECT_EQ(api().import_connection(fresh.handle(), nullptr, nullptr), EPOLL_ECHO_EINVAL);
  EXPECT_NE(fresh.lastError().find("state is NULL"), std::string::npos) << fresh.lastError();
}

// The pending buffer is too small for a paused connection's unsent bytes: EINVAL, *state filled
// so the caller can retry, and a message that says so.
TEST_F(AbiStateTest, ExportConnectionExplainsATooSmallPendingBuffer) {
  TestEngine engine(api());
  epoll_echo_config_t config = loopbackConfig();
  config.high_water_bytes = 4096;
  config.read_budget_bytes = 4096;
  std::string error;
  ASSERT_TRUE(engine.createAndStart(config));
  UniqueFd client = connectLoopback(engine.port(), deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(client) << error;
  ASSERT_TRUE(setNonBlocking(client.get(), true));
  // The client never reads: the echo fills both socket buffers, then the engine's output buffer
  // until the connection is paused above its high water. Bounded by count and by the deadline.
  const std::string chunk(65536, 'q');
  const Deadline deadline = deadlineIn(kIoTimeout);
  bool paused = false;
  for (int round = 0; round < 100000 && !paused && Clock::now() < deadline; ++round) {
    [[maybe_unused]] const ssize_t sent = ::send(client.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
    paused = engine.stats().total.backpressure_pauses > 0;
    if (!paused) {
      pollfd writable{client.get(), POLLOUT, 0};
      ::poll(&writable, 1, 10);  // until the engine reads more, or 10 ms to look at the stats again
    }
  }
  ASSERT_TRUE(paused) << "the connection never reached its high water";
  ASSERT_EQ(api().pause(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  epoll_echo_connection_state_t state{};
  state.size = sizeof state;
  char tooSmall[1];
  EXPECT_EQ(api().export_connection(engine.handle(), 0, &state, tooSmall, sizeof tooSmall), EPOLL_ECHO_EINVAL);
  EXPECT_GE(state.pending_bytes, 4096u);
  EXPECT_NE(engine.lastError().find("pending_capacity 1"), std::string::npos) << engine.lastError();
}

TEST_F(AbiStateTest, StatsRejectsNullAndBadSizes) {
  TestEngine engine(api());
  std::string error;
  ASSERT_EQ(engine.create(loopbackConfig(), &error), EPOLL_ECHO_OK) << error;
  EXPECT_EQ(api().stats(engine.handle(), nullptr), EPOLL_ECHO_EINVAL);
  for (uint32_t size : {0u, 4u, 7u, 4097u, std::numeric_limits<uint32_t>::max()}) {
    epoll_echo_stats_t stats{};
    stats.size = size;
    EXPECT_EQ(api().stats(engine.handle(), &stats), EPOLL_ECHO_ESIZE) << "size " << size;
  }
}

// An older caller knows only the first 8 bytes: nothing past them may be written.
TEST_F(AbiStateTest, StatsFillsOnlyTheCallersSize) {
  TestEngine engine(api());
  std::string error;
  ASSERT_EQ(engine.create(loopbackConfig(3), &error), EPOLL_ECHO_OK) << error;
  epoll_echo_stats_t stats;
  std::memset(&stats, 0xab, sizeof stats);
  stats.size = 8;
  ASSERT_EQ(api().stats(engine.handle(), &stats), EPOLL_ECHO_OK);
  EXPECT_EQ(stats.size, 8u);
  EXPECT_EQ(stats.state, EPOLL_ECHO_STATE_CREATED);
  EXPECT_EQ(stats.port, 0xababababu) << "wrote past the caller's size";
}

// An ABI 1.2 caller's stats end before accept_cap_pauses: filled that far, not a byte further.
TEST_F(AbiStateTest, StatsFillsAnAbi12CallersStruct) {
  TestEngine engine(api());
  std::string error;
  ASSERT_EQ(engine.create(loopbackConfig(1), &error), EPOLL_ECHO_OK) << error;
  epoll_echo_stats_t stats;
  std::memset(&stats, 0xab, sizeof stats);
  const uint32_t abi12Size = offsetof(epoll_echo_stats_t, total.accept_cap_pauses);
  stats.size = abi12Size;
  ASSERT_EQ(api().stats(engine.handle(), &stats), EPOLL_ECHO_OK);
  EXPECT_EQ(stats.size, abi12Size);
  EXPECT_EQ(stats.total.worker_failures, 0u);
  EXPECT_EQ(stats.total.accept_cap_pauses, 0xababababababababu) << "wrote past the caller's size";
  EXPECT_EQ(stats.total.idle_closed, 0xababababababababu) << "wrote past the caller's size";
}

// An ABI 1.4 caller's stats and worker stats end before `uring`: both are filled to there.
TEST_F(AbiStateTest, StatsFillAnAbi14CallersStructs) {
  TestEngine engine(api());
  std::string error;
  ASSERT_EQ(engine.create(loopbackConfig(1), &error), EPOLL_ECHO_OK) << error;
  epoll_echo_stats_t stats;
  std::memset(&stats, 0xab, sizeof stats);
  const uint32_t abi14Size = offsetof(epoll_echo_stats_t, uring);
  stats.size = abi14Size;
  ASSERT_EQ(api().stats(engine.handle(), &stats), EPOLL_ECHO_OK);
  EXPECT_EQ(stats.size, abi14Size);
  EXPECT_EQ(stats.reserved1, 0u);
  EXPECT_EQ(stats.uring.recv_buffer_waits, 0xababababababababu) << "wrote past the caller's size";
  epoll_echo_worker_stats_t worker;
  std::memset(&worker, 0xab, sizeof worker);
  const uint32_t abi14WorkerSize = offsetof(epoll_echo_worker_stats_t, uring);
  worker.size = abi14WorkerSize;
  ASSERT_EQ(api().worker_stats(engine.handle(), 0, &worker), EPOLL_ECHO_OK);
  EXPECT_EQ(worker.size, abi14WorkerSize);
  EXPECT_EQ(worker.counters.idle_closed, 0u);
  EXPECT_EQ(worker.uring.recv_buffer_waits, 0xababababababababu) << "wrote past the caller's size";
}

// A newer caller's larger struct: the known part is filled, `size` says how much is meaningful
// (the plugin's size or the caller's), and the unknown tail is zeroed or left alone, never garbage.
TEST_F(AbiStateTest, StatsHandlesLargerCallerStructs) {
  TestEngine engine(api());
  std::string error;
  ASSERT_EQ(engine.create(loopbackConfig(3), &error), EPOLL_ECHO_OK) << error;
  alignas(8) unsigned char raw[sizeof(epoll_echo_stats_t) + 32];
  std::memset(raw, 0xab, sizeof raw);
  const uint32_t callerSize = sizeof raw;
  std::memcpy(raw, &callerSize, sizeof callerSize);
  ASSERT_EQ(api().stats(engine.handle(), reinterpret_cast<epoll_echo_stats_t*>(raw)), EPOLL_ECHO_OK);
  epoll_echo_stats_t stats;
  std::memcpy(&stats, raw, sizeof stats);
  EXPECT_TRUE(stats.size == sizeof stats || stats.size == callerSize) << stats.size;
  EXPECT_EQ(stats.listeners, 3u);
  EXPECT_EQ(stats.total.accepted, 0u);
  const std::vector<unsigned char> tail(raw + sizeof stats, raw + sizeof raw);
  EXPECT_TRUE(tail == std::vector<unsigned char>(32, 0) || tail == std::vector<unsigned char>(32, 0xab))
      << "the unknown tail holds neither zeros nor the caller's bytes";
}

TEST_F(AbiStateTest, WorkerStatsChecksIndexAndArguments) {
  TestEngine engine(api());
  ASSERT_TRUE(engine.createAndStart(loopbackConfig(2)));
  int code = 0;
  for (uint32_t index : {0u, 1u}) {
    epoll_echo_worker_stats_t stats = engine.workerStats(index, &code);
    EXPECT_EQ(code, EPOLL_ECHO_OK) << index;
    EXPECT_EQ(stats.index, index);
    EXPECT_EQ(stats.size, sizeof stats);
  }
  for (uint32_t index : {2u, 1024u, std::numeric_limits<uint32_t>::max()}) {
    engine.workerStats(index, &code);
    EXPECT_EQ(code, EPOLL_ECHO_ERANGE) << index;
  }
  EXPECT_EQ(api().worker_stats(engine.handle(), 0, nullptr), EPOLL_ECHO_EINVAL);
  epoll_echo_worker_stats_t bad{};
  bad.size = 2;
  EXPECT_EQ(api().worker_stats(engine.handle(), 0, &bad), EPOLL_ECHO_ESIZE);
}

TEST_F(AbiStateTest, LastErrorIsEmptyOnAFreshEngine) {
  TestEngine engine(api());
  std::string error;
  ASSERT_EQ(engine.create(loopbackConfig(), &error), EPOLL_ECHO_OK) << error;
  char buffer[16] = "garbage";
  EXPECT_EQ(api().last_error(engine.handle(), buffer, sizeof buffer), 0);
  EXPECT_STREQ(buffer, "");
}

// snprintf semantics: the return value is the full length whatever the buffer's size.
TEST_F(AbiStateTest, LastErrorTruncatesAndReturnsTheFullLength) {
  TestEngine engine(api());
  UniqueFd occupier;
  ASSERT_NO_FATAL_FAILURE(failStartOnBusyPort(engine, occupier));
  char full[512] = {};
  int length = api().last_error(engine.handle(), full, sizeof full);
  ASSERT_GT(length, 4) << full;
  EXPECT_EQ(static_cast<size_t>(length), std::strlen(full));

  char small[8];
  std::memset(small, 'x', sizeof small);
  EXPECT_EQ(api().last_error(engine.handle(), small, 5), length);
  EXPECT_EQ(std::string(small), std::string(full, 4));
  EXPECT_EQ(std::string(small + 5, 3), "xxx") << "wrote past buffer_size";

  std::memset(small, 'x', sizeof small);
  EXPECT_EQ(api().last_error(engine.handle(), small, 0), length);
  EXPECT_EQ(small[0], 'x') << "wrote into a 0-byte buffer";
  EXPECT_EQ(api().last_error(engine.handle(), nullptr, 10), EPOLL_ECHO_EINVAL);
  int probe = api().last_error(engine.handle(), nullptr, 0);  // snprintf(NULL, 0) style length query
  EXPECT_TRUE(probe == length || probe == EPOLL_ECHO_EINVAL) << probe;
}

// [any-thread] readers race every control call; state only moves forward.
TEST_F(AbiStateTest, StatsAndLastErrorAreSafeDuringControlCalls) {
  TestEngine engine(api());
  std::string error;
  ASSERT_EQ(engine.create(loopbackConfig(2), &error), EPOLL_ECHO_OK) << error;
  std::atomic<bool> done{false};
  std::atomic<bool> wentBackwards{false};
  std::thread reader([&] {
    uint32_t lastState = 0;
    for (int i = 0; i < 1000000 && !done.load(); ++i) {
      uint32_t state = engine.stats().state;
      if (state < lastState) wentBackwards = true;
      lastState = state;
      engine.workerStats(static_cast<uint32_t>(i % 3));
      char buffer[64];
      api().last_error(engine.handle(), buffer, sizeof buffer);
    }
  });
  EXPECT_EQ(engine.start(), EPOLL_ECHO_OK) << engine.lastError();
  expectEchoOnNewConnection(engine.port(), "racing readers");
  EXPECT_EQ(engine.stop(), EPOLL_ECHO_OK);
  done = true;
  reader.join();
  EXPECT_FALSE(wentBackwards.load());
}

// [control] calls on one engine are serialised: concurrent stops both succeed, nothing breaks.
TEST_F(AbiStateTest, ConcurrentStopsAreSerialised) {
  TestEngine engine(api());
  ASSERT_TRUE(engine.createAndStart(loopbackConfig(2)));
  std::atomic<int> results[4];
  std::vector<std::thread> threads;
  for (auto& result : results) {
    result = 1;
    threads.emplace_back([&] { result = engine.stop(); });
  }
  for (auto& thread : threads) thread.join();
  for (auto& result : results) EXPECT_EQ(result.load(), EPOLL_ECHO_OK);
  EXPECT_EQ(engine.stats().state, EPOLL_ECHO_STATE_STOPPED);
}

}  // namespace
}  // namespace epoll_echo::test
