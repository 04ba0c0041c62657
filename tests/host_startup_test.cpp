// host_startup_test.cpp — end-to-end tests of what epoll-server refuses before it serves: bad flags
// (exit 2), unusable plugins (exit 1, one line each), plus --help, --version and the plugin search.
#include <dlfcn.h>
#include <link.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/elf_file.h"
#include "support/expect_echo.h"
#include "support/plugin.h"
#include "support/process.h"
#include "support/server_process.h"
#include "support/temporary_directory.h"
#include "support/timeouts.h"

namespace epoll_echo::test {
namespace {

namespace fs = std::filesystem;

Completed runServer(const std::vector<std::string>& arguments) {
  return runToCompletion(EPOLL_ECHO_SERVER_PATH, arguments, deadlineIn(kServerTimeout));
}

std::size_t lineCount(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

struct BadFlag {
  std::vector<std::string> arguments;
  std::string expected;  // part of the one-line message: the flag and its allowed range
};

TEST(HostStartupTest, RefusesBadFlagsWithExitCodeTwoBeforeLoadingThePlugin) {
  const std::vector<BadFlag> cases = {
      {{"--port", "70000"}, "--port 70000 is out of range: allowed 0-65535"},
      {{"--port", "-1"}, "--port -1 is out of range: allowed 0-65535"},
      {{"--port", "http"}, "--port 'http' is not a number: allowed 0-65535"},
      {{"--port"}, "'--port' is missing: allowed 0-65535"},
      {{"--maxListeners", "0"}, "--maxListeners 0 is out of range: allowed 1-1024"},
      {{"--maxListeners", "1025"}, "--maxListeners 1025 is out of range: allowed 1-1024"},
      {{"--maxListeners", "four"}, "--maxListeners 'four' is not a number: allowed 1-1024"},
      {{"--stats-interval", "86401"}, "--stats-interval 86401 is out of range: allowed 0-86400"},
      {{"--stats-format", "xml"}, "--stats-format 'xml' is not a format: allowed text or json"},
      {{"--bind", "localhost"}, "--bind 'localhost' is not a numeric address"},
      {{"--max-connections", "-5"}, "--max-connections -5 is out of range: allowed 0-4294967295 (0 = no cap)"},
      {{"--idle-timeout", "soon"}, "--idle-timeout 'soon' is not a number of seconds: allowed 0 (off) or 0.001-"},
      {{"--idle-timeout", "0.0001"}, "--idle-timeout 0.0001 is finer than a millisecond"},
      {{"--frobnicate"}, "unrecognised option '--frobnicate'"},
      {{"--port", "1", "--port", "2"}, "'--port' cannot be specified more than once"},
      {{"8080"}, "unexpected argument '8080'"},
  };
  for (const BadFlag& bad : cases) {
    std::vector<std::string> arguments = bad.arguments;
    // A plugin that does not exist: exit code 2, not 1, proves the flags were checked first.
    arguments.insert(arguments.begin(), {"--plugin", "/nonexistent/libepoll_echo.so"});
    const Completed run = runServer(arguments);
    SCOPED_TRACE(bad.expected);
    ASSERT_TRUE(run.status) << "did not exit";
    EXPECT_TRUE(run.status->exited && run.status->code == 2) << run.status->describe();
    EXPECT_NE(run.err.find(bad.expected), std::string::npos) << run.err;
    EXPECT_EQ(run.err.rfind("epoll-server: ", 0), 0u) << run.err;
    EXPECT_EQ(lineCount(run.err), 1u) << run.err;
    EXPECT_EQ(run.out, "");
  }
}

TEST(HostStartupTest, HelpListsEveryFlagAndExitsZero) {
  const Completed run = runServer({"--help"});
  ASSERT_TRUE(run.status);
  EXPECT_TRUE(run.status->succeeded()) << run.status->describe();
  for (const char* flag : {"--port", "--maxListeners", "--bind", "--plugin", "--stats-interval", "--stats-format",
                           "--max-connections", "--idle-timeout", "--help", "--version", "0-65535", "1-1024"}) {
    EXPECT_NE(run.out.find(flag), std::string::npos) << flag << " missing from:\n" << run.out;
  }
}

TEST(HostStartupTest, VersionNamesHostAbiAndTheBuiltPluginsBuildId) {
  Plugin plugin;
  ASSERT_TRUE(plugin.loaded()) << plugin.error();
  const Completed run = runServer({"--version"});
  ASSERT_TRUE(run.status);
  EXPECT_TRUE(run.status->succeeded()) << run.status->describe() << "\n" << run.err;
  EXPECT_EQ(run.out.rfind("epoll-server ", 0), 0u) << run.out;
  EXPECT_NE(run.out.find(" (built against C ABI 1."), std::string::npos) << run.out;
  EXPECT_NE(run.out.find(std::string("build id ") + plugin.api().build_id()), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("ABI 1."), std::string::npos) << run.out;
}

// Expects exit code 1 and exactly one stderr line containing every one of `parts`.
void expectOneLineFailure(const Completed& run, const std::vector<std::string>& parts) {
  ASSERT_TRUE(run.status) << "did not exit";
  EXPECT_TRUE(run.status->exited && run.status->code == 1) << run.status->describe();
  EXPECT_EQ(lineCount(run.err), 1u) << run.err;
  for (const std::string& part : parts)
    EXPECT_NE(run.err.find(part), std::string::npos) << part << " not in: " << run.err;
}

TEST(HostStartupTest, MissingPluginFileIsOneLineNamingThePath) {
  TemporaryDirectory directory("epoll-server-test");
  const std::string path = (directory.path() / "libepoll_echo.so").string();
  expectOneLineFailure(runServer({"--plugin", path}), {"cannot load plugin " + path, "no such file"});
}

TEST(HostStartupTest, TextFileIsRefusedAsNotAPlugin) {
  TemporaryDirectory directory("epoll-server-test");
  const std::string path = (directory.path() / "notes.so").string();
  std::ofstream text(path);
  for (int line = 0; line < 20; ++line) text << "A text file is longer than an ELF header, but is not one.\n";
  text.close();
  expectOneLineFailure(runServer({"--plugin", path}), {"plugin " + path + " is not an ELF file"});
}

TEST(HostStartupTest, SharedLibraryWithoutTheApiIsNotAPlugin) {
  void* libm = dlopen("libm.so.6", RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(libm, nullptr) << "libm is not loaded in the test process";
  link_map* map = nullptr;
  ASSERT_EQ(dlinfo(libm, RTLD_DI_LINKMAP, &map), 0) << dlerror();
  const std::string path = map->l_name;
  dlclose(libm);
  expectOneLineFailure(runServer({"--plugin", path}),
                       {path + " is not an epoll-echo plugin", "symbol epoll_echo_abi_version not found"});
}

TEST(HostStartupTest, OtherAbiMajorIsRefusedWithBothVersions) {
  expectOneLineFailure(runServer({"--plugin", HOST_FAKE_PLUGIN_ABI2}),
                       {HOST_FAKE_PLUGIN_ABI2, "has ABI 2.0", "needs ABI major 1"});
}

// A plugin older than ABI 1.3 cannot take the limits: the flag is named, not a struct size.
TEST(HostStartupTest, ConnectionLimitsOnAnOlderPluginAreRefusedNamingTheFlag) {
  expectOneLineFailure(runServer({"--port", "0", "--plugin", HOST_FAKE_PLUGIN_SLOW_STOP, "--max-connections", "5"}),
                       {"--max-connections needs a plugin with ABI 1.3 or later", "has ABI 1.0"});
  expectOneLineFailure(runServer({"--port", "0", "--plugin", HOST_FAKE_PLUGIN_SLOW_STOP, "--idle-timeout", "2"}),
                       {"--idle-timeout needs a plugin with ABI 1.3 or later", HOST_FAKE_PLUGIN_SLOW_STOP});
}

// Likewise the later config fields, each with the minor that added it; their defaults are served.
TEST(HostStartupTest, BackendAndBalanceOnAnOlderPluginAreRefusedNamingTheFlag) {
  expectOneLineFailure(
      runServer({"--port", "0", "--plugin", HOST_FAKE_PLUGIN_SLOW_STOP, "--backend", "io_uring"}),
      {"--backend needs a plugin with ABI 1.4 or later", "has ABI 1.0"});
  expectOneLineFailure(runServer({"--port", "0", "--plugin", HOST_FAKE_PLUGIN_SLOW_STOP, "--balance", "exact"}),
                       {"--balance needs a plugin with ABI 1.5 or later", "has ABI 1.0"});
}

TEST(HostStartupTest, MissingSymbolIsNamedWithThePath) {
  expectOneLineFailure(runServer({"--plugin", HOST_FAKE_PLUGIN_NO_STATS}),
                       {HOST_FAKE_PLUGIN_NO_STATS, "symbol epoll_echo_stats not found", "undefined symbol"});
}

TEST(HostStartupTest, FindsThePluginInTheInstalledLayout) {
  TemporaryDirectory prefix("epoll-server-test");
  fs::create_directories(prefix.path() / "bin");
  fs::create_directories(prefix.path() / "lib" / "epoll_echo");
  const fs::path server = prefix.path() / "bin" / "epoll-server";
  fs::copy_file(EPOLL_ECHO_SERVER_PATH, server);
  fs::copy_file(EPOLL_ECHO_PLUGIN_PATH, prefix.path() / "lib" / "epoll_echo" / "libepoll_echo.so");
  const Completed run = runToCompletion(server.string(), {"--version"}, deadlineIn(kServerTimeout));
  ASSERT_TRUE(run.status);
  EXPECT_TRUE(run.status->succeeded()) << run.status->describe() << "\n" << run.err;
  const std::string expected = "plugin " + (prefix.path() / "lib" / "epoll_echo" / "libepoll_echo.so").string();
  EXPECT_NE(run.out.find(expected), std::string::npos) << run.out;
}

TEST(HostStartupTest, NamesBothSearchedPathsWhenNoPluginIsFound) {
  TemporaryDirectory prefix("epoll-server-test");
  fs::create_directories(prefix.path() / "bin");
  const fs::path server = prefix.path() / "bin" / "epoll-server";
  fs::copy_file(EPOLL_ECHO_SERVER_PATH, server);
  const Completed run = runToCompletion(server.string(), {"--port", "0"}, deadlineIn(kServerTimeout));
  expectOneLineFailure(run, {"no plugin found", (prefix.path() / "bin" / "libepoll_echo.so").string(),
                             (prefix.path() / "lib" / "epoll_echo" / "libepoll_echo.so").string(), "--plugin"});
}

// A version query answers even where the plugin is missing: the host's version, what is missing.
TEST(HostStartupTest, VersionWithoutAPluginPrintsTheHostVersionAndExitsZero) {
  TemporaryDirectory prefix("epoll-server-test");
  const fs::path server = prefix.path() / "epoll-server";
  fs::copy_file(EPOLL_ECHO_SERVER_PATH, server);
  const Completed searched = runToCompletion(server.string(), {"--version"}, deadlineIn(kServerTimeout));
  ASSERT_TRUE(searched.status);
  EXPECT_TRUE(searched.status->succeeded()) << searched.status->describe() << "\n" << searched.err;
  EXPECT_EQ(searched.out.rfind("epoll-server ", 0), 0u) << searched.out;
  EXPECT_NE(searched.out.find("\nplugin: missing (no plugin found next to the executable: tried " +
                              (prefix.path() / "libepoll_echo.so").string()),
            std::string::npos)
      << searched.out;
  EXPECT_EQ(searched.err, "");

  const std::string named = (prefix.path() / "libepoll_echo.so").string();
  const Completed given = runServer({"--version", "--plugin", named});
  ASSERT_TRUE(given.status);
  EXPECT_TRUE(given.status->succeeded()) << given.status->describe() << "\n" << given.err;
  EXPECT_NE(given.out.find("\nplugin " + named + ": missing (no such file)\n"), std::string::npos) << given.out;
}

// Starts the server on `plugin`, echoes one message and stops it with SIGTERM: exit 0.
void expectServes(const fs::path& plugin) {
  ServerProcess server;
  ASSERT_TRUE(server.start(loopbackFlags({"--maxListeners", "1", "--plugin", plugin.string()})));
  ASSERT_EQ(server.startLine().address, "127.0.0.1") << server.log();
  ASSERT_NO_FATAL_FAILURE(expectEchoOnNewConnection(server.port(), "served by " + plugin.filename().string()));
  ASSERT_TRUE(server.stop(SIGTERM));
}

// A build still being written is a prefix of the final file. The loader would map its missing
// pages and die of SIGBUS; the host refuses it instead, and a cut that leaves every loadable
// byte (only debug information and section headers missing) loads and serves.
TEST(HostStartupTest, TruncatedPluginIsRefusedWithOneLineOrServesWhenEveryLoadableByteIsThere) {
  TemporaryDirectory directory("epoll-server-test");
  const std::string plugin = readWholeFile(EPOLL_ECHO_PLUGIN_PATH);
  const ElfLayout layout = readElfLayout(plugin);
  // Every cut of a plain build (about 25); a sample of the larger sanitizer builds. The header
  // check itself is tested on every cut in host_elf_check_test.
  for (const uint64_t cut : sampleCuts(truncationCuts(plugin, true), 40)) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    const fs::path path = directory.path() / ("cut-" + std::to_string(cut) + ".so");
    writeWholeFile(path, plugin.substr(0, cut));
    const std::string size = cut == 0 ? "the file is empty\n"
                                      : ", the file has " + std::to_string(cut) + (cut == 1 ? " byte\n" : " bytes\n");
    expectOneLineFailure(runServer({"--port", "0", "--plugin", path.string()}),
                         {"epoll-server: plugin " + path.string() + " is truncated: ", size});
    fs::remove(path);
  }
  for (const uint64_t cut : {layout.loadableEnd, (layout.loadableEnd + 4095) / 4096 * 4096, plugin.size() - 1}) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    const fs::path path = directory.path() / ("cut-" + std::to_string(cut) + ".so");
    writeWholeFile(path, plugin.substr(0, cut));
    ASSERT_NO_FATAL_FAILURE(expectServes(path));
  }
}

TEST(HostStartupTest, ZerosAndAForeignMachineAreRefusedWithOneLine) {
  TemporaryDirectory directory("epoll-server-test");
  const fs::path zeros = directory.path() / "zeros.so";
  writeWholeFile(zeros, std::string(65536, '\0'));
  expectOneLineFailure(runServer({"--port", "0", "--plugin", zeros.string()}),
                       {"plugin " + zeros.string() + " is not an ELF file"});
  const fs::path foreign = directory.path() / "foreign.so";
  writeWholeFile(foreign, withForeignMachine(readWholeFile(EPOLL_ECHO_PLUGIN_PATH)));
  expectOneLineFailure(runServer({"--port", "0", "--plugin", foreign.string()}),
                       {"plugin " + foreign.string() + " is built for ",
                        "(ELF machine " + std::to_string(foreignMachine()) + "), this epoll-server runs on "});
}

// A FIFO would block a plain open() until someone writes to it.
TEST(HostStartupTest, AFifoOrADirectoryIsNotAPluginFile) {
  TemporaryDirectory directory("epoll-server-test");
  const fs::path fifo = directory.path() / "fifo.so";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  expectOneLineFailure(runServer({"--port", "0", "--plugin", fifo.string()}),
                       {"cannot load plugin " + fifo.string() + ": not a regular file"});
  expectOneLineFailure(runServer({"--port", "0", "--plugin", directory.path().string()}),
                       {"cannot load plugin " + directory.path().string() + ": not a regular file"});
}

TEST(HostStartupTest, StrippedOrCorruptSectionHeadersAndASymlinkServe) {
  TemporaryDirectory directory("epoll-server-test");
  const std::string plugin = readWholeFile(EPOLL_ECHO_PLUGIN_PATH);
  const fs::path stripped = directory.path() / "stripped.so";
  writeWholeFile(stripped, withoutSectionHeaders(plugin));
  ASSERT_NO_FATAL_FAILURE(expectServes(stripped));
  const fs::path corrupt = directory.path() / "corrupt.so";
  writeWholeFile(corrupt, withCorruptSectionHeaders(plugin));
  ASSERT_NO_FATAL_FAILURE(expectServes(corrupt));
  const fs::path link = directory.path() / "libepoll_echo.so";
  fs::create_symlink(EPOLL_ECHO_PLUGIN_PATH, link);
  ASSERT_NO_FATAL_FAILURE(expectServes(link));
}

}  // namespace
}  // namespace epoll_echo::test
