// host_reload_policy_test.cpp — unit tests of the host's reload rules (host/reload_policy.cpp): the
// --watch debounce, the retries of a file that does not load yet, and the stats kept across
// reloads. No process, no plugin, no clock: the policy decides from the events it is told about.
#include <chrono>
#include <cstring>
#include <optional>

#include <vector>

#include <gtest/gtest.h>

#include "reload_policy.h"

namespace epoll_echo::host {
namespace {

using std::chrono::milliseconds;

FileSignature version(long long modifiedNanoseconds, off_t size = 4096) {
  FileSignature file;
  file.device = 1;
  file.inode = 42;
  file.size = size;
  file.modifiedNanoseconds = modifiedNanoseconds;
  return file;
}

// The delay of the retry `policy` asks for after a load failure of `file`, or nullopt (gave up).
std::optional<milliseconds> retryAfterLoadFailure(WatchedReloadPolicy& policy,
                                                  const std::optional<FileSignature>& file) {
  const auto retry = policy.reloadFailed(ReloadFailure::kNotLoadable, file);
  if (!retry) return std::nullopt;
  return retry->delay;
}

TEST(WatchedReloadPolicyTest, EveryChangeArmsTheWholeDebounceAgain) {
  WatchedReloadPolicy policy;
  EXPECT_EQ(policy.fileChanged(), milliseconds(200));
  EXPECT_EQ(policy.fileChanged(), milliseconds(200));
}

TEST(WatchedReloadPolicyTest, RetriesAnUnchangedUnloadableFileWithDoublingDelaysThenGivesUp) {
  WatchedReloadPolicy policy;
  const FileSignature file = version(1);
  for (const int attempt : {1, 2, 3}) {
    const auto retry = policy.reloadFailed(ReloadFailure::kNotLoadable, file);
    ASSERT_TRUE(retry.has_value()) << "attempt " << attempt;
    EXPECT_EQ(retry->attempt, attempt);
    EXPECT_EQ(retry->delay, milliseconds(200 << (attempt - 1)));
  }
  EXPECT_EQ(policy.reloadFailed(ReloadFailure::kNotLoadable, file), std::nullopt);
  EXPECT_EQ(WatchedReloadPolicy::kMaxLoadAttempts, 4);
}

TEST(WatchedReloadPolicyTest, GivingUpStartsTheNextCountFromTheFirstAttempt) {
  WatchedReloadPolicy policy;
  const FileSignature file = version(1);
  for (int attempt = 1; attempt < WatchedReloadPolicy::kMaxLoadAttempts; ++attempt) {
    ASSERT_TRUE(policy.reloadFailed(ReloadFailure::kNotLoadable, file).has_value());
  }
  ASSERT_EQ(policy.reloadFailed(ReloadFailure::kNotLoadable, file), std::nullopt);
  EXPECT_EQ(retryAfterLoadFailure(policy, file), milliseconds(200));
}

TEST(WatchedReloadPolicyTest, AFileThatIsStillChangingRestartsTheCount) {
  WatchedReloadPolicy policy;
  EXPECT_EQ(retryAfterLoadFailure(policy, version(1)), milliseconds(200));
  EXPECT_EQ(retryAfterLoadFailure(policy, version(1)), milliseconds(400));
  EXPECT_EQ(retryAfterLoadFailure(policy, version(2)), milliseconds(200));        // a newer mtime
  EXPECT_EQ(retryAfterLoadFailure(policy, version(2, 8192)), milliseconds(200));  // grew
  FileSignature renamed = version(2, 8192);
  renamed.inode = 43;  // a rename brings a new inode
  EXPECT_EQ(retryAfterLoadFailure(policy, renamed), milliseconds(200));
  EXPECT_EQ(retryAfterLoadFailure(policy, renamed), milliseconds(400));
}

TEST(WatchedReloadPolicyTest, AMissingFileCountsAsOneUnchangedVersion) {
  WatchedReloadPolicy policy;
  EXPECT_EQ(retryAfterLoadFailure(policy, std::nullopt), milliseconds(200));
  EXPECT_EQ(retryAfterLoadFailure(policy, std::nullopt), milliseconds(400));
  EXPECT_EQ(retryAfterLoadFailure(policy, version(1)), milliseconds(200));  // it appeared
}

TEST(WatchedReloadPolicyTest, ARefusedReloadIsNeverRetriedAndEndsTheCount) {
  WatchedReloadPolicy policy;
  const FileSignature file = version(1);
  EXPECT_EQ(policy.reloadFailed(ReloadFailure::kRefused, file), std::nullopt);
  EXPECT_EQ(retryAfterLoadFailure(policy, file), milliseconds(200));
  EXPECT_EQ(retryAfterLoadFailure(policy, file), milliseconds(400));
  EXPECT_EQ(policy.reloadFailed(ReloadFailure::kRefused, file), std::nullopt);
  EXPECT_EQ(retryAfterLoadFailure(policy, file), milliseconds(200));
}

TEST(WatchedReloadPolicyTest, AChangeASignalledReloadOrASuccessStartsTheCountAfresh) {
  const FileSignature file = version(1);
  const auto afterTwoFailures = [&file](WatchedReloadPolicy& policy) {
    retryAfterLoadFailure(policy, file);
    return retryAfterLoadFailure(policy, file);
  };
  WatchedReloadPolicy changed;
  ASSERT_EQ(afterTwoFailures(changed), milliseconds(400));
  changed.fileChanged();
  EXPECT_EQ(retryAfterLoadFailure(changed, file), milliseconds(200));

  WatchedReloadPolicy signalled;
  ASSERT_EQ(afterTwoFailures(signalled), milliseconds(400));
  signalled.reloadRequested();
  EXPECT_EQ(retryAfterLoadFailure(signalled, file), milliseconds(200));

  WatchedReloadPolicy succeeded;
  ASSERT_EQ(afterTwoFailures(succeeded), milliseconds(400));
  succeeded.reloadSucceeded();
  EXPECT_EQ(retryAfterLoadFailure(succeeded, file), milliseconds(200));

  WatchedReloadPolicy succeededThenVanished;  // the same "version" (none) before and after
  ASSERT_EQ(retryAfterLoadFailure(succeededThenVanished, std::nullopt), milliseconds(200));
  succeededThenVanished.reloadSucceeded();
  EXPECT_EQ(retryAfterLoadFailure(succeededThenVanished, std::nullopt), milliseconds(200));
}

epoll_echo_stats_t servingStats() {
  epoll_echo_stats_t stats;
  std::memset(&stats, 0, sizeof stats);
  stats.size = sizeof stats;
  stats.state = EPOLL_ECHO_STATE_RUNNING;
  stats.port = 8080;
  stats.listeners = 2;
  stats.total.accepted = 5;
  stats.total.active = 4;
  stats.total.closed = 1;
  stats.total.bytes_in = 100;
  stats.total.bytes_out = 90;
  stats.total.adopted = 3;
  return stats;
}

TEST(StatsAcrossReloadsTest, WithoutAReloadTheServingEngineSpeaksForItself) {
  const StatsAcrossReloads totals;
  const epoll_echo_stats_t serving = servingStats();
  const epoll_echo_stats_t combined = totals.combine(serving);
  EXPECT_EQ(std::memcmp(&combined, &serving, sizeof combined), 0);
  EXPECT_EQ(totals.reloads(), 0u);
}

TEST(StatsAcrossReloadsTest, AddsEveryReplacedEngineButKeepsTheServingEnginesActiveCount) {
  StatsAcrossReloads totals;
  epoll_echo_counters_t first{};
  first.accepted = 10;
  first.active = 7;  // handed over: the serving engine counts them now
  first.closed = 3;
  first.bytes_in = 1000;
  first.handed_over = 7;
  epoll_echo_counters_t second{};
  second.accepted = 1;
  second.bytes_out = 500;
  second.worker_failures = 1;
  totals.engineReplaced(first);
  totals.engineReplaced(second);

  const epoll_echo_stats_t combined = totals.combine(servingStats());
  EXPECT_EQ(totals.reloads(), 2u);
  EXPECT_EQ(combined.total.accepted, 16u);
  EXPECT_EQ(combined.total.active, 4u);
  EXPECT_EQ(combined.total.closed, 4u);
  EXPECT_EQ(combined.total.bytes_in, 1100u);
  EXPECT_EQ(combined.total.bytes_out, 590u);
  EXPECT_EQ(combined.total.handed_over, 7u);
  EXPECT_EQ(combined.total.adopted, 3u);
  EXPECT_EQ(combined.total.worker_failures, 1u);
  EXPECT_EQ(combined.state, EPOLL_ECHO_STATE_RUNNING);  // the rest is the serving engine's
  EXPECT_EQ(combined.port, 8080u);
  EXPECT_EQ(combined.listeners, 2u);
}

TEST(StatsAcrossReloadsTest, KeepsEachWorkersCountersAcrossReloads) {
  StatsAcrossReloads totals;
  std::vector<epoll_echo_counters_t> replaced(3);  // an engine with one worker more than the next
  for (std::size_t index = 0; index < replaced.size(); ++index) {
    replaced[index].accepted = 10 * (index + 1);
    replaced[index].active = 5;  // handed over: the serving engine counts them now
  }
  totals.workersReplaced(replaced);
  totals.workersReplaced(replaced);
  std::vector<epoll_echo_counters_t> serving(2);
  serving[0].accepted = 1;
  serving[0].active = 1;
  serving[1].active = 2;

  const std::vector<epoll_echo_counters_t> combined = totals.combineWorkers(serving);
  ASSERT_EQ(combined.size(), 3u);
  EXPECT_EQ(combined[0].accepted, 21u);
  EXPECT_EQ(combined[1].accepted, 40u);
  EXPECT_EQ(combined[2].accepted, 60u);
  EXPECT_EQ(combined[0].active, 1u);
  EXPECT_EQ(combined[1].active, 2u);
  EXPECT_EQ(combined[2].active, 0u);  // no such worker serves now
  EXPECT_EQ(StatsAcrossReloads().combineWorkers(serving).size(), 2u);
}

}  // namespace
TEST(StatsAcrossReloadsTest, ANewProcessContinuesWhatItsPredecessorCounted) {
  StatsAcrossReloads old;
  epoll_echo_counters_t replaced{};
  replaced.accepted = 10;
  replaced.active = 4;
  old.engineReplaced(replaced);
  old.workersReplaced({replaced});
  epoll_echo_counters_t serving{};
  serving.accepted = 5;
  serving.active = 9;  // handed over with the upgrade: the new process counts them again
  serving.bytes_in = 100;

  const CarriedStats carried = old.carry(serving, {serving, serving});
  EXPECT_EQ(carried.reloads, 1u);
  EXPECT_EQ(carried.total.accepted, 15u);
  EXPECT_EQ(carried.total.bytes_in, 100u);
  EXPECT_EQ(carried.total.active, 0u);
  ASSERT_EQ(carried.workers.size(), 2u);
  EXPECT_EQ(carried.workers[0].accepted, 15u);
  EXPECT_EQ(carried.workers[1].accepted, 5u);
  EXPECT_EQ(carried.workers[0].active, 0u);

  const StatsAcrossReloads next(carried);
  EXPECT_EQ(next.reloads(), 1u);
  const epoll_echo_stats_t combined = next.combine(servingStats());
  EXPECT_EQ(combined.total.accepted, 15u + servingStats().total.accepted);
  EXPECT_EQ(combined.total.active, servingStats().total.active);
  EXPECT_EQ(next.combineWorkers({epoll_echo_counters_t{}})[1].accepted, 5u);
}

}  // namespace epoll_echo::host
