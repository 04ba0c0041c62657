// Engine hand-over: exporting a paused engine's sockets and importing them into a new engine.
// Descriptors are duplicated, never moved, so either side can fail without a client noticing.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "engine.h"
#include "engine_error.h"

namespace epoll_echo {
namespace {

int socketOption(int fd, int name) {
  int value = -1;
  socklen_t length = sizeof value;
  if (::getsockopt(fd, SOL_SOCKET, name, &value, &length) != 0) return -1;
  return value;
}

// Checks that fd is a TCP socket, listening or not as `listening` requires. SO_PROTOCOL, not only
// SO_TYPE: SCTP one-to-one and MPTCP sockets are SOCK_STREAM sockets of AF_INET and AF_INET6 too.
void requireTcpSocket(int fd, bool listening, const char* what) {
  const int domain = socketOption(fd, SO_DOMAIN);
  if (socketOption(fd, SO_TYPE) != SOCK_STREAM || socketOption(fd, SO_PROTOCOL) != IPPROTO_TCP ||
      (domain != AF_INET && domain != AF_INET6)) {
    throw EngineError(EPOLL_ECHO_EINVAL, std::string(what) + ": fd " + std::to_string(fd) + " is not a TCP socket");
  }
  if ((socketOption(fd, SO_ACCEPTCONN) == 1) != listening) {
    throw EngineError(EPOLL_ECHO_EINVAL, std::string(what) + ": fd " + std::to_string(fd) +
                                             (listening ? " is not listening" : " is a listening socket"));
  }
}

// A socket that never connected (unbound, only bound, or still connecting) has no peer. One whose
// connection died while its exporter was paused has none either, but it still holds the error
// (POLLERR): it is taken like any connection, and its worker closes it at its first event, so a
// client's reset during a hand-over does not fail the whole hand-over.
void requireConnected(int fd) {
  sockaddr_storage peer{};
  socklen_t length = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) == 0) return;
  if (errno != ENOTCONN) throwErrno(EPOLL_ECHO_ESYSTEM, "import_connection: getpeername of fd " + std::to_string(fd));
  pollfd probe{fd, 0, 0};
  if (::poll(&probe, 1, 0) == 1 && (probe.revents & POLLERR) != 0) return;
  throw EngineError(EPOLL_ECHO_EINVAL,
                    "import_connection: fd " + std::to_string(fd) + " is a TCP socket that is not connected");
}

// The check of a connection to import, as requireTcpSocket and requireConnected make it, in two
// system calls when it passes (the common case): a peer proves a connected socket, its address
// family an IPv4 or IPv6 one, SO_PROTOCOL a TCP one (only stream sockets speak TCP). An upgrade
// imports thousands of connections while the clients wait.
void requireConnectedTcpSocket(int fd) {
  sockaddr_storage peer{};
  socklen_t length = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) == 0 &&
      (peer.ss_family == AF_INET || peer.ss_family == AF_INET6) && socketOption(fd, SO_PROTOCOL) == IPPROTO_TCP) {
    return;
  }
  requireTcpSocket(fd, false, "import_connection");  // the precise refusal, or a dead connection
  requireConnected(fd);
}

// Our own close-on-exec, non-blocking copy of a socket the caller keeps.
UniqueFd duplicateSocket(int fd, const char* what) {
  UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!copy) throwErrno(EPOLL_ECHO_ESYSTEM, std::string(what) + ": fcntl F_DUPFD_CLOEXEC");
  // O_NONBLOCK belongs to the shared open file description, which the exporter set already;
  // setting it again covers a socket that came from elsewhere (socket activation).
  const int flags = ::fcntl(copy.get(), F_GETFL);
  if (flags < 0 || ((flags & O_NONBLOCK) == 0 && ::fcntl(copy.get(), F_SETFL, flags | O_NONBLOCK) != 0)) {
    throwErrno(EPOLL_ECHO_ESYSTEM, std::string(what) + ": fcntl O_NONBLOCK");
  }
  return copy;
}

// The socket itself, whatever descriptor refers to it: dup() and SCM_RIGHTS copies share it.
SocketIdentity identify(int fd, const char* what) {
  uint64_t cookie = 0;
  socklen_t length = sizeof cookie;
  if (::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &length) != 0) {
    throwErrno(EPOLL_ECHO_ESYSTEM, std::string(what) + ": getsockopt SO_COOKIE of fd " + std::to_string(fd));
  }
  return cookie;
}

constexpr uint32_t kKnownConnectionFlags = EPOLL_ECHO_CONNECTION_PEER_CLOSED;

}  // namespace

