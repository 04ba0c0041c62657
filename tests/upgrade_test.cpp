// upgrade_test.cpp — end-to-end tests of epoll-server's process upgrade (SIGUSR2): a copy of the
// built server runs from a private directory, new builds are renamed into place as a build writes
// them, and every upgrade must keep every connection, byte and pending echo; a successor that
// cannot take over must leave the old process serving. This process is a child subreaper, so the
// successors (orphaned when the process that started them exits) are ours to reap.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/expect_echo.h"
#include "support/net.h"
#include "support/notify_socket.h"
#include "support/ping_pong.h"
#include "support/prometheus_text.h"
#include "support/server_process.h"
#include "support/temporary_directory.h"
#include "support/timeouts.h"
#include "upgrade_channel.h"

namespace epoll_echo::test {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kLoadConnections = 16;
constexpr const char* kUpgraded = "epoll-server: upgraded: pid ";
constexpr const char* kUpgradeFailed = "epoll-server: upgrade to ";
constexpr const char* kMetricsLine = "epoll-server: metrics on http://127.0.0.1:";

// The pid in the n-th (1-based) "upgraded: pid N serves now" line of `log`, or -1.
pid_t successorPid(const std::string& log, std::size_t n) {
  std::size_t at = std::string::npos;
  for (std::size_t seen = 0; seen < n; ++seen) {
    at = log.find(kUpgraded, at == std::string::npos ? 0 : at + 1);
    if (at == std::string::npos) return -1;
  }
  return static_cast<pid_t>(std::stol(log.substr(at + std::strlen(kUpgraded))));
}

// Waits for `pid`, a child of this process, to end and reaps it; nullopt at the deadline.
std::optional<ExitStatus> waitForChild(pid_t pid, Deadline deadline) {
  const UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  for (;;) {
    int status = 0;
    const pid_t reaped = ::waitpid(pid, &status, WNOHANG);
    if (reaped == pid) {
      ExitStatus result;
      result.exited = WIFEXITED(status);
      result.code = result.exited ? WEXITSTATUS(status) : 0;
      result.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
      return result;
    }
    if (reaped < 0 || !pidfd || Clock::now() >= deadline) return std::nullopt;
    pollfd ready{pidfd.get(), POLLIN, 0};
    ::poll(&ready, 1, millisecondsLeft(deadline));
  }
}

// The children of process `pid` (its main thread's, where the server spawns), as listed by /proc.
std::string childrenOf(pid_t pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::string children;
  std::getline(file, children);
  return children;
}

// Every child of this process, from each of its threads' /proc children list.
std::vector<pid_t> childrenOfThisProcess() {
  std::vector<pid_t> children;
  for (const auto& task : fs::directory_iterator("/proc/self/task")) {
    std::ifstream file(task.path() / "children");
    for (pid_t pid; file >> pid;) children.push_back(pid);
  }
  return children;
}

// The port of the n-th (1-based) "metrics on" line of `log`, or 0.
uint16_t metricsPort(const std::string& log, std::size_t n) {
  std::size_t at = std::string::npos;
  for (std::size_t seen = 0; seen < n; ++seen) {
    at = log.find(kMetricsLine, at == std::string::npos ? 0 : at + 1);
    if (at == std::string::npos) return 0;
  }
  return static_cast<uint16_t>(std::stoul(log.substr(at + std::strlen(kMetricsLine))));
}

// GET /metrics with Connection: close, parsed; nullopt with *error set if anything is off
// (refused, no answer before the deadline, not 200, not valid Prometheus text).
std::optional<PrometheusText> scrape(uint16_t port, std::string* error) {
  const Deadline deadline = deadlineIn(kIoTimeout);
  const UniqueFd socket = connectLoopback(port, deadline, error);
  if (!socket) return std::nullopt;
  if (!sendAll(socket.get(), "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", deadline,
               error)) {
    return std::nullopt;
  }
  std::string raw;
  char buffer[16384];
  for (;;) {
    pollfd readable{socket.get(), POLLIN, 0};
    if (::poll(&readable, 1, millisecondsLeft(deadline)) <= 0) {
      *error = "no complete answer before the deadline: " + raw;
      return std::nullopt;
    }
    const ssize_t got = ::recv(socket.get(), buffer, sizeof buffer, 0);
    if (got == 0) break;
    if (got < 0) {
      *error = std::string("recv: ") + std::strerror(errno) + " after: " + raw;
      return std::nullopt;
    }
    raw.append(buffer, static_cast<std::size_t>(got));
  }
  const std::size_t body = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 200 ", 0) != 0 || body == std::string::npos) {
    *error = "not a 200 answer: " + raw.substr(0, 200);
    return std::nullopt;
  }
  return parsePrometheusText(raw.substr(body + 4), error);
}

