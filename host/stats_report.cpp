// stats_report.cpp — stats line formats and the accept-error warning's rate limit. Plain string
// appends, no iostreams: the warning is built while the process may have no descriptor to spare.
#include "stats_report.h"

#include <utility>
#include <vector>

namespace epoll_echo::host {
namespace {

using Field = std::pair<const char*, uint64_t>;

// The counters a reader acts on, in the order both formats print them.
std::vector<Field> counterFields(const epoll_echo_counters_t& counters) {
  return {{"accepted", counters.accepted},
          {"active", counters.active},
          {"closed", counters.closed},
          {"bytes_in", counters.bytes_in},
          {"bytes_out", counters.bytes_out},
          {"backpressure_pauses", counters.backpressure_pauses},
          {"accept_errors", counters.accept_errors},
          {"accept_pauses", counters.accept_pauses},
          {"syscalls", counters.syscalls},
          {"wakeups", counters.wakeups}};
}

std::string formatText(const epoll_echo_stats_t& stats) {
  return std::string("stats state=") + stateName(stats.state) + " port=" + std::to_string(stats.port) +
         " listeners=" + std::to_string(stats.listeners) + ' ' + formatCounters(stats.total);
}

// Keys and the state name are fixed ASCII words: nothing here needs JSON escaping.
std::string formatJson(const epoll_echo_stats_t& stats) {
  std::string line = std::string(R"({"event":"stats","state":")") + stateName(stats.state) + R"(","port":)" +
                     std::to_string(stats.port) + R"(,"listeners":)" + std::to_string(stats.listeners);
  for (const auto& [name, value] : counterFields(stats.total)) {
    line += std::string(",\"") + name + "\":" + std::to_string(value);
  }
  return line + '}';
}

}  // namespace

const char* stateName(uint32_t state) {
  switch (state) {
    case EPOLL_ECHO_STATE_CREATED:
      return "created";
    case EPOLL_ECHO_STATE_RUNNING:
      return "running";
    case EPOLL_ECHO_STATE_STOPPED:
      return "stopped";
    case EPOLL_ECHO_STATE_PAUSED:
      return "paused";
    default:
      return "unknown";
  }
}

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
  if (format == StatsFormat::kText)
    return line + " build_id=" + buildId + " reloads=" + std::to_string(serving.reloads);
  line.pop_back();  // the closing brace
  return line + R"(,"build_id":")" + buildId + R"(","reloads":)" + std::to_string(serving.reloads) + '}';
}

void addCounters(epoll_echo_counters_t& totals, const epoll_echo_counters_t& finished) {
  totals.accepted += finished.accepted;
  totals.closed += finished.closed;
  totals.bytes_in += finished.bytes_in;
  totals.bytes_out += finished.bytes_out;
  totals.backpressure_pauses += finished.backpressure_pauses;
  totals.accept_errors += finished.accept_errors;
  totals.accept_pauses += finished.accept_pauses;
  totals.syscalls += finished.syscalls;
  totals.wakeups += finished.wakeups;
  totals.adopted += finished.adopted;
  totals.handed_over += finished.handed_over;
  totals.worker_failures += finished.worker_failures;
}

std::optional<std::string> AcceptErrorMonitor::observe(uint64_t acceptErrors, Clock::time_point now) {
  // Counters only grow; a smaller value would mean a new engine, whose errors all count.
  unreported_ += acceptErrors >= lastTotal_ ? acceptErrors - lastTotal_ : acceptErrors;
  lastTotal_ = acceptErrors;
  if (unreported_ == 0 || (lastWarning_ && now - *lastWarning_ < kMinimumGap)) return std::nullopt;
  const std::string warning = "warning: " + std::to_string(unreported_) + " failed accept" +
                              (unreported_ == 1 ? "" : "s") + (lastWarning_ ? " since the last warning" : "") +
                              " (accept_errors=" + std::to_string(acceptErrors) +
                              "): out of file descriptors (see ulimit -n) or failing to accept new connections";
  unreported_ = 0;
  lastWarning_ = now;
  return warning;
}

}  // namespace epoll_echo::host
