// process.cpp — child processes for end-to-end tests. Waits are poll() over the output pipes and a
// pidfd, bounded by the caller's deadline; nothing sleeps to wait for a condition.
#include "support/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <stdexcept>
#include <utility>

extern char** environ;

namespace epoll_echo::test {
namespace {

// Without a pidfd (kernels before 5.3) the exit is noticed by polling waitpid at this period.
constexpr int kReapPollMilliseconds = 10;

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

Pipe makePipe(const std::string& program) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 for " + program + ": " + strerror(errno));
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// The child starts with no blocked signals and default dispositions, whatever the test runner set:
// the host under test must see SIGINT/SIGTERM/SIGHUP/SIGUSR1 exactly as a shell would send them.
class SpawnSetup {
 public:
  SpawnSetup(int stdoutFd, int stderrFd) {
    posix_spawn_file_actions_init(&actions_);
    posix_spawn_file_actions_addopen(&actions_, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions_, stdoutFd, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions_, stderrFd, STDERR_FILENO);
    posix_spawnattr_init(&attributes_);
    sigset_t none;
    sigemptyset(&none);
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int signal : {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGQUIT, SIGPIPE}) sigaddset(&defaults, signal);
    posix_spawnattr_setsigmask(&attributes_, &none);
    posix_spawnattr_setsigdefault(&attributes_, &defaults);
    posix_spawnattr_setflags(&attributes_, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
  ~SpawnSetup() {
    posix_spawnattr_destroy(&attributes_);
    posix_spawn_file_actions_destroy(&actions_);
  }
  const posix_spawn_file_actions_t* actions() const { return &actions_; }
  const posix_spawnattr_t* attributes() const { return &attributes_; }

 private:
  posix_spawn_file_actions_t actions_;
  posix_spawnattr_t attributes_;
};

// The test's environment with `overrides` ("NAME=value") replacing same-named entries or added.
std::vector<std::string> childEnvironment(const std::vector<std::string>& overrides) {
  std::vector<std::string> entries;
  const auto nameOf = [](const std::string& entry) { return entry.substr(0, entry.find('=')); };
  for (char** variable = environ; *variable != nullptr; ++variable) {
    const std::string entry = *variable;
    const bool replaced = std::any_of(overrides.begin(), overrides.end(),
                                      [&](const std::string& override) { return nameOf(override) == nameOf(entry); });
    if (!replaced) entries.push_back(entry);
  }
  entries.insert(entries.end(), overrides.begin(), overrides.end());
  return entries;
}

}  // namespace

std::string ExitStatus::describe() const {
  if (exited) return "exit code " + std::to_string(code);
  const char* name = sigabbrev_np(signal);
  return "killed by " + (name ? "SIG" + std::string(name) : "signal " + std::to_string(signal));
}

ChildProcess::ChildProcess(const std::string& program, const std::vector<std::string>& arguments,
                           const std::vector<std::string>& environment) {
  Pipe out = makePipe(program);
  Pipe err = makePipe(program);
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(program.c_str()));
  for (const std::string& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> environmentEntries = childEnvironment(environment);
  std::vector<char*> envp;
  for (std::string& entry : environmentEntries) envp.push_back(entry.data());
  envp.push_back(nullptr);
  const SpawnSetup setup(out.write.get(), err.write.get());
  // glibc's posix_spawn uses CLONE_VFORK and reports a failed exec as its return value.
  const int error =
      ::posix_spawn(&pid_, program.c_str(), setup.actions(), setup.attributes(), argv.data(), envp.data());
  if (error != 0) throw std::runtime_error("posix_spawn " + program + ": " + strerror(error));
  stdoutPipe_ = std::move(out.read);
  stderrPipe_ = std::move(err.read);
  setNonBlocking(stdoutPipe_.get(), true);
  setNonBlocking(stderrPipe_.get(), true);
  pidFd_ = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      stdoutPipe_(std::move(other.stdoutPipe_)),
      stderrPipe_(std::move(other.stderrPipe_)),
      pidFd_(std::move(other.pidFd_)),
      stdout_(std::move(other.stdout_)),
      stderr_(std::move(other.stderr_)),
      status_(std::move(other.status_)) {}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    reap(0);  // SIGKILL cannot be caught: this wait is short
  }
}

bool ChildProcess::sendSignal(int signal) const { return pid_ > 0 && !status_ && ::kill(pid_, signal) == 0; }

void ChildProcess::reap(int options) {
  int status = 0;
  pid_t result;
  do {
    result = ::waitpid(pid_, &status, options);
  } while (result < 0 && errno == EINTR);
  if (result != pid_) return;
  ExitStatus exit;
  exit.exited = WIFEXITED(status);
  exit.code = exit.exited ? WEXITSTATUS(status) : 0;
  exit.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  status_ = exit;
  pidFd_.reset();
}

bool ChildProcess::drain(UniqueFd& pipe, std::string& captured) {
  char buffer[4096];
  for (;;) {
    const ssize_t got = ::read(pipe.get(), buffer, sizeof buffer);
    if (got > 0) {
      captured.append(buffer, static_cast<std::size_t>(got));
      continue;
    }
    if (got < 0 && errno == EINTR) continue;
    return got < 0 && errno == EAGAIN;  // EOF or a real error both end this stream
  }
}

void ChildProcess::pump(int timeoutMilliseconds) {
  pollfd fds[3];
  nfds_t count = 0;
  if (stdoutPipe_) fds[count++] = {stdoutPipe_.get(), POLLIN, 0};
  if (stderrPipe_) fds[count++] = {stderrPipe_.get(), POLLIN, 0};
  if (!status_ && pidFd_) fds[count++] = {pidFd_.get(), POLLIN, 0};
  if (!status_ && !pidFd_) timeoutMilliseconds = std::min(timeoutMilliseconds, kReapPollMilliseconds);
  if (count == 0) return;
  if (::poll(fds, count, timeoutMilliseconds) < 0 && errno != EINTR) {
    throw std::runtime_error(std::string("poll on the child's pipes: ") + strerror(errno));
  }
  if (stdoutPipe_ && !drain(stdoutPipe_, stdout_)) stdoutPipe_.reset();
  if (stderrPipe_ && !drain(stderrPipe_, stderr_)) stderrPipe_.reset();
  if (!status_) reap(WNOHANG);
}

bool ChildProcess::waitUntil(const std::function<bool()>& condition, Deadline deadline) {
  for (;;) {
    if (condition()) return true;
    const bool streamsOpen = stdoutPipe_ || stderrPipe_;
    if (!streamsOpen || Clock::now() >= deadline) return condition();
    pump(millisecondsLeft(deadline));
  }
}

bool ChildProcess::waitForText(const std::string& captured, const std::string& text, Deadline deadline) {
  return waitUntil([&] { return captured.find(text) != std::string::npos; }, deadline);
}

bool ChildProcess::waitForStderr(const std::string& text, Deadline deadline) {
  return waitForText(stderr_, text, deadline);
}

bool ChildProcess::waitForStdout(const std::string& text, Deadline deadline) {
  return waitForText(stdout_, text, deadline);
}

std::optional<ExitStatus> ChildProcess::waitForExit(Deadline deadline) {
  while (!status_ && Clock::now() < deadline) pump(millisecondsLeft(deadline));
  if (!status_) return std::nullopt;
  // The child is gone, so its pipes end as soon as they are read empty; the deadline only guards
  // against a grandchild that inherited them.
  const Deadline drained = deadlineIn(std::chrono::seconds(2));
  while ((stdoutPipe_ || stderrPipe_) && Clock::now() < drained) pump(millisecondsLeft(drained));
  return status_;
}

Completed runToCompletion(const std::string& program, const std::vector<std::string>& arguments, Deadline deadline,
                          const std::vector<std::string>& environment) {
  ChildProcess child(program, arguments, environment);
  Completed result;
  result.status = child.waitForExit(deadline);
  result.out = child.capturedStdout();
  result.err = child.capturedStderr();
  return result;
}

}  // namespace epoll_echo::test
