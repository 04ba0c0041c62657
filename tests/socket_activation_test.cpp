// socket_activation_test.cpp — epoll-server under systemd socket activation: inherited listening
// sockets instead of binding (emulated, and with systemd-socket-activate), hot-swap afterwards,
// refusals, and the READY=1/STOPPING=1 notifications on $NOTIFY_SOCKET.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
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

#include "support/expect_echo.h"
#include "support/net.h"
#include "support/notify_socket.h"
#include "support/process.h"
#include "support/server_process.h"
#include "support/timeouts.h"

namespace epoll_echo::test {
namespace {

// Spawns epoll-server through the launcher, which sets the socket activation variables in the
// child itself (LISTEN_PID must be the pid that execs the server) and moves `fd` to fd 3.
void spawnActivated(ServerProcess& server, int fd, const std::vector<std::string>& flags) {
  // Inherited by this one child only: the test process runs one test, on one thread.
  const int descriptorFlags = ::fcntl(fd, F_GETFD);
  EXPECT_EQ(::fcntl(fd, F_SETFD, descriptorFlags & ~FD_CLOEXEC), 0);
  ServerCommand launcher;
  launcher.program = SOCKET_ACTIVATION_LAUNCHER;
  launcher.programArguments = {std::to_string(fd), EPOLL_ECHO_SERVER_PATH};
  server.spawn(flags, launcher);
  ::fcntl(fd, F_SETFD, descriptorFlags);
}

TEST(SocketActivationTest, ServesTheInheritedSocketWithEveryWorker) {
  UniqueFd listener = listenTcp("127.0.0.1", 0);
  ASSERT_TRUE(listener);
  const uint16_t port = localPort(listener.get());
  // --port 1 would need root to bind: it proves the server binds nothing of its own.
  ServerProcess server;
  spawnActivated(server, listener.get(), {"--maxListeners", "3", "--port", "1", "--bind", "::1"});
  listener.reset();  // the server holds the socket now; the port stays bound by it alone
  ASSERT_TRUE(server.waitForStart());
  const std::string& log = server.log();
  EXPECT_NE(log.find("--port and --bind are ignored"), std::string::npos) << log;
  EXPECT_NE(log.find("listening on 127.0.0.1:" + std::to_string(port) + " (3 listeners, socket-activated"),
            std::string::npos)
      << log;
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 6; ++i) {
    ASSERT_NO_FATAL_FAILURE(
        expectEchoOnNewConnection(port, "activated " + std::to_string(i) + "\n", "127.0.0.1", &clients.emplace_back()))
        << "echo " << i << " failed\n"
        << server.log();
  }
  ASSERT_TRUE(server.stop(SIGTERM));
  EXPECT_NE(server.log().find("accepted=6 "), std::string::npos) << server.log();
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
  ServerProcess server;
  spawnActivated(server, listener.get(), {"--maxListeners", "2"});
  listener.reset();
  ASSERT_TRUE(server.waitForStart());
  EXPECT_EQ(socketsWithoutCloexec(server.pid()), "");
  ASSERT_TRUE(server.stop(SIGTERM));
}

TEST(SocketActivationTest, HotSwapKeepsServingTheInheritedSocket) {
  UniqueFd listener = listenTcp("127.0.0.1", 0);
  ASSERT_TRUE(listener);
  const uint16_t port = localPort(listener.get());
  ServerProcess server;
  spawnActivated(server, listener.get(), {"--maxListeners", "2"});
  listener.reset();
  ASSERT_TRUE(server.waitForStart());
  UniqueFd before;
  ASSERT_NO_FATAL_FAILURE(expectEchoOnNewConnection(port, "before the reload\n", "127.0.0.1", &before));
  ASSERT_TRUE(server.sendSignal(SIGHUP));
  ASSERT_TRUE(server.waitForLog("reloaded: build"));
  EXPECT_NE(server.log().find("2 listeners, 1 connection handed over"), std::string::npos) << server.log();
  expectEchoOnNewConnection(port, "a new client after the reload\n");
  ASSERT_NO_FATAL_FAILURE(expectEcho(before.get(), "the same old client\n"));
  ASSERT_TRUE(server.stop(SIGTERM));
}

TEST(SocketActivationTest, RefusesAnInheritedSocketThatIsNotListening) {
  UniqueFd datagram(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(datagram);
  ServerProcess server;
  spawnActivated(server, datagram.get(), {"--port", "0"});
  const std::optional<ExitStatus> status = server.child().waitForExit(deadlineIn(kServerTimeout));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->exited && status->code == 1) << status->describe();
  EXPECT_NE(server.log().find("socket activation: inherited fd 3 is not a stream (TCP) socket"), std::string::npos)
      << server.log();
}

// A listening MPTCP socket is SOCK_STREAM and AF_INET, so SO_TYPE alone would let it through.
TEST(SocketActivationTest, RefusesAListeningSocketOfAnotherStreamProtocol) {
  UniqueFd mptcp(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_MPTCP));
  if (!mptcp) GTEST_SKIP() << "no MPTCP in this kernel: " << std::strerror(errno);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(mptcp.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address), 0) << std::strerror(errno);
  ASSERT_EQ(::listen(mptcp.get(), 4), 0) << std::strerror(errno);
  ServerProcess server;
  spawnActivated(server, mptcp.get(), {"--port", "0"});
  const std::optional<ExitStatus> status = server.child().waitForExit(deadlineIn(kServerTimeout));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->exited && status->code == 1) << status->describe();
  EXPECT_NE(server.log().find("socket activation: inherited fd 3 is not a TCP socket"), std::string::npos)
      << server.log();
}

