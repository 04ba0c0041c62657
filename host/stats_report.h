// stats_report.h — turns an epoll_echo_stats_t snapshot into the host's stats line (text or JSON)
// and watches accept_errors and accept_cap_pauses for the rate-limited warnings. No I/O.
#pragma once

#include <epoll_echo.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "options.h"
#include "state_name.h"

namespace epoll_echo::host {

// "running" for EPOLL_ECHO_STATE_RUNNING, and so on (shared with the plugin, from the state table).
using epoll_echo::stateName;

// One line without a trailing newline:
//   text: stats state=running port=8080 listeners=4 accepted=12 active=3 ... completion_overflows=0
//   json: {"event":"stats","state":"running","port":8080,...,"completion_overflows":0}
std::string formatStats(const epoll_echo_stats_t& stats, StatsFormat format);

// Which build serves, how many hot-swaps succeeded since start, and the connections open on each
// worker of the serving engine (in worker order; the kernel's SO_REUSEPORT hash spreads them):
// the stats line's last fields.
struct ServingInfo {
  std::string buildId;
  uint64_t reloads = 0;
  std::vector<uint64_t> activePerWorker;  // empty: the field is left out
};

// formatStats() plus " build_id=... reloads=N active_per_worker=A,B,..." (text) or
// ,"build_id":"...","reloads":N,"active_per_worker":[A,B,...] (json).
// Characters outside [0-9A-Za-z._-] in the build id become '?': nothing needs escaping.
std::string formatStats(const epoll_echo_stats_t& stats, StatsFormat format, const ServingInfo& serving);

// Adds the counters of a finished engine to `totals`, except `active`, which is not a total: the
// host keeps the sums of engines it replaced so that stats continue across reloads.
void addCounters(epoll_echo_counters_t& totals, const epoll_echo_counters_t& finished);

// The counters only, "accepted=12 active=3 ...", for the stop log line.
std::string formatCounters(const epoll_echo_counters_t& counters);

// "1 listener", "4 listeners": a count and a regular English noun, for the log lines.
std::string countOf(uint64_t count, const std::string& noun);

// Decides when to warn that a counter grew: fed the counter's running total every monitoring tick,
// it allows a warning at most once per kMinimumGap, and the next one counts everything since the
// previous one, so nothing goes unreported. One thread only.
class GrowthWarning {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds kMinimumGap{10};

  // Returns the growth to warn about now, if a warning is due.
  std::optional<uint64_t> observe(uint64_t total, Clock::time_point now);
  // Whether a warning came before the one observe() just allowed: "since the last warning".
  bool warnedBefore() const { return warnedBefore_; }

 private:
  uint64_t lastTotal_ = 0;
  uint64_t unreported_ = 0;
  bool warnedBefore_ = false;
  std::optional<Clock::time_point> lastWarning_;
};

// Warns that accepts fail (usually EMFILE: out of file descriptors), as GrowthWarning allows.
class AcceptErrorMonitor {
 public:
  using Clock = GrowthWarning::Clock;
  // Returns the warning to print now, if any. `acceptErrors` is the engine's running total.
  std::optional<std::string> observe(uint64_t acceptErrors, Clock::time_point now);

 private:
  GrowthWarning growth_;
};

// Warns that the engine held --max-connections and left clients waiting, as GrowthWarning allows.
class ConnectionCapMonitor {
 public:
  using Clock = GrowthWarning::Clock;
  explicit ConnectionCapMonitor(uint32_t cap) : cap_(cap) {}
  // Returns the warning to print now, if any. `acceptCapPauses` is the engine's running total.
  std::optional<std::string> observe(uint64_t acceptCapPauses, Clock::time_point now);

 private:
  uint32_t cap_;
  GrowthWarning growth_;
};

}  // namespace epoll_echo::host
