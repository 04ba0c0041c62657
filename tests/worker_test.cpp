// Unit tests of the epoll Worker's construction: a worker that cannot be built leaves nothing of
// itself behind in the engine's shared state.
#include "worker.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "connection_budget.h"
#include "engine_error.h"

namespace epoll_echo {
namespace {

// A worker whose constructor fails after creating its eventfd (here: epoll refuses a regular file
// as the listener) must not leave that eventfd's number with the budget: once closed, the number
// is the next descriptor opened, and a slot freed at the cap would write into it.
TEST(WorkerTest, AConstructorThatFailsLeavesNoWakeUpWithTheBudget) {
  ConnectionBudget budget(1, 2);
  UniqueFd notASocket(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(notASocket) << std::strerror(errno);
  EXPECT_THROW(Worker(0, EngineConfig{}, budget, nullptr, std::move(notASocket), [](const std::string&) {}), EngineError);
  // Every number the failed worker closed (its listener, eventfd and epoll fd, and then some) is
  // reopened here, as eventfds the budget must never write to.
  std::vector<UniqueFd> reused;
  for (int count = 0; count < 4; ++count) {
    reused.emplace_back(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    ASSERT_TRUE(reused.back()) << std::strerror(errno);
  }
  ASSERT_TRUE(budget.tryTake());
  ASSERT_TRUE(budget.park(0));  // as worker 0 would at the cap
  budget.give(1);               // worker 1 closes a connection: worker 0 is woken, if it is known
  for (const UniqueFd& fd : reused) {
    uint64_t value = 0;
    EXPECT_EQ(::read(fd.get(), &value, sizeof value), -1) << "fd " << fd.get() << " was written to";
    EXPECT_EQ(errno, EAGAIN);
  }
}

}  // namespace
}  // namespace epoll_echo
