"""PeerDied within 100 ms of the peer's death, both ways: a consumer blocked in receive
when its producer is SIGKILLed, a producer blocked in loan or put when its consumer is.

The time is measured from the moment the killed child was reaped (waitpid returned) to
the moment the exception reached Python: until it is reaped a killed child may still be
a zombie that the kernel reports as existing. The C core checks a dead peer every 10 ms
and the package wakes every 20 ms at most; 100 ms is the issue's bound, asserted as is.
A thread of the test kills and reaps the child once the ring's wait counter shows that
the main thread sleeps in the call.
"""
import support  # first: skips this module under `unittest discover` without the package

import multiprocessing
import threading
import time

import numpy as np
import pytest

import conveyor
import peers
from support import LIMIT, kill_and_reap, recv, wait_until

BOUND = 0.100


class Killer(threading.Thread):
    """Kills and reaps `child` once the ring's `counter` exceeds `baseline`."""

    def __init__(self, ring, counter, baseline, child):
        super().__init__(daemon=True)
        self.ring, self.counter, self.baseline, self.child = ring, counter, baseline, child
        self.killed = self.reaped = None
        self.error = None

    def run(self):
        try:
            wait_until(lambda: self.ring.stats()[self.counter] > self.baseline,
                       f"{self.counter} > {self.baseline}: the main thread sleeps in its call")
            self.killed, self.reaped = kill_and_reap(self.child)
        except BaseException as error:  # reported by the test
            self.error = error


def blocked_until_peer_died(call, killer):
    killer.start()
    try:
        with pytest.raises(conveyor.PeerDied):
            call()
        raised = time.monotonic()
    finally:
        killer.join(LIMIT)
    assert killer.error is None, killer.error
    assert killer.reaped is not None
    after_kill, after_reap = raised - killer.killed, raised - killer.reaped
    assert after_reap < BOUND, f"PeerDied {after_reap * 1e3:.1f} ms after the reap " \
                               f"({after_kill * 1e3:.1f} ms after the kill)"
    print(f"PeerDied {after_reap * 1e3:.2f} ms after the reap, {after_kill * 1e3:.2f} ms after the kill")
    return after_kill, after_reap


@pytest.mark.parametrize("backing", ["memfd", "named"])
def test_a_blocked_receive_raises_peer_died_when_the_producer_is_killed(children, backing):
    ring = support.make_ring(backing, slots=4, shape=(8,))
    here, there = multiprocessing.Pipe()
    child = children.start("fork", peers.produce_then_hang, ring, 2, there)
    assert recv(here, "the producer's 'ready'") == "ready"
    cons = ring.consumer()
    for t in range(2):
        x = cons.receive(timeout=LIMIT)
        assert x[0] == t
        del x
    killer = Killer(ring, "consumer_waits", ring.stats()["consumer_waits"], child)
    blocked_until_peer_died(lambda: cons.receive(timeout=LIMIT), killer)
    cons.close()
    ring.close()


@pytest.mark.parametrize("call", ["loan", "put"])
@pytest.mark.parametrize("backing", ["memfd", "named"])
def test_a_blocked_producer_raises_peer_died_when_the_consumer_is_killed(children, backing, call):
    ring = support.make_ring(backing, slots=2, shape=(8,))
    here, there = multiprocessing.Pipe()
    child = children.start("fork", peers.consume_then_hang, ring, 0, there)
    assert recv(here, "the consumer's 'ready'") == "ready"
    prod = ring.producer()
    prod.put(np.zeros(8), timeout=0)
    prod.put(np.ones(8), timeout=0)  # full: the consumer holds the side but receives nothing
    killer = Killer(ring, "producer_waits", ring.stats()["producer_waits"], child)
    if call == "loan":
        blocked_until_peer_died(lambda: prod.loan(timeout=LIMIT), killer)
    else:
        blocked_until_peer_died(lambda: prod.put(np.zeros(8), timeout=LIMIT), killer)
    prod.close()
    ring.close()


def test_a_poll_after_the_death_raises_peer_died_too(children):
    ring = support.make_ring("memfd", slots=4, shape=(8,))
    here, there = multiprocessing.Pipe()
    child = children.start("fork", peers.produce_then_hang, ring, 1, there)
    assert recv(here, "the producer's 'ready'") == "ready"
    _, reaped = kill_and_reap(child)
    cons = ring.consumer()
    assert cons.receive(timeout=LIMIT)[0] == 0  # what it committed before dying comes first
    deadline = reaped + BOUND
    while True:
        try:
            cons.receive(timeout=0)
        except conveyor.PeerDied:
            break
        except conveyor.Timeout:
            assert time.monotonic() < deadline, "polls still time out 100 ms after the death"
    cons.close()
    ring.close()
