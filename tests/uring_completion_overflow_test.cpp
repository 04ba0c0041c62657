// uring_completion_overflow_test.cpp — when more completions come at once than the io_uring
// worker's completion queue holds, the kernel keeps the rest (IORING_FEAT_NODROP) and the worker
// loses none: every byte is echoed, and completion_overflows counts the passes that overflowed.
// The test-only plugin build (plugin/fault_injection.h) shrinks both queues to a few entries
// with EPOLL_ECHO_FAULT_URING_RING_ENTRIES, so that a few dozen connections overflow them.
#include <stdlib.h>

#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/injected_fault.h"
#include "support/plugin.h"
#include "support/timeouts.h"

namespace epoll_echo::test {
namespace {

constexpr unsigned kRingEntries = 16;

class UringCompletionOverflowTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(faulty_.loaded()) << faulty_.error(); }
  Plugin faulty_{EPOLL_ECHO_FAULT_PLUGIN_PATH};
};

// Four times as many connections as the completion queue has entries, each with a message waiting
// when the worker resumes: its first pass arms a recv on each, and each recv completes at once.
TEST_F(UringCompletionOverflowTest, OverflowedCompletionsAreCountedAndLoseNothing) {
  const InjectedFault smallRing("EPOLL_ECHO_FAULT_URING_RING_ENTRIES", std::to_string(kRingEntries));
  epoll_echo_config_t config = loopbackConfig(1);
  config.backend = EPOLL_ECHO_BACKEND_IO_URING;
  TestEngine engine(faulty_.api());
  ASSERT_TRUE(engine.createAndStart(config));
  ASSERT_EQ(engine.stats().backend, EPOLL_ECHO_BACKEND_IO_URING);

  const size_t clientCount = 4 * kRingEntries;
  std::vector<UniqueFd> clients = connectClients(engine.port(), clientCount);
  ASSERT_TRUE(waitUntilAccepted(engine, clientCount));
  std::string error;

  const PluginApi& api = faulty_.api();
  ASSERT_EQ(api.pause(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();
  const std::string message(64, 'o');
  for (size_t i = 0; i < clientCount; ++i) {
    ASSERT_TRUE(sendAll(clients[i].get(), message, deadlineIn(kIoTimeout), &error)) << "client " << i << ": " << error;
  }
  const Deadline arrived = deadlineIn(kIoTimeout);
  while (!pausedConnectionsHoldBytes(api, engine.handle(), clientCount, message.size())) {
    ASSERT_GT(millisecondsLeft(arrived), 0) << "the messages did not reach the server's sockets";
    std::this_thread::yield();
  }
  ASSERT_EQ(api.resume(engine.handle()), EPOLL_ECHO_OK) << engine.lastError();

  for (size_t i = 0; i < clientCount; ++i) {
    std::string echo(message.size(), '\0');
    ASSERT_TRUE(receiveExactly(clients[i].get(), echo.data(), echo.size(), deadlineIn(kIoTimeout), &error))
        << "client " << i << ": " << error;
    EXPECT_EQ(echo, message) << "client " << i;
  }
  const epoll_echo_stats_t stats = engine.stats();
  EXPECT_GE(stats.uring.completion_overflows, 1u);
  EXPECT_EQ(stats.total.worker_failures, 0u) << engine.lastError();
  EXPECT_EQ(engine.stop(), EPOLL_ECHO_OK);
}

}  // namespace
}  // namespace epoll_echo::test
