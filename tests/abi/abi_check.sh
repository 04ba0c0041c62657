#!/usr/bin/env bash
# Compares the built plugin's public ABI with the committed baseline (abidiff), or, with --update,
# rewrites the baseline after a deliberate change, which requires an ABI version bump in the header.
#   abi_check.sh [--update] PLUGIN_SO API_DIR
# Exit: 0 same ABI, 1 ABI changed or tool error, 77 abidiff/abidw not installed (ctest: skipped).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
baseline=$here/libepoll_echo.abi
recorded_version_file=$here/libepoll_echo.abi.version
update=no
if [ "${1:-}" = --update ]; then update=yes; shift; fi
plugin=$1
api_dir=$2

for tool in abidiff abidw; do
  command -v "$tool" >/dev/null || { echo "abi_check: $tool not found (apt-get install abigail-tools): skipped"; exit 77; }
done

header_version() {  # "MAJOR.MINOR" from the public header
  local major minor
  major=$(sed -n 's/^#define EPOLL_ECHO_ABI_MAJOR \([0-9]*\).*/\1/p' "$api_dir/epoll_echo.h")
  minor=$(sed -n 's/^#define EPOLL_ECHO_ABI_MINOR \([0-9]*\).*/\1/p' "$api_dir/epoll_echo.h")
  echo "$major.$minor"
}

# Only what the public header declares, with no source locations or build paths, so the file
# depends on neither the checkout's path nor the compiler's line tables.
write_abi() {  # plugin output
  abidw --no-show-locs --no-corpus-path --no-comp-dir-path --headers-dir "$api_dir" --drop-private-types \
    --exported-interfaces-only --type-id-style hash --out-file "$2" "$1"
  sed -i "s|path='[^']*/plugin/|path='plugin/|" "$2"
}

run_abidiff() {  # prints the report; returns abidiff's status bits (1 error, 2 usage, 4 change, 8 incompatible)
  local status=0
  abidiff --exported-interfaces-only --harmless \
    "$baseline" "$plugin" || status=$?
  return "$status"
}

version=$(header_version)
recorded=$(cat "$recorded_version_file" 2>/dev/null || echo none)

if [ "$update" = yes ]; then
  status=0
  [ -f "$baseline" ] && { run_abidiff >/dev/null || status=$?; }
  if [ $((status & 12)) -ne 0 ] && [ "$version" = "$recorded" ]; then
    echo "abi_check: the ABI changed but the header still says $version: bump EPOLL_ECHO_ABI_MINOR (additions)" \
         "or EPOLL_ECHO_ABI_MAJOR (incompatible changes) first" >&2
    exit 1
  fi
  write_abi "$plugin" "$baseline"
  echo "$version" > "$recorded_version_file"
  echo "abi_check: baseline updated to ABI $version ($baseline)"
  exit 0
fi

if [ "$version" != "$recorded" ]; then
  echo "abi_check: the header declares ABI $version but the baseline records $recorded:" \
       "run tests/abi/abi_check.sh --update $plugin $api_dir and commit both files" >&2
  exit 1
fi
status=0
report=$(run_abidiff) || status=$?
if [ "$status" -eq 0 ]; then
  echo "abi_check: ABI $version unchanged against the baseline"
  exit 0
fi
echo "$report"
[ $((status & 1)) -ne 0 ] && echo "abi_check: abidiff failed (status $status)" >&2
[ $((status & 2)) -ne 0 ] && echo "abi_check: abidiff usage error (status $status)" >&2
[ $((status & 8)) -ne 0 ] && echo "abi_check: INCOMPATIBLE ABI change: needs an ABI major bump" >&2
[ $((status & 12)) -eq 4 ] && echo "abi_check: ABI change (compatible): bump the ABI minor and update the baseline" >&2
echo "abi_check: see docs/reliability.md, 'Updating the ABI baseline'" >&2
exit 1
