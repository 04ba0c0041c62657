// upgrade.cpp — both sides of a process upgrade: the old process starts a child and serves on until
// the child has loaded its plugin and created its engine; only then does it pause its engine and
// hand the sockets over (keeping its own copies until the child serves, so a failed child costs
// nothing). The child imports them and serves at once: the pause holds the hand-over alone.
#include "upgrade.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <utility>

#include "log.h"

extern char** environ;

namespace epoll_echo::host {
namespace {

// The descriptor number the successor finds its channel at.
constexpr int kSuccessorChannelFd = 3;

bool isExecutableFile(const std::filesystem::path& path) {
  std::error_code error;
  return std::filesystem::is_regular_file(path, error) && ::access(path.c_str(), X_OK) == 0;
}

std::string describeStatus(int status) {
  if (WIFEXITED(status)) return "it exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("it was killed by SIG") + sigabbrev_np(WTERMSIG(status));
  return "it ended";
}

// The spawned successor until it serves: killed and reaped unless released, so no failure path
// leaves a process behind.
class SuccessorProcess {
 public:
  SuccessorProcess() = default;
  SuccessorProcess(const SuccessorProcess&) = delete;
  SuccessorProcess& operator=(const SuccessorProcess&) = delete;
  ~SuccessorProcess() { killAndReap(); }

  void spawn(const Program& program, UniqueFd channel);
  pid_t pid() const { return pid_; }
  void release() { pid_ = -1; }
  // How it ended, after SIGKILL if it still ran: "" when it had to be killed.
  std::string killAndReap() noexcept;

