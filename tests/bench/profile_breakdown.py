#!/usr/bin/env python3
"""profile_breakdown.py — where one CPU's time went, from `perf script` output of `perf record -g -C CPU`.

    perf script -i perf.data -F comm,tid,time,ip,sym,dso | profile_breakdown.py [--messages N --seconds S]

Each sample is put in one bucket by its call chain (first matching rule below, leaf frame first for
user space, then the kernel operation the chain is inside), and counted a second time, across
buckets, when its leaf frame copies bytes or its chain wakes a task. With --messages N and
--seconds S (messages echoed in the S seconds perf recorded) each bucket is also given in
nanoseconds of this CPU per message: perf -C samples the CPU at a fixed rate, idle or not, so each
sample stands for S / (all samples) seconds.
"""
import argparse
import collections
import os
import sys

IDLE = {"do_idle", "cpuidle_enter", "cpuidle_enter_state", "default_idle_call", "cpu_startup_entry",
        "default_idle", "acpi_idle_enter", "poll_idle", "intel_idle", "pv_native_safe_halt"}
SCHEDULER = {"schedule", "__schedule", "schedule_hrtimeout_range", "schedule_hrtimeout_range_clock",
             "schedule_timeout", "preempt_schedule_common", "finish_task_switch", "finish_task_switch.isra.0",
             "pick_next_task_fair", "__pick_next_task", "dequeue_task_fair", "context_switch"}
LOOPBACK_RX = {"__netif_receive_skb", "__netif_receive_skb_one_core", "process_backlog", "net_rx_action",
               "ip_rcv", "ip_local_deliver", "ip_local_deliver_finish", "tcp_v4_rcv", "tcp_v6_rcv",
               "do_softirq", "__do_softirq", "handle_softirqs", "__local_bh_enable_ip"}
TCP_SEND = {"tcp_sendmsg", "tcp_sendmsg_locked", "__sys_sendto", "__sock_sendmsg", "sock_sendmsg"}
TCP_RECV = {"tcp_recvmsg", "tcp_recvmsg_locked", "__sys_recvfrom", "sock_recvmsg", "inet_recvmsg"}
URING_SUBMIT = {"io_submit_sqes", "io_issue_sqe", "io_queue_sqe", "io_init_req", "io_submit_sqe"}
URING_TASKWORK = {"__io_run_local_work", "io_run_local_work", "io_run_task_work", "tctx_task_work",
                  "io_handle_tw_list", "io_req_task_complete", "io_poll_task_func", "io_apoll_task_func",
                  "io_req_task_submit", "__io_submit_flush_completions", "io_submit_flush_completions",
                  "__io_run_local_work_loop", "io_req_task_queue"}
URING_WAIT = {"io_cqring_wait", "io_cqring_wait_schedule"}
EPOLL = {"do_epoll_wait", "ep_poll", "ep_send_events", "ep_item_poll", "__x64_sys_epoll_wait",
         "do_epoll_pwait", "__x64_sys_epoll_pwait"}
SYSCALL_BOUNDARY = {"entry_SYSCALL_64", "entry_SYSCALL_64_after_hwframe", "do_syscall_64",
                    "syscall_exit_to_user_mode", "syscall_exit_to_user_mode_prepare", "entry_SYSRETQ_unsafe_stack",
                    "exit_to_user_mode_prepare", "syscall_return_via_sysret", "x64_sys_call"}
COPY_LEAVES = {"copy_user_enhanced_fast_string", "copy_user_generic_unrolled", "rep_movs_alternative",
               "_copy_to_iter", "_copy_from_iter", "copyout", "copyin", "memcpy", "__memcpy", "memcpy_orig",
               "memmove", "__memmove_avx_unaligned_erms", "__memcpy_avx_unaligned_erms", "skb_copy_datagram_iter",
               "__skb_datagram_iter", "simple_copy_to_iter", "memcpy_erms", "copy_page", "clear_page_erms"}
WAKEUP = {"try_to_wake_up", "__wake_up_common", "__wake_up_sync_key", "__wake_up", "sock_def_readable",
          "ep_poll_callback", "io_poll_wake", "io_req_local_work_add", "__io_req_task_work_add",
          "io_req_normal_work_add", "wake_up_q", "default_wake_function", "autoremove_wake_function",
          "__wake_up_common_lock", "io_wake_function", "ttwu_do_activate"}


