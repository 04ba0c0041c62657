// Engine: binds every listener before any thread starts, so a failure leaves nothing behind.
#include "engine.h"

#include <system_error>

#include "engine_error.h"
#include "listener.h"

namespace epoll_echo {
namespace {

void stopAndJoin(std::vector<std::unique_ptr<Worker>>& workers) noexcept {
    for (auto& worker : workers) worker->requestStop();
    for (auto& worker : workers) worker->join();
    for (auto& worker : workers) worker->closeAll();
}

}  // namespace

void Engine::start() {
    std::lock_guard<std::mutex> control(controlMutex_);
    {
        std::lock_guard<std::mutex> lock(stateMutex_);
        if (state_ != EPOLL_ECHO_STATE_CREATED) {
            throw EngineError(EPOLL_ECHO_ESTATE, "start: the engine has already been started; an engine runs once");
        }
    }
    ListenerSet listeners = openListeners(config_);
    std::vector<std::unique_ptr<Worker>> workers;
    workers.reserve(listeners.sockets.size());
    for (uint32_t i = 0; i < listeners.sockets.size(); ++i) {
        workers.push_back(std::make_unique<Worker>(i, config_, std::move(listeners.sockets[i])));
    }
    for (size_t i = 0; i < workers.size(); ++i) {
        try {
            workers[i]->start();
        } catch (const std::system_error& error) {
            stopAndJoin(workers);
            throw EngineError(EPOLL_ECHO_ESYSTEM, "cannot start worker thread " + std::to_string(i) + ": " + error.what());
        }
    }
    std::lock_guard<std::mutex> lock(stateMutex_);
    workers_ = std::move(workers);
    port_ = listeners.port;
    state_ = EPOLL_ECHO_STATE_RUNNING;
}

void Engine::stop() noexcept {
    std::lock_guard<std::mutex> control(controlMutex_);
    // workers_ only changes under controlMutex_, which we hold: reading it unlocked here is safe,
    // and stats() readers keep seeing the (joined) workers and their counters.
    stopAndJoin(workers_);
    std::lock_guard<std::mutex> lock(stateMutex_);
    state_ = EPOLL_ECHO_STATE_STOPPED;
}

epoll_echo_stats_t Engine::stats() const {
    epoll_echo_stats_t stats{};
    stats.size = sizeof stats;
    stats.listeners = config_.listeners;
    std::lock_guard<std::mutex> lock(stateMutex_);
    stats.state = state_;
    stats.port = port_;
    for (const auto& worker : workers_) worker->counters().addTo(stats.total);
    return stats;
}

bool Engine::workerCounters(uint32_t index, epoll_echo_counters_t& out) const {
    out = {};
    std::lock_guard<std::mutex> lock(stateMutex_);
    if (index >= config_.listeners) return false;
    // Before start a worker exists only in the configuration: its counters are all zero.
    if (index < workers_.size()) workers_[index]->counters().addTo(out);
    return true;
}

void Engine::setLastError(const std::string& detail) {
    std::lock_guard<std::mutex> lock(stateMutex_);
    lastError_ = detail;
}

std::string Engine::lastError() const {
    std::lock_guard<std::mutex> lock(stateMutex_);
    return lastError_;
}

}  // namespace epoll_echo
