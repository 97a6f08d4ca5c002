"""Blocking calls release the GIL and wake for signals: Ctrl-C (SIGINT) interrupts a
blocked receive, loan or put within 100 ms with KeyboardInterrupt and leaves the ring
usable; a signal whose Python handler returns does not end the wait.

A forked child sends the signal: the test tells it (through a pipe) that it is about to
block, and the child waits until the ring's wait counter grows, which happens only once
the test process sleeps in the call; then it signals and reports when it did.
"""
import support  # first: skips this module under `unittest discover` without the package

import multiprocessing
import os
import signal
import threading
import time

import numpy as np
import pytest

import conveyor
import peers
from support import LIMIT, Pair, frame_of, join, recv, same_bits, wait_until

BOUND = 0.100
#: How long the interrupted call may wait at most: long enough that a wait that does not
#: wake for the signal fails the 100 ms bound by far, short enough not to stall the run.
CALL_LIMIT = 5.0


def interrupted(children, ring, counter, call):
    """Runs call() while a child sends SIGINT once the call sleeps; asserts that it raised
    KeyboardInterrupt within BOUND of the signal.

    The SIGINT handler here raises KeyboardInterrupt, as Python's default one does, but
    only while call() runs: a package that does not wake for signals would otherwise get
    its KeyboardInterrupt later, somewhere in pytest, and end the whole run instead of
    failing this test."""
    inside, late = [False], []

    def on_sigint(signum, frame):
        if inside[0]:
            raise KeyboardInterrupt
        late.append(time.monotonic())

    here, there = multiprocessing.Pipe()
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        child = children.start("fork", peers.interrupt_when_waiting, ring, counter, there)
        here.send(("blocking", ring.stats()[counter]))
        caught, outcome = None, "returned"
        try:
            inside[0] = True
            try:
                outcome = repr(call())
            finally:
                inside[0] = False
        except KeyboardInterrupt:
            caught = time.monotonic()
        except conveyor.ConveyorError as error:
            outcome = repr(error)
        child.join(LIMIT)  # the signal was sent before the test goes on, whatever happened
    finally:
        signal.signal(signal.SIGINT, previous)
    sent = recv(here, "the child's signal time")
    join(child, "signalling child")
    assert caught is not None, f"the call ended with {outcome} instead of KeyboardInterrupt" \
                               f"{' (the signal was handled after it)' if late else ''}"
    assert caught - sent < BOUND, f"KeyboardInterrupt {(caught - sent) * 1e3:.1f} ms after SIGINT"
    print(f"KeyboardInterrupt {(caught - sent) * 1e3:.2f} ms after SIGINT")


@pytest.mark.parametrize("backing", ["memfd", "named"])
def test_ctrl_c_interrupts_a_blocked_receive_and_the_ring_still_works(children, backing):
    p = Pair(slots=2, shape=(8,), backing=backing)
    interrupted(children, p.ring, "consumer_waits", lambda: p.cons.receive(timeout=CALL_LIMIT))
    p.prod.put(np.full(8, 3.0), timeout=0, tag=3)
    x = p.cons.receive(timeout=LIMIT)
    assert frame_of(x).tag == 3 and same_bits(x, np.full(8, 3.0))
    del x
    p.close()


@pytest.mark.parametrize("call", ["loan", "put"])
def test_ctrl_c_interrupts_a_blocked_producer_and_the_ring_still_works(children, call):
    p = Pair(slots=1, shape=(8,))
    p.prod.put(np.zeros(8), timeout=0, tag=0)  # full
    if call == "loan":
        interrupted(children, p.ring, "producer_waits", lambda: p.prod.loan(timeout=CALL_LIMIT))
    else:
        interrupted(children, p.ring, "producer_waits",
                    lambda: p.prod.put(np.ones(8), timeout=CALL_LIMIT))
    assert p.ring.stats()["frames_committed"] == 1
    x = p.cons.receive(timeout=LIMIT)
    assert frame_of(x).tag == 0
    del x
    with p.prod.loan(timeout=LIMIT, tag=1) as out:  # no loan was left outstanding
        out[...] = 2.0
    x = p.cons.receive(timeout=LIMIT)
    assert frame_of(x).tag == 1 and same_bits(x, np.full(8, 2.0))
    del x
    p.close()


def test_a_signal_handler_that_returns_does_not_end_the_wait(children):
    ring = support.make_ring("memfd", slots=2, shape=(8,))
    cons = ring.consumer()  # the child produces
    handled = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: handled.append(signum))
    try:
        waits = ring.stats()["consumer_waits"]
        child = children.start("fork", _signal_then_produce, ring, waits)
        x = cons.receive(timeout=LIMIT)
        assert frame_of(x).tag == 7 and same_bits(x, np.full(8, 7.0))
        del x
        join(child, "signalling child")
        assert handled == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, previous)
    cons.close()
    ring.close()


def _signal_then_produce(ring, waits):
    # The test sleeps in receive when it gets SIGUSR1; its handler returns, so the receive
    # must go on waiting, and get the frame that comes once the test sleeps again.
    wait_until(lambda: ring.stats()["consumer_waits"] > waits, "the test sleeps in receive")
    os.kill(os.getppid(), signal.SIGUSR1)
    after = ring.stats()["consumer_waits"]
    wait_until(lambda: ring.stats()["consumer_waits"] > after, "the test waits again")
    with ring.producer() as prod:
        prod.put(np.full(8, 7.0), timeout=LIMIT, tag=7)


def test_a_blocked_receive_releases_the_gil():
    # A thread blocks in receive (with a bound); the main thread, which needs the GIL to
    # run at all, sees it sleep and then produces the frame it waits for. If the wait held
    # the GIL, the main thread would only run after the bound and the receive would time out.
    p = Pair(slots=2, shape=(8,))
    got, errors = [], []
    waits = p.ring.stats()["consumer_waits"]

    def receive():
        try:
            got.append(p.cons.receive(timeout=CALL_LIMIT).copy())
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=receive)
    thread.start()
    try:
        wait_until(lambda: p.ring.stats()["consumer_waits"] > waits, "the thread sleeps", CALL_LIMIT)
        p.prod.put(np.full(8, 5.0), timeout=0)
    finally:
        thread.join(LIMIT)
    assert not errors and len(got) == 1 and same_bits(got[0], np.full(8, 5.0)), errors
    p.close()
