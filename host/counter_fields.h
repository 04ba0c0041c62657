// counter_fields.h — every counter of epoll_echo_counters_t with its name and meaning, in one
// table: the Prometheus endpoint lists them from here, so a new counter is one new line.
#pragma once

#include <epoll_echo.h>

#include <cstdint>

namespace epoll_echo::host {

struct CounterField {
  const char* name;  // the struct field's name, the metric's name without prefix and _total
  const char* help;  // one line, no backslash or newline (the exposition format would need escapes)
  uint64_t epoll_echo_counters_t::*member;
};

// Every field of epoll_echo_counters_t that only grows, in the header's order. `active` is not
// here: it is a gauge.
inline constexpr CounterField kCounterFields[] = {
    {"accepted", "Connections accepted.", &epoll_echo_counters_t::accepted},
    {"closed", "Connections closed.", &epoll_echo_counters_t::closed},
    {"bytes_in", "Bytes read from clients.", &epoll_echo_counters_t::bytes_in},
    {"bytes_out", "Bytes written back to clients.", &epoll_echo_counters_t::bytes_out},
    {"backpressure_pauses", "Times a connection stopped being read above its high-water mark.",
     &epoll_echo_counters_t::backpressure_pauses},
    {"accept_errors", "Failed accept() calls, EMFILE and ENFILE included.", &epoll_echo_counters_t::accept_errors},
    {"accept_pauses", "Times accepting paused because no file descriptor was available.",
     &epoll_echo_counters_t::accept_pauses},
    {"syscalls", "System calls made by the worker threads, epoll_wait included.", &epoll_echo_counters_t::syscalls},
    {"wakeups", "epoll_wait calls that returned events.", &epoll_echo_counters_t::wakeups},
    {"adopted", "Connections taken over from a previous engine on a hot-swap.", &epoll_echo_counters_t::adopted},
    {"handed_over", "Connections given to the next engine on a hot-swap.", &epoll_echo_counters_t::handed_over},
    {"worker_failures", "Workers whose event loop stopped on an unexpected error.",
     &epoll_echo_counters_t::worker_failures},
};

}  // namespace epoll_echo::host