double acceptedTotal(uint16_t port) {
  std::string error;
  const std::optional<PrometheusText> text = scrape(port, &error);
  EXPECT_TRUE(text) << error;
  return text ? text->value("epoll_echo_accepted_total").value_or(-1) : -1;
}

ino_t inodeOf(const std::string& path) {
  struct stat status {};
  return ::stat(path.c_str(), &status) == 0 ? status.st_ino : 0;
}

class UpgradeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0) << std::strerror(errno); }

  UpgradeTest() : directory_("epoll-echo-upgrade"), program_((directory_.path() / "epoll-server").string()) {
    installBuild();
  }

  // Whatever the test did: the first server killed, then every process reparented to this one
  // (a successor the test never learned of, say after a failed assertion) killed and reaped.
  ~UpgradeTest() override {
    for (pid_t pid : successors_) ::kill(pid, SIGKILL);
    if (server_.started()) {
      server_.sendSignal(SIGKILL);
      server_.child().waitForExit(deadlineIn(kServerTimeout));
    }
    for (pid_t pid : childrenOfThisProcess()) {
      ::kill(pid, SIGKILL);
      waitForChild(pid, deadlineIn(kServerTimeout));
    }
  }

  // Puts a copy of the built server at program_ as a build leaves it: a new inode, renamed over.
  void installBuild() { installFile(EPOLL_ECHO_SERVER_PATH); }
  void installFile(const fs::path& source) {
    const fs::path staging = directory_.path() / "staging.tmp";
    fs::copy_file(source, staging, fs::copy_options::overwrite_existing);
    fs::permissions(staging, fs::perms::owner_all);
    fs::rename(staging, program_);
  }
  void installScript(const std::string& text) {
    const fs::path staging = directory_.path() / "script.tmp";
    std::ofstream(staging) << text;
    fs::permissions(staging, fs::perms::owner_all);
    fs::rename(staging, program_);
  }

  void startServer(const std::vector<std::string>& flags, const std::vector<std::string>& environment = {}) {
    std::vector<std::string> all = {"--maxListeners", "2"};
    if (std::find(flags.begin(), flags.end(), "--plugin") == flags.end()) {
      all.insert(all.end(), {"--plugin", EPOLL_ECHO_PLUGIN_PATH});
    }
    // A successor that works must never be given up for slowness on a busy machine.
    if (std::find(flags.begin(), flags.end(), "--upgrade-timeout") == flags.end()) {
      all.insert(all.end(), {"--upgrade-timeout", std::to_string(kServerTimeout.count())});
    }
    all.insert(all.end(), flags.begin(), flags.end());
    ServerCommand command;
    command.program = program_;
    command.environment = environment;
    ASSERT_TRUE(server_.start(loopbackFlags(all), command));
    serving_ = server_.pid();
  }

  // SIGUSR2 to the serving process, then its n-th "upgraded" line (n since the start) and the
  // old process's clean exit; the successor serves from then on.
  void upgrade(std::size_t n) {
    ASSERT_EQ(::kill(serving_, SIGUSR2), 0);
    ASSERT_TRUE(server_.waitForLog(kUpgraded, n));
    const pid_t successor = successorPid(server_.log(), n);
    ASSERT_GT(successor, 0) << server_.log();
    successors_.push_back(successor);
    ASSERT_NO_FATAL_FAILURE(expectCleanExit(serving_));
    serving_ = successor;
  }

  // The first process is the test's child; a successor became one when its parent exited.
  void expectCleanExit(pid_t pid) {
    if (pid == server_.pid()) {
      ASSERT_TRUE(server_.waitForCleanExit());
      return;
    }
    const std::optional<ExitStatus> status = waitForChild(pid, deadlineIn(kServerTimeout));
    ASSERT_TRUE(status) << "pid " << pid << " did not exit\n" << server_.log();
    EXPECT_TRUE(status->succeeded()) << "pid " << pid << ": " << status->describe() << "\n" << server_.log();
    successors_.erase(std::remove(successors_.begin(), successors_.end(), pid), successors_.end());
  }

  void stopServing() {
    ASSERT_EQ(::kill(serving_, SIGTERM), 0);
    ASSERT_NO_FATAL_FAILURE(expectCleanExit(serving_));
  }

  // The pid a started successor wrote to `path` (renamed into place whole), or -1 at the deadline.
  pid_t waitForPidFile(const std::string& path) {
    pid_t pid = -1;
    const Deadline deadline = deadlineIn(kServerTimeout);
    while (pid < 0 && Clock::now() < deadline) {
      std::ifstream file(path);
      if (!(file >> pid)) pid = -1;
      if (pid < 0) server_.child().waitUntil([] { return false; }, deadlineIn(std::chrono::milliseconds(10)));
    }
    return pid;
  }

  TemporaryDirectory directory_;
  std::string program_;
  ServerProcess server_;
  pid_t serving_ = -1;
  std::vector<pid_t> successors_;  // started by upgrades and not reaped yet
};