 private:
  pid_t pid_ = -1;
};

std::vector<std::string> successorEnvironment(int channelFd) {
  const std::string prefix = std::string(kUpgradeFdVariable) + "=";
  std::vector<std::string> entries;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (std::strncmp(*entry, prefix.c_str(), prefix.size()) != 0) entries.emplace_back(*entry);
  }
  entries.push_back(prefix + std::to_string(channelFd));
  return entries;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> result;
  for (std::string& text : strings) result.push_back(text.data());
  result.push_back(nullptr);
  return result;
}

void SuccessorProcess::spawn(const Program& program, UniqueFd channel) {
  // dup2 onto the same number would keep FD_CLOEXEC: move it out of the way first.
  if (channel.get() == kSuccessorChannelFd) {
    channel = UniqueFd(::fcntl(channel.get(), F_DUPFD_CLOEXEC, kSuccessorChannelFd + 1));
    if (!channel) throw std::system_error(errno, std::generic_category(), "fcntl F_DUPFD_CLOEXEC");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // Only in the child, and only this one: every other descriptor of ours is close-on-exec.
  posix_spawn_file_actions_adddup2(&actions, channel.get(), kSuccessorChannelFd);
  std::vector<std::string> arguments{program.path.string()};
  arguments.insert(arguments.end(), program.arguments.begin(), program.arguments.end());
  std::vector<std::string> environment = successorEnvironment(kSuccessorChannelFd);
  std::vector<char*> argv = pointers(arguments);
  std::vector<char*> envp = pointers(environment);
  // The signal mask is inherited: the handled signals stay blocked (pending, not fatal) until
  // the new process's signalfd takes them.
  pid_t pid = -1;
  const int error = ::posix_spawn(&pid, program.path.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) throw std::system_error(error, std::generic_category(), "cannot start " + program.path.string());
  pid_ = pid;
}

std::string SuccessorProcess::killAndReap() noexcept {
  if (pid_ <= 0) return "";
  int status = 0;
  std::string how;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    how = describeStatus(status);
  } else {
    // A successor that closed the channel by exiting may not be a zombie yet when the check
    // above runs (a process closes its descriptors before it becomes one). Once it is, SIGKILL
    // leaves its status alone, so the status reaped here is its own unless the kill ended it.
    ::kill(pid_, SIGKILL);
    pid_t reaped = -1;
    while ((reaped = ::waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
    }
    if (reaped == pid_ && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) how = describeStatus(status);
  }
  pid_ = -1;
  return how;
}

// A socket as the kernel knows it, whichever descriptor names it: its SO_COOKIE, 64 bits never
// reused while the system runs (an inode number is: sockfs counts them in 32 bits and wraps).
using SocketIdentity = uint64_t;

SocketIdentity identify(int fd) {
  SocketIdentity cookie = 0;
  socklen_t length = sizeof cookie;
  if (::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &length) != 0) {
    throw std::system_error(errno, std::generic_category(), "getsockopt SO_COOKIE");
  }
  return cookie;
}

// What the successor holds since the state sent ahead: our copy of each connection's descriptor
// and where each is in that state. Empty when nothing was sent ahead.
struct AheadCopies {
  static constexpr uint32_t kNotSent = UINT32_MAX;
  bool listenersSent = false;  // an idle server sends its listeners ahead with no connection
  std::vector<UniqueFd> copies;
  // The engine's connections accepted and adopted when the copies were taken; empty when its
  // stats could not be read.
  std::optional<uint64_t> openedAtCopy;
  // Each connection's index in that state by the engine's descriptor number (kNotSent: none).
  // A number names the same socket in the pause as long as the engine accepted and adopted
  // nothing since: every connection it then holds was in its table at the copy, with the
  // descriptor it has now, and no two held one number at once.
  std::vector<uint32_t> indexByFd;
  // By SO_COOKIE, sorted, for a pause after the engine took new connections (a closed one's number
  // may name a new one by then). Built after the resume, outside both pauses.
  std::vector<std::pair<SocketIdentity, uint32_t>> indexByIdentity;
};

// The connections the engine has ever taken (accepted and adopted), while it is paused: exact.
std::optional<uint64_t> connectionsOpened(const EngineHandle& engine) {
  const epoll_echo_stats_t stats = engine.stats();
  if (stats.size == 0) return std::nullopt;  // the call failed (advisory stats): prove nothing with it
  return stats.total.accepted + stats.total.adopted;
}

// Out of descriptors for the copies (they double the connections' count): the upgrade goes on
// without them, with everything in the pause, as before connections were sent ahead.
CarriedState sendNothingAhead(EngineHandle& engine, AheadCopies& ahead, bool& paused, uint32_t copied,
                              uint32_t connections) {
  const int error = errno;
  ahead = AheadCopies{};
  engine.resume();
  paused = false;
  logLine("upgrade: fcntl F_DUPFD_CLOEXEC: " + std::string(std::strerror(error)) + " after copying " +
          std::to_string(copied) + " of " + std::to_string(connections) +
          " connections; sending nothing ahead, everything in the pause");
  return {};
}

void indexByIdentity(AheadCopies& ahead) {
  ahead.indexByIdentity.reserve(ahead.copies.size());
  for (uint32_t index = 0; index < ahead.copies.size(); ++index) {
    ahead.indexByIdentity.emplace_back(identify(ahead.copies[index].get()), index);
  }
  std::sort(ahead.indexByIdentity.begin(), ahead.indexByIdentity.end());
}

// The listeners and a copy of every connection, taken in a pause as short as the copies: the
// engine serves on while they cross. `paused` tells a failure whether the engine must be resumed.
CarriedState copyAhead(EngineHandle& engine, AheadCopies& ahead, bool& paused) {
  engine.pause();
  paused = true;
  CarriedState state;
  uint32_t listeners = 0;
  uint32_t connections = 0;
  engine.handoverCounts(listeners, connections);
  state.listeners = engine.exportDistinctListeners(listeners);
  ahead.listenersSent = true;
  ahead.openedAtCopy = connectionsOpened(engine);
  ahead.copies.reserve(connections);
  state.connections.reserve(connections);
  for (uint32_t index = 0; index < connections; ++index) {
    // The descriptor only: pending bytes and flags cross in the pause, where they are final.
    const epoll_echo_connection_state_t exported = engine.exportConnectionState(index);
    UniqueFd copy(::fcntl(exported.fd, F_DUPFD_CLOEXEC, 0));
    if (!copy && (errno == EMFILE || errno == ENFILE)) return sendNothingAhead(engine, ahead, paused, index, connections);
    if (!copy) throw std::system_error(errno, std::generic_category(), "fcntl F_DUPFD_CLOEXEC of a connection");
    if (static_cast<std::size_t>(exported.fd) >= ahead.indexByFd.size()) {
      ahead.indexByFd.resize(static_cast<std::size_t>(exported.fd) + 1, AheadCopies::kNotSent);
    }
    ahead.indexByFd[static_cast<std::size_t>(exported.fd)] = index;
    state.connections.push_back({copy.get(), exported.worker, 0, {}});
    ahead.copies.push_back(std::move(copy));
  }
  engine.resume();
  paused = false;
  indexByIdentity(ahead);
  return state;
}

// Where the paused engine's connection `fd` is in the state sent ahead, or kNotSent.
uint32_t sentIndex(const AheadCopies& ahead, int fd, bool byNumber) {
  if (byNumber) {
    return fd >= 0 && static_cast<std::size_t>(fd) < ahead.indexByFd.size() ? ahead.indexByFd[fd]
                                                                            : AheadCopies::kNotSent;
  }
  if (ahead.indexByIdentity.empty()) return AheadCopies::kNotSent;
  const SocketIdentity identity = identify(fd);
  const auto found = std::lower_bound(ahead.indexByIdentity.begin(), ahead.indexByIdentity.end(),
                                      std::pair<SocketIdentity, uint32_t>(identity, 0));
  return found != ahead.indexByIdentity.end() && found->first == identity ? found->second : AheadCopies::kNotSent;
}

// The state of the pause: everything when nothing was sent ahead, else what changed since.
CarriedState exportState(const EngineHandle& engine, const CarriedStats& stats, const AheadCopies& ahead,
                         SentAhead& counts) {
  CarriedState state;
  state.stats = stats;
  uint32_t listeners = 0;
  uint32_t connections = 0;
  engine.handoverCounts(listeners, connections);
  if (!ahead.listenersSent) state.listeners = engine.exportDistinctListeners(listeners);
  const std::optional<uint64_t> opened = connectionsOpened(engine);
  counts.matchedByNumber = ahead.openedAtCopy && opened == ahead.openedAtCopy;
  std::vector<char> stillOpen(ahead.copies.size(), 0);
  for (uint32_t index = 0; index < connections; ++index) {
    ExportedConnection exported = engine.exportConnection(index);
    const uint32_t sent = sentIndex(ahead, exported.state.fd, counts.matchedByNumber);
    if (sent == AheadCopies::kNotSent) {
      state.connections.push_back(
          {exported.state.fd, exported.state.worker, exported.state.flags, std::move(exported.pending)});
      continue;
    }
    stillOpen[sent] = 1;
    if (exported.state.flags != 0 || !exported.pending.empty()) {
      state.revised.push_back({sent, exported.state.flags, std::move(exported.pending)});
    }
  }
  for (uint32_t index = 0; index < stillOpen.size(); ++index) {
    if (!stillOpen[index]) state.dropped.push_back(index);
  }
  counts.dropped = static_cast<uint32_t>(state.dropped.size());
  counts.revised = static_cast<uint32_t>(state.revised.size());
  counts.added = static_cast<uint32_t>(state.connections.size());
  return state;
}

ReceivedReply expectReply(UpgradeChannel& channel, UpgradeReply expected, UpgradeDeadline deadline) {
  std::optional<ReceivedReply> reply = channel.receiveReply(deadline);
  if (!reply) throw UpgradeProtocolError("the new process closed the channel");
  if (reply->reply == UpgradeReply::kFailed) throw UpgradeProtocolError("the new process gave up: " + reply->reason);
  if (reply->reply != expected) throw UpgradeProtocolError("the new process sent an unexpected reply");
  return *reply;
}

using Clock = std::chrono::steady_clock;

std::chrono::microseconds since(Clock::time_point& mark) {
  const Clock::time_point now = Clock::now();
  const auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(now - mark);
  mark = now;
  return elapsed;
}

// Starts the successor and waits, while `current` still serves, until it is prepared to take over.
UpgradeChannel prepareSuccessor(const Program& program, SuccessorProcess& successor, int metricsListener,
                                UpgradeDeadline deadline) {
  auto [ours, theirs] = UpgradeChannel::pair();
  successor.spawn(program, theirs.releaseSocket());  // our copy of its end closes here: its exit reads as EOF
  ours.sendHello(deadline, metricsListener);
  const ReceivedReply prepared = expectReply(ours, UpgradeReply::kPrepared, deadline);
  if (static_cast<pid_t>(prepared.pid) != successor.pid()) {
    throw UpgradeProtocolError("the new process says it is pid " + std::to_string(prepared.pid));
  }
  return std::move(ours);
}

// Before the pause, with a plugin that allows it (ABI 1.5): the listeners and a copy of every
// connection go to the successor, which imports them while `current` serves on. Sends an empty
// state otherwise, so the successor's sequence is the same either way.
void sendAhead(LoadedEngine& current, UpgradeChannel& channel, UpgradeDeadline deadline, AheadCopies& ahead,
               UpgradeOutcome& outcome, bool& paused) {
  CarriedState state;
  if (current.library().supportsDrop()) {
    Clock::time_point mark = Clock::now();
    state = copyAhead(current.engine(), ahead, paused);
    outcome.ahead.pause = since(mark);
    outcome.ahead.connections = static_cast<uint32_t>(state.connections.size());
  }
  Clock::time_point mark = Clock::now();
  channel.sendState(state, deadline);
  expectReply(channel, UpgradeReply::kPresented, deadline);
  outcome.ahead.import = since(mark);
}

// The pause: from stopping `current`'s workers to the successor serving its sockets.
// `paused` tells a failure whether the engine must be resumed.
void handOver(LoadedEngine& current, const std::function<CarriedStats()>& carried, UpgradeChannel& channel,
              UpgradeDeadline deadline, const AheadCopies& ahead, UpgradeOutcome& outcome, bool& paused) {
  Clock::time_point mark = Clock::now();
  current.engine().pause();
  paused = true;
  outcome.pause.stopWorkers = since(mark);
  CarriedState state = exportState(current.engine(), carried(), ahead, outcome.ahead);
  uint32_t listeners = 0;
  uint32_t connections = 0;
  current.engine().handoverCounts(listeners, connections);
  outcome.moved = {listeners, connections};
  for (const CarriedConnection& connection : state.connections) outcome.pendingBytes += connection.pending.size();
  for (const RevisedConnection& revised : state.revised) outcome.pendingBytes += revised.pending.size();
  outcome.pause.exportState = since(mark);
  channel.sendState(state, deadline);
  outcome.pause.sendState = since(mark);
  expectReply(channel, UpgradeReply::kReady, deadline);
  outcome.pause.takeOver = since(mark);
}

void resumeAfterFailure(LoadedEngine& current) {
  try {
    current.engine().resume();
  } catch (const std::exception& error) {
    logLine(std::string("error: the engine cannot resume after a failed upgrade, nothing is serving: ") + error.what());
  }
}

}  // namespace

