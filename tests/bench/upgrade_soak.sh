#!/bin/sh
# upgrade_soak.sh SERVER GENERATOR [UPGRADES] [CONNECTIONS] [SECONDS] [KINDS] [RATE] — replaces a
# serving epoll-server again and again under ping-pong load, by each of KINDS (default "upgrade reload"):
# the process upgrade (SIGUSR2, a new copy of SERVER renamed into place before each one) and the
# in-process plugin reload (SIGHUP). For each kind it prints the pause of every replacement (the
# longest round trip that completed between the signal and the log line saying it was done,
# from the generator's --timeline) and their p50 / p99 / max; the server's own account of its
# pauses (the upgrade's "handed over in a pause of" lines) and of each phase the two processes
# time (the "upgraded:" and "took over" lines) as p50 / p99 / max; and the
# generator's verified bytes, mismatches (a lost, duplicated or reordered byte), errors (a reset
# or an EOF) and its oldest unanswered message at the end (a lost byte leaves one). A
# measurement, not a test.
# RATE 0 (the default) runs the connections in a closed loop: each sends its next message as soon
# as the echo of the last is back, so the server always has a backlog and a round trip after a
# pause also waits for the others' answers. RATE N paces them (open loop, N messages/s in total,
# latency counted from each message's intended send time): at a rate well below the server's peak
# an ordinary round trip is short, and the longest one of a replacement is its pause.
set -eu
# shellcheck source=tests/bench/server_port.sh
. "$(dirname "$0")/server_port.sh"
server=$1
generator=$2
upgrades=${3:-100}
connections=${4:-1000}
window=${5:-60}
kinds=${6:-upgrade reload}
rate=${7:-0}
case $rate in
    '' | *[!0-9]*) echo "upgrade_soak.sh: RATE $rate is not a whole number of messages/s (0: closed loop)" >&2; exit 2 ;;
esac
pacing=
[ "$rate" -gt 0 ] && pacing="--rate $rate"
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pid=
load=
trap 'kill "$pid" "$load" 2>/dev/null || true; rm -rf "$work"' EXIT
plugin=$(dirname "$server")/libepoll_echo.so

install_server() {
    cp "$server" "$work/staging"
    mv "$work/staging" "$work/epoll-server"
}

# wait_for TEXT COUNT — until the log holds TEXT COUNT times (at most 60 s).
wait_for() {
    for _ in $(seq 1200); do
        [ "$(grep -c -- "$1" "$work/log" || true)" -ge "$2" ] && return 0
        sleep 0.05
    done
    echo "timed out waiting for '$1' x$2:"; tail -5 "$work/log"; exit 1
}

# summarize LABEL TEXT — p50 / p99 / max of the "TEXT <n> ms" values in the log.
summarize() {
    sed -n "s/.*$2 \([0-9.]*\) ms.*/\1/p" "$work/log" | sort -n | awk -v label="$1" '
        { v[NR] = $1 }
        END { if (NR) printf "%s: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
              label, v[int((NR + 1) / 2)], v[int(NR * 0.99 + 0.999)], v[NR] }'
}

# run KIND SIGNAL DONE-TEXT — one soak: start, load, COUNT replacements, report, stop.
run() {
    kind=$1 signal=$2 done_text=$3
    install_server
    : >"$work/log"
    "$work/epoll-server" --plugin "$plugin" --port 0 --bind 127.0.0.1 --maxListeners 2 2>>"$work/log" >/dev/null &
    pid=$!
    port=$(listening_port "$work/log") || { echo "upgrade_soak.sh: the server did not start:" >&2; cat "$work/log" >&2; exit 1; }
    # The window must outlast every replacement; the generator stops on its own at its end.
    # shellcheck disable=SC2086 # $pacing is empty or two words
    "$generator" --port "$port" --connections "$connections" --warmup 1 --duration "$window" --json $pacing \
        --timeline "$work/timeline" >"$work/load.json" 2>&1 &
    load=$!
    sleep 2   # the warm-up and the connections are done: every replacement carries them all
    : >"$work/marks"
    for n in $(seq "$upgrades"); do
        [ "$kind" = upgrade ] && install_server
        signalled=$(date +%s%3N)
        kill "-$signal" "$pid"
        wait_for "$done_text" "$n"
        echo "$signalled $(date +%s%3N)" >>"$work/marks"
        [ "$kind" = upgrade ] && pid=$(sed -n 's/.*upgraded: pid \([0-9]*\) serves now.*/\1/p' "$work/log" | tail -1)
    done
    kill -0 "$load" 2>/dev/null || { echo "the $window s window ended before the last $kind: pass more SECONDS"; exit 1; }
    wait "$load" || true
    python3 "$here/upgrade_pauses.py" "$kind" "$work/timeline" "$work/marks"
    if [ "$kind" = upgrade ]; then
        summarize "upgrade pauses as the old process timed them" "handed over in a pause of"
        # The phases, as the two processes timed them (their "upgraded:" and "took over" lines).
        for phase in "workers stopped" "state exported" "sent" "imported and started by the new process" \
            "imported in" "started in" "copied in a pause of" "imported by the new process in" \
            "brought up paused on them in"; do
            summarize "  phase '$phase'" "$phase"
        done
        grep "handed over in a pause of" "$work/log" | tail -1 | sed "s/^/last upgrade: /"
        grep "took over" "$work/log" | tail -1 | sed "s/^/last upgrade: /"
    fi
    if [ "$rate" -gt 0 ]; then loop="open loop, $rate messages/s"; else loop="closed loop"; fi
    printf '%-8s %4d replacements at %d connections (%s): %s\n' "$kind" "$upgrades" "$connections" "$loop" \
        "$(sed -n 's/.*"bytes_verified":\([0-9]*\),"mismatches":\([0-9]*\),"errors":\([0-9]*\).*"oldest_unanswered_us":\([0-9.]*\).*/bytes verified \1, mismatches \2, errors \3, oldest unanswered at the end \4 us/p' "$work/load.json")"
    grep -q "failed\|rejected" "$work/log" && { echo "a replacement failed:"; grep "failed\|rejected" "$work/log"; }
    kill -TERM "$pid"
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
}

for kind in $kinds; do
    case $kind in
        upgrade) run upgrade USR2 "took over" ;;
        reload) run reload HUP "reloaded: build" ;;
        *) echo "upgrade_soak.sh: unknown kind $kind (upgrade, reload)"; exit 2 ;;
    esac
done
