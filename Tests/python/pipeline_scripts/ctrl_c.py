"""Run by test_pipeline_failures.py (python ctrl_c.py START): a pipeline whose last stage
blocks for good, in this process, for the test to press Ctrl-C (send SIGINT) at.

source (fill) -> relay (x, out), 2 replicas -> stuck (x), which never returns. Each
stage process writes its pid to a FIFO on its first item (a FIFO: spawned processes
can open it by path too); this script reads one line per stage process, so it knows
every stage has started, then prints "started <pid> <pid>..." and waits for the results.

On KeyboardInterrupt it prints "children <pid>..." (its direct children still in its
process table, zombies included: the run must have reaped all of them) and re-raises,
so it exits the way Python does on Ctrl-C (killed by SIGINT, 'KeyboardInterrupt' on
stderr).
"""
import multiprocessing.resource_tracker
import os
import select
import shutil
import signal
import sys
import tempfile
import threading

import conveyor

STAGE_PROCESSES = 4  # source, relay x 2, stuck
LIMIT = 60.0
_reported = False


def report():
    """Writes this process's pid to the FIFO, once."""
    global _reported
    if not _reported:
        _reported = True
        with open(os.environ["CONVEYOR_TEST_PID_FIFO"], "w") as fifo:
            fifo.write(f"{os.getpid()}\n")


def source(i, out):
    report()
    out[...] = i


def relay(x, out):
    report()
    out[...] = x


def stuck(x):
    report()
    threading.Event().wait()  # forever: only the run stopping this process ends it
    return x


def children():
    pids = set()
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/children") as f:
            pids.update(int(p) for p in f.read().split())
    pids.discard(getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None))
    return sorted(pids)


def read_pids(fd):
    data = b""
    while data.count(b"\n") < STAGE_PROCESSES:
        ready, _, _ = select.select([fd], [], [], LIMIT)
        if not ready:
            lines = data.count(b"\n")
            sys.exit(f"only {lines} stage processes reported within {LIMIT} s")
        data += os.read(fd, 4096)
    return [int(p) for p in data.split()]


def main(start):
    workdir = tempfile.mkdtemp(prefix="conveyor-ctrl-c-")
    try:
        path = os.path.join(workdir, "pids")
        os.mkfifo(path)
        os.environ["CONVEYOR_TEST_PID_FIFO"] = path
        fd = os.open(path, os.O_RDWR)  # a FIFO opened read-write does not wait for a writer
        pipe = (conveyor.Pipeline(source, count=1000, shape=(4,), start=start)
                .stage(relay, replicas=2).stage(stuck))
        try:
            with pipe.results() as results:
                pids = read_pids(fd)
                print("started", *pids, flush=True)
                for x in results:
                    pass
            print("ended", flush=True)  # not reached: stuck never returns
        except KeyboardInterrupt:
            print("children", *children(), flush=True)
            raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    # What a program at a terminal has; a shell may start a background job with SIGINT
    # ignored, and Python then installs no handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main(sys.argv[1])
