// The C boundary: every extern "C" function of the plugin. Each validates its arguments first,
// turns exceptions into error codes, and never throws or aborts.
#include <unistd.h>

#include <cstring>
#include <new>
#include <string>

#include "build_id.h"
#include "config.h"
#include "engine.h"
#include "engine_error.h"
#include "epoll_echo.h"
#include "sized_struct.h"

// Hidden visibility is the default for the whole plugin; these are the only exceptions.
#define EPOLL_ECHO_EXPORT __attribute__((visibility("default")))

namespace {

// A static object of this loaded copy of the plugin: each copy (a hot-swap host holds two) has its
// own, at its own address, which marks the handles this copy created.
const char thisCopy = 0;

}  // namespace

// The opaque handle. `magic` and `owner` come first, in this order, in every build: another
// loaded copy of the plugin reads them to recognise an engine that is not its own. The checks
// catch a pointer that is not an engine (or no longer one), another copy's engine, and an engine
// inherited across fork(); they cannot catch every wild pointer, which is the caller's contract.
struct epoll_echo_engine {
  // "epecheng". Builds before the owner field used another value: they and this build refuse
  // each other's handles.
  static constexpr uint64_t kMagic = 0x6570656368656e67;
  uint64_t magic = kMagic;
  const void* owner = &thisCopy;
  pid_t creator = ::getpid();  // the only process whose threads and descriptors these are
  epoll_echo::Engine engine;

  explicit epoll_echo_engine(epoll_echo::EngineConfig config) : engine(std::move(config)) {}
  ~epoll_echo_engine() { magic = 0; }
};

namespace {

using epoll_echo::Engine;
using epoll_echo::EngineError;

#define EPOLL_ECHO_STRERROR_CASE(name, value, text) \
  case value:                                       \
    return text;
#define EPOLL_ECHO_NAME_CASE(name, value, text) \
  case value:                                   \
    return "EPOLL_ECHO_" #name;

enum class HandleUse { kUsable, kNotAnEngine, kOtherCopy, kForkedChild };

HandleUse classify(const epoll_echo_engine_t* handle) {
  if (handle == nullptr || handle->magic != epoll_echo_engine::kMagic) return HandleUse::kNotAnEngine;
  if (handle->owner != &thisCopy) return HandleUse::kOtherCopy;
  // A forked child shares the parent's eventfds and sockets but has none of its threads: a stop
  // there would wake and end the parent's workers, and a join would wait forever.
  if (handle->creator != ::getpid()) return HandleUse::kForkedChild;
  return HandleUse::kUsable;
}

int refusalCode(HandleUse use) {
  switch (use) {
    case HandleUse::kUsable:
      return EPOLL_ECHO_OK;
    case HandleUse::kForkedChild:
      return EPOLL_ECHO_ESTATE;
    default:
      return EPOLL_ECHO_EINVAL;
  }
}

// What last_error() reports for a handle this copy, in this process, must not use.
std::string describeRefusal(HandleUse use, const epoll_echo_engine_t* handle) {
  if (use == HandleUse::kOtherCopy) {
    return "this engine was created by another loaded copy of the plugin: only that copy's functions may use it";
  }
  return "this engine belongs to process " + std::to_string(handle->creator) + ", not to its forked child " +
         std::to_string(::getpid()) + ": here its calls are refused (ESTATE) and destroy frees nothing";
}

void writeDetail(char* detail, size_t detailSize, const std::string& text) {
  if (detail == nullptr || detailSize == 0) return;
  const size_t length = std::min(text.size(), detailSize - 1);
  std::memcpy(detail, text.data(), length);
  detail[length] = '\0';
}

// Runs `action` on the engine behind `handle`, for the function named `operation`: a handle this
// copy may not use is refused untouched; any other failure is recorded as the engine's last error.
// Argument checks inside `action` throw EngineError like the engine itself. A const handle gives
// `action` a const engine; either kind records its failure (the record is mutable, under its own lock).
template <class Handle, class Action>
int runOnEngine(Handle* handle, const char* operation, Action action) noexcept {
  const int refused = refusalCode(classify(handle));
  if (refused != EPOLL_ECHO_OK) return refused;
  const Engine& engine = handle->engine;
  try {
    action(handle->engine);
    return EPOLL_ECHO_OK;
  } catch (const EngineError& error) {
    engine.setLastError(error.what());
    return error.code();
  } catch (const std::bad_alloc&) {
    engine.setLastError(operation, ": out of memory");
    return EPOLL_ECHO_ENOMEM;
  } catch (...) {
    engine.setLastError(operation, ": unexpected internal failure");
    return EPOLL_ECHO_EINTERNAL;
  }
}

[[noreturn]] void refuseNull(const char* operation, const char* argument) {
  throw EngineError(EPOLL_ECHO_EINVAL, std::string(operation) + ": " + argument + " is NULL");
}

// Checks the size field of a caller's output struct before anything is written.
template <class T>
void requireStructSize(const char* what, const void* caller) {
  const uint32_t size = epoll_echo::callerStructSize(caller);
  if (!epoll_echo::structSizeValid<T>(size))
    throw EngineError(EPOLL_ECHO_ESIZE, epoll_echo::describeBadSize<T>(what, size));
}

// Reads a caller's input struct (copy_struct_from_user rule); an invalid size or a nonzero unknown
// tail throws ESIZE naming `what`.
template <class T>
T readStruct(const char* what, const T* caller) {
  T value;
  if (epoll_echo::copyStructIn(caller, value) != EPOLL_ECHO_OK)
    throw EngineError(EPOLL_ECHO_ESIZE, epoll_echo::describeBadSize<T>(what, epoll_echo::callerStructSize(caller)));
  return value;
}

}  // namespace