std::optional<std::filesystem::path> resolveExecutable(const std::string& argv0) {
  if (argv0.empty()) return std::nullopt;
  std::error_code error;
  if (argv0.find('/') != std::string::npos) {
    const std::filesystem::path path = std::filesystem::absolute(argv0, error).lexically_normal();
    if (error || !isExecutableFile(path)) return std::nullopt;
    return path;
  }
  const char* search = std::getenv("PATH");
  const std::string directories = search != nullptr ? search : "/bin:/usr/bin";
  std::size_t start = 0;
  while (start <= directories.size()) {
    const std::size_t end = std::min(directories.find(':', start), directories.size());
    const std::string directory = directories.substr(start, end - start);
    const std::filesystem::path candidate =
        std::filesystem::absolute(std::filesystem::path(directory.empty() ? "." : directory) / argv0, error);
    if (!error && isExecutableFile(candidate)) return candidate.lexically_normal();
    start = end + 1;
  }
  return std::nullopt;
}

std::string formatMilliseconds(std::chrono::nanoseconds duration) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f ms", static_cast<double>(duration.count()) / 1e6);
  return text;
}

std::string describeSentAhead(const SentAhead& ahead) {
  if (ahead.connections == 0) return "";
  return "ahead of the pause, " + std::to_string(ahead.connections) + " connections copied in a pause of " +
         formatMilliseconds(ahead.pause) + " and imported by the new process in " + formatMilliseconds(ahead.import) +
         "; since then " + std::to_string(ahead.dropped) + " closed, " + std::to_string(ahead.revised) +
         " revised, " + std::to_string(ahead.added) + " new (matched by " +
         (ahead.matchedByNumber ? "descriptor number" : "socket cookie") + ")";
}

