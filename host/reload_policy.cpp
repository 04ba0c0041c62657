// reload_policy.cpp — the debounce and retry schedule of --watch, and the totals kept across reloads.
#include "reload_policy.h"

#include "stats_report.h"

namespace epoll_echo::host {

std::chrono::milliseconds WatchedReloadPolicy::fileChanged() {
  failedLoads_ = 0;
  return kDebounce;
}

void WatchedReloadPolicy::reloadRequested() { failedLoads_ = 0; }

void WatchedReloadPolicy::reloadSucceeded() {
  failedLoads_ = 0;
  failedFile_.reset();
}

std::optional<WatchedReloadPolicy::Retry> WatchedReloadPolicy::reloadFailed(ReloadFailure failure,
                                                                            const std::optional<FileSignature>& file) {
  if (file != failedFile_) failedLoads_ = 0;  // still changing: not final yet
  failedFile_ = file;
  if (failure == ReloadFailure::kNotLoadable && ++failedLoads_ < kMaxLoadAttempts) {
    return Retry{kFirstRetryDelay * (1 << (failedLoads_ - 1)), failedLoads_};
  }
  failedLoads_ = 0;
  return std::nullopt;
}

StatsAcrossReloads::StatsAcrossReloads(const CarriedStats& carried)
    : replaced_(carried.total), replacedWorkers_(carried.workers), reloads_(carried.reloads) {
  replaced_.active = 0;
  for (epoll_echo_counters_t& worker : replacedWorkers_) worker.active = 0;
}

CarriedStats StatsAcrossReloads::carry(const epoll_echo_counters_t& serving,
                                       const std::vector<epoll_echo_counters_t>& servingWorkers) const {
  StatsAcrossReloads all = *this;
  addCounters(all.replaced_, serving);
  all.workersReplaced(servingWorkers);
  CarriedStats carried{reloads_, all.replaced_, all.replacedWorkers_};
  carried.total.active = 0;
  for (epoll_echo_counters_t& worker : carried.workers) worker.active = 0;
  return carried;
}

void StatsAcrossReloads::engineReplaced(const epoll_echo_counters_t& last) {
  addCounters(replaced_, last);
  ++reloads_;
}

void StatsAcrossReloads::workersReplaced(const std::vector<epoll_echo_counters_t>& last) {
  if (replacedWorkers_.size() < last.size()) replacedWorkers_.resize(last.size());
  for (std::size_t index = 0; index < last.size(); ++index) addCounters(replacedWorkers_[index], last[index]);
}

std::vector<epoll_echo_counters_t> StatsAcrossReloads::combineWorkers(
    const std::vector<epoll_echo_counters_t>& serving) const {
  std::vector<epoll_echo_counters_t> workers = replacedWorkers_;
  if (workers.size() < serving.size()) workers.resize(serving.size());
  for (std::size_t index = 0; index < serving.size(); ++index) {
    addCounters(workers[index], serving[index]);
    workers[index].active = serving[index].active;
  }
  return workers;
}

epoll_echo_stats_t StatsAcrossReloads::combine(epoll_echo_stats_t serving) const {
  epoll_echo_counters_t total = replaced_;
  addCounters(total, serving.total);
  total.active = serving.total.active;
  serving.total = total;
  return serving;
}

}  // namespace epoll_echo::host
