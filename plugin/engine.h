// Engine: the object behind epoll_echo_engine_t — its configuration, its workers, its state, the
// sockets imported for a hand-over and the detail of its last error. Holds no global state, so
// several engines can share a process.
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config.h"
#include "epoll_echo.h"
#include "listener.h"
#include "unique_fd.h"
#include "worker.h"

namespace epoll_echo {

// A socket as the kernel knows it (sockfs device and inode), whichever descriptor refers to it.
struct SocketIdentity {
  dev_t device = 0;
  ino_t inode = 0;
  bool operator==(const SocketIdentity& other) const { return device == other.device && inode == other.inode; }
};

// Control calls (start, stop, pause, resume, hand-over) are serialised by controlMutex_; stats and
// lastError may run on any thread at any time and take only the short-lived stateMutex_.
// Every throwing member leaves the engine as it was and throws EngineError.
class Engine {
 public:
  explicit Engine(EngineConfig config) : config_(std::move(config)) {}
  ~Engine() { stop(); }
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  void start();
  void stop() noexcept;  // idempotent; joins every worker thread before it returns
  void pause();
  void resume();

  // Hand-over (engine_handover.cpp).
  void handoverCounts(uint32_t& listeners, uint32_t& connections);
  int exportListener(uint32_t index);
  // Returns false (state filled, nothing copied) when `capacity` is too small for the bytes.
  bool exportConnection(uint32_t index, epoll_echo_connection_state_t& state, void* pending, size_t capacity);
  void completeHandover();
  void importListener(int fd);
  void importConnection(const epoll_echo_connection_state_t& state, const void* pending);

  epoll_echo_stats_t stats() const;
  // Returns false when index is out of range.
  bool workerCounters(uint32_t index, epoll_echo_counters_t& out) const;

  // Records the detail of a failed call, `first` followed by `second`: the next failure replaces
  // it, a success leaves it. Const and noexcept so that every path, a failed stats() included,
  // can record; without memory for the text it keeps a fixed one.
  void setLastError(const char* first, const char* second = "") const noexcept;
  std::string lastError() const;

 private:
  struct ImportedConnection {
    UniqueFd fd;
    SocketIdentity identity;
    std::string pending;
    uint32_t worker = 0;
    bool peerClosed = false;
  };

  void requireState(uint32_t expected, const char* operation) const;
  void setState(uint32_t state);
  ListenerSet shareImportedListeners();
  std::vector<std::unique_ptr<Worker>> createWorkers(std::vector<UniqueFd> listeners);
  void adoptImportedConnections(std::vector<std::unique_ptr<Worker>>& workers);
  static void startAll(std::vector<std::unique_ptr<Worker>>& workers);
  // Connection `index` counted over all workers in order, and its worker's index; throws ERANGE.
  const Connection& connectionAt(uint32_t index, uint32_t& worker) const;

  const EngineConfig config_;
  std::mutex controlMutex_;
  mutable std::mutex stateMutex_;
  uint32_t state_ = EPOLL_ECHO_STATE_CREATED;            // guarded by stateMutex_
  uint16_t port_ = 0;                                    // guarded by stateMutex_
  std::vector<std::unique_ptr<Worker>> workers_;         // guarded by stateMutex_; set once by start()
  mutable std::string lastError_;                        // guarded by stateMutex_
  std::vector<UniqueFd> importedListeners_;              // control thread only, until start()
  std::vector<ImportedConnection> importedConnections_;  // control thread only, until start()
};

}  // namespace epoll_echo
