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
    values = [engine[r][key] / asio[r][key] for r in engine
              if r in asio and engine[r].get(key) is not None and asio[r].get(key)]
    if not values:
        return None
    return {'min': min(values), 'median': statistics.median(values), 'max': max(values)}


def median(side, key):
    # Older raw files lack the fairness and open-loop keys; a starved connection's spread is null.
    values = [record[key] for record in side.values() if record.get(key) is not None]
    return statistics.median(values) if values else None


# The io_uring counters an epoll-server reports (run_benchmarks.sh adds them to each of its runs),
# since the server started: each run starts its own server.
URING_COUNTERS = ('recv_buffer_waits', 'completion_overflows')


def counter(side, key):
    """Median and max over the rounds of one server; None when its runs do not carry the counter."""
    values = [record[key] for record in side.values() if record.get(key) is not None]
    return {'median': statistics.median(values), 'max': max(values)} if values else None


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
        for key in ('messages_per_s', 'messages_per_server_cpu_s', 'p50_us', 'p90_us', 'p99_us', 'p999_us',
                    'server_user_share', 'server_rss_kib', 'spread_pct', 'jain_index', 'min_per_connection',
                    'max_per_connection', 'rate', 'late_sends', 'scheduled_sends', 'send_lag_p99_us',
                    'client_cpu_s'):
            row[key] = {'engine': median(engine, key), 'asio': median(asio, key), 'ratio': ratios(engine, asio, key)}
        for key in URING_COUNTERS:
            row[key] = {'engine': counter(engine, key), 'asio': counter(asio, key)}
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
    print_fairness_table([row for row in summary if 'idle_bytes_per_connection' not in row], short)
    print_uring_table([row for row in summary if any(row.get(key, {}).get(server) for key in URING_COUNTERS
                                                     for server in ('engine', 'asio'))], short)
    print_open_loop_table([row for row in summary if row.get('rate', {}).get('engine')], short)
    sources = {row.get('syscall_source') for row in summary if row.get('syscall_source')}
    print('system calls counted by: ' + (', '.join(sorted(sources)) or 'nothing (perf unavailable)'))
    print_idle_table([row for row in summary if 'idle_bytes_per_connection' in row], peer)


def print_fairness_table(rows, peer):
    print()
    print('latency and per-connection service, the same runs (medians): spread = busiest / least served connection'
          ' - 1; Jain = (sum x)^2 / (n sum x^2); round trips of the least / the busiest connection in the window')
    header = ('scenario', 'p50us eng', 'p50us ' + peer, 'p90us eng', 'p90us ' + peer, 'p99.9us eng',
              'p99.9us ' + peer, 'p99.9 ratio', 'spread % eng', 'spread % ' + peer, 'Jain eng', 'Jain ' + peer,
              'least/busiest eng', 'least/busiest ' + peer)
    print('| ' + ' | '.join(header) + ' |')
    print('|' + '---|' * len(header))
    for row in rows:
        def served(server):
            least, busiest = row['min_per_connection'][server], row['max_per_connection'][server]
            return '-' if least is None or busiest is None else '%.0f/%.0f' % (least, busiest)
        cells = (row['scenario'], fmt(row['p50_us']['engine'], '%.1f'), fmt(row['p50_us']['asio'], '%.1f'),
                 fmt(row['p90_us']['engine'], '%.1f'), fmt(row['p90_us']['asio'], '%.1f'),
                 fmt(row['p999_us']['engine'], '%.1f'), fmt(row['p999_us']['asio'], '%.1f'),
                 fmt_ratio(row['p999_us']['ratio']),
                 fmt(row['spread_pct']['engine'], '%.2f'), fmt(row['spread_pct']['asio'], '%.2f'),
                 fmt(row['jain_index']['engine'], '%.5f'), fmt(row['jain_index']['asio'], '%.5f'),
                 served('engine'), served('asio'))
        print('| ' + ' | '.join(cells) + ' |')


def print_uring_table(rows, peer):
    """Per scenario, what each epoll-server's runs counted (a server that reports none shows -)."""
    if not rows:
        return
    print()
    print('io_uring counters of each server run, since its start (warm-up included), median (max) over the'
          ' rounds; 0 under the epoll backend: recv buffer waits = recvs that found every provided buffer taken,'
          ' CQ overflows = loop passes whose completions overflowed the completion queue')
    header = ('scenario', 'recv buffer waits eng', 'recv buffer waits ' + peer, 'CQ overflows eng',
              'CQ overflows ' + peer)

    def cell(value):
        return '-' if value is None else '%.0f (%.0f)' % (value['median'], value['max'])
    print('| ' + ' | '.join(header) + ' |')
    print('|' + '---|' * len(header))
    for row in rows:
        cells = (row['scenario'], cell(row['recv_buffer_waits']['engine']), cell(row['recv_buffer_waits']['asio']),
                 cell(row['completion_overflows']['engine']), cell(row['completion_overflows']['asio']))
        print('| ' + ' | '.join(cells) + ' |')


def print_open_loop_table(rows, peer):
    if not rows:
        return
    print()
    print('open loop: each server at a fixed rate, a share of its own closed-loop peak; latency from the intended'
          ' send time; gen lag = the generator\'s own delay from intended time to send() (p99), gen CPU = its CPU-s'
          ' in the window')
    header = ('scenario', 'rate eng', 'rate ' + peer, 'p50us eng', 'p50us ' + peer, 'p99us eng', 'p99us ' + peer,
              'p99 ratio', 'p99.9us eng', 'p99.9us ' + peer, 'late % eng', 'late % ' + peer,
              'gen lag us eng', 'gen lag us ' + peer, 'gen CPU eng', 'gen CPU ' + peer)
    print('| ' + ' | '.join(header) + ' |')
    print('|' + '---|' * len(header))
    for row in rows:
        def late(server):
            due = row['scheduled_sends'][server]
            return None if not due else 100.0 * row['late_sends'][server] / due
        cells = (row['scenario'], fmt(row['rate']['engine'], '%.0f'), fmt(row['rate']['asio'], '%.0f'),
                 fmt(row['p50_us']['engine'], '%.1f'), fmt(row['p50_us']['asio'], '%.1f'),
                 fmt(row['p99_us']['engine'], '%.1f'), fmt(row['p99_us']['asio'], '%.1f'),
                 fmt_ratio(row['p99_us']['ratio']),
                 fmt(row['p999_us']['engine'], '%.1f'), fmt(row['p999_us']['asio'], '%.1f'),
                 fmt(late('engine'), '%.2f'), fmt(late('asio'), '%.2f'),
                 fmt(row['send_lag_p99_us']['engine'], '%.1f'), fmt(row['send_lag_p99_us']['asio'], '%.1f'),
                 fmt(row['client_cpu_s']['engine'], '%.2f'), fmt(row['client_cpu_s']['asio'], '%.2f'))
        print('| ' + ' | '.join(cells) + ' |')


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
