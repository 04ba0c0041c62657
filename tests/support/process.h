// process.h — runs a program (the built epoll-server) as a child process for end-to-end tests:
// posix_spawn with piped stdout/stderr, output waits and exit waits that all take a deadline, and
// an RAII owner that kills (SIGKILL) and reaps the child whatever happens to the test.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "support/net.h"

namespace epoll_echo::test {

// How a child ended.
struct ExitStatus {
  bool exited = false;  // true: exit code in `code`; false: killed by signal `signal`
  int code = 0;
  int signal = 0;
  bool succeeded() const { return exited && code == 0; }
  std::string describe() const;  // "exit code 2" or "killed by SIGKILL"
};

// One child process. The destructor sends SIGKILL if it still runs and always reaps it, so a
// failing ASSERT cannot leak a server. Stdin is /dev/null; stdout and stderr are captured in full.
// Move-only; use from one thread.
class ChildProcess {
 public:
  // Spawns `program` with `arguments` (argv[1..]) and an empty signal mask and default signal
  // dispositions whatever the test process uses. The child inherits the test's environment with
  // `environment` ("NAME=value" entries) added or replacing, so no test has to setenv() its own.
  // Throws std::runtime_error naming the program.
  ChildProcess(const std::string& program, const std::vector<std::string>& arguments,
               const std::vector<std::string>& environment = {});
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  bool sendSignal(int signal) const;  // false once the child has been reaped

  // Reads output until `text` appears in the captured stderr (or stdout), the child's output ends,
  // or the deadline passes. Plain substrings: g++ 12's std::regex trips -Wmaybe-uninitialized
  // under ASan, which -Werror builds cannot afford.
  bool waitForStderr(const std::string& text, Deadline deadline);
  bool waitForStdout(const std::string& text, Deadline deadline);

  // Reads output until `condition` (which looks at capturedStdout()/capturedStderr()) holds, the
  // child's output ends, or the deadline passes. Returns the condition's last value.
  bool waitUntil(const std::function<bool()>& condition, Deadline deadline);

  // Waits for the child to end (reading its output meanwhile, so it never blocks on a full pipe)
  // and reaps it; nullopt if it still runs at the deadline. The output is complete afterwards.
  std::optional<ExitStatus> waitForExit(Deadline deadline);

  const std::string& capturedStdout() const { return stdout_; }
  const std::string& capturedStderr() const { return stderr_; }

 private:
  bool waitForText(const std::string& captured, const std::string& text, Deadline deadline);
  // One poll() over the pipes and the pidfd: reads what is available, reaps the child if it ended.
  void pump(int timeoutMilliseconds);
  bool drain(UniqueFd& pipe, std::string& captured);  // false at EOF
  void reap(int options);

  pid_t pid_ = -1;
  UniqueFd stdoutPipe_;
  UniqueFd stderrPipe_;
  UniqueFd pidFd_;  // pidfd_open(): readable when the child exits; invalid if the kernel lacks it
  std::string stdout_;
  std::string stderr_;
  std::optional<ExitStatus> status_;
};

// Runs `program` to completion (killed at the deadline): for --help, --version and bad flags.
struct Completed {
  std::optional<ExitStatus> status;  // nullopt: did not end before the deadline
  std::string out;
  std::string err;
};
Completed runToCompletion(const std::string& program, const std::vector<std::string>& arguments, Deadline deadline,
                          const std::vector<std::string>& environment = {});

}  // namespace epoll_echo::test
