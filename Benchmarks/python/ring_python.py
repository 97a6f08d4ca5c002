#!/usr/bin/env python3
"""Ring latency and throughput between two Python processes, for `conveyor-bench ring`.

The `ring-python` rows: the same measurements as the C `ring` rows, made through the
`conveyor` package's Python API from numpy code, between this process (A) and one forked
child (B), over memfd rings.

  latency     ping-pong over two 2-slot rings: A loans a slot on ring 1 and writes the
              payload's first 8 bytes (`with prod.loan() as out: out[0] = i`), B receives
              the frame (`cons.receive()`), reads those 8 bytes, releases the slot by
              dropping its view, loans a slot on ring 2, writes them there and commits; A
              receives and drops the view. time.perf_counter_ns around each round trip;
              one-way latency = round trip / 2 (median and 99th percentile, nearest rank).
  throughput  a one-way stream through a 4-slot ring: B loans and commits frames for
              --stream-seconds, then closes; A receives and drops them, counting. Frames
              per second from A's first frame to its last; futex sleeps and wakes from the
              ring's shared counters.

Frames are float64 vectors of payload / 8 elements (payload bytes exactly); like the C
rows, only the first 8 bytes are written and read: the frame is built in place, nothing
is copied. Each measurement prints one JSON object on a line of stdout, with the keys of
`conveyor-bench ring --json` (transport "ring-python", scope "processes").

Usage: ring_python.py --payload BYTES [--modes spin:4294967295,block:0,block:2048]
                      [--round-trips N] [--warmup N] [--stream-seconds S] [--profile] [--pin]
--profile adds, per mode, one object {"profile": ...} with the median cost in us of each
piece of a hop (loan, enter, write, commit, receive, read, release) on both sides, and
of one clock read pair (included in each piece); the latency is then measured with the
extra clock reads in the loop.
Exit status 3 (and a message on stderr) when the conveyor package is not importable.
"""
import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time

import numpy as np

try:
    import conveyor
except ImportError as error:  # reported by the caller as the reason the rows are missing
    conveyor = None
    IMPORT_ERROR = error

SPIN_FOREVER = 4294967295  # UInt32.max: the waiting side never sleeps
ns = time.perf_counter_ns


def percentile(samples, p):
    """Nearest-rank percentile, as conveyor-bench's Swift `percentile`."""
    ordered = sorted(samples)
    rank = int(math.floor(p / 100 * (len(ordered) - 1) + 0.5))
    return ordered[min(max(rank, 0), len(ordered) - 1)]


