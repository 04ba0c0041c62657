// Engine lifecycle: binds every listener before any thread starts, so a failed start leaves
// nothing behind; stop and pause join every worker thread.
#include "engine.h"

#include <fcntl.h>

#include <algorithm>
#include <iterator>
#include <new>
#include <system_error>

#include "engine_error.h"
#include "fault_injection.h"
#include "listener.h"
#include "socket_address.h"
#include "state_name.h"
#include "uring_worker.h"
#include "worker.h"

namespace epoll_echo {
namespace {

void joinAll(std::vector<std::unique_ptr<EventWorker>>& workers) noexcept {
  for (auto& worker : workers) worker->requestStop();
  for (auto& worker : workers) worker->join();
}

// After joinAll() or between external-loop passes: a worker may have queued connections for a
// peer that stopped before it took them; each goes into its peer's table now, where a resume
// serves it, a hand-over exports it and a stop closes it.
void collectHandedOff(std::vector<std::unique_ptr<EventWorker>>& workers) noexcept {
  for (auto& worker : workers) worker->takeHandedOff();
}

}  // namespace

void Engine::requireState(uint32_t expected, const char* operation) const {
  MutexLock lock(stateMutex_);
  if (state_ == expected) return;
  throw EngineError(EPOLL_ECHO_ESTATE,
                    std::string(operation) + ": the engine is " + stateName(state_) + ", not " + stateName(expected));
}

// An engine that has run is not given connections while paused: the caller could not know
// which sockets it holds (an import of one of them would have two workers read it).
uint32_t Engine::requireConnectionImportState(const char* operation) const {
  MutexLock lock(stateMutex_);
  if (state_ == EPOLL_ECHO_STATE_CREATED || (state_ == EPOLL_ECHO_STATE_PAUSED && startedPaused_)) return state_;
  throw EngineError(EPOLL_ECHO_ESTATE, std::string(operation) + ": the engine is " + stateName(state_) +
                                           (state_ == EPOLL_ECHO_STATE_PAUSED ? " after running" : "") +
                                           ", not created or brought up by start_paused");
}

void Engine::setState(uint32_t state) {
  MutexLock lock(stateMutex_);
  state_ = state;
}

// All or none: when worker i cannot start, the ones before it are stopped and joined again, so
// no thread outlives a failed start or resume.
void Engine::startAll(WorkerList& workers) {
  for (size_t i = 0; i < workers.size(); ++i) {
    try {
      fault::workerStart(i);
      workers[i]->start();
    } catch (const std::system_error& error) {
      joinAll(workers);
      throw EngineError(EPOLL_ECHO_ESYSTEM, "cannot start worker thread " + std::to_string(i) + ": " + error.what());
    } catch (...) {  // EngineError (an io_uring ring that cannot be set up), bad_alloc
      joinAll(workers);
      throw;
    }
  }
}

// Imported listeners are served as they are, never closed and reopened. When the configuration
// asks for more workers than sockets were imported (one inherited socket from systemd, say), the
// extra workers share them through duplicates: worker i serves imported socket i % count.
ListenerSet Engine::shareImportedListeners() {
  ListenerSet set;
  auto local = SocketAddress::localOf(importedListeners_.front().get());
  set.port = local ? local->port() : 0;
  const size_t imported = importedListeners_.size();
  const size_t workers = std::max<size_t>(config_.workers, imported);
  set.sockets.reserve(workers);
  for (size_t i = imported; i < workers; ++i) {
    UniqueFd copy(::fcntl(importedListeners_[i % imported].get(), F_DUPFD_CLOEXEC, 0));
    if (!copy) throwErrno(EPOLL_ECHO_ESYSTEM, "start: fcntl F_DUPFD_CLOEXEC of an imported listener");
    set.sockets.push_back(std::move(copy));
  }
  // Imported sockets first, so worker i < imported serves exactly socket i.
  set.sockets.insert(set.sockets.begin(), std::make_move_iterator(importedListeners_.begin()),
                     std::make_move_iterator(importedListeners_.end()));
  importedListeners_.clear();
  return set;
}

uint32_t Engine::chooseBackend() const {
  if (config_.backend == EPOLL_ECHO_BACKEND_EPOLL) return EPOLL_ECHO_BACKEND_EPOLL;
  const int error = UringWorker::probe();
  if (error == 0) return EPOLL_ECHO_BACKEND_IO_URING;
  if (config_.backend == EPOLL_ECHO_BACKEND_AUTO) return EPOLL_ECHO_BACKEND_EPOLL;
  throw EngineError(EPOLL_ECHO_ESYSTEM, "start: backend io_uring: " + UringWorker::describeSetupError(error) +
                                            "; EPOLL_ECHO_BACKEND_AUTO would serve with epoll");
}

Engine::WorkerList Engine::createWorkers(std::vector<UniqueFd> listeners, ConnectionBudget& budget,
                                         ConnectionBalancer* balancer, uint32_t backend) {
  WorkerList workers;
  workers.reserve(listeners.size());
  for (uint32_t i = 0; i < listeners.size(); ++i) {
    auto report = [this](const std::string& detail) { setLastError(detail.c_str()); };
    if (backend == EPOLL_ECHO_BACKEND_IO_URING) {
      workers.push_back(std::make_unique<UringWorker>(i, config_, budget, balancer, std::move(listeners[i]), report));
    } else {
      workers.push_back(std::make_unique<Worker>(i, config_, budget, balancer, std::move(listeners[i]), report));
    }
  }
  return workers;
}

void Engine::start() { bringUp("start", true); }

// Everything start() does that can fail or costs time per connection (workers, epoll instances,
// one registration per connection) runs here, ahead of a hand-over's pause: resume() then only
// starts the threads. A socket registered with EPOLLET while its exporter still reads it is sound:
// no one waits on this engine's epoll instances until resume(), and a byte the exporter leaves
// unread arrived either before the registration (which reports it) or after (an edge here too).
// io_uring arms nothing until its ring is set up at resume(): an early recv would take bytes the
// exporter still owes.
void Engine::startPaused() { bringUp("start_paused", false); }

void Engine::bringUp(const char* operation, bool run) {
  MutexLock control(controlMutex_);
  requireState(EPOLL_ECHO_STATE_CREATED, operation);
  const uint32_t backend = chooseBackend();
  ListenerSet listeners = importedListeners_.empty() ? openListeners(config_) : shareImportedListeners();
  // One count for every worker: max_connections caps the engine, adopted connections included.
  auto budget =
      std::make_unique<ConnectionBudget>(config_.maxConnections, static_cast<uint32_t>(listeners.sockets.size()));
  // With one worker there is nothing to balance.
  std::unique_ptr<ConnectionBalancer> balancer;
  if (config_.balanceExact && listeners.sockets.size() > 1) {
    balancer = std::make_unique<ConnectionBalancer>(static_cast<uint32_t>(listeners.sockets.size()));
  }
  // On failure the workers close their copies of any imported socket; the exporting engine
  // still holds its own, so nothing reaches the clients. They go before the budget they use.
  WorkerList workers = createWorkers(std::move(listeners.sockets), *budget, balancer.get(), backend);
  UnservedConnections unserved = adoptImportedConnections(workers, !run);
  // Built before any thread starts: once they run, nothing here may fail.
  std::vector<const WorkerCounters*> counters;
  counters.reserve(workers.size());
  for (const auto& worker : workers) counters.push_back(&worker->counters());
  if (run) {
    runWorkers(workers);
  } else if (config_.externalLoop) {
    openLoop(workers);  // the loop fd exists while PAUSED, quiet until resume() adds the workers
  }
  budget_ = std::move(budget);
  balancer_ = std::move(balancer);
  workers_ = std::move(workers);
  unserved_ = std::move(unserved);
  startedPaused_ = !run;
  MutexLock lock(stateMutex_);
  counters_ = std::move(counters);
  port_ = listeners.port;
  backend_ = backend;
  state_ = run ? EPOLL_ECHO_STATE_RUNNING : EPOLL_ECHO_STATE_PAUSED;
}

void Engine::stop() noexcept {
  MutexLock control(controlMutex_);
  // The workers stay (joined, their sockets closed): stats() keeps reporting their counters.
  joinAll(workers_);
  collectHandedOff(workers_);
  for (auto& worker : workers_) worker->closeAll();
  closeLoop();
  importedListeners_.clear();
  importedConnections_.clear();
  importedIdentities_.clear();
  unserved_.clear();
  startedPaused_ = false;
  setState(EPOLL_ECHO_STATE_STOPPED);
}

void Engine::pause() {
  MutexLock control(controlMutex_);
  requireState(EPOLL_ECHO_STATE_RUNNING, "pause");
  // External loop: no thread to join, and the loop fd goes quiet until resume.
  if (config_.externalLoop) {
    watchWorkers(workers_, EPOLL_CTL_DEL);
  } else {
    joinAll(workers_);
  }
  collectHandedOff(workers_);
  setState(EPOLL_ECHO_STATE_PAUSED);
}

void Engine::resume() {
  MutexLock control(controlMutex_);
  requireState(EPOLL_ECHO_STATE_PAUSED, "resume");
  // Served from now on, no longer the caller's to drop; even if this resume fails, since the
  // workers that started before the one that failed may have read, echoed and closed some.
  unserved_.clear();
  startedPaused_ = false;
  runWorkers(workers_);
  setState(EPOLL_ECHO_STATE_RUNNING);
}

epoll_echo_stats_t Engine::stats() const {
  epoll_echo_stats_t stats{};
  stats.size = sizeof stats;
  MutexLock lock(stateMutex_);
  stats.listeners = counters_.empty() ? config_.workers : static_cast<uint32_t>(counters_.size());
  stats.state = state_;
  stats.port = port_;
  stats.backend = backend_;
  for (const WorkerCounters* counters : counters_) {
    counters->addTo(stats.total);
    counters->addTo(stats.uring);
  }
  return stats;
}

bool Engine::workerCounters(uint32_t index, epoll_echo_counters_t& out, epoll_echo_uring_counters_t& uring) const {
  out = {};
  uring = {};
  MutexLock lock(stateMutex_);
  const size_t count = counters_.empty() ? config_.workers : counters_.size();
  if (index >= count) return false;
  // Before start a worker exists only in the configuration: its counters are all zero.
  if (index < counters_.size()) {
    counters_[index]->addTo(out);
    counters_[index]->addTo(uring);
  }
  return true;
}

void Engine::setLastError(const char* first, const char* second) const noexcept {
  MutexLock lock(errorMutex_);
  try {
    lastError_.assign(first).append(second);
  } catch (const std::bad_alloc&) {
    lastError_ = "out of memory";  // fits the string's inline buffer: no allocation
  }
}

std::string Engine::lastError() const {
  MutexLock lock(errorMutex_);
  return lastError_;
}

}  // namespace epoll_echo