void Engine::handoverCounts(uint32_t& listeners, uint32_t& connections) const {
  MutexLock control(controlMutex_);
  requireState(EPOLL_ECHO_STATE_PAUSED, "handover_counts");
  listeners = static_cast<uint32_t>(workers_.size());
  size_t total = 0;
  for (const auto& worker : workers_) total += worker->connectionCount();
  connections = static_cast<uint32_t>(total);
}

int Engine::exportListener(uint32_t index) const {
  MutexLock control(controlMutex_);
  requireState(EPOLL_ECHO_STATE_PAUSED, "export_listener");
  if (index >= workers_.size()) {
    throw EngineError(EPOLL_ECHO_ERANGE, "export_listener: index " + std::to_string(index) +
                                             " >= " + std::to_string(workers_.size()) + " listeners");
  }
  return workers_[index]->listenerFd();
}

const Connection& Engine::connectionAt(uint32_t index, uint32_t& worker) const {
  size_t remaining = index;
  for (worker = 0; worker < workers_.size(); ++worker) {
    const size_t count = workers_[worker]->connectionCount();
    // The workers are mutable through their pointers: marking a connection shared changes how
    // it will be closed, nothing a caller of this const query sees.
    if (remaining < count) return workers_[worker]->exportConnectionAt(remaining);
    remaining -= count;
  }
  throw EngineError(EPOLL_ECHO_ERANGE,
                    "export_connection: index " + std::to_string(index) + " is past the last connection");
}

bool Engine::exportConnection(uint32_t index, epoll_echo_connection_state_t& state, void* pending,
                              size_t capacity) const {
  MutexLock control(controlMutex_);
  requireState(EPOLL_ECHO_STATE_PAUSED, "export_connection");
  state = {};
  state.size = sizeof state;
  const Connection& connection = connectionAt(index, state.worker);
  state.fd = connection.fd.get();
  state.flags = connection.peerClosed ? EPOLL_ECHO_CONNECTION_PEER_CLOSED : 0;
  state.pending_bytes = connection.pending.size();
  if (pending == nullptr) return true;
  if (capacity < connection.pending.size()) return false;
  if (!connection.pending.empty()) std::memcpy(pending, connection.pending.data(), connection.pending.size());
  return true;
}

void Engine::completeHandover() {
  MutexLock control(controlMutex_);
  requireState(EPOLL_ECHO_STATE_PAUSED, "handover_complete");
  for (auto& worker : workers_) worker->releaseAll();
  closeLoop();
  setState(EPOLL_ECHO_STATE_STOPPED);
}

void Engine::importListener(int fd) {
  MutexLock control(controlMutex_);
  requireState(EPOLL_ECHO_STATE_CREATED, "import_listener");
  if (importedListeners_.size() >= kMaxWorkers) {
    throw EngineError(EPOLL_ECHO_EINVAL, "import_listener: more than " + std::to_string(kMaxWorkers) + " listeners");
  }
  requireTcpSocket(fd, true, "import_listener");
  // A listener imported twice would get twice the workers; a host that sends one twice is wrong.
  const SocketIdentity identity = identify(fd, "import_listener");
  for (const UniqueFd& imported : importedListeners_) {
    if (identify(imported.get(), "import_listener") == identity) {
      throw EngineError(EPOLL_ECHO_EINVAL, "import_listener: fd " + std::to_string(fd) +
                                               " is a listener this engine has already imported");
    }
  }
  importedListeners_.push_back(duplicateSocket(fd, "import_listener"));
}

