// socket_activation_test.cpp — epoll-server under systemd socket activation: inherited listening
// sockets instead of binding (emulated, and with systemd-socket-activate), hot-swap afterwards,
// refusals, and the READY=1/STOPPING=1 notifications on $NOTIFY_SOCKET.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/net.h"
#include "support/process.h"

namespace epoll_echo::test {
namespace {

constexpr std::chrono::seconds kTimeout{30};  // generous: sanitizer builds on two busy cores

// Spawns epoll-server through the launcher, which sets the socket activation variables in the
// child itself (LISTEN_PID must be the pid that execs the server) and moves `fd` to fd 3.
ChildProcess spawnActivated(int fd, const std::vector<std::string>& serverArguments) {
  // Inherited by this one child only: the test process runs one test, on one thread.
  const int flags = ::fcntl(fd, F_GETFD);
  EXPECT_EQ(::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC), 0);
  std::vector<std::string> arguments = {std::to_string(fd), EPOLL_ECHO_SERVER_PATH};
  arguments.insert(arguments.end(), serverArguments.begin(), serverArguments.end());
  ChildProcess child(SOCKET_ACTIVATION_LAUNCHER, arguments);
  ::fcntl(fd, F_SETFD, flags);
  return child;
}

bool startLineLogged(ChildProcess& server) { return server.waitForStderr(", plugin ", deadlineIn(kTimeout)); }

// Connects to the port, echoes `text`, and returns the still-open connection (invalid on failure).
UniqueFd echoThrough(uint16_t port, const std::string& text) {
  UniqueFd client = connectLoopback(port, deadlineIn(kTimeout));
  std::string reply(text.size(), '\0');
  if (!client || !sendAll(client.get(), text, deadlineIn(kTimeout)) ||
      !receiveExactly(client.get(), reply.data(), reply.size(), deadlineIn(kTimeout)) || reply != text) {
    return UniqueFd();
  }
  return client;
}

void stopAndExpectCleanExit(ChildProcess& server) {
  ASSERT_TRUE(server.sendSignal(SIGTERM));
  const std::optional<ExitStatus> status = server.waitForExit(deadlineIn(kTimeout));
  ASSERT_TRUE(status.has_value()) << server.capturedStderr();
  EXPECT_TRUE(status->succeeded()) << status->describe() << "\n" << server.capturedStderr();
}

TEST(SocketActivationTest, ServesTheInheritedSocketWithEveryWorker) {
  UniqueFd listener = listenTcp("127.0.0.1", 0);
  ASSERT_TRUE(listener);
  const uint16_t port = localPort(listener.get());
  // --port 1 would need root to bind: it proves the server binds nothing of its own.
  ChildProcess server = spawnActivated(listener.get(), {"--maxListeners", "3", "--port", "1", "--bind", "::1"});
  listener.reset();  // the server holds the socket now; the port stays bound by it alone
  ASSERT_TRUE(startLineLogged(server)) << server.capturedStderr();
  const std::string& log = server.capturedStderr();
  EXPECT_NE(log.find("--port and --bind are ignored"), std::string::npos) << log;
  EXPECT_NE(log.find("listening on 127.0.0.1:" + std::to_string(port) + " (3 listeners, socket-activated"),
            std::string::npos)
      << log;
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 6; ++i) {
    clients.push_back(echoThrough(port, "activated " + std::to_string(i) + "\n"));
    ASSERT_TRUE(clients.back()) << "echo " << i << " failed\n" << server.capturedStderr();
  }
  stopAndExpectCleanExit(server);
  EXPECT_NE(server.capturedStderr().find("accepted=6 "), std::string::npos) << server.capturedStderr();
}

// The sockets of `pid` that lack O_CLOEXEC, as "fd N" lines. Only sockets: other descriptors may
// come from whoever runs the tests (ctest's and the shell's own pipes) and are not the server's.
std::string socketsWithoutCloexec(pid_t pid) {
  std::string leaks;
  const std::filesystem::path proc = "/proc/" + std::to_string(pid);
  for (const auto& entry : std::filesystem::directory_iterator(proc / "fd")) {
    std::error_code error;
    if (std::filesystem::read_symlink(entry.path(), error).string().rfind("socket:", 0) != 0) continue;
    std::ifstream info(proc / "fdinfo" / entry.path().filename());
    std::string key;
    std::string flags;
    while (info >> key >> flags && key != "flags:") {
    }
    if ((std::stoul(flags, nullptr, 8) & O_CLOEXEC) == 0) leaks += "fd " + entry.path().filename().string() + "\n";
  }
  return leaks;
}

