// hot_swap_test.cpp — end-to-end tests of epoll-server's plugin hot-swap (SIGHUP and --watch): the
// built server runs as a child on its own copy of the plugin while client threads ping-pong
// byte-checked messages, and every reload must lose no round trip, connection or byte.
#include <signal.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/expect_echo.h"
#include "support/hot_swap_server_test.h"
#include "support/net.h"
#include "support/ping_pong.h"
#include "support/timeouts.h"

namespace epoll_echo::test {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kLoadConnections = 16;

// A private directory holding a copy of the built plugin, and the server running from it. Counts
// as mapped plugin files only the plugin and its memory copies (named after it).
class HotSwapTest : public HotSwapServerTest {
 protected:
  HotSwapTest() : HotSwapServerTest("epoll-echo-hot-swap", PluginMappings::PluginAndItsCopies) {}

  // SIGHUP, then the reload's log line (the n-th since start).
  void reloadWithSighup(std::size_t expectedReloads) {
    ASSERT_TRUE(server_.sendSignal(SIGHUP));
    ASSERT_TRUE(server_.waitForLog(kReloaded, expectedReloads));
  }

  // Files in the plugin's directory besides the plugin and the staging file: the server must
  // write nothing there.
  std::vector<std::string> strangeFilesInPluginDirectory() {
    std::vector<std::string> strange;
    for (const std::string& name : plugins_.entries()) {
      if (name != PluginDirectory::kPluginName && name != PluginDirectory::kStagingName) {
        strange.push_back((plugins_.path() / name).string());
      }
    }
    return strange;
  }

  void stopServerCleanly() {
    ASSERT_TRUE(server_.stop(SIGTERM));
    EXPECT_EQ(strangeFilesInPluginDirectory(), std::vector<std::string>{}) << "the server wrote in " << plugins_.path();
  }
};

TEST_F(HotSwapTest, SighupReloadsUnderLoadWithoutLosingAByte) {
  ASSERT_NO_FATAL_FAILURE(startServer({}));
  PingPongLoad load(server_.port(), kLoadConnections);
  ASSERT_TRUE(load.waitForProgress(kLoadConnections, deadlineIn(kIoTimeout))) << load.error();
  constexpr std::size_t kReloads = 5;
  for (std::size_t reload = 1; reload <= kReloads; ++reload) {
    plugins_.installCopyOf(EPOLL_ECHO_PLUGIN_PATH);  // a new inode each time, as a rebuild leaves it
    ASSERT_NO_FATAL_FAILURE(reloadWithSighup(reload));
    ASSERT_TRUE(load.waitForProgress(kLoadConnections, deadlineIn(kIoTimeout))) << load.error();
  }
  EXPECT_NE(server_.log().find("2 listeners, 16 connections handed over"), std::string::npos) << server_.log();
  EXPECT_EQ(mappedPluginFiles().size(), 1u) << ::testing::PrintToString(mappedPluginFiles());
  ASSERT_TRUE(server_.sendSignal(SIGUSR1));
  EXPECT_TRUE(server_.child().waitForStdout(" reloads=5", deadlineIn(kIoTimeout))) << server_.child().capturedStdout();
  load.stop();
  EXPECT_EQ(load.error(), "");
  std::cout << "round trips during " << kReloads << " reloads: " << load.roundTrips() << "\n";
  ASSERT_NO_FATAL_FAILURE(stopServerCleanly());
  EXPECT_NE(server_.log().find("active=0"), std::string::npos) << server_.log();
}

TEST_F(HotSwapTest, WatchReloadsWhenANewBuildIsRenamedIntoPlace) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--watch"}));
  PingPongLoad load(server_.port(), kLoadConnections);
  ASSERT_TRUE(load.waitForProgress(kLoadConnections, deadlineIn(kIoTimeout))) << load.error();
  for (std::size_t reload = 1; reload <= 3; ++reload) {
    plugins_.installCopyOf(EPOLL_ECHO_PLUGIN_PATH);
    ASSERT_TRUE(server_.waitForLog(kReloaded, reload));
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
  for (const std::string& mapped : mappedPluginFiles())
    EXPECT_NE(mapped, plugins_.plugin().string()) << "runs from the original";
  PingPongLoad load(server_.port(), kLoadConnections);
  ASSERT_TRUE(load.waitForProgress(kLoadConnections, deadlineIn(kIoTimeout))) << load.error();
  fs::copy_file(EPOLL_ECHO_PLUGIN_PATH, plugins_.plugin(), fs::copy_options::overwrite_existing);
  ASSERT_TRUE(server_.waitForLog(kReloaded, 1));
  ASSERT_TRUE(load.waitForProgress(kLoadConnections, deadlineIn(kIoTimeout))) << load.error();
  EXPECT_EQ(mappedPluginFiles().size(), 1u) << ::testing::PrintToString(mappedPluginFiles());
  load.stop();
  EXPECT_EQ(load.error(), "");
  ASSERT_NO_FATAL_FAILURE(stopServerCleanly());
}

TEST_F(HotSwapTest, WatchRetriesAFileThatDoesNotLoadThenRejectsItAndKeepsServing) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--watch"}));
  PingPongLoad load(server_.port(), 4);
  plugins_.install(
      "\x7f"
      "ELF truncated");
  ASSERT_TRUE(server_.waitForLog(
      " rejected: plugin " + plugins_.plugin().string() + " is truncated: its ELF header needs 64 bytes", 1));
  EXPECT_NE(server_.log().find("not loadable yet (attempt 1 of 4)"), std::string::npos) << server_.log();
  ASSERT_TRUE(load.waitForProgress(4, deadlineIn(kIoTimeout))) << load.error();
  plugins_.installCopyOf(EPOLL_ECHO_PLUGIN_PATH);  // the finished build is taken once it appears
  ASSERT_TRUE(server_.waitForLog(kReloaded, 1));
  ASSERT_TRUE(load.waitForProgress(4, deadlineIn(kIoTimeout))) << load.error();
  load.stop();
  ASSERT_NO_FATAL_FAILURE(stopServerCleanly());
}

