// engine_limits_test.cpp — max_connections and idle_timeout_ms: at the cap clients wait in the
// accept queue (never reset) and are served as others leave, over every worker of the engine;
// idle connections close after their echo, a stalled flush times out, busy ones stay, and
// neither a pause nor a hand-over counts as idle time; more io_uring recvs at once than the worker
// has provided buffers wait a loop pass, counted, and lose nothing. Every wait polls with a deadline.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "support/plugin.h"

namespace epoll_echo::test {
namespace {

constexpr auto kTimeout = std::chrono::seconds(10);

class EngineLimitsTest : public PluginTest {};

// A byte each client sends and expects back, distinct per client.
char tokenOf(size_t client) { return static_cast<char>('A' + client % 26); }

// Connects `count` clients, each sending its token once; appends them to `clients`.
::testing::AssertionResult connectSendingTokens(uint16_t port, size_t count, std::vector<UniqueFd>& clients) {
  std::string error;
  for (size_t i = 0; i < count; ++i) {
    clients.push_back(connectLoopback(port, deadlineIn(kTimeout), &error));
    if (!clients.back()) return ::testing::AssertionFailure() << "client " << i << ": " << error;
    if (!sendAll(clients.back().get(), std::string(1, tokenOf(i)), deadlineIn(kTimeout), &error)) {
      return ::testing::AssertionFailure() << "client " << i << ": " << error;
    }
  }
  return ::testing::AssertionSuccess();
}

// True when `fd` has something to report now (data, EOF or an error) without waiting.
bool hasNews(int fd) {
  pollfd probe{fd, POLLIN, 0};
  return ::poll(&probe, 1, 0) == 1;
}

// Waits until `count` of the clients not yet `served` have their token echoed, marks them
// served, and returns how many did (fewer when the deadline passed, or a client saw anything
// but its own token). Each stats snapshot taken meanwhile must respect the cap.
size_t waitForEchoes(const TestEngine& engine, std::vector<UniqueFd>& clients, std::vector<bool>& served, size_t count,
                     uint64_t cap, Deadline deadline) {
  size_t echoed = 0;
  while (echoed < count && Clock::now() < deadline) {
    std::vector<pollfd> polled;
    std::vector<size_t> which;
    for (size_t i = 0; i < clients.size(); ++i) {
      if (served[i] || !clients[i]) continue;
      polled.push_back({clients[i].get(), POLLIN, 0});
      which.push_back(i);
    }
    if (::poll(polled.data(), polled.size(), std::min(millisecondsLeft(deadline), 100)) < 0 && errno != EINTR) break;
    EXPECT_LE(engine.stats().total.active, cap) << "more connections open than max_connections";
    for (size_t k = 0; k < polled.size(); ++k) {
      if (polled[k].revents == 0) continue;
      char byte = 0;
      const ssize_t got = ::recv(polled[k].fd, &byte, 1, MSG_DONTWAIT);
      if (got != 1 || byte != tokenOf(which[k])) {
        ADD_FAILURE() << "client " << which[k] << ": recv returned " << got << (got < 0 ? std::strerror(errno) : "");
        return echoed;
      }
      served[which[k]] = true;
      ++echoed;
    }
  }
  return echoed;
}

// 80 clients against a cap of 50 on two workers: the cap is the engine's, not each worker's.
// The 30 beyond it are not reset: their bytes wait in the kernel until a slot frees.
TEST_F(EngineLimitsTest, CapServesFiftyAndTheRestWaitUntilOthersLeave) {
  constexpr size_t kClients = 80, kCap = 50;
  epoll_echo_config_t config = loopbackConfig(2);
  config.max_connections = kCap;
  TestEngine engine(api());
  ASSERT_TRUE(engine.createAndStart(config));

  std::vector<UniqueFd> clients;
  ASSERT_TRUE(connectSendingTokens(engine.port(), kClients, clients));
  std::vector<bool> served(kClients, false);
  ASSERT_EQ(waitForEchoes(engine, clients, served, kCap, kCap, deadlineIn(kTimeout)), kCap);
  epoll_echo_stats_t stats = engine.waitForStats(
      [](const epoll_echo_stats_t& s) { return s.total.accept_cap_pauses > 0; }, deadlineIn(kTimeout));
  EXPECT_EQ(stats.total.accepted, kCap);
  EXPECT_EQ(stats.total.active, kCap);
  EXPECT_GE(stats.total.accept_cap_pauses, 1u);
  for (size_t i = 0; i < kClients; ++i) {
    if (served[i]) continue;
    EXPECT_FALSE(hasNews(clients[i].get())) << "waiting client " << i << " got data, EOF or a reset";
  }

  // Ten leave: exactly ten of the waiting clients are served, then the rest as all others leave.
  size_t left = 0;
  for (size_t i = 0; i < kClients && left < 10; ++i) {
    if (served[i] && clients[i]) {
      clients[i].reset();
      ++left;
    }
  }
  ASSERT_EQ(waitForEchoes(engine, clients, served, 10, kCap, deadlineIn(kTimeout)), 10u);
  for (size_t i = 0; i < kClients; ++i) {
    if (served[i]) clients[i].reset();
  }
  ASSERT_EQ(waitForEchoes(engine, clients, served, 20, kCap, deadlineIn(kTimeout)), 20u);
  stats = engine.waitForStats([](const epoll_echo_stats_t& s) { return s.total.accepted == kClients; },
                              deadlineIn(kTimeout));
  EXPECT_EQ(stats.total.accepted, kClients);
  EXPECT_EQ(stats.total.accept_errors, 0u);
}

// A cap of one on two workers, clients served one at a time: each close must let the other worker
// accept too, not only the one that closed, or the clients SO_REUSEPORT queued there would wait
// for ever (all sixteen landing on one worker's queue has odds of 1 in 32768).
TEST_F(EngineLimitsTest, AFreedSlotWakesTheOtherWorker) {
  constexpr size_t kClients = 16;
  epoll_echo_config_t config = loopbackConfig(2);
  config.max_connections = 1;
  TestEngine engine(api());
  ASSERT_TRUE(engine.createAndStart(config));
  std::vector<UniqueFd> clients;
  ASSERT_TRUE(connectSendingTokens(engine.port(), kClients, clients));
  std::vector<bool> served(kClients, false);
  for (size_t round = 0; round < kClients; ++round) {
    ASSERT_EQ(waitForEchoes(engine, clients, served, 1, 1, deadlineIn(kTimeout)), 1u) << "round " << round;
    for (size_t i = 0; i < kClients; ++i) {
      if (served[i]) clients[i].reset();
    }
  }
  EXPECT_EQ(engine.stats().total.accepted, kClients);
  EXPECT_GE(engine.workerStats(0).counters.accepted, 1u) << "every client went to worker 1";
  EXPECT_GE(engine.workerStats(1).counters.accepted, 1u) << "every client went to worker 0";
}

TEST_F(EngineLimitsTest, WithoutCapEveryClientIsServedAndNothingIsCounted) {
  constexpr size_t kClients = 80;
  TestEngine engine(api());
  ASSERT_TRUE(engine.createAndStart(loopbackConfig(2)));
  std::vector<UniqueFd> clients;
  ASSERT_TRUE(connectSendingTokens(engine.port(), kClients, clients));
  std::vector<bool> served(kClients, false);
  EXPECT_EQ(waitForEchoes(engine, clients, served, kClients, kClients, deadlineIn(kTimeout)), kClients);
  EXPECT_EQ(engine.stats().total.accept_cap_pauses, 0u);
}

// Sends one byte and reads its echo; false (with a failure) when it does not come back.
bool pingOnce(int fd, Deadline deadline) {
  std::string error;
  char byte = 0;
  if (!sendAll(fd, "p", deadline, &error) || !receiveExactly(fd, &byte, 1, deadline, &error) || byte != 'p') {
    ADD_FAILURE() << "ping: " << error;
    return false;
  }
  return true;
}

// Idle clients, each after its echo, are closed (FIN, not a reset) no sooner than the timeout,
// while a client that sends every 100 ms stays open for two more timeouts. The timeout is ten
// paces long, so a test process descheduled for most of a second on a loaded machine still
// talks within it. When it did not (the busy client fell silent for half the timeout or more
// between two of its sends, by the test's own clock), the busy client was not busy and its close
// proves nothing: that attempt is run again with a new engine, at most three times. A close of a
// client that kept its pace always fails.
TEST_F(EngineLimitsTest, IdleClientsAreClosedWhileABusyOneStays) {
  static constexpr auto kIdle = std::chrono::milliseconds(1000);
  constexpr auto kPace = std::chrono::milliseconds(100);
  static constexpr size_t kIdleClients = 3;
  constexpr int kAttempts = 3;
  enum class Outcome { kDone, kTestFellSilent };

  // One attempt; failures are recorded as they happen, and end it as kDone.
  auto attempt = [&]() -> Outcome {
    epoll_echo_config_t config = loopbackConfig(1);
    config.idle_timeout_ms = static_cast<uint32_t>(kIdle.count());
    TestEngine engine(api());
    std::string error;
    if (!engine.createAndStart(config)) {
      ADD_FAILURE() << "the engine did not start";
      return Outcome::kDone;
    }
    const Clock::time_point before = Clock::now();
    Clock::time_point lastBusySend = before;  // its connect: the engine counts from the accept
    UniqueFd busy = connectLoopback(engine.port(), deadlineIn(kTimeout), &error);
    if (!busy) {
      ADD_FAILURE() << error;
      return Outcome::kDone;
    }
    std::vector<UniqueFd> idle;
    for (size_t i = 0; i < kIdleClients; ++i) {
      idle.push_back(connectLoopback(engine.port(), deadlineIn(kTimeout), &error));
      if (!idle.back()) {
        ADD_FAILURE() << error;
        return Outcome::kDone;
      }
      if (!pingOnce(idle.back().get(), deadlineIn(kTimeout))) return Outcome::kDone;  // flushed before the close
    }
    // The busy client pings; false when it was closed, after a silence of the test's or not.
    bool testFellSilent = false;
    auto pingBusy = [&]() {
      const Clock::time_point now = Clock::now();
      testFellSilent = testFellSilent || now - lastBusySend >= kIdle / 2;
      lastBusySend = now;
      std::string pingError;
      char byte = 0;
      if (sendAll(busy.get(), "p", deadlineIn(kTimeout), &pingError) &&
          receiveExactly(busy.get(), &byte, 1, deadlineIn(kTimeout), &pingError) && byte == 'p') {
        return true;
      }
      if (!testFellSilent) ADD_FAILURE() << "the busy client was closed though it kept its pace: " << pingError;
      return false;
    };

    // The busy client keeps talking until every idle one is gone and two more timeouts passed.
    const Deadline deadline = deadlineIn(kTimeout);
    std::vector<bool> closed(kIdleClients, false);
    Clock::time_point allClosedAt{};
    while (Clock::now() < deadline) {
      if (!pingBusy()) return testFellSilent ? Outcome::kTestFellSilent : Outcome::kDone;
      for (size_t i = 0; i < kIdleClients; ++i) {
        if (closed[i] || !hasNews(idle[i].get())) continue;
        if (!waitForEof(idle[i].get(), deadlineIn(kTimeout), &error)) {
          ADD_FAILURE() << "idle client " << i << ": " << error;
          return Outcome::kDone;
        }
        EXPECT_GE(Clock::now() - before, kIdle) << "idle client " << i << " closed before its timeout";
        closed[i] = true;
      }
      const bool allClosed = std::all_of(closed.begin(), closed.end(), [](bool c) { return c; });
      if (allClosed && allClosedAt == Clock::time_point{}) allClosedAt = Clock::now();
      if (allClosed && Clock::now() - allClosedAt >= 2 * kIdle) break;
      std::this_thread::sleep_for(kPace);  // the busy client's pace, not a wait
    }
    EXPECT_TRUE(std::all_of(closed.begin(), closed.end(), [](bool c) { return c; })) << "idle clients left open";
    if (!pingBusy()) return testFellSilent ? Outcome::kTestFellSilent : Outcome::kDone;
    const epoll_echo_stats_t stats = engine.waitForStats(
        [](const epoll_echo_stats_t& s) {
          return s.total.idle_closed == kIdleClients && s.total.closed == kIdleClients && s.total.active == 1;
        },
        deadlineIn(kTimeout));
    EXPECT_EQ(stats.total.idle_closed, kIdleClients);
    EXPECT_EQ(stats.total.closed, kIdleClients);
    EXPECT_EQ(stats.total.active, 1u);
    return Outcome::kDone;
  };

  for (int i = 1; i <= kAttempts; ++i) {
    if (attempt() == Outcome::kDone) return;
    std::cerr << "attempt " << i << " of " << kAttempts << ": the test fell silent for half the idle timeout or more "
              << "(a loaded machine), so its busy client was not busy; trying again\n";
  }
  FAIL() << "in each of " << kAttempts << " attempts the test fell silent for half the idle timeout or more";
}

// A client that never reads, with more echo pending than the kernel can take: no byte moves, so
// the flush times out like any idle connection and the connection is closed, pending or not.
TEST_F(EngineLimitsTest, StalledClientWithPendingEchoIsClosedWhenTheFlushTimesOut) {
  epoll_echo_config_t config = loopbackConfig(1);
  config.idle_timeout_ms = 300;
  config.high_water_bytes = 16 * 1024;
  config.read_budget_bytes = 4096;
  TestEngine engine(api());
  std::string error;
  ASSERT_TRUE(engine.createAndStart(config));
  UniqueFd client = connectLoopback(engine.port(), deadlineIn(kTimeout), &error);
  ASSERT_TRUE(client) << error;
  const int small = 4096;
  ::setsockopt(client.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  ASSERT_TRUE(setNonBlocking(client.get(), true));
  // Send until the server pauses reading this connection (it holds all the echo it may owe) and the
  // client's send buffer is full. Decided from the server's counters, not from how long a send
  // waits, so a slow machine cannot mistake a busy server for a stalled one; the server may even
  // close the connection for idleness before the client notices, which is the outcome expected.
  const std::vector<char> chunk(64 * 1024, 'x');
  const Deadline deadline = deadlineIn(kTimeout);
  bool stalled = false;
  bool closedWhileFilling = false;
  for (int round = 0; !stalled && !closedWhileFilling && round < 100000 && Clock::now() < deadline; ++round) {
    const ssize_t sent = ::send(client.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (sent > 0) continue;
    if (errno == EPIPE || errno == ECONNRESET) {
      closedWhileFilling = true;
      break;
    }
    ASSERT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << "send: " << std::strerror(errno);
    stalled = engine.stats().total.backpressure_pauses >= 1;
    if (!stalled) {
      pollfd room{client.get(), POLLOUT, 0};
      ::poll(&room, 1, 10);  // a short wait for the server to read more; bounded by the round count
    }
  }
  ASSERT_TRUE(stalled || closedWhileFilling) << "the connection never filled up";
  EXPECT_GE(engine.stats().total.backpressure_pauses, 1u) << "the server never paused reading: no echo is pending";

  bool ok = false;
  const epoll_echo_stats_t stats =
      engine.waitForStats([](const epoll_echo_stats_t& s) { return s.total.idle_closed == 1 && s.total.active == 0; },
                          deadlineIn(kTimeout), &ok);
  ASSERT_TRUE(ok) << "idle_closed=" << stats.total.idle_closed << " active=" << stats.total.active;
  EXPECT_EQ(stats.total.active, 0u);
  const PeerClose outcome = waitForClose(client.get(), deadlineIn(kTimeout));
  EXPECT_TRUE(outcome == PeerClose::Reset || outcome == PeerClose::Eof) << toString(outcome);
}

// A connection that was idle through a pause is not closed the moment its engine resumes: the
// idle clock restarts, the same way it does for a connection a new engine adopts.
TEST_F(EngineLimitsTest, TimeSpentPausedIsNotIdleTime) {
  constexpr auto kIdle = std::chrono::milliseconds(300);
  epoll_echo_config_t config = loopbackConfig(1);
  config.idle_timeout_ms = static_cast<uint32_t>(kIdle.count());
  TestEngine engine(api());
  std::string error;
  ASSERT_TRUE(engine.createAndStart(config));
  UniqueFd client = connectLoopback(engine.port(), deadlineIn(kTimeout), &error);
  ASSERT_TRUE(client) << error;
  ASSERT_TRUE(pingOnce(client.get(), deadlineIn(kTimeout)));
  ASSERT_EQ(api().pause(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  std::this_thread::sleep_for(2 * kIdle);  // lets idle time pass while paused; nothing to wait for
  const Clock::time_point resumed = Clock::now();
  ASSERT_EQ(api().resume(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  ASSERT_TRUE(waitForEof(client.get(), deadlineIn(kTimeout), &error)) << error;
  EXPECT_GE(Clock::now() - resumed, kIdle) << "closed for idle time spent paused";
  bool counted = false;
  engine.waitForStats([](const epoll_echo_stats_t& s) { return s.total.idle_closed == 1; }, deadlineIn(kTimeout),
                      &counted);
  EXPECT_TRUE(counted) << "idle_closed=" << engine.stats().total.idle_closed;
}

// Connections a new engine adopts count toward its cap at once: with two adopted and a cap of
// two, a new client waits in the accept queue until one of them leaves.
TEST_F(EngineLimitsTest, AdoptedConnectionsCountTowardTheCap) {
  TestEngine old(api());
  std::string error;
  ASSERT_TRUE(old.createAndStart(loopbackConfig(1)));
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 2; ++i) {
    clients.push_back(connectLoopback(old.port(), deadlineIn(kTimeout), &error));
    ASSERT_TRUE(clients.back()) << error;
    ASSERT_TRUE(pingOnce(clients.back().get(), deadlineIn(kTimeout)));
  }
  ASSERT_EQ(api().pause(old.handle()), EPOLL_ECHO_OK) << old.lastError();

  epoll_echo_config_t config = loopbackConfig(1);
  config.max_connections = 2;
  TestEngine next(api());
  ASSERT_EQ(next.create(config, &error), EPOLL_ECHO_OK) << error;
  int32_t listener = -1;
  ASSERT_EQ(api().export_listener(old.handle(), 0, &listener), EPOLL_ECHO_OK);
  ASSERT_EQ(api().import_listener(next.handle(), listener), EPOLL_ECHO_OK) << next.lastError();
  for (uint32_t i = 0; i < 2; ++i) {
    epoll_echo_connection_state_t state{};
    state.size = sizeof state;
    ASSERT_EQ(api().export_connection(old.handle(), i, &state, nullptr, 0), EPOLL_ECHO_OK);
    ASSERT_EQ(api().import_connection(next.handle(), &state, nullptr), EPOLL_ECHO_OK) << next.lastError();
  }
  ASSERT_EQ(next.start(), EPOLL_ECHO_OK) << next.lastError();
  ASSERT_EQ(api().handover_complete(old.handle()), EPOLL_ECHO_OK);
  old.destroy();

  UniqueFd third = connectLoopback(next.port(), deadlineIn(kTimeout), &error);
  ASSERT_TRUE(third) << error;
  ASSERT_TRUE(sendAll(third.get(), "t", deadlineIn(kTimeout), &error)) << error;
  // The adopted ones are served; the third waits without a reset.
  for (UniqueFd& client : clients) ASSERT_TRUE(pingOnce(client.get(), deadlineIn(kTimeout)));
  bool ok = false;
  const epoll_echo_stats_t stats = next.waitForStats(
      [](const epoll_echo_stats_t& s) { return s.total.accept_cap_pauses >= 1; }, deadlineIn(kTimeout), &ok);
  ASSERT_TRUE(ok) << "the new engine never reached its cap (adopted=" << stats.total.adopted << ")";
  EXPECT_EQ(stats.total.accepted, 0u);
  EXPECT_FALSE(hasNews(third.get())) << "the client beyond the cap was served or reset";

  clients[0].reset();
  char byte = 0;
  ASSERT_TRUE(receiveExactly(third.get(), &byte, 1, deadlineIn(kTimeout), &error)) << error;
  EXPECT_EQ(byte, 't');
}

// The io_uring worker's provided buffers (kBufferCount in plugin/uring_worker.cpp): a recv that
// finds bytes takes one until its echo is sent.
constexpr size_t kUringBuffers = 256;

// More connections than the io_uring worker has buffers, each with a message already waiting when
// the worker resumes: its first loop pass arms a recv on each, the first ones take every buffer,
// and the rest find none (ENOBUFS). Those wait for the next pass, counted in recv_buffer_waits,
// and every message is still echoed. The epoll worker reads into one buffer of its own: zero.
TEST_F(EngineLimitsTest, RecvsBeyondTheProvidedBuffersWaitAPassAndAreCounted) {
  const size_t clientCount = kUringBuffers + 32;
  TestEngine engine(api());
  ASSERT_TRUE(engine.createAndStart(loopbackConfig(1)));
  std::vector<UniqueFd> clients = connectClients(engine.port(), clientCount, kTimeout);
  ASSERT_TRUE(waitUntilAccepted(engine, clientCount, kTimeout));
  std::string error;

  ASSERT_EQ(api().pause(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  const std::string message(64, 'm');
  for (size_t i = 0; i < clientCount; ++i) {
    ASSERT_TRUE(sendAll(clients[i].get(), message, deadlineIn(kTimeout), &error)) << "client " << i << ": " << error;
  }
  const Deadline arrived = deadlineIn(kTimeout);
  while (!pausedConnectionsHoldBytes(api(), engine.handle(), clientCount, message.size())) {
    ASSERT_GT(millisecondsLeft(arrived), 0) << "the messages did not reach the server's sockets";
    std::this_thread::yield();
  }
  ASSERT_EQ(api().resume(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();

  for (size_t i = 0; i < clientCount; ++i) {
    std::string echo(message.size(), '\0');
    ASSERT_TRUE(receiveExactly(clients[i].get(), echo.data(), echo.size(), deadlineIn(kTimeout), &error))
        << "client " << i << ": " << error;
    EXPECT_EQ(echo, message) << "client " << i;
  }
  const epoll_echo_stats_t stats = engine.stats();
  if (stats.backend == EPOLL_ECHO_BACKEND_IO_URING) {
    EXPECT_GE(stats.uring.recv_buffer_waits, clientCount - kUringBuffers);
    epoll_echo_worker_stats_t worker{};
    worker.size = sizeof worker;
    ASSERT_EQ(api().worker_stats(engine.handle(), 0, &worker), EPOLL_ECHO_OK);
    EXPECT_EQ(worker.uring.recv_buffer_waits, stats.uring.recv_buffer_waits);
  } else {
    EXPECT_EQ(stats.uring.recv_buffer_waits, 0u);
  }
  EXPECT_EQ(stats.uring.completion_overflows, 0u);
  EXPECT_EQ(stats.total.worker_failures, 0u);
}

}  // namespace
}  // namespace epoll_echo::test
