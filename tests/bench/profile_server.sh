#!/bin/bash
# profile_server.sh — where a server's CPU goes under load: one server (epoll-server or the Asio
# peer) pinned to one core, the load generator on another, and `perf record -g` of the server's core
# for a fixed window. Prints the breakdown of profile_breakdown.py (idle, user code, TCP send and
# recv, io_uring submission, task work and wait, epoll_wait, scheduler, copies, wake-ups), each in
# % of the core and ns per echoed message, and keeps perf.data and the symbol report.
#
#   tests/bench/profile_server.sh [--build DIR] [--server engine|asio] [--engine-flags "FLAGS"]
#                                 [--load "GENERATOR ARGUMENTS"] [--warmup S] [--seconds S]
#                                 [--server-cpu N] [--client-cpu N] [--out DIR] [--name NAME]
#
# Defaults: build-bench, the engine, 100 ping-pong connections of 64 B (--load "--connections 100
# --size 64 --depth 1"), 1 s warm-up, 5 s recorded, server on CPU 0, generator on CPU 1, results
# in BUILD/profile/NAME.{perf.data,breakdown.txt,symbols.txt}. Run it under the exclusive machine
# lock (a timed run): `flock -x /work/machine.lock tests/bench/profile_server.sh ...`. Needs perf
# and the right to sample kernel stacks (root, or kernel.perf_event_paranoid <= -1).
set -euo pipefail
# shellcheck source=tests/bench/server_port.sh
. "$(dirname "$0")/server_port.sh"

root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build-bench
server=engine
engine_flags=
load="--connections 100 --size 64 --depth 1"
warmup=1
seconds=5
server_cpu=0
client_cpu=1
out=
name=
while [ $# -gt 0 ]; do
    case $1 in
        --build) build=$(cd "$2" && pwd); shift ;;
        --server) server=$2; shift ;;
        --engine-flags) engine_flags=$2; shift ;;
        --load) load=$2; shift ;;
        --warmup) warmup=$2; shift ;;
        --seconds) seconds=$2; shift ;;
        --server-cpu) server_cpu=$2; shift ;;
        --client-cpu) client_cpu=$2; shift ;;
        --out) out=$2; shift ;;
        --name) name=$2; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "profile_server.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case $server in engine|asio) ;; *) echo "profile_server.sh: --server is engine or asio" >&2; exit 2 ;; esac
command -v perf >/dev/null || { echo "profile_server.sh: perf is not installed (apt-get install linux-perf)" >&2; exit 1; }
bin=$build/bin
for program in epoll-server epoll-echo-bench asio-echo-server; do
    [ -x "$bin/$program" ] || { echo "profile_server.sh: $bin/$program missing; build it:" \
        "cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench" >&2; exit 1; }
done
out=${out:-$build/profile}
name=${name:-$server}
mkdir -p "$out"

echo "profile_server.sh: load average at start $(cut -d' ' -f1-3 /proc/loadavg)" >&2
server_log=$(mktemp)
generator_out=$(mktemp)
server_pid=
generator_pid=
cleanup() {
    [ -n "$generator_pid" ] && kill "$generator_pid" 2>/dev/null && wait "$generator_pid" 2>/dev/null
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -f "$server_log" "$server_log.perf" "$generator_out"
}
trap cleanup EXIT

if [ "$server" = engine ]; then
    # shellcheck disable=SC2086
    taskset -c "$server_cpu" "$bin/epoll-server" --port 0 --bind 127.0.0.1 --maxListeners 1 $engine_flags \
        >/dev/null 2>"$server_log" &
else
    taskset -c "$server_cpu" "$bin/asio-echo-server" --port 0 --bind 127.0.0.1 --threads 1 >/dev/null 2>"$server_log" &
fi
server_pid=$!
port=$(listening_port "$server_log") ||
    { echo "profile_server.sh: the server did not start:" >&2; cat "$server_log" >&2; exit 1; }

# The generator's window covers perf's: it starts recording after the warm-up and stops 0.5 s
# before the window ends, so the messages/s the generator reports hold for the recorded seconds.
window=$(awk "BEGIN { print $seconds + 1 }")
# shellcheck disable=SC2086
taskset -c "$client_cpu" "$bin/epoll-echo-bench" --port "$port" --server-pid "$server_pid" --warmup "$warmup" \
    --duration "$window" --json --label "profile/$name" $load >"$generator_out" &
generator_pid=$!
sleep "$(awk "BEGIN { print $warmup + 0.5 }")"
if ! perf record -q -g -C "$server_cpu" -o "$out/$name.perf.data" -- sleep "$seconds" 2>"$server_log.perf"; then
    echo "profile_server.sh: perf record failed (kernel stacks need root or kernel.perf_event_paranoid <= -1):" >&2
    cat "$server_log.perf" >&2
    exit 1
fi
wait "$generator_pid" || { echo "profile_server.sh: the generator reported an error:" >&2; cat "$generator_out" >&2; exit 1; }
generator_pid=
kill -TERM "$server_pid"; wait "$server_pid" || true
server_pid=

rate=$(grep -o '"messages_per_s":[0-9.]*' "$generator_out" | cut -d: -f2)
per_cpu=$(grep -o '"messages_per_server_cpu_s":[0-9.]*' "$generator_out" | cut -d: -f2 || true)
messages=$(awk "BEGIN { print $rate * $seconds }")
perf report -i "$out/$name.perf.data" -g none --no-children --sort sym --stdio --percent-limit 0.3 2>/dev/null |
    grep -v '^$' | grep -v '^#' | grep -v '^ *|' | grep -v -- '---' >"$out/$name.symbols.txt" || true
{
    echo "$name: $(date -u +%FT%TZ), kernel $(uname -r), load $load, ${engine_flags:+flags $engine_flags, }$rate messages/s over ${seconds} s${per_cpu:+, $per_cpu messages per server CPU-s}"
    perf script -i "$out/$name.perf.data" -F comm,tid,time,ip,sym,dso 2>/dev/null |
        python3 "$root/tests/bench/profile_breakdown.py" --messages "$messages" --seconds "$seconds"
} | tee "$out/$name.breakdown.txt"
echo "profile_server.sh: $out/$name.breakdown.txt, symbols $out/$name.symbols.txt, raw $out/$name.perf.data" >&2
