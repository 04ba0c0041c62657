// metrics_text.cpp — builds the /metrics body with plain string appends, family by family.
#include "metrics_text.h"

#include <cstring>

#include "counter_fields.h"
#include "stats_report.h"

namespace epoll_echo::host {
namespace {

constexpr const char* kPrefix = "epoll_echo_";

// Every state the header defines: the state gauge has one series for each, so a dashboard
// can tell "not running" from "no data".
#define EPOLL_ECHO_HOST_STATE(name, word) EPOLL_ECHO_STATE_##name,
constexpr uint32_t kStates[] = {EPOLL_ECHO_STATE_TABLE(EPOLL_ECHO_HOST_STATE)};
#undef EPOLL_ECHO_HOST_STATE

// What each counter means, for the HELP lines, and the metric name where the field's alone would
// not say what it counts. A counter missing here is still exported, under its field's name.
struct Description {
  const char* field;
  const char* metric;
  const char* help;  // one line, no backslash (the format would need escapes)
};
constexpr Description kDescriptions[] = {
    {"accepted", "accepted", "Connections accepted."},
    {"active", "active_connections", "Connections open now."},
    {"closed", "closed", "Connections closed."},
    {"bytes_in", "bytes_in", "Bytes read from clients."},
    {"bytes_out", "bytes_out", "Bytes written back to clients."},
    {"backpressure_pauses", "backpressure_pauses", "Times a connection stopped being read above its high-water mark."},
    {"accept_errors", "accept_errors", "Failed accept() calls, EMFILE and ENFILE included."},
    {"accept_pauses", "accept_pauses", "Times accepting paused because no file descriptor was available."},
    {"syscalls", "syscalls", "System calls made by the worker threads, epoll_wait included."},
    {"wakeups", "wakeups", "epoll_wait calls that returned events."},
    {"adopted", "adopted", "Connections taken over from a previous engine on a hot-swap."},
    {"handed_over", "handed_over", "Connections given to the next engine on a hot-swap."},
    {"worker_failures", "worker_failures", "Workers whose event loop stopped on an unexpected error."},
    {"accept_cap_pauses", "accept_cap_pauses", "Times accepting paused because the connection cap was reached."},
    {"idle_closed", "idle_closed", "Connections closed by the idle timeout."},
    {"recv_buffer_waits", "recv_buffer_waits",
     "io_uring: recvs that found every provided buffer taken and waited a loop pass; since the serving engine "
     "started."},
    {"completion_overflows", "completion_overflows",
     "io_uring: loop passes whose completions overflowed the completion queue; since the serving engine started."},
};

Description describe(const char* field) {
  for (const Description& description : kDescriptions) {
    if (std::strcmp(description.field, field) == 0) return description;
  }
  return {field, field, "The engine's counter of that name (epoll_echo_stats_t, docs/abi.md)."};
}

// A label value as the format wants it: backslash, double quote and newline escaped.
std::string escapeLabelValue(const std::string& value) {
  std::string escaped;
  for (const char c : value) {
    if (c == '\\' || c == '"') escaped += '\\';
    escaped += c == '\n' ? std::string("\\n") : std::string(1, c);
  }
  return escaped;
}

class Exposition {
 public:
  void family(const std::string& name, const char* type, const std::string& help) {
    text_ += "# HELP " + name + ' ' + help + "\n# TYPE " + name + ' ' + type + '\n';
  }
  void sample(const std::string& name, const std::string& labels, uint64_t value) {
    text_ += name + (labels.empty() ? "" : '{' + labels + '}') + ' ' + std::to_string(value) + '\n';
  }
  std::string take() { return std::move(text_); }

 private:
  std::string text_;
};

std::string abiVersionText(uint32_t packed) {
  return std::to_string(EPOLL_ECHO_ABI_MAJOR_OF(packed)) + '.' + std::to_string(EPOLL_ECHO_ABI_MINOR_OF(packed));
}

std::string workerLabel(std::size_t index) { return "worker=\"" + std::to_string(index) + '"'; }

// The engine total and the per-worker family of one field of a counters struct, given per worker.
template <class Counters>
void addCounterFamilies(Exposition& out, const std::vector<Counters>& workers, uint64_t Counters::*member,
                        const std::string& name, const char* type, const std::string& help) {
  uint64_t total = 0;
  for (const Counters& worker : workers) total += worker.*member;
  out.family(kPrefix + name, type, help + " Engine total: the sum of the worker series.");
  out.sample(kPrefix + name, "", total);
  const std::string workerName = std::string(kPrefix) + "worker_" + name;
  out.family(workerName, type, help + " Per worker.");
  for (std::size_t index = 0; index < workers.size(); ++index) {
    out.sample(workerName, workerLabel(index), workers[index].*member);
  }
}

// Every field of one counter table, as counters or gauges.
template <class Counters, std::size_t N>
void addTableFamilies(Exposition& out, const std::vector<Counters>& workers,
                      const CounterFieldOf<Counters> (&fields)[N]) {
  for (const CounterFieldOf<Counters>& field : fields) {
    const Description description = describe(field.name);
    const bool gauge = field.kind == EPOLL_ECHO_METRIC_GAUGE;
    const std::string name = std::string(description.metric) + (gauge ? "" : "_total");
    addCounterFamilies(out, workers, field.member, name, gauge ? "gauge" : "counter", description.help);
  }
}

void addEngineFamilies(Exposition& out, const MetricsSnapshot& snapshot) {
  out.family(std::string(kPrefix) + "state", "gauge", "The serving engine's state: 1 for the current one.");
  for (const uint32_t state : kStates) {
    out.sample(std::string(kPrefix) + "state", std::string("state=\"") + stateName(state) + '"',
               state == snapshot.state ? 1 : 0);
  }
  out.family(std::string(kPrefix) + "listeners", "gauge", "Worker threads, each with its own listening socket.");
  out.sample(std::string(kPrefix) + "listeners", "", snapshot.listeners);
  out.family(std::string(kPrefix) + "reloads_total", "counter", "Successful hot-swaps (SIGHUP or --watch).");
  out.sample(std::string(kPrefix) + "reloads_total", "", snapshot.reloads);
  out.family(std::string(kPrefix) + "build_info", "gauge", "The serving plugin: build id, version and C ABI version.");
  out.sample(std::string(kPrefix) + "build_info",
             "build_id=\"" + escapeLabelValue(snapshot.buildId) + "\",version=\"" +
                 escapeLabelValue(snapshot.pluginVersion) + "\",abi_version=\"" + abiVersionText(snapshot.abiVersion) +
                 '"',
             1);
}

}  // namespace

std::string formatMetrics(const MetricsSnapshot& snapshot) {
  Exposition out;
  addTableFamilies(out, snapshot.workers, kCounterFields);
  addTableFamilies(out, snapshot.uringWorkers, kUringCounterFields);
  addEngineFamilies(out, snapshot);
  return out.take();
}

}  // namespace epoll_echo::host