TEST(SocketActivationTest, IgnoresVariablesMeantForAnotherProcess) {
  // LISTEN_PID of another process (init's): the server binds its own port as usual.
  ServerCommand misdirected;
  misdirected.environment = {"LISTEN_PID=1", "LISTEN_FDS=1"};
  ServerProcess server;
  ASSERT_TRUE(server.start(loopbackFlags({"--maxListeners", "1"}), misdirected));
  EXPECT_EQ(server.log().find("socket-activated"), std::string::npos) << server.log();
  ASSERT_TRUE(server.stop(SIGTERM));
}

void expectReadyAndStopping(const std::string& notifyName) {
  NotifySocket notify(notifyName);
  ASSERT_TRUE(notify.bound()) << notifyName << ": " << std::strerror(errno);
  ServerCommand notifying;
  notifying.environment = {"NOTIFY_SOCKET=" + notifyName};
  ServerProcess server;
  server.spawn(loopbackFlags({"--maxListeners", "1"}), notifying);
  const std::string ready = notify.receive(deadlineIn(kServerTimeout));
  EXPECT_EQ(ready.rfind("READY=1\nSTATUS=listening on 127.0.0.1:", 0), 0u) << ready;
  ASSERT_TRUE(server.sendSignal(SIGTERM));
  EXPECT_EQ(notify.receive(deadlineIn(kServerTimeout)), "STOPPING=1");
  ASSERT_TRUE(server.waitForCleanExit());
  EXPECT_EQ(server.log().find("cannot notify"), std::string::npos) << server.log();
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
    ServerCommand activator;
    activator.program = *tool;
    activator.programArguments = {"-l", "127.0.0.1:" + std::to_string(port), EPOLL_ECHO_SERVER_PATH};
    ServerProcess server;
    server.spawn({"--maxListeners", "2"}, activator);
    // It listens first and execs the server only when a connection arrives (the same pid).
    if (!server.waitForLog("Listening on 127.0.0.1:" + std::to_string(port))) {
      const std::optional<ExitStatus> status = server.child().waitForExit(deadlineIn(kServerTimeout));
      ASSERT_TRUE(status.has_value() && attempt < kAttempts) << "port " << port << ": " << server.log();
      continue;  // the port was taken meanwhile
    }
    UniqueFd client;
    ASSERT_NO_FATAL_FAILURE(expectEchoOnNewConnection(port, "queued before the server started\n", "127.0.0.1", &client))
        << server.log();
    ASSERT_TRUE(server.waitForStart());
    EXPECT_NE(server.log().find("(2 listeners, socket-activated"), std::string::npos) << server.log();
    expectEchoOnNewConnection(port, "and after\n");
    ASSERT_TRUE(server.stop(SIGTERM));
    return;
  }
}

}  // namespace
}  // namespace epoll_echo::test
