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

// Runs a control action on an engine, recording any failure as its last error.
template <class Action>
int runControl(epoll_echo_engine_t* handle, Action action) {
  if (!isEngine(handle)) return EPOLL_ECHO_EINVAL;
  try {
    action(handle->engine);
    return EPOLL_ECHO_OK;
  } catch (const EngineError& error) {
    handle->engine.setLastError(error.what());
    return error.code();
  } catch (const std::bad_alloc&) {
    handle->engine.setLastError("out of memory");
    return EPOLL_ECHO_ENOMEM;
  } catch (...) {
    return EPOLL_ECHO_EINTERNAL;
  }
}

int createEngine(const epoll_echo_config_t* config, epoll_echo_engine_t** out, std::string& detail) {
  epoll_echo_config_t raw;
  if (epoll_echo::copyStructIn(config, raw) != EPOLL_ECHO_OK) {
    uint32_t size = 0;
    std::memcpy(&size, config, sizeof size);
    detail = "config size " + std::to_string(size) + " is invalid (this plugin's epoll_echo_config_t has " +
             std::to_string(sizeof raw) + " bytes; a larger struct needs a zero tail)";
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
  return runControl(engine, [](Engine& e) { e.start(); });
}

EPOLL_ECHO_EXPORT int epoll_echo_stop(epoll_echo_engine_t* engine) {
  return runControl(engine, [](Engine& e) { e.stop(); });
}

EPOLL_ECHO_EXPORT void epoll_echo_destroy(epoll_echo_engine_t* engine) {
  if (isEngine(engine)) delete engine;
}

EPOLL_ECHO_EXPORT int epoll_echo_stats(const epoll_echo_engine_t* engine, epoll_echo_stats_t* stats) {
  if (!isEngine(engine) || stats == nullptr) return EPOLL_ECHO_EINVAL;
  try {
    return epoll_echo::copyStructOut(engine->engine.stats(), stats);
  } catch (...) {
    return EPOLL_ECHO_EINTERNAL;
  }
}

EPOLL_ECHO_EXPORT int epoll_echo_worker_stats(const epoll_echo_engine_t* engine, uint32_t index,
                                              epoll_echo_worker_stats_t* stats) {
  if (!isEngine(engine) || stats == nullptr) return EPOLL_ECHO_EINVAL;
  uint32_t size = 0;
  std::memcpy(&size, stats, sizeof size);
  if (!epoll_echo::structSizeValid<epoll_echo_worker_stats_t>(size)) return EPOLL_ECHO_ESIZE;
  try {
    epoll_echo_worker_stats_t value{};
    value.size = sizeof value;
    value.index = index;
    if (!engine->engine.workerCounters(index, value.counters)) return EPOLL_ECHO_ERANGE;
    return epoll_echo::copyStructOut(value, stats);
  } catch (...) {
    return EPOLL_ECHO_EINTERNAL;
  }
}

EPOLL_ECHO_EXPORT int epoll_echo_last_error(const epoll_echo_engine_t* engine, char* buffer, size_t buffer_size) {
  if (!isEngine(engine) || (buffer == nullptr && buffer_size != 0)) return EPOLL_ECHO_EINVAL;
  try {
    const std::string message = engine->engine.lastError();
    writeDetail(buffer, buffer_size, message);
    return static_cast<int>(std::min<size_t>(message.size(), INT32_MAX));
  } catch (...) {
    return EPOLL_ECHO_EINTERNAL;
  }
}

EPOLL_ECHO_EXPORT int epoll_echo_pause(epoll_echo_engine_t* engine) {
  return runControl(engine, [](Engine& e) { e.pause(); });
}

EPOLL_ECHO_EXPORT int epoll_echo_resume(epoll_echo_engine_t* engine) {
  return runControl(engine, [](Engine& e) { e.resume(); });
}

EPOLL_ECHO_EXPORT int epoll_echo_handover_counts(const epoll_echo_engine_t* engine, uint32_t* listeners,
                                                 uint32_t* connections) {
  if (listeners == nullptr || connections == nullptr) return EPOLL_ECHO_EINVAL;
  return runControl(const_cast<epoll_echo_engine_t*>(engine),
                    [&](Engine& e) { e.handoverCounts(*listeners, *connections); });
}

EPOLL_ECHO_EXPORT int epoll_echo_export_listener(const epoll_echo_engine_t* engine, uint32_t index, int32_t* fd) {
  if (fd == nullptr) return EPOLL_ECHO_EINVAL;
  return runControl(const_cast<epoll_echo_engine_t*>(engine), [&](Engine& e) { *fd = e.exportListener(index); });
}

EPOLL_ECHO_EXPORT int epoll_echo_export_connection(const epoll_echo_engine_t* engine, uint32_t index,
                                                   epoll_echo_connection_state_t* state, void* pending,
                                                   size_t pending_capacity) {
  if (state == nullptr) return EPOLL_ECHO_EINVAL;
  uint32_t size = 0;
  std::memcpy(&size, state, sizeof size);
  if (!epoll_echo::structSizeValid<epoll_echo_connection_state_t>(size)) return EPOLL_ECHO_ESIZE;
  bool copied = true;
  epoll_echo_connection_state_t value{};
  const int code = runControl(const_cast<epoll_echo_engine_t*>(engine),
                              [&](Engine& e) { copied = e.exportConnection(index, value, pending, pending_capacity); });
  if (code != EPOLL_ECHO_OK) return code;
  epoll_echo::copyStructOut(value, state);
  return copied ? EPOLL_ECHO_OK : EPOLL_ECHO_EINVAL;
}

EPOLL_ECHO_EXPORT int epoll_echo_handover_complete(epoll_echo_engine_t* engine) {
  return runControl(engine, [](Engine& e) { e.completeHandover(); });
}

EPOLL_ECHO_EXPORT int epoll_echo_import_listener(epoll_echo_engine_t* engine, int32_t fd) {
  return runControl(engine, [&](Engine& e) { e.importListener(fd); });
}

EPOLL_ECHO_EXPORT int epoll_echo_import_connection(epoll_echo_engine_t* engine,
                                                   const epoll_echo_connection_state_t* state, const void* pending) {
  if (state == nullptr) return EPOLL_ECHO_EINVAL;
  epoll_echo_connection_state_t value;
  const int sized = epoll_echo::copyStructIn(state, value);
  if (sized != EPOLL_ECHO_OK) return sized;
  return runControl(engine, [&](Engine& e) { e.importConnection(value, pending); });
}

}  // extern "C"
