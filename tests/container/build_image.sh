#!/usr/bin/env bash
# build_image.sh CACHE_DIR TAG — builds the repository's Dockerfile with podman into TAG, as a
# user without Docker Hub would: the base `debian:bookworm-slim` is made with debootstrap from
# this machine's Debian mirror. Everything lives in podman storage of its own under CACHE_DIR (the
# user's images, a real debian:bookworm-slim included, stay untouched), and is kept there:
# - the base, labelled with a key of what it was made from (recipe, mirror, debootstrap version),
#   is rebuilt only when that key changes;
# - the build stage is tagged TAG-build, so podman's layer cache (which compares every file COPY
#   takes) rebuilds only what changed; superseded images are pruned.
# Exit 77 (skip) with a line saying why when this machine cannot do it.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 CACHE_DIR TAG" >&2; exit 2; }
cache_dir=$1 tag=$2
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
skip() { echo "SKIP: $*"; exit 77; }

[ "$(id -u)" -eq 0 ] || skip "needs root (rootful podman and debootstrap)"
for tool in podman runc debootstrap flock sha256sum; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (tests/setup.sh installs it)"
done
base=$(sed -n 's/^FROM \([^ ]*\) AS build$/\1/p' "$source_dir/Dockerfile")
[ "$base" = debian:bookworm-slim ] || { echo "Dockerfile: expected FROM debian:bookworm-slim, found '$base'" >&2; exit 1; }

# The machine's Debian source, deb822 (Debian 12's default) or one-line format.
mirror=$(sed -n 's/^URIs: *\([^ ]*debian\)\/*$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=$(sed -n 's/^deb \(\[[^]]*\] \)\?\([^ ]*debian\)\/* bookworm .*/\2/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
[ -n "$mirror" ] || skip "no Debian bookworm source found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"

mkdir -p "$cache_dir"
podman=(podman --root "$cache_dir/storage" --runroot "$cache_dir/run" --tmpdir "$cache_dir/tmp")
# One build at a time per cache: podman locks its storage, but not debootstrap or the tags. The
# test holds this lock for its whole run (and says so) so that no other run retags its image.
if [ -z "${EPOLL_ECHO_CONTAINER_LOCKED:-}" ]; then
  exec 9>"$cache_dir/lock"
  flock 9
fi

recipe="debootstrap --variant=minbase bookworm $mirror; $(dpkg-query -W -f='${Version}' debootstrap)"
key=$(printf '%s\n' "$recipe" | sha256sum | cut -c1-16)
current=$("${podman[@]}" image inspect --format '{{index .Config.Labels "org.epoll-echo.base-key"}}' \
  "$base" 2>/dev/null || true)
if [ "$current" = "$key" ]; then
  echo "base $base: cached (key $key)"
else
  echo "base $base: making it (${current:+stale key $current, }$recipe)"
  rootfs=$(mktemp -d "$cache_dir/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  start=$SECONDS
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$cache_dir/debootstrap.log" 2>&1 \
    || { tail -n 20 "$cache_dir/debootstrap.log" >&2; echo "debootstrap failed (log: $cache_dir/debootstrap.log)" >&2; exit 1; }
  tar -C "$rootfs" -c . | "${podman[@]}" import --quiet --change "LABEL=org.epoll-echo.base-key=$key" - "$base" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  echo "base $base: made in $((SECONDS - start)) s"
fi

start=$SECONDS
build=("${podman[@]}" build --pull=never --isolation=chroot --network=host)
"${build[@]}" --target build -t "$tag-build" "$source_dir" >"$cache_dir/build.log" 2>&1 \
  && "${build[@]}" -t "$tag" "$source_dir" >>"$cache_dir/build.log" 2>&1 \
  || { tail -n 40 "$cache_dir/build.log" >&2; echo "podman build failed (log: $cache_dir/build.log)" >&2; exit 1; }
echo "image $tag: built in $((SECONDS - start)) s"
"${podman[@]}" image prune --force >/dev/null
