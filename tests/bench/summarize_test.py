#!/usr/bin/env python3
# summarize_test.py — the report of run_benchmarks.sh's raw runs (summarize.py) prints the io_uring
# counters that an epoll-server's runs carry, and no counter table when no run carries them.
import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import summarize  # noqa: E402


def run(label, **fields):
    record = {'label': label, 'messages_per_s': 1000.0, 'messages_per_server_cpu_s': 2000.0, 'p99_us': 50.0,
              'errors': 0, 'mismatches': 0}
    record.update(fields)
    return record


def report(records):
    with tempfile.TemporaryDirectory() as directory:
        raw = os.path.join(directory, 'raw.jsonl')
        with open(raw, 'w') as out:
            out.writelines(json.dumps(record) + '\n' for record in records)
        summary = summarize.summarize(*summarize.load(raw))
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        summarize.print_table(summary, 'Asio')
    return summary, text.getvalue()


class SummarizeTest(unittest.TestCase):
    def test_prints_each_servers_counters_median_and_max(self):
        summary, text = report([
            run('pingpong_1000conn_64B/engine/1', recv_buffer_waits=10, completion_overflows=0),
            run('pingpong_1000conn_64B/asio/1'),
            run('pingpong_1000conn_64B/engine/2', recv_buffer_waits=30, completion_overflows=2),
            run('pingpong_1000conn_64B/asio/2'),
            run('pingpong_1000conn_64B/engine/3', recv_buffer_waits=20, completion_overflows=1),
            run('pingpong_1000conn_64B/asio/3'),
        ])
        self.assertEqual(summary[0]['recv_buffer_waits']['engine'], {'median': 20, 'max': 30})
        self.assertIsNone(summary[0]['recv_buffer_waits']['asio'])
        self.assertIn('| pingpong_1000conn_64B | 20 (30) | - | 1 (2) | - |', text)

    def test_an_engine_peer_shows_its_own_counters(self):
        _, text = report([
            run('depth8_100conn_64B/engine/1', recv_buffer_waits=0, completion_overflows=0),
            run('depth8_100conn_64B/asio/1', recv_buffer_waits=5, completion_overflows=0),
        ])
        self.assertIn('| depth8_100conn_64B | 0 (0) | 5 (5) | 0 (0) | 0 (0) |', text)

    def test_runs_without_counters_print_no_counter_table(self):
        _, text = report([run('pingpong_100conn_64B/engine/1'), run('pingpong_100conn_64B/asio/1')])
        self.assertNotIn('recv buffer waits', text)


if __name__ == '__main__':
    unittest.main()
