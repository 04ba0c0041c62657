// hot_swap_plugin_file_test.cpp — end-to-end tests of what epoll-server does with the plugin *file*
// while it serves: builds cut short, damaged, rewritten while being read, reached through a
// symlink, or in a directory the server cannot write. The server must never die, no client may
// lose a connection or a byte, and a good build afterwards must be taken.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/elf_file.h"
#include "support/hot_swap_server_test.h"
#include "support/net.h"
#include "support/ping_pong.h"
#include "support/timeouts.h"

namespace epoll_echo::test {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kConnections = 8;
constexpr const char* kPluginName = PluginDirectory::kPluginName;

// Counts as mapped plugin files every memory file and every .so of the directory: a build that
// stays mapped under another name counts too.
class HotSwapPluginFileTest : public HotSwapServerTest {
 protected:
  HotSwapPluginFileTest()
      : HotSwapServerTest("epoll-echo-plugin-file", PluginMappings::AnyMemoryFileOrLibraryInTheDirectory) {}

  // The load kept running, `mappedCopies` plugin copies are mapped, and SIGTERM ends the server
  // with exit 0.
  void expectHealthyThenStop(PingPongLoad& load, std::size_t mappedCopies = 1) {
    EXPECT_TRUE(load.waitForProgress(kConnections, deadlineIn(kIoTimeout))) << load.error();
    EXPECT_EQ(mappedPluginFiles().size(), mappedCopies) << ::testing::PrintToString(mappedPluginFiles());
    load.stop();
    EXPECT_EQ(load.error(), "");
    ASSERT_TRUE(server_.stop(SIGTERM));
  }

  const std::filesystem::path& directory_ = plugins_.path();
  const std::filesystem::path& plugin_ = plugins_.plugin();
  const std::string build_ = readWholeFile(EPOLL_ECHO_PLUGIN_PATH);
};

// Cuts the loader cannot survive, moved into place one after another as a slow writer would
// leave them: each is retried and reported with its size, the last one finally rejected,
// and the old engine serves throughout. Then a cut with every loadable byte, and the whole
// build, are taken.
TEST_F(HotSwapPluginFileTest, WatchKeepsServingWhileTruncatedBuildsAreMovedIntoPlace) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--watch"}));
  PingPongLoad load(server_.port(), kConnections);
  ASSERT_TRUE(load.waitForProgress(kConnections, deadlineIn(kIoTimeout))) << load.error();
  // Each cut costs a debounce and a load: a dozen, spread from the empty file to one byte short.
  const std::set<uint64_t> cuts = sampleCuts(truncationCuts(build_, true), 12);
  std::string lastReason;
  for (const uint64_t cut : cuts) {
    plugins_.install(build_.substr(0, cut));
    lastReason = cut == 0 ? "the file is empty\n"
                          : ", the file has " + std::to_string(cut) + (cut == 1 ? " byte\n" : " bytes\n");
    ASSERT_TRUE(server_.waitForLog(
        "not loadable yet (attempt 1 of 4), retrying in 200 ms in case it is still being written: plugin " +
        plugin_.string() + " is truncated: "));
    ASSERT_TRUE(server_.waitForLog(lastReason)) << "cut at " << cut;
    ASSERT_EQ(load.error(), "") << "cut at " << cut;
  }
  // The last cut stays: after its retries, one line rejects it (its size ends the reason).
  ASSERT_TRUE(server_.waitForLog(lastReason.substr(0, lastReason.size() - 1) + "; still serving build "));
  EXPECT_NE(server_.log().find(" rejected: plugin " + plugin_.string() + " is truncated: "), std::string::npos);
  ASSERT_TRUE(load.waitForProgress(kConnections, deadlineIn(kIoTimeout))) << load.error();
  EXPECT_EQ(countOccurrences(server_.log(), kReloaded), 0u);

  plugins_.install(build_.substr(0, readElfLayout(build_).loadableEnd));  // no debug information, no section headers
  ASSERT_TRUE(server_.waitForLog(kReloaded, 1));
  plugins_.install(build_);
  ASSERT_TRUE(server_.waitForLog(kReloaded, 2));
  EXPECT_EQ(plugins_.entries(), std::set<std::string>{kPluginName});
  ASSERT_NO_FATAL_FAILURE(expectHealthyThenStop(load));
}