TEST_F(UpgradeTest, SuccessiveUpgradesToNewBuildsUnderLoadLoseNothing) {
  ASSERT_NO_FATAL_FAILURE(startServer({}));
  PingPongLoad load(server_.port(), kLoadConnections);
  ASSERT_TRUE(load.waitForProgress(kLoadConnections, deadlineIn(kIoTimeout))) << load.error();
  constexpr std::size_t kUpgrades = 3;
  for (std::size_t n = 1; n <= kUpgrades; ++n) {
    installBuild();
    const ino_t installed = inodeOf(program_);
    ASSERT_NO_FATAL_FAILURE(upgrade(n));
    // The successor runs the file that is at the path now, not the inode its predecessor ran.
    EXPECT_EQ(inodeOf("/proc/" + std::to_string(serving_) + "/exe"), installed);
    ASSERT_TRUE(load.waitForProgress(kLoadConnections, deadlineIn(kIoTimeout))) << load.error();
  }
  EXPECT_EQ(countOccurrences(server_.log(), "took over 2 listeners and 16 connections"), kUpgrades) << server_.log();
  // The stats continue: the first process accepted every connection, the last one adopted them.
  ASSERT_EQ(::kill(serving_, SIGUSR1), 0);
  EXPECT_TRUE(server_.child().waitForStdout("accepted=16 active=16 ", deadlineIn(kIoTimeout)))
      << server_.child().capturedStdout();
  load.stop();
  EXPECT_EQ(load.error(), "");
  ASSERT_NO_FATAL_FAILURE(stopServing());
}

// With no connection to send ahead, the listeners still go ahead, and only then: each successor
// takes the same listeners, not twice as many as its predecessor.
TEST_F(UpgradeTest, UpgradesOfAnIdleServerKeepTheListenerCount) {
  ASSERT_NO_FATAL_FAILURE(startServer({}));
  constexpr std::size_t kUpgrades = 2;
  for (std::size_t n = 1; n <= kUpgrades; ++n) ASSERT_NO_FATAL_FAILURE(upgrade(n));
  EXPECT_EQ(countOccurrences(server_.log(), "took over 2 listeners and 0 connections"), kUpgrades) << server_.log();
  UniqueFd client = connectLoopback(server_.port(), deadlineIn(kIoTimeout));
  ASSERT_TRUE(client);
  expectEcho(client.get(), "served after idle upgrades");
  ASSERT_NO_FATAL_FAILURE(stopServing());
}

TEST_F(UpgradeTest, BytesTheServerHasNotEchoedYetAreDeliveredByTheSuccessor) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--high-water", "65536"}));
  UniqueFd client = connectLoopback(server_.port(), deadlineIn(kIoTimeout));
  ASSERT_TRUE(client);
  ASSERT_TRUE(setNonBlocking(client.get(), true));
  // A client that sends without reading, until the server holds echo it cannot send and stops
  // reading (a backpressure pause in the stats line SIGUSR1 prints).
  constexpr std::size_t kMaxBytes = 64 << 20;
  const std::vector<unsigned char> bytes = randomBytes(kMaxBytes, 16);
  std::size_t sent = 0;
  bool pausedReading = false;
  const Deadline deadline = deadlineIn(kBulkTimeout);
  for (std::size_t asked = 1; !pausedReading && sent < kMaxBytes && Clock::now() < deadline; ++asked) {
    for (ssize_t wrote = 1; wrote > 0 && sent<kMaxBytes; sent += wrote> 0 ? static_cast<std::size_t>(wrote) : 0) {
      wrote = ::send(client.get(), bytes.data() + sent, std::min<std::size_t>(kMaxBytes - sent, 65536), MSG_NOSIGNAL);
      ASSERT_TRUE(wrote > 0 || errno == EAGAIN) << std::strerror(errno);
    }
    ASSERT_EQ(::kill(serving_, SIGUSR1), 0);
    ASSERT_TRUE(server_.child().waitUntil(
        [&] { return countOccurrences(server_.child().capturedStdout(), "\n") >= asked; }, deadline))
        << "stats line " << asked << " missing after " << sent << " bytes sent:\n"
        << server_.child().capturedStdout() << server_.log();
    const std::string& stats = server_.child().capturedStdout();
    const std::string last = stats.substr(stats.rfind('\n', stats.size() - 2) + 1);
    pausedReading = last.find(" backpressure_pauses=0 ") == std::string::npos;
  }
  ASSERT_TRUE(pausedReading) << server_.child().capturedStdout();
  ASSERT_NO_FATAL_FAILURE(upgrade(1));
  EXPECT_EQ(server_.log().find("(0 pending bytes)"), std::string::npos) << server_.log();
  std::vector<unsigned char> echoed(sent);
  std::string error;
  ASSERT_TRUE(receiveExactly(client.get(), echoed.data(), echoed.size(), deadlineIn(kBulkTimeout), &error)) << error;
  EXPECT_TRUE(std::equal(echoed.begin(), echoed.end(), bytes.begin())) << "the echo differs from what was sent";
  ASSERT_NO_FATAL_FAILURE(stopServing());
}

