// upgrade.h — replacing the epoll-server process itself (SIGUSR2): the serving engine's listening
// sockets and live connections, with their unsent bytes and the stats so far, go to a new process
// started from the same path with the same arguments; or the old process serves on.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "loaded_engine.h"
#include "reload.h"
#include "upgrade_channel.h"

namespace epoll_echo::host {

// The program an upgrade starts: the path the running one was started from, resolved once at
// start (a later build that replaces the file is what the upgrade should run; /proc/self/exe would
// name the old, replaced inode), and the same arguments.
struct Program {
  std::filesystem::path path;          // absolute; symlinks kept, so a switched link is followed
  std::vector<std::string> arguments;  // argv[1..]
};

// `argv0` made absolute: a name with a '/' relative to the working directory, a bare name looked
// up in $PATH like execvp() does. nullopt when nothing executable answers to it.
std::optional<std::filesystem::path> resolveExecutable(const std::string& argv0);

// A failed upgrade; what() is one line. The old process has resumed serving when it is thrown.
class UpgradeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where the clients' pause went: from pausing the engine to the successor's word that it serves.
struct PausePhases {
  std::chrono::microseconds stopWorkers{0};  // epoll_echo_pause: the workers joined
  std::chrono::microseconds exportState{0};  // every socket and pending byte taken out, stats read
  std::chrono::microseconds sendState{0};    // written to the channel (the successor reads meanwhile)
  std::chrono::microseconds takeOver{0};     // until the successor has imported them and serves
  std::chrono::microseconds total() const { return stopWorkers + exportState + sendState + takeOver; }
};

// The connections sent ahead of the pause, while the engine serves on.
struct SentAhead {
  uint32_t connections = 0;
  std::chrono::microseconds pause{0};  // the engine paused to take a copy of each descriptor
  std::chrono::microseconds import{0};  // from then until the successor had imported them
  // In the pause: those closed since, those with bytes or flags to revise, those accepted since.
  uint32_t dropped = 0;
  uint32_t revised = 0;
  uint32_t added = 0;
  // The pause matched them by descriptor number (the engine took no connection since), not by
  // getsockopt(SO_COOKIE) each.
  bool matchedByNumber = false;
};

struct UpgradeOutcome {
  pid_t successor = -1;
  HandoverCounts moved;
  uint64_t pendingBytes = 0;  // read from clients and not yet echoed, carried over with their connections
  // From starting the successor to its "prepared": no pause yet.
  std::chrono::microseconds prepare{0};
  SentAhead ahead;  // all zero when the serving plugin is older than ABI 1.5
  PausePhases pause;
};

// "2.1 ms": one decimal, for the log.
std::string formatMilliseconds(std::chrono::nanoseconds duration);
// "2.1 ms (workers stopped 0.2 ms, ...)": the pause and its phases, for the log.
std::string describePause(const PausePhases& pause);

// "ahead of the pause, 812 connections copied in a pause of 0.4 ms and imported by the new process
// in 2.9 ms; since then 3 closed, 17 revised, 2 new", for the log; "" when nothing was sent ahead.
std::string describeSentAhead(const SentAhead& ahead);

// The old process's side. Starts `program` with the successor's end of a socketpair and, while
// `current` still serves, waits for it to load its plugin and create its engine ("prepared").
// Then, with a plugin of ABI 1.5 or later, pauses `current` just long enough to copy every
// connection's descriptor, resumes it, and sends the copies and the listeners ahead; the successor
// imports them meanwhile ("presented"). Only then pauses `current` for the hand-over and sends
// what changed since (connections closed, accepted, their pending bytes and flags) and the stats
// `carried` returns (called once the engine is paused, so they no longer move), and waits for the
// successor to import them and serve ("ready"); then lets it go ("go") and waits for its
// confirmation ("serving"). On success `current` is STOPPED (hand-over complete) and the
// caller should exit. Any failure, or `timeout` passing first: the successor is killed and reaped,
// `current` resumes on its sockets if it was paused, and UpgradeError is thrown. Main thread
// only; signals stay pending meanwhile. `metricsListener` (borrowed; -1: none) is the
// --metrics-listen socket: a copy goes with the hello, and the caller's metrics server keeps
// accepting on it until the caller exits, so neither outcome refuses a scrape.
UpgradeOutcome upgradeProcess(LoadedEngine& current, const Program& program,
                              const std::function<CarriedStats()>& carried, std::chrono::milliseconds timeout,
                              int metricsListener = -1);

// The new process's side: present when $EPOLL_ECHO_UPGRADE_FD names a predecessor's channel.
// Its steps, in order: fromEnvironment, receiveAhead (once the engine exists), receiveState,
// importInto, the engine's start (its resume when startedPaused()), awaitGo, confirmServing;
// fail() at any point before the last.
class Succession {
 public:
  // Takes the descriptor named by the variable (and unsets it) and reads the predecessor's hello
  // (and the metrics listening socket it may carry),
  // so a predecessor of another protocol version is refused before anything is loaded. The
  // whole succession must end within `timeout`. nullopt without the variable. Throws
  // UpgradeProtocolError.
  static std::optional<Succession> fromEnvironment(std::chrono::milliseconds timeout);

