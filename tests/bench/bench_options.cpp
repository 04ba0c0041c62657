// bench_options.cpp — parses the load generator's flags; every value is range-checked so a run is
// always bounded (duration) and stays on the loopback interface.
#include "bench_options.h"

#include <arpa/inet.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace epoll_echo::bench {
namespace {

constexpr const char* kUsage =
    "usage: epoll-echo-bench --port PORT [options]\n"
    "  --host ADDRESS        loopback address of the server (default 127.0.0.1; ::1 allowed)\n"
    "  --mode echo|connect|idle  echo: long-lived connections; connect: connect, echo one message,\n"
    "                        close; idle: open N connections, echo one message on each, leave them\n"
    "                        idle and report the server's RSS growth per connection (--server-pid)\n"
    "  --connections N       echo, idle: connections (default 100); connect: concurrent attempts\n"
    "  --size BYTES          message size, 1..1048576 (default 64)\n"
    "  --depth N             messages in flight per connection, 1 = ping-pong (default 1)\n"
    "  --threads N           client threads, each with its own epoll (default 1)\n"
    "  --rate N              echo mode, open loop: N messages/s in total on a fixed schedule, spread\n"
    "                        evenly over the connections (at most --depth in flight each); latency\n"
    "                        counts from each message's intended send time (default: closed loop)\n"
    "  --warmup SECONDS      not measured (default 1)\n"
    "  --duration SECONDS    measured window, 0.1..3600 (default 5)\n"
    "  --server-pid PID      report this process's CPU time and RSS over the window\n"
    "  --label TEXT          copied into the JSON line\n"
    "  --timeline FILE       echo mode: for every millisecond of the run in which round trips\n"
    "                        completed, write a line: its wall-clock time (ms since the epoch) and\n"
    "                        the longest of them (us); shows when a server paused, and how long\n"
    "  --json                print only the JSON line\n";

[[noreturn]] void fail(const std::string& message) {
  std::fprintf(stderr, "epoll-echo-bench: %s; see --help\n", message.c_str());
  std::exit(2);
}

double parseNumber(const std::string& flag, const char* text, double low, double high) {
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || value < low || value > high) {
    char range[64];
    std::snprintf(range, sizeof range, "%g..%g", low, high);
    fail(flag + " " + text + " is not a number in " + range);
  }
  return value;
}

uint32_t parseCount(const std::string& flag, const char* text, uint32_t low, uint32_t high) {
  const double value = parseNumber(flag, text, low, high);
  if (value != static_cast<double>(static_cast<uint32_t>(value))) fail(flag + " needs a whole number");
  return static_cast<uint32_t>(value);
}

bool isLoopback(const std::string& host) {
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return ::inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

}  // namespace

BenchOptions parseOptions(int argc, char** argv) {
  BenchOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (flag == "--json") {
      options.jsonOnly = true;
      continue;
    }
    if (i + 1 >= argc) fail(flag + " needs a value");
    const char* value = argv[++i];
    if (flag == "--host")
      options.host = value;
    else if (flag == "--port")
      options.port = static_cast<uint16_t>(parseCount(flag, value, 1, 65535));
    else if (flag == "--mode") {
      if (std::strcmp(value, "echo") == 0)
        options.mode = Mode::Echo;
      else if (std::strcmp(value, "connect") == 0)
        options.mode = Mode::ConnectRate;
      else if (std::strcmp(value, "idle") == 0)
        options.mode = Mode::Idle;
      else
        fail("--mode must be echo, connect or idle");
    } else if (flag == "--connections")
      options.connections = parseCount(flag, value, 1, 100000);
    else if (flag == "--size")
      options.messageSize = parseCount(flag, value, 1, 1 << 20);
    else if (flag == "--depth")
      options.depth = parseCount(flag, value, 1, 1024);
    else if (flag == "--threads")
      options.threads = parseCount(flag, value, 1, 64);
    else if (flag == "--rate")
      options.rate = parseNumber(flag, value, 1, 1e8);
    else if (flag == "--warmup")
      options.warmupSeconds = parseNumber(flag, value, 0, 600);
    else if (flag == "--duration")
      options.durationSeconds = parseNumber(flag, value, 0.1, 3600);
    else if (flag == "--server-pid")
      options.serverPid = static_cast<pid_t>(parseCount(flag, value, 1, 1 << 30));
    else if (flag == "--label")
      options.label = value;
    else if (flag == "--timeline")
      options.timelinePath = value;
    else
      fail("unknown flag " + flag);
  }
  if (options.port == 0) fail("--port is required");
  if (!isLoopback(options.host)) fail("--host " + options.host + " is not a loopback address");
  if (options.mode == Mode::Idle && options.serverPid == 0) fail("--mode idle needs --server-pid");
  if (options.rate > 0 && options.mode != Mode::Echo) fail("--rate applies to --mode echo only");
  if (!options.timelinePath.empty() && options.mode != Mode::Echo) fail("--timeline applies to --mode echo only");
  if (options.threads > options.connections) options.threads = options.connections;
  return options;
}

}  // namespace epoll_echo::bench
