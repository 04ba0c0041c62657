// hot_swap_test.cpp — end-to-end tests of epoll-server's plugin hot-swap (SIGHUP and --watch): the
// built server runs as a child on its own copy of the plugin while client threads ping-pong
// byte-checked messages, and every reload must lose no round trip, connection or byte.
#include <signal.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/net.h"
#include "support/ping_pong.h"
#include "support/process.h"
#include "support/temporary_directory.h"

namespace epoll_echo::test {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

constexpr seconds kStartTimeout{15};
constexpr seconds kReloadTimeout{15};  // generous for sanitizer builds on two loaded cores
constexpr seconds kIoTimeout{15};
constexpr std::size_t kLoadConnections = 16;
constexpr const char* kPluginName = "libepoll_echo.so";
constexpr const char* kReloaded = "epoll-server: reloaded: build ";

// A private directory holding a copy of the built plugin, and the server running from it. The
// ChildProcess destructor kills and reaps the server whatever the test does.
class HotSwapTest : public ::testing::Test {
 protected:
  void SetUp() override { fs::copy_file(EPOLL_ECHO_PLUGIN_PATH, plugin_); }

  void startServer(std::vector<std::string> extra) {
    std::vector<std::string> arguments = {"--bind",         "127.0.0.1", "--port",   "0",
                                          "--maxListeners", "2",         "--plugin", plugin_.string()};
    arguments.insert(arguments.end(), extra.begin(), extra.end());
    server_.emplace(EPOLL_ECHO_SERVER_PATH, arguments);
    const auto started = [&] { return (port_ = startLinePort(server_->capturedStderr())) != 0; };
    ASSERT_TRUE(server_->waitUntil(started, deadlineIn(kStartTimeout))) << server_->capturedStderr();
  }

  // Installs `source` as a linker does: a new file under a temporary name, renamed over the plugin.
  void install(const fs::path& source) {
    const fs::path staging = directory_ / "staging.tmp";
    fs::copy_file(source, staging, fs::copy_options::overwrite_existing);
    fs::rename(staging, plugin_);
  }

  void installText(const std::string& text) {
    const fs::path staging = directory_ / "staging.tmp";
    std::ofstream(staging, std::ios::binary | std::ios::trunc) << text;
    fs::rename(staging, plugin_);
  }

  bool waitForLogCount(const std::string& text, std::size_t count) {
    const auto enough = [&] { return countOccurrences(server_->capturedStderr(), text) >= count; };
    return server_->waitUntil(enough, deadlineIn(kReloadTimeout));
  }

  // SIGHUP, then the reload's log line (the n-th since start).
  void reloadWithSighup(std::size_t expectedReloads) {
    ASSERT_TRUE(server_->sendSignal(SIGHUP));
    ASSERT_TRUE(waitForLogCount(kReloaded, expectedReloads)) << server_->capturedStderr();
  }

  // Distinct files ("major:minor inode path") of the plugin mapped in the server: its memory
  // copies ("/memfd:libepoll_echo.so (deleted)"), or the file itself.
  std::set<std::string> mappedPluginFiles() {
    std::ifstream maps("/proc/" + std::to_string(server_->pid()) + "/maps");
    std::set<std::string> files;
    for (std::string line; std::getline(maps, line);) {
      std::istringstream fields(line);
      std::string range, permissions, offset, device, inode, path;
      if (!(fields >> range >> permissions >> offset >> device >> inode >> path)) continue;
      if (path == plugin_.string() || path == std::string("/memfd:") + kPluginName) {
        files.insert(device + " " + inode + " " + path);
      }
    }
    return files;
  }

  // Files in the plugin's directory besides the plugin and the test's staging file: the server
  // must write nothing there.
  std::vector<std::string> strangeFilesInPluginDirectory() {
    std::vector<std::string> strange;
    for (const auto& entry : fs::directory_iterator(directory_)) {
      const std::string name = entry.path().filename().string();
      if (name != kPluginName && name != "staging.tmp") strange.push_back(entry.path());
    }
    return strange;
  }

  void stopServerCleanly() {
    ASSERT_TRUE(server_->sendSignal(SIGTERM));
    const auto status = server_->waitForExit(deadlineIn(kStartTimeout));
    ASSERT_TRUE(status) << server_->capturedStderr();
    EXPECT_TRUE(status->succeeded()) << status->describe() << "\n" << server_->capturedStderr();
    EXPECT_EQ(strangeFilesInPluginDirectory(), std::vector<std::string>{}) << "the server wrote in " << directory_;
  }

  void expectEcho(int socket, const std::string& message) {
    std::string error;
    ASSERT_TRUE(sendAll(socket, message, deadlineIn(kIoTimeout), &error)) << error;
    std::string echoed(message.size(), '\0');
    ASSERT_TRUE(receiveExactly(socket, echoed.data(), echoed.size(), deadlineIn(kIoTimeout), &error)) << error;
    EXPECT_EQ(echoed, message);
  }

