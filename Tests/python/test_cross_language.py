"""Across languages, with checksums: a Python consumer of a named ring produced by a C
program (through conveyor.h only) and by a Swift program (through the Conveyor package),
and a Python producer feeding a C consumer. Frame t is fill_uniform(seed, stream t) of a
rows x cols float64 array with tag t on every side; each side checks every frame's bits
and computes the stream checksum of Tests/CrossLang/crosslang.h, and the checksums agree.

The programs come from scripts/test-python, which builds them and names them in
CONVEYOR_TEST_C_PRODUCER, CONVEYOR_TEST_C_CONSUMER and CONVEYOR_TEST_SWIFT_PEER.
"""
import support  # first: skips this module under `unittest discover` without the package

import os
import time

import numpy as np

import conveyor
from support import LIMIT, frame_of, read_line, same_bits, shm_path

ROWS, COLS, SEED = 16, 32, 2016


def expected_checksum(frames, shape=(ROWS, COLS)):
    return support.stream_checksum(
        (t, support.frame_checksum(support.uniform_frame(shape, SEED, t))) for t in range(frames))


def last_line(proc, what):
    """The program's closing line, then its exit (status 0 required)."""
    line = read_line(proc.stdout, what)
    try:
        proc.wait(LIMIT)
    except Exception:
        proc.kill()
        raise
    err = proc.stderr.read()
    assert proc.returncode == 0, f"{what}: exit status {proc.returncode}; stderr: {err}"
    return line.split()


def consume_from(children, argv, name, frames):
    proc = children.popen(argv)
    assert read_line(proc.stdout, f"{argv[0]}: 'ready'") == "ready\n", proc.stderr.read()
    ring = conveyor.Ring.attach(name)
    sums = []
    with ring.consumer() as cons:
        for x in cons:
            frame = frame_of(x)
            assert frame.tag == len(sums), (frame.tag, len(sums))
            assert x.shape == (ROWS, COLS) and x.dtype == np.float64
            assert same_bits(x, support.uniform_frame((ROWS, COLS), SEED, frame.tag)), frame.tag
            sums.append((frame.tag, support.frame_checksum(x)))
    word, count, word2, checksum = last_line(proc, argv[0])
    ring.close()
    assert (word, word2, int(count)) == ("frames", "checksum", frames)
    assert int(checksum, 16) == support.stream_checksum(sums) == expected_checksum(frames)
    assert len(sums) == frames
    assert not os.path.exists(shm_path(name))  # the creating program unlinked it


def test_a_python_consumer_reads_a_c_producers_frames(children):
    name, frames, slots = support.ring_name("c-producer"), 3000, 4
    argv = [support.program("CONVEYOR_TEST_C_PRODUCER"), name, str(slots), str(frames),
            str(ROWS), str(COLS), str(SEED)]
    consume_from(children, argv, name, frames)


def test_a_python_consumer_reads_a_swift_producers_frames(children):
    name, frames, slots = support.ring_name("swift-producer"), 1000, 3
    argv = [support.program("CONVEYOR_TEST_SWIFT_PEER"), "produce", name, str(slots), str(frames),
            str(ROWS), str(COLS), str(SEED)]
    consume_from(children, argv, name, frames)


def send_while_alive(prod, proc, what, make_frame, tag):
    """Puts one frame, in short waits, failing at once if the consumer program ended."""
    deadline = time.monotonic() + LIMIT
    while True:
        try:
            return make_frame(tag)
        except conveyor.Timeout:
            if proc.poll() is not None:
                raise AssertionError(f"{what} ended ({proc.returncode}): {proc.stderr.read()}")
            assert time.monotonic() < deadline, f"{what} took no frame within {LIMIT} s"


def test_a_c_consumer_reads_a_python_producers_frames(children):
    name, frames = support.ring_name("c-consumer"), 3000
    argv = [support.program("CONVEYOR_TEST_C_CONSUMER"), name, str(SEED)]  # may skip: no ring yet
    ring = conveyor.Ring(slots=3, shape=(ROWS, COLS), dtype=np.float64, name=name)
    proc = children.popen(argv)
    with ring.producer() as prod:
        def put(t):
            prod.put(support.uniform_frame((ROWS, COLS), SEED, t), timeout=0.2, tag=t)

        def loan(t):
            with prod.loan(timeout=0.2, tag=t) as out:
                conveyor.fill_uniform(out, SEED, t)

        def loan_flat(t):  # a rank-1 frame of the same values
            with prod.loan(shape=(ROWS * COLS,), dtype=np.float64, timeout=0.2, tag=t) as out:
                conveyor.fill_uniform(out, SEED, t)

        for t in range(frames):
            send_while_alive(prod, proc, argv[0], (put, loan, loan_flat)[t % 3], t)
    word, count, word2, checksum, word3, bad = last_line(proc, argv[0])
    assert (word, word2, word3) == ("frames", "checksum", "bad")
    assert (int(count), int(bad)) == (frames, 0)
    assert int(checksum, 16) == expected_checksum(frames)
    ring.close()
    assert not os.path.exists(shm_path(name))
