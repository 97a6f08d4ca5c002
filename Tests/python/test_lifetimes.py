"""A view kept past its frame keeps the frame's slot: its data never changes under it, the
producer waits instead (backpressure), and the slot comes back when the last view of the
frame dies; slots come back in frame order. Nothing crashes after close or collection."""
import support  # first: skips this module under `unittest discover` without the package

import gc
import os
import threading

import numpy as np
import pytest

import conveyor
import peers
from support import LIMIT, Pair, frame_of, in_forked_copy, join, same_bits, wait_until


def frames(n, shape=(4, 5)):
    return [np.full(shape, float(t)) + np.arange(shape[-1]) for t in range(n)]


def test_a_kept_view_holds_its_slot_until_its_last_derived_view_dies():
    p = Pair(slots=2)
    a, b, c = frames(3)
    p.send(a, tag=0)
    p.send(b, tag=1)
    x0 = p.cons.receive(timeout=LIMIT)
    derived = [x0[1:], x0.T, x0.reshape(-1), np.asarray(x0)[::2]]
    expected = [a[1:], a.T, a.reshape(-1), a[::2]]
    p.cons.receive(timeout=LIMIT)  # frame 1: dropped at once, but it is after frame 0
    committed = p.ring.stats()["frames_committed"]
    with pytest.raises(conveyor.Timeout):  # both slots held: the producer may not write
        p.prod.put(c, timeout=0)
    assert p.ring.stats()["frames_committed"] == committed and p.released() == 0
    del x0
    while derived:
        assert p.released() == 0, f"released with {len(derived)} derived views alive"
        with pytest.raises(conveyor.Timeout):
            p.prod.put(c, timeout=0)
        assert same_bits(derived[0], expected.pop(0))
        derived.pop(0)
    # The last view died: frame 0 is released, then frame 1 (done already), in order.
    assert p.released() == 2
    p.prod.put(c, timeout=0, tag=2)
    x2 = p.cons.receive(timeout=LIMIT)
    assert same_bits(x2, c) and frame_of(x2).tag == 2
    del x2
    p.close()


def test_data_under_a_kept_view_never_changes():
    p = Pair(slots=2)
    a, b, c = frames(3)
    p.send(a)
    x = p.cons.receive(timeout=LIMIT)
    keep = x[1:]
    del x
    p.send(b)
    p.cons.receive(timeout=LIMIT)
    for _ in range(3):
        with pytest.raises(conveyor.Timeout):
            p.prod.put(c, timeout=0)
    assert same_bits(keep, a[1:])
    del keep
    p.close()


def test_a_copy_does_not_hold_the_slot():
    p = Pair(slots=2)
    a, = frames(1)
    p.send(a)
    x = p.cons.receive(timeout=LIMIT)
    copy = x.copy()
    del x
    assert p.released() == 1 and same_bits(copy, a) and copy.flags.writeable
    p.close()


def test_the_frame_object_itself_holds_the_slot():
    p = Pair(slots=2)
    a, = frames(1)
    p.send(a)
    frame = frame_of(p.cons.receive(timeout=LIMIT))
    assert p.released() == 0
    assert same_bits(np.asarray(frame), a)
    del frame
    assert p.released() == 1
    p.close()


@pytest.mark.parametrize("order", [(2, 1, 0), (1, 2, 0), (1, 0, 2), (0, 2, 1)])
def test_frames_are_released_in_order_whatever_order_their_views_die_in(order):
    p = Pair(slots=3)
    sent = frames(3)
    for t, a in enumerate(sent):
        p.send(a, tag=t)
    views = {t: p.cons.receive(timeout=LIMIT) for t in range(3)}
    assert [frame_of(views[t]).tag for t in range(3)] == [0, 1, 2]
    dead = set()
    for t in order:
        del views[t]
        dead.add(t)
        # Released: the longest prefix 0, 1, ... of frames whose views are all dead.
        prefix = 0
        while prefix in dead:
            prefix += 1
        assert p.released() == prefix, (order, sorted(dead))
        assert all(same_bits(views[s], sent[s]) for s in views)
    p.close()


def test_the_consumer_holds_as_many_frames_as_the_ring_has_slots():
    p = Pair(slots=4)
    sent = frames(4)
    for t, a in enumerate(sent):
        p.send(a, tag=t)
    views = [p.cons.receive(timeout=LIMIT) for _ in range(4)]  # the for-loop idiom needs 2
    assert all(same_bits(v, a) for v, a in zip(views, sent))
    # Nothing more can come while every slot is held: a poll says so (the spec does not
    # say which way; the package reports BadState, with advice, instead of a Timeout).
    with pytest.raises((conveyor.Timeout, conveyor.BadState)):
        p.cons.receive(timeout=0)
    del views
    assert p.released() == 4
    p.close()


