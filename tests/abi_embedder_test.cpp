// abi_embedder_test.cpp — an embedder's mistakes that the handle itself must catch: an engine
// driven from a forked child, and an engine passed to another loaded copy of the plugin (a
// hot-swap host holds two). Neither may touch the engine; the owner's engine keeps serving.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "support/expect_echo.h"
#include "support/plugin.h"
#include "support/temporary_directory.h"
#include "support/timeouts.h"

namespace epoll_echo::test {
namespace {

class AbiEmbedderTest : public PluginTest {};

void expectServing(uint16_t port, int openClient) {
  expectEcho(openClient, "the open connection still echoes");
  expectEchoOnNewConnection(port, "a new connection echoes");
}

// What the child reports: each call's code, and last_error's return and message.
struct ChildReport {
  int stop = 1, pause = 1, resume = 1, start = 1, stats = 1, lastErrorLength = 0;
  char lastError[256] = {};
};

// Reads the child's report until EOF; false at the deadline.
bool readReport(int fd, ChildReport& report, Deadline deadline) {
  auto* bytes = reinterpret_cast<char*>(&report);
  size_t got = 0;
  while (got < sizeof report) {
    pollfd ready{fd, POLLIN, 0};
    if (::poll(&ready, 1, millisecondsLeft(deadline)) <= 0) return false;
    const ssize_t count = ::read(fd, bytes + got, sizeof report - got);
    if (count <= 0) return false;
    got += static_cast<size_t>(count);
  }
  return true;
}

// Reaps the child, killing it if it has not exited by the deadline. Returns its wait status.
int reap(pid_t child, Deadline deadline) {
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(child, &status, WNOHANG);
    if (done == child) return status;
    if (done < 0 || Clock::now() >= deadline) break;
    // No descriptor announces a child's exit here; re-check every few milliseconds.
    ::poll(nullptr, 0, 5);
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, &status, 0);
  return status;
}

// A host whose atexit handlers or destructors run in a forked child calls stop/destroy there.
// The child shares the parent's eventfds and sockets: any write or close of the engine's would
// end the parent's workers. Every call is refused untouched and the parent serves on.
TEST_F(AbiEmbedderTest, ForkedChildCannotStopOrPauseTheParentsEngine) {
  TestEngine engine(api());
  std::string error;
  ASSERT_TRUE(engine.createAndStart(loopbackConfig(2)));
  UniqueFd client = connectLoopback(engine.port(), deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(client) << error;
  expectEcho(client.get(), "before the fork");

  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  UniqueFd reportRead(fds[0]), reportWrite(fds[1]);
  const PluginApi functions = api();
  epoll_echo_engine_t* handle = engine.handle();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0) << std::strerror(errno);
  if (child == 0) {
    // The child: plugin calls only, then _exit (no atexit handlers, no gtest teardown).
    ChildReport report;
    report.pause = functions.pause(handle);
    report.resume = functions.resume(handle);
    report.start = functions.start(handle);
    epoll_echo_stats_t stats{};
    stats.size = sizeof stats;
    report.stats = functions.stats(handle, &stats);
    report.stop = functions.stop(handle);
    report.lastErrorLength = functions.last_error(handle, report.lastError, sizeof report.lastError);
    functions.destroy(handle);
    const bool written = ::write(reportWrite.get(), &report, sizeof report) == sizeof report;
    ::_exit(written ? 0 : 1);
  }
  reportWrite.reset();
  ChildReport report;
  const bool reported = readReport(reportRead.get(), report, deadlineIn(kIoTimeout));
  const int status = reap(child, deadlineIn(kIoTimeout));
  ASSERT_TRUE(reported) << "the child did not report (hung in a plugin call?)";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  EXPECT_EQ(report.pause, EPOLL_ECHO_ESTATE);
  EXPECT_EQ(report.resume, EPOLL_ECHO_ESTATE);
  EXPECT_EQ(report.start, EPOLL_ECHO_ESTATE);
  EXPECT_EQ(report.stats, EPOLL_ECHO_ESTATE);
  EXPECT_EQ(report.stop, EPOLL_ECHO_ESTATE);
  EXPECT_GT(report.lastErrorLength, 0);
  EXPECT_NE(std::string(report.lastError).find("forked child"), std::string::npos) << report.lastError;

  EXPECT_EQ(engine.stats().state, EPOLL_ECHO_STATE_RUNNING);
  expectServing(engine.port(), client.get());
  EXPECT_EQ(engine.stop(), EPOLL_ECHO_OK) << engine.lastError();
  EXPECT_EQ(engine.lastError(), "") << "the child's refusals are not recorded in the parent's engine";
}

// A second copy of the plugin with its own identity: a copy of the file under another name
// (glibc would hand back the loaded object for the same path or inode).
class SecondCopy {
 public:
  SecondCopy() : directory_("epoll-echo-second-copy") {
    const std::filesystem::path copy = directory_.path() / "libepoll_echo_copy.so";
    std::filesystem::copy_file(EPOLL_ECHO_PLUGIN_PATH, copy);
    plugin_ = std::make_unique<Plugin>(copy.string());
  }
  const Plugin& plugin() const { return *plugin_; }

