"""The bodies of the child processes the tests start (multiprocessing, fork or spawn: a
spawned child imports this module by name, so everything here is top level).

Each takes the Ring (inherited under fork, pickled under spawn) and a Connection to talk
to the test. A child reports with conn.send; it waits for the test only on its Connection,
bounded by support.LIMIT, so a test that fails never leaves a child behind for long.
"""
import os
import signal
import time

import numpy as np

import conveyor
import support


def produce_uniform(ring, count, shape, seed, conn):
    """Loans `count` frames, fills frame t with fill_uniform(seed, stream=t) in place,
    commits it with tag t, closes. Sends the address of each loan in this process."""
    with ring.producer() as prod:
        for t in range(count):
            with prod.loan(timeout=support.LIMIT, tag=t) as out:
                assert out.shape == tuple(shape) and out.flags.writeable
                conveyor.fill_uniform(out, seed, t)
                conn.send(("loan", t, support.data_address(out)))
    conn.send(("done", count))


def put_uniform(ring, count, shape, seed):
    """Puts `count` frames fill_uniform(seed, stream=t), tag t, then closes the stream."""
    with ring.producer() as prod:
        for t in range(count):
            prod.put(support.uniform_frame(shape, seed, t), timeout=support.LIMIT, tag=t)


def consume_checksums(ring, conn):
    """Receives until end of stream; sends [(tag, frame checksum)...] and nothing else."""
    sums = []
    with ring.consumer() as cons:
        for x in cons:
            sums.append((support.frame_of(x).tag, support.frame_checksum(x)))
    conn.send(sums)


def produce_then_hang(ring, count, conn):
    """Claims the producer side, puts `count` 8-element frames (frame t is all t), says
    "ready", then waits on conn (the test SIGKILLs it while it waits)."""
    prod = ring.producer()
    for t in range(count):
        prod.put(np.full(8, float(t)), timeout=support.LIMIT, tag=t)
    conn.send("ready")
    conn.poll(support.LIMIT)


def consume_then_hang(ring, count, conn):
    """Claims the consumer side, receives and drops `count` frames, says "ready", then
    waits on conn (the test SIGKILLs it while it waits)."""
    cons = ring.consumer()
    for _ in range(count):
        cons.receive(timeout=support.LIMIT)
    conn.send("ready")
    conn.poll(support.LIMIT)


def interrupt_when_waiting(ring, counter, conn):
    """Waits for the test's "blocking" message, then until the ring's `counter`
    (consumer_waits or producer_waits) grows past the value it sent, which means the test
    process sleeps in the wait; then sends SIGINT to the test process and the time it did."""
    what, baseline = support.recv(conn, "the test's 'blocking' message")
    assert what == "blocking"
    support.wait_until(lambda: ring.stats()[counter] > baseline, f"{counter} > {baseline}")
    sent = time.monotonic()
    os.kill(os.getppid(), signal.SIGINT)
    conn.send(sent)


def stream_small_frames(ring, count, conn):
    """Puts `count` frames of 4 float64, frame t = [t, t+0.5, t+0.25, -t], tag t, through
    prod.put; sends the stream checksum it computed."""
    sums = []
    frame = np.empty(4)
    with ring.producer() as prod:
        for t in range(count):
            frame[0], frame[1], frame[2], frame[3] = t, t + 0.5, t + 0.25, -t
            prod.put(frame, timeout=support.LIMIT, tag=t)
            sums.append((t, support.frame_checksum(frame)))
    conn.send(support.stream_checksum(sums))


def attach_and_exit(name, conn):
    """Attaches the named ring by name and returns normally (a child must not unlink)."""
    ring = conveyor.Ring.attach(name)
    conn.send((ring.slots, ring.slot_bytes))
    ring.close()


def use_inherited_ring_then_exit_cleanly(ring):
    """In a forked child: produces one frame on the inherited named Ring, closes it,
    collects it and runs the interpreter's exit handlers, as a normal exit would (a
    multiprocessing child ends with os._exit otherwise). None of it may unlink the name:
    the creator is the parent."""
    import atexit
    import gc
    with ring.producer() as prod:
        prod.put(np.full(8, 1.0), timeout=support.LIMIT, tag=1)
    ring.close()
    del ring
    gc.collect()
    atexit._run_exitfuncs()
