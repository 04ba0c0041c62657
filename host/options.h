// options.h — the command line of epoll-server: the seed server's flags (--port, --maxListeners)
// plus the host's own, parsed and range-checked before anything starts. No side effects.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace epoll_echo::host {

// Process exit codes; docs/epoll-server.md lists them. A forced exit (second SIGINT/SIGTERM while
// stopping) uses the shell convention 128 + signal number instead.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the plugin could not be loaded, created, started or stopped
inline constexpr int kExitUsage = 2;    // a bad flag; nothing was started

inline constexpr uint32_t kDefaultPort = 8080;
inline constexpr uint32_t kMaxPort = 65535;
// The plugin refuses more than 1024 workers (one listening socket each); refusing them here gives
// the flag's name instead.
inline constexpr uint32_t kMaxWorkers = 1024;
inline constexpr uint32_t kMaxStatsIntervalSeconds = 86400;
inline constexpr uint32_t kMaxUpgradeTimeoutSeconds = 3600;
inline constexpr std::size_t kMaxBindAddressLength = 63;  // epoll_echo_config_t.bind_address[64]
// The engine refuses buffer limits below 4 KiB (each message would take several system calls).
inline constexpr uint32_t kMinBufferLimit = 4096;
// epoll_echo_config_t.idle_timeout_ms is 32-bit: about 49.7 days.
inline constexpr uint32_t kMaxIdleTimeoutMs = UINT32_MAX;

enum class StatsFormat { kText, kJson };

// Where --metrics-listen serves the Prometheus endpoint: a numeric address and a port.
struct MetricsAddress {
  std::string host;   // numeric IPv4 ("127.0.0.1") or IPv6 without brackets ("::1")
  uint16_t port = 0;  // 0 = the kernel picks a free port (logged on start)
};

struct Options {
  uint32_t port = kDefaultPort;  // 0 = the kernel picks a free port (logged on start)
  // --maxListeners (the flag keeps its original name): worker threads, each with its own listening socket.
  uint32_t workers = 1;               // 1..kMaxWorkers; defaults to the CPU count
  std::string bindAddress;            // numeric IPv4/IPv6 address; empty = all interfaces
  std::string pluginPath;             // empty = look next to the executable (see plugin_library.h)
  uint32_t statsIntervalSeconds = 0;  // 0 = no periodic stats line
  StatsFormat statsFormat = StatsFormat::kText;
  uint32_t highWaterBytes = 0;         // per-connection unsent-byte limit; 0 = the engine's default
  uint32_t readBudgetBytes = 0;        // bytes read per connection per wake-up; 0 = the engine's default
  uint32_t maxConnections = 0;         // connections open at once over all workers; 0 = no cap
  uint32_t idleTimeoutMs = 0;          // close a connection that moved no byte for this long; 0 = never
  uint32_t backend = 0;                // --backend: EPOLL_ECHO_BACKEND_* (0 = epoll)
  uint32_t balance = 0;                // --balance: EPOLL_ECHO_BALANCE_* (0 = kernel)
  bool watch = false;                  // reload the plugin when its file is replaced (inotify), see docs/hot-swap.md
  uint32_t upgradeTimeoutSeconds = 5;  // SIGUSR2: the new process's time to take over, see docs/hot-swap.md
  std::optional<MetricsAddress> metricsListen;  // serve GET /metrics there; none = no endpoint
};

// What main() should do after parsing.
enum class Action { kRun, kHelp, kVersion, kUsageError };

struct CommandLine {
  Action action = Action::kRun;
  Options options;
  std::string message;  // kHelp: the help text; kUsageError: one line naming the flag and its range
};

// Parses argv. `cpuCount` is the --maxListeners default (clamped to 1..kMaxWorkers). Never
// throws for bad input: errors come back as kUsageError.
CommandLine parseCommandLine(int argc, const char* const argv[], uint32_t cpuCount);

// The number of CPUs this process may run on (its affinity mask), as Go's runtime.NumCPU().
uint32_t availableCpuCount();

// "1.0.0": the host's own version, from the CMake project version.
const char* hostVersion();

}  // namespace epoll_echo::host