TEST_F(UpgradeTest, SuccessorsThatCannotTakeOverLeaveTheOldProcessServing) {
  // Long enough for the good build at the end to start in a sanitizer build; the hanging one
  // costs that long.
  ASSERT_NO_FATAL_FAILURE(startServer({"--upgrade-timeout", kSanitizedBuild ? "10" : "2"}));
  PingPongLoad load(server_.port(), kLoadConnections);
  ASSERT_TRUE(load.waitForProgress(kLoadConnections, deadlineIn(kIoTimeout))) << load.error();
  const std::string truncated = (directory_.path() / "truncated").string();
  fs::copy_file(EPOLL_ECHO_SERVER_PATH, truncated);
  fs::resize_file(truncated, 32 * 1024);  // the headers, without the code they map
  const std::vector<std::pair<std::string, std::function<void()>>> successors = {
      {"a missing file", [&] { fs::remove(program_); }},
      {"a truncated build", [&] { installFile(truncated); }},
      {"a text file", [&] { installScript("this is not a program\n"); }},
      {"a program that exits at once", [&] { installScript("#!/bin/sh\nexit 3\n"); }},
      {"a program that hangs", [&] { installScript("#!/bin/sh\nexec sleep 600\n"); }},
  };
  std::size_t failures = 0;
  for (const auto& [what, install] : successors) {
    SCOPED_TRACE(what);
    install();
    ASSERT_EQ(::kill(serving_, SIGUSR2), 0);
    ASSERT_TRUE(server_.waitForLog(kUpgradeFailed, ++failures));
    EXPECT_EQ(childrenOf(serving_), "") << "a failed successor was not reaped";
    ASSERT_TRUE(load.waitForProgress(kLoadConnections, deadlineIn(kIoTimeout))) << load.error();
    expectEchoOnNewConnection(server_.port(), "still serving");
  }
  EXPECT_EQ(countOccurrences(server_.log(), "; pid " + std::to_string(serving_) + " serves on"), successors.size())
      << server_.log();
  // How the one that exited ended, although it closed the channel before it could be reaped.
  EXPECT_EQ(countOccurrences(server_.log(), "(it exited with code 3)"), 1u) << server_.log();
  EXPECT_EQ(countOccurrences(server_.log(), kUpgraded), 0u) << server_.log();
  load.stop();
  EXPECT_EQ(load.error(), "");
  installBuild();
  ASSERT_NO_FATAL_FAILURE(upgrade(1));  // and a good build still takes over afterwards
  ASSERT_NO_FATAL_FAILURE(stopServing());
}

// The pause starts only once the new process has loaded its plugin and created its engine: a
// successor still starting (here: one that never gets that far) costs the clients nothing.
TEST_F(UpgradeTest, TheOldProcessServesOnUntilTheSuccessorIsPrepared) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--upgrade-timeout", "60"}));
  PingPongLoad load(server_.port(), kLoadConnections);
  ASSERT_TRUE(load.waitForProgress(kLoadConnections, deadlineIn(kIoTimeout))) << load.error();
  const std::string pidFile = (directory_.path() / "successor.pid").string();
  installScript("#!/bin/sh\necho $$ > " + pidFile + ".tmp && mv " + pidFile + ".tmp " + pidFile + "\nexec sleep 600\n");
  ASSERT_EQ(::kill(serving_, SIGUSR2), 0);
  const pid_t starting = waitForPidFile(pidFile);
  ASSERT_GT(starting, 0) << "the successor never started";
  ASSERT_TRUE(load.waitForProgress(kLoadConnections, deadlineIn(kIoTimeout))) << load.error();
  expectEchoOnNewConnection(server_.port(), "while the successor starts");
  EXPECT_EQ(countOccurrences(server_.log(), kUpgradeFailed), 0u) << server_.log();
  ASSERT_EQ(::kill(starting, SIGKILL), 0);
  ASSERT_TRUE(server_.waitForLog(kUpgradeFailed));
  EXPECT_NE(server_.log().find("closed the channel"), std::string::npos) << server_.log();
  EXPECT_EQ(countOccurrences(server_.log(), "; pid " + std::to_string(serving_) + " serves on"), 1u) << server_.log();
  ASSERT_TRUE(load.waitForProgress(kLoadConnections, deadlineIn(kIoTimeout))) << load.error();
  load.stop();
  EXPECT_EQ(load.error(), "");
  ASSERT_NO_FATAL_FAILURE(stopServing());
}

