// abi_external_loop_test.cpp — an engine driven by the application's own loop (threading
// EXTERNAL, ABI 1.4): it starts no thread, its one loop fd reports work, loop_run() does it and
// says when to come back, clients wait without loss while nobody calls it, a pause keeps the fd
// quiet, a hand-over under load moves everything between two such engines, and misuse is refused
// with ESTATE or EINVAL and a last_error() that says why. The engine's behaviour suites run in
// this mode too (the external_loop.* ctest entries).
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "support/echo_traffic.h"
#include "support/expect_echo.h"
#include "support/loop_driver.h"
#include "support/plugin.h"
#include "support/timeouts.h"

namespace epoll_echo::test {
namespace {

class AbiExternalLoopTest : public PluginTest {
 protected:
  epoll_echo_config_t externalConfig(uint32_t listeners = 1) {
    epoll_echo_config_t config = loopbackConfig(listeners);
    config.threading = EPOLL_ECHO_THREADING_EXTERNAL;
    return config;
  }

  int32_t loopFd(const TestEngine& engine) {
    int32_t fd = -1;
    EXPECT_EQ(api().loop_fd(engine.handle(), &fd), EPOLL_ECHO_OK) << engine.lastError();
    return fd;
  }

  // Creates and starts `engine` with `config` and connects `client` to it.
  void createAndStart(TestEngine& engine, const epoll_echo_config_t& config) {
    std::string detail;
    ASSERT_EQ(engine.create(config, &detail), EPOLL_ECHO_OK) << detail;
    ASSERT_EQ(api().start(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  }

  void startAndConnect(TestEngine& engine, const epoll_echo_config_t& config, UniqueFd& client) {
    ASSERT_NO_FATAL_FAILURE(createAndStart(engine, config));
    std::string error;
    client = connectLoopback(engine.port(), deadlineIn(kIoTimeout), &error);
    ASSERT_TRUE(client) << error;
  }

  // The host loop, run by the test itself: waits for the fd (or next's timeout) and runs, until
  // `done` holds after a run. Returns false if the deadline passed first.
  bool runLoopUntil(const TestEngine& engine, const std::function<bool(int32_t next)>& done, Deadline deadline) {
    const int32_t fd = loopFd(engine);
    int32_t next = 0;
    while (Clock::now() < deadline) {
      pollfd watch{fd, POLLIN, 0};
      const int wait = next < 0 ? millisecondsLeft(deadline) : std::min(next, millisecondsLeft(deadline));
      ::poll(&watch, 1, wait);
      const int code = api().loop_run(engine.handle(), &next);
      EXPECT_EQ(code, EPOLL_ECHO_OK) << engine.lastError();
      if (code != EPOLL_ECHO_OK) return false;
      if (done(next)) return true;
    }
    return false;
  }
};

bool readable(int fd) {
  pollfd watch{fd, POLLIN, 0};
  return ::poll(&watch, 1, 0) == 1;
}

// Waits until the kernel holds no byte of `fd`'s in its send queue: on loopback, every byte sent
// is then in the peer's receive queue.
bool waitUntilSent(int fd, Deadline deadline) {
  for (;;) {
    int queued = -1;
    if (::ioctl(fd, SIOCOUTQ, &queued) == 0 && queued == 0) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // no event announces an ACK
  }
}

TEST_F(AbiExternalLoopTest, UnknownThreadingValueIsRefusedAtCreate) {
  epoll_echo_config_t config = externalConfig();
  config.threading = 2;
  TestEngine engine(api());
  std::string detail;
  EXPECT_EQ(engine.create(config, &detail), EPOLL_ECHO_EINVAL);
  EXPECT_NE(detail.find("threading 2"), std::string::npos) << detail;
}

TEST_F(AbiExternalLoopTest, NullArgumentsAreRejected) {
  TestEngine engine(api());
  ASSERT_TRUE(engine.createAndStart(externalConfig()));
  int32_t value = 0;
  EXPECT_EQ(api().loop_fd(nullptr, &value), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(api().loop_run(nullptr, &value), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(api().loop_fd(engine.handle(), nullptr), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(api().loop_run(engine.handle(), nullptr), EPOLL_ECHO_EINVAL);
  EXPECT_NE(engine.lastError().find("next_timeout_ms is NULL"), std::string::npos) << engine.lastError();
}

TEST_F(AbiExternalLoopTest, ThreadedEngineRefusesTheLoopCalls) {
  TestEngine engine(api());
  ASSERT_TRUE(engine.createAndStart(loopbackConfig(1)));
  int32_t value = 7;
  EXPECT_EQ(api().loop_fd(engine.handle(), &value), EPOLL_ECHO_ESTATE);
  EXPECT_EQ(value, 7) << "written only on success";
  EXPECT_EQ(api().loop_run(engine.handle(), &value), EPOLL_ECHO_ESTATE);
  EXPECT_NE(engine.lastError().find("loop_run: the engine runs its own threads"), std::string::npos)
      << engine.lastError();
  expectEchoOnNewConnection(engine.port(), "still serving");
}

TEST_F(AbiExternalLoopTest, LoopCallsNeedARunningEngine) {
  TestEngine engine(api());
  std::string detail;
  ASSERT_EQ(engine.create(externalConfig(), &detail), EPOLL_ECHO_OK) << detail;
  int32_t value = 0;
  EXPECT_EQ(api().loop_fd(engine.handle(), &value), EPOLL_ECHO_ESTATE) << "no loop fd before start";
  EXPECT_EQ(api().loop_run(engine.handle(), &value), EPOLL_ECHO_ESTATE) << "loop_run before start";
  EXPECT_NE(engine.lastError().find("the engine is created, not running"), std::string::npos) << engine.lastError();
  ASSERT_EQ(api().start(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  EXPECT_EQ(api().loop_run(engine.handle(), &value), EPOLL_ECHO_OK) << engine.lastError();
  ASSERT_EQ(api().stop(engine.handle()), EPOLL_ECHO_OK);
  EXPECT_EQ(api().loop_fd(engine.handle(), &value), EPOLL_ECHO_ESTATE) << "stop closed the loop fd";
  EXPECT_EQ(api().loop_run(engine.handle(), &value), EPOLL_ECHO_ESTATE) << "loop_run after stop";
  EXPECT_NE(engine.lastError().find("the engine is stopped"), std::string::npos) << engine.lastError();
}

TEST_F(AbiExternalLoopTest, StartsNoThreadAndOneFdServesEveryListener) {
  const int threadsBefore = countThreads();
  const int fdsBefore = countOpenFds();
  {
    TestEngine engine(api());
    std::string detail;
    ASSERT_EQ(engine.create(externalConfig(3), &detail), EPOLL_ECHO_OK) << detail;
    ASSERT_EQ(api().start(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
    EXPECT_EQ(countThreads(), threadsBefore);
    EXPECT_EQ(engine.stats().listeners, 3u);
    const int32_t fd = loopFd(engine);
    // Clients of all three SO_REUSEPORT sockets, whichever the kernel picks, through one fd.
    std::vector<UniqueFd> clients;
    for (int i = 0; i < 12; ++i) {
      std::string error;
      clients.push_back(connectLoopback(engine.port(), deadlineIn(kIoTimeout), &error));
      ASSERT_TRUE(clients.back()) << error;
      ASSERT_TRUE(sendAll(clients.back().get(), "ping " + std::to_string(i), deadlineIn(kIoTimeout), &error)) << error;
    }
    EXPECT_TRUE(readable(fd));
    std::vector<std::string> echoes(clients.size());
    EXPECT_TRUE(runLoopUntil(
        engine,
        [&](int32_t) {
          bool all = true;
          for (size_t i = 0; i < clients.size(); ++i) {
            char buffer[64];
            const ssize_t got = ::recv(clients[i].get(), buffer, sizeof buffer, MSG_DONTWAIT);
            if (got > 0) echoes[i].append(buffer, static_cast<size_t>(got));
            all = all && echoes[i] == "ping " + std::to_string(i);
          }
          return all;
        },
        deadlineIn(kIoTimeout)));
    EXPECT_EQ(engine.stats().total.accepted, 12u);
    EXPECT_EQ(countThreads(), threadsBefore) << "loop_run started a thread";
    clients.clear();
    EXPECT_EQ(engine.stop(), EPOLL_ECHO_OK);
  }
  EXPECT_EQ(countOpenFds(), fdsBefore) << describeOpenFds();
}

// Nobody calls loop_run(): the client is accepted by the kernel, its bytes wait in the socket, and
// nothing is echoed. Once the loop runs again, everything is served and nothing is lost.
TEST_F(AbiExternalLoopTest, ClientsWaitWhileTheLoopIsNotRunAndLoseNothing) {
  TestEngine engine(api());
  UniqueFd early;
  ASSERT_NO_FATAL_FAILURE(startAndConnect(engine, externalConfig(), early));
  std::string error;
  ASSERT_TRUE(sendAll(early.get(), "waiting", deadlineIn(kIoTimeout), &error)) << error;
  const uint64_t bytes = scaledForSanitizers(200000);
  auto jobs = makeEchoJobs(engine.port(), 8, bytes, true, 17, deadlineIn(kIoTimeout), &error);
  ASSERT_EQ(jobs.size(), 8u) << error;
  ASSERT_TRUE(waitUntilSent(early.get(), deadlineIn(kIoTimeout)));
  EXPECT_TRUE(readable(loopFd(engine))) << "the loop fd must announce the work";
  EXPECT_FALSE(readable(early.get())) << "echoed without loop_run";
  EXPECT_EQ(engine.stats().total.accepted, 0u);

  LoopDriver driver;
  ASSERT_TRUE(driver.start(api(), engine.handle())) << driver.error();
  char echoed[7] = {};
  ASSERT_TRUE(receiveExactly(early.get(), echoed, sizeof echoed, deadlineIn(kIoTimeout), &error)) << error;
  EXPECT_EQ(std::string(echoed, sizeof echoed), "waiting");
  EXPECT_EQ(runEchoJobs(jobs, deadlineIn(kBulkTimeout)), "");
  driver.stop();
  EXPECT_EQ(driver.error(), "");
  EXPECT_EQ(engine.stats().total.bytes_out, 7 + 8 * bytes);
}

// A connection whose read budget ran out with bytes left makes loop_run() ask to be called again
// at once (0), even though the edge-triggered fd will not announce those bytes again.
TEST_F(AbiExternalLoopTest, ReadBudgetLeftoverAsksForAnImmediateRun) {
  epoll_echo_config_t config = externalConfig();
  config.read_budget_bytes = 4096;
  TestEngine engine(api());
  UniqueFd client;
  ASSERT_NO_FATAL_FAILURE(startAndConnect(engine, config, client));
  std::string error;
  const std::string message(16384, 'x');
  ASSERT_TRUE(sendAll(client.get(), message, deadlineIn(kIoTimeout), &error)) << error;
  ASSERT_TRUE(waitUntilSent(client.get(), deadlineIn(kIoTimeout)));
  int leftoverRuns = 0;
  EXPECT_TRUE(runLoopUntil(
      engine,
      [&](int32_t next) {
        const uint64_t in = engine.stats().total.bytes_in;
        if (in > 0 && in < message.size()) {
          EXPECT_EQ(next, 0) << "bytes_in " << in;
          ++leftoverRuns;
        }
        return in == message.size();
      },
      deadlineIn(kIoTimeout)));
  EXPECT_GE(leftoverRuns, 1) << "a 4096-byte budget cannot read 16384 bytes in one run";
  // Everything read and echoed, no timer: the loop waits for the fd alone (-1).
  EXPECT_TRUE(runLoopUntil(
      engine, [&](int32_t next) { return engine.stats().total.bytes_out == message.size() && next == -1; },
      deadlineIn(kIoTimeout)));
  std::string echoed(message.size(), '\0');
  ASSERT_TRUE(receiveExactly(client.get(), echoed.data(), echoed.size(), deadlineIn(kIoTimeout), &error)) << error;
  EXPECT_EQ(echoed, message);
}

TEST_F(AbiExternalLoopTest, IdleTimeoutAsksForARunAtTheNextSweep) {
  epoll_echo_config_t config = externalConfig();
  config.idle_timeout_ms = 800;  // swept every 100 ms
  TestEngine engine(api());
  UniqueFd client;
  ASSERT_NO_FATAL_FAILURE(startAndConnect(engine, config, client));
  int32_t lastNext = -2;
  ASSERT_TRUE(runLoopUntil(
      engine,
      [&](int32_t next) {
        lastNext = next;
        return engine.stats().total.active == 1;
      },
      deadlineIn(kIoTimeout)));
  EXPECT_GE(lastNext, 0);
  EXPECT_LE(lastNext, 100) << "the sweep is due within an eighth of the timeout";
  // Driven only by the timeouts it returns (the idle client sends nothing), the loop closes it.
  EXPECT_TRUE(runLoopUntil(
      engine, [&](int32_t) { return engine.stats().total.idle_closed == 1; }, deadlineIn(kIoTimeout)));
  EXPECT_EQ(waitForClose(client.get(), deadlineIn(kIoTimeout)), PeerClose::Eof);
}

TEST_F(AbiExternalLoopTest, PausedEngineKeepsItsLoopFdQuietUntilResume) {
  TestEngine engine(api());
  ASSERT_NO_FATAL_FAILURE(createAndStart(engine, externalConfig(2)));
  const int32_t fd = loopFd(engine);
  ASSERT_TRUE(runLoopUntil(
      engine, [](int32_t next) { return next == -1; }, deadlineIn(kIoTimeout)));
  ASSERT_EQ(api().pause(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  std::string error;
  UniqueFd client = connectLoopback(engine.port(), deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(client) << error;
  ASSERT_TRUE(sendAll(client.get(), "after the pause", deadlineIn(kIoTimeout), &error)) << error;
  ASSERT_TRUE(waitUntilSent(client.get(), deadlineIn(kIoTimeout)));
  EXPECT_FALSE(readable(fd)) << "a paused engine's fd must not wake the host's loop";
  int32_t next = 0;
  EXPECT_EQ(api().loop_run(engine.handle(), &next), EPOLL_ECHO_ESTATE);
  EXPECT_NE(engine.lastError().find("the engine is paused"), std::string::npos) << engine.lastError();
  int32_t sameFd = -1;
  EXPECT_EQ(api().loop_fd(engine.handle(), &sameFd), EPOLL_ECHO_OK);
  EXPECT_EQ(sameFd, fd);
  ASSERT_EQ(api().resume(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  EXPECT_TRUE(readable(fd)) << "resume makes the fd readable, so the host's loop runs";
  LoopDriver driver;
  ASSERT_TRUE(driver.start(api(), engine.handle())) << driver.error();
  expectEcho(client.get(), "after the pause");
  driver.stop();
  EXPECT_EQ(driver.error(), "");
}

// start_paused (ABI 1.6): the loop fd exists from then on and stays quiet, whatever waits on the
// listener or on an adopted connection, until resume() makes it readable.
TEST_F(AbiExternalLoopTest, StartPausedKeepsItsLoopFdQuietUntilResume) {
  TestEngine engine(api());
  std::string error;
  ASSERT_EQ(engine.create(externalConfig(2), &error), EPOLL_ECHO_OK) << error;
  UniqueFd listener = listenTcp("127.0.0.1", 0, 4, &error);
  ASSERT_TRUE(listener) << error;
  UniqueFd adoptedClient = connectLoopback(localPort(listener.get()), deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(adoptedClient) << error;
  UniqueFd adopted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(adopted);
  epoll_echo_connection_state_t state{};
  state.size = sizeof state;
  state.fd = adopted.get();
  ASSERT_EQ(api().import_connection(engine.handle(), &state, nullptr), EPOLL_ECHO_OK) << engine.lastError();
  adopted.reset();
  ASSERT_EQ(api().start_paused(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  const int32_t fd = loopFd(engine);
  UniqueFd client = connectLoopback(engine.port(), deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(client) << error;
  for (int socket : {client.get(), adoptedClient.get()}) {
    ASSERT_TRUE(sendAll(socket, "before resume", deadlineIn(kIoTimeout), &error)) << error;
    ASSERT_TRUE(waitUntilSent(socket, deadlineIn(kIoTimeout)));
  }
  EXPECT_FALSE(readable(fd)) << "an engine that never ran must not wake the host's loop";
  int32_t next = 0;
  EXPECT_EQ(api().loop_run(engine.handle(), &next), EPOLL_ECHO_ESTATE);
  ASSERT_EQ(api().resume(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  EXPECT_EQ(loopFd(engine), fd) << "the same fd from start_paused on";
  EXPECT_TRUE(readable(fd)) << "resume makes the fd readable, so the host's loop runs";
  LoopDriver driver;
  ASSERT_TRUE(driver.start(api(), engine.handle())) << driver.error();
  for (int socket : {client.get(), adoptedClient.get()}) {
    std::string echoed(13, '\0');
    EXPECT_TRUE(receiveExactly(socket, echoed.data(), echoed.size(), deadlineIn(kIoTimeout), &error)) << error;
    EXPECT_EQ(echoed, "before resume");
  }
  driver.stop();
  EXPECT_EQ(driver.error(), "");
}

// Two threads calling loop_run() at once: one works, the other is refused with ESTATE instead of
// waiting (or corrupting the engine); the engine keeps serving. Overlap is not forced, so the test
// accepts runs without any refusal, but a refusal must carry its reason.
TEST_F(AbiExternalLoopTest, LoopRunFromTwoThreadsAtOnceIsRefusedNotRaced) {
  TestEngine engine(api());
  ASSERT_NO_FATAL_FAILURE(createAndStart(engine, externalConfig()));
  std::string error;
  auto jobs = makeEchoJobs(engine.port(), 4, scaledForSanitizers(100000), true, 3, deadlineIn(kIoTimeout), &error);
  ASSERT_EQ(jobs.size(), 4u) << error;
  std::atomic<bool> done{false};
  std::atomic<int> unexpected{0};
  std::atomic<int> refused{0};
  auto spin = [&] {
    for (int i = 0; i < 2000000 && !done.load(); ++i) {
      int32_t next = 0;
      const int code = api().loop_run(engine.handle(), &next);
      if (code == EPOLL_ECHO_ESTATE) {
        refused.fetch_add(1);
      } else if (code != EPOLL_ECHO_OK) {
        unexpected.fetch_add(1);
      }
    }
  };
  std::thread first(spin);
  std::thread second(spin);
  EXPECT_EQ(runEchoJobs(jobs, deadlineIn(kBulkTimeout)), "");
  done.store(true);
  first.join();
  second.join();
  EXPECT_EQ(unexpected.load(), 0);
  if (refused.load() > 0) {
    EXPECT_NE(engine.lastError().find("another thread is inside loop_run()"), std::string::npos) << engine.lastError();
  }
}

// The hot-swap sequence between two external-loop engines while clients stream: every listening
// socket and live connection, with its unsent bytes, moves to the new engine; no byte is lost.
TEST_F(AbiExternalLoopTest, HandOverUnderLoadBetweenExternalLoopEngines) {
  epoll_echo_config_t config = externalConfig(2);
  config.high_water_bytes = 16384;
  config.read_budget_bytes = 8192;
  TestEngine old(api());
  ASSERT_TRUE(old.createAndStart(config));  // served by its own LoopDriver
  std::string error;
  const uint64_t bytes = scaledForSanitizers(4000000);
  auto jobs = makeEchoJobs(old.port(), 6, bytes, true, 40, deadlineIn(kIoTimeout), &error);
  ASSERT_EQ(jobs.size(), 6u) << error;
  std::string trafficResult = "not run";
  std::thread traffic([&] { trafficResult = runEchoJobs(jobs, deadlineIn(kBulkTimeout)); });
  old.waitForStats([](const epoll_echo_stats_t& s) { return s.total.active == 6 && s.total.bytes_out > 0; },
                   deadlineIn(kIoTimeout));

  ASSERT_EQ(api().pause(old.handle()), EPOLL_ECHO_OK) << old.lastError();
  old.stopLoopDriver();
  TestEngine next(api());
  ASSERT_EQ(next.create(config, &error), EPOLL_ECHO_OK) << error;
  uint32_t listeners = 0, connections = 0;
  ASSERT_EQ(api().handover_counts(old.handle(), &listeners, &connections), EPOLL_ECHO_OK);
  for (uint32_t i = 0; i < listeners; ++i) {
    int32_t fd = -1;
    ASSERT_EQ(api().export_listener(old.handle(), i, &fd), EPOLL_ECHO_OK) << old.lastError();
    ASSERT_EQ(api().import_listener(next.handle(), fd), EPOLL_ECHO_OK) << next.lastError();
  }
  std::vector<char> pending(config.high_water_bytes + config.read_budget_bytes);
  for (uint32_t i = 0; i < connections; ++i) {
    epoll_echo_connection_state_t state{};
    state.size = sizeof state;
    ASSERT_EQ(api().export_connection(old.handle(), i, &state, pending.data(), pending.size()), EPOLL_ECHO_OK)
        << old.lastError();
    ASSERT_EQ(api().import_connection(next.handle(), &state, pending.data()), EPOLL_ECHO_OK) << next.lastError();
  }
  ASSERT_EQ(next.start(), EPOLL_ECHO_OK) << next.lastError();
  ASSERT_EQ(api().handover_complete(old.handle()), EPOLL_ECHO_OK) << old.lastError();
  old.destroy();

  traffic.join();
  EXPECT_EQ(trafficResult, "");
  EXPECT_EQ(next.loopError(), "");
  const epoll_echo_stats_t stats = next.stats();
  EXPECT_EQ(stats.total.adopted, connections);
  EXPECT_EQ(connections, 6u);
  EXPECT_EQ(next.stop(), EPOLL_ECHO_OK);
}

}  // namespace
}  // namespace epoll_echo::test