TEST(SocketActivationTest, LeavesNoDescriptorInheritableByChildren) {
  UniqueFd listener = listenTcp("127.0.0.1", 0);
  ASSERT_TRUE(listener);
  ChildProcess server = spawnActivated(listener.get(), {"--maxListeners", "2"});
  listener.reset();
  ASSERT_TRUE(startLineLogged(server)) << server.capturedStderr();
  EXPECT_EQ(socketsWithoutCloexec(server.pid()), "");
  stopAndExpectCleanExit(server);
}

TEST(SocketActivationTest, HotSwapKeepsServingTheInheritedSocket) {
  UniqueFd listener = listenTcp("127.0.0.1", 0);
  ASSERT_TRUE(listener);
  const uint16_t port = localPort(listener.get());
  ChildProcess server = spawnActivated(listener.get(), {"--maxListeners", "2"});
  listener.reset();
  ASSERT_TRUE(startLineLogged(server)) << server.capturedStderr();
  UniqueFd before = echoThrough(port, "before the reload\n");
  ASSERT_TRUE(before);
  ASSERT_TRUE(server.sendSignal(SIGHUP));
  ASSERT_TRUE(server.waitForStderr("reloaded: build", deadlineIn(kTimeout))) << server.capturedStderr();
  EXPECT_NE(server.capturedStderr().find("2 listeners, 1 connection handed over"), std::string::npos)
      << server.capturedStderr();
  EXPECT_TRUE(echoThrough(port, "a new client after the reload\n"));
  const std::string again = "the same old client\n";
  std::string reply(again.size(), '\0');
  ASSERT_TRUE(sendAll(before.get(), again, deadlineIn(kTimeout)));
  ASSERT_TRUE(receiveExactly(before.get(), reply.data(), reply.size(), deadlineIn(kTimeout)));
  EXPECT_EQ(reply, again);
  stopAndExpectCleanExit(server);
}

TEST(SocketActivationTest, RefusesAnInheritedSocketThatIsNotListening) {
  UniqueFd datagram(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(datagram);
  ChildProcess server = spawnActivated(datagram.get(), {"--port", "0"});
  const std::optional<ExitStatus> status = server.waitForExit(deadlineIn(kTimeout));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->exited && status->code == 1) << status->describe();
  EXPECT_NE(server.capturedStderr().find("socket activation: inherited fd 3 is not a stream (TCP) socket"),
            std::string::npos)
      << server.capturedStderr();
}

TEST(SocketActivationTest, IgnoresVariablesMeantForAnotherProcess) {
  // LISTEN_PID of another process (init's): the server binds its own port as usual.
  ASSERT_EQ(::setenv("LISTEN_PID", "1", 1), 0);
  ASSERT_EQ(::setenv("LISTEN_FDS", "1", 1), 0);
  ChildProcess server(EPOLL_ECHO_SERVER_PATH, {"--port", "0", "--bind", "127.0.0.1", "--maxListeners", "1"});
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ASSERT_TRUE(startLineLogged(server)) << server.capturedStderr();
  EXPECT_EQ(server.capturedStderr().find("socket-activated"), std::string::npos) << server.capturedStderr();
  stopAndExpectCleanExit(server);
}

// A datagram socket standing in for systemd's notification socket.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& name) : socket_(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, name.data(), name.size());
    if (name[0] == '@') address.sun_path[0] = '\0';
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    bound_ = socket_ && ::bind(socket_.get(), reinterpret_cast<const sockaddr*>(&address), length) == 0;
  }
  bool bound() const { return bound_; }

  // The next datagram, or "" at the deadline.
  std::string receive(Deadline deadline) {
    pollfd ready{socket_.get(), POLLIN, 0};
    if (::poll(&ready, 1, millisecondsLeft(deadline)) != 1) return "";
    char buffer[512];
    const ssize_t got = ::recv(socket_.get(), buffer, sizeof buffer, 0);
    return got > 0 ? std::string(buffer, static_cast<std::size_t>(got)) : "";
  }

 private:
  UniqueFd socket_;
  bool bound_ = false;
};