// `cp` over the plugin rewrites it in place (same inode): a SIGHUP at any point of the rewrite
// finds the file cut short, and is rejected with its size; the whole file is then taken.
TEST_F(HotSwapPluginFileTest, SighupDuringAnInPlaceRewriteRejectsThePartFileAndTakesTheWholeOne) {
  ASSERT_NO_FATAL_FAILURE(startServer({}));
  PingPongLoad load(server_.port(), kConnections);
  ASSERT_TRUE(load.waitForProgress(kConnections, deadlineIn(kIoTimeout))) << load.error();
  const int fd = ::open(plugin_.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::size_t written = 0;
  std::size_t rejections = 0;
  for (const uint64_t cut : truncationCuts(build_, true)) {
    ASSERT_EQ(::write(fd, build_.data() + written, cut - written), static_cast<ssize_t>(cut - written));
    written = cut;
    ASSERT_TRUE(server_.sendSignal(SIGHUP));
    ASSERT_TRUE(server_.waitForLog(" rejected: plugin " + plugin_.string() + " is truncated: ", ++rejections))
        << "cut at " << cut;
    const std::string size = cut == 0 ? "the file is empty;" : " the file has " + std::to_string(cut) + " byte";
    EXPECT_NE(server_.log().find(size), std::string::npos) << size;
  }
  ASSERT_EQ(::write(fd, build_.data() + written, build_.size() - written),
            static_cast<ssize_t>(build_.size() - written));
  ::close(fd);
  ASSERT_TRUE(server_.sendSignal(SIGHUP));
  ASSERT_TRUE(server_.waitForLog(kReloaded));
  ASSERT_NO_FATAL_FAILURE(expectHealthyThenStop(load));
}

// The same rewrite racing with reloads: a copy may start, or end, in the middle of it. Whatever
// each reload reads, the server keeps serving: each SIGHUP ends in "reloaded" or one "rejected"
// line (the log shows how often each case was hit).
TEST_F(HotSwapPluginFileTest, SighupsRacingAnInPlaceRewriteNeverTakeTheServerDown) {
  ASSERT_NO_FATAL_FAILURE(startServer({}));
  PingPongLoad load(server_.port(), kConnections);
  ASSERT_TRUE(load.waitForProgress(kConnections, deadlineIn(kIoTimeout))) << load.error();
  std::atomic<bool> writing{true};
  std::string writeError;
  std::thread writer([&] {
    for (int round = 0; round < 40 && writeError.empty(); ++round) {
      const int fd = ::open(plugin_.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);  // as cp does
      if (fd < 0) writeError = "open failed";
      for (std::size_t at = 0; fd >= 0 && at < build_.size(); at += 4096) {
        const std::size_t size = std::min<std::size_t>(4096, build_.size() - at);
        if (::write(fd, build_.data() + at, size) != static_cast<ssize_t>(size)) writeError = "write failed";
      }
      if (fd >= 0) ::close(fd);
    }
    writing = false;
  });
  std::size_t requests = 0;
  const auto answered = [&] {
    const std::string& log = server_.log();
    return countOccurrences(log, kReloaded) + countOccurrences(log, " rejected: ") >= requests;
  };
  while (writing && requests < 100) {
    if (!server_.sendSignal(SIGHUP)) break;
    ++requests;
    if (!server_.child().waitUntil(answered, deadlineIn(kServerTimeout))) break;
  }
  writer.join();
  ASSERT_EQ(writeError, "");
  ASSERT_TRUE(server_.child().waitUntil(answered, deadlineIn(kServerTimeout))) << server_.log();
  const std::size_t reloadedBefore = countOccurrences(server_.log(), kReloaded);
  const std::string& log = server_.log();
  std::cout << requests << " reloads requested while rewriting: " << reloadedBefore << " taken, "
            << countOccurrences(log, " is truncated: ") << " truncated, " << countOccurrences(log, "is empty")
            << " empty, " << countOccurrences(log, " changed while it was being copied ") << " changed while copied\n";
  ASSERT_TRUE(server_.sendSignal(SIGHUP));  // the file is whole now
  ASSERT_TRUE(server_.waitForLog(kReloaded, reloadedBefore + 1));
  ASSERT_NO_FATAL_FAILURE(expectHealthyThenStop(load));
}

TEST_F(HotSwapPluginFileTest, DamagedBuildsAreRejectedAndStrippedOnesTakenOnSighup) {
  ASSERT_NO_FATAL_FAILURE(startServer({}));
  PingPongLoad load(server_.port(), kConnections);
  ASSERT_TRUE(load.waitForProgress(kConnections, deadlineIn(kIoTimeout))) << load.error();
  struct Case {
    std::string bytes;
    std::string logged;  // the line that must follow the SIGHUP
  };
  const std::string rejected = "reload of " + plugin_.string() + " rejected: plugin " + plugin_.string();
  const std::vector<Case> cases = {
      {std::string(65536, '\0'), rejected + " is not an ELF file"},
      {withForeignMachine(build_), rejected + " is built for "},
      {withoutSectionHeaders(build_), kReloaded},
      {withCorruptSectionHeaders(build_), kReloaded},
  };
  for (const Case& each : cases) {
    const std::size_t before = countOccurrences(server_.log(), each.logged);
    plugins_.install(each.bytes);
    ASSERT_TRUE(server_.sendSignal(SIGHUP));
    ASSERT_TRUE(server_.waitForLog(each.logged, before + 1));
    ASSERT_TRUE(load.waitForProgress(kConnections, deadlineIn(kIoTimeout))) << load.error();
  }
  ASSERT_NO_FATAL_FAILURE(expectHealthyThenStop(load));
}

// --plugin may name a symlink: a reload follows it, and replacing the link is a new build.
TEST_F(HotSwapPluginFileTest, ASymlinkedPluginReloadsOnSighupAndWhenTheLinkIsReplaced) {
  const fs::path builds = directory_ / "builds";
  fs::create_directory(builds);
  fs::copy_file(EPOLL_ECHO_PLUGIN_PATH, builds / "first.so");
  fs::copy_file(EPOLL_ECHO_PLUGIN_PATH, builds / "second.so");
  const fs::path link = directory_ / "current.so";
  fs::create_symlink(builds / "first.so", link);
  ASSERT_NO_FATAL_FAILURE(startServerAs({}, {"--plugin", link.string(), "--watch"}));
  PingPongLoad load(server_.port(), kConnections);
  ASSERT_TRUE(load.waitForProgress(kConnections, deadlineIn(kIoTimeout))) << load.error();
  ASSERT_TRUE(server_.sendSignal(SIGHUP));
  ASSERT_TRUE(server_.waitForLog(kReloaded, 1));
  const fs::path staging = directory_ / "staging.so";
  fs::create_symlink(builds / "second.so", staging);
  fs::rename(staging, link);  // what `ln -sfn` does
  ASSERT_TRUE(server_.waitForLog(kReloaded, 2));
  ASSERT_NO_FATAL_FAILURE(expectHealthyThenStop(load));
}

// Nothing the server loads is a file: whatever ends it, nothing is left next to the plugin.
TEST_F(HotSwapPluginFileTest, AKilledServerLeavesNothingBehind) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--watch"}));
  plugins_.install(build_);
  ASSERT_TRUE(server_.waitForLog(kReloaded));
  ASSERT_TRUE(server_.sendSignal(SIGKILL));
  const auto status = server_.child().waitForExit(deadlineIn(kServerTimeout));
  ASSERT_TRUE(status);
  EXPECT_EQ(status->describe(), "killed by SIGKILL");
  EXPECT_EQ(plugins_.entries(), std::set<std::string>{kPluginName});
}