// Failures after "prepared", once the old engine has paused (or is about to): it resumes, and
// no connection, byte or pending echo is lost.
TEST_F(UpgradeTest, ASuccessorThatFailsAfterItIsPreparedLeavesTheOldProcessServing) {
  // Long enough for the good build at the end to prepare in a sanitizer build; the hanging one
  // costs that long.
  ASSERT_NO_FATAL_FAILURE(startServer({"--upgrade-timeout", kSanitizedBuild ? "10" : "2"}));
  PingPongLoad load(server_.port(), kLoadConnections);
  ASSERT_TRUE(load.waitForProgress(kLoadConnections, deadlineIn(kIoTimeout))) << load.error();
  const std::vector<std::pair<std::string, std::string>> failures = {
      {"exit", "closed the channel"},
      {"refuse", "the new process gave up: refused by the test"},
      {"exit-paused", "closed the channel"},
      {"refuse-paused", "the new process gave up: refused in the pause by the test"},
      {"hang", "upgrade: timed out waiting for the other process"},
  };
  std::size_t seen = 0;
  for (const auto& [mode, reason] : failures) {
    SCOPED_TRACE(mode);
    installScript(std::string("#!/bin/sh\nexec ") + UPGRADE_FAILING_SUCCESSOR + " " + mode + "\n");
    ASSERT_EQ(::kill(serving_, SIGUSR2), 0);
    ASSERT_TRUE(server_.waitForLog(kUpgradeFailed, ++seen));
    EXPECT_NE(server_.log().find(reason), std::string::npos) << server_.log();
    EXPECT_EQ(childrenOf(serving_), "") << "a failed successor was not reaped";
    ASSERT_TRUE(load.waitForProgress(kLoadConnections, deadlineIn(kIoTimeout))) << load.error();
  }
  EXPECT_EQ(countOccurrences(server_.log(), "; pid " + std::to_string(serving_) + " serves on"), failures.size())
      << server_.log();
  load.stop();
  EXPECT_EQ(load.error(), "");
  installBuild();
  ASSERT_NO_FATAL_FAILURE(upgrade(1));
  ASSERT_NO_FATAL_FAILURE(stopServing());
}

