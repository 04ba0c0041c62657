#!/bin/sh
# upgrade_soak.sh SERVER GENERATOR [UPGRADES] [CONNECTIONS] [SECONDS] — replaces a serving epoll-server again
# and again under ping-pong load, and prints one line per kind of replacement, side by side: the
# process upgrade (SIGUSR2, a new copy of SERVER renamed into place before each one) and the
# in-process plugin reload (SIGHUP). Each line gives the replacements done, the generator's
# verified bytes, mismatches and errors (a reset or an EOF is an error), and its worst round trip
# over a window that holds them all: every pause is at most that long. A measurement, not a test.
set -eu
server=$1
generator=$2
upgrades=${3:-100}
connections=${4:-1000}
window=${5:-60}
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

# run KIND SIGNAL DONE-TEXT — one soak: start, load, COUNT replacements, report, stop.
run() {
    kind=$1 signal=$2 done_text=$3
    install_server
    : >"$work/log"
    "$work/epoll-server" --plugin "$plugin" --port 0 --bind 127.0.0.1 --maxListeners 2 2>>"$work/log" >/dev/null &
    pid=$!
    wait_for "listening on" 1
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/log" | head -1)
    # The window must outlast every replacement; the generator stops on its own at its end.
    "$generator" --port "$port" --connections "$connections" --warmup 1 --duration "$window" --json \
        >"$work/load.json" 2>&1 &
    load=$!
    sleep 2   # the warm-up and the connections are done: every replacement carries them all
    for n in $(seq "$upgrades"); do
        [ "$kind" = upgrade ] && install_server
        kill "-$signal" "$pid"
        wait_for "$done_text" "$n"
        [ "$kind" = upgrade ] && pid=$(sed -n 's/.*upgraded: pid \([0-9]*\) serves now.*/\1/p' "$work/log" | tail -1)
    done
    kill -0 "$load" 2>/dev/null || { echo "the $window s window ended before the last $kind: pass more SECONDS"; exit 1; }
    wait "$load" || true
    printf '%-8s %4d replacements at %d connections: %s\n' "$kind" "$upgrades" "$connections" \
        "$(sed -n 's/.*"max_us":\([0-9.]*\).*"bytes_verified":\([0-9]*\),"mismatches":\([0-9]*\),"errors":\([0-9]*\).*/worst round trip \1 us, bytes verified \2, mismatches \3, errors \4/p' "$work/load.json")"
    grep -q "failed\|rejected" "$work/log" && { echo "a replacement failed:"; grep "failed\|rejected" "$work/log"; }
    kill -TERM "$pid"
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
}

run upgrade USR2 "took over"
run reload HUP "reloaded: build"
