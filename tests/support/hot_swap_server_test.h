// hot_swap_server_test.h — the base fixture of the hot-swap end-to-end tests: a private directory
// holding a copy of the built plugin, and an epoll-server running from it on loopback with two
// listeners. The tests install builds into the directory and watch the server's log and mappings.
#pragma once

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "support/plugin_directory.h"
#include "support/server_process.h"

namespace epoll_echo::test {

// The start of the line the server logs for each reload it takes.
constexpr const char* kReloaded = "epoll-server: reloaded: build ";

class HotSwapServerTest : public ::testing::Test {
 protected:
  // `prefix` names the directory; `mappings` says which mappings mappedPluginFiles() counts.
  HotSwapServerTest(const std::string& prefix, PluginMappings mappings) : plugins_(prefix), mappings_(mappings) {}

  // Starts the server on the directory's plugin with `flags` after the fixture's own.
  void startServer(const std::vector<std::string>& flags) {
    std::vector<std::string> all = {"--plugin", plugins_.plugin().string()};
    all.insert(all.end(), flags.begin(), flags.end());
    startServerAs({}, all);
  }
  // Starts the server as `command` says (another binary, behind a wrapper), without --plugin.
  void startServerAs(const ServerCommand& command, const std::vector<std::string>& flags) {
    std::vector<std::string> all = {"--maxListeners", "2"};
    all.insert(all.end(), flags.begin(), flags.end());
    ASSERT_TRUE(server_.start(loopbackFlags(all), command));
    ASSERT_EQ(server_.startLine().address, "127.0.0.1") << server_.log();
  }

  std::set<std::string> mappedPluginFiles() const { return plugins_.mappedPluginFiles(server_.pid(), mappings_); }

  // Declared before server_, so the server is gone before its directory is removed.
  PluginDirectory plugins_;
  ServerProcess server_;

 private:
  PluginMappings mappings_;
};

}  // namespace epoll_echo::test