std::string describePause(const PausePhases& pause) {
  return formatMilliseconds(pause.total()) + " (workers stopped " + formatMilliseconds(pause.stopWorkers) +
         ", state exported " + formatMilliseconds(pause.exportState) + ", sent " + formatMilliseconds(pause.sendState) +
         ", imported and started by the new process " + formatMilliseconds(pause.takeOver) + ")";
}

UpgradeOutcome upgradeProcess(LoadedEngine& current, const Program& program,
                              const std::function<CarriedStats()>& carried, std::chrono::milliseconds timeout,
                              int metricsListener) {
  if (!current.library().supportsHandover()) {
    throw UpgradeError("upgrade refused: the serving plugin has ABI " +
                       formatAbiVersion(current.library().abiVersion()) + " and cannot hand over (needs 1.1)");
  }
  UpgradeOutcome outcome;
  SuccessorProcess successor;
  const UpgradeDeadline deadline = Clock::now() + timeout;
  bool paused = false;
  // Declared before the channel and the successor's kill: a failure closes our copies only once
  // the successor is gone, so the old engine is again the only one holding its sockets.
  AheadCopies ahead;
  try {
    Clock::time_point mark = Clock::now();
    UpgradeChannel channel = prepareSuccessor(program, successor, metricsListener, deadline);
    outcome.prepare = since(mark);
    sendAhead(current, channel, deadline, ahead, outcome, paused);
    handOver(current, carried, channel, deadline, ahead, outcome, paused);
    channel.sendReply(UpgradeReply::kGo, deadline);
    expectReply(channel, UpgradeReply::kServing, deadline);
  } catch (const std::exception& error) {
    // Killed before the engine resumes: the successor may have started serving, and two engines
    // must never read one socket.
    const std::string ended = successor.killAndReap();
    if (paused) resumeAfterFailure(current);
    throw UpgradeError("upgrade to " + program.path.string() + " failed: " + error.what() +
                       (ended.empty() ? "" : " (" + ended + ")") + "; pid " + std::to_string(::getpid()) +
                       " serves on");
  }
  outcome.successor = successor.pid();
  successor.release();
  try {
    current.engine().handoverComplete();
  } catch (const std::exception& error) {
    // The successor serves already; destroying this engine still closes only its own copies.
    logLine(std::string("warning: upgrade: ") + error.what());
  }
  return outcome;
}

