"""What the pytest suite of the `conveyor` package shares: bounded waits, ring names, the
children a test starts, checksums, and where a frame's memory is.

How these tests wait: for the event itself (a byte in a pipe, a process's exit, a counter
of the ring that only grows), never for a time that is supposed to be long enough. The one
duration is LIMIT, which only turns a hang into a failure: no correct run comes near it.

Run by scripts/test-python (pytest, in a virtualenv with the package installed). Under
`python3 -m unittest discover -s Tests/python` (scripts/test, without the package) every
module that imports this one is skipped instead of failing to import.
"""
import os
import re
import select
import signal
import subprocess
import time
import unittest

try:
    import numpy as np
    import conveyor
except ImportError as error:  # pragma: no cover - only under unittest discover
    raise unittest.SkipTest(f"the conveyor pytest suite needs the package (scripts/test-python): {error}")

#: The no-hang guard for one wait, in seconds.
LIMIT = 60.0

#: Every /dev/shm name this test run makes starts with this (rings, garbage files).
SHM_PREFIX = f"cvpy-{os.getpid()}-"

#: Pids of every process a test started (for the /dev/shm check of libomp's files).
STARTED_PIDS = set()

_names = iter(range(1, 1 << 62))


def ring_name(what="ring"):
    """A fresh "/name" for a named ring or a shm object, unique in this run."""
    return f"/{SHM_PREFIX}{next(_names)}-{what}"


def shm_path(name):
    return "/dev/shm/" + name.lstrip("/")


# ---- waiting -----------------------------------------------------------------------------

