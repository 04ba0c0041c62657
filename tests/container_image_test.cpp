// container_image_test.cpp — the image the repository's Dockerfile builds, built with podman
// (tests/container/build_image.sh) and run with `podman run` as a user would: the entrypoint, the
// default command and the user; flags after the image name; byte-exact echo; SIGHUP reload;
// SIGTERM stop; no build tool in the image; its size.
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "support/echo_traffic.h"
#include "support/net.h"
#include "support/process.h"
#include "support/temporary_directory.h"

namespace epoll_echo::test {
namespace {

namespace fs = std::filesystem;

// A cold build (debootstrap, then the Dockerfile's two stages) took 5.5 minutes on two busy cores;
// a warm one (nothing changed) seconds.
constexpr std::chrono::minutes kImageBuildTimeout{25};
constexpr std::chrono::seconds kPodmanTimeout{60};
constexpr std::chrono::seconds kContainerServerTimeout{60};
constexpr int kSkipExit = 77;
const std::string kImage = "localhost/epoll-echo:container-test";
const std::string kBaseImage = "debian:bookworm-slim";
const std::string kServerPath = "/opt/epoll-echo/bin/epoll-server";
const std::string kPluginPath = "/opt/epoll-echo/lib/epoll_echo/libepoll_echo.so";

// podman's own storage for these tests, kept between runs: EPOLL_ECHO_CONTAINER_CACHE, else
// $XDG_CACHE_HOME (or ~/.cache)/epoll-echo/container-test. build_image.sh uses the same layout.
fs::path cacheDirectory() {
  if (const char* dir = ::getenv("EPOLL_ECHO_CONTAINER_CACHE"); dir && *dir) return dir;
  if (const char* dir = ::getenv("XDG_CACHE_HOME"); dir && *dir) return fs::path(dir) / "epoll-echo/container-test";
  const char* home = ::getenv("HOME");
  return fs::path(home && *home ? home : "/root") / ".cache/epoll-echo/container-test";
}

std::string findInPath(const std::string& program) {
  const char* path = ::getenv("PATH");
  std::istringstream directories(path ? path : "/usr/bin:/bin");
  for (std::string directory; std::getline(directories, directory, ':');) {
    const fs::path candidate = fs::path(directory) / program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return "";
}

// `podman` with the global options that select the test's storage.
std::vector<std::string> podmanCommand(std::vector<std::string> arguments) {
  const fs::path cache = cacheDirectory();
  std::vector<std::string> command = {"--root",   (cache / "storage").string(), "--runroot", (cache / "run").string(),
                                      "--tmpdir", (cache / "tmp").string()};
  command.insert(command.end(), arguments.begin(), arguments.end());
  return command;
}

// `podman run` options this machine needs, none of which changes what the image does:
// - runc: crun refuses hosts with hybrid cgroups (v1 controllers plus a v2 mount), as here;
// - lower rlimits: podman's defaults exceed the hard limits its runtime inherits here, and raising
//   a hard limit needs CAP_SYS_RESOURCE, which this sandbox withholds (runc: setrlimit EPERM);
// - no network but the container's own loopback: the test connects from inside that namespace
//   (connectInside), so the default command's port 8080 is never shared with the host.
const std::vector<std::string> kRunOptions = {
    "--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "none"};

struct Podman {
  std::optional<ExitStatus> status;
  std::string out;
  std::string err;
  bool succeeded() const { return status && status->succeeded(); }
  std::string describe() const { return (status ? status->describe() : std::string("timed out")) + ": " + err + out; }
};

Podman podman(const std::vector<std::string>& arguments) {
  Completed done = runToCompletion(findInPath("podman"), podmanCommand(arguments), deadlineIn(kPodmanTimeout));
  return {done.status, std::move(done.out), std::move(done.err)};
}

// `podman run --rm` with kRunOptions, then `rest` (options, image, command).
std::vector<std::string> runCommand(const std::vector<std::string>& rest) {
  std::vector<std::string> arguments = {"run", "--rm"};
  arguments.insert(arguments.end(), kRunOptions.begin(), kRunOptions.end());
  arguments.insert(arguments.end(), rest.begin(), rest.end());
  return arguments;
}

std::vector<std::string> splitLines(const std::string& text) {
  std::vector<std::string> result;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) {
    if (!line.empty()) result.push_back(line);
  }
  return result;
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// Prints the line on which ctest marks the whole test skipped (SKIP_REGULAR_EXPRESSION in
// tests/CMakeLists.txt) and returns `reason`. Only a skip of every check prints it: gtest's own
// "[  SKIPPED ]" would also match one skipped check and hide the others' failures.
std::string skipAll(const std::string& reason) {
  std::cout << "container_image_test skipped: " << reason << std::endl;
  return reason;
}

// Holds an exclusive flock() on `path` until destroyed, so that concurrent runs (another build
// tree, another worktree) never rebuild the image another one is testing.
class LockFile {
 public:
  LockFile(const fs::path& path, Deadline deadline) : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
    while (fd_) {
      if (::flock(fd_.get(), LOCK_EX | LOCK_NB) == 0) {
        locked_ = true;
        return;
      }
      if (errno != EWOULDBLOCK || Clock::now() >= deadline) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // flock() itself has no timeout
    }
  }
  bool locked() const { return locked_; }

 private:
  UniqueFd fd_;
  bool locked_ = false;
};

// Builds the image once for all tests (build_image.sh prints what it reused and how long it took)
// and skips them all where podman cannot build or run it. Holds the cache's lock until the end.
class ImageEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (findInPath("podman").empty()) GTEST_SKIP() << skipAll("podman is not installed (tests/setup.sh installs it)");
    const fs::path lockPath = cacheDirectory() / "lock";
    std::error_code ignored;  // a failure shows as the lock's
    fs::create_directories(cacheDirectory(), ignored);
    lock_ = std::make_unique<LockFile>(lockPath, deadlineIn(kImageBuildTimeout));
    ASSERT_TRUE(lock_->locked()) << "cannot lock " << lockPath << ": " << std::strerror(errno);
    ::setenv("EPOLL_ECHO_CONTAINER_LOCKED", "1", 1);  // build_image.sh: the caller holds the lock
    const auto start = Clock::now();
    const Completed build = runToCompletion(EPOLL_ECHO_CONTAINER_BUILD_SCRIPT, {cacheDirectory().string(), kImage},
                                            deadlineIn(kImageBuildTimeout));
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start).count();
    std::cout << build.out << build.err << "image ready after " << seconds << " s\n";
    if (build.status && build.status->exited && build.status->code == kSkipExit) GTEST_SKIP() << skipAll(build.out);
    ASSERT_TRUE(build.status && build.status->succeeded())
        << (build.status ? build.status->describe() : "timed out") << "\n"
        << build.err;
    const Podman run = podman(runCommand({"--entrypoint", "/bin/true", kImage}));
    if (!run.succeeded()) GTEST_SKIP() << skipAll("podman run does not work on this machine: " + run.describe());
  }
  void TearDown() override { lock_.reset(); }