def base(symbol):
    return symbol.split("+", 1)[0]


def kernel(dso):
    return dso in ("[kernel.kallsyms]", "[unknown]") or dso.startswith("[kernel")


def classify(comm, frames):
    """frames: [(symbol, dso)], leaf first. Returns the bucket name."""
    symbols = {base(s) for s, _ in frames}
    if comm.startswith("swapper") or symbols & IDLE:
        return "idle"
    leaf_symbol, leaf_dso = frames[0] if frames else ("[unknown]", "[unknown]")
    if not kernel(leaf_dso):
        if leaf_dso.startswith("/memfd:"):
            return "user: libepoll_echo.so (memfd copy)"
        return "user: " + os.path.basename(leaf_dso)
    if symbols & SCHEDULER:
        return "scheduler (switch, sleep)"
    if symbols & TCP_SEND:
        return "TCP send: loopback delivery to the peer" if symbols & LOOPBACK_RX else "TCP send"
    if symbols & TCP_RECV:
        return "TCP recv"
    if symbols & LOOPBACK_RX:
        return "softirq receive"
    if symbols & URING_WAIT:
        return "io_uring wait"
    if symbols & URING_TASKWORK:
        return "io_uring task work, completions"
    if symbols & URING_SUBMIT:
        return "io_uring submission"
    if any(base(s).startswith("io_") for s, _ in frames):
        return "io_uring other"
    if symbols & EPOLL:
        return "epoll_wait"
    if symbols & SYSCALL_BOUNDARY:
        return "syscall entry, exit"
    return "other kernel"


def samples(stream):
    comm, frames = None, []
    for line in stream:
        line = line.rstrip("\n")
        if not line:
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
        elif line[0] in " \t":
            parts = line.strip().split(None, 1)
            if len(parts) < 2:
                continue
            # A library loaded from a deleted file (the host's sealed memfd copy of the plugin)
            # ends in "(/memfd:... (deleted))".
            rest = parts[1].replace(" (deleted))", ")")
            symbol, _, dso = rest.rpartition(" (")
            frames.append((symbol or "[unknown]", dso.rstrip(")")))
        else:
            comm = line.split()[0]
    if comm is not None:
        yield comm, frames


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=float, default=0, help="messages echoed while perf recorded")
    parser.add_argument("--seconds", type=float, default=0, help="how long perf recorded")
    options = parser.parse_args()
    buckets = collections.Counter()
    comms = collections.Counter()
    cross = collections.Counter()
    total = 0
    for comm, frames in samples(sys.stdin):
        total += 1
        comms[comm] += 1
        bucket = classify(comm, frames)
        buckets[bucket] += 1
        if bucket == "idle":
            continue
        if frames and base(frames[0][0]) in COPY_LEAVES:
            cross["copies (leaf copies bytes)"] += 1
        if {base(s) for s, _ in frames} & WAKEUP:
            cross["wake-ups (chain wakes a task)"] += 1
    if total == 0:
        sys.exit("profile_breakdown.py: no samples on stdin")
    busy = total - buckets["idle"]
    per_message = options.messages > 0 and options.seconds > 0
    ns_per_sample = options.seconds * 1e9 / total
    header = f"{'bucket':44} {'% of CPU':>8} {'% busy':>7}" + (f" {'ns/msg':>7}" if per_message else "")
    print(f"{total} samples; busy {100.0 * busy / total:.1f} %")
    print(header)

    def row(name, count, in_busy=True):
        text = f"{name:44} {100.0 * count / total:8.1f} "
        text += f"{100.0 * count / busy:7.1f}" if in_busy and busy else f"{'':7}"
        if per_message:
            text += f" {count * ns_per_sample / options.messages:7.0f}"
        return text

    for name, count in buckets.most_common():
        print(row(name, count, name != "idle"))
    print(row("busy (all but idle)", busy))
    print("across buckets:")
    for name, count in cross.most_common():
        print(row("  " + name, count))
    print("by command:")
    for name, count in comms.most_common(6):
        print(row("  " + name, count, False))


if __name__ == "__main__":
    main()
