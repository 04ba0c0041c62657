# shellcheck shell=sh
# Sourced by the benchmark scripts (POSIX sh, so no `local`: its variables start with _lp_).
# listening_port LOG [TRIES]: the port of a server started with --port 0 --bind 127.0.0.1
# (epoll-server or asio-echo-server), read from the "listening on" line it writes to LOG; polls
# every 50 ms, at most TRIES times (default 200, i.e. 10 s). Prints the port, or returns 1 if the
# line never came.
listening_port() {
    _lp_log=$1
    _lp_tries=${2:-200}
    for _ in $(seq "$_lp_tries"); do
        _lp_port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$_lp_log" | head -1)
        if [ -n "$_lp_port" ]; then echo "$_lp_port"; return 0; fi
        sleep 0.05
    done
    return 1
}
