// stress_server.cpp — StressServer: spawning, /proc readings and SIGUSR1 stats parsing. Every
// wait polls the child's output with a deadline; nothing sleeps.
#include "stress/stress_server.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace epoll_echo::test {
namespace {

constexpr auto kStartTimeout = std::chrono::seconds(10);
constexpr char kStartText[] = "listening on 127.0.0.1:";

// EPOLL_ECHO_STRESS_PLUGIN runs the suite against another build of the plugin (to try a fix).
std::vector<std::string> serverArguments(std::uint32_t listeners, const std::vector<std::string>& extraArguments) {
  std::vector<std::string> arguments{
      "--port", "0", "--bind", "127.0.0.1", "--maxListeners", std::to_string(listeners), "--stats-format", "json"};
  arguments.insert(arguments.end(), extraArguments.begin(), extraArguments.end());
  if (const char* plugin = std::getenv("EPOLL_ECHO_STRESS_PLUGIN"); plugin != nullptr && *plugin != '\0') {
    arguments.insert(arguments.end(), {"--plugin", plugin});
  }
  return arguments;
}

// The unsigned number after "\"name\":" in a json line, or nullopt.
std::optional<std::uint64_t> jsonNumber(const std::string& line, const std::string& name) {
  const std::string key = "\"" + name + "\":";
  const std::size_t at = line.find(key);
  if (at == std::string::npos) return std::nullopt;
  return std::strtoull(line.c_str() + at + key.size(), nullptr, 10);
}

std::size_t countStatsLines(const std::string& out) {
  std::size_t count = 0;
  for (std::size_t at = out.find("\"event\":\"stats\""); at != std::string::npos;
       at = out.find("\"event\":\"stats\"", at + 1)) {
    ++count;
  }
  return count;
}

}  // namespace

StressServer::StressServer(std::uint32_t listeners, const std::vector<std::string>& extraArguments)
    : process_(EPOLL_ECHO_SERVER_PATH, serverArguments(listeners, extraArguments)) {
  if (!process_.waitForStderr(", plugin ", deadlineIn(kStartTimeout))) {
    error_ = "no start line from epoll-server; stderr: " + process_.capturedStderr();
    return;
  }
  const std::string& err = process_.capturedStderr();
  const std::size_t at = err.find(kStartText);
  if (at == std::string::npos) {
    error_ = "unexpected start line: " + err;
    return;
  }
  port_ = static_cast<std::uint16_t>(std::strtoul(err.c_str() + at + sizeof kStartText - 1, nullptr, 10));
  if (port_ == 0) error_ = "no port in the start line: " + err;
}

// smaps_rollup, not VmRSS from status: since Linux 6.2 status may read the per-CPU RSS counters
// without summing them, off by up to 32 pages per CPU; smaps_rollup counts the mapped pages.
long StressServer::rssKib() const {
  std::ifstream rollup("/proc/" + std::to_string(pid()) + "/smaps_rollup");
  std::string line;
  while (std::getline(rollup, line)) {
    if (line.rfind("Rss:", 0) == 0) return std::strtol(line.c_str() + 4, nullptr, 10);
  }
  return -1;
}

double StressServer::cpuSeconds() const {
  std::ifstream stat("/proc/" + std::to_string(pid()) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // The command name may hold spaces: fields are counted after its closing parenthesis.
  const std::size_t close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  unsigned long long userTicks = 0, systemTicks = 0;
  for (int number = 3; number <= 15 && fields >> field; ++number) {
    if (number == 14) userTicks = std::strtoull(field.c_str(), nullptr, 10);
    if (number == 15) systemTicks = std::strtoull(field.c_str(), nullptr, 10);
  }
  return static_cast<double>(userTicks + systemTicks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

int StressServer::openFds() const { return countDirectoryEntries("/proc/" + std::to_string(pid()) + "/fd"); }

std::optional<ServerStats> StressServer::stats(Deadline deadline) {
  const std::size_t before = countStatsLines(process_.capturedStdout());
  if (!process_.sendSignal(SIGUSR1)) return std::nullopt;
  const bool printed = process_.waitUntil(
      [&] {
        const std::string& out = process_.capturedStdout();
        return countStatsLines(out) > before && out.back() == '\n';
      },
      deadline);
  if (!printed) return std::nullopt;
  const std::string& out = process_.capturedStdout();
  const std::size_t start = out.rfind("{\"event\":\"stats\"");
  const std::string line = out.substr(start, out.find('\n', start) - start);
  ServerStats stats;
  stats.accepted = jsonNumber(line, "accepted").value_or(0);
  stats.active = jsonNumber(line, "active").value_or(0);
  stats.closed = jsonNumber(line, "closed").value_or(0);
  stats.bytesIn = jsonNumber(line, "bytes_in").value_or(0);
  stats.bytesOut = jsonNumber(line, "bytes_out").value_or(0);
  stats.backpressurePauses = jsonNumber(line, "backpressure_pauses").value_or(0);
  stats.acceptErrors = jsonNumber(line, "accept_errors").value_or(0);
  stats.acceptPauses = jsonNumber(line, "accept_pauses").value_or(0);
  return stats;
}

std::string StressServer::waitForQuiet(std::uint64_t active, int fds, Deadline deadline) {
  std::string seen = "no stats";
  for (int round = 0; round < 10000; ++round) {
    const auto snapshot = stats(deadline);
    const int open = openFds();
    if (snapshot) {
      seen = "active=" + std::to_string(snapshot->active) + " fds=" + std::to_string(open);
      if (snapshot->active == active && (fds < 0 || open == fds)) return "";
    }
    if (Clock::now() >= deadline) break;
    // Pace the polling without sleeping blind: wait for output (none expected) up to 20 ms.
    process_.waitUntil([] { return false; }, std::min(deadline, deadlineIn(std::chrono::milliseconds(20))));
  }
  return "server did not settle: " + seen + " (wanted active=" + std::to_string(active) +
         (fds >= 0 ? " fds=" + std::to_string(fds) : "") + ")";
}

std::size_t StressServer::stderrLines() const {
  const std::string& err = process_.capturedStderr();
  return static_cast<std::size_t>(std::count(err.begin(), err.end(), '\n'));
}

bool StressServer::setFdLimit(std::uint64_t soft, std::string* error) {
  rlimit current{};
  if (::prlimit(pid(), RLIMIT_NOFILE, nullptr, &current) != 0) {
    if (error) *error = std::string("prlimit get: ") + std::strerror(errno);
    return false;
  }
  rlimit wanted{static_cast<rlim_t>(soft), current.rlim_max};
  if (::prlimit(pid(), RLIMIT_NOFILE, &wanted, nullptr) != 0) {
    if (error) *error = std::string("prlimit set: ") + std::strerror(errno);
    return false;
  }
  return true;
}

std::string StressServer::stop(Deadline deadline) {
  if (!process_.sendSignal(SIGTERM)) return "server already gone";
  const auto status = process_.waitForExit(deadline);
  if (!status) return "server did not stop on SIGTERM";
  if (!status->succeeded()) return "server ended with " + status->describe() + "; stderr: " + process_.capturedStderr();
  return "";
}

std::string fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

void reportFigures(const std::string& line, const std::vector<std::pair<std::string, double>>& figures) {
  std::printf("[ figures  ] %s\n", line.c_str());
  std::fflush(stdout);
  for (const auto& [name, value] : figures) {
    char text[64];
    std::snprintf(text, sizeof text, "%.3f", value);
    ::testing::Test::RecordProperty(name, text);
  }
}

}  // namespace epoll_echo::test
