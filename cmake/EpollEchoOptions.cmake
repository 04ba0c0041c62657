# Interface targets that carry the project's warning and sanitizer flags; every target of the
# project links epoll_echo_build_flags instead of setting global flags.
add_library(epoll_echo_build_flags INTERFACE)
target_compile_options(epoll_echo_build_flags INTERFACE -Wall -Wextra
  $<$<BOOL:${EPOLL_ECHO_WERROR}>:-Werror>)

if(EPOLL_ECHO_SANITIZE STREQUAL "address")
  set(_epoll_echo_sanitize_flags -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
elseif(EPOLL_ECHO_SANITIZE STREQUAL "thread")
  set(_epoll_echo_sanitize_flags -fsanitize=thread -fno-omit-frame-pointer)
elseif(NOT EPOLL_ECHO_SANITIZE STREQUAL "")
  message(FATAL_ERROR "EPOLL_ECHO_SANITIZE must be '', 'address' or 'thread', not '${EPOLL_ECHO_SANITIZE}'")
endif()
if(_epoll_echo_sanitize_flags)
  target_compile_options(epoll_echo_build_flags INTERFACE ${_epoll_echo_sanitize_flags})
  target_link_options(epoll_echo_build_flags INTERFACE ${_epoll_echo_sanitize_flags})
endif()
