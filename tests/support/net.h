// net.h — small socket helpers shared by the integration and end-to-end tests: loopback connect/listen, and
// send/receive/EOF waits that all take a deadline (poll-based, never sleep-as-sync), plus /proc/self/fd counting for
// leak checks.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "unique_fd.h"

namespace epoll_echo::test {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

// A deadline `timeout` from now; every blocking helper below takes one so no test can hang.
Deadline deadlineIn(std::chrono::milliseconds timeout);

// Milliseconds left until `deadline`, rounded up, clamped to [0, INT_MAX]: a poll() timeout.
int millisecondsLeft(Deadline deadline);

// Connects to host:port, host being a numeric IPv4 or IPv6 address ("127.0.0.1", "::1"). The
// returned socket is CLOEXEC and in blocking mode (the helpers below work in either mode). On
// failure returns an invalid UniqueFd and, when `error` is not null, says why ("connect ::1:80: ...").
UniqueFd connectTcp(const std::string& host, uint16_t port, Deadline deadline, std::string* error = nullptr);
UniqueFd connectLoopback(uint16_t port, Deadline deadline, std::string* error = nullptr);  // 127.0.0.1

// A plain listening socket on host:port (port 0 = kernel's choice), SO_REUSEADDR off so that it
// really occupies the port. Invalid UniqueFd and `error` on failure.
UniqueFd listenTcp(const std::string& host, uint16_t port, int backlog = 16, std::string* error = nullptr);

// The local port of a bound socket, 0 on failure.
uint16_t localPort(int fd);

// Both ends of a loopback TCP connection, as a host holding a client's socket would have: the
// client connected, the server's end accepted with SOCK_CLOEXEC | `acceptFlags` (SOCK_NONBLOCK).
// On failure either may be invalid and `error` says why.
struct LoopbackPair {
  UniqueFd client;
  UniqueFd server;
};
LoopbackPair connectLoopbackPair(int acceptFlags = 0, std::string* error = nullptr);

bool setNonBlocking(int fd, bool nonBlocking);

// Makes the next close() send RST instead of FIN (SO_LINGER with a zero timeout).
bool setLingerZero(int fd);

// Sends all `size` bytes (MSG_NOSIGNAL, waiting with poll between partial sends). Returns false
// on error, peer reset or deadline; `error` says which.
bool sendAll(int fd, const void* data, std::size_t size, Deadline deadline, std::string* error = nullptr);
bool sendAll(int fd, const std::string& data, Deadline deadline, std::string* error = nullptr);

// Receives exactly `size` bytes into `data`. False on EOF first, error or deadline; `*received`
// (when given) holds how many bytes did arrive.
bool receiveExactly(int fd, void* data, std::size_t size, Deadline deadline, std::string* error = nullptr,
                    std::size_t* received = nullptr);

// How the peer's side of a connection ended, as seen by waitForClose().
enum class PeerClose { Eof, Reset, Timeout, UnexpectedData, Error };
const char* toString(PeerClose outcome);

// Waits until the peer closes: Eof for an orderly FIN, Reset for ECONNRESET/EPIPE. Bytes that
// arrive first are discarded and counted in `*discarded` (when given); with `allowData` false
// the first such byte ends the wait with UnexpectedData.
PeerClose waitForClose(int fd, Deadline deadline, bool allowData = true, std::size_t* discarded = nullptr);

// True when the next thing on the socket is an orderly EOF (no data first) before the deadline.
bool waitForEof(int fd, Deadline deadline, std::string* error = nullptr);

// Entries of a directory other than "." and "..", or -1 when it cannot be opened. On /proc/PID/fd
// of another process, that process's open descriptors.
int countDirectoryEntries(const std::string& path);

// Number of open file descriptors of this process (entries of /proc/self/fd, not counting the
// descriptor used to read the directory), or -1 if /proc is unavailable.
int countOpenFds();

// Number of threads of this process (entries of /proc/self/task), or -1.
int countThreads();

// "fd -> target" lines for every open descriptor, for a readable leak diagnosis.
std::string describeOpenFds();

// A deterministic pseudo-random byte stream per seed that can be produced from any offset, so a
// test can check gigabytes of echo without holding them: fills out[0, size) with stream bytes
// [offset, offset + size).
void fillPattern(std::uint64_t seed, std::uint64_t offset, unsigned char* out, std::size_t size);

// The first `size` bytes of the stream of `seed`.
std::vector<unsigned char> randomBytes(std::size_t size, std::uint64_t seed);

}  // namespace epoll_echo::test
