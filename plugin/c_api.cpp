// The C boundary: every extern "C" function of the plugin. Each validates its arguments first,
// turns exceptions into error codes, and never throws or aborts.
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

// The opaque handle. The tag catches a pointer that is not an engine (or no longer one) before
// it is used; it cannot catch every wild pointer, which is the caller's contract.
struct epoll_echo_engine {
  static constexpr uint64_t kLiveTag = 0x6570656368306c69;  // "epech0li"
  uint64_t tag = kLiveTag;
  epoll_echo::Engine engine;

  explicit epoll_echo_engine(epoll_echo::EngineConfig config) : engine(std::move(config)) {}
  ~epoll_echo_engine() { tag = 0; }
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

bool isEngine(const epoll_echo_engine_t* handle) {
  return handle != nullptr && handle->tag == epoll_echo_engine::kLiveTag;
}

void writeDetail(char* detail, size_t detailSize, const std::string& text) {
  if (detail == nullptr || detailSize == 0) return;
  const size_t length = std::min(text.size(), detailSize - 1);
  std::memcpy(detail, text.data(), length);
  detail[length] = '\0';
}

// Runs `action` on the engine behind `handle`, for the function named `operation`: a handle that
// is not an engine is refused untouched; any other failure is recorded as the engine's last error.
// Argument checks inside `action` throw EngineError like the engine itself.
template <class Handle, class Action>
int runOnEngine(Handle* handle, const char* operation, Action action) noexcept {
  if (!isEngine(handle)) return EPOLL_ECHO_EINVAL;
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

int createEngine(const epoll_echo_config_t* config, epoll_echo_engine_t** out, std::string& detail) {
  epoll_echo_config_t raw;
  if (epoll_echo::copyStructIn(config, raw) != EPOLL_ECHO_OK) {
    detail = epoll_echo::describeBadSize<epoll_echo_config_t>("config", epoll_echo::callerStructSize(config));
    return EPOLL_ECHO_ESIZE;
  }
  *out = new epoll_echo_engine(epoll_echo::makeEngineConfig(raw));
  return EPOLL_ECHO_OK;
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
      code = createEngine(config, engine_out, message);
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

EPOLL_ECHO_EXPORT int epoll_echo_stop(epoll_echo_engine_t* engine) {
  return runOnEngine(engine, "stop", [](Engine& e) { e.stop(); });
}

EPOLL_ECHO_EXPORT void epoll_echo_destroy(epoll_echo_engine_t* engine) {
  if (isEngine(engine)) delete engine;
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
    if (!e.workerCounters(index, value.counters)) {
      throw EngineError(EPOLL_ECHO_ERANGE, "worker_stats: index " + std::to_string(index) + " is past the last of " +
                                               std::to_string(e.stats().listeners) + " workers");
    }
    epoll_echo::copyStructOut(value, stats);
  });
}

EPOLL_ECHO_EXPORT int epoll_echo_last_error(const epoll_echo_engine_t* engine, char* buffer, size_t buffer_size) {
  if (!isEngine(engine)) return EPOLL_ECHO_EINVAL;
  // The one failure that leaves the record alone: it would replace the message being read.
  if (buffer == nullptr && buffer_size != 0) return EPOLL_ECHO_EINVAL;
  try {
    const std::string message = engine->engine.lastError();
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

// The hand-over queries take a const handle (they change nothing a caller can see) but serialise
// with the control calls, which needs the engine's control lock.
EPOLL_ECHO_EXPORT int epoll_echo_handover_counts(const epoll_echo_engine_t* engine, uint32_t* listeners,
                                                 uint32_t* connections) {
  return runOnEngine(const_cast<epoll_echo_engine_t*>(engine), "handover_counts", [&](Engine& e) {
    if (listeners == nullptr) refuseNull("handover_counts", "listeners");
    if (connections == nullptr) refuseNull("handover_counts", "connections");
    e.handoverCounts(*listeners, *connections);
  });
}

EPOLL_ECHO_EXPORT int epoll_echo_export_listener(const epoll_echo_engine_t* engine, uint32_t index, int32_t* fd) {
  return runOnEngine(const_cast<epoll_echo_engine_t*>(engine), "export_listener", [&](Engine& e) {
    if (fd == nullptr) refuseNull("export_listener", "fd");
    *fd = e.exportListener(index);
  });
}

EPOLL_ECHO_EXPORT int epoll_echo_export_connection(const epoll_echo_engine_t* engine, uint32_t index,
                                                   epoll_echo_connection_state_t* state, void* pending,
                                                   size_t pending_capacity) {
  return runOnEngine(const_cast<epoll_echo_engine_t*>(engine), "export_connection", [&](Engine& e) {
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
    epoll_echo_connection_state_t value;
    if (epoll_echo::copyStructIn(state, value) != EPOLL_ECHO_OK) {
      throw EngineError(EPOLL_ECHO_ESIZE, epoll_echo::describeBadSize<epoll_echo_connection_state_t>(
                                              "import_connection: state", epoll_echo::callerStructSize(state)));
    }
    e.importConnection(value, pending);
  });
}

}  // extern "C"