  // Declared before server_, so the server is gone before its directory is removed.
  TemporaryDirectory temporary_{"epoll-echo-hot-swap"};
  const fs::path directory_ = temporary_.path();
  const fs::path plugin_ = directory_ / kPluginName;
  std::optional<ChildProcess> server_;
  uint16_t port_ = 0;
};

TEST_F(HotSwapTest, SighupReloadsUnderLoadWithoutLosingAByte) {
  ASSERT_NO_FATAL_FAILURE(startServer({}));
  PingPongLoad load(port_, kLoadConnections);
  ASSERT_TRUE(load.waitForProgress(kLoadConnections, deadlineIn(kIoTimeout))) << load.error();
  constexpr std::size_t kReloads = 5;
  for (std::size_t reload = 1; reload <= kReloads; ++reload) {
    install(EPOLL_ECHO_PLUGIN_PATH);  // a new inode each time, as a rebuild leaves it
    ASSERT_NO_FATAL_FAILURE(reloadWithSighup(reload));
    ASSERT_TRUE(load.waitForProgress(kLoadConnections, deadlineIn(kIoTimeout))) << load.error();
  }
  EXPECT_NE(server_->capturedStderr().find("2 listeners, 16 connections handed over"), std::string::npos)
      << server_->capturedStderr();
  EXPECT_EQ(mappedPluginFiles().size(), 1u) << ::testing::PrintToString(mappedPluginFiles());
  ASSERT_TRUE(server_->sendSignal(SIGUSR1));
  EXPECT_TRUE(server_->waitForStdout(" reloads=5", deadlineIn(kIoTimeout))) << server_->capturedStdout();
  load.stop();
  EXPECT_EQ(load.error(), "");
  std::cout << "round trips during " << kReloads << " reloads: " << load.roundTrips() << "\n";
  ASSERT_NO_FATAL_FAILURE(stopServerCleanly());
  EXPECT_NE(server_->capturedStderr().find("active=0"), std::string::npos) << server_->capturedStderr();
}

TEST_F(HotSwapTest, WatchReloadsWhenANewBuildIsRenamedIntoPlace) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--watch"}));
  PingPongLoad load(port_, kLoadConnections);
  ASSERT_TRUE(load.waitForProgress(kLoadConnections, deadlineIn(kIoTimeout))) << load.error();
  for (std::size_t reload = 1; reload <= 3; ++reload) {
    install(EPOLL_ECHO_PLUGIN_PATH);
    ASSERT_TRUE(waitForLogCount(kReloaded, reload)) << server_->capturedStderr();
    ASSERT_TRUE(load.waitForProgress(kLoadConnections, deadlineIn(kIoTimeout))) << load.error();
  }
  EXPECT_EQ(mappedPluginFiles().size(), 1u) << ::testing::PrintToString(mappedPluginFiles());
  load.stop();
  EXPECT_EQ(load.error(), "");
  ASSERT_NO_FATAL_FAILURE(stopServerCleanly());
}

// `cp` rewrites the existing inode in place. The serving engine runs from a sealed memory copy,
// so the rewrite cannot change code under it, and under --watch the finished file is reloaded.
TEST_F(HotSwapTest, WatchSurvivesACopyOverThePluginInPlace) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--watch"}));
  for (const std::string& mapped : mappedPluginFiles()) EXPECT_NE(mapped, plugin_.string()) << "runs from the original";
  PingPongLoad load(port_, kLoadConnections);
  ASSERT_TRUE(load.waitForProgress(kLoadConnections, deadlineIn(kIoTimeout))) << load.error();
  fs::copy_file(EPOLL_ECHO_PLUGIN_PATH, plugin_, fs::copy_options::overwrite_existing);
  ASSERT_TRUE(waitForLogCount(kReloaded, 1)) << server_->capturedStderr();
  ASSERT_TRUE(load.waitForProgress(kLoadConnections, deadlineIn(kIoTimeout))) << load.error();
  EXPECT_EQ(mappedPluginFiles().size(), 1u) << ::testing::PrintToString(mappedPluginFiles());
  load.stop();
  EXPECT_EQ(load.error(), "");
  ASSERT_NO_FATAL_FAILURE(stopServerCleanly());
}

TEST_F(HotSwapTest, WatchRetriesAFileThatDoesNotLoadThenRejectsItAndKeepsServing) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--watch"}));
  PingPongLoad load(port_, 4);
  installText(
      "\x7f"
      "ELF truncated");
  ASSERT_TRUE(
      waitForLogCount(" rejected: plugin " + plugin_.string() + " is truncated: its ELF header needs 64 bytes", 1))
      << server_->capturedStderr();
  EXPECT_NE(server_->capturedStderr().find("not loadable yet (attempt 1 of 4)"), std::string::npos)
      << server_->capturedStderr();
  ASSERT_TRUE(load.waitForProgress(4, deadlineIn(kIoTimeout))) << load.error();
  install(EPOLL_ECHO_PLUGIN_PATH);  // the finished build is taken once it appears
  ASSERT_TRUE(waitForLogCount(kReloaded, 1)) << server_->capturedStderr();
  ASSERT_TRUE(load.waitForProgress(4, deadlineIn(kIoTimeout))) << load.error();
  load.stop();
  ASSERT_NO_FATAL_FAILURE(stopServerCleanly());
}

