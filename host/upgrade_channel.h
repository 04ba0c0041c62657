// upgrade_channel.h — the messages an upgrading epoll-server and its successor exchange over an
// AF_UNIX SOCK_SEQPACKET socketpair: versioned, length-checked, descriptors passed with SCM_RIGHTS.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "reload_policy.h"
#include "unique_fd.h"

namespace epoll_echo::host {

// The environment variable that tells a new process which descriptor leads to its predecessor.
inline constexpr const char* kUpgradeFdVariable = "EPOLL_ECHO_UPGRADE_FD";

// A message that breaks the protocol, a closed or failed socket, or a passed deadline; what() is
// one line.
class UpgradeProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using UpgradeDeadline = std::chrono::steady_clock::time_point;

// One live connection as it crosses: `fd` is borrowed when sent (the paused engine owns it) and
// refers into CarriedState::received once received.
struct CarriedConnection {
  int fd = -1;
  uint32_t worker = 0;
  uint32_t flags = 0;  // EPOLL_ECHO_CONNECTION_*
  std::vector<unsigned char> pending;
};

// A connection sent ahead of the pause whose pending bytes or flags were not zero in the pause:
// `index` is its place in the state sent ahead.
struct RevisedConnection {
  uint32_t index = 0;
  uint32_t flags = 0;  // EPOLL_ECHO_CONNECTION_*
  std::vector<unsigned char> pending;
};

// What the successor takes over, in two parts. Sent ahead, while the predecessor still serves:
// the listeners and the connections' descriptors with their workers (no stats, no bytes). Sent in
// the pause: the connections accepted since (whole), the indices of those sent ahead that have
// closed since (`dropped`), the pending bytes and flags of those sent ahead that have any
// (`revised`), and the stats. A predecessor that cannot send ahead sends an empty first part and
// everything in the second, as connections accepted since.
struct CarriedState {
  std::vector<int> listeners;  // borrowed when sent; into `received` once received
  std::vector<CarriedConnection> connections;
  std::vector<uint32_t> dropped;
  std::vector<RevisedConnection> revised;
  CarriedStats stats;
  std::vector<UniqueFd> received;  // the receiving side owns every descriptor it got, here
};

// The short messages around the state, in the order they cross: the predecessor still serves
// until `kPrepared`, and pauses only then, so the successor's start-up is not part of the pause.
enum class UpgradeReply : uint16_t {
  kHello = 8,     // predecessor -> successor, first: the protocol version it speaks (in the header),
                  // with the --metrics-listen listening socket when it has one (sendHello)
  kPrepared = 9,  // successor -> predecessor: plugin loaded, engine created, send the state (payload: its pid)
  kPresented = 10,  // successor -> predecessor: the state sent ahead is imported; pause and send the rest
  kReady = 4,     // successor -> predecessor: imported everything and serving
  kGo = 5,        // predecessor -> successor: the predecessor will not resume; tell the service manager
  kServing = 6,   // successor -> predecessor: service manager told, the predecessor may exit
  kFailed = 7,    // successor -> predecessor: why it gave up (payload: one line)
};

struct ReceivedReply {
  UpgradeReply reply = UpgradeReply::kFailed;
  uint32_t pid = 0;    // kPrepared
  std::string reason;  // kFailed
};

// One end of the socketpair. Every call waits at most until its deadline; none blocks past it.
// Not thread-safe; one owner.
class UpgradeChannel {
 public:
  // 2: the successor prepares (kHello, kPrepared) before the predecessor pauses.
  // 3: the hello carries the metrics listening socket, so the successor serves /metrics on it.
  // 4: the descriptors cross before the pause (a state sent ahead, kPresented), the pause sends
  //    what changed since.
  static constexpr uint16_t kProtocolVersion = 4;
  // SCM_RIGHTS caps one message at SCM_MAX_FD (253) descriptors.
  static constexpr std::size_t kDescriptorsPerMessage = 250;

  explicit UpgradeChannel(UniqueFd socket) : socket_(std::move(socket)) {}
  // A connected pair, both ends close-on-exec and non-blocking. Throws std::system_error.
  static std::pair<UpgradeChannel, UpgradeChannel> pair();

  int fd() const { return socket_.get(); }
  UniqueFd releaseSocket() { return std::move(socket_); }

  void sendState(const CarriedState& state, UpgradeDeadline deadline);
  CarriedState receiveState(UpgradeDeadline deadline);

  // The hello, with a copy of `metricsListener` when it is a descriptor (-1: none; borrowed).
  void sendHello(UpgradeDeadline deadline, int metricsListener = -1);
  // The predecessor's hello; returns the metrics listening socket it passed (empty if none).
  // Throws UpgradeProtocolError if the channel closed or the first message is not a hello.
  UniqueFd receiveHello(UpgradeDeadline deadline);

  void sendReply(UpgradeReply reply, UpgradeDeadline deadline, uint32_t pid = 0, const std::string& reason = "");
  // The next reply; nullopt when the other end closed (the other process exited or gave up).
  std::optional<ReceivedReply> receiveReply(UpgradeDeadline deadline);

 private:
  struct Message {
    uint16_t type = 0;
    std::vector<unsigned char> payload;
    std::vector<UniqueFd> descriptors;
  };
  void send(uint16_t type, const std::vector<unsigned char>& payload, const int* descriptors, std::size_t count,
            UpgradeDeadline deadline);
  std::optional<Message> receive(UpgradeDeadline deadline);
  Message receiveExpected(uint16_t type, UpgradeDeadline deadline);
  void waitFor(short events, UpgradeDeadline deadline);

  UniqueFd socket_;
};

}  // namespace epoll_echo::host
