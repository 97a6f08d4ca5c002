"""Rings cross processes: memfd and named rings under multiprocessing fork and spawn (by
pickling: a memfd by its descriptor, a named ring by its name), anonymous rings under
fork only; who removes a named ring's name, also when a child is SIGKILLed."""
import support  # first: skips this module under `unittest discover` without the package

import gc
import multiprocessing
import os
import pickle
import sys

import numpy as np
import pytest

import conveyor
import peers
from support import LIMIT, frame_of, join, kill_and_reap, recv, same_bits, shm_path

SHAPE = (16, 8)
SEED = 11


def expected_sums(count):
    return [(t, support.frame_checksum(support.uniform_frame(SHAPE, SEED, t))) for t in range(count)]


@pytest.mark.parametrize("backing", ["memfd", "named"])
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_child_consumes_what_this_process_produces(children, method, backing):
    ring = support.make_ring(backing, slots=2, shape=SHAPE)
    here, there = multiprocessing.Pipe()
    child = children.start(method, peers.consume_checksums, ring, there)
    with ring.producer() as prod:
        for t in range(9):
            prod.put(support.uniform_frame(SHAPE, SEED, t), timeout=LIMIT, tag=t)
    assert recv(here, "the child's checksums") == expected_sums(9)
    join(child, "consumer child")
    ring.close()


@pytest.mark.parametrize("backing", ["memfd", "named", "anonymous"])
def test_a_forked_child_produces_for_this_process(children, backing):
    ring = support.make_ring(backing, slots=2, shape=SHAPE)
    child = children.start("fork", peers.put_uniform, ring, 9, SHAPE, SEED)
    with ring.consumer() as cons:
        got = [(frame_of(x).tag, support.frame_checksum(x)) for x in cons]
    assert got == expected_sums(9)
    join(child, "producer child")
    ring.close()


def test_a_spawned_child_produces_into_a_memfd_ring(children):
    ring = support.make_ring("memfd", slots=2, shape=SHAPE)
    child = children.start("spawn", peers.put_uniform, ring, 5, SHAPE, SEED)
    with ring.consumer() as cons:
        got = [(frame_of(x).tag, support.frame_checksum(x)) for x in cons]
    assert got == expected_sums(5)
    join(child, "producer child")
    ring.close()


def test_an_anonymous_ring_does_not_pickle():
    ring = support.make_ring("anonymous")
    for dumps in (pickle.dumps, multiprocessing.reduction.ForkingPickler.dumps):
        with pytest.raises(conveyor.ConveyorError) as caught:
            dumps(ring)
        assert "memfd" in str(caught.value) and "fork" in str(caught.value)
    ring.close()


@pytest.mark.parametrize("backing", ["memfd", "named", "anonymous"])
def test_producers_and_consumers_do_not_pickle(backing):
    ring = support.make_ring(backing)
    with ring.producer() as prod, ring.consumer() as cons:
        for side in (prod, cons):
            with pytest.raises(TypeError):
                pickle.dumps(side)
    ring.close()


def test_a_named_ring_pickles_to_its_name_and_the_copy_does_not_unlink():
    ring = support.make_ring("named", slots=3, shape=(2, 3), dtype=np.float32)
    copy = pickle.loads(pickle.dumps(ring))
    assert (copy.name, copy.slots, copy.slot_bytes, copy.shape, copy.dtype, copy.backing) == \
        (ring.name, 3, 24, (2, 3), np.dtype(np.float32), "named")
    with copy.producer() as prod:
        prod.put(np.ones((2, 3), np.float32), timeout=0, tag=5)
    copy.close()
    del copy
    gc.collect()
    assert os.path.exists(shm_path(ring.name))
    with ring.consumer() as cons:
        x = cons.receive(timeout=0)
        assert frame_of(x).tag == 5 and same_bits(x, np.ones((2, 3), np.float32))
        del x
    ring.close()
    assert not os.path.exists(shm_path(ring.name))