// The build id in the n-th (from 1) "reloaded: build ID serving" line; "" if there is none.
std::string reloadedBuild(const std::string& log, std::size_t n) {
  std::size_t at = std::string::npos;
  for (std::size_t i = 0; i < n; ++i) {
    at = log.find(kReloaded, at == std::string::npos ? 0 : at + 1);
    if (at == std::string::npos) return "";
  }
  const std::size_t start = at + std::strlen(kReloaded);
  return log.substr(start, log.find(' ', start) - start);
}

// A build that dlclose() cannot unmap (linked -z nodelete) is reported once replaced, and its
// memory copy stays open: the next copy then cannot get its fd number, whose /proc/self/fd/N
// name glibc would match to the old, still-loaded object and hand back the old code.
TEST_F(HotSwapPluginFileTest, ABuildThatStaysMappedIsReportedAndNeverServedAgain) {
  ASSERT_NO_FATAL_FAILURE(startServer({}));
  PingPongLoad load(server_.port(), kConnections);
  ASSERT_TRUE(load.waitForProgress(kConnections, deadlineIn(kIoTimeout))) << load.error();
  const auto reload = [&](const std::string& bytes, std::size_t count) {
    plugins_.install(bytes);
    ASSERT_TRUE(server_.sendSignal(SIGHUP));
    ASSERT_TRUE(server_.waitForLog(kReloaded, count));
    ASSERT_TRUE(load.waitForProgress(kConnections, deadlineIn(kIoTimeout))) << load.error();
  };
  ASSERT_NO_FATAL_FAILURE(reload(readWholeFile(HOT_SWAP_PLUGIN_NODELETE), 1));
  const std::string sticky = reloadedBuild(server_.log(), 1);
  ASSERT_NO_FATAL_FAILURE(reload(build_, 2));
  EXPECT_EQ(countOccurrences(server_.log(), "is still mapped (RTLD_NODELETE, or another handle holds it)"), 1u)
      << server_.log();
  for (std::size_t count = 3; count <= 5; ++count) {
    ASSERT_NO_FATAL_FAILURE(reload(build_, count));
    EXPECT_NE(reloadedBuild(server_.log(), count), sticky) << server_.log();
  }
  EXPECT_NE(reloadedBuild(server_.log(), 2), sticky);
  ASSERT_NO_FATAL_FAILURE(expectHealthyThenStop(load, 2));  // the serving copy and the one that cannot go
}

