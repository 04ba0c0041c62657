// install_test.cpp — `cmake --install` into a temporary prefix: the layout, a separate consumer
// project built against it (CMake package and pkg-config), the installed epoll-server without
// --plugin, and the same again after the prefix has been moved.
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/expect_echo.h"
#include "support/net.h"
#include "support/process.h"
#include "support/server_process.h"
#include "support/temporary_directory.h"

namespace epoll_echo::test {
namespace {

namespace fs = std::filesystem;

// Configuring and building a project takes seconds; sanitizer builds on two busy cores take more.
constexpr std::chrono::seconds kBuildTimeout{240};

// Runs a command to completion; on failure the assertion message holds its whole output.
::testing::AssertionResult run(const std::string& program, const std::vector<std::string>& arguments) {
  const Completed done = runToCompletion(program, arguments, deadlineIn(kBuildTimeout));
  if (done.status && done.status->succeeded()) return ::testing::AssertionSuccess();
  std::string command = program;
  for (const std::string& argument : arguments) command += " " + argument;
  return ::testing::AssertionFailure() << command << ": "
                                       << (done.status ? done.status->describe() : std::string("timed out")) << "\n"
                                       << done.out << done.err;
}

::testing::AssertionResult install(const fs::path& prefix) {
  return run(CMAKE_COMMAND, {"--install", EPOLL_ECHO_BINARY_DIR, "--prefix", prefix.string()});
}

// Configures and builds tests/install/consumer against `prefix`, then runs both of its programs.
void buildAndRunConsumer(const fs::path& prefix, const fs::path& buildDir) {
  // pkg-config finds the .pc file through PKG_CONFIG_PATH; the CMake package through the prefix.
  const std::string pkgConfigPath = (prefix / EPOLL_ECHO_INSTALL_LIBDIR / "pkgconfig").string();
  ASSERT_EQ(::setenv("PKG_CONFIG_PATH", pkgConfigPath.c_str(), 1), 0);
  ASSERT_TRUE(run(CMAKE_COMMAND,
                  {"-S", EPOLL_ECHO_CONSUMER_DIR, "-B", buildDir.string(), "-DCMAKE_PREFIX_PATH=" + prefix.string(),
                   "-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DCONSUMER_EXTRA_FLAGS=" EPOLL_ECHO_SANITIZE_FLAGS}));
  ASSERT_TRUE(run(CMAKE_COMMAND, {"--build", buildDir.string()}));
  std::ifstream foundFile(buildDir / "found.txt");
  std::stringstream found;
  found << foundFile.rdbuf();
  const std::string plugin = (prefix / EPOLL_ECHO_INSTALL_LIBDIR / "epoll_echo" / "libepoll_echo.so").string();
  EXPECT_NE(found.str().find("cmake_plugin=" + plugin + "\n"), std::string::npos) << found.str();
  EXPECT_NE(found.str().find("cmake_version=" EPOLL_ECHO_PROJECT_VERSION "\n"), std::string::npos) << found.str();
  // pkg-config may spell the prefix with "/lib/pkgconfig/../.." left in: compare the real paths.
  const std::string marker = "pkgconfig_plugindir=";
  const std::size_t at = found.str().find(marker);
  ASSERT_NE(at, std::string::npos) << found.str();
  const std::string plugindir = found.str().substr(at + marker.size(), found.str().find('\n', at) - at - marker.size());
  EXPECT_EQ(fs::canonical(plugindir), fs::canonical(fs::path(plugin).parent_path())) << found.str();
  for (const char* program : {"consumer_cmake", "consumer_pkgconfig"}) {
    EXPECT_TRUE(run((buildDir / program).string(), {})) << program;
  }
}

// The installed epoll-server, without --plugin, must find the installed plugin and echo.
void runInstalledServer(const fs::path& prefix) {
  const fs::path server = prefix / EPOLL_ECHO_INSTALL_BINDIR / "epoll-server";
  ServerCommand installed;
  installed.program = server.string();
  ServerProcess child;
  ASSERT_TRUE(child.start(loopbackFlags({"--maxListeners", "2"}), installed));
  ASSERT_EQ(child.startLine().address, "127.0.0.1") << child.log();
  const std::string plugin = (prefix / EPOLL_ECHO_INSTALL_LIBDIR / "epoll_echo" / "libepoll_echo.so").string();
  EXPECT_NE(child.log().find("plugin " + plugin + ","), std::string::npos) << child.log();
  ASSERT_NO_FATAL_FAILURE(expectEchoOnNewConnection(child.port(), "hello, installed server\n"));
  ASSERT_TRUE(child.stop(SIGTERM));
}

TEST(InstallTest, InstallsTheDocumentedLayout) {
  TemporaryDirectory work("epoll-echo-install");
  const fs::path prefix = work.path() / "prefix";
  ASSERT_TRUE(install(prefix));
  const fs::path lib = prefix / EPOLL_ECHO_INSTALL_LIBDIR;
  for (const fs::path& file :
       {prefix / EPOLL_ECHO_INSTALL_BINDIR / "epoll-server", lib / "epoll_echo" / "libepoll_echo.so",
        prefix / EPOLL_ECHO_INSTALL_INCLUDEDIR / "epoll_echo.h",
        lib / "cmake" / "epoll_echo" / "epoll_echoConfig.cmake",
        lib / "cmake" / "epoll_echo" / "epoll_echoConfigVersion.cmake", lib / "pkgconfig" / "epoll_echo.pc",
        prefix / EPOLL_ECHO_INSTALL_DOCDIR / "README.md",
        prefix / EPOLL_ECHO_INSTALL_DOCDIR / "docs" / "operations.md",
        prefix / EPOLL_ECHO_INSTALL_DOCDIR / "docs" / "benchmarks.svg",
        prefix / EPOLL_ECHO_INSTALL_DOCDIR / "docs" / "examples" / "embed.c",
        prefix / EPOLL_ECHO_INSTALL_MANDIR / "man1" / "epoll-server.1"}) {
    EXPECT_TRUE(fs::is_regular_file(file)) << file << " was not installed";
  }
}

// The relative targets of the Markdown links "[text](target#anchor)" in `text`, anchors dropped.
std::vector<std::string> relativeLinks(const std::string& text) {
  std::vector<std::string> links;
  for (std::size_t at = text.find("]("); at != std::string::npos; at = text.find("](", at + 2)) {
    const std::size_t end = text.find(')', at + 2);
    if (end == std::string::npos) break;
    const std::string target = text.substr(at + 2, end - at - 2);
    const std::string path = target.substr(0, target.find('#'));
    if (!path.empty() && path.find(':') == std::string::npos) links.push_back(path);
  }
  return links;
}

// Every relative link of the installed README.md, such as [abi](docs/abi.md#section), names an
// installed file.
TEST(InstallTest, InstalledReadmeLinksResolve) {
  TemporaryDirectory work("epoll-echo-install");
  const fs::path prefix = work.path() / "prefix";
  ASSERT_TRUE(install(prefix));
  const fs::path docdir = prefix / EPOLL_ECHO_INSTALL_DOCDIR;
  std::ifstream readme(docdir / "README.md");
  const std::string text((std::istreambuf_iterator<char>(readme)), std::istreambuf_iterator<char>());
  const std::vector<std::string> links = relativeLinks(text);
  EXPECT_FALSE(links.empty());
  for (const std::string& link : links) {
    EXPECT_TRUE(fs::exists(docdir / link)) << "README.md links to " << link << ", which is not installed";
  }
}

TEST(InstallTest, ConsumerAndServerWorkFromTheInstalledTree) {
  TemporaryDirectory work("epoll-echo-install");
  const fs::path prefix = work.path() / "prefix";
  ASSERT_TRUE(install(prefix));
  buildAndRunConsumer(prefix, work.path() / "consumer-build");
  runInstalledServer(prefix);
}

TEST(InstallTest, MovedPrefixStillWorks) {
  TemporaryDirectory work("epoll-echo-install");
  const fs::path original = work.path() / "prefix";
  ASSERT_TRUE(install(original));
  const fs::path moved = work.path() / "moved" / "elsewhere";
  fs::create_directories(moved.parent_path());
  fs::rename(original, moved);
  // Nothing may point back at the original prefix: it is gone.
  ASSERT_FALSE(fs::exists(original));
  buildAndRunConsumer(moved, work.path() / "consumer-build");
  runInstalledServer(moved);
}

}  // namespace
}  // namespace epoll_echo::test