 private:
  TemporaryDirectory directory_;
  std::unique_ptr<Plugin> plugin_;
};

// Every function of `other` refuses `handle` with EINVAL and leaves the engine alone; last_error
// says why.
void expectRefusedByOtherCopy(const PluginApi& other, epoll_echo_engine_t* handle) {
  epoll_echo_stats_t stats{};
  stats.size = sizeof stats;
  epoll_echo_worker_stats_t workerStats{};
  workerStats.size = sizeof workerStats;
  uint32_t listeners = 0, connections = 0;
  int32_t fd = -1;
  epoll_echo_connection_state_t state{};
  state.size = sizeof state;
  EXPECT_EQ(other.stats(handle, &stats), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(other.worker_stats(handle, 0, &workerStats), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(other.pause(handle), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(other.resume(handle), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(other.handover_counts(handle, &listeners, &connections), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(other.export_listener(handle, 0, &fd), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(other.export_connection(handle, 0, &state, nullptr, 0), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(other.handover_complete(handle), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(other.import_listener(handle, -1), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(other.import_connection(handle, &state, nullptr), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(other.start(handle), EPOLL_ECHO_EINVAL);
  EXPECT_EQ(other.stop(handle), EPOLL_ECHO_EINVAL);
  other.destroy(handle);
  char message[256] = {};
  EXPECT_GT(other.last_error(handle, message, sizeof message), 0);
  EXPECT_NE(std::string(message).find("another loaded copy"), std::string::npos) << message;
}

TEST_F(AbiEmbedderTest, AnotherLoadedCopyRefusesTheEngine) {
  SecondCopy second;
  ASSERT_TRUE(second.plugin().loaded()) << second.plugin().error();
  const PluginApi& other = second.plugin().api();
  ASSERT_NE(reinterpret_cast<void*>(other.stats), reinterpret_cast<void*>(api().stats)) << "not a second copy";

  TestEngine engine(api());
  std::string error;
  ASSERT_TRUE(engine.createAndStart(loopbackConfig(2)));
  UniqueFd client = connectLoopback(engine.port(), deadlineIn(kIoTimeout), &error);
  ASSERT_TRUE(client) << error;
  expectEcho(client.get(), "before the other copy");
  expectRefusedByOtherCopy(other, engine.handle());
  EXPECT_EQ(engine.stats().state, EPOLL_ECHO_STATE_RUNNING);
  expectServing(engine.port(), client.get());
  EXPECT_EQ(engine.stop(), EPOLL_ECHO_OK) << engine.lastError();

  // And the other way round, on an engine that was never started.
  TestEngine theirs(other);
  ASSERT_EQ(theirs.create(loopbackConfig(), &error), EPOLL_ECHO_OK) << error;
  expectRefusedByOtherCopy(api(), theirs.handle());
  EXPECT_EQ(theirs.stats().state, EPOLL_ECHO_STATE_CREATED);
}

}  // namespace
}  // namespace epoll_echo::test