def test_the_for_loop_idiom_streams_through_a_small_ring():
    # `for x in cons` binds the next frame while the previous x is still alive: a consumer
    # that could hold only one frame would fail here.
    ring = conveyor.Ring(slots=2, shape=(4, 5), dtype=np.float64)
    sent = frames(50)
    thread = threading.Thread(target=_produce, args=(ring, sent))
    thread.start()
    total, tags = 0.0, []
    try:
        with ring.consumer() as cons:
            for x in cons:
                total += float(x.sum())
                tags.append(frame_of(x).tag)
    finally:
        thread.join(LIMIT)
    assert not thread.is_alive()
    assert tags == list(range(50)) and total == sum(float(a.sum()) for a in sent)
    ring.close()


def _produce(ring, arrays):
    with ring.producer() as prod:
        for t, a in enumerate(arrays):
            prod.put(a, timeout=LIMIT, tag=t)


def test_backpressure_across_processes_keeps_a_kept_view_intact(children):
    shape, seed, count = (32, 128), 7, 6
    ring = conveyor.Ring(slots=2, shape=shape, dtype=np.float64)
    child = children.start("fork", peers.put_uniform, ring, count, shape, seed)
    with ring.consumer() as cons:
        x0 = cons.receive(timeout=LIMIT)
        keep = x0.T[::3]
        del x0
        cons.receive(timeout=LIMIT)  # frame 1, dropped: it waits behind frame 0
        # The child has filled both slots and sleeps on the full ring: the ring is full
        # from its second commit until `del keep`, so any wait it counted is that one.
        wait_until(lambda: ring.stats()["producer_waits"] > 0, "the producer waits")
        stats = ring.stats()
        assert stats["frames_committed"] == 2 and stats["frames_released"] == 0
        assert same_bits(keep, support.uniform_frame(shape, seed, 0).T[::3])
        del keep  # frames 0 and 1 are released: the child goes on
        for t in range(2, count):
            x = cons.receive(timeout=LIMIT)
            assert frame_of(x).tag == t and same_bits(x, support.uniform_frame(shape, seed, t))
            del x
        with pytest.raises(conveyor.EndOfStream):
            cons.receive(timeout=LIMIT)
    join(child, "producer child")
    ring.close()


def test_a_release_from_another_thread_reaches_a_waiting_receive():
    # Two frames are held here while another thread blocks in receive on the same
    # consumer (the ring is empty). The views die while it waits: their releases are
    # queued and run by the waiter between its slices, so the slots come back to the
    # producer while the wait goes on, and the waiter then receives the next frame.
    p = Pair(slots=3)
    a, b, c = frames(3)
    p.send(a, tag=0)
    p.send(b, tag=1)
    held = [p.cons.receive(timeout=LIMIT), p.cons.receive(timeout=LIMIT)]
    got, errors = [], []
    waits = p.ring.stats()["consumer_waits"]

    def receive():
        try:
            got.append(p.cons.receive(timeout=LIMIT).copy())
        except BaseException as error:
            errors.append(error)

    waiter = threading.Thread(target=receive)
    waiter.start()
    try:
        wait_until(lambda: p.ring.stats()["consumer_waits"] > waits or errors, "the waiter sleeps")
        assert not errors, errors
        del held
        wait_until(lambda: p.released() == 2 or errors, "the waiter runs the queued releases")
        assert waiter.is_alive() and not got
        p.prod.put(c, timeout=LIMIT, tag=2)
    finally:
        waiter.join(LIMIT)
    assert not waiter.is_alive() and not errors and len(got) == 1 and same_bits(got[0], c), errors
    p.close()


def _touch_after_close(backing):
    ring = support.make_ring(backing, slots=4, shape=(4, 5))
    prod, cons = ring.producer(), ring.consumer()
    sent = frames(3)
    for t, a in enumerate(sent):
        prod.put(a, timeout=0, tag=t)
    x = cons.receive(timeout=0)
    y = cons.receive(timeout=0).T
    frame = frame_of(x)
    with prod.loan() as out:
        out[...] = 3.0
    kept_loan = out
    cons.close()
    assert same_bits(x, sent[0]) and same_bits(y, sent[1].T)
    with pytest.raises(conveyor.ConveyorError):
        cons.receive(timeout=0)
    ring.close()
    if backing == "named":
        assert not os.path.exists(support.shm_path(ring.name))
    assert same_bits(x, sent[0]) and (frame.tag, frame.slot) == (0, 0)
    prod.close()
    with pytest.raises(conveyor.ConveyorError):
        prod.put(sent[0], timeout=0)
    del prod, cons, ring
    gc.collect()
    assert same_bits(x, sent[0]) and same_bits(y, sent[1].T) and float(kept_loan.sum()) == 60.0
    assert same_bits(np.asarray(frame), sent[0]) and frame.address == x.ctypes.data
    del x
    gc.collect()
    assert same_bits(y, sent[1].T) and same_bits(np.asarray(frame), sent[0])
    del frame, kept_loan
    gc.collect()
    assert same_bits(y, sent[1].T)
    del y
    gc.collect()


@pytest.mark.parametrize("backing", ["memfd", "named", "anonymous"])
def test_views_outlive_close_and_collection_without_a_crash(backing):
    # In a forked copy, so a crash fails this test instead of ending the run.
    assert in_forked_copy(lambda: _touch_after_close(backing)) == 0
