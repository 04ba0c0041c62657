// abi_handover_test.cpp — misuse of the ABI 1.1 hand-over functions: NULL and garbage arguments,
// calls in the wrong state, and the rollback path (pause, then resume) losing no connection or
// byte. The full old-to-new-engine hand-over is exercised by the host's hot-swap tests.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "support/echo_traffic.h"
#include "support/plugin.h"

namespace epoll_echo::test {
namespace {

constexpr auto kTimeout = std::chrono::seconds(5);

class AbiHandoverTest : public PluginTest {};

TEST_F(AbiHandoverTest, NullArgumentsAreRejected) {
  uint32_t listeners = 0, connections = 0;
  int32_t fd = -1;
  epoll_echo_connection_state_t state{};
  state.size = sizeof state;
  EXPECT_EQ(api().pause(nullptr), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(api().resume(nullptr), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(api().handover_counts(nullptr, &listeners, &connections), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(api().export_listener(nullptr, 0, &fd), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(api().export_connection(nullptr, 0, &state, nullptr, 0), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(api().handover_complete(nullptr), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(api().import_listener(nullptr, 0), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(api().import_connection(nullptr, &state, nullptr), EPOLL_ECHO_EINVAL);

  Engine engine(api());
  std::string error;
  ASSERT_EQ(engine.create(loopbackConfig(), &error), EPOLL_ECHO_OK) << error;
  EXPECT_EQ(api().import_connection(engine.handle(), nullptr, nullptr), EPOLL_ECHO_EINVAL);
}

TEST_F(AbiHandoverTest, CallsInTheWrongStateAreStateErrors) {
  Engine engine(api());
  std::string error;
  ASSERT_EQ(engine.create(loopbackConfig(), &error), EPOLL_ECHO_OK) << error;
  uint32_t listeners = 0, connections = 0;
  int32_t fd = -1;
  EXPECT_EQ(api().pause(engine.handle()), EPOLL_ECHO_ESTATE) << "pause needs RUNNING";
  EXPECT_EQ(api().resume(engine.handle()), EPOLL_ECHO_ESTATE) << "resume needs PAUSED";
  EXPECT_EQ(api().handover_counts(engine.handle(), &listeners, &connections), EPOLL_ECHO_ESTATE);
  EXPECT_EQ(api().export_listener(engine.handle(), 0, &fd), EPOLL_ECHO_ESTATE);
  EXPECT_EQ(api().handover_complete(engine.handle()), EPOLL_ECHO_ESTATE);

  ASSERT_EQ(engine.start(), EPOLL_ECHO_OK) << engine.lastError();
  EXPECT_EQ(api().resume(engine.handle()), EPOLL_ECHO_ESTATE);
  EXPECT_EQ(api().handover_counts(engine.handle(), &listeners, &connections), EPOLL_ECHO_ESTATE);
  Fd listener = listenTcp("127.0.0.1", 0, 4, &error);
  ASSERT_TRUE(listener) << error;
  EXPECT_EQ(api().import_listener(engine.handle(), listener.get()), EPOLL_ECHO_ESTATE) << "import needs CREATED";
}

TEST_F(AbiHandoverTest, ImportRejectsDescriptorsOfTheWrongKind) {
  Engine engine(api());
  std::string error;
  ASSERT_EQ(engine.create(loopbackConfig(), &error), EPOLL_ECHO_OK) << error;
  int pipeFds[2];
  ASSERT_EQ(::pipe(pipeFds), 0);
  Fd readEnd(pipeFds[0]), writeEnd(pipeFds[1]);
  EXPECT_EQ(api().import_listener(engine.handle(), readEnd.get()), EPOLL_ECHO_EINVAL) << "a pipe";
  EXPECT_EQ(api().import_listener(engine.handle(), -1), EPOLL_ECHO_EINVAL);
  Fd listener = listenTcp("127.0.0.1", 0, 4, &error);
  ASSERT_TRUE(listener) << error;
  epoll_echo_connection_state_t state{};
  state.size = sizeof state;
  state.fd = listener.get();  // listening, not connected
  EXPECT_EQ(api().import_connection(engine.handle(), &state, nullptr), EPOLL_ECHO_EINVAL);
  state.fd = readEnd.get();
  EXPECT_EQ(api().import_connection(engine.handle(), &state, nullptr), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(engine.stats().state, EPOLL_ECHO_STATE_CREATED);
}

// The rollback path: pause keeps every socket and pending byte, resume serves them again.
TEST_F(AbiHandoverTest, PauseThenResumeLosesNothing) {
  Engine engine(api());
  std::string error;
  ASSERT_TRUE(engine.createAndStart(loopbackConfig(2), &error)) << error;
  auto jobs = makeEchoJobs(engine.port(), 4, 50000, false, 9, deadlineIn(kTimeout), &error);
  ASSERT_EQ(jobs.size(), 4u) << error;
  ASSERT_EQ(runEchoJobs(jobs, deadlineIn(kTimeout)), "");
  engine.waitForStats([](const epoll_echo_stats_t& s) { return s.total.active == 4; }, deadlineIn(kTimeout));

  ASSERT_EQ(api().pause(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  EXPECT_EQ(engine.stats().state, EPOLL_ECHO_STATE_PAUSED);
  uint32_t listeners = 0, connections = 0;
  EXPECT_EQ(api().handover_counts(engine.handle(), &listeners, &connections), EPOLL_ECHO_OK);
  EXPECT_EQ(listeners, 2u);
  EXPECT_EQ(connections, 4u);
  int32_t fd = -1;
  EXPECT_EQ(api().export_listener(engine.handle(), 2, &fd), EPOLL_ECHO_ERANGE);
  epoll_echo_connection_state_t state{};
  state.size = sizeof state;
  EXPECT_EQ(api().export_connection(engine.handle(), 4, &state, nullptr, 0), EPOLL_ECHO_ERANGE);
  // While paused, clients keep sending and new ones connect into the accept queue.
  for (auto& job : jobs) job.total += 20000;
  auto late = makeEchoJobs(engine.port(), 2, 30000, true, 50, deadlineIn(kTimeout), &error);
  ASSERT_EQ(late.size(), 2u) << error;

  ASSERT_EQ(api().resume(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  EXPECT_EQ(engine.stats().state, EPOLL_ECHO_STATE_RUNNING);
  for (auto& job : late) jobs.push_back(std::move(job));
  EXPECT_EQ(runEchoJobs(jobs, deadlineIn(kTimeout)), "");
  EXPECT_EQ(engine.stop(), EPOLL_ECHO_OK);
}

}  // namespace
}  // namespace epoll_echo::test