TEST_F(HotSwapTest, BadBuildsAreRejectedWithOneLineWhileTheOldOneServes) {
  ASSERT_NO_FATAL_FAILURE(startServer({}));
  PingPongLoad load(port_, 4);
  struct Bad {
    std::optional<fs::path> file;  // nullopt: garbage text
    const char* reason;
  };
  const Bad bads[] = {{std::nullopt, "is not an ELF file"},
                      {fs::path(HOT_SWAP_NOT_A_PLUGIN), "is not an epoll-echo plugin: symbol epoll_echo_abi_version"},
                      {fs::path(HOST_FAKE_PLUGIN_NO_STATS), "incomplete epoll-echo plugin: symbol epoll_echo_stats"},
                      {fs::path(HOST_FAKE_PLUGIN_ABI2), "has ABI 2.0"},
                      {fs::path(HOT_SWAP_FAKE_PLUGIN_ABI10), "has ABI 1.0, a hot-swap needs ABI 1.1"}};
  std::size_t rejections = 0;
  for (const Bad& bad : bads) {
    if (bad.file)
      install(*bad.file);
    else
      installText(std::string(4096, 'x'));  // past the ELF header's size
    ASSERT_TRUE(server_->sendSignal(SIGHUP));
    ASSERT_TRUE(waitForLogCount(" rejected: ", ++rejections)) << server_->capturedStderr();
    EXPECT_EQ(countOccurrences(server_->capturedStderr(), bad.reason), 1u) << server_->capturedStderr();
    EXPECT_EQ(countOccurrences(server_->capturedStderr(), "reload of " + plugin_.string() + " rejected: "), rejections);
    EXPECT_EQ(strangeFilesInPluginDirectory(), std::vector<std::string>{});
    ASSERT_TRUE(load.waitForProgress(4, deadlineIn(kIoTimeout))) << load.error();
  }
  EXPECT_EQ(countOccurrences(server_->capturedStderr(), kReloaded), 0u);
  install(EPOLL_ECHO_PLUGIN_PATH);
  ASSERT_NO_FATAL_FAILURE(reloadWithSighup(1));
  ASSERT_TRUE(load.waitForProgress(4, deadlineIn(kIoTimeout))) << load.error();
  EXPECT_EQ(mappedPluginFiles().size(), 1u) << ::testing::PrintToString(mappedPluginFiles());
  load.stop();
  ASSERT_NO_FATAL_FAILURE(stopServerCleanly());
}

TEST_F(HotSwapTest, ConnectionsQueuedInTheBacklogDuringAReloadAreServed) {
  ASSERT_NO_FATAL_FAILURE(startServer({}));
  std::vector<UniqueFd> clients;
  const auto connectSome = [&](int count) {
    for (int i = 0; i < count; ++i) {
      std::string error;
      clients.push_back(connectLoopback(port_, deadlineIn(kIoTimeout), &error));
      ASSERT_TRUE(clients.back()) << error;
    }
  };
  for (std::size_t reload = 1; reload <= 3; ++reload) {
    ASSERT_NO_FATAL_FAILURE(connectSome(8));  // nothing sent: some still wait in the accept queue
    ASSERT_TRUE(server_->sendSignal(SIGHUP));
    ASSERT_NO_FATAL_FAILURE(connectSome(8));  // while the old engine pauses and the new one starts
    ASSERT_TRUE(waitForLogCount(kReloaded, reload)) << server_->capturedStderr();
  }
  for (std::size_t i = 0; i < clients.size(); ++i) expectEcho(clients[i].get(), "queued " + std::to_string(i));
  ASSERT_NO_FATAL_FAILURE(stopServerCleanly());
  EXPECT_NE(server_->capturedStderr().find("accepted=48 active=0 closed=48"), std::string::npos)
      << server_->capturedStderr();
}

TEST_F(HotSwapTest, StopRightAfterAReloadExitsCleanly) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--watch"}));
  PingPongLoad load(port_, 4);
  ASSERT_TRUE(load.waitForProgress(4, deadlineIn(kIoTimeout))) << load.error();
  ASSERT_TRUE(server_->sendSignal(SIGHUP));
  install(EPOLL_ECHO_PLUGIN_PATH);  // a watched reload pending while the stop begins
  ASSERT_TRUE(server_->sendSignal(SIGTERM));
  const auto status = server_->waitForExit(deadlineIn(kStartTimeout));
  ASSERT_TRUE(status) << server_->capturedStderr();
  EXPECT_TRUE(status->succeeded()) << status->describe() << "\n" << server_->capturedStderr();
  EXPECT_EQ(strangeFilesInPluginDirectory(), std::vector<std::string>{});
  load.stop();  // the clients see EOF now: their errors are expected and not checked
}

}  // namespace
}  // namespace epoll_echo::test
