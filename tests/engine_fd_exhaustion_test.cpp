// engine_fd_exhaustion_test.cpp — accept() failing with EMFILE must neither spin nor stop the
// engine for good. RLIMIT_NOFILE is process-wide, so the engine and its clients run in a forked
// child with a lowered limit; the child reports through a pipe and its exit code.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "support/plugin.h"
#include "support/timeouts.h"

namespace epoll_echo::test {
namespace {

constexpr int kClients = 40;
constexpr int kSpareSlots = 3;  // descriptors left for the engine to accept into
constexpr int kSkipExit = 77;

double cpuSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

int highestOpenFd() {
  int highest = -1;
  DIR* directory = ::opendir("/proc/self/fd");
  if (directory == nullptr) return -1;
  while (dirent* entry = ::readdir(directory)) {
    if (entry->d_name[0] != '.') highest = std::max(highest, std::atoi(entry->d_name));
  }
  ::closedir(directory);
  return highest;
}

// The child's scenario. Returns "" on success, "SKIP: ..." or the failure. Uses no gtest macros.
std::string exhaustAndRecover(const PluginApi& api, std::string& notes) {
  TestEngine engine(api);
  std::string error;
  if (const ::testing::AssertionResult started = engine.createAndStart(loopbackConfig(1)); !started) {
    return started.message();
  }
  const uint16_t port = engine.port();

  // Client sockets exist before the limit drops, so only the engine's accept() runs out.
  std::vector<UniqueFd> clients;
  for (int i = 0; i < kClients; ++i) clients.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  // Fill every free slot below the highest open descriptor (inherited ones can sit far up), so
  // exactly kSpareSlots numbers stay free under the new limit.
  const int highest = highestOpenFd();
  std::vector<UniqueFd> fillers;
  for (;;) {
    UniqueFd filler(::fcntl(0, F_DUPFD_CLOEXEC, 0));
    if (!filler || filler.get() > highest) break;
    fillers.push_back(std::move(filler));
  }
  const int limit = highest + 1 + kSpareSlots;
  rlimit original{};
  ::getrlimit(RLIMIT_NOFILE, &original);
  rlimit lowered = original;
  lowered.rlim_cur = static_cast<rlim_t>(limit);
  if (::setrlimit(RLIMIT_NOFILE, &lowered) != 0) return std::string("SKIP: setrlimit: ") + std::strerror(errno);
  // An io_uring accept keeps the descriptor limit of the moment it was armed (the kernel reads
  // RLIMIT_NOFILE when the request is prepared): a pause and resume re-arms it under the new one.
  // The epoll engine reads the limit at each accept4; for it the two calls change nothing.
  if (api.pause(engine.handle()) != EPOLL_ECHO_OK || api.resume(engine.handle()) != EPOLL_ECHO_OK) {
    return "pause/resume under the lowered limit failed: " + engine.lastError();
  }

  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (auto& client : clients) {  // loopback connects complete into the backlog without accept()
    if (::connect(client.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      return std::string("connect: ") + std::strerror(errno);
    }
    ::send(client.get(), "x", 1, MSG_NOSIGNAL);
  }
  bool ok = false;
  epoll_echo_stats_t stats = engine.waitForStats(
      [](const epoll_echo_stats_t& s) { return s.total.accept_errors > 0 || s.total.accept_pauses > 0; },
      deadlineIn(kIoTimeout), &ok);
  if (!ok)
    return "accept never failed: accepted " + std::to_string(stats.total.accepted) + " with limit " +
           std::to_string(limit);

  // A measurement window, not synchronisation: a spinning worker would burn the whole of it.
  const double cpuBefore = cpuSeconds();
  const uint64_t errorsBefore = engine.stats().total.accept_errors;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const double cpuUsed = cpuSeconds() - cpuBefore;
  stats = engine.stats();
  notes = "accepted " + std::to_string(stats.total.accepted) + ", accept_errors " +
          std::to_string(stats.total.accept_errors) + ", accept_pauses " + std::to_string(stats.total.accept_pauses) +
          ", cpu in 500 ms " + std::to_string(cpuUsed) + " s";
  if (cpuUsed > 0.2) return "the worker spins on EMFILE: " + notes;
  if (stats.total.accept_errors - errorsBefore > 100) return "accept retried in a loop: " + notes;
  if (stats.state != EPOLL_ECHO_STATE_RUNNING) return "the engine stopped: " + notes;

  clients.clear();  // frees the engine's descriptors as it sees the clients go
  engine.waitForStats([](const epoll_echo_stats_t& s) { return s.total.active == 0; }, deadlineIn(kIoTimeout));
  UniqueFd fresh = connectLoopback(port, deadlineIn(kIoTimeout), &error);
  if (!fresh) return "after the clients left: " + error;
  char reply[4];
  if (!sendAll(fresh.get(), "back", deadlineIn(kIoTimeout), &error) ||
      !receiveExactly(fresh.get(), reply, sizeof reply, deadlineIn(kIoTimeout), &error)) {
    return "no echo after the clients left (accepting never resumed?): " + error + "; " + notes;
  }
  ::setrlimit(RLIMIT_NOFILE, &original);
  return engine.stop() == EPOLL_ECHO_OK ? "" : "stop failed";
}

// Reads the child's report until EOF or the deadline, then reaps it (killing it if late).
int reapChild(pid_t child, int reportFd, std::string& report) {
  const Deadline deadline = deadlineIn(kBulkTimeout);
  char buffer[512];
  for (;;) {
    pollfd entry{reportFd, POLLIN, 0};
    if (::poll(&entry, 1, millisecondsLeft(deadline)) <= 0) {
      ::kill(child, SIGKILL);
      report += " (child timed out)";
      break;
    }
    ssize_t count = ::read(reportFd, buffer, sizeof buffer);
    if (count <= 0) break;
    report.append(buffer, static_cast<size_t>(count));
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(EngineFdExhaustionTest, AcceptSurvivesEmfileWithoutSpinning) {
  Plugin plugin;
  ASSERT_TRUE(plugin.loaded()) << plugin.error();
  ASSERT_EQ(countThreads(), 1) << "fork needs a single-threaded parent";
  int pipeFds[2];
  ASSERT_EQ(::pipe2(pipeFds, O_CLOEXEC), 0);
  UniqueFd readEnd(pipeFds[0]), writeEnd(pipeFds[1]);
  pid_t child = ::fork();
  ASSERT_GE(child, 0) << std::strerror(errno);
  if (child == 0) {
    readEnd.reset();
    std::string notes;
    std::string result = exhaustAndRecover(plugin.api(), notes);
    std::string message = result.empty() ? notes : result;
    (void)!::write(writeEnd.get(), message.data(), message.size());
    ::_exit(result.empty() ? 0 : result.rfind("SKIP", 0) == 0 ? kSkipExit : 1);
  }
  writeEnd.reset();
  std::string report;
  const int exitCode = reapChild(child, readEnd.get(), report);
  if (exitCode == kSkipExit) GTEST_SKIP() << report;
  EXPECT_EQ(exitCode, 0) << report;
  RecordProperty("child", report);
}

}  // namespace
}  // namespace epoll_echo::test