 private:
  std::unique_ptr<LockFile> lock_;
};

const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new ImageEnvironment);

// A client socket connected to 127.0.0.1:port inside the network namespace of process `pid`
// (a container's). setns() moves only the calling thread, so a short-lived thread does it.
UniqueFd connectInside(pid_t pid, uint16_t port, Deadline deadline, std::string* error) {
  UniqueFd socket;
  std::thread([&] {
    const UniqueFd namespaceFd(::open(("/proc/" + std::to_string(pid) + "/ns/net").c_str(), O_RDONLY | O_CLOEXEC));
    if (!namespaceFd || ::setns(namespaceFd.get(), CLONE_NEWNET) != 0) {
      *error = "enter the network namespace of " + std::to_string(pid) + ": " + std::strerror(errno);
      return;
    }
    socket = connectLoopback(port, deadline, error);
  }).join();
  return socket;
}

// One `podman run` of the image, attached: the server's stderr is the child's. The destructor
// removes the container whatever happened, so a failed test leaves none running.
class Container {
 public:
  // `podman run [runOptions] IMAGE serverArguments...`
  explicit Container(const std::vector<std::string>& serverArguments, const std::vector<std::string>& runOptions = {})
      : name_("epoll-echo-test-" + std::to_string(::getpid()) + "-" + std::to_string(++count_)),
        run_(findInPath("podman"), podmanCommand(runArguments(serverArguments, runOptions))) {}
  Container(const Container&) = delete;
  Container& operator=(const Container&) = delete;
  ~Container() { podman({"rm", "--force", "--time", "0", name_}); }

  const std::string& name() const { return name_; }
  ChildProcess& run() { return run_; }

  // Waits for the start line; then the server's pid as the host sees it, or -1.
  pid_t waitUntilListening() {
    if (!run_.waitForStderr("listening on", deadlineIn(kContainerServerTimeout))) return -1;
    const Podman inspect = podman({"inspect", "--format", "{{.State.Pid}}", name_});
    return inspect.succeeded() ? static_cast<pid_t>(std::stol(inspect.out)) : -1;
  }

