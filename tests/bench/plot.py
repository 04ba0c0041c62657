#!/usr/bin/env python3
# plot.py RAW.jsonl OUT.svg — draws throughput and p99 against connection count for the engine and
# the Asio peer (64 B ping-pong runs of run_benchmarks.sh), as a dependency-free SVG.
import json
import math
import statistics
import sys
from collections import defaultdict

WIDTH, HEIGHT = 940, 370
PANEL_WIDTH, PANEL_HEIGHT = 340, 230
MARGIN_LEFT, MARGIN_TOP, PANEL_GAP = 90, 50, 130
DASHES = {'engine': '', 'asio': ' stroke-dasharray="6 4"'}
COLORS = {'engine': '#1f6fb4', 'asio': '#d9661f'}
LABELS = {'engine': 'epoll-echo engine', 'asio': 'Boost.Asio peer'}


def load_points(path):
    """(server, connections) -> medians of messages per server CPU-second and of p99, over rounds."""
    samples = defaultdict(lambda: {'rate': [], 'p99': []})
    with open(path) as raw:
        for line in raw:
            if not line.startswith('{'):
                continue
            record = json.loads(line)
            _, server, round_ = record['label'].split('/')
            if round_ == 'syscalls' or record.get('mode') != 'echo':
                continue
            # Open-loop runs (a fixed rate below the peak) would pull the closed-loop medians down.
            if record.get('size') != 64 or record.get('depth') != 1 or record.get('rate'):
                continue
            key = (server, record['connections'])
            samples[key]['rate'].append(record['messages_per_server_cpu_s'])
            samples[key]['p99'].append(record['p99_us'])
    return {key: {name: statistics.median(values) for name, values in value.items()} for key, value in samples.items()}


def nice_ceiling(value):
    """The smallest round step x 10^n at or above value, so that axis labels stay round."""
    if value <= 0:
        return 1
    exponent = math.floor(math.log10(value))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * 10 ** exponent >= value:
            return step * 10 ** exponent
    return 10 ** (exponent + 1)


def y_scale(series, logarithmic):
    """Tick values and a value -> [0, 1] mapping: linear from 0, or decades for wide ranges."""
    values = [v for points in series.values() for _, v in points if v > 0] or [1]
    if not logarithmic:
        top = nice_ceiling(max(values) * 1.1)
        return [top * i / 4 for i in range(5)], lambda v: v / top
    low, high = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    high = max(high, low + 1)
    return [10 ** e for e in range(low, high + 1)], lambda v: (math.log10(max(v, 1e-9)) - low) / (high - low)


def panel(x0, title, unit, series, connections, logarithmic=False):
    """One chart: log-scale connection counts on x, the metric on y, a polyline per server."""
    ticks, fraction = y_scale(series, logarithmic)
    x_min, x_max = math.log10(min(connections)), math.log10(max(connections))
    span = (x_max - x_min) or 1

    def x_of(count):
        return x0 + (math.log10(count) - x_min) / span * PANEL_WIDTH

    def y_of(value):
        return MARGIN_TOP + PANEL_HEIGHT - fraction(value) * PANEL_HEIGHT

    parts = [f'<text x="{x0 + PANEL_WIDTH / 2}" y="{MARGIN_TOP - 18}" text-anchor="middle" '
             f'font-weight="bold">{title}</text>',
             f'<rect x="{x0}" y="{MARGIN_TOP}" width="{PANEL_WIDTH}" height="{PANEL_HEIGHT}" fill="none" stroke="#999"/>']
    for value in ticks:
        y = y_of(value)
        parts.append(f'<line x1="{x0}" x2="{x0 + PANEL_WIDTH}" y1="{y}" y2="{y}" stroke="#eee"/>')
        parts.append(f'<text x="{x0 - 6}" y="{y + 4}" text-anchor="end" font-size="11">{value:,.0f}</text>')
    for count in connections:
        parts.append(f'<text x="{x_of(count)}" y="{MARGIN_TOP + PANEL_HEIGHT + 16}" text-anchor="middle" '
                     f'font-size="11">{count:,}</text>')
    parts.append(f'<text x="{x0 + PANEL_WIDTH / 2}" y="{MARGIN_TOP + PANEL_HEIGHT + 34}" text-anchor="middle" '
                 f'font-size="12">connections (64 B ping-pong)</text>')
    parts.append(f'<text x="{x0 - 70}" y="{MARGIN_TOP + PANEL_HEIGHT / 2}" text-anchor="middle" font-size="12" '
                 f'transform="rotate(-90 {x0 - 70} {MARGIN_TOP + PANEL_HEIGHT / 2})">{unit}</text>')
    # The peer first and dashed, so that where the two coincide both stay visible.
    for server in sorted(series, key=lambda name: name != 'asio'):
        points = series[server]
        path = ' '.join(f'{x_of(c):.1f},{y_of(v):.1f}' for c, v in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{COLORS[server]}" stroke-width="2"'
                     f'{DASHES[server]}/>')
        for c, v in points:
            parts.append(f'<circle cx="{x_of(c):.1f}" cy="{y_of(v):.1f}" r="3.5" fill="{COLORS[server]}"/>')
    return parts


def render(points):
    connections = sorted({count for _, count in points})
    if len(connections) < 2:
        raise SystemExit('plot.py: need 64 B ping-pong runs at two connection counts or more')
    servers = [s for s in ('engine', 'asio') if any(key[0] == s for key in points)]
    rate = {s: [(c, points[(s, c)]['rate']) for c in connections if (s, c) in points] for s in servers}
    p99 = {s: [(c, points[(s, c)]['p99']) for c in connections if (s, c) in points] for s in servers}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'font-family="sans-serif" font-size="12">', f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>']
    parts += panel(MARGIN_LEFT, 'Messages per server CPU-second (higher is better)', 'messages / CPU-s', rate,
                   connections)
    parts += panel(MARGIN_LEFT + PANEL_WIDTH + PANEL_GAP, 'p99 latency (lower is better)', 'microseconds (log)', p99,
                   connections, logarithmic=True)
    for i, server in enumerate(servers):
        x = MARGIN_LEFT + i * 200
        parts.append(f'<line x1="{x}" x2="{x + 24}" y1="{HEIGHT - 20}" y2="{HEIGHT - 20}" stroke="{COLORS[server]}" '
                     f'stroke-width="2"{DASHES[server]}/>')
        parts.append(f'<text x="{x + 30}" y="{HEIGHT - 16}">{LABELS[server]}</text>')
    parts.append('</svg>')
    return '\n'.join(parts) + '\n'


def main():
    if len(sys.argv) != 3:
        raise SystemExit('usage: plot.py RAW.jsonl OUT.svg')
    svg = render(load_points(sys.argv[1]))
    with open(sys.argv[2], 'w') as out:
        out.write(svg)


if __name__ == '__main__':
    main()
