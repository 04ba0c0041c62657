# Interface targets that carry the project's warning and sanitizer flags; every target of the
# project links epoll_echo_build_flags instead of setting global flags.
add_library(epoll_echo_build_flags INTERFACE)
# -Wthread-safety: clang checks the plugin's lock annotations (plugin/thread_annotations.h);
# g++ has no such analysis and sees the annotations as nothing.
target_compile_options(epoll_echo_build_flags INTERFACE -Wall -Wextra
  $<$<COMPILE_LANG_AND_ID:CXX,Clang>:-Wthread-safety>
  $<$<BOOL:${EPOLL_ECHO_WERROR}>:-Werror>)
# The least every target of the project needs; epoll_echo_target_defaults() below pins it exactly.
target_compile_features(epoll_echo_build_flags INTERFACE cxx_std_17)

if(EPOLL_ECHO_SANITIZE STREQUAL "address")
  set(_epoll_echo_sanitize_flags -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
elseif(EPOLL_ECHO_SANITIZE STREQUAL "thread")
  set(_epoll_echo_sanitize_flags -fsanitize=thread -fno-omit-frame-pointer)
elseif(NOT EPOLL_ECHO_SANITIZE STREQUAL "")
  message(FATAL_ERROR "EPOLL_ECHO_SANITIZE must be '', 'address' or 'thread', not '${EPOLL_ECHO_SANITIZE}'")
endif()
# clang links its ASan runtime statically into executables only; the plugin, linked with
# -z defs, needs the shared runtime to resolve __asan_* symbols (g++ uses the shared one anyway).
if(EPOLL_ECHO_SANITIZE STREQUAL "address" AND CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  list(APPEND _epoll_echo_sanitize_flags -shared-libasan)
endif()
if(_epoll_echo_sanitize_flags)
  target_compile_options(epoll_echo_build_flags INTERFACE ${_epoll_echo_sanitize_flags})
  target_link_options(epoll_echo_build_flags INTERFACE ${_epoll_echo_sanitize_flags})
endif()

# The language standard and symbol visibility of a project target, set on the target itself so
# that nothing leaks into a build that adds this project with add_subdirectory().
function(epoll_echo_target_defaults)
  foreach(target IN LISTS ARGN)
    set_target_properties(${target} PROPERTIES
      CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS OFF
      C_VISIBILITY_PRESET hidden CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
  endforeach()
endfunction()