 private:
  std::vector<std::string> runArguments(const std::vector<std::string>& serverArguments,
                                        const std::vector<std::string>& runOptions) const {
    std::vector<std::string> rest = {"--name", name_};
    rest.insert(rest.end(), runOptions.begin(), runOptions.end());
    rest.push_back(kImage);
    rest.insert(rest.end(), serverArguments.begin(), serverArguments.end());
    return runCommand(rest);
  }

  static inline int count_ = 0;
  std::string name_;
  ChildProcess run_;
};

// Sends `size` pattern bytes of stream `seed` on `socket` and checks the echo byte for byte; ""
// or what went wrong. The socket stays open.
std::string echoChecked(UniqueFd& socket, std::uint64_t size, std::uint64_t seed) {
  std::vector<EchoJob> jobs(1);
  jobs[0].socket = std::move(socket);
  jobs[0].seed = seed;
  jobs[0].total = size;
  const std::string result = runEchoJobs(jobs, deadlineIn(kContainerServerTimeout));
  socket = std::move(jobs[0].socket);
  return result;
}

std::vector<std::string> processCommandLine(pid_t pid) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> arguments;
  for (std::string argument; std::getline(file, argument, '\0');) arguments.push_back(argument);
  return arguments;
}

// "Uid:\t1\t2\t3\t4" from /proc/PID/status: real, effective, saved and filesystem ids.
std::string processStatusLine(pid_t pid, const std::string& field) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(file, line);) {
    if (line.rfind(field + ":", 0) == 0) return line;
  }
  return "";
}

// A field of the image's configuration: `{{join .Config.Cmd "\n"}}` and the like.
Podman inspectImage(const std::string& image, const std::string& format) {
  return podman({"image", "inspect", "--format", format, image});
}

// The passwd entry's fields of the image's USER, from the image's own /etc/passwd.
std::vector<std::string> imageUserEntry() {
  const Podman user = inspectImage(kImage, "{{.Config.User}}");
  if (!user.succeeded() || trimmed(user.out).empty()) return {};
  const Podman entry = podman(runCommand({"--entrypoint", "getent", kImage, "passwd", trimmed(user.out)}));
  std::vector<std::string> fields;
  std::istringstream stream(trimmed(entry.out));
  for (std::string field; std::getline(stream, field, ':');) fields.push_back(field);
  return fields;
}

// Installed package names (without architecture) of `image`.
std::set<std::string> installedPackages(const std::string& image) {
  const Podman list =
      podman(runCommand({"--user", "0", "--entrypoint", "dpkg-query", image, "-W", "-f=${Package}\\n"}));
  const std::vector<std::string> names = splitLines(list.out);
  return {names.begin(), names.end()};
}

// A container of the server, its pid as the host sees it, and a client connected inside it.
struct ServingContainer {
  explicit ServingContainer(const std::vector<std::string>& arguments, const std::vector<std::string>& runOptions = {})
      : container(arguments, runOptions) {}
  Container container;
  pid_t pid = -1;
  UniqueFd client;
};

