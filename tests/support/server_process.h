// server_process.h — one epoll-server under test: started as a child process with arguments and
// environment, its start line parsed into address, port and listener count, log lines awaited with
// a deadline (counting repeats), and a clean stop checked (signal, exit 0). Whatever the test does,
// the ChildProcess inside kills and reaps the server, so no process outlives a test.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "support/process.h"

namespace epoll_echo::test {

// How many times `needle` occurs in `text` (overlapping occurrences counted).
std::size_t countOccurrences(const std::string& text, const std::string& needle);

// What epoll-server's start line says:
// "epoll-server: listening on ADDRESS:PORT (N listener[s], ...)\n".
struct StartLine {
  std::string address;  // "127.0.0.1", "[::1]" or "*"
  uint16_t port = 0;
  int listeners = 0;
};

// The first start line in `log` once it is complete (newline included); nullopt before that or
// when it does not read as above (so a changed format fails the test instead of passing it).
std::optional<StartLine> parseStartLine(const std::string& log);

// How a server is run: by default the built epoll-server itself.
struct ServerCommand {
  std::string program = EPOLL_ECHO_SERVER_PATH;
  std::vector<std::string> programArguments;  // before the server's flags: a wrapper's own, then the server
  std::vector<std::string> environment;       // "NAME=value" entries added to the test's environment
};

// The server's flags for a test: bound to 127.0.0.1 on a port the kernel chooses, then `flags`.
std::vector<std::string> loopbackFlags(const std::vector<std::string>& flags);

// One server run. start() or spawn() once; the other calls need a spawned server. Not copyable;
// use from the test's thread.
class ServerProcess {
 public:
  ServerProcess() = default;
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Spawns the server with `flags` (see loopbackFlags) and waits for its start line, within
  // kServerTimeout. On failure says why with the server's stderr.
  ::testing::AssertionResult start(const std::vector<std::string>& flags, const ServerCommand& command = {});
  // Spawns it without waiting for anything: for runs expected to fail, or whose start line comes
  // later (waitForStart()).
  void spawn(const std::vector<std::string>& flags, const ServerCommand& command = {});
  // Waits within kServerTimeout for the start line and keeps what it says (startLine()).
  ::testing::AssertionResult waitForStart();

  bool started() const { return child_.has_value(); }  // spawned, whether or not it still runs
  const StartLine& startLine() const { return startLine_; }
  uint16_t port() const { return startLine_.port; }
  int listeners() const { return startLine_.listeners; }
  pid_t pid() const { return child().pid(); }
  ChildProcess& child() { return *child_; }
  const ChildProcess& child() const { return *child_; }
  const std::string& log() const { return child().capturedStderr(); }  // the server logs on stderr
  bool sendSignal(int signal) const { return child().sendSignal(signal); }

  // Waits within kServerTimeout until `text` appears `count` times in the log (a reload's line,
  // the n-th since start); on failure says how often it did, with the log.
  ::testing::AssertionResult waitForLog(const std::string& text, std::size_t count = 1);

  // Sends `signal`, then waitForCleanExit().
  ::testing::AssertionResult stop(int signal = SIGTERM);
  // Waits within kServerTimeout for the exit; success when the server exited 0.
  ::testing::AssertionResult waitForCleanExit();

 private:
  std::optional<ChildProcess> child_;
  StartLine startLine_;
};

}  // namespace epoll_echo::test