void Engine::importConnection(const epoll_echo_connection_state_t& state, const void* pending) {
  MutexLock control(controlMutex_);
  const uint32_t current = requireConnectionImportState("import_connection");
  if ((state.flags & ~kKnownConnectionFlags) != 0) {
    throw EngineError(EPOLL_ECHO_EINVAL,
                      "import_connection: flags " + std::to_string(state.flags) +
                          " has bits this plugin does not know (known: " + std::to_string(kKnownConnectionFlags) + ")");
  }
  // No engine holds more for one connection (docs/abi.md); anything above is a corrupt state.
  const uint64_t limit = uint64_t{config_.highWaterBytes} + config_.readBudgetBytes;
  if (state.pending_bytes > limit) {
    throw EngineError(EPOLL_ECHO_EINVAL, "import_connection: pending_bytes " + std::to_string(state.pending_bytes) +
                                             " is above this engine's " + std::to_string(limit) +
                                             " (high_water_bytes + read_budget_bytes)");
  }
  if (state.pending_bytes > 0 && pending == nullptr) {
    throw EngineError(EPOLL_ECHO_EINVAL,
                      "import_connection: pending is NULL with pending_bytes " + std::to_string(state.pending_bytes));
  }
  requireConnectedTcpSocket(state.fd);
  const SocketIdentity identity = identify(state.fd, "import_connection");
  // Two workers serving one socket would interleave its reads and reorder the echo.
  if (importedIdentities_.count(identity) != 0 || unserved_.count(identity) != 0) {
    throw EngineError(EPOLL_ECHO_EINVAL, "import_connection: fd " + std::to_string(state.fd) +
                                             " is a connection this engine has already imported");
  }
  UniqueFd copy = duplicateSocket(state.fd, "import_connection");
  if (current == EPOLL_ECHO_STATE_PAUSED) {
    adoptWhilePaused(identity, std::move(copy), state, pending);
    return;
  }
  ImportedConnection imported;
  imported.fd = std::move(copy);
  if (state.pending_bytes > 0) {
    imported.pending.assign(static_cast<const char*>(pending), static_cast<size_t>(state.pending_bytes));
  }
  imported.worker = state.worker;
  imported.peerClosed = (state.flags & EPOLL_ECHO_CONNECTION_PEER_CLOSED) != 0;
  imported.identity = identity;
  const auto remembered = importedIdentities_.emplace(identity, importedConnections_.size()).first;
  try {
    importedConnections_.push_back(std::move(imported));
  } catch (...) {
    importedIdentities_.erase(remembered);
    throw;
  }
}

// Straight into its worker's table (and epoll set): the worker does not run until resume().
void Engine::adoptWhilePaused(SocketIdentity identity, UniqueFd socket, const epoll_echo_connection_state_t& state,
                              const void* pending) {
  const uint32_t worker = static_cast<uint32_t>(state.worker % workers_.size());
  const int fd = socket.get();
  const auto remembered = unserved_.emplace(identity, UnservedConnection{worker, fd}).first;
  try {
    workers_[worker]->adoptConnection(std::move(socket), static_cast<const char*>(pending),
                                      static_cast<size_t>(state.pending_bytes),
                                      (state.flags & EPOLL_ECHO_CONNECTION_PEER_CLOSED) != 0);
  } catch (...) {
    unserved_.erase(remembered);
    throw;
  }
}

void Engine::dropConnection(int fd) {
  MutexLock control(controlMutex_);
  const uint32_t current = requireConnectionImportState("drop_connection");
  uint64_t cookie = 0;
  socklen_t length = sizeof cookie;
  if (fd < 0 || ::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &length) != 0) {
    throw EngineError(EPOLL_ECHO_EINVAL,
                      "drop_connection: fd " + std::to_string(fd) + " is not an open descriptor of a socket");
  }
  if (current == EPOLL_ECHO_STATE_PAUSED) {
    dropUnserved(cookie, fd);
    return;
  }
  const auto found = importedIdentities_.find(cookie);
  if (found == importedIdentities_.end()) {
    throw EngineError(EPOLL_ECHO_EINVAL, "drop_connection: fd " + std::to_string(fd) +
                                             " is not a connection this engine holds (never imported, or dropped)");
  }
  // Left in place, empty, so the other entries keep their indices; start() skips it.
  ImportedConnection& dropped = importedConnections_[found->second];
  dropped.fd.reset();
  std::string().swap(dropped.pending);
  importedIdentities_.erase(found);
}

void Engine::dropUnserved(SocketIdentity identity, int fd) {
  const auto found = unserved_.find(identity);
  if (found == unserved_.end()) {
    throw EngineError(EPOLL_ECHO_EINVAL, "drop_connection: fd " + std::to_string(fd) +
                                             " is not a connection this engine holds unserved (never imported, "
                                             "dropped, or served since a start or resume)");
  }
  if (!workers_[found->second.worker]->releaseConnection(found->second.fd)) {
    throw EngineError(EPOLL_ECHO_EINTERNAL, "drop_connection: worker " + std::to_string(found->second.worker) +
                                                " no longer holds fd " + std::to_string(fd));
  }
  unserved_.erase(found);
}

Engine::UnservedConnections Engine::adoptImportedConnections(WorkerList& workers, bool remember) {
  UnservedConnections unserved;
  if (remember) unserved.reserve(importedIdentities_.size());
  for (ImportedConnection& imported : importedConnections_) {
    if (!imported.fd) continue;  // dropped
    const uint32_t index = static_cast<uint32_t>(imported.worker % workers.size());
    if (remember) unserved.emplace(imported.identity, UnservedConnection{index, imported.fd.get()});
    workers[index]->adoptConnection(std::move(imported.fd), imported.pending.data(), imported.pending.size(),
                                    imported.peerClosed);
  }
  importedConnections_.clear();
  importedIdentities_.clear();
  return unserved;
}

}  // namespace epoll_echo