// Waits for the server's start line, then connects to `port` inside its network namespace.
::testing::AssertionResult startAndConnect(ServingContainer& serving, uint16_t port) {
  serving.pid = serving.container.waitUntilListening();
  if (serving.pid <= 0) {
    return ::testing::AssertionFailure() << "no start line: " << serving.container.run().capturedStderr();
  }
  std::string error;
  serving.client = connectInside(serving.pid, port, deadlineIn(kContainerServerTimeout), &error);
  if (!serving.client) return ::testing::AssertionFailure() << error;
  return ::testing::AssertionSuccess();
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Waits for the line that ends a reload, whether it succeeded or was rejected.
bool waitForReloadOutcome(ChildProcess& run) {
  return run.waitUntil(
      [&] { return contains(run.capturedStderr(), "reloaded: ") || contains(run.capturedStderr(), " rejected: "); },
      deadlineIn(kContainerServerTimeout));
}

TEST(ContainerImageTest, StartsAsTheImageUserWithItsEntrypointAndDefaultCommand) {
  const std::vector<std::string> entrypoint =
      splitLines(inspectImage(kImage, "{{join .Config.Entrypoint \"\\n\"}}").out);
  const std::vector<std::string> command = splitLines(inspectImage(kImage, "{{join .Config.Cmd \"\\n\"}}").out);
  ASSERT_EQ(entrypoint, std::vector<std::string>{kServerPath});
  const std::vector<std::string> user = imageUserEntry();
  ASSERT_GE(user.size(), 4u) << "the image's USER has no passwd entry in the image";
  ASSERT_NE(user[2], "0") << "the image's user " << user[0] << " is root";

  ServingContainer serving({});
  ASSERT_TRUE(startAndConnect(serving, 8080));
  EXPECT_TRUE(contains(serving.container.run().capturedStderr(), "listening on *:8080 ("))
      << serving.container.run().capturedStderr();
  std::vector<std::string> expected = entrypoint;
  expected.insert(expected.end(), command.begin(), command.end());
  EXPECT_EQ(processCommandLine(serving.pid), expected);
  const std::string uid = user[2], gid = user[3];
  EXPECT_EQ(processStatusLine(serving.pid, "Uid"), "Uid:\t" + uid + "\t" + uid + "\t" + uid + "\t" + uid);
  EXPECT_EQ(processStatusLine(serving.pid, "Gid"), "Gid:\t" + gid + "\t" + gid + "\t" + gid + "\t" + gid);
  EXPECT_EQ(echoChecked(serving.client, 64 * 1024, 1), "");
}

TEST(ContainerImageTest, FlagsAfterTheImageNameReachTheServer) {
  ServingContainer serving({"--port", "9000", "--maxListeners", "3"});
  ASSERT_TRUE(startAndConnect(serving, 9000));
  EXPECT_TRUE(contains(serving.container.run().capturedStderr(), "listening on *:9000 (3 listeners,"))
      << serving.container.run().capturedStderr();
  EXPECT_EQ(processCommandLine(serving.pid),
            (std::vector<std::string>{kServerPath, "--port", "9000", "--maxListeners", "3"}));
  EXPECT_EQ(echoChecked(serving.client, 4 * 1024 * 1024, 2), "");
}

TEST(ContainerImageTest, SighupReloadsThePluginWhileServing) {
  ServingContainer serving({"--port", "9000"});
  ASSERT_TRUE(startAndConnect(serving, 9000));
  ASSERT_EQ(echoChecked(serving.client, 64 * 1024, 3), "");

  const Podman hup = podman({"kill", "--signal", "HUP", serving.container.name()});
  ASSERT_TRUE(hup.succeeded()) << hup.describe();
  ChildProcess& run = serving.container.run();
  ASSERT_TRUE(waitForReloadOutcome(run)) << run.capturedStderr();
  EXPECT_TRUE(contains(run.capturedStderr(), "reloaded: build ")) << run.capturedStderr();
  // The connection made before the reload is served by the new engine, and new ones are accepted.
  EXPECT_EQ(echoChecked(serving.client, 64 * 1024, 4), "");
  std::string error;
  UniqueFd second = connectInside(serving.pid, 9000, deadlineIn(kContainerServerTimeout), &error);
  ASSERT_TRUE(second) << error;
  EXPECT_EQ(echoChecked(second, 64 * 1024, 5), "");
}

// The upgrade docs/operations.md describes: the plugin directory bind-mounted from the host, a
// new build renamed over the plugin there, then SIGHUP; the container serves the new build on.
TEST(ContainerImageTest, SighupLoadsANewBuildFromABindMountedPluginDirectory) {
  if (kSanitizedBuild) GTEST_SKIP() << "this build's plugin needs the sanitizer runtime, which the image lacks";
  const Completed version = runToCompletion(EPOLL_ECHO_SERVER_PATH, {"--version", "--plugin", EPOLL_ECHO_PLUGIN_PATH},
                                            deadlineIn(kPodmanTimeout));
  const std::size_t idAt = version.out.find("build id ");
  ASSERT_NE(idAt, std::string::npos) << version.out << version.err;
  const std::string newBuild = trimmed(version.out.substr(idAt + 9, version.out.find('\n', idAt) - idAt - 9));

  const TemporaryDirectory directory("epoll-echo-container-plugin");
  fs::permissions(directory.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                        fs::perms::others_read | fs::perms::others_exec);  // for the image's user
  const fs::path plugin = directory.path() / "libepoll_echo.so";
  const Podman imagePlugin = podman(runCommand({"--entrypoint", "cat", kImage, kPluginPath}));
  ASSERT_TRUE(imagePlugin.succeeded()) << imagePlugin.describe();
  std::ofstream(plugin, std::ios::binary) << imagePlugin.out;
  ServingContainer serving({"--port", "9000"},
                           {"--volume", directory.path().string() + ":/opt/epoll-echo/lib/epoll_echo:ro"});
  ASSERT_TRUE(startAndConnect(serving, 9000));
  ASSERT_EQ(echoChecked(serving.client, 64 * 1024, 7), "");

  const fs::path incoming = directory.path() / ".libepoll_echo.so.new";
  fs::copy_file(EPOLL_ECHO_PLUGIN_PATH, incoming);
  fs::rename(incoming, plugin);
  const Podman hup = podman({"kill", "--signal", "HUP", serving.container.name()});
  ASSERT_TRUE(hup.succeeded()) << hup.describe();
  ChildProcess& run = serving.container.run();
  ASSERT_TRUE(waitForReloadOutcome(run)) << run.capturedStderr();
  EXPECT_TRUE(contains(run.capturedStderr(), "reloaded: build " + newBuild + " serving")) << run.capturedStderr();
  EXPECT_EQ(echoChecked(serving.client, 64 * 1024, 8), "");
}

TEST(ContainerImageTest, PodmanStopEndsTheServerWithExitCodeZero) {
  ServingContainer serving({});
  ASSERT_TRUE(startAndConnect(serving, 8080));
  ASSERT_EQ(echoChecked(serving.client, 64 * 1024, 6), "");

  // `podman stop` sends the image's stop signal (SIGTERM) and waits 30 s before SIGKILL.
  const Podman stop = podman({"stop", "--time", "30", serving.container.name()});
  EXPECT_TRUE(stop.succeeded()) << stop.describe();
  std::string error;
  EXPECT_TRUE(waitForEof(serving.client.get(), deadlineIn(kContainerServerTimeout), &error)) << error;
  const std::optional<ExitStatus> status = serving.container.run().waitForExit(deadlineIn(kContainerServerTimeout));
  ASSERT_TRUE(status) << "podman run still runs after podman stop";
  EXPECT_TRUE(status->succeeded()) << status->describe() << "\n" << serving.container.run().capturedStderr();
  EXPECT_TRUE(contains(serving.container.run().capturedStderr(), "stopped on SIGTERM"))
      << serving.container.run().capturedStderr();
}

// The image is the base plus what the server and plugin load: every package it adds to the base
// owns a shared library they need, so no compiler, build tool or -dev package came along.
TEST(ContainerImageTest, HoldsNoBuildToolsOnlyWhatTheServerLoads) {
  const Podman libraries = podman(runCommand({"--entrypoint", "ldd", kImage, kServerPath, kPluginPath}));
  ASSERT_TRUE(libraries.succeeded()) << libraries.describe();
  ASSERT_FALSE(contains(libraries.out, "not found")) << libraries.out;
  std::set<std::string> needed;
  for (const std::string& line : splitLines(libraries.out)) {
    const std::size_t arrow = line.find("=> /");
    if (arrow == std::string::npos) continue;
    const std::string path = line.substr(arrow + 3, line.find(' ', arrow + 3) - (arrow + 3));
    const Podman owner =
        podman(runCommand({"--entrypoint", "dpkg-query", kImage, "-S", "*/" + fs::path(path).filename().string()}));
    ASSERT_TRUE(owner.succeeded()) << path << " belongs to no package: " << owner.describe();
    for (const std::string& entry : splitLines(owner.out)) needed.insert(entry.substr(0, entry.find(':')));
  }
  const std::set<std::string> base = installedPackages(kBaseImage);
  const std::set<std::string> image = installedPackages(kImage);
  ASSERT_FALSE(base.empty());
  ASSERT_FALSE(image.empty());
  std::string added;
  for (const std::string& package : image) {
    if (base.count(package)) continue;
    added += " " + package;
    EXPECT_TRUE(needed.count(package)) << package << " is in the image but the server and plugin load nothing from it";
  }
  for (const std::string& package : needed) EXPECT_TRUE(image.count(package)) << package;
  std::cout << "packages the image adds to " << kBaseImage << ":" << added << "\n";
}

// The size is reported in the test's output; the bound catches what a careless RUN leaves in a
// layer (apt's package caches alone are about 80 MB).
TEST(ContainerImageTest, ReportsItsSize) {
  const Podman imageSize = inspectImage(kImage, "{{.Size}}");
  const Podman baseSize = inspectImage(kBaseImage, "{{.Size}}");
  ASSERT_TRUE(imageSize.succeeded() && baseSize.succeeded()) << imageSize.describe() << baseSize.describe();
  const double image = std::stod(imageSize.out) / 1e6, base = std::stod(baseSize.out) / 1e6;
  std::ostringstream report;
  report.precision(1);
  report << std::fixed << "image size " << image << " MB: base " << kBaseImage << " (debootstrap minbase) " << base
         << " MB + " << image - base << " MB added by the Dockerfile";
  std::cout << report.str() << "\n";
  RecordProperty("image_size_bytes", trimmed(imageSize.out));
  RecordProperty("base_size_bytes", trimmed(baseSize.out));
  EXPECT_LT(image - base, 32.0) << report.str();
}

}  // namespace
}  // namespace epoll_echo::test
