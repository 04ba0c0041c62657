// counter_fields.h — every field of epoll_echo_counters_t with its name and kind, generated from
// the ABI's EPOLL_ECHO_COUNTER_TABLE: a counter added there reaches the metrics with no edit here.
#pragma once

#include <epoll_echo.h>

#include <cstdint>

namespace epoll_echo::host {

struct CounterField {
  const char* name;  // the struct field's name
  uint32_t kind;     // EPOLL_ECHO_METRIC_COUNTER (only grows) or EPOLL_ECHO_METRIC_GAUGE
  uint64_t epoll_echo_counters_t::*member;
};

#define EPOLL_ECHO_HOST_COUNTER_FIELD(field, kind, minor) \
  {#field, EPOLL_ECHO_METRIC_##kind, &epoll_echo_counters_t::field},
inline constexpr CounterField kCounterFields[] = {EPOLL_ECHO_COUNTER_TABLE(EPOLL_ECHO_HOST_COUNTER_FIELD)};
#undef EPOLL_ECHO_HOST_COUNTER_FIELD

}  // namespace epoll_echo::host
