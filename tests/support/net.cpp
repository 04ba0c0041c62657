// net.cpp — socket helpers for tests. Every wait is a poll() bounded by the caller's deadline;
// sends and receives use MSG_DONTWAIT so they behave the same on blocking and non-blocking fds.
#include "support/net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

namespace epoll_echo::test {
namespace {

void setError(std::string* error, const std::string& text) {
  if (error != nullptr) *error = text;
}

std::string errnoText(const std::string& what, int code) { return what + ": " + std::strerror(code); }

// Fills `storage` for a numeric address; false when `host` is neither IPv4 nor IPv6.
bool makeAddress(const std::string& host, uint16_t port, sockaddr_storage& storage, socklen_t& length) {
  std::memset(&storage, 0, sizeof storage);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

// Waits for `events` on fd; returns the revents, 0 on deadline, -1 on poll error.
int waitFor(int fd, short events, Deadline deadline) {
  for (;;) {
    pollfd entry{fd, events, 0};
    int ready = ::poll(&entry, 1, millisecondsLeft(deadline));
    if (ready > 0) return entry.revents;
    if (ready == 0) return 0;
    if (errno != EINTR) return -1;
  }
}

}  // namespace

Deadline deadlineIn(std::chrono::milliseconds timeout) { return Clock::now() + timeout; }

int millisecondsLeft(Deadline deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, INT_MAX));
}

UniqueFd connectTcp(const std::string& host, uint16_t port, Deadline deadline, std::string* error) {
  const std::string where = "connect " + host + ":" + std::to_string(port);
  sockaddr_storage address;
  socklen_t length = 0;
  if (!makeAddress(host, port, address, length)) {
    setError(error, where + ": not a numeric address");
    return UniqueFd();
  }
  // Non-blocking connect so the deadline also bounds a SYN that nobody answers.
  UniqueFd socketFd(::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!socketFd) {
    setError(error, errnoText("socket", errno));
    return UniqueFd();
  }
  if (::connect(socketFd.get(), reinterpret_cast<sockaddr*>(&address), length) != 0) {
    if (errno != EINPROGRESS) {
      setError(error, errnoText(where, errno));
      return UniqueFd();
    }
    int revents = waitFor(socketFd.get(), POLLOUT, deadline);
    if (revents <= 0) {
      setError(error, where + (revents == 0 ? ": timed out" : ": poll failed"));
      return UniqueFd();
    }
    int socketError = 0;
    socklen_t size = sizeof socketError;
    ::getsockopt(socketFd.get(), SOL_SOCKET, SO_ERROR, &socketError, &size);
    if (socketError != 0) {
      setError(error, errnoText(where, socketError));
      return UniqueFd();
    }
  }
  setNonBlocking(socketFd.get(), false);
  return socketFd;
}

UniqueFd connectLoopback(uint16_t port, Deadline deadline, std::string* error) {
  return connectTcp("127.0.0.1", port, deadline, error);
}

UniqueFd listenTcp(const std::string& host, uint16_t port, int backlog, std::string* error) {
  const std::string where = host + ":" + std::to_string(port);
  sockaddr_storage address;
  socklen_t length = 0;
  if (!makeAddress(host, port, address, length)) {
    setError(error, "listen " + where + ": not a numeric address");
    return UniqueFd();
  }
  UniqueFd socketFd(::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!socketFd) {
    setError(error, errnoText("socket", errno));
    return UniqueFd();
  }
  if (::bind(socketFd.get(), reinterpret_cast<sockaddr*>(&address), length) != 0) {
    setError(error, errnoText("bind " + where, errno));
    return UniqueFd();
  }
  if (::listen(socketFd.get(), backlog) != 0) {
    setError(error, errnoText("listen " + where, errno));
    return UniqueFd();
  }
  return socketFd;
}

uint16_t localPort(int fd) {
  sockaddr_storage address;
  socklen_t length = sizeof address;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return 0;
  if (address.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port);
  if (address.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
  return 0;
}

LoopbackPair connectLoopbackPair(int acceptFlags, std::string* error) {
  LoopbackPair pair;
  UniqueFd listener = listenTcp("127.0.0.1", 0, 4, error);
  if (!listener) return pair;
  pair.client = connectLoopback(localPort(listener.get()), deadlineIn(std::chrono::seconds(10)), error);
  if (!pair.client) return pair;
  pair.server.reset(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC | acceptFlags));
  if (!pair.server && error != nullptr) *error = std::string("accept4: ") + std::strerror(errno);
  return pair;
}

bool setNonBlocking(int fd, bool nonBlocking) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return false;
  flags = nonBlocking ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  return ::fcntl(fd, F_SETFL, flags) == 0;
}

bool setLingerZero(int fd) {
  linger option{1, 0};
  return ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, sizeof option) == 0;
}

bool sendAll(int fd, const void* data, std::size_t size, Deadline deadline, std::string* error) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  std::size_t sent = 0;
  while (sent < size) {
    ssize_t written = ::send(fd, bytes + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (written > 0) {
      sent += static_cast<std::size_t>(written);
      continue;
    }
    if (written < 0 && errno == EINTR) continue;
    if (written < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      setError(error, errnoText("send after " + std::to_string(sent) + " bytes", errno));
      return false;
    }
    if (waitFor(fd, POLLOUT, deadline) <= 0) {
      setError(error, "send timed out after " + std::to_string(sent) + " of " + std::to_string(size) + " bytes");
      return false;
    }
  }
  return true;
}

