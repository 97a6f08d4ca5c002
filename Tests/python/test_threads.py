"""Producers and consumers used from several threads: calls on one side are serialized by
a lock that each blocking call holds while it waits (GIL released).

- close() from another thread while a put() or loan() waits on a full ring ends the
  stream: the waiter raises Closed, the consumer drains and gets EndOfStream, never
  PeerDied (the waiter leaving first must not hand the side back before the close).
- A call that finds another thread inside a call on the same side waits for it within
  its own timeout (timeout=0 polls: Timeout at once) and wakes for Ctrl-C.

How these tests know another thread is blocked: the ring's producer_waits or
consumer_waits grows only once that thread sleeps in the C wait, holding the side's lock;
a side's lock_waits grows once a call starts waiting for that lock. No test sleeps.
"""
import support  # first: skips this module under `unittest discover` without the package

import os
import signal
import threading
import time

import numpy as np
import pytest

import conveyor
from support import LIMIT, Pair, frame_of, same_bits, wait_until


class InThread:
    """Runs call() in a thread; `done` is set when it ended, with its result or error."""

    def __init__(self, call):
        self.done = threading.Event()
        self.result = self.error = None
        self.thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self.thread.start()

    def _run(self, call):
        try:
            self.result = call()
        except BaseException as error:  # noqa: BLE001 - the test looks at it
            self.error = error
        finally:
            self.done.set()

    def join(self, what):
        self.thread.join(LIMIT)
        assert not self.thread.is_alive(), f"{what}: the thread did not end within {LIMIT} s"


def blocked_in(ring, counter, call, what):
    """Starts call() in a thread and returns once it sleeps in the C wait (`counter` of
    the ring grew), or fails if it ended instead."""
    baseline = ring.stats()[counter]
    waiter = InThread(call)
    wait_until(lambda: ring.stats()[counter] > baseline or waiter.done.is_set(), what)
    assert not waiter.done.is_set(), f"{what}: it ended with {waiter.error or waiter.result!r}"
    return waiter


# ---- close from another thread --------------------------------------------------------------

@pytest.mark.parametrize("call", ["put", "loan"])
def test_close_from_another_thread_ends_the_stream_while_a_producer_call_waits(call):
    p = Pair(slots=1, shape=(8,))
    p.send(np.full(8, 1.0), tag=0)  # the ring is full
    if call == "put":
        blocked = lambda: p.prod.put(np.full(8, 2.0), timeout=LIMIT, tag=1)  # noqa: E731
    else:
        blocked = lambda: p.prod.loan(timeout=LIMIT, tag=1)  # noqa: E731
    waiter = blocked_in(p.ring, "producer_waits", blocked, f"{call} sleeps on the full ring")
    p.prod.close()
    waiter.join(f"the blocked {call}")
    assert isinstance(waiter.error, conveyor.Closed), repr(waiter.error or waiter.result)
    assert p.prod.closed and p.ring.stats()["closed"] == 1
    x = p.cons.receive(timeout=LIMIT)
    assert frame_of(x).tag == 0 and same_bits(x, np.full(8, 1.0))
    del x
    with pytest.raises(conveyor.EndOfStream):  # not PeerDied: the close was not lost
        p.cons.receive(timeout=LIMIT)
    p.close()


def test_close_from_another_thread_ends_a_waiting_receive():
    p = Pair(slots=2, shape=(8,))
    waiter = blocked_in(p.ring, "consumer_waits", lambda: p.cons.receive(timeout=LIMIT),
                        "receive sleeps on the empty ring")
    p.cons.close()
    waiter.join("the blocked receive")
    assert isinstance(waiter.error, conveyor.Closed), repr(waiter.error or waiter.result)
    assert p.cons.closed
    with pytest.raises(conveyor.Closed):
        p.cons.receive(timeout=0)
    p.close()


# ---- waiting for another thread's call --------------------------------------------------------