def test_a_named_ring_is_unlinked_when_its_creator_closes_it():
    ring = support.make_ring("named")
    path = shm_path(ring.name)
    assert os.path.exists(path)
    ring.close()
    assert not os.path.exists(path)
    ring.close()  # twice is fine


def test_a_named_ring_is_unlinked_when_its_creator_collects_it():
    ring = support.make_ring("named")
    path = shm_path(ring.name)
    with ring.producer() as prod:
        prod.put(np.zeros(8), timeout=0)
    del prod, ring
    gc.collect()
    assert not os.path.exists(path)


def test_a_named_ring_is_unlinked_when_its_creator_exits(children):
    name = support.ring_name()
    # The Ring is leaked on purpose (an extra reference nothing drops, as a daemon thread
    # or a module global might hold it), so its collection cannot be what unlinks: only
    # the exit handler can.
    code = ("import ctypes, sys, numpy as np, conveyor\n"
            f"ring = conveyor.Ring(slots=2, shape=(8,), dtype=np.float64, name={name!r})\n"
            "prod = ring.producer()\n"
            "for leaked in (ring, prod):\n"
            "    ctypes.pythonapi.Py_IncRef(ctypes.py_object(leaked))\n"
            "print('created', flush=True)\n"
            "sys.stdin.read()\n")
    proc = children.popen([sys.executable, "-c", code])
    assert support.read_line(proc.stdout, "the creator's 'created'") == "created\n"
    assert os.path.exists(shm_path(name))
    support.finish(proc, "creator")
    assert not os.path.exists(shm_path(name))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_child_never_unlinks_a_named_ring(children, method):
    ring = support.make_ring("named", slots=2, shape=SHAPE)
    here, there = multiprocessing.Pipe()
    # The child attaches by name on its own, and its copy of the Ring (pickled or
    # inherited) also goes away when it exits normally.
    child = children.start(method, peers.attach_and_exit, ring.name, there)
    assert recv(here, "the child's view of the ring") == (2, ring.slot_bytes)
    join(child, "attaching child")
    assert os.path.exists(shm_path(ring.name))
    child = children.start(method, peers.put_uniform, ring, 1, SHAPE, SEED)
    join(child, "producer child")
    assert os.path.exists(shm_path(ring.name))
    with ring.consumer() as cons:
        assert [frame_of(x).tag for x in cons] == [0]
    ring.close()
    assert not os.path.exists(shm_path(ring.name))


def test_a_forked_child_that_closes_and_exits_leaves_the_name(children):
    ring = support.make_ring("named", slots=2, shape=(8,))
    child = children.start("fork", peers.use_inherited_ring_then_exit_cleanly, ring)
    join(child, "forked child")
    assert os.path.exists(shm_path(ring.name))
    with ring.consumer() as cons:
        x = cons.receive(timeout=LIMIT)
        assert frame_of(x).tag == 1
        del x
    ring.close()
    assert not os.path.exists(shm_path(ring.name))


@pytest.mark.parametrize("backing", ["memfd", "named"])
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_sigkilled_child_leaves_nothing_behind(children, method, backing):
    # The autouse fixture checks /dev/shm after the test, libomp's files of the child's pid
    # included; here the ring also still works for the survivor.
    ring = support.make_ring(backing, slots=4, shape=(8,))
    here, there = multiprocessing.Pipe()
    child = children.start(method, peers.produce_then_hang, ring, 3, there)
    assert recv(here, "the child's 'ready'") == "ready"
    kill_and_reap(child)
    with ring.consumer() as cons:
        for t in range(3):
            x = cons.receive(timeout=LIMIT)
            assert frame_of(x).tag == t and same_bits(x, np.full(8, float(t)))
            del x
        with pytest.raises(conveyor.PeerDied):
            cons.receive(timeout=LIMIT)
    ring.close()
