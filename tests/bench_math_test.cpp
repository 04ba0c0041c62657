// bench_math_test.cpp — the load generator's arithmetic without sockets: the fairness figures
// over per-connection round trips and the open-loop send schedule.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "bench/fairness.h"
#include "bench/open_loop_schedule.h"

namespace epoll_echo::bench {
namespace {

TEST(FairnessTest, EvenServiceIsPerfectlyFair) {
  const Fairness f = computeFairness({500, 500, 500, 500});
  EXPECT_EQ(f.least, 500u);
  EXPECT_EQ(f.busiest, 500u);
  EXPECT_DOUBLE_EQ(f.spreadPercent, 0.0);
  EXPECT_DOUBLE_EQ(f.jainIndex, 1.0);
  EXPECT_FALSE(f.starved);
}

TEST(FairnessTest, SpreadIsBusiestOverLeastMinusOne) {
  const Fairness f = computeFairness({100, 110, 105});
  EXPECT_EQ(f.least, 100u);
  EXPECT_EQ(f.busiest, 110u);
  EXPECT_NEAR(f.spreadPercent, 10.0, 1e-9);
}

TEST(FairnessTest, JainIndexMatchesItsDefinition) {
  // (1 + 2 + 3 + 4)^2 / (4 * (1 + 4 + 9 + 16)) = 100 / 120
  EXPECT_NEAR(computeFairness({1, 2, 3, 4}).jainIndex, 100.0 / 120.0, 1e-12);
  // One connection got everything: 1/n.
  EXPECT_NEAR(computeFairness({0, 0, 0, 0, 7}).jainIndex, 0.2, 1e-12);
}

TEST(FairnessTest, StarvedConnectionIsFlaggedNotDividedByZero) {
  const Fairness f = computeFairness({0, 10});
  EXPECT_TRUE(f.starved);
  EXPECT_EQ(f.least, 0u);
  EXPECT_DOUBLE_EQ(f.spreadPercent, 0.0);
  EXPECT_NEAR(f.jainIndex, 0.5, 1e-12);
}

TEST(FairnessTest, NothingServedGivesZeros) {
  EXPECT_DOUBLE_EQ(computeFairness({}).jainIndex, 0.0);
  const Fairness f = computeFairness({0, 0});
  EXPECT_DOUBLE_EQ(f.jainIndex, 0.0);
  EXPECT_FALSE(f.starved);
}

TEST(FairnessTest, LargeCountsKeepPrecision) {
  const std::vector<uint64_t> counts(100000, uint64_t{1} << 40);
  EXPECT_NEAR(computeFairness(counts).jainIndex, 1.0, 1e-12);
}

TEST(OpenLoopScheduleTest, ConnectionsAreStaggeredEvenly) {
  // 1,000 messages/s over 4 connections: one send every 1 ms overall, every 4 ms per connection.
  const OpenLoopSchedule schedule(1000, 4, 5'000'000);
  EXPECT_DOUBLE_EQ(schedule.intervalNanoseconds(), 4e6);
  EXPECT_EQ(schedule.intendedTime(0, 0), 5'000'000);
  EXPECT_EQ(schedule.intendedTime(1, 0), 6'000'000);
  EXPECT_EQ(schedule.intendedTime(3, 0), 8'000'000);
  EXPECT_EQ(schedule.intendedTime(0, 1), 9'000'000);
  EXPECT_EQ(schedule.intendedTime(2, 10), 5'000'000 + 42'000'000);
}

TEST(OpenLoopScheduleTest, DueCountsEveryIntendedTimeUpToNow) {
  const OpenLoopSchedule schedule(1000, 4, 0);
  EXPECT_EQ(schedule.dueBy(1, 999'999), 0u);
  EXPECT_EQ(schedule.dueBy(1, 1'000'000), 1u);
  EXPECT_EQ(schedule.dueBy(1, 4'999'999), 1u);
  EXPECT_EQ(schedule.dueBy(1, 5'000'000), 2u);
  EXPECT_EQ(schedule.dueBy(0, -1), 0u);
  EXPECT_EQ(schedule.dueBy(0, 0), 1u);
}

TEST(OpenLoopScheduleTest, TotalDueMatchesTheRate) {
  // Rates that are not whole divisors of a second: the sum over connections stays exact.
  for (const double rate : {3.0, 777.0, 123456.0}) {
    for (const uint32_t connections : {1u, 7u, 100u}) {
      const OpenLoopSchedule schedule(rate, connections, 0);
      const int64_t now = 2'000'000'000;  // 2 s: 2 * rate sends due, plus the one at time 0
      uint64_t total = 0;
      for (uint32_t c = 0; c < connections; ++c) total += schedule.dueBy(c, now);
      EXPECT_NEAR(static_cast<double>(total), 2 * rate + 1, 1.0) << rate << " msg/s, " << connections;
      for (uint32_t c = 0; c < connections; ++c) {
        const uint64_t due = schedule.dueBy(c, now);
        if (due > 0) {
          EXPECT_LE(schedule.intendedTime(c, due - 1), now);
        }
        EXPECT_GT(schedule.intendedTime(c, due), now);
      }
    }
  }
}

TEST(OpenLoopScheduleTest, SlotsWalkEveryConnectionInTurn) {
  // 1,000 messages/s over 4 connections: slot k is connection k % 4's message k / 4, 1 ms apart.
  const OpenLoopSchedule schedule(1000, 4, 5'000'000);
  EXPECT_EQ(schedule.slotTime(0), 5'000'000);
  EXPECT_EQ(schedule.slotTime(6), 11'000'000);
  EXPECT_EQ(schedule.connectionOf(6), 2u);
  EXPECT_EQ(schedule.indexOf(6), 1u);
  for (uint64_t slot = 0; slot < 1000; ++slot) {
    EXPECT_EQ(schedule.intendedTime(schedule.connectionOf(slot), schedule.indexOf(slot)), schedule.slotTime(slot));
  }
}

TEST(OpenLoopScheduleTest, SlotsDueAgreeWithEachConnectionsDueCount) {
  // The generator walks slots with a cursor and counts a connection's sends with dueBy(): both
  // must name the same sends at every instant, including rates that do not divide a second.
  for (const double rate : {1000.0, 777.0, 264123.0}) {
    for (const uint32_t connections : {1u, 7u, 100u}) {
      const OpenLoopSchedule schedule(rate, connections, 1'000);
      EXPECT_EQ(schedule.slotsDueBy(999), 0u);
      for (uint64_t slot = 0; slot < 3000; slot += 37) {
        const int64_t time = schedule.slotTime(slot);
        for (const int64_t now : {time - 1, time, time + 1}) {
          const uint64_t due = schedule.slotsDueBy(now);
          if (due > 0) {
            EXPECT_LE(schedule.slotTime(due - 1), now);
          }
          EXPECT_GT(schedule.slotTime(due), now);
          uint64_t total = 0;
          for (uint32_t c = 0; c < connections; ++c) total += schedule.dueBy(c, now);
          EXPECT_EQ(total, due) << rate << " msg/s, " << connections << " connections, t " << now;
        }
      }
    }
  }
}

}  // namespace
}  // namespace epoll_echo::bench
