#!/bin/sh
# bench_smoke.sh SERVER GENERATOR — starts epoll-server on a free loopback port, runs the load
# generator for about a second in echo and connect modes and opens a few idle connections; passes
# when every byte was verified.
set -eu
server=$1
generator=$2
log=$(mktemp)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
"$server" --port 0 --bind 127.0.0.1 --maxListeners 1 2>"$log" >/dev/null &
pid=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || { echo "epoll-server did not start:"; cat "$log"; exit 1; }
"$generator" --port "$port" --connections 8 --depth 4 --size 3000 --threads 2 --warmup 0.1 --duration 0.5 --server-pid "$pid"
"$generator" --port "$port" --mode connect --connections 4 --size 100 --warmup 0.1 --duration 0.3 --json
"$generator" --port "$port" --mode idle --connections 20 --size 100 --server-pid "$pid" --json
