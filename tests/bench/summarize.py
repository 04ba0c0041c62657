#!/usr/bin/env python3
# summarize.py RAW.jsonl OUT.json [PEER] — turns run_benchmarks.sh's raw runs into the comparison
# table: per scenario, medians and per-round ratios (engine / Asio) with their min/median/max. PEER
# names the second server in the headings when it is not the Asio peer (run_benchmarks.sh
# --peer-engine); the data keeps its key, "asio".
import json
import statistics
import sys
from collections import defaultdict


def load(path):
    runs = defaultdict(lambda: defaultdict(dict))  # scenario -> server -> round -> record
    syscalls = defaultdict(dict)                   # scenario -> server -> record
    order = []
    with open(path) as raw:
        for line in raw:
            line = line.strip()
            if not line.startswith('{'):
                continue
            record = json.loads(line)
            scenario, server, round_ = record['label'].split('/')
            if scenario not in order:
                order.append(scenario)
            if round_ == 'syscalls':
                syscalls[scenario][server] = record
            else:
                runs[scenario][server][round_] = record
    return order, runs, syscalls


def ratios(engine, asio, key):
    values = [engine[r][key] / asio[r][key] for r in engine if r in asio and asio[r][key]]
    if not values:
        return None
    return {'min': min(values), 'median': statistics.median(values), 'max': max(values)}


def median(side, key):
    values = [record[key] for record in side.values()]
    return statistics.median(values) if values else None


def per_message(record):
    if not record or not record.get('syscalls_per_s') or not record.get('messages_per_s'):
        return None
    return record['syscalls_per_s'] / record['messages_per_s']


def summarize(order, runs, syscalls):
    summary = []
    for scenario in order:
        engine, asio = runs[scenario]['engine'], runs[scenario]['asio']
        row = {'scenario': scenario, 'rounds': len(engine)}
        if any('idle_bytes_per_connection' in r for r in engine.values()):
            # Idle mode measures memory, not echo throughput: its rate columns would mislead.
            key = 'idle_bytes_per_connection'
            row['idle_bytes_per_connection'] = {'engine': median(engine, key), 'asio': median(asio, key),
                                                'ratio': ratios(engine, asio, key)}
            row['errors'] = sum(r['errors'] + r['mismatches'] for side in (engine, asio) for r in side.values())
            summary.append(row)
            continue
        for key in ('messages_per_s', 'messages_per_server_cpu_s', 'p99_us', 'server_user_share', 'server_rss_kib'):
            row[key] = {'engine': median(engine, key), 'asio': median(asio, key), 'ratio': ratios(engine, asio, key)}
        row['syscalls_per_message'] = {s: per_message(syscalls[scenario].get(s)) for s in ('engine', 'asio')}
        row['syscall_source'] = syscalls[scenario].get('engine', {}).get('source')
        row['errors'] = sum(r['errors'] + r['mismatches'] for side in (engine, asio) for r in side.values())
        summary.append(row)
    return summary


def fmt_ratio(ratio):
    return '-' if ratio is None else '%.2f/%.2f/%.2f' % (ratio['min'], ratio['median'], ratio['max'])


def fmt(value, pattern):
    return '-' if value is None else pattern % value


def print_table(summary, peer):
    print('ratios are engine / %s per round: min/median/max; p99 ratio < 1 means the engine is faster' % peer)
    short = peer.lower()
    header = ('scenario', 'msgs/s eng', 'msgs/s ' + short, 'ratio', 'msg/CPU-s eng', 'msg/CPU-s ' + short, 'ratio',
              'p99us eng', 'p99us ' + short, 'ratio', 'sys/msg eng', 'sys/msg ' + short, 'user% eng',
              'user% ' + short, 'err')
    print('| ' + ' | '.join(header) + ' |')
    print('|' + '---|' * len(header))
    for row in (row for row in summary if 'idle_bytes_per_connection' not in row):
        cells = (row['scenario'],
                 fmt(row['messages_per_s']['engine'], '%.0f'), fmt(row['messages_per_s']['asio'], '%.0f'),
                 fmt_ratio(row['messages_per_s']['ratio']),
                 fmt(row['messages_per_server_cpu_s']['engine'], '%.0f'),
                 fmt(row['messages_per_server_cpu_s']['asio'], '%.0f'),
                 fmt_ratio(row['messages_per_server_cpu_s']['ratio']),
                 fmt(row['p99_us']['engine'], '%.1f'), fmt(row['p99_us']['asio'], '%.1f'),
                 fmt_ratio(row['p99_us']['ratio']),
                 fmt(row['syscalls_per_message']['engine'], '%.2f'), fmt(row['syscalls_per_message']['asio'], '%.2f'),
                 fmt(row['server_user_share']['engine'] and 100 * row['server_user_share']['engine'], '%.0f'),
                 fmt(row['server_user_share']['asio'] and 100 * row['server_user_share']['asio'], '%.0f'),
                 str(row['errors']))
        print('| ' + ' | '.join(cells) + ' |')
    sources = {row.get('syscall_source') for row in summary if row.get('syscall_source')}
    print('system calls counted by: ' + (', '.join(sorted(sources)) or 'nothing (perf unavailable)'))
    print_idle_table([row for row in summary if 'idle_bytes_per_connection' in row], peer)


def print_idle_table(rows, peer):
    if not rows:
        return
    print()
    print('| scenario | server RSS per idle connection, engine (bytes) | %s (bytes) | ratio | err |' % peer)
    print('|---|---|---|---|---|')
    for row in rows:
        idle = row['idle_bytes_per_connection']
        print('| %s | %s | %s | %s | %d |' % (row['scenario'], fmt(idle['engine'], '%.0f'), fmt(idle['asio'], '%.0f'),
                                             fmt_ratio(idle['ratio']), row['errors']))


def main():
    order, runs, syscalls = load(sys.argv[1])
    summary = summarize(order, runs, syscalls)
    with open(sys.argv[2], 'w') as out:
        json.dump(summary, out, indent=1)
    print_table(summary, sys.argv[3] if len(sys.argv) > 3 else 'Asio')


if __name__ == '__main__':
    main()