TEST_F(HotSwapTest, BadBuildsAreRejectedWithOneLineWhileTheOldOneServes) {
  ASSERT_NO_FATAL_FAILURE(startServer({}));
  PingPongLoad load(server_.port(), 4);
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
      plugins_.installCopyOf(*bad.file);
    else
      plugins_.install(std::string(4096, 'x'));  // past the ELF header's size
    ASSERT_TRUE(server_.sendSignal(SIGHUP));
    ASSERT_TRUE(server_.waitForLog(" rejected: ", ++rejections));
    EXPECT_EQ(countOccurrences(server_.log(), bad.reason), 1u) << server_.log();
    EXPECT_EQ(countOccurrences(server_.log(), "reload of " + plugins_.plugin().string() + " rejected: "), rejections);
    EXPECT_EQ(strangeFilesInPluginDirectory(), std::vector<std::string>{});
    ASSERT_TRUE(load.waitForProgress(4, deadlineIn(kIoTimeout))) << load.error();
  }
  EXPECT_EQ(countOccurrences(server_.log(), kReloaded), 0u);
  plugins_.installCopyOf(EPOLL_ECHO_PLUGIN_PATH);
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
      clients.push_back(connectLoopback(server_.port(), deadlineIn(kIoTimeout), &error));
      ASSERT_TRUE(clients.back()) << error;
    }
  };
  for (std::size_t reload = 1; reload <= 3; ++reload) {
    ASSERT_NO_FATAL_FAILURE(connectSome(8));  // nothing sent: some still wait in the accept queue
    ASSERT_TRUE(server_.sendSignal(SIGHUP));
    ASSERT_NO_FATAL_FAILURE(connectSome(8));  // while the old engine pauses and the new one starts
    ASSERT_TRUE(server_.waitForLog(kReloaded, reload));
  }
  for (std::size_t i = 0; i < clients.size(); ++i) expectEcho(clients[i].get(), "queued " + std::to_string(i));
  ASSERT_NO_FATAL_FAILURE(stopServerCleanly());
  EXPECT_NE(server_.log().find("accepted=48 active=0 closed=48"), std::string::npos) << server_.log();
}

TEST_F(HotSwapTest, StopRightAfterAReloadExitsCleanly) {
  ASSERT_NO_FATAL_FAILURE(startServer({"--watch"}));
  PingPongLoad load(server_.port(), 4);
  ASSERT_TRUE(load.waitForProgress(4, deadlineIn(kIoTimeout))) << load.error();
  ASSERT_TRUE(server_.sendSignal(SIGHUP));
  plugins_.installCopyOf(EPOLL_ECHO_PLUGIN_PATH);  // a watched reload pending while the stop begins
  ASSERT_TRUE(server_.stop(SIGTERM));
  EXPECT_EQ(strangeFilesInPluginDirectory(), std::vector<std::string>{});
  load.stop();  // the clients see EOF now: their errors are expected and not checked
}

}  // namespace
}  // namespace epoll_echo::test