extern "C" {

EPOLL_ECHO_EXPORT uint32_t epoll_echo_abi_version(void) {
  return EPOLL_ECHO_ABI_PACK(EPOLL_ECHO_ABI_MAJOR, EPOLL_ECHO_ABI_MINOR);
}

EPOLL_ECHO_EXPORT const char* epoll_echo_version(void) { return EPOLL_ECHO_VERSION; }

EPOLL_ECHO_EXPORT const char* epoll_echo_build_id(void) { return epoll_echo::loadedBuildId(); }

EPOLL_ECHO_EXPORT const char* epoll_echo_strerror(int code) {
  switch (code) { EPOLL_ECHO_ERROR_TABLE(EPOLL_ECHO_STRERROR_CASE) }
  return "unknown error";
}

EPOLL_ECHO_EXPORT const char* epoll_echo_error_name(int code) {
  switch (code) { EPOLL_ECHO_ERROR_TABLE(EPOLL_ECHO_NAME_CASE) }
  return "EPOLL_ECHO_UNKNOWN";
}

EPOLL_ECHO_EXPORT int epoll_echo_create(const epoll_echo_config_t* config, epoll_echo_engine_t** engine_out,
                                        char* detail, size_t detail_size) {
  if (engine_out != nullptr) *engine_out = nullptr;
  std::string message;
  int code = EPOLL_ECHO_OK;
  if (config == nullptr || engine_out == nullptr) {
    code = EPOLL_ECHO_EINVAL;
    message = config == nullptr ? "config is NULL" : "engine_out is NULL";
  } else {
    try {
      *engine_out = new epoll_echo_engine(epoll_echo::makeEngineConfig(readStruct("config", config)));
    } catch (const EngineError& error) {
      code = error.code();
      message = error.what();
    } catch (const std::bad_alloc&) {
      code = EPOLL_ECHO_ENOMEM;
      message = "out of memory";
    } catch (...) {
      code = EPOLL_ECHO_EINTERNAL;
      message = "unexpected internal failure";
    }
  }
  writeDetail(detail, detail_size, code == EPOLL_ECHO_OK ? std::string() : message);
  return code;
}

EPOLL_ECHO_EXPORT int epoll_echo_start(epoll_echo_engine_t* engine) {
  return runOnEngine(engine, "start", [](Engine& e) { e.start(); });
}

EPOLL_ECHO_EXPORT int epoll_echo_start_paused(epoll_echo_engine_t* engine) {
  return runOnEngine(engine, "start_paused", [](Engine& e) { e.startPaused(); });
}

EPOLL_ECHO_EXPORT int epoll_echo_stop(epoll_echo_engine_t* engine) {
  return runOnEngine(engine, "stop", [](Engine& e) { e.stop(); });
}

EPOLL_ECHO_EXPORT void epoll_echo_destroy(epoll_echo_engine_t* engine) {
  // Another copy's engine is not ours to free; in a forked child the engine's threads do not
  // exist and its descriptors are the parent's too: the child's copies go at exec or exit.
  if (classify(engine) == HandleUse::kUsable) delete engine;
}

EPOLL_ECHO_EXPORT int epoll_echo_stats(const epoll_echo_engine_t* engine, epoll_echo_stats_t* stats) {
  return runOnEngine(engine, "stats", [&](const Engine& e) {
    if (stats == nullptr) refuseNull("stats", "stats");
    requireStructSize<epoll_echo_stats_t>("stats: stats", stats);
    epoll_echo::copyStructOut(e.stats(), stats);
  });
}

EPOLL_ECHO_EXPORT int epoll_echo_worker_stats(const epoll_echo_engine_t* engine, uint32_t index,
                                              epoll_echo_worker_stats_t* stats) {
  return runOnEngine(engine, "worker_stats", [&](const Engine& e) {
    if (stats == nullptr) refuseNull("worker_stats", "stats");
    requireStructSize<epoll_echo_worker_stats_t>("worker_stats: stats", stats);
    epoll_echo_worker_stats_t value{};
    value.size = sizeof value;
    value.index = index;
    if (!e.workerCounters(index, value.counters, value.uring)) {
      throw EngineError(EPOLL_ECHO_ERANGE, "worker_stats: index " + std::to_string(index) + " is past the last of " +
                                               std::to_string(e.stats().listeners) + " workers");
    }
    epoll_echo::copyStructOut(value, stats);
  });
}

EPOLL_ECHO_EXPORT int epoll_echo_last_error(const epoll_echo_engine_t* engine, char* buffer, size_t buffer_size) {
  const HandleUse use = classify(engine);
  if (use == HandleUse::kNotAnEngine) return EPOLL_ECHO_EINVAL;
  // The one failure that leaves the record alone: it would replace the message being read.
  if (buffer == nullptr && buffer_size != 0) return EPOLL_ECHO_EINVAL;
  try {
    // The engine's own record, or why this copy or this process may not use the engine.
    const std::string message = use == HandleUse::kUsable ? engine->engine.lastError() : describeRefusal(use, engine);
    writeDetail(buffer, buffer_size, message);
    return static_cast<int>(std::min<size_t>(message.size(), INT32_MAX));
  } catch (...) {
    return EPOLL_ECHO_ENOMEM;  // copying the message is the only thing that can fail
  }
}

EPOLL_ECHO_EXPORT int epoll_echo_pause(epoll_echo_engine_t* engine) {
  return runOnEngine(engine, "pause", [](Engine& e) { e.pause(); });
}

EPOLL_ECHO_EXPORT int epoll_echo_resume(epoll_echo_engine_t* engine) {
  return runOnEngine(engine, "resume", [](Engine& e) { e.resume(); });
}

// The hand-over queries take a const handle: they change nothing a caller can see. They still
// serialise with the control calls, through the engine's mutable control lock.
EPOLL_ECHO_EXPORT int epoll_echo_handover_counts(const epoll_echo_engine_t* engine, uint32_t* listeners,
                                                 uint32_t* connections) {
  return runOnEngine(engine, "handover_counts", [&](const Engine& e) {
    if (listeners == nullptr) refuseNull("handover_counts", "listeners");
    if (connections == nullptr) refuseNull("handover_counts", "connections");
    e.handoverCounts(*listeners, *connections);
  });
}

EPOLL_ECHO_EXPORT int epoll_echo_export_listener(const epoll_echo_engine_t* engine, uint32_t index, int32_t* fd) {
  return runOnEngine(engine, "export_listener", [&](const Engine& e) {
    if (fd == nullptr) refuseNull("export_listener", "fd");
    *fd = e.exportListener(index);
  });
}

EPOLL_ECHO_EXPORT int epoll_echo_export_connection(const epoll_echo_engine_t* engine, uint32_t index,
                                                   epoll_echo_connection_state_t* state, void* pending,
                                                   size_t pending_capacity) {
  return runOnEngine(engine, "export_connection", [&](const Engine& e) {
    if (state == nullptr) refuseNull("export_connection", "state");
    requireStructSize<epoll_echo_connection_state_t>("export_connection: state", state);
    epoll_echo_connection_state_t value{};
    const bool copied = e.exportConnection(index, value, pending, pending_capacity);
    epoll_echo::copyStructOut(value, state);
    if (!copied) {
      throw EngineError(EPOLL_ECHO_EINVAL, "export_connection: pending_capacity " + std::to_string(pending_capacity) +
                                               " is below the connection's " + std::to_string(value.pending_bytes) +
                                               " pending bytes (state is filled; nothing was copied)");
    }
  });
}

EPOLL_ECHO_EXPORT int epoll_echo_handover_complete(epoll_echo_engine_t* engine) {
  return runOnEngine(engine, "handover_complete", [](Engine& e) { e.completeHandover(); });
}

EPOLL_ECHO_EXPORT int epoll_echo_import_listener(epoll_echo_engine_t* engine, int32_t fd) {
  return runOnEngine(engine, "import_listener", [&](Engine& e) { e.importListener(fd); });
}

EPOLL_ECHO_EXPORT int epoll_echo_import_connection(epoll_echo_engine_t* engine,
                                                   const epoll_echo_connection_state_t* state, const void* pending) {
  return runOnEngine(engine, "import_connection", [&](Engine& e) {
    if (state == nullptr) refuseNull("import_connection", "state");
    e.importConnection(readStruct("import_connection: state", state), pending);
  });
}

EPOLL_ECHO_EXPORT int epoll_echo_drop_connection(epoll_echo_engine_t* engine, int32_t fd) {
  return runOnEngine(engine, "drop_connection", [&](Engine& e) { e.dropConnection(fd); });
}

EPOLL_ECHO_EXPORT int epoll_echo_loop_fd(const epoll_echo_engine_t* engine, int32_t* fd) {
  return runOnEngine(engine, "loop_fd", [&](const Engine& e) {
    if (fd == nullptr) refuseNull("loop_fd", "fd");
    *fd = e.loopFd();
  });
}

EPOLL_ECHO_EXPORT int epoll_echo_loop_run(epoll_echo_engine_t* engine, int32_t* next_timeout_ms) {
  return runOnEngine(engine, "loop_run", [&](Engine& e) {
    if (next_timeout_ms == nullptr) refuseNull("loop_run", "next_timeout_ms");
    *next_timeout_ms = e.loopRun();
  });
}

}  // extern "C"
