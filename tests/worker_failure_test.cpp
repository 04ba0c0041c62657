// worker_failure_test.cpp — a worker whose epoll_wait fails unexpectedly is never silent: the
// stats count it, last_error says why, stop still joins it, and epoll-server logs it and exits 1.
// The failure is injected by the test-only plugin build (plugin/fault_injection.h): once a worker
// has accepted a connection, its epoll_wait fails with the errno in EPOLL_ECHO_FAULT_EPOLL_WAIT.
#include <poll.h>
#include <signal.h>
#include <stdlib.h>

#include <cerrno>
#include <string>

#include <gtest/gtest.h>

#include "support/expect_echo.h"
#include "support/injected_fault.h"
#include "support/plugin.h"
#include "support/process.h"
#include "support/server_process.h"
#include "support/timeouts.h"

namespace epoll_echo::test {
namespace {

// epoll_wait fails with `error` in this process for the test's lifetime.
class InjectedEpollWaitFailure : public InjectedFault {
 public:
  explicit InjectedEpollWaitFailure(int error) : InjectedFault(kName, std::to_string(error)) {}

  // The same injection for a child process's environment.
  static std::string environmentEntry(int error) { return std::string(kName) + "=" + std::to_string(error); }

 private:
  static constexpr const char* kName = "EPOLL_ECHO_FAULT_EPOLL_WAIT";
};

class WorkerFailureTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(faulty_.loaded()) << faulty_.error(); }
  Plugin faulty_{EPOLL_ECHO_FAULT_PLUGIN_PATH};
};

TEST_F(WorkerFailureTest, FailedEpollWaitIsCountedAndExplained) {
  InjectedEpollWaitFailure injected(EBADF);
  TestEngine engine(faulty_.api());
  std::string error;
  ASSERT_TRUE(engine.createAndStart(loopbackConfig(2)));
  EXPECT_EQ(engine.stats().total.worker_failures, 0u);

  UniqueFd client = connectLoopback(engine.port(), deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(client) << error;
  bool failed = false;
  const epoll_echo_stats_t stats = engine.waitForStats(
      [](const epoll_echo_stats_t& now) { return now.total.worker_failures > 0; }, deadlineIn(kIoTimeout), &failed);
  ASSERT_TRUE(failed) << "worker_failures stayed 0";
  EXPECT_EQ(stats.total.worker_failures, 1u) << "only the worker that accepted fails";
  const std::string reason = engine.lastError();
  EXPECT_NE(reason.find(": epoll_wait: Bad file descriptor; it serves no more connections"), std::string::npos)
      << reason;
  uint64_t perWorker = 0;
  for (uint32_t index = 0; index < 2; ++index) perWorker += engine.workerStats(index).counters.worker_failures;
  EXPECT_EQ(perWorker, 1u);
  EXPECT_EQ(engine.stop(), EPOLL_ECHO_OK);  // joins the failed worker too
  EXPECT_EQ(engine.stats().total.active, 0u);
}

// External-loop mode: the loop_run() that meets the failure returns ESYSTEM with the reason, and
// the failed worker leaves the loop fd, which does not stay readable for work no one can do.
TEST_F(WorkerFailureTest, FailedEpollWaitInAnExternalLoopIsReturnedByLoopRun) {
  InjectedEpollWaitFailure injected(EBADF);
  TestEngine engine(faulty_.api());
  epoll_echo_config_t config = loopbackConfig(1);
  config.threading = EPOLL_ECHO_THREADING_EXTERNAL;
  std::string error;
  ASSERT_EQ(engine.create(config, &error), EPOLL_ECHO_OK) << error;
  ASSERT_EQ(faulty_.api().start(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  int32_t loopFd = -1;
  ASSERT_EQ(faulty_.api().loop_fd(engine.handle(), &loopFd), EPOLL_ECHO_OK);
  UniqueFd client = connectLoopback(engine.port(), deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(client) << error;
  int code = EPOLL_ECHO_OK;
  int32_t next = 0;
  // The first runs accept the client; the one after fails (bounded: a few runs at most).
  for (int run = 0; run < 100 && code == EPOLL_ECHO_OK; ++run) {
    pollfd watch{loopFd, POLLIN, 0};
    ::poll(&watch, 1, next < 0 ? millisecondsLeft(deadlineIn(kIoTimeout)) : next);
    code = faulty_.api().loop_run(engine.handle(), &next);
  }
  EXPECT_EQ(code, EPOLL_ECHO_ESYSTEM);
  EXPECT_NE(engine.lastError().find("worker 0: epoll_wait: Bad file descriptor"), std::string::npos)
      << engine.lastError();
  EXPECT_EQ(engine.stats().total.worker_failures, 1u);
  pollfd watch{loopFd, POLLIN, 0};
  EXPECT_EQ(::poll(&watch, 1, 0), 0) << "the failed worker still makes the loop fd readable";
  EXPECT_EQ(faulty_.api().loop_run(engine.handle(), &next), EPOLL_ECHO_OK);
  EXPECT_EQ(next, -1) << "no worker left to serve";
  EXPECT_EQ(engine.stop(), EPOLL_ECHO_OK);
}

TEST_F(WorkerFailureTest, ShippedPluginHasNoFaultInjection) {
  InjectedEpollWaitFailure injected(EBADF);
  Plugin shipped;
  ASSERT_TRUE(shipped.loaded()) << shipped.error();
  TestEngine engine(shipped.api());
  ASSERT_TRUE(engine.createAndStart(loopbackConfig(1)));
  ASSERT_NO_FATAL_FAILURE(expectEchoOnNewConnection(engine.port(), "ping"));
  EXPECT_EQ(engine.stats().total.worker_failures, 0u);
  EXPECT_EQ(engine.stop(), EPOLL_ECHO_OK);
}

// The host's documented policy (docs/epoll-server.md): log the reason, stop, exit status 1.
TEST_F(WorkerFailureTest, HostLogsTheReasonAndExitsNonZero) {
  ServerCommand faulty;
  faulty.environment = {InjectedEpollWaitFailure::environmentEntry(EINVAL)};
  ServerProcess server;
  ASSERT_TRUE(server.start(loopbackFlags({"--maxListeners", "1", "--plugin", EPOLL_ECHO_FAULT_PLUGIN_PATH}), faulty));
  ASSERT_EQ(server.startLine().address, "127.0.0.1") << server.log();
  std::string error;
  UniqueFd client = connectLoopback(server.port(), deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(client) << error;
  const std::optional<ExitStatus> status = server.child().waitForExit(deadlineIn(kServerTimeout));
  ASSERT_TRUE(status.has_value()) << "still running; stderr: " << server.log();
  EXPECT_TRUE(status->exited && status->code == 1) << status->describe();
  EXPECT_NE(server.log().find("engine failure: worker 0: epoll_wait: Invalid argument"), std::string::npos)
      << server.log();
}

}  // namespace
}  // namespace epoll_echo::test
