#!/usr/bin/env python3
# upgrade_pauses.py KIND TIMELINE MARKS — the pause of each replacement upgrade_soak.sh made: the
# longest round trip that completed between its signal and the log line that it was done. TIMELINE
# is epoll-echo-bench --timeline's output ("<ms since the epoch> <longest round trip in us>" per
# millisecond), MARKS one "<signal ms> <done ms>" line per replacement. Prints one line per
# replacement, then the p50 / p99 / max of those pauses (nearest rank: p99 of 100 is the 99th).
import bisect
import math
import sys


def read_pairs(path):
    with open(path) as lines:
        return [tuple(int(field) for field in line.split()) for line in lines if line.strip()]


def percentile(sorted_values, share):
    return sorted_values[max(0, math.ceil(share * len(sorted_values)) - 1)]


def main(kind, timeline_path, marks_path):
    timeline = sorted(read_pairs(timeline_path))
    times = [at for at, _ in timeline]
    pauses = []
    for number, (start, end) in enumerate(read_pairs(marks_path), 1):
        during = timeline[bisect.bisect_left(times, start):bisect.bisect_right(times, end)]
        longest = max((micros for _, micros in during), default=0)
        pauses.append(longest / 1000.0)
        print(f'{kind} {number}: longest round trip {pauses[-1]:.2f} ms')
    if not pauses:
        sys.exit(f'upgrade_pauses.py: no replacement in {marks_path}')
    ordered = sorted(pauses)
    print(f'{kind} pauses over {len(pauses)} replacements: p50 {percentile(ordered, 0.5):.2f} ms, '
          f'p99 {percentile(ordered, 0.99):.2f} ms, max {ordered[-1]:.2f} ms')


if __name__ == '__main__':
    if len(sys.argv) != 4:
        sys.exit('usage: upgrade_pauses.py KIND TIMELINE MARKS')
    main(*sys.argv[1:])
