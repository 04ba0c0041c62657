#!/bin/bash
# run_benchmarks.sh — epoll-server (--maxListeners 1) against the Boost.Asio reference server
# (--threads 1), alternated A B A B per round, the server pinned to one core and the load generator
# to another. Prints a per-scenario comparison and writes BUILD/bench-results.{jsonl,json,txt}.
#
#   tests/bench/run_benchmarks.sh [--quick] [--rounds N] [--build DIR] [--server-cpu N] [--client-cpu N]
#                                 [--only SCENARIO] [--server-cpu-limit PERCENT]
#                                 [--engine-flags "FLAGS"] [--peer-engine "FLAGS"] [--peer-poll-loop] [--no-syscalls]
#                                 [--scenario "NAME|GENERATOR ARGUMENTS"] [--open-loop] [--listeners N]
#
# --listeners N runs epoll-server (the peer engine too) with N workers instead of one, all on the
# server's core: with --peer-engine, two spreads of the connections compared (--balance).
# --engine-flags passes more flags to epoll-server (e.g. "--high-water 65536"); --no-syscalls
# skips the extra system-call run of each scenario and server. --peer-engine runs epoll-server with
# FLAGS (may be "") as the second server instead of the Asio peer: the engine against itself, an
# option on against off. --peer-poll-loop runs, as the second server, one thread serving the engine
# through a plain poll() loop (tests/examples/poll_loop.c --serve, threading EXTERNAL): the
# external-loop engine against the threaded one. --scenario runs that one scenario instead of the
# built-in list.
# --open-loop adds, to each round of an echo scenario, open-loop runs (epoll-echo-bench --rate) of
# each server at 50 % and 80 % of the peak that server reached in its closed-loop run of the same
# round, just before (each rate used is printed), and prints their latency side by side (scenario
# names SCENARIO@50%, SCENARIO@80%).
#
# --server-cpu-limit caps each server at PERCENT of its core (a cgroup CPU quota, 10 ms period;
# needs root and the cgroup cpu controller) so that the server, not the generator, is the
# bottleneck and messages per server CPU-second measure the server (docs/benchmarks.md).
set -euo pipefail
# shellcheck source=tests/bench/server_port.sh
. "$(dirname "$0")/server_port.sh"

root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build-bench
rounds=3
warmup=1
duration=4
server_cpu=0
client_cpu=1
only=
cpu_limit=
engine_flags=
peer_engine=
peer_engine_flags=
peer_poll_loop=
custom_scenario=
syscall_runs=1
open_loop=
listeners=1
while [ $# -gt 0 ]; do
    case $1 in
        --quick) rounds=1; warmup=0.3; duration=1 ;;
        --rounds) rounds=$2; shift ;;
        --build) build=$(cd "$2" && pwd); shift ;;
        --server-cpu) server_cpu=$2; shift ;;
        --client-cpu) client_cpu=$2; shift ;;
        --only) only=$2; shift ;;
        --server-cpu-limit) cpu_limit=$2; shift ;;
        --engine-flags) engine_flags=$2; shift ;;
        --peer-engine) peer_engine=1; peer_engine_flags=$2; shift ;;
        --peer-poll-loop) peer_poll_loop=1 ;;
        --scenario) custom_scenario=$2; shift ;;
        --no-syscalls) syscall_runs= ;;
        --open-loop) open_loop=1 ;;
        --listeners) listeners=$2; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "run_benchmarks.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

# The server's CPU cap: a cgroup (v1 cpu controller, or v2 with cpu enabled) whose quota is
# cpu_limit % of one CPU. start_server moves the server into it before exec, so $! stays the server.
cgroup_dir=
cgroup_procs=
cgroup_kind=
setup_cpu_limit() {
    case $cpu_limit in ''|*[!0-9]*) echo "run_benchmarks.sh: --server-cpu-limit wants a percentage, 1-100" >&2; exit 2 ;; esac
    if [ "$cpu_limit" -lt 1 ] || [ "$cpu_limit" -gt 100 ]; then
        echo "run_benchmarks.sh: --server-cpu-limit wants a percentage, 1-100" >&2; exit 2
    fi
    local quota=$((cpu_limit * 100)) v2
    if [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
        cgroup_dir=/sys/fs/cgroup/cpu/epoll-echo-bench.$$
        if ! { mkdir "$cgroup_dir" && echo 10000 >"$cgroup_dir/cpu.cfs_period_us" &&
                   echo "$quota" >"$cgroup_dir/cpu.cfs_quota_us"; }; then
            cpu_limit_failed
        fi
        cgroup_procs=$cgroup_dir/tasks
        cgroup_kind="cgroup v1"
        return
    fi
    v2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
    if [ -n "$v2" ] && grep -qw cpu "$v2/cgroup.controllers" 2>/dev/null; then
        grep -qw cpu "$v2/cgroup.subtree_control" || echo +cpu >"$v2/cgroup.subtree_control" || cpu_limit_failed
        cgroup_dir=$v2/epoll-echo-bench.$$
        if ! { mkdir "$cgroup_dir" && echo "$quota 10000" >"$cgroup_dir/cpu.max"; }; then cpu_limit_failed; fi
        cgroup_procs=$cgroup_dir/cgroup.procs
        cgroup_kind="cgroup v2"
        return
    fi
    cpu_limit_failed
}
cpu_limit_failed() {
    echo "run_benchmarks.sh: --server-cpu-limit needs the cgroup cpu controller and the right to create" \
        "a cgroup (root); none usable here" >&2
    [ -n "$cgroup_dir" ] && rmdir "$cgroup_dir" 2>/dev/null
    exit 1
}

