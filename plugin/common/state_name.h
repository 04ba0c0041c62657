// state_name.h — the word for an engine state ("running"), from EPOLL_ECHO_STATE_TABLE. Shared by
// the plugin's error messages and the host's stats, so both always say the same (internal).
#pragma once

#include <epoll_echo.h>

#include <cstdint>

namespace epoll_echo {

// "unknown" for a value the header does not list (a newer plugin's state, or garbage).
inline const char* stateName(uint32_t state) noexcept {
#define EPOLL_ECHO_STATE_NAME_CASE(name, word) \
  case EPOLL_ECHO_STATE_##name:                \
    return word;
  switch (state) { EPOLL_ECHO_STATE_TABLE(EPOLL_ECHO_STATE_NAME_CASE) }
#undef EPOLL_ECHO_STATE_NAME_CASE
  return "unknown";
}

}  // namespace epoll_echo
