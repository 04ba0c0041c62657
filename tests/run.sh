#!/usr/bin/env bash
# Runs the whole test suite: the normal build (build/, made by tests/setup.sh), then the same
# suite built with ASan+UBSan and with TSan. `--quick` runs the normal build only.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

run_suite() {  # build_dir [extra cmake args...]
  local dir=$1; shift
  local only_normal=()
  if [ $# -gt 0 ]; then
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEPOLL_ECHO_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j "$jobs"
    # The container test builds and checks the image, which does not change with the build
    # type of the test driver: it runs in the normal suite only.
    only_normal=(-LE container)
  fi
  echo "== ctest in $dir" >&2
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" --timeout 300 "${only_normal[@]}"
}

[ -d build ] || tests/setup.sh build
cmake --build build -j "$jobs"
run_suite build
if [ "${1:-}" != "--quick" ]; then
  # Sanitizer reports fail the test that caused them.
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
  run_suite build-asan -DEPOLL_ECHO_SANITIZE=address
  run_suite build-tsan -DEPOLL_ECHO_SANITIZE=thread
fi
