// Engine in external-loop mode: no thread of its own. One epoll instance, the loop fd, holds every
// worker's epoll instance (an epoll fd is pollable, and readable while it has ready events), so
// the application watches one descriptor whatever the listener count, and loopRun() gives each
// worker the same pass its thread would make.
#include <sys/epoll.h>

#include <algorithm>
#include <cassert>
#include <cerrno>

#include "engine.h"
#include "engine_error.h"
#include "state_name.h"
#include "worker.h"

namespace epoll_echo {
namespace {

// Releases the "a thread is inside loopRun()" flag however loopRun() leaves.
class LoopEntry {
 public:
  explicit LoopEntry(std::atomic<bool>& busy)
      : busy_(busy), entered_(!busy.exchange(true, std::memory_order_acquire)) {}
  ~LoopEntry() {
    if (entered_) busy_.store(false, std::memory_order_release);
  }
  LoopEntry(const LoopEntry&) = delete;
  LoopEntry& operator=(const LoopEntry&) = delete;
  bool entered() const { return entered_; }

 private:
  std::atomic<bool>& busy_;
  const bool entered_;
};

// An external-loop engine's workers are epoll workers (makeEngineConfig() never lets such an engine
// choose io_uring), so the loop may call what only the epoll backend has.
Worker& loopWorker(EventWorker& worker) noexcept {
  assert(dynamic_cast<Worker*>(&worker) != nullptr);
  return static_cast<Worker&>(worker);
}

}  // namespace

void Engine::runWorkers(WorkerList& workers) {
  if (!config_.externalLoop) {
    startAll(workers);
    return;
  }
  const bool starting = !loop_;  // resume keeps the loop fd the host already watches
  if (starting) openLoop(workers);
  for (auto& worker : workers) loopWorker(*worker).prepare();
  try {
    watchWorkers(workers, EPOLL_CTL_ADD);
  } catch (...) {
    if (starting) closeLoop();  // a failed start leaves nothing open
    throw;
  }
  // Connections queued before start, or left mid-budget by a pause, need a pass: the loop fd
  // becomes readable at once, so the host's loop makes it.
  for (auto& worker : workers) loopWorker(*worker).wake();
}

void Engine::openLoop(const WorkerList& workers) {
  UniqueFd loop(::epoll_create1(EPOLL_CLOEXEC));
  if (!loop) throwErrno(EPOLL_ECHO_ESYSTEM, "start: epoll_create1 (the loop fd)");
  std::vector<epoll_event> events(workers.size());
  std::vector<char> ready(workers.size());
  loop_ = std::move(loop);
  loopEvents_ = std::move(events);
  workerReady_ = std::move(ready);
  MutexLock lock(stateMutex_);
  loopFd_ = loop_.get();
}

// Adds every serving worker's epoll instance to the loop's (start, resume) or takes it out
// (pause: the loop fd must stay quiet while loopRun() would refuse to work). A failed worker is
// never added back: it would keep the loop fd readable with work no one can do.
void Engine::watchWorkers(const WorkerList& workers, int operation) {
  for (uint32_t i = 0; i < workers.size(); ++i) {
    const Worker& worker = loopWorker(*workers[i]);
    if (worker.failed()) continue;
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u32 = i;
    if (::epoll_ctl(loop_.get(), operation, worker.epollFd(), &event) == 0) continue;
    // A resume that failed half-way left some workers in already.
    if (operation == EPOLL_CTL_ADD && errno == EEXIST) continue;
    if (operation == EPOLL_CTL_DEL) continue;  // cannot fail for a descriptor we added; nothing to undo
    throwErrno(EPOLL_ECHO_ESYSTEM, "epoll_ctl ADD worker " + std::to_string(i) + " to the loop fd");
  }
}

void Engine::closeLoop() noexcept {
  loop_.reset();
  MutexLock lock(stateMutex_);
  loopFd_ = -1;
}

int Engine::loopFd() const {
  if (!config_.externalLoop) {
    throw EngineError(EPOLL_ECHO_ESTATE, "loop_fd: the engine runs its own threads (threading is not EXTERNAL)");
  }
  MutexLock lock(stateMutex_);
  if (loopFd_ < 0) {
    throw EngineError(EPOLL_ECHO_ESTATE,
                      std::string("loop_fd: the engine is ") + stateName(state_) + ", not running or paused");
  }
  return loopFd_;
}

int Engine::loopRun() {
  if (!config_.externalLoop) {
    throw EngineError(EPOLL_ECHO_ESTATE, "loop_run: the engine runs its own threads (threading is not EXTERNAL)");
  }
  LoopEntry entry(loopBusy_);
  if (!entry.entered()) {
    throw EngineError(EPOLL_ECHO_ESTATE, "loop_run: another thread is inside loop_run() for this engine");
  }
  MutexLock control(controlMutex_);
  requireState(EPOLL_ECHO_STATE_RUNNING, "loop_run");
  stepReadyWorkers();
  return nextLoopTimeoutMs();
}

// One pass of each worker with events or due work, like one turn of its thread's loop. With one
// worker its own epoll_wait (timeout 0) is the readiness check; with more, one epoll_wait on the
// loop fd finds the ready ones instead of one system call per worker.
void Engine::stepReadyWorkers() {
  const size_t count = workers_.size();
  std::fill(workerReady_.begin(), workerReady_.end(), count == 1);
  if (count > 1) {
    const int ready = ::epoll_wait(loop_.get(), loopEvents_.data(), static_cast<int>(loopEvents_.size()), 0);
    for (int i = 0; i < ready; ++i) workerReady_[loopEvents_[i].data.u32] = 1;
  }
  bool failed = false;
  for (size_t i = 0; i < count; ++i) {
    Worker& worker = loopWorker(*workers_[i]);
    if (worker.failed() || (!workerReady_[i] && worker.nextTimeoutMs() != 0)) continue;
    if (worker.step(0) || !worker.failed()) continue;
    // Its epoll instance leaves the loop's: it would keep the loop fd readable for ever.
    ::epoll_ctl(loop_.get(), EPOLL_CTL_DEL, worker.epollFd(), nullptr);
    failed = true;
  }
  // The worker recorded why (last_error); the code tells this caller at once.
  if (failed) throw EngineError(EPOLL_ECHO_ESYSTEM, lastError());
}

int Engine::nextLoopTimeoutMs() const {
  int next = -1;
  for (const auto& each : workers_) {
    const Worker& worker = loopWorker(*each);
    if (worker.failed()) continue;
    const int timeout = worker.nextTimeoutMs();
    if (timeout >= 0 && (next < 0 || timeout < next)) next = timeout;
  }
  return next;
}

}  // namespace epoll_echo