bin=$build/bin
programs=(epoll-server epoll-echo-bench asio-echo-server)
[ -n "$peer_poll_loop" ] && programs+=(example_poll_loop)
for program in "${programs[@]}"; do
    [ -x "$bin/$program" ] || { echo "run_benchmarks.sh: $bin/$program missing; build it:" \
        "cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench" >&2; exit 1; }
done

# name | generator arguments
scenarios=(
    "latency_1conn_64B|--connections 1 --size 64 --depth 1"
    "pingpong_100conn_64B|--connections 100 --size 64 --depth 1"
    "depth8_100conn_64B|--connections 100 --size 64 --depth 8"
    "pingpong_100conn_4KiB|--connections 100 --size 4096 --depth 1"
    "pingpong_100conn_64KiB|--connections 100 --size 65536 --depth 1"
    "pingpong_1000conn_64B|--connections 1000 --size 64 --depth 1"
    "stream_8conn_64KiB|--connections 8 --size 65536 --depth 16"
    "stream_8conn_1MiB|--connections 8 --size 1048576 --depth 4"
    "connect_rate_8par_64B|--mode connect --connections 8 --size 64"
    "idle_10000conn|--mode idle --connections 10000 --size 64"
)
[ -n "$custom_scenario" ] && scenarios=("$custom_scenario")

load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v load="${load_at_start%% *}" 'BEGIN { exit !(load > 1.0) }'; then
    echo "run_benchmarks.sh: warning: load average $load_at_start: other work on this machine will add noise" >&2
fi

raw=$build/bench-results.jsonl
: >"$raw"
server_pid=
server_kind=  # set by start_server
server_nofile=  # set for idle scenarios: the servers' RLIMIT_NOFILE (soft and hard)
server_log=$(mktemp)
server_out=$(mktemp)
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -f "$server_log" "$server_out"
}
trap cleanup EXIT
if [ -n "$cpu_limit" ]; then
    setup_cpu_limit
    # Removed last: only an empty cgroup can go.
    trap 'cleanup; rmdir "$cgroup_dir" 2>/dev/null' EXIT
fi

# start_server engine|asio — sets server_pid, port and server_kind (epoll-server for the engine
# and an engine peer, else asio or poll-loop). With server_nofile set, prlimit raises the
# server's descriptor limit first (prlimit execs the server, so $! is still the server).
start_server() {
    # Dirty pages (a build that just ended, earlier runs' files) are written back by kernel workers
    # within seconds; flushed now, that block I/O does not pause the server or generator mid-window.
    sync
    : >"$server_log"
    : >"$server_out"
    local limit=()
    [ -n "$server_nofile" ] && limit=(prlimit --nofile="$server_nofile")
    # shellcheck disable=SC2016
    [ -n "$cgroup_procs" ] && limit+=(sh -c 'echo $$ >"$0" && exec "$@"' "$cgroup_procs")
    server_kind=$1
    if [ "$1" = engine ] || [ -n "$peer_engine" ]; then
        server_kind=epoll-server
        local flags=$engine_flags
        [ "$1" = engine ] || flags=$peer_engine_flags
        # shellcheck disable=SC2086
        "${limit[@]}" taskset -c "$server_cpu" "$bin/epoll-server" --port 0 --bind 127.0.0.1 --maxListeners "$listeners" \
            --stats-format json $flags >"$server_out" 2>"$server_log" &
    elif [ -n "$peer_poll_loop" ]; then
        server_kind=poll-loop
        "${limit[@]}" taskset -c "$server_cpu" "$bin/example_poll_loop" "$bin/libepoll_echo.so" --serve 0 \
            >"$server_out" 2>"$server_log" &
    else
        "${limit[@]}" taskset -c "$server_cpu" "$bin/asio-echo-server" --port 0 --bind 127.0.0.1 --threads 1 \
            >"$server_out" 2>"$server_log" &
    fi
    server_pid=$!
    port=$(listening_port "$server_log") && return 0
    echo "run_benchmarks.sh: $1 server did not start:" >&2; cat "$server_log" >&2; exit 1
}