std::optional<Succession> Succession::fromEnvironment(std::chrono::milliseconds timeout) {
  const char* text = std::getenv(kUpgradeFdVariable);
  if (text == nullptr) return std::nullopt;
  const std::string value = text;
  ::unsetenv(kUpgradeFdVariable);  // describes this process only: a child of ours must not misread it
  int fd = -1;
  const auto [end, parseError] = std::from_chars(value.data(), value.data() + value.size(), fd);
  if (parseError != std::errc() || end != value.data() + value.size() || fd < 0) {
    throw UpgradeProtocolError(std::string(kUpgradeFdVariable) + "='" + value + "' is not a descriptor number");
  }
  int type = 0;
  socklen_t length = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0 || type != SOCK_SEQPACKET) {
    throw UpgradeProtocolError(std::string(kUpgradeFdVariable) + "=" + value + " is not an upgrade channel");
  }
  UniqueFd socket(fd);
  if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 || ::fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
    throw std::system_error(errno, std::generic_category(), "fcntl upgrade channel");
  }
  Succession succession(UpgradeChannel(std::move(socket)), Clock::now() + timeout);
  try {
    succession.metricsListener_ = succession.channel_.receiveHello(succession.deadline_);
  } catch (const std::exception& error) {
    succession.fail(error.what());
    throw;
  }
  return std::optional<Succession>(std::move(succession));
}

namespace {

void importCarried(EngineHandle& engine, int fd, uint32_t worker, uint32_t flags, std::vector<unsigned char> pending) {
  ExportedConnection connection;
  connection.state.size = sizeof connection.state;
  connection.state.fd = fd;
  connection.state.worker = worker;
  connection.state.flags = flags;
  connection.state.pending_bytes = pending.size();
  connection.pending = std::move(pending);
  engine.importConnection(connection);
}

}  // namespace

