#!/usr/bin/env bash
# Installs what epoll-echo needs from Debian 12 packages (when missing) and builds it into
# build/ (or the folder given last) with the `normal` preset of CMakePresets.json. Used by the
# README's quick start and by CI.
# `--server-only` installs just the compiler and Boost and builds the server and plugin without
# the test suite: the Dockerfile's build stage, which ships no test.
set -euo pipefail
cd "$(dirname "$0")/.."
server_only=false
if [ "${1:-}" = --server-only ]; then server_only=true; shift; fi
build_dir=${1:-build}

# liburing-dev: the io_uring backend, linked statically (liburing.a) so the plugin needs no liburing2 at run
# time; pkgconf finds it.
packages=(g++ make cmake pkgconf libboost-dev libboost-program-options-dev liburing-dev)
if ! $server_only; then
  packages+=(libgtest-dev googletest procps abigail-tools)
  # The external-loop examples: a libuv host (tests/examples/libuv_loop.c).
  packages+=(libuv1-dev)
  # tests/run.sh builds the plugin with clang too: its -Wthread-safety checks the lock rules.
  packages+=(clang)
  # Deployment tests: pkg-config for the install test's consumer, systemd-socket-activate (package
  # systemd; nothing is started), groff to check that the man page renders.
  packages+=(pkgconf systemd groff-base)
  # The container image test: a Debian base made with debootstrap, the image built and run with
  # podman; runc because crun refuses hosts with hybrid cgroups (v1 plus a v2 mount).
  packages+=(podman runc debootstrap)
  # The benchmark report's own test (tests/bench/summarize_test.py) runs summarize.py.
  packages+=(python3)
fi
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

cmake --preset normal -B "$build_dir" \
  -DEPOLL_ECHO_BUILD_TESTS="$($server_only && echo OFF || echo ON)" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