calc() { awk "BEGIN { print $* }"; }

stop_server() {
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    server_pid=
}

# run_generator LABEL ARGS... — one measured run, its JSON line appended to the raw file, with the
# io_uring counters of an epoll-server added (server_counters).
run_generator() {
    local label=$1; shift
    local line
    if ! line=$(taskset -c "$client_cpu" "$bin/epoll-echo-bench" --port "$port" --server-pid "$server_pid" \
            --warmup "$warmup" --duration "$duration" --json --label "$label" "$@"); then
        echo "run_benchmarks.sh: $label: the generator reported an error (see its JSON)" >&2
    fi
    local counters
    counters=$(server_counters)
    [ -n "$counters" ] && [ "${line: -1}" = "}" ] && line="${line%\}},$counters}"
    echo "$line" >>"$raw"
    echo "$line"
}

stats_lines() { grep -c '"event":"stats"' "$server_out" || true; }

# server_counters — for an epoll-server (its stats JSON on $server_out), the io_uring counters
# since it started, warm-up included, as JSON members: "recv_buffer_waits":N,"completion_overflows":N
# (0 under the epoll backend). Empty for the other servers, and (with a message) when the server
# printed no stats line within 2 s of SIGUSR1.
server_counters() {
    [ "$server_kind" = epoll-server ] || return 0
    local before attempt
    before=$(stats_lines)
    kill -USR1 "$server_pid"
    for attempt in $(seq 200); do
        [ "$(stats_lines)" -gt "$before" ] && break
        [ "$attempt" -lt 200 ] && sleep 0.01
    done
    if [ "$(stats_lines)" -le "$before" ]; then
        echo "run_benchmarks.sh: no stats line from the server after SIGUSR1: no io_uring counters for this run" >&2
        return 0
    fi
    local waits overflows
    waits=$(last_stat recv_buffer_waits)
    overflows=$(last_stat completion_overflows)
    [ -n "$waits" ] && [ -n "$overflows" ] || return 0
    echo "\"recv_buffer_waits\":$waits,\"completion_overflows\":$overflows"
}

# Engine system calls in the window: the engine's own counter when the host prints it (stats
# JSON "syscalls"), else perf counting raw_syscalls:sys_enter of the whole server process.
# The value of `name` in the server's last JSON stats line.
last_stat() { grep -o "\"$1\":[0-9]*" "$server_out" | tail -1 | cut -d: -f2; }

