// engine_lifecycle_test.cpp — start and stop around live traffic: a bind failure is reported by
// start with nothing left running, stop closes every live connection, and create/start/stop/destroy
// cycles leak neither file descriptors nor threads.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "support/echo_traffic.h"
#include "support/plugin.h"
#include "support/timeouts.h"

namespace epoll_echo::test {
namespace {

class EngineLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(plugin_.loaded()) << plugin_.error();
    // TSan starts a background thread with the process's first thread: start it now, so thread
    // counts taken by the tests see only the engine's workers come and go.
    std::thread([] {}).join();
  }
  const PluginApi& api() const { return plugin_.api(); }
  Plugin plugin_;
};

TEST_F(EngineLifecycleTest, BindFailureIsReportedByStart) {
  std::string error;
  UniqueFd occupier = listenTcp("127.0.0.1", 0, 4, &error);
  ASSERT_TRUE(occupier) << error;
  const uint16_t port = localPort(occupier.get());
  epoll_echo_config_t config = loopbackConfig(2);
  config.port = port;
  TestEngine engine(api());
  ASSERT_EQ(engine.create(config, &error), EPOLL_ECHO_OK) << error;
  const int fdsBefore = countOpenFds();
  const int threadsBefore = countThreads();

  EXPECT_EQ(engine.start(), EPOLL_ECHO_EBIND);
  const std::string message = engine.lastError();
  EXPECT_NE(message.find("127.0.0.1"), std::string::npos) << message;
  EXPECT_NE(message.find(std::to_string(port)), std::string::npos) << message;
  EXPECT_NE(message.find("Address already in use"), std::string::npos) << message;
  epoll_echo_stats_t stats = engine.stats();
  EXPECT_EQ(stats.state, EPOLL_ECHO_STATE_CREATED);
  EXPECT_EQ(countOpenFds(), fdsBefore) << "a failed start left descriptors open:\n" << describeOpenFds();
  EXPECT_EQ(countThreads(), threadsBefore) << "a failed start left threads running";

  // Still CREATED, so once the port is free the same engine can start.
  occupier.reset();
  ASSERT_EQ(engine.start(), EPOLL_ECHO_OK) << engine.lastError();
  EXPECT_EQ(engine.port(), port);
  auto jobs = makeEchoJobs(port, 2, 10000, true, 3, deadlineIn(kIoTimeout), &error);
  ASSERT_EQ(jobs.size(), 2u) << error;
  EXPECT_EQ(runEchoJobs(jobs, deadlineIn(kIoTimeout)), "");
}

// Every client sees its connection end (EOF or RST; unread echo may precede it), the listening
// port is closed, every worker is joined, and no descriptor outlives destroy.
TEST_F(EngineLifecycleTest, StopClosesLiveConnectionsAndLeaksNothing) {
  const int fdsBefore = countOpenFds();
  const int threadsBefore = countThreads();
  {
    TestEngine engine(api());
    std::string error;
    ASSERT_TRUE(engine.createAndStart(loopbackConfig(2)));
    const uint16_t port = engine.port();
    auto idle = makeEchoJobs(port, 40, 1000, false, 1, deadlineIn(kIoTimeout), &error);
    ASSERT_EQ(idle.size(), 40u) << error;
    ASSERT_EQ(runEchoJobs(idle, deadlineIn(kIoTimeout)), "");  // all accepted and served once
    auto busy = makeEchoJobs(port, 8, 256 * 1024, false, 100, deadlineIn(kIoTimeout), &error);
    ASSERT_EQ(busy.size(), 8u) << error;
    for (auto& job : busy) {  // leave unsent echo queued in the engine
      ASSERT_TRUE(sendAll(job.socket.get(), randomBytes(256 * 1024, job.seed).data(), 256 * 1024,
                          deadlineIn(kIoTimeout), &error))
          << error;
    }
    engine.waitForStats([](const epoll_echo_stats_t& s) { return s.total.active == 48; }, deadlineIn(kIoTimeout));
    EXPECT_GT(countThreads(), threadsBefore);

    ASSERT_EQ(engine.stop(), EPOLL_ECHO_OK);
    EXPECT_EQ(countThreads(), threadsBefore) << "stop returned before joining every worker";
    for (auto* group : {&idle, &busy}) {
      for (size_t i = 0; i < group->size(); ++i) {
        PeerClose outcome = waitForClose((*group)[i].socket.get(), deadlineIn(kIoTimeout));
        EXPECT_TRUE(outcome == PeerClose::Eof || outcome == PeerClose::Reset)
            << "connection " << i << " after stop: " << toString(outcome);
      }
    }
    EXPECT_FALSE(connectLoopback(port, deadlineIn(kIoTimeout), &error)) << "the listener survived stop";
    EXPECT_EQ(engine.stats().total.active, 0u) << "stop must account for the connections it closed";
  }
  EXPECT_EQ(countOpenFds(), fdsBefore) << describeOpenFds();
}

TEST_F(EngineLifecycleTest, RepeatedCyclesLeakNothing) {
  const int fdsBefore = countOpenFds();
  const int threadsBefore = countThreads();
  for (int cycle = 0; cycle < 20; ++cycle) {
    TestEngine engine(api());
    std::string error;
    if (cycle % 2 == 0) {
      ASSERT_EQ(engine.create(loopbackConfig(4), &error), EPOLL_ECHO_OK) << error;  // never started
      continue;
    }
    ASSERT_TRUE(engine.createAndStart(loopbackConfig(4)));
    auto jobs = makeEchoJobs(engine.port(), 3, 5000, cycle % 4 == 1, cycle, deadlineIn(kIoTimeout), &error);
    ASSERT_EQ(jobs.size(), 3u) << error;
    ASSERT_EQ(runEchoJobs(jobs, deadlineIn(kIoTimeout)), "") << "cycle " << cycle;
  }
  EXPECT_EQ(countThreads(), threadsBefore);
  EXPECT_EQ(countOpenFds(), fdsBefore) << describeOpenFds();
}

}  // namespace
}  // namespace epoll_echo::test