def make_ring(slots, payload, spin):
    return conveyor.Ring(slots=slots, shape=(payload // 8,), dtype=np.float64, spin=spin)


# ---- B: the child -------------------------------------------------------------------
def pin(cpu):
    """Keeps this process on one CPU (--pin), so A and B never share one."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def child(ping, pong, stream, iters, stream_seconds, profile, report, cpu):
    pin(cpu)
    with ping.consumer() as cons, pong.producer() as prod:
        if profile:
            report.send(pong_profiled(cons, prod, iters))
        else:
            for _ in range(iters):
                x = cons.receive()
                value = x[0]
                del x  # releases the slot
                with prod.loan() as out:
                    out[0] = value
    with stream.producer() as prod:
        deadline = ns() + int(stream_seconds * 1e9)
        i = 0
        while True:
            with prod.loan() as out:
                out[0] = i
            i += 1
            if i % 64 == 0 and ns() > deadline:
                break
    # The clean `with` exit closed the stream: A's loop ends at end of stream.


def pong_profiled(cons, prod, iters):
    pieces = {k: [] for k in ("receive", "read", "release", "loan", "enter", "write", "commit")}
    for _ in range(iters):
        t0 = ns()
        x = cons.receive()
        t1 = ns()
        value = x[0]
        t2 = ns()
        del x
        t3 = ns()
        loan = prod.loan()
        t4 = ns()
        out = loan.__enter__()
        t5 = ns()
        out[0] = value
        t6 = ns()
        loan.__exit__(None, None, None)
        t7 = ns()
        for key, dt in zip(pieces, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6)):
            pieces[key].append(dt)
    return pieces


# ---- A: this process ------------------------------------------------------------------
def ping_pong(prod, cons, iters, warmup):
    samples = []
    for i in range(warmup + iters):
        start = ns()
        with prod.loan() as out:
            out[0] = i
        x = cons.receive()
        del x
        if i >= warmup:
            samples.append(ns() - start)
    return samples


def ping_profiled(prod, cons, iters, warmup):
    pieces = {k: [] for k in ("loan", "enter", "write", "commit", "receive", "read", "release", "round_trip")}
    for i in range(warmup + iters):
        t0 = ns()
        loan = prod.loan()
        t1 = ns()
        out = loan.__enter__()
        t2 = ns()
        out[0] = i
        t3 = ns()
        loan.__exit__(None, None, None)
        t4 = ns()
        x = cons.receive()
        t5 = ns()
        value = x[0]
        t6 = ns()
        del x
        t7 = ns()
        if i >= warmup:
            for key, dt in zip(pieces, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6, t7 - t0)):
                pieces[key].append(dt)
    assert value == i
    return pieces


def consume_stream(cons):
    x = cons.receive()
    first = ns()
    del x
    count = 1
    for x in cons:
        count += 1
        del x  # released at once, as the C consumer does
    last = ns()
    return count, last - first


def measure(payload, mode, spin, iters, warmup, stream_seconds, profile, cpus):
    ping, pong, stream = make_ring(2, payload, spin), make_ring(2, payload, spin), make_ring(4, payload, spin)
    context = mp.get_context("fork")
    report, report_child = context.Pipe(duplex=False) if profile else (None, None)
    b = context.Process(target=child, args=(ping, pong, stream, warmup + iters, stream_seconds, profile,
                                            report_child, cpus[1] if cpus else None))
    b.start()
    pin(cpus[0] if cpus else None)
    profile_row = None
    try:
        with ping.producer() as prod, pong.consumer() as cons:
            if profile:
                mine = ping_profiled(prod, cons, iters, warmup)
                theirs = report.recv()
                samples = mine.pop("round_trip")
                profile_row = {"profile": {"mode": mode, "spin_budget": spin, "payload_bytes": payload,
                                           "clock_us": clock_cost(), "one_way_p50_us": percentile(samples, 50) / 2e3,
                                           "ping_us": medians(mine), "pong_us": medians(theirs, skip=warmup)}}
            else:
                samples = ping_pong(prod, cons, iters, warmup)
        with stream.consumer() as cons:
            frames, elapsed = consume_stream(cons)
    finally:
        b.join()
    if b.exitcode != 0:
        raise SystemExit(f"ring_python: the child process failed (exit code {b.exitcode})")
    stats = stream.stats()
    for ring in (ping, pong, stream):
        ring.close()
    row = {"transport": "ring-python", "scope": "processes", "mode": mode, "spin_budget": spin,
           "payload_bytes": payload,
           "p50_us": percentile(samples, 50) / 2e3, "p99_us": percentile(samples, 99) / 2e3,
           "round_trips": len(samples),
           "frames_per_s": (frames - 1) / (elapsed / 1e9) if elapsed > 0 else 0.0, "frames": frames,
           "futex_waits": stats["producer_waits"] + stats["consumer_waits"],
           "futex_wakes": stats["producer_wakes"] + stats["consumer_wakes"]}
    return row, profile_row


def clock_cost():
    """Median of two back-to-back perf_counter_ns reads, in us: included in every piece."""
    samples = []
    for _ in range(10000):
        t0 = ns()
        samples.append(ns() - t0)
    return percentile(samples, 50) / 1e3


def medians(pieces, skip=0):
    return {key: percentile(values[skip:], 50) / 1e3 for key, values in pieces.items()}


def parse_modes(text):
    modes = []
    for item in text.split(","):
        mode, _, spin = item.partition(":")
        if mode not in ("spin", "block") or not spin.isdigit() or int(spin) > SPIN_FOREVER:
            raise argparse.ArgumentTypeError(f"bad mode {item!r}: want spin:N or block:N, N in 0...{SPIN_FOREVER}")
        modes.append((mode, int(spin)))
    return modes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payload", type=int, required=True, help="frame bytes, a multiple of 8")
    parser.add_argument("--modes", type=parse_modes, default=parse_modes(f"spin:{SPIN_FOREVER},block:0,block:2048"),
                        help="comma-separated mode:spin pairs (default: spin:4294967295,block:0,block:2048)")
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200, help="untimed round trips first")
    parser.add_argument("--stream-seconds", type=float, default=0.5)
    parser.add_argument("--profile", action="store_true", help="also print each piece's median cost")
    parser.add_argument("--pin", action="store_true",
                        help="run A and B on two different CPUs (default: wherever the kernel puts them, "
                             "as the C rows do)")
    args = parser.parse_args()
    if args.payload < 8 or args.payload % 8 or args.round_trips <= 0 or args.warmup < 0 or args.stream_seconds <= 0:
        parser.error("--payload must be a positive multiple of 8, --round-trips and --stream-seconds positive")
    if conveyor is None:
        print(f"ring_python: the conveyor package is not importable ({IMPORT_ERROR})", file=sys.stderr)
        sys.exit(3)
    cpus = sorted(os.sched_getaffinity(0))[:2] if args.pin else None
    if cpus is not None and len(cpus) < 2:
        parser.error("--pin needs two CPUs")
    for mode, spin in args.modes:
        row, profile_row = measure(args.payload, mode, spin, args.round_trips, args.warmup, args.stream_seconds,
                                   args.profile, cpus)
        print(json.dumps(row), flush=True)
        if profile_row:
            print(json.dumps(profile_row), flush=True)


if __name__ == "__main__":
    main()
