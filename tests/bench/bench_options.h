// bench_options.h — command-line options of the load generator (epoll-echo-bench) and their parser.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace epoll_echo::bench {

enum class Mode { Echo, ConnectRate, Idle };

// Everything one run needs; defaults give a 100-connection 64-byte ping-pong for 5 s.
struct BenchOptions {
  std::string host = "127.0.0.1";  // loopback only: 127.0.0.0/8 or ::1
  uint16_t port = 0;
  Mode mode = Mode::Echo;
  uint32_t connections = 100;  // echo, idle: open connections; connect mode: connections in progress at once
  uint32_t messageSize = 64;
  uint32_t depth = 1;  // messages in flight per connection (1 = ping-pong)
  uint32_t threads = 1;
  double rate = 0;  // echo mode: 0 = closed loop; else open loop, messages/s in total on a fixed schedule
  double warmupSeconds = 1.0;
  double durationSeconds = 5.0;
  pid_t serverPid = 0;  // 0: no server CPU/RSS figures
  std::string label;    // copied into the JSON line
  // Echo mode: the longest round trip of every millisecond, written here ("" = none).
  std::string timelinePath;
  bool jsonOnly = false;
};

// Parses argv; on --help prints usage and exits 0, on a bad flag prints one line and exits 2.
BenchOptions parseOptions(int argc, char** argv);

}  // namespace epoll_echo::bench