@pytest.mark.parametrize("timeout", [0, 0.05])
def test_a_receive_waiting_for_another_threads_receive_keeps_its_timeout(timeout):
    p = Pair(slots=2, shape=(8,))
    waiter = blocked_in(p.ring, "consumer_waits", lambda: p.cons.receive(timeout=LIMIT),
                        "the other receive sleeps")
    busy = p.cons.lock_waits
    with pytest.raises(conveyor.Timeout):
        p.cons.receive(timeout=timeout)
    # It gave up while the other thread still waits: it did not wait for that wait to end.
    assert not waiter.done.is_set()
    assert p.cons.lock_waits == busy + 1  # it found the lock taken
    p.send(np.full(8, 5.0), tag=5)
    waiter.join("the other receive")
    assert waiter.error is None, repr(waiter.error)
    assert frame_of(waiter.result).tag == 5 and same_bits(waiter.result, np.full(8, 5.0))
    waiter.result = None
    p.send(np.full(8, 6.0), tag=6)  # the consumer still works
    x = p.cons.receive(timeout=0)
    assert frame_of(x).tag == 6
    del x
    p.close()


@pytest.mark.parametrize("call", ["loan", "put"])
def test_a_producer_call_waiting_for_another_threads_put_keeps_its_timeout(call):
    p = Pair(slots=1, shape=(8,))
    p.send(np.full(8, 1.0), tag=0)  # full
    waiter = blocked_in(p.ring, "producer_waits",
                        lambda: p.prod.put(np.full(8, 2.0), timeout=LIMIT, tag=1),
                        "the other put sleeps on the full ring")
    with pytest.raises(conveyor.Timeout):
        if call == "loan":
            p.prod.loan(timeout=0)
        else:
            p.prod.put(np.full(8, 3.0), timeout=0)
    assert not waiter.done.is_set()
    x = p.cons.receive(timeout=LIMIT)  # frees the slot: the other put goes on
    del x
    waiter.join("the other put")
    assert waiter.error is None, repr(waiter.error)
    x = p.cons.receive(timeout=LIMIT)
    assert frame_of(x).tag == 1
    del x
    p.close()


def test_ctrl_c_interrupts_a_wait_for_another_threads_call():
    p = Pair(slots=2, shape=(8,))
    waiter = blocked_in(p.ring, "consumer_waits", lambda: p.cons.receive(timeout=LIMIT),
                        "the other receive sleeps")
    inside, late = [False], []

    def on_sigint(signum, frame):
        if inside[0]:
            raise KeyboardInterrupt
        late.append(signum)

    sent = []

    def signal_once_waiting():
        # lock_waits grows when the main thread's receive starts waiting for the lock.
        wait_until(lambda: p.cons.lock_waits > baseline, "the receive waits for the lock")
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    baseline = p.cons.lock_waits
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        signaller = InThread(signal_once_waiting)
        caught, outcome = None, "returned"
        try:
            inside[0] = True
            try:
                outcome = repr(p.cons.receive(timeout=LIMIT))
            finally:
                inside[0] = False
        except KeyboardInterrupt:
            caught = time.monotonic()
        except conveyor.ConveyorError as error:
            outcome = repr(error)
        signaller.join("the signalling thread")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert signaller.error is None, repr(signaller.error)
    assert caught is not None, f"the receive ended with {outcome} instead of KeyboardInterrupt" \
                               f"{' (the signal was handled after it)' if late else ''}"
    # Interrupted while the lock's holder still waits: not after its wait ended.
    assert not waiter.done.is_set()
    print(f"KeyboardInterrupt {(caught - sent[0]) * 1e3:.2f} ms after SIGINT")
    p.send(np.full(8, 7.0), tag=7)
    waiter.join("the other receive")
    assert waiter.error is None and frame_of(waiter.result).tag == 7, repr(waiter.error)
    waiter.result = None
    p.send(np.full(8, 8.0), tag=8)  # the consumer still works here
    x = p.cons.receive(timeout=0)
    assert frame_of(x).tag == 8 and same_bits(x, np.full(8, 8.0))
    del x
    p.close()