void expectReadyAndStopping(const std::string& notifyName) {
  NotifySocket notify(notifyName);
  ASSERT_TRUE(notify.bound()) << notifyName << ": " << std::strerror(errno);
  ASSERT_EQ(::setenv("NOTIFY_SOCKET", notifyName.c_str(), 1), 0);
  ChildProcess server(EPOLL_ECHO_SERVER_PATH, {"--port", "0", "--bind", "127.0.0.1", "--maxListeners", "1"});
  ::unsetenv("NOTIFY_SOCKET");
  const std::string ready = notify.receive(deadlineIn(kTimeout));
  EXPECT_EQ(ready.rfind("READY=1\nSTATUS=listening on 127.0.0.1:", 0), 0u) << ready;
  ASSERT_TRUE(server.sendSignal(SIGTERM));
  EXPECT_EQ(notify.receive(deadlineIn(kTimeout)), "STOPPING=1");
  const std::optional<ExitStatus> status = server.waitForExit(deadlineIn(kTimeout));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->succeeded()) << server.capturedStderr();
  EXPECT_EQ(server.capturedStderr().find("cannot notify"), std::string::npos) << server.capturedStderr();
}

TEST(ServiceNotifyTest, SendsReadyAndStoppingToAnAbstractSocket) {
  expectReadyAndStopping("@epoll-echo-notify-test-" + std::to_string(::getpid()));
}

TEST(ServiceNotifyTest, SendsReadyAndStoppingToASocketPath) {
  char directory[] = "/tmp/epoll-echo-notify-XXXXXX";
  ASSERT_NE(::mkdtemp(directory), nullptr);
  expectReadyAndStopping(std::string(directory) + "/notify");
  std::filesystem::remove_all(directory);
}

std::optional<std::string> findInPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string directories = path ? path : "/usr/bin:/bin";
  for (std::size_t start = 0; start <= directories.size();) {
    const std::size_t end = std::min(directories.find(':', start), directories.size());
    const std::filesystem::path candidate = std::filesystem::path(directories.substr(start, end - start)) / program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    start = end + 1;
  }
  return std::nullopt;
}

// A free port for a tool that cannot take port 0: chosen by the kernel, then released. Another
// process may take it in between; the test retries on a fresh port when that happens.
uint16_t releasedFreePort() {
  UniqueFd probe = listenTcp("127.0.0.1", 0);
  return probe ? localPort(probe.get()) : 0;
}

TEST(SocketActivationTest, WorksUnderSystemdSocketActivate) {
  const std::optional<std::string> tool = findInPath("systemd-socket-activate");
  if (!tool) GTEST_SKIP() << "systemd-socket-activate not installed (Debian package systemd)";
  constexpr int kAttempts = 5;
  for (int attempt = 1; attempt <= kAttempts; ++attempt) {
    const uint16_t port = releasedFreePort();
    ASSERT_NE(port, 0);
    ChildProcess server(*tool,
                        {"-l", "127.0.0.1:" + std::to_string(port), EPOLL_ECHO_SERVER_PATH, "--maxListeners", "2"});
    // It listens first and execs the server only when a connection arrives (the same pid).
    if (!server.waitForStderr("Listening on 127.0.0.1:" + std::to_string(port), deadlineIn(kTimeout))) {
      const std::optional<ExitStatus> status = server.waitForExit(deadlineIn(kTimeout));
      ASSERT_TRUE(status.has_value() && attempt < kAttempts) << "port " << port << ": " << server.capturedStderr();
      continue;  // the port was taken meanwhile
    }
    UniqueFd client = echoThrough(port, "queued before the server started\n");
    ASSERT_TRUE(client) << server.capturedStderr();
    ASSERT_TRUE(startLineLogged(server)) << server.capturedStderr();
    EXPECT_NE(server.capturedStderr().find("(2 listeners, socket-activated"), std::string::npos)
        << server.capturedStderr();
    EXPECT_TRUE(echoThrough(port, "and after\n"));
    stopAndExpectCleanExit(server);
    return;
  }
}

}  // namespace
}  // namespace epoll_echo::test
