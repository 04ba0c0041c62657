// EngineConfig: the validated, defaulted C++ form of epoll_echo_config_t.
#pragma once

#include <cstdint>
#include <string>

#include "epoll_echo.h"

namespace epoll_echo {

// Bounds config.listeners (the worker count) and the listening sockets an engine imports.
inline constexpr uint32_t kMaxWorkers = 1024;
inline constexpr uint32_t kDefaultHighWaterBytes = 128u << 10;
inline constexpr uint32_t kDefaultReadBudgetBytes = 256u << 10;
// Accepting is cheap next to serving; 64 per wake lets a connect storm through quickly without
// letting it hold the worker away from established connections for long.
inline constexpr uint32_t kDefaultAcceptBudget = 64;
// Smaller limits would turn every message into several system calls.
inline constexpr uint32_t kMinBufferLimit = 4096;

struct EngineConfig {
  uint16_t port = 0;
  uint32_t workers = 1;  // worker threads: epoll_echo_config_t.listeners, defaulted
  int backlog = 0;
  uint32_t highWaterBytes = kDefaultHighWaterBytes;
  uint32_t readBudgetBytes = kDefaultReadBudgetBytes;
  uint32_t acceptBudget = kDefaultAcceptBudget;
  std::string bindAddress;                      // empty = all interfaces
  uint32_t maxConnections = 0;                  // over all workers; 0 = no cap
  uint32_t idleTimeoutMs = 0;                   // 0 = connections never time out
  bool externalLoop = false;                    // threading EXTERNAL: no thread, the caller's loop runs loop_run()
  uint32_t backend = EPOLL_ECHO_BACKEND_EPOLL;  // EPOLL_ECHO_BACKEND_*, AUTO resolved at start
  bool balanceExact = false;                    // EPOLL_ECHO_BALANCE_EXACT: even out the workers' connections
};

// Validates a caller's config (already size-checked and copied) and applies defaults.
// Throws EngineError(EINVAL / EADDRESS) naming the offending field.
EngineConfig makeEngineConfig(const epoll_echo_config_t& raw);

}  // namespace epoll_echo
