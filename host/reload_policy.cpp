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

void StatsAcrossReloads::engineReplaced(const epoll_echo_counters_t& last) {
  addCounters(replaced_, last);
  ++reloads_;
}

epoll_echo_stats_t StatsAcrossReloads::combine(epoll_echo_stats_t serving) const {
  epoll_echo_counters_t total = replaced_;
  addCounters(total, serving.total);
  total.active = serving.total.active;
  serving.total = total;
  return serving;
}

}  // namespace epoll_echo::host