def wait_until(condition, what, limit=LIMIT):
    """Re-checks `condition` every millisecond until it holds (only for conditions that stay
    true once true: a counter that only grows, a process that ended); fails the test if the
    guard runs out first."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened within {limit} s: {what}")
        select.select([], [], [], 0.001)


def read_line(stream, what, limit=LIMIT):
    """One line from a text pipe (a child's stdout), waiting at most `limit`; '' at EOF."""
    ready, _, _ = select.select([stream], [], [], limit)
    if not ready:
        raise AssertionError(f"no line within {limit} s: {what}")
    return stream.readline()


def recv(connection, what, limit=LIMIT):
    """The next object from a multiprocessing Connection, waiting at most `limit`."""
    if not connection.poll(limit):
        raise AssertionError(f"nothing came within {limit} s: {what}")
    return connection.recv()


# ---- children ----------------------------------------------------------------------------

class Children:
    """The processes one test starts. The test joins them; the fixture `children` kills and
    reaps whatever is left when the test ends, whichever way it ends, and says so."""

    def __init__(self):
        self.processes = []  # multiprocessing.Process
        self.popens = []     # subprocess.Popen

    def start(self, method, target, *args):
        """Starts target(*args) in a multiprocessing process of start method `method`."""
        import multiprocessing
        process = multiprocessing.get_context(method).Process(target=target, args=args, daemon=True)
        process.start()
        STARTED_PIDS.add(process.pid)
        self.processes.append(process)
        return process

    def popen(self, argv, **kwargs):
        """Starts a program with pipes for stdin and stdout (text), stderr captured."""
        kwargs.setdefault("stdin", subprocess.PIPE)
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("text", True)
        proc = subprocess.Popen(argv, **kwargs)
        STARTED_PIDS.add(proc.pid)
        self.popens.append(proc)
        return proc

    def cleanup(self):
        """Kills and reaps every child still running; returns the ones that were."""
        stray = []
        for process in self.processes:
            if process.is_alive():
                stray.append(f"{process.name} (pid {process.pid})")
                process.kill()
            process.join(LIMIT)
        for proc in self.popens:
            if proc.poll() is None:
                stray.append(f"{proc.args[0]} (pid {proc.pid})")
                proc.kill()
            proc.wait(LIMIT)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        return stray


def join(process, what, limit=LIMIT):
    """Joins a multiprocessing child; fails the test if it does not end or fails."""
    process.join(limit)
    if process.is_alive():
        process.kill()
        process.join(limit)
        raise AssertionError(f"{what}: did not end within {limit} s (killed)")
    assert process.exitcode == 0, f"{what}: exit code {process.exitcode}"


def finish(proc, what, limit=LIMIT):
    """Waits for a program started with Children.popen; returns (stdout rest, stderr)."""
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{what}: did not end within {limit} s (killed); stderr: {err}")
    assert proc.returncode == 0, f"{what}: exit status {proc.returncode}; stderr: {err}"
    return out, err


def kill_and_reap(process):
    """SIGKILLs a multiprocessing child and reaps it. Returns (time of the kill, time the
    reap returned), both time.monotonic()."""
    killed = time.monotonic()
    os.kill(process.pid, signal.SIGKILL)
    process.join(LIMIT)
    reaped = time.monotonic()
    assert process.exitcode == -signal.SIGKILL, process.exitcode
    return killed, reaped


def in_forked_copy(body):
    """Runs body() in a forked copy of this process; returns its exit code (0: it returned,
    1: it raised, negative: a signal, e.g. -11 for a segfault). So a test of "no crash"
    fails instead of taking the whole run down."""
    import multiprocessing
    process = multiprocessing.get_context("fork").Process(target=_run_body, args=(body,))
    process.start()
    STARTED_PIDS.add(process.pid)
    process.join(LIMIT)
    if process.is_alive():
        process.kill()
        process.join(LIMIT)
        return "hung"
    return process.exitcode


def _run_body(body):
    body()


# ---- rings, frames, memory ---------------------------------------------------------------

def frame_of(view):
    """The Frame (or Loan) object that exports the buffer under a numpy view."""
    base = view.base
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return base


def data_address(array):
    return array.__array_interface__["data"][0]


def page_size():
    return os.sysconf("SC_PAGE_SIZE")


def mapping_of(address, pid="self"):
    """(start, end, path) of the mapping of process `pid` that contains `address`."""
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start <= address < end:
                return start, end, fields[5].strip() if len(fields) > 5 else ""
    raise AssertionError(f"address {address:#x} is in no mapping of process {pid}")


def slot_offset(ring, slot):
    """Where slot `slot` starts in the ring's mapping, per CKernels/src/ring_layout.h: the
    slots come last, each slot_bytes rounded up to the page size."""
    page = page_size()
    stride = -(-ring.slot_bytes // page) * page
    return ring.mapped_bytes - (ring.slots - slot) * stride


def open_fds():
    return set(os.listdir("/proc/self/fd"))


_ODD = {}


def frame_checksum(array):
    """Σ_j w_j·(2j+1) mod 2^64 over the 64-bit words w of a frame's bytes: any change of one
    word changes it (the weights are odd, so invertible mod 2^64). The C and Swift peers
    compute the same (Tests/CrossLang/crosslang.h)."""
    words = np.ascontiguousarray(array).reshape(-1).view(np.uint64)
    odd = _ODD.get(words.size)
    if odd is None:
        odd = _ODD[words.size] = np.arange(words.size, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    return int((words * odd).sum(dtype=np.uint64))


def stream_checksum(tagged_checksums):
    """Σ_t (t+1)·checksum_t mod 2^64 over (tag, frame checksum) pairs."""
    total = 0
    for tag, checksum in tagged_checksums:
        total = (total + (tag + 1) * checksum) % (1 << 64)
    return total


def uniform_frame(shape, seed, stream, dtype=np.float64):
    """The frame the peers make: conveyor.fill_uniform(seed, stream) of that shape."""
    out = np.empty(shape, dtype=dtype)
    conveyor.fill_uniform(out, seed, stream)
    return out


def program(env):
    """The path of a test program given by scripts/test-python in environment variable
    `env`; skips (or fails under CONVEYOR_TEST_STRICT=1) when it is missing."""
    import pytest
    path = os.environ.get(env)
    if path and os.access(path, os.X_OK):
        return path
    message = f"{env} is not set to a program (run scripts/test-python)"
    if os.environ.get("CONVEYOR_TEST_STRICT") == "1":
        pytest.fail(message)
    pytest.skip(message)


KMP_NAME = re.compile(r"__KMP_REGISTERED_LIB_(\d+)")


def make_ring(backing="memfd", slots=3, shape=(8,), dtype=np.float64):
    """A new ring of that backing; named rings get a fresh name of this run."""
    if backing == "named":
        ring = conveyor.Ring(slots=slots, shape=shape, dtype=dtype, name=ring_name())
    elif backing == "anonymous":
        ring = conveyor.Ring(slots=slots, shape=shape, dtype=dtype, backing="anonymous")
    else:
        ring = conveyor.Ring(slots=slots, shape=shape, dtype=dtype)
    assert ring.backing == backing, ring.backing
    return ring


def same_bits(a, b):
    """Whether two arrays hold the same shape, dtype and bytes (NaNs and -0.0 included)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


class Pair:
    """A memfd ring with both sides in this process, for tests of one side's rules."""

    def __init__(self, slots=3, shape=(4, 5), dtype=np.float64, backing="memfd"):
        self.ring = make_ring(backing, slots=slots, shape=shape, dtype=dtype)
        self.prod = self.ring.producer()
        self.cons = self.ring.consumer()

    def send(self, array, tag=0):
        self.prod.put(array, timeout=0, tag=tag)

    def released(self):
        return self.ring.stats()["frames_released"]

    def close(self):
        self.prod.close()
        self.cons.close()
        self.ring.close()
