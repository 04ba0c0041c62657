#!/usr/bin/env python3
# reuseport_balance.py BUILD_DIR [--workers 2,4,8] [--connections 8,32,100,1000] [--trials 20]
#                       [--balance kernel|exact]
# How evenly SO_REUSEPORT spreads connections over epoll-server's workers: for each worker count
# N, one server on 127.0.0.1 (port 0); for each connection count M, `trials` times: open M
# connections (each from a new ephemeral port), read the stats line's active_per_worker (SIGUSR1),
# close them. Prints, per N and M, the median and worst over the trials of the busiest worker
# over the even share (M/N) and of the busiest minus the least loaded worker (and their 95th
# percentiles), next to the same
# figures for connections thrown at workers uniformly at random (the model of the kernel's
# four-tuple hash). --balance is passed to the server (kernel: the hash alone, the default; exact:
# the engine hands each new connection to the least-loaded worker). Loopback only; every server is stopped and every socket closed on exit.
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time


def parse_list(text):
    return [int(value) for value in text.split(',')]


def options(argv):
    if len(argv) < 2 or argv[1].startswith('-'):
        sys.exit('usage: reuseport_balance.py BUILD_DIR [--workers 2,4,8] [--connections 8,32,100,1000] [--trials 20]'
                 ' [--balance kernel|exact]')
    chosen = {'build': argv[1], 'workers': [2, 4, 8], 'connections': [8, 32, 100, 1000], 'trials': 20,
              'balance': 'kernel'}
    rest = argv[2:]
    while rest:
        if len(rest) < 2:
            sys.exit(f'reuseport_balance.py: {rest[0]} needs a value')
        name, value = rest[0], rest[1]
        if name == '--workers':
            chosen['workers'] = parse_list(value)
        elif name == '--connections':
            chosen['connections'] = parse_list(value)
        elif name == '--trials':
            chosen['trials'] = int(value)
        elif name == '--balance':
            if value not in ('kernel', 'exact'):
                sys.exit(f'reuseport_balance.py: --balance {value}: allowed kernel or exact')
            chosen['balance'] = value
        else:
            sys.exit(f'reuseport_balance.py: unknown argument {name}')
        rest = rest[2:]
    return chosen


class Server:
    """One epoll-server with JSON stats on stdout; stopped (SIGTERM, then SIGKILL) by close()."""

    def __init__(self, build, workers, balance):
        self.process = subprocess.Popen(
            [os.path.join(build, 'bin', 'epoll-server'), '--port', '0', '--bind', '127.0.0.1',
             '--maxListeners', str(workers), '--stats-format', 'json', '--balance', balance],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            found = re.search(r'listening on 127\.0\.0\.1:(\d+)', line)
            if found:
                self.port = int(found.group(1))
                return
            if not line:
                break
        self.close()
        sys.exit('reuseport_balance.py: epoll-server did not start')

    def per_worker(self, expected):
        """active_per_worker once the workers have accepted `expected` connections (10 s at most)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self.process.send_signal(signal.SIGUSR1)
            stats = json.loads(self.process.stdout.readline())
            if stats['active'] == expected:
                return stats['active_per_worker']
            time.sleep(0.01)
        sys.exit(f'reuseport_balance.py: the server never showed {expected} active connections')

    def close(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def measured(server, connections):
    sockets = []
    try:
        for _ in range(connections):
            sockets.append(socket.create_connection(('127.0.0.1', server.port), timeout=10))
        return server.per_worker(connections)
    finally:
        for client in sockets:
            client.close()
        server.per_worker(0)  # every close seen before the next trial counts


def simulated(workers, connections, rng):
    counts = [0] * workers
    for _ in range(connections):
        counts[rng.randrange(workers)] += 1
    return counts


def summary(samples, workers, connections):
    share = connections / workers
    over = [max(counts) / share for counts in samples]
    gap = [max(counts) - min(counts) for counts in samples]
    return (f'{statistics.median(over):.2f} / {p95(over):.2f}', f'{statistics.median(gap):g} / {p95(gap):g}')


def p95(values):
    ordered = sorted(values)
    return ordered[int(0.95 * (len(ordered) - 1))]


def main():
    chosen = options(sys.argv)
    rng = random.Random(1)
    print(f'--balance {chosen["balance"]}')
    print('| workers N | connections M | busiest / (M/N), measured: median / p95 | busiest - least, measured'
          ' | busiest / (M/N), uniform random model | busiest - least, model |')
    print('|---|---|---|---|---|---|')
    for workers in chosen['workers']:
        server = Server(chosen['build'], workers, chosen['balance'])
        try:
            for connections in chosen['connections']:
                real = [measured(server, connections) for _ in range(chosen['trials'])]
                model = [simulated(workers, connections, rng) for _ in range(10000)]
                print(f'| {workers} | {connections} | {" | ".join(summary(real, workers, connections))} | '
                      f'{" | ".join(summary(model, workers, connections))} |', flush=True)
        finally:
            server.close()


if __name__ == '__main__':
    main()
