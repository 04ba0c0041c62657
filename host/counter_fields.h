// counter_fields.h — every field of epoll_echo_counters_t and epoll_echo_uring_counters_t with its
// name and kind, generated from the ABI's counter tables: a counter added there reaches the metrics
// with no edit here.
#pragma once

#include <epoll_echo.h>

#include <cstdint>

namespace epoll_echo::host {

// One field of the counters struct `Counters`.
template <class Counters>
struct CounterFieldOf {
  const char* name;  // the struct field's name
  uint32_t kind;     // EPOLL_ECHO_METRIC_COUNTER (only grows) or EPOLL_ECHO_METRIC_GAUGE
  uint64_t Counters::*member;
};
using CounterField = CounterFieldOf<epoll_echo_counters_t>;
using UringCounterField = CounterFieldOf<epoll_echo_uring_counters_t>;

#define EPOLL_ECHO_HOST_COUNTER_FIELD(field, kind, minor) \
  {#field, EPOLL_ECHO_METRIC_##kind, &epoll_echo_counters_t::field},
inline constexpr CounterField kCounterFields[] = {EPOLL_ECHO_COUNTER_TABLE(EPOLL_ECHO_HOST_COUNTER_FIELD)};
#undef EPOLL_ECHO_HOST_COUNTER_FIELD

// The same for epoll_echo_uring_counters_t [ABI 1.5], from EPOLL_ECHO_URING_COUNTER_TABLE.

#define EPOLL_ECHO_HOST_URING_COUNTER_FIELD(field, kind, minor) \
  {#field, EPOLL_ECHO_METRIC_##kind, &epoll_echo_uring_counters_t::field},
inline constexpr UringCounterField kUringCounterFields[] = {
    EPOLL_ECHO_URING_COUNTER_TABLE(EPOLL_ECHO_HOST_URING_COUNTER_FIELD)};
#undef EPOLL_ECHO_HOST_URING_COUNTER_FIELD

}  // namespace epoll_echo::host
