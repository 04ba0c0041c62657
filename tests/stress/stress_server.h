// stress_server.h — the built epoll-server as a child under torture: started on 127.0.0.1 with a
// kernel-chosen port, observed from outside through /proc/PID (RSS, CPU time, fds) and SIGUSR1 stats.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "support/net.h"
#include "support/process.h"

namespace epoll_echo::test {

// The counters of one SIGUSR1 json stats line.
struct ServerStats {
  std::uint64_t accepted = 0;
  std::uint64_t active = 0;
  std::uint64_t closed = 0;
  std::uint64_t bytesIn = 0;
  std::uint64_t bytesOut = 0;
  std::uint64_t backpressurePauses = 0;
  std::uint64_t acceptErrors = 0;
  std::uint64_t acceptPauses = 0;
};

// One epoll-server child (killed and reaped by ChildProcess's destructor). Use from one thread.
class StressServer {
 public:
  // Spawns `epoll-server --port 0 --bind 127.0.0.1 --maxListeners N --stats-format json` plus
  // `extraArguments` and waits for its start line; started() is false and error() says why if it
  // did not come.
  explicit StressServer(std::uint32_t listeners, const std::vector<std::string>& extraArguments = {});

  bool started() const { return port_ != 0; }
  const std::string& error() const { return error_; }
  std::uint16_t port() const { return port_; }
  pid_t pid() const { return process_.pid(); }
  ChildProcess& process() { return process_; }

  // Figures read from /proc/PID: resident set (Rss of smaps_rollup, KiB), user+system CPU
  // seconds, open fds.
  // -1 when the process is gone.
  long rssKib() const;
  double cpuSeconds() const;
  int openFds() const;

  // Sends SIGUSR1 and parses the json line it prints; nullopt if none came before the deadline.
  std::optional<ServerStats> stats(Deadline deadline);

  // Polls stats() until `active` connections remain (and, when given, the fd count is `fds`).
  // Returns "" or what was last seen.
  std::string waitForQuiet(std::uint64_t active, int fds, Deadline deadline);

  // Lines the server wrote to stderr so far (the start line included).
  std::size_t stderrLines() const;

  // Lowers or raises the child's RLIMIT_NOFILE soft limit with prlimit(2).
  bool setFdLimit(std::uint64_t soft, std::string* error);

  // SIGTERM, then waits for exit 0; "" or why not.
  std::string stop(Deadline deadline);

 private:
  ChildProcess process_;
  std::uint16_t port_ = 0;
  std::string error_;
};

// `value` with `decimals` digits after the point, for the human-readable figures line.
std::string fixed(double value, int decimals = 2);

// Prints "[ figures  ] <line>" on stdout and records each (name, value) pair as a test property.
void reportFigures(const std::string& line, const std::vector<std::pair<std::string, double>>& figures);

}  // namespace epoll_echo::test
