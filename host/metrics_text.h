// metrics_text.h — the Prometheus text exposition format (version 0.0.4) of the host's stats: the
// body of GET /metrics. No I/O.
#pragma once

#include <epoll_echo.h>

#include <cstdint>
#include <string>
#include <vector>

namespace epoll_echo::host {

// What one scrape reports. Counters include the engines replaced by hot-swaps, so they never go
// back; `active` is the serving engine's.
struct MetricsSnapshot {
  uint32_t state = 0;                          // EPOLL_ECHO_STATE_* of the serving engine
  uint32_t listeners = 0;                      // its worker count
  std::vector<epoll_echo_counters_t> workers;  // per worker index
  uint64_t reloads = 0;                        // successful hot-swaps since start
  std::string buildId;                         // the serving plugin's build id
  std::string pluginVersion;                   // "1.0.0"
  uint32_t abiVersion = 0;                     // EPOLL_ECHO_ABI_PACK of the serving plugin
  // The serving engine's io_uring counters per worker index (zero under epoll); unlike `workers`
  // they start again from zero after a hot-swap.
  std::vector<epoll_echo_uring_counters_t> uringWorkers;
};

// "Content-Type" of formatMetrics()' output.
inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// The exposition text. For each field of EPOLL_ECHO_COUNTER_TABLE, then of
// EPOLL_ECHO_URING_COUNTER_TABLE (from uringWorkers): the engine total (the sum of
// the worker lines of the same snapshot) and a per-worker family with a `worker` label, named
// `epoll_echo_<field>_total` / `epoll_echo_worker_<field>_total` for a counter and
// `epoll_echo_active_connections` / `epoll_echo_worker_active_connections` for `active`. Then
// the gauges `epoll_echo_listeners` and `epoll_echo_state{state}` (1 for the current state, 0 for
// the others), `epoll_echo_reloads_total` and `epoll_echo_build_info{build_id,version,abi_version} 1`.
// Every family has HELP and TYPE lines; the text ends with a newline.
std::string formatMetrics(const MetricsSnapshot& snapshot);

}  // namespace epoll_echo::host