bool sendAll(int fd, const std::string& data, Deadline deadline, std::string* error) {
  return sendAll(fd, data.data(), data.size(), deadline, error);
}

bool receiveExactly(int fd, void* data, std::size_t size, Deadline deadline, std::string* error,
                    std::size_t* received) {
  auto* bytes = static_cast<unsigned char*>(data);
  std::size_t got = 0;
  bool ok = true;
  while (got < size) {
    ssize_t count = ::recv(fd, bytes + got, size - got, MSG_DONTWAIT);
    if (count > 0) {
      got += static_cast<std::size_t>(count);
      continue;
    }
    if (count == 0) {
      setError(error, "EOF after " + std::to_string(got) + " of " + std::to_string(size) + " bytes");
      ok = false;
      break;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      setError(error, errnoText("recv after " + std::to_string(got) + " bytes", errno));
      ok = false;
      break;
    }
    if (waitFor(fd, POLLIN, deadline) <= 0) {
      setError(error, "receive timed out after " + std::to_string(got) + " of " + std::to_string(size) + " bytes");
      ok = false;
      break;
    }
  }
  if (received != nullptr) *received = got;
  return ok;
}

const char* toString(PeerClose outcome) {
  switch (outcome) {
    case PeerClose::Eof:
      return "EOF";
    case PeerClose::Reset:
      return "reset";
    case PeerClose::Timeout:
      return "timeout";
    case PeerClose::UnexpectedData:
      return "unexpected data";
    case PeerClose::Error:
      return "error";
  }
  return "?";
}

PeerClose waitForClose(int fd, Deadline deadline, bool allowData, std::size_t* discarded) {
  unsigned char buffer[16384];
  std::size_t total = 0;
  auto finish = [&](PeerClose outcome) {
    if (discarded != nullptr) *discarded = total;
    return outcome;
  };
  for (;;) {
    ssize_t count = ::recv(fd, buffer, allowData ? sizeof buffer : 1, MSG_DONTWAIT);
    if (count == 0) return finish(PeerClose::Eof);
    if (count > 0) {
      total += static_cast<std::size_t>(count);
      if (!allowData) return finish(PeerClose::UnexpectedData);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == ECONNRESET || errno == EPIPE) return finish(PeerClose::Reset);
    if (errno != EAGAIN && errno != EWOULDBLOCK) return finish(PeerClose::Error);
    int revents = waitFor(fd, POLLIN, deadline);
    if (revents == 0) return finish(PeerClose::Timeout);
    if (revents < 0) return finish(PeerClose::Error);
  }
}

bool waitForEof(int fd, Deadline deadline, std::string* error) {
  PeerClose outcome = waitForClose(fd, deadline, false);
  if (outcome == PeerClose::Eof) return true;
  setError(error, std::string("expected EOF, got ") + toString(outcome));
  return false;
}

int countDirectoryEntries(const std::string& path) {
  DIR* directory = ::opendir(path.c_str());
  if (directory == nullptr) return -1;
  int count = 0;
  while (dirent* entry = ::readdir(directory)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(directory);
  return count;
}

int countOpenFds() {
  const int count = countDirectoryEntries("/proc/self/fd");
  return count < 0 ? -1 : count - 1;  // the directory's own descriptor
}

int countThreads() { return countDirectoryEntries("/proc/self/task"); }

std::string describeOpenFds() {
  std::string text;
  DIR* directory = ::opendir("/proc/self/fd");
  if (directory == nullptr) return "(no /proc/self/fd)";
  while (dirent* entry = ::readdir(directory)) {
    if (entry->d_name[0] == '.') continue;
    std::string path = std::string("/proc/self/fd/") + entry->d_name;
    char target[256] = {};
    ssize_t length = ::readlink(path.c_str(), target, sizeof target - 1);
    text += std::string(entry->d_name) + " -> " + (length > 0 ? target : "?") + "\n";
  }
  ::closedir(directory);
  return text;
}

void fillPattern(std::uint64_t seed, std::uint64_t offset, unsigned char* out, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    std::uint64_t position = offset + done;
    // splitmix64 of (seed, 8-byte block index): cheap, and a shifted or repeated chunk cannot match.
    std::uint64_t z = seed * 0x9e3779b97f4a7c15ull + (position / 8) * 0xd1b54a32d192ed03ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    unsigned char block[8];
    std::memcpy(block, &z, sizeof block);
    std::size_t skip = position % 8;
    std::size_t count = std::min<std::size_t>(8 - skip, size - done);
    std::memcpy(out + done, block + skip, count);
    done += count;
  }
}

std::vector<unsigned char> randomBytes(std::size_t size, std::uint64_t seed) {
  std::vector<unsigned char> bytes(size);
  fillPattern(seed, 0, bytes.data(), size);
  return bytes;
}

}  // namespace epoll_echo::test