// The old process matches its connections in the pause with the copies sent ahead by descriptor
// number only when its engine took no connection since the copy. Here one closes and a new one
// is accepted in between (given the closed one's number, the lowest free): matched by socket,
// that is one closed and one new, never the new one taken for the closed one.
TEST_F(UpgradeTest, AConnectionAcceptedBetweenTheCopyAndThePauseIsNotTakenForAClosedOne) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--upgrade-timeout", "60"}));
  std::string error;
  UniqueFd closing = connectLoopback(server_.port(), deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(closing) << error;
  expectEcho(closing.get(), "copied ahead, then closed");
  UniqueFd kept = connectLoopback(server_.port(), deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(kept) << error;
  expectEcho(kept.get(), "copied ahead");
  const std::string gate = (directory_.path() / "gate").string();
  installScript(std::string("#!/bin/sh\nexec ") + UPGRADE_FAILING_SUCCESSOR + " report-changes " + gate + "\n");
  ASSERT_EQ(::kill(serving_, SIGUSR2), 0);
  const Deadline aheadDeadline = deadlineIn(kServerTimeout);
  while (!fs::exists(gate + ".ahead") && Clock::now() < aheadDeadline) ::poll(nullptr, 0, 5);
  ASSERT_TRUE(fs::exists(gate + ".ahead")) << "the successor never received the state sent ahead";
  // The old process waits for the successor now; only its engine opens and closes descriptors.
  const std::string descriptors = "/proc/" + std::to_string(serving_) + "/fd";
  const int held = countDirectoryEntries(descriptors);
  closing.reset();
  const auto heldNow = [&](int expected) {
    const Deadline deadline = deadlineIn(kIoTimeout);
    while (countDirectoryEntries(descriptors) != expected && Clock::now() < deadline) ::poll(nullptr, 0, 5);
    return countDirectoryEntries(descriptors) == expected;
  };
  ASSERT_TRUE(heldNow(held - 1)) << "the engine never closed the connection";
  UniqueFd added = connectLoopback(server_.port(), deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(added) << error;
  expectEcho(added.get(), "accepted since the copy");
  ASSERT_TRUE(heldNow(held));
  std::ofstream(gate).close();
  ASSERT_TRUE(server_.waitForLog(kUpgradeFailed));
  EXPECT_NE(server_.log().find("the new process gave up: changes: 1 closed, 0 revised, 1 new"), std::string::npos)
      << server_.log();
  expectEcho(kept.get(), "served on");
  expectEcho(added.get(), "served on");
  ASSERT_NO_FATAL_FAILURE(stopServing());
}

// The new process's side of the sequence, with this test as the old process: of the connections
// sent ahead of the pause, the one closed since is dropped (its client sees EOF once the last
// copy closes), the one that has pending bytes since gets them echoed first, the one unchanged is
// served as it is; one accepted since arrives whole in the pause.
TEST_F(UpgradeTest, TheSuccessorTakesWhatChangedBetweenTheStateSentAheadAndThePause) {
  using host::CarriedState;
  using host::UpgradeReply;
  std::string error;
  UniqueFd listener = listenTcp("127.0.0.1", 0, 16, &error);
  ASSERT_TRUE(listener) << error;
  // Sent ahead: closed, revised, unchanged, and a socket the plugin refuses (never connected: the
  // successor cannot import it, says so, and the pause's state drops it); then a new one.
  constexpr std::size_t kConnections = 4;
  std::vector<UniqueFd> clients, accepted;
  for (std::size_t index = 0; index < kConnections; ++index) {
    clients.push_back(connectLoopback(localPort(listener.get()), deadlineIn(kIoTimeout), &error));
    ASSERT_TRUE(clients.back()) << error;
    accepted.emplace_back(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(accepted.back()) << std::strerror(errno);
  }
  auto [ours, theirs] = host::UpgradeChannel::pair();
  {
    // The successor's end, inherited (not close-on-exec) at a number of its own, as an upgrade passes it.
    UniqueFd inherited(::fcntl(theirs.fd(), F_DUPFD, 10));
    ASSERT_TRUE(inherited) << std::strerror(errno);
    ServerCommand command;
    command.program = program_;
    command.environment = {std::string(host::kUpgradeFdVariable) + "=" + std::to_string(inherited.get())};
    server_.spawn(loopbackFlags({"--maxListeners", "1", "--plugin", EPOLL_ECHO_PLUGIN_PATH}), command);
  }
  theirs.releaseSocket().reset();
  const Deadline deadline = deadlineIn(kServerTimeout);
  ours.sendHello(deadline);
  std::optional<host::ReceivedReply> reply = ours.receiveReply(deadline);
  ASSERT_TRUE(reply && reply->reply == UpgradeReply::kPrepared) << server_.log();
  EXPECT_EQ(static_cast<pid_t>(reply->pid), server_.pid());

  UniqueFd unconnected(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(unconnected) << std::strerror(errno);
  CarriedState ahead;
  ahead.listeners = {listener.get()};
  for (std::size_t index = 0; index < 3; ++index) ahead.connections.push_back({accepted[index].get(), 0, 0, {}});
  ahead.connections.push_back({unconnected.get(), 0, 0, {}});
  ours.sendState(ahead, deadline);
  reply = ours.receiveReply(deadline);
  ASSERT_TRUE(reply && reply->reply == UpgradeReply::kPresented) << server_.log();

  const std::string revisedBytes = "owed to the revised one";
  const std::string newBytes = "owed to the new one";
  CarriedState pause;
  pause.dropped = {0, 3};
  pause.revised = {{1, 0, std::vector<unsigned char>(revisedBytes.begin(), revisedBytes.end())}};
  pause.connections = {{accepted[3].get(), 0, 0, std::vector<unsigned char>(newBytes.begin(), newBytes.end())}};
  ours.sendState(pause, deadline);
  reply = ours.receiveReply(deadline);
  ASSERT_TRUE(reply && reply->reply == UpgradeReply::kReady) << server_.log();
  ours.sendReply(UpgradeReply::kGo, deadline);
  reply = ours.receiveReply(deadline);
  ASSERT_TRUE(reply && reply->reply == UpgradeReply::kServing) << server_.log();
  EXPECT_TRUE(server_.waitForLog("took over 1 listener and 3 connections"));
  EXPECT_NE(server_.log().find("; 1 connection sent ahead could not be imported then, left to the pause (first: "),
            std::string::npos)
      << server_.log();
  accepted.clear();  // as the old process does once the successor serves

  EXPECT_TRUE(waitForEof(clients[0].get(), deadlineIn(kIoTimeout), &error)) << error;
  for (const auto& [client, owed] : {std::pair{1, revisedBytes}, std::pair{3, newBytes}}) {
    ASSERT_TRUE(sendAll(clients[client].get(), "!", deadlineIn(kIoTimeout), &error)) << error;
    std::string echoed(owed.size() + 1, '\0');
    ASSERT_TRUE(receiveExactly(clients[client].get(), echoed.data(), echoed.size(), deadlineIn(kIoTimeout), &error))
        << error;
    EXPECT_EQ(echoed, owed + "!");
  }
  expectEcho(clients[2].get(), std::string(10000, 'u'));
  UniqueFd late = connectLoopback(localPort(listener.get()), deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(late) << error;
  expectEcho(late.get(), "the listener sent ahead serves");
  ASSERT_TRUE(server_.stop());
}

TEST_F(UpgradeTest, SigtermWhileTheSuccessorHangsStopsTheOldProcessAndTheSuccessor) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--upgrade-timeout", "2"}));
  const std::string pidFile = (directory_.path() / "successor.pid").string();
  installScript("#!/bin/sh\necho $$ > " + pidFile + ".tmp && mv " + pidFile + ".tmp " + pidFile + "\nexec sleep 600\n");
  ASSERT_EQ(::kill(serving_, SIGUSR2), 0);
  ASSERT_TRUE(server_.waitForLog("SIGUSR2 received: upgrading"));
  const pid_t hanging = waitForPidFile(pidFile);
  ASSERT_GT(hanging, 0) << "the successor never started";
  ASSERT_EQ(::kill(serving_, SIGTERM), 0);
  ASSERT_TRUE(server_.waitForCleanExit());
  EXPECT_NE(server_.log().find(kUpgradeFailed), std::string::npos) << server_.log();
  EXPECT_NE(server_.log().find("stopped on SIGTERM"), std::string::npos) << server_.log();
  // Reaped by the old process: had it been left behind, it would now be this process's child.
  EXPECT_EQ(::kill(hanging, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

TEST_F(UpgradeTest, SigtermDuringASuccessfulUpgradeIsPassedOnToTheSuccessor) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--upgrade-timeout", "60"}));
  UniqueFd client = connectLoopback(server_.port(), deadlineIn(kIoTimeout));
  ASSERT_TRUE(client);
  // The successor waits for the test's go-ahead before it starts the real server, so the SIGTERM
  // reliably arrives while the upgrade runs.
  const fs::path real = directory_.path() / "real-server";
  fs::copy_file(EPOLL_ECHO_SERVER_PATH, real);
  const std::string go = (directory_.path() / "go").string();
  installScript("#!/bin/sh\ni=0\nwhile [ ! -e " + go + " ] && [ $i -lt 6000 ]; do sleep 0.01; i=$((i+1)); done\nexec " +
                real.string() + " \"$@\"\n");
  ASSERT_EQ(::kill(serving_, SIGUSR2), 0);
  ASSERT_TRUE(server_.waitForLog("SIGUSR2 received: upgrading"));
  ASSERT_EQ(::kill(serving_, SIGTERM), 0);
  std::ofstream(go).close();
  ASSERT_TRUE(server_.waitForLog(kUpgraded));
  const pid_t successor = successorPid(server_.log(), 1);
  successors_.push_back(successor);
  ASSERT_TRUE(server_.waitForCleanExit());
  EXPECT_NE(server_.log().find("SIGTERM received during the upgrade: passed on to pid " + std::to_string(successor)),
            std::string::npos)
      << server_.log();
  // The connection was handed over and closes with the successor's stop: EOF, not a reset.
  ASSERT_NO_FATAL_FAILURE(expectCleanExit(successor));
  EXPECT_TRUE(waitForEof(client.get(), deadlineIn(kIoTimeout)));
}

TEST_F(UpgradeTest, TheServiceManagerIsToldTheNewMainPid) {
  const std::string notifyPath = (directory_.path() / "notify").string();
  NotifySocket notify(notifyPath);
  ASSERT_TRUE(notify.bound()) << std::strerror(errno);
  ASSERT_NO_FATAL_FAILURE(startServer({}, {"NOTIFY_SOCKET=" + notifyPath}));
  EXPECT_EQ(notify.receive(deadlineIn(kServerTimeout)).rfind("READY=1\n", 0), 0u);
  ASSERT_NO_FATAL_FAILURE(upgrade(1));
  const std::string told = notify.receive(deadlineIn(kServerTimeout));
  EXPECT_EQ(told.rfind("MAINPID=" + std::to_string(serving_) + "\nREADY=1\nSTATUS=listening on 127.0.0.1:", 0), 0u)
      << told;
  ASSERT_NO_FATAL_FAILURE(stopServing());
  EXPECT_EQ(notify.receive(deadlineIn(kServerTimeout)), "STOPPING=1");
}

TEST_F(UpgradeTest, SocketActivatedListenersAreHandedOn) {
  UniqueFd listener = listenTcp("127.0.0.1", 0);
  ASSERT_TRUE(listener);
  const uint16_t port = localPort(listener.get());
  // Inherited by the launcher alone: the test runs one test at a time, on one thread.
  ASSERT_EQ(::fcntl(listener.get(), F_SETFD, 0), 0);
  ServerCommand launcher;
  launcher.program = SOCKET_ACTIVATION_LAUNCHER;
  launcher.programArguments = {std::to_string(listener.get()), program_};
  ASSERT_TRUE(server_.start(loopbackFlags({"--plugin", EPOLL_ECHO_PLUGIN_PATH, "--maxListeners", "2"}), launcher));
  listener.reset();  // the server holds the only copy now
  serving_ = server_.pid();
  ASSERT_NE(server_.log().find("socket-activated"), std::string::npos) << server_.log();
  UniqueFd client;
  expectEchoOnNewConnection(port, "before", "127.0.0.1", &client);
  installBuild();
  ASSERT_NO_FATAL_FAILURE(upgrade(1));
  // One listening socket, shared by both workers, handed on once; the successor runs 2 workers on it.
  EXPECT_NE(server_.log().find("took over 1 listener and 1 connection"), std::string::npos) << server_.log();
  EXPECT_EQ(countOccurrences(server_.log(), "listening on 127.0.0.1:" + std::to_string(port) + " (2 listeners"), 2u)
      << server_.log();
  expectEcho(client.get(), "after");
  expectEchoOnNewConnection(port, "a new client");
  ASSERT_NO_FATAL_FAILURE(stopServing());
}

TEST_F(UpgradeTest, TheSuccessorWatchesThePluginToo) {
  const fs::path plugin = directory_.path() / "libepoll_echo.so";
  fs::copy_file(EPOLL_ECHO_PLUGIN_PATH, plugin);
  ASSERT_NO_FATAL_FAILURE(startServer({"--plugin", plugin.string(), "--watch"}));
  UniqueFd client;
  expectEchoOnNewConnection(server_.port(), "before", "127.0.0.1", &client);
  ASSERT_NO_FATAL_FAILURE(upgrade(1));
  const fs::path staging = directory_.path() / "plugin.tmp";
  fs::copy_file(EPOLL_ECHO_PLUGIN_PATH, staging);
  fs::rename(staging, plugin);  // a new build of the plugin, as a linker leaves it
  ASSERT_TRUE(server_.waitForLog("epoll-server: reloaded: build "));
  EXPECT_NE(server_.log().find("2 listeners, 1 connection handed over"), std::string::npos) << server_.log();
  expectEcho(client.get(), "after");
  ASSERT_NO_FATAL_FAILURE(stopServing());
}

// The /metrics socket goes with the upgrade: the successor serves it on the same port, its
// counters go on from the old process's, and a scraper running throughout is never refused or
// left without an answer. A successor that fails leaves the old process serving /metrics too.
TEST_F(UpgradeTest, TheMetricsEndpointIsHandedOverWithItsCounters) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--metrics-listen", "127.0.0.1:0", "--upgrade-timeout", "60"}));
  const uint16_t port = metricsPort(server_.log(), 1);
  ASSERT_NE(port, 0) << server_.log();
  expectEchoOnNewConnection(server_.port(), "before");
  const double before = acceptedTotal(port);
  EXPECT_GE(before, 1);

  installScript(std::string("#!/bin/sh\nexec ") + UPGRADE_FAILING_SUCCESSOR + " exit\n");
  ASSERT_EQ(::kill(serving_, SIGUSR2), 0);
  ASSERT_TRUE(server_.waitForLog(kUpgradeFailed));
  EXPECT_EQ(acceptedTotal(port), before) << "the old process no longer serves /metrics";

  std::atomic<bool> upgraded{false};
  std::string scraperFailure;
  std::size_t scrapesAfter = 0;
  std::thread scraper([&] {
    // Bounded: until a few scrapes after the upgrade, the upgrade's deadline, or a failure.
    const Deadline deadline = deadlineIn(2 * kServerTimeout);
    while (scraperFailure.empty() && scrapesAfter < 5 && Clock::now() < deadline) {
      const bool after = upgraded.load();
      if (!scrape(port, &scraperFailure) && scraperFailure.empty()) scraperFailure = "an empty scrape";
      if (after) ++scrapesAfter;
    }
  });
  installBuild();
  ASSERT_NO_FATAL_FAILURE(upgrade(1));
  upgraded = true;
  scraper.join();
  EXPECT_EQ(scraperFailure, "");
  EXPECT_EQ(scrapesAfter, 5u);
  EXPECT_EQ(metricsPort(server_.log(), 2), port) << server_.log();
  // The old process has exited: whatever answers now is the successor, counting on.
  expectEchoOnNewConnection(server_.port(), "after");
  EXPECT_EQ(acceptedTotal(port), before + 1);
  ASSERT_NO_FATAL_FAILURE(stopServing());
}

}  // namespace
}  // namespace epoll_echo::test
