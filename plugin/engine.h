// Engine: the object behind epoll_echo_engine_t — its configuration, its workers, its state and
// the detail of its last error. Holds no global state, so several engines can share a process.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config.h"
#include "epoll_echo.h"
#include "worker.h"

namespace epoll_echo {

// Control calls (start, stop) are serialised by controlMutex_; stats and lastError may run on any
// thread at any time and take only the short-lived stateMutex_.
class Engine {
public:
    explicit Engine(EngineConfig config) : config_(std::move(config)) {}
    ~Engine() { stop(); }
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Throws EngineError; on failure nothing is left running or open and the state is unchanged.
    void start();
    // Idempotent; joins every worker thread before it returns.
    void stop() noexcept;

    epoll_echo_stats_t stats() const;
    // Returns false when index is out of range.
    bool workerCounters(uint32_t index, epoll_echo_counters_t& out) const;

    void setLastError(const std::string& detail);
    std::string lastError() const;

private:
    const EngineConfig config_;
    std::mutex controlMutex_;
    mutable std::mutex stateMutex_;
    uint32_t state_ = EPOLL_ECHO_STATE_CREATED;          // guarded by stateMutex_
    uint16_t port_ = 0;                                  // guarded by stateMutex_
    std::vector<std::unique_ptr<Worker>> workers_;       // guarded by stateMutex_; never shrinks
    std::string lastError_;                              // guarded by stateMutex_
};

}  // namespace epoll_echo
