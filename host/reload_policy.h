// reload_policy.h — the rules of hot-swapping a running server, apart from the signals, timers
// and reloads that carry them out (server.h): when a watched plugin file is reloaded, how often a
// file that does not load is tried again, and the counters that survive a reload.
#pragma once

#include <epoll_echo.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "file_signature.h"

namespace epoll_echo::host {

// Why a reload failed, as far as trying the same path again is concerned.
enum class ReloadFailure {
  kNotLoadable,  // the file could not be copied, checked or loaded: it may still be being written
  kRefused,      // anything else (an old ABI, a failed hand-over or start): the same file fails again
};

// The --watch schedule. The caller owns the one-shot timer: it arms it with the delays returned
// here, runs a watched reload when it fires, and reports the outcome back. No clock is read: every
// decision depends only on the events reported, so the rules can be tested without waiting.
// Main thread only.
class WatchedReloadPolicy {
 public:
  // A build writes the file in several steps (or several files in a row): reload once it is quiet.
  static constexpr std::chrono::milliseconds kDebounce{200};
  // A file that does not load may still be being written: retry after 200, 400, 800 ms, then give
  // up until it changes again (a file that keeps changing restarts the count).
  static constexpr std::chrono::milliseconds kFirstRetryDelay{200};
  static constexpr int kMaxLoadAttempts = 4;

  struct Retry {
    std::chrono::milliseconds delay;  // arm the timer with this
    int attempt;                      // the attempt that just failed, 1..kMaxLoadAttempts - 1
  };

  // The watched file changed. Arm the timer with the returned delay, replacing any pending expiry:
  // each change pushes the reload back until the writes are quiet. Starts the count afresh.
  std::chrono::milliseconds fileChanged();
  // A reload on request (SIGHUP) is about to run; it covers any pending watched one (disarm the
  // timer) and starts the count afresh.
  void reloadRequested();
  // The watched reload succeeded.
  void reloadSucceeded();
  // The watched reload failed; `file` is the plugin file as it is now (nullopt: gone). Returns when
  // to try again, or nullopt: give up and report the rejection.
  std::optional<Retry> reloadFailed(ReloadFailure failure, const std::optional<FileSignature>& file);

 private:
  int failedLoads_ = 0;                      // consecutive watched reloads whose file would not load
  std::optional<FileSignature> failedFile_;  // the file as it was at the last failed reload
};

// The counters a process hands to the one that replaces it (an upgrade, upgrade.h): every engine's
// totals so far, the same per worker index, and the reload count. `active` is zero throughout: the
// connections themselves are counted again by the engine that adopts them.
struct CarriedStats {
  uint64_t reloads = 0;
  epoll_echo_counters_t total{};
  std::vector<epoll_echo_counters_t> workers;
};

// Stats that continue across reloads: the counters of every replaced engine are kept and added to
// the serving engine's. Not thread-safe: one thread changes it, and a reader on another thread
// (the metrics endpoint) takes a lock the writer holds while changing it (server.h).
class StatsAcrossReloads {
 public:
  StatsAcrossReloads() = default;
  // Continues what a predecessor process counted.
  explicit StatsAcrossReloads(const CarriedStats& carried);

  // The serving engine was replaced; `last` is its final snapshot's totals.
  void engineReplaced(const epoll_echo_counters_t& last);
  // The serving engine's snapshot with the replaced engines' counters added to its totals. Only
  // `active` stays the serving engine's own: a replaced engine's connections were handed over.
  epoll_echo_stats_t combine(epoll_echo_stats_t serving) const;
  uint64_t reloads() const { return reloads_; }
  // Everything counted so far, the serving engine's final counters (`serving`, `servingWorkers`)
  // included: what an upgrade hands to the next process.
  CarriedStats carry(const epoll_echo_counters_t& serving,
                     const std::vector<epoll_echo_counters_t>& servingWorkers) const;

  // The same per worker index, for the metrics: `last` holds each worker's final counters (call it
  // with engineReplaced()); combineWorkers() adds them to the serving engine's workers. Workers a
  // replaced engine had beyond the serving one's count stay in the result, with active = 0.
  void workersReplaced(const std::vector<epoll_echo_counters_t>& last);
  std::vector<epoll_echo_counters_t> combineWorkers(const std::vector<epoll_echo_counters_t>& serving) const;

 private:
  epoll_echo_counters_t replaced_{};                    // totals of the engines replaced so far
  std::vector<epoll_echo_counters_t> replacedWorkers_;  // the same per worker index
  uint64_t reloads_ = 0;
};

}  // namespace epoll_echo::host