  // Tells the predecessor this process is prepared (its engine created), receives the state it
  // sends ahead while it still serves, imports it into `engine` (connections only when the engine
  // can drop them again: ABI 1.5), brings the engine up paused on them when it can (ABI 1.6, and
  // the listeners came ahead) and says so, which pauses the predecessor. A connection that
  // cannot be imported yet (its client already gone) waits for the pause's state. Throws
  // UpgradeProtocolError or PluginCallError (a listener, start_paused).
  void receiveAhead(EngineHandle& engine);
  // How long that took, from "prepared" to "presented".
  std::chrono::microseconds aheadWait() const { return aheadWait_; }
  // The engine was brought up paused ahead (then resume() it, not start()), and how long that took.
  bool startedPaused() const { return startedPaused_; }
  std::chrono::microseconds startPausedTime() const { return startPausedTime_; }
  // The connections sent ahead that could not be imported then (left to the pause's state), and
  // the plugin's reason for the first of them ("" when none).
  uint32_t aheadDeferred() const { return aheadDeferred_; }
  const std::string& aheadDeferredReason() const { return aheadDeferredReason_; }
  // Receives the state sent in the pause: returns when all of it is here. Throws UpgradeProtocolError.
  void receiveState();
  // How long the predecessor took to pause and send it, once presented.
  std::chrono::microseconds stateWait() const { return stateWait_; }
  const CarriedStats& stats() const { return state_.stats; }
  // The predecessor's --metrics-listen socket, to serve /metrics on (empty: it had none). Once.
  UniqueFd takeMetricsListener() { return std::move(metricsListener_); }
  HandoverCounts counts() const;
  // Brings the engine's imports up to the pause's state: drops the connections closed since,
  // drops and imports again those with pending bytes or flags, imports the new ones (and those
  // sent ahead but not imported yet). Throws PluginCallError, UpgradeProtocolError (an index
  // outside the state sent ahead).
  void importInto(EngineHandle& engine);
  // The engine serves: tells the predecessor (its clients' pause ends here) and waits for its
  // go-ahead. Throws UpgradeProtocolError if it gives up (closes the channel) or the deadline passes.
  void awaitGo();
  // The service manager knows: tells the predecessor, which then exits, and closes the channel
  // and the received descriptors (the engine holds its own duplicates, the metrics server the
  // metrics socket it took). A predecessor gone by
  // then (killed) is logged, never a reason to stop: this process holds the only sockets.
  void confirmServing() noexcept;
  // Tells the predecessor why this process gives up (best effort), so it can log it and resume.
  void fail(const std::string& reason) noexcept;

 private:
  Succession(UpgradeChannel channel, UpgradeDeadline deadline) : channel_(std::move(channel)), deadline_(deadline) {}

  void importAhead(EngineHandle& engine, uint32_t index, uint32_t flags, std::vector<unsigned char> pending);

  UpgradeChannel channel_;
  CarriedState ahead_;
  std::vector<char> aheadImported_;  // per connection of ahead_: imported into the engine
  CarriedState state_;
  UpgradeDeadline deadline_;
  std::chrono::microseconds aheadWait_{0};
  bool startedPaused_ = false;
  std::chrono::microseconds startPausedTime_{0};
  uint32_t aheadDeferred_ = 0;
  std::string aheadDeferredReason_;
  std::chrono::microseconds stateWait_{0};
  UniqueFd metricsListener_;
};

}  // namespace epoll_echo::host