# The --size argument among the generator's arguments.
size_of() { while [ $# -gt 0 ]; do [ "$1" = --size ] && { echo "$2"; return; }; shift; done; echo 64; }
# The --connections argument among the generator's arguments.
connections_of() { while [ $# -gt 0 ]; do [ "$1" = --connections ] && { echo "$2"; return; }; shift; done; echo 100; }

syscall_pass() {
    local scenario=$1 server=$2; shift 2
    local per_message=""
    start_server "$server"
    taskset -c "$client_cpu" "$bin/epoll-echo-bench" --port "$port" --server-pid "$server_pid" \
        --warmup "$warmup" --duration "$duration" --json --label "$scenario/$server/syscalls" "$@" >"$server_log.gen" &
    local generator=$!
    sleep "$warmup"; sleep 0.1
    local source=none count=
    if { [ "$server" = engine ] || [ -n "$peer_engine" ]; } && { kill -USR1 "$server_pid"; sleep 0.05; grep -q '"syscalls"' "$server_out"; }; then
        # Both figures from the same two stats lines: system calls over messages echoed in between
        # (bytes out / message size), so no clock or window mismatch enters the ratio.
        local before; before=$(last_stat syscalls)
        local out_before; out_before=$(last_stat bytes_out)
        sleep "$(calc "$duration - 0.3")"
        kill -USR1 "$server_pid"; sleep 0.05
        local after; after=$(last_stat syscalls)
        local out_after; out_after=$(last_stat bytes_out)
        per_message=$(calc "($after - $before) * $(size_of "$@") / ($out_after - $out_before)")
        source=engine-counter
    elif command -v perf >/dev/null; then
        local seconds; seconds=$(calc "$duration - 0.3")
        local total
        total=$(perf stat -x, -e raw_syscalls:sys_enter -p "$server_pid" -- sleep "$seconds" 2>&1 >/dev/null |
                awk -F, '/raw_syscalls/ {print $1}')
        [ -n "$total" ] && [ "$total" != "<not supported>" ] && { count=$(calc "$total / $seconds"); source=perf; }
    fi
    wait "$generator" || true
    stop_server
    local rate; rate=$(grep -o '"messages_per_s":[0-9.]*' "$server_log.gen" | cut -d: -f2)
    rm -f "$server_log.gen"
    # The counter gives system calls per message directly; perf gives a rate to divide.
    [ -n "${per_message:-}" ] && [ -n "$rate" ] && count=$(calc "$per_message * $rate")
    echo "{\"label\":\"$scenario/$server/syscalls\",\"syscalls_per_s\":${count:-null},\"messages_per_s\":${rate:-null},\"source\":\"$source\"}" >>"$raw"
}

# Echo scenarios only: the open loop does not apply to connect or idle mode.
is_echo() { case " $1 " in *" --mode "*) return 1 ;; *) return 0 ;; esac; }

# The messages/s of a closed-loop run's JSON line; empty if it has none.
messages_per_s() { grep -o '"messages_per_s":[0-9.]*' <<<"$1" | cut -d: -f2; }

# open_loop_runs SCENARIO SERVER ROUND PEAK ARGS... — SERVER at 50 % and 80 % of PEAK, the
# messages/s of its closed-loop run of this round, measured just before: a peak from other rounds
# can be above what the server manages now (rounds differ by 15 % here), and an open loop above
# the server's rate measures its growing queue, not its latency.
open_loop_runs() {
    local scenario=$1 server=$2 round=$3 peak=$4; shift 4
    local percent rate
    if [ -z "$peak" ]; then
        echo "run_benchmarks.sh: $scenario/$server/$round: no closed-loop peak, no open-loop runs" >&2
        return
    fi
    for percent in 50 80; do
        rate=$(calc "int($peak * $percent / 100)")
        [ "$rate" -ge 1 ] || continue
        echo "run_benchmarks.sh: $scenario@$percent%/$server/$round: --rate $rate ($percent % of $peak msgs/s)" >&2
        start_server "$server"
        run_generator "$scenario@$percent%/$server/$round" "$@" --rate "$rate" >&2
        stop_server
    done
}

for entry in "${scenarios[@]}"; do
    scenario=${entry%%|*}
    arguments=${entry#*|}
    [ -n "$only" ] && [ "$only" != "$scenario" ] && continue
    server_nofile=
    idle=
    case " $arguments " in *" --mode idle "*) idle=1 ;; esac
    if [ -n "$idle" ]; then
        # One descriptor per idle connection on each side: the servers get the hard limit (the
        # generator raises its own soft limit and fails clearly when the hard one is too low).
        server_nofile=$(ulimit -Hn)
        # shellcheck disable=SC2086
        wanted=$(($(connections_of $arguments) + 100))
        if [ "$server_nofile" != unlimited ] && [ "$server_nofile" -lt "$wanted" ]; then
            echo "run_benchmarks.sh: skipping $scenario: RLIMIT_NOFILE hard limit $server_nofile < $wanted" >&2
            continue
        fi
    fi
    echo "== $scenario ($arguments)" >&2
    for round in $(seq "$rounds"); do
        for server in engine asio; do
            start_server "$server"
            # shellcheck disable=SC2086
            line=$(run_generator "$scenario/$server/$round" $arguments)
            echo "$line" >&2
            stop_server
            if [ -n "$open_loop" ] && is_echo "$arguments"; then
                # shellcheck disable=SC2086
                open_loop_runs "$scenario" "$server" "$round" "$(messages_per_s "$line")" $arguments
            fi
        done
    done
    # Idle connections send nothing after their one echo: no system calls per message to count.
    [ -n "$idle" ] || [ -z "$syscall_runs" ] && continue
    for server in engine asio; do
        # shellcheck disable=SC2086
        syscall_pass "$scenario" "$server" $arguments
    done
done

{
    echo "$(date -u +%FT%TZ), kernel $(uname -r),$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(nproc) cores"
    echo "rounds $rounds, warm-up ${warmup} s, window ${duration} s, server on CPU $server_cpu${cpu_limit:+" capped at $cpu_limit % ($cgroup_kind)"}, generator on CPU" \
        "$client_cpu, load average at start $load_at_start, at end $(cut -d' ' -f1-3 /proc/loadavg)${engine_flags:+, engine flags $engine_flags}${peer_engine:+, peer: epoll-server ${peer_engine_flags:-without extra flags}}${peer_poll_loop:+, peer: the engine in one poll() loop (threading EXTERNAL)}"
    peer_name=${peer_engine:+peer}
    [ -n "$peer_poll_loop" ] && peer_name=poll-loop
    python3 "$root/tests/bench/summarize.py" "$raw" "$build/bench-results.json" ${peer_name:+"$peer_name"}
} | tee "$build/bench-results.txt"
python3 "$root/tests/bench/plot.py" "$raw" "$build/bench-results.svg" ||
    echo "run_benchmarks.sh: no plot (it needs 64 B ping-pong runs at two connection counts)" >&2
echo "results: $build/bench-results.txt, $build/bench-results.json, $build/bench-results.svg, raw runs $raw" >&2