void Succession::receiveAhead(EngineHandle& engine) {
  channel_.sendReply(UpgradeReply::kPrepared, deadline_, static_cast<uint32_t>(::getpid()));
  Clock::time_point mark = Clock::now();
  ahead_ = channel_.receiveState(deadline_);
  for (int fd : ahead_.listeners) engine.importListener(fd);
  aheadImported_.assign(ahead_.connections.size(), 0);
  if (engine.canDropConnections()) {
    for (std::size_t index = 0; index < ahead_.connections.size(); ++index) {
      const CarriedConnection& carried = ahead_.connections[index];
      try {
        importCarried(engine, carried.fd, carried.worker, 0, {});
        aheadImported_[index] = 1;
      } catch (const PluginCallError& error) {
        // Its client is gone already (the predecessor serves it meanwhile): the pause's state
        // either drops it or carries it again, and its import decides then. Counted and logged.
        if (aheadDeferred_++ == 0) aheadDeferredReason_ = error.what();
      }
    }
  }
  // Before "presented", so none of it falls in the pause: the workers, their epoll instances and
  // one registration per connection. Only on listeners sent ahead: an engine brought up without
  // them would bind listeners of its own.
  if (engine.canStartPaused() && engine.canDropConnections() && !ahead_.listeners.empty()) {
    Clock::time_point started = Clock::now();
    engine.startPaused();
    startedPaused_ = true;
    startPausedTime_ = since(started);
  }
  channel_.sendReply(UpgradeReply::kPresented, deadline_);
  aheadWait_ = since(mark);
}

void Succession::receiveState() {
  Clock::time_point mark = Clock::now();
  state_ = channel_.receiveState(deadline_);
  stateWait_ = since(mark);
}

HandoverCounts Succession::counts() const {
  return {static_cast<uint32_t>(ahead_.listeners.size() + state_.listeners.size()),
          static_cast<uint32_t>(ahead_.connections.size() - state_.dropped.size() + state_.connections.size())};
}

void Succession::importAhead(EngineHandle& engine, uint32_t index, uint32_t flags, std::vector<unsigned char> pending) {
  const CarriedConnection& carried = ahead_.connections[index];
  if (aheadImported_[index]) engine.dropConnection(carried.fd);
  aheadImported_[index] = 0;
  importCarried(engine, carried.fd, carried.worker, flags, std::move(pending));
  aheadImported_[index] = 1;
}

void Succession::importInto(EngineHandle& engine) {
  if (!ahead_.listeners.empty() && !state_.listeners.empty()) {
    throw UpgradeProtocolError("upgrade state: the listeners were sent ahead and again in the pause");
  }
  for (int fd : state_.listeners) engine.importListener(fd);
  // 0: kept as sent ahead, 1: dropped, 2: revised. Each index at most once.
  std::vector<char> fate(ahead_.connections.size(), 0);
  const auto claim = [&](uint32_t index, char what) {
    if (index >= fate.size() || fate[index] != 0) {
      throw UpgradeProtocolError("upgrade state: connection " + std::to_string(index) +
                                 " of the state sent ahead is out of range or named twice");
    }
    fate[index] = what;
  };
  for (uint32_t index : state_.dropped) {
    claim(index, 1);
    if (aheadImported_[index]) engine.dropConnection(ahead_.connections[index].fd);
    aheadImported_[index] = 0;
  }
  for (RevisedConnection& revised : state_.revised) {
    claim(revised.index, 2);
    importAhead(engine, revised.index, revised.flags, std::move(revised.pending));
  }
  for (uint32_t index = 0; index < fate.size(); ++index) {
    if (fate[index] == 0 && !aheadImported_[index]) importAhead(engine, index, 0, {});
  }
  for (CarriedConnection& carried : state_.connections) {
    importCarried(engine, carried.fd, carried.worker, carried.flags, std::move(carried.pending));
  }
}

void Succession::awaitGo() {
  channel_.sendReply(UpgradeReply::kReady, deadline_);
  const std::optional<ReceivedReply> reply = channel_.receiveReply(deadline_);
  if (!reply) throw UpgradeProtocolError("upgrade: the old process gave up the hand-over");
  if (reply->reply != UpgradeReply::kGo) throw UpgradeProtocolError("upgrade: unexpected message from the old process");
}

void Succession::confirmServing() noexcept {
  try {
    channel_.sendReply(UpgradeReply::kServing, deadline_);
  } catch (const std::exception& error) {
    // This process holds every socket now and serves them: stopping would drop them all.
    logLine(std::string("warning: upgrade: cannot confirm to the old process (") + error.what() +
            "); serving anyway");
  }
  channel_.releaseSocket().reset();
  ahead_.received.clear();
  state_.received.clear();
  metricsListener_.reset();  // passed, but this process has no --metrics-listen to serve it
}

void Succession::fail(const std::string& reason) noexcept {
  try {
    channel_.sendReply(UpgradeReply::kFailed, deadline_, 0, reason);
  } catch (const std::exception&) {  // the predecessor learns it from the closed channel then
  }
}

}  // namespace epoll_echo::host
