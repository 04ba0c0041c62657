#!/usr/bin/env bash
# Runs the whole test suite: the normal build (build/, made by tests/setup.sh), then the same
# suite built with ASan+UBSan (build-asan/) and with TSan (build-tsan/), each from its preset in
# CMakePresets.json. Both modes also build the plugin and host with clang (build-clang/), whose
# -Wthread-safety checks the plugin's lock rules; nothing runs from that build. `--quick` runs the
# normal suite only.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

run_suite() {  # preset
  local preset=$1
  local only_normal=()
  if [ "$preset" != normal ]; then  # build/ is made by tests/setup.sh; the sanitizer ones here
    cmake --preset "$preset" >/dev/null
    # The container test builds and checks the image, which does not change with the build
    # type of the test driver: it runs in the normal suite only.
    only_normal=(-LE container)
  fi
  cmake --build --preset "$preset" -j "$jobs"
  echo "== ctest --preset $preset" >&2
  ctest --preset "$preset" -j "$jobs" "${only_normal[@]}"
}

[ -d build ] || tests/setup.sh build
run_suite normal
echo "== clang -Wthread-safety build" >&2
cmake --preset clang >/dev/null
cmake --build --preset clang -j "$jobs"
if [ "${1:-}" != "--quick" ]; then
  # Sanitizer reports fail the test that caused them.
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
  run_suite asan
  run_suite tsan
fi