// "Uid:" of /proc/PID/status: real, effective, saved and filesystem uid.
std::string uidsOf(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Uid:", 0) == 0) return line;
  }
  return "";
}

// As under systemd's DynamicUser= or a container's USER: the server runs as nobody (65534) and
// cannot write where it and its plugin are installed. Start, SIGHUP and --watch all work.
TEST_F(HotSwapPluginFileTest, AnUnprivilegedServerReloadsFromADirectoryItCannotWrite) {
  if (::geteuid() != 0) GTEST_SKIP() << "not root: cannot start the server as uid 65534 (setpriv); run as root";
  if (!fs::exists("/usr/bin/setpriv")) GTEST_SKIP() << "setpriv (util-linux) is not installed";
  // The binaries are copied: the build tree may not be readable by uid 65534. The directory stays
  // root's, mode 0755: readable and searchable by anyone, writable by root only.
  const fs::path server = directory_ / "epoll-server";
  fs::copy_file(EPOLL_ECHO_SERVER_PATH, server);
  fs::permissions(server, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(plugin_,
                  fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
  fs::permissions(directory_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
  // No --plugin: the server finds the plugin next to itself.
  ServerCommand unprivileged;
  unprivileged.program = "/usr/bin/setpriv";
  unprivileged.programArguments = {"--reuid=65534", "--regid=65534", "--clear-groups", server.string()};
  ASSERT_NO_FATAL_FAILURE(startServerAs(unprivileged, {"--watch"}));
  EXPECT_EQ(uidsOf(server_.pid()), "Uid:\t65534\t65534\t65534\t65534");
  EXPECT_NE(server_.log().find("plugin " + plugin_.string() + ", "), std::string::npos) << server_.log();
  PingPongLoad load(server_.port(), kConnections);
  ASSERT_TRUE(load.waitForProgress(kConnections, deadlineIn(kIoTimeout))) << load.error();
  ASSERT_TRUE(server_.sendSignal(SIGHUP));
  ASSERT_TRUE(server_.waitForLog(kReloaded, 1));
  ASSERT_TRUE(load.waitForProgress(kConnections, deadlineIn(kIoTimeout))) << load.error();
  plugins_.install(build_);  // a new build renamed into place: --watch takes it
  ASSERT_TRUE(server_.waitForLog(kReloaded, 2));
  EXPECT_EQ(plugins_.entries(), (std::set<std::string>{"epoll-server", kPluginName}));
  ASSERT_NO_FATAL_FAILURE(expectHealthyThenStop(load));
}

}  // namespace
}  // namespace epoll_echo::test
