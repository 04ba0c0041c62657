// uring_recv_fallback_test.cpp — where the kernel refuses the io_uring worker's limited multishot
// recv (kernels before the limit existed answer EINVAL), the worker falls back to one-shot recvs
// and keeps every guarantee: every byte echoed in order, the half-close honoured. The refusal is
// injected by the test-only plugin build (plugin/fault_injection.h): with
// EPOLL_ECHO_FAULT_REFUSE_RECV_LIMIT set, each multishot recv carries a flag no kernel knows.
#include <stdlib.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/echo_traffic.h"
#include "support/injected_fault.h"
#include "support/plugin.h"
#include "support/timeouts.h"

namespace epoll_echo::test {
namespace {

class UringRecvFallbackTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(faulty_.loaded()) << faulty_.error(); }
  Plugin faulty_{EPOLL_ECHO_FAULT_PLUGIN_PATH};
};

// Small budgets, so that each client's stream takes many recvs, each one armed after a refusal
// would have closed the connection or stalled it.
TEST_F(UringRecvFallbackTest, RefusedMultishotRecvFallsBackAndEchoesEveryByte) {
  const InjectedFault refused("EPOLL_ECHO_FAULT_REFUSE_RECV_LIMIT", "1");
  epoll_echo_config_t config = loopbackConfig(1);
  config.backend = EPOLL_ECHO_BACKEND_IO_URING;
  config.high_water_bytes = 16 * 1024;
  config.read_budget_bytes = 4096;
  TestEngine engine(faulty_.api());
  ASSERT_TRUE(engine.createAndStart(config));
  ASSERT_EQ(engine.stats().backend, EPOLL_ECHO_BACKEND_IO_URING);

  const size_t clients = 4;
  const uint64_t bytesEach = scaledForSanitizers(1u << 20);
  std::string error;
  auto jobs = makeEchoJobs(engine.port(), clients, bytesEach, true, 7, deadlineIn(kIoTimeout), &error);
  ASSERT_EQ(jobs.size(), clients) << error;
  ASSERT_EQ(runEchoJobs(jobs, deadlineIn(kBulkTimeout)), "");

  const epoll_echo_stats_t stats = engine.waitForStats(
      [&](const epoll_echo_stats_t& s) { return s.total.closed == clients; }, deadlineIn(kIoTimeout));
  EXPECT_EQ(stats.total.closed, clients) << "a half-closed client was not closed after its echo";
  EXPECT_EQ(stats.total.bytes_in, clients * bytesEach);
  EXPECT_EQ(stats.total.bytes_out, clients * bytesEach);
  EXPECT_EQ(stats.total.worker_failures, 0u);
}

}  // namespace
}  // namespace epoll_echo::test
