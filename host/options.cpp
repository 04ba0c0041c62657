// options.cpp — Boost.Program_options describes the flags; numbers are read as strings and checked
// here so that every refusal names the flag and its allowed range.
#include "options.h"

#include "epoll_echo.h"

#include <arpa/inet.h>
#include <sched.h>

#include <algorithm>
#include <charconv>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include <boost/program_options.hpp>

namespace epoll_echo::host {
namespace {

namespace po = boost::program_options;

// The allowed values of each checked flag, shared by --help and the error messages.
constexpr const char* kPortRange = "allowed 0-65535 (0 = any free port, chosen by the kernel)";
constexpr const char* kWorkersRange = "allowed 1-1024";
constexpr const char* kStatsIntervalRange = "allowed 0-86400 seconds (0 = off)";
constexpr const char* kStatsFormatRange = "allowed text or json";
constexpr const char* kBufferLimitRange = "allowed 0 (the engine's default) or 4096-4294967295 bytes";
constexpr const char* kBindRange = "allowed a numeric IPv4 or IPv6 address such as 127.0.0.1 or ::1";
constexpr const char* kMetricsListenRange =
    "allowed ADDRESS:PORT with a numeric IPv4 address or a bracketed IPv6 one and a port 0-65535, such as "
    "127.0.0.1:9100 or [::1]:9100";
constexpr const char* kMaxConnectionsRange = "allowed 0-4294967295 (0 = no cap)";
constexpr const char* kUpgradeTimeoutRange = "allowed 1-3600 seconds";
constexpr const char* kIdleTimeoutRange =
    "allowed 0 (off) or 0.001-4294967.295 seconds, to the millisecond (such as 0.5 or 300)";

constexpr const char* kBackendRange = "allowed epoll, io_uring or auto (io_uring where the kernel allows it)";
constexpr const char* kBalanceRange = "allowed kernel (the SO_REUSEPORT hash) or exact (even out the workers)";

struct UsageError {
  std::string message;
};

std::string rangeOf(const std::string& flag) {
  if (flag == "--port") return kPortRange;
  if (flag == "--maxListeners") return kWorkersRange;
  if (flag == "--stats-interval") return kStatsIntervalRange;
  if (flag == "--stats-format") return kStatsFormatRange;
  if (flag == "--bind") return kBindRange;
  if (flag == "--metrics-listen") return kMetricsListenRange;
  if (flag == "--high-water" || flag == "--read-budget") return kBufferLimitRange;
  if (flag == "--max-connections") return kMaxConnectionsRange;
  if (flag == "--idle-timeout") return kIdleTimeoutRange;
  if (flag == "--backend") return kBackendRange;
  if (flag == "--balance") return kBalanceRange;
  if (flag == "--upgrade-timeout") return kUpgradeTimeoutRange;
  return "";
}

std::string refusal(const std::string& flag, const std::string& problem) {
  std::string message = flag + " " + problem;
  const std::string range = rangeOf(flag);
  if (!range.empty()) message += ": " + range;
  return message + "; see --help";
}

// Strict decimal: digits only (no sign, space or suffix), so "-1", "8080x" and "" are refused.
uint32_t parseNumber(const std::string& flag, const std::string& text, uint32_t min, uint32_t max) {
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto isDigit = [](char c) { return c >= '0' && c <= '9'; };
  const bool negative = text.size() > 1 && text[0] == '-' && std::all_of(text.begin() + 1, text.end(), isDigit);
  if (negative) throw UsageError{refusal(flag, text + " is out of range")};
  if (text.empty() || !std::all_of(text.begin(), text.end(), isDigit)) {
    throw UsageError{refusal(flag, "'" + text + "' is not a number")};
  }
  const auto [next, error] = std::from_chars(text.data(), end, value);
  if (error != std::errc() || next != end || value < min || value > max) {
    throw UsageError{refusal(flag, text + " is out of range")};
  }
  return static_cast<uint32_t>(value);
}

// The plugin checks the address too, but a typo is a usage error: refuse it before loading.
std::string parseBindAddress(const std::string& text) {
  std::string bare = text;
  if (bare.size() >= 2 && bare.front() == '[' && bare.back() == ']') bare = bare.substr(1, bare.size() - 2);
  // An IPv6 zone ("fe80::1%eth0") names an interface: the plugin checks that it exists.
  const std::string address = bare.substr(0, bare.find('%'));
  unsigned char buffer[sizeof(in6_addr)];
  const bool numeric =
      address == bare ? inet_pton(AF_INET, bare.c_str(), buffer) == 1 || inet_pton(AF_INET6, bare.c_str(), buffer) == 1
                      : inet_pton(AF_INET6, address.c_str(), buffer) == 1;
  if (!numeric || text.size() > kMaxBindAddressLength) {
    throw UsageError{refusal("--bind", "'" + text + "' is not a numeric address")};
  }
  return text;
}

// Where the port of "ADDRESS:PORT" starts, minus one. A bracketed IPv6 address has colons of its
// own: its port follows "]:".
std::size_t portSeparator(const std::string& text) {
  if (text.empty() || text.front() != '[') return text.rfind(':');
  const std::size_t close = text.find("]:");
  return close == std::string::npos ? close : close + 1;
}

// "127.0.0.1:9100" or "[::1]:9100". An IPv6 zone is refused: the endpoint is for a scraper on
// this host or a routable address, not a link-local one.
MetricsAddress parseMetricsListen(const std::string& text) {
  const std::string flag = "--metrics-listen";
  const bool bracketed = !text.empty() && text.front() == '[';
  const std::size_t colon = portSeparator(text);
  if (colon == std::string::npos || colon + 1 == text.size()) {
    throw UsageError{refusal(flag, "'" + text + "' has no port")};
  }
  const std::string host = bracketed ? text.substr(1, colon - 2) : text.substr(0, colon);
  unsigned char buffer[sizeof(in6_addr)];
  const bool numeric = inet_pton(bracketed ? AF_INET6 : AF_INET, host.c_str(), buffer) == 1;
  if (!numeric) throw UsageError{refusal(flag, "'" + text + "' is not a numeric address and port")};
  return {host, static_cast<uint16_t>(parseNumber(flag, text.substr(colon + 1), 0, kMaxPort))};
}

uint32_t parseBufferLimit(const std::string& flag, const std::string& text) {
  const uint32_t value = parseNumber(flag, text, 0, UINT32_MAX);
  if (value != 0 && value < kMinBufferLimit) throw UsageError{refusal(flag, text + " is out of range")};
  return value;
}

// Seconds as plain decimal, "300", "0.5" or "1.25": digits, then at most three after a point
// (milliseconds, the engine's unit). No exponent, "inf" or "nan", which strtod would take.
uint32_t parseIdleTimeoutMs(const std::string& text) {
  const std::string flag = "--idle-timeout";
  const auto isDigit = [](char c) { return c >= '0' && c <= '9'; };
  const size_t point = text.find('.');
  const std::string whole = text.substr(0, point);
  const std::string fraction = point == std::string::npos ? "" : text.substr(point + 1);
  const bool digitsOnly =
      std::all_of(whole.begin(), whole.end(), isDigit) && std::all_of(fraction.begin(), fraction.end(), isDigit);
  const bool negative = !text.empty() && text[0] == '-' && text.size() > 1 && isDigit(text[1]);
  if (negative) throw UsageError{refusal(flag, text + " is out of range")};
  if (whole.empty() || !digitsOnly || (point != std::string::npos && fraction.empty())) {
    throw UsageError{refusal(flag, "'" + text + "' is not a number of seconds")};
  }
  if (fraction.size() > 3) throw UsageError{refusal(flag, text + " is finer than a millisecond")};
  // Ten digits of seconds already exceed the 32-bit milliseconds; more would overflow the sum.
  const uint64_t seconds = whole.size() <= 10 ? std::stoull(whole) : UINT64_MAX / 2000;
  const uint64_t milliseconds = seconds * 1000 + (fraction.empty() ? 0 : std::stoull((fraction + "00").substr(0, 3)));
  if (milliseconds > kMaxIdleTimeoutMs) throw UsageError{refusal(flag, text + " is out of range")};
  return static_cast<uint32_t>(milliseconds);
}

uint32_t parseBackend(const std::string& text) {
  if (text == "epoll") return EPOLL_ECHO_BACKEND_EPOLL;
  if (text == "io_uring") return EPOLL_ECHO_BACKEND_IO_URING;
  if (text == "auto") return EPOLL_ECHO_BACKEND_AUTO;
  throw UsageError{refusal("--backend", "'" + text + "' is not a backend")};
}

uint32_t parseBalance(const std::string& text) {
  if (text == "kernel") return EPOLL_ECHO_BALANCE_KERNEL;
  if (text == "exact") return EPOLL_ECHO_BALANCE_EXACT;
  throw UsageError{refusal("--balance", "'" + text + "' is not a balance")};
}

StatsFormat parseStatsFormat(const std::string& text) {
  if (text == "text") return StatsFormat::kText;
  if (text == "json") return StatsFormat::kJson;
  throw UsageError{refusal("--stats-format", "'" + text + "' is not a format")};
}

po::options_description describeOptions(uint32_t defaultWorkers) {
  po::options_description options("Options", 100, 50);
  const auto text = [](const char* name, const char* fallback) {
    return po::value<std::string>()->value_name(name)->default_value(fallback);
  };
  const std::string workers = std::to_string(defaultWorkers);
  options.add_options()("port", text("PORT", "8080"),
                        "TCP port to listen on, 0-65535; 0 = any free port (the log line says which)")(
      "maxListeners", po::value<std::string>()->value_name("N")->default_value(workers),
      "listening sockets and worker threads, 1-1024 (default: CPU count)")(
      "bind", po::value<std::string>()->value_name("ADDRESS"),
      "numeric IPv4 or IPv6 address to listen on (default: all interfaces)")(
      "plugin", po::value<std::string>()->value_name("PATH"),
      "engine plugin (default: libepoll_echo.so next to this program, then ../lib/epoll_echo/)")(
      "stats-interval", text("SECONDS", "0"), "print a stats line every SECONDS, 0-86400 (0 = off)")(
      "stats-format", text("FORMAT", "text"), "stats line format: text or json (one object per line)")(
      "high-water", text("BYTES", "0"),
      "most unsent bytes held for one connection, 0 or 4096-4294967295 (0 = the engine's default)")(
      "read-budget", text("BYTES", "0"),
      "bytes read from one connection per wake-up, 0 or 4096-4294967295 (0 = the engine's default)")(
      "metrics-listen", po::value<std::string>()->value_name("ADDRESS:PORT"),
      "serve Prometheus metrics at http://ADDRESS:PORT/metrics (IPv4, or [IPv6]:PORT; port 0 = any free port)")(
      "max-connections", text("N", "0"),
      "most connections open at once, over all listeners (0 = no cap); the rest wait in the accept queue")(
      "idle-timeout", text("SECONDS", "0"),
      "close a connection that sent and received nothing for SECONDS, fractions allowed (0 = never)")(
      "backend", text("NAME", "epoll"),
      "how the workers move bytes: epoll, io_uring (Linux 6.1+), or auto (io_uring where allowed, else epoll)")(
      "balance", text("MODE", "kernel"),
      "which worker serves a new connection: kernel (SO_REUSEPORT's hash) or exact (the one holding the fewest)")(
      "watch", "reload the plugin (hot-swap, no connection lost) when its file is replaced; SIGHUP reloads always")(
      "upgrade-timeout", text("SECONDS", "5"),
      "how long a new process started by SIGUSR2 may take to take over, 1-3600; then this one serves on")(
      "help,h", "print this help and exit")("version",
                                            "print the host version, the plugin's ABI version and build id, and exit");
  return options;
}

std::string helpText(const po::options_description& options) {
  std::ostringstream out;
  out << "Usage: epoll-server [options]\n"
      << "A TCP echo server: loads the libepoll_echo.so engine and runs it until SIGINT or SIGTERM.\n"
      << "SIGUSR1 prints a stats line; SIGHUP reloads the plugin (hot-swap, see --watch);\n"
      << "SIGUSR2 hands every socket and connection to a new process started from the same path.\n\n"
      << options;
  return out.str();
}

Options readOptions(const po::variables_map& values) {
  Options options;
  options.port = parseNumber("--port", values["port"].as<std::string>(), 0, kMaxPort);
  options.workers = parseNumber("--maxListeners", values["maxListeners"].as<std::string>(), 1, kMaxWorkers);
  options.statsIntervalSeconds =
      parseNumber("--stats-interval", values["stats-interval"].as<std::string>(), 0, kMaxStatsIntervalSeconds);
  options.statsFormat = parseStatsFormat(values["stats-format"].as<std::string>());
  options.highWaterBytes = parseBufferLimit("--high-water", values["high-water"].as<std::string>());
  options.readBudgetBytes = parseBufferLimit("--read-budget", values["read-budget"].as<std::string>());
  options.maxConnections = parseNumber("--max-connections", values["max-connections"].as<std::string>(), 0, UINT32_MAX);
  options.idleTimeoutMs = parseIdleTimeoutMs(values["idle-timeout"].as<std::string>());
  options.backend = parseBackend(values["backend"].as<std::string>());
  options.balance = parseBalance(values["balance"].as<std::string>());
  if (values.count("bind")) options.bindAddress = parseBindAddress(values["bind"].as<std::string>());
  options.watch = values.count("watch") > 0;
  options.upgradeTimeoutSeconds =
      parseNumber("--upgrade-timeout", values["upgrade-timeout"].as<std::string>(), 1, kMaxUpgradeTimeoutSeconds);
  if (values.count("metrics-listen"))
    options.metricsListen = parseMetricsListen(values["metrics-listen"].as<std::string>());
  if (values.count("plugin")) options.pluginPath = values["plugin"].as<std::string>();
  if (values.count("plugin") && options.pluginPath.empty()) throw UsageError{"--plugin needs a path; see --help"};
  return options;
}

// Boost's own messages ("the required argument for option '--port' is missing") name the flag;
// add its range so the user learns the fix from the one line.
std::string describeParseError(const po::error& error) {
  const auto* named = dynamic_cast<const po::error_with_option_name*>(&error);
  const std::string range = named ? rangeOf(named->get_option_name()) : "";
  return std::string(error.what()) + (range.empty() ? "" : ": " + range) + "; see --help";
}

// Boost gives a flag that needs a value the next word, even another flag: "--port --bind 127.0.0.1"
// would set the port to "--bind" and then call 127.0.0.1 a stray argument. Name the flag instead.
void refuseFlagTakenAsValue(const po::parsed_options& parsed, const po::options_description& options) {
  for (const po::option& option : parsed.options) {
    for (const std::string& value : option.value) {
      const std::string name = value.substr(std::min(value.find_first_not_of('-'), value.size()));
      if (value.size() > name.size() && !name.empty() && options.find_nothrow(name, /*approx=*/false)) {
        throw UsageError{refusal("--" + option.string_key, "needs a value, but is followed by the flag " + value)};
      }
    }
  }
}

po::variables_map parseArguments(int argc, const char* const argv[], const po::options_description& visible) {
  // Go's flag package, which the seed used, also accepts "-port 9000": allow_long_disguise keeps
  // those command lines working. Prefix guessing is off: "--p" must not silently mean --port.
  const int style = (po::command_line_style::default_style | po::command_line_style::allow_long_disguise) &
                    ~po::command_line_style::allow_guessing;
  // Stray words are collected into a hidden option so the refusal can quote the first one.
  po::options_description options;
  options.add(visible).add_options()("stray", po::value<std::vector<std::string>>());
  po::positional_options_description strays;
  strays.add("stray", -1);
  const po::parsed_options parsed =
      po::command_line_parser(argc, argv).options(options).positional(strays).style(style).run();
  refuseFlagTakenAsValue(parsed, options);
  po::variables_map values;
  po::store(parsed, values);
  if (values.count("stray")) {
    throw UsageError{"unexpected argument '" + values["stray"].as<std::vector<std::string>>().front() +
                     "': every setting is a flag such as --port 8080; see --help"};
  }
  po::notify(values);
  return values;
}

}  // namespace

CommandLine parseCommandLine(int argc, const char* const argv[], uint32_t cpuCount) {
  const po::options_description options = describeOptions(std::clamp<uint32_t>(cpuCount, 1, kMaxWorkers));
  CommandLine result;
  try {
    const po::variables_map values = parseArguments(argc, argv, options);
    if (values.count("help")) return {Action::kHelp, {}, helpText(options)};
    result.options = readOptions(values);
    if (values.count("version")) result.action = Action::kVersion;
  } catch (const po::error& error) {
    return {Action::kUsageError, {}, describeParseError(error)};
  } catch (const UsageError& error) {
    return {Action::kUsageError, {}, error.message};
  }
  return result;
}

uint32_t availableCpuCount() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
    return static_cast<uint32_t>(CPU_COUNT(&set));
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

const char* hostVersion() { return EPOLL_ECHO_HOST_VERSION; }

}  // namespace epoll_echo::host
