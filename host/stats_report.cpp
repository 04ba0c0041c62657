// stats_report.cpp — stats line formats and the accept warnings' rate limit. Plain string
// appends, no iostreams: the warning is built while the process may have no descriptor to spare.
#include "stats_report.h"

#include <utility>
#include <vector>

namespace epoll_echo::host {
namespace {

using Field = std::pair<const char*, uint64_t>;

// The counters the stats line is documented with: those of ABI 1.0 and, from 1.3 on, each one an
// operator watches there (accept_cap_pauses, idle_closed). Those of 1.1 and 1.2 (adopted,
// handed_over, worker_failures) are reported by the reload and failure log lines instead.
constexpr bool onStatsLine(uint32_t minor) { return minor == 0 || minor >= 3; }

// The fields of the stats line, in table order.
std::vector<Field> counterFields(const epoll_echo_counters_t& counters) {
  std::vector<Field> fields;
#define EPOLL_ECHO_STATS_FIELD(field, kind, minor) \
  if (onStatsLine(minor)) fields.emplace_back(#field, counters.field);
  EPOLL_ECHO_COUNTER_TABLE(EPOLL_ECHO_STATS_FIELD)
#undef EPOLL_ECHO_STATS_FIELD
  return fields;
}

// The stats line's counters: those above, then every io_uring counter (zero under epoll).
std::vector<Field> statsLineFields(const epoll_echo_stats_t& stats) {
  std::vector<Field> fields = counterFields(stats.total);
#define EPOLL_ECHO_URING_FIELD(field, kind, minor) fields.emplace_back(#field, stats.uring.field);
  EPOLL_ECHO_URING_COUNTER_TABLE(EPOLL_ECHO_URING_FIELD)
#undef EPOLL_ECHO_URING_FIELD
  return fields;
}

std::string formatText(const epoll_echo_stats_t& stats) {
  std::string line = std::string("stats state=") + stateName(stats.state) + " port=" + std::to_string(stats.port) +
                     " listeners=" + std::to_string(stats.listeners);
  for (const auto& [name, value] : statsLineFields(stats))
    line += ' ' + std::string(name) + '=' + std::to_string(value);
  return line;
}

// Keys and the state name are fixed ASCII words: nothing here needs JSON escaping.
std::string formatJson(const epoll_echo_stats_t& stats) {
  std::string line = std::string(R"({"event":"stats","state":")") + stateName(stats.state) + R"(","port":)" +
                     std::to_string(stats.port) + R"(,"listeners":)" + std::to_string(stats.listeners);
  for (const auto& [name, value] : statsLineFields(stats)) {
    line += std::string(",\"") + name + "\":" + std::to_string(value);
  }
  return line + '}';
}

// "3,4,2": the text line's list, and JSON's between brackets.
std::string countList(const std::vector<uint64_t>& counts) {
  std::string list;
  for (const uint64_t count : counts) list += (list.empty() ? "" : ",") + std::to_string(count);
  return list;
}

}  // namespace

std::string countOf(uint64_t count, const std::string& noun) {
  return std::to_string(count) + " " + noun + (count == 1 ? "" : "s");
}

std::string formatCounters(const epoll_echo_counters_t& counters) {
  std::string line;
  for (const auto& [name, value] : counterFields(counters)) {
    line += (line.empty() ? "" : " ") + std::string(name) + '=' + std::to_string(value);
  }
  return line;
}

std::string formatStats(const epoll_echo_stats_t& stats, StatsFormat format) {
  return format == StatsFormat::kJson ? formatJson(stats) : formatText(stats);
}

std::string formatStats(const epoll_echo_stats_t& stats, StatsFormat format, const ServingInfo& serving) {
  std::string buildId = serving.buildId;
  for (char& c : buildId) {
    const bool plain =
        (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '_' || c == '-';
    if (!plain) c = '?';
  }
  std::string line = formatStats(stats, format);
  const bool perWorker = !serving.activePerWorker.empty();
  if (format == StatsFormat::kText) {
    line += " build_id=" + buildId + " reloads=" + std::to_string(serving.reloads);
    return perWorker ? line + " active_per_worker=" + countList(serving.activePerWorker) : line;
  }
  line.pop_back();  // the closing brace
  line += R"(,"build_id":")" + buildId + R"(","reloads":)" + std::to_string(serving.reloads);
  if (perWorker) line += R"(,"active_per_worker":[)" + countList(serving.activePerWorker) + ']';
  return line + '}';
}

void addCounters(epoll_echo_counters_t& totals, const epoll_echo_counters_t& finished) {
#define EPOLL_ECHO_ADD_TOTAL(field, kind, minor) \
  if (EPOLL_ECHO_METRIC_##kind == EPOLL_ECHO_METRIC_COUNTER) totals.field += finished.field;
  EPOLL_ECHO_COUNTER_TABLE(EPOLL_ECHO_ADD_TOTAL)
#undef EPOLL_ECHO_ADD_TOTAL
}

std::optional<uint64_t> GrowthWarning::observe(uint64_t total, Clock::time_point now) {
  // Counters only grow; a smaller value would mean a new engine, whose counts all are new.
  unreported_ += total >= lastTotal_ ? total - lastTotal_ : total;
  lastTotal_ = total;
  if (unreported_ == 0 || (lastWarning_ && now - *lastWarning_ < kMinimumGap)) return std::nullopt;
  const uint64_t growth = unreported_;
  warnedBefore_ = lastWarning_.has_value();
  unreported_ = 0;
  lastWarning_ = now;
  return growth;
}

std::optional<std::string> AcceptErrorMonitor::observe(uint64_t acceptErrors, Clock::time_point now) {
  const std::optional<uint64_t> errors = growth_.observe(acceptErrors, now);
  if (!errors) return std::nullopt;
  return "warning: " + std::to_string(*errors) + " failed accept" + (*errors == 1 ? "" : "s") +
         (growth_.warnedBefore() ? " since the last warning" : "") + " (accept_errors=" + std::to_string(acceptErrors) +
         "): out of file descriptors (see ulimit -n) or failing to accept new connections";
}

std::optional<std::string> ConnectionCapMonitor::observe(uint64_t acceptCapPauses, Clock::time_point now) {
  const std::optional<uint64_t> pauses = growth_.observe(acceptCapPauses, now);
  if (!pauses) return std::nullopt;
  return "warning: the connection cap (--max-connections " + std::to_string(cap_) + ") was reached " +
         countOf(*pauses, "time") + (growth_.warnedBefore() ? " since the last warning" : "") +
         " (accept_cap_pauses=" + std::to_string(acceptCapPauses) +
         "): new clients wait in the accept queue until a connection closes";
}

}  // namespace epoll_echo::host
