#!/usr/bin/env bash
# Installs what epoll-echo needs from Debian 12 packages (when missing) and builds it into
# build/ (or the folder given as $1). Used by the README's quick start and by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}

packages=(g++ make cmake libboost-dev libboost-program-options-dev libgtest-dev googletest procps abigail-tools)
# Deployment tests: pkg-config for the install test's consumer, systemd-socket-activate (package
# systemd; nothing is started), groff to check that the man page renders.
packages+=(pkgconf systemd groff-base)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: run as root, or install sudo, to install: ${missing[*]}" >&2; exit 1; }
    as_root=(sudo)
  fi
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEPOLL_ECHO_WERROR=ON >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
