// host_stats_test.cpp — unit tests of the host's stats lines (text and JSON) and of the rate limit
// on the "failing to accept" warning (host/stats_report.cpp), with a fake clock.
#include <chrono>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "stats_report.h"

namespace epoll_echo::host {
namespace {

using std::chrono::seconds;

epoll_echo_stats_t sampleStats() {
  epoll_echo_stats_t stats;
  std::memset(&stats, 0, sizeof stats);
  stats.size = sizeof stats;
  stats.state = EPOLL_ECHO_STATE_RUNNING;
  stats.port = 8080;
  stats.listeners = 4;
  stats.total.accepted = 12;
  stats.total.active = 3;
  stats.total.closed = 9;
  stats.total.bytes_in = 4096;
  stats.total.bytes_out = 4000;
  stats.total.backpressure_pauses = 2;
  stats.total.accept_errors = 1;
  stats.total.accept_pauses = 5;
  stats.total.syscalls = 70;
  stats.total.wakeups = 20;
  stats.total.accept_cap_pauses = 6;
  stats.total.idle_closed = 7;
  stats.uring.recv_buffer_waits = 8;
  stats.uring.completion_overflows = 9;
  return stats;
}

TEST(HostStatsTest, CountsAgreeWithTheirNoun) {
  EXPECT_EQ(countOf(0, "connection"), "0 connections");
  EXPECT_EQ(countOf(1, "listener"), "1 listener");
  EXPECT_EQ(countOf(4, "listener"), "4 listeners");
}

TEST(HostStatsTest, TextLineHasEveryCounterAsKeyValue) {
  EXPECT_EQ(formatStats(sampleStats(), StatsFormat::kText),
            "stats state=running port=8080 listeners=4 accepted=12 active=3 closed=9 bytes_in=4096 "
            "bytes_out=4000 backpressure_pauses=2 accept_errors=1 accept_pauses=5 syscalls=70 wakeups=20 "
            "accept_cap_pauses=6 idle_closed=7 recv_buffer_waits=8 completion_overflows=9");
}

TEST(HostStatsTest, JsonLineIsOneObject) {
  EXPECT_EQ(formatStats(sampleStats(), StatsFormat::kJson),
            R"({"event":"stats","state":"running","port":8080,"listeners":4,"accepted":12,"active":3,"closed":9,)"
            R"("bytes_in":4096,"bytes_out":4000,"backpressure_pauses":2,"accept_errors":1,"accept_pauses":5,)"
            R"("syscalls":70,"wakeups":20,"accept_cap_pauses":6,"idle_closed":7,"recv_buffer_waits":8,)"
            R"("completion_overflows":9})");
}

TEST(HostStatsTest, LinesEndWithTheServingBuildAndTheReloadCount) {
  EXPECT_EQ(formatStats(sampleStats(), StatsFormat::kText, {"5f0c", 3, {}}),
            formatStats(sampleStats(), StatsFormat::kText) + " build_id=5f0c reloads=3");
  EXPECT_EQ(formatStats(sampleStats(), StatsFormat::kJson, {"a\"b c", 0, {}}),
            R"({"event":"stats","state":"running","port":8080,"listeners":4,"accepted":12,"active":3,"closed":9,)"
            R"("bytes_in":4096,"bytes_out":4000,"backpressure_pauses":2,"accept_errors":1,"accept_pauses":5,)"
            R"("syscalls":70,"wakeups":20,"accept_cap_pauses":6,"idle_closed":7,"recv_buffer_waits":8,)"
            R"("completion_overflows":9,"build_id":"a?b?c","reloads":0})");
}

TEST(HostStatsTest, LinesListTheConnectionsOfEachWorkerLast) {
  const ServingInfo serving{"5f0c", 1, {3, 0, 5}};
  EXPECT_EQ(formatStats(sampleStats(), StatsFormat::kText, serving),
            formatStats(sampleStats(), StatsFormat::kText) + " build_id=5f0c reloads=1 active_per_worker=3,0,5");
  const std::string json = formatStats(sampleStats(), StatsFormat::kJson, serving);
  const std::string tail = R"(,"completion_overflows":9,"build_id":"5f0c","reloads":1,"active_per_worker":[3,0,5]})";
  ASSERT_GE(json.size(), tail.size());
  EXPECT_EQ(json.substr(json.size() - tail.size()), tail);
}

TEST(HostStatsTest, AddsFinishedEnginesCountersExceptActive) {
  epoll_echo_counters_t totals = sampleStats().total;
  addCounters(totals, sampleStats().total);
  EXPECT_EQ(totals.accepted, 24u);
  EXPECT_EQ(totals.active, 3u);
  EXPECT_EQ(totals.bytes_out, 8000u);
  EXPECT_EQ(totals.accept_pauses, 10u);
  EXPECT_EQ(totals.accept_cap_pauses, 12u);
  EXPECT_EQ(totals.idle_closed, 14u);
}

TEST(HostStatsTest, NamesEveryState) {
  EXPECT_STREQ(stateName(EPOLL_ECHO_STATE_CREATED), "created");
  EXPECT_STREQ(stateName(EPOLL_ECHO_STATE_RUNNING), "running");
  EXPECT_STREQ(stateName(EPOLL_ECHO_STATE_STOPPED), "stopped");
  EXPECT_STREQ(stateName(EPOLL_ECHO_STATE_PAUSED), "paused");
  EXPECT_STREQ(stateName(0), "unknown");
}

TEST(HostStatsTest, NoWarningWhileAcceptsSucceed) {
  AcceptErrorMonitor monitor;
  const auto start = AcceptErrorMonitor::Clock::time_point{};
  for (int tick = 0; tick < 30; ++tick) EXPECT_FALSE(monitor.observe(0, start + seconds(tick)));
}

TEST(HostStatsTest, WarnsAtOnceWhenAcceptErrorsGrow) {
  AcceptErrorMonitor monitor;
  const auto start = AcceptErrorMonitor::Clock::time_point{};
  EXPECT_FALSE(monitor.observe(0, start));
  const auto warning = monitor.observe(3, start + seconds(1));
  ASSERT_TRUE(warning);
  EXPECT_NE(warning->find("3 failed accepts (accept_errors=3): out of file descriptors"), std::string::npos)
      << *warning;
}

TEST(HostStatsTest, WarnsAtMostOncePerTenSecondsAndCountsTheSuppressedErrors) {
  AcceptErrorMonitor monitor;
  const auto start = AcceptErrorMonitor::Clock::time_point{};
  ASSERT_TRUE(monitor.observe(1, start));
  for (int tick = 1; tick < 10; ++tick) EXPECT_FALSE(monitor.observe(1 + tick, start + seconds(tick))) << tick;
  const auto next = monitor.observe(10, start + seconds(10));
  ASSERT_TRUE(next);
  EXPECT_NE(next->find("9 failed accepts since the last warning (accept_errors=10)"), std::string::npos) << *next;
}

TEST(HostStatsTest, SuppressedErrorsAreReportedEvenWithoutNewOnes) {
  AcceptErrorMonitor monitor;
  const auto start = AcceptErrorMonitor::Clock::time_point{};
  ASSERT_TRUE(monitor.observe(1, start));
  EXPECT_FALSE(monitor.observe(2, start + seconds(5)));
  const auto late = monitor.observe(2, start + seconds(11));
  ASSERT_TRUE(late);
  EXPECT_NE(late->find("1 failed accept since the last warning"), std::string::npos) << *late;
  EXPECT_FALSE(monitor.observe(2, start + seconds(30)));
}

TEST(HostStatsTest, WarnsWhenTheConnectionCapIsReachedAtMostOncePerTenSeconds) {
  ConnectionCapMonitor monitor(50);
  const auto start = ConnectionCapMonitor::Clock::time_point{};
  EXPECT_FALSE(monitor.observe(0, start));
  const auto first = monitor.observe(2, start + seconds(1));
  ASSERT_TRUE(first);
  EXPECT_NE(first->find("the connection cap (--max-connections 50) was reached 2 times (accept_cap_pauses=2): new "
                        "clients wait in the accept queue"),
            std::string::npos)
      << *first;
  for (int tick = 2; tick < 11; ++tick) EXPECT_FALSE(monitor.observe(2 + tick, start + seconds(tick))) << tick;
  const auto next = monitor.observe(13, start + seconds(11));
  ASSERT_TRUE(next);
  EXPECT_NE(next->find("reached 11 times since the last warning (accept_cap_pauses=13)"), std::string::npos) << *next;
}

}  // namespace
}  // namespace epoll_echo::host
