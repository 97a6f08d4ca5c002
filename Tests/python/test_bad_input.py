"""Bad input raises the right exception and changes nothing: the ring's counters are the
same, no loan is left outstanding, nothing is left in /dev/shm or among the open file
descriptors, and the ring still carries a frame afterwards."""
import support  # first: skips this module under `unittest discover` without the package

import errno
import fcntl
import os

import numpy as np
import pytest

import conveyor
from support import LIMIT, Pair, frame_of, open_fds, same_bits, shm_path

GOOD = np.arange(20, dtype=np.float64).reshape(4, 5)


@pytest.fixture
def pair():
    p = Pair(slots=2, shape=(4, 5))
    yield p
    p.close()


def assert_unchanged_and_usable(p, stats_before):
    assert p.ring.stats() == stats_before
    p.prod.put(GOOD, timeout=0, tag=99)  # no loan outstanding, nothing half-done
    x = p.cons.receive(timeout=LIMIT)
    assert frame_of(x).tag == 99 and same_bits(x, GOOD)
    with p.prod.loan(timeout=0) as out:
        out[...] = GOOD
    assert same_bits(p.cons.receive(timeout=LIMIT), GOOD)


BAD_PUTS = {
    "non-contiguous": (lambda: np.zeros((4, 10))[:, ::2], conveyor.InvalidArgument),
    "Fortran order": (lambda: np.asfortranarray(np.zeros((4, 5))), conveyor.InvalidArgument),
    "negative strides": (lambda: np.zeros(20)[::-1], conveyor.InvalidArgument),
    "int64": (lambda: np.zeros(20, dtype=np.int64), conveyor.InvalidArgument),
    "complex128": (lambda: np.zeros(10, dtype=np.complex128), conveyor.InvalidArgument),
    "float16": (lambda: np.zeros(20, dtype=np.float16), conveyor.InvalidArgument),
    "big-endian float64": (lambda: np.zeros(20, dtype=">f8"), conveyor.InvalidArgument),
    "bool": (lambda: np.zeros(20, dtype=bool), conveyor.InvalidArgument),
    "object": (lambda: np.array([1.0, "x", None], dtype=object), conveyor.InvalidArgument),
    "structured": (lambda: np.zeros(4, dtype=[("a", "f8"), ("b", "f8")]), conveyor.InvalidArgument),
    "rank 5": (lambda: np.zeros((1, 2, 1, 2, 1)), conveyor.InvalidArgument),
    "larger than a slot": (lambda: np.zeros(21), conveyor.TooLarge),
    "much larger than a slot": (lambda: np.zeros((1000, 1000), dtype=np.uint8), conveyor.TooLarge),
}


@pytest.mark.parametrize("case", sorted(BAD_PUTS))
def test_put_refuses_an_array_it_cannot_send(pair, case):
    make, error = BAD_PUTS[case]
    before = pair.ring.stats()
    with pytest.raises(error):
        pair.prod.put(make(), timeout=0)
    assert_unchanged_and_usable(pair, before)


BAD_LOANS = {
    "rank 5": (dict(shape=(1, 1, 1, 1, 1)), conveyor.InvalidArgument),
    "negative extent": (dict(shape=(4, -5)), conveyor.InvalidArgument),
    "larger than a slot": (dict(shape=(4, 6)), conveyor.TooLarge),
    "int32": (dict(shape=(4,), dtype=np.int32), conveyor.InvalidArgument),
    "object": (dict(shape=(4,), dtype=object), conveyor.InvalidArgument),
    "negative timeout": (dict(timeout=-1.0), conveyor.InvalidArgument),
}


@pytest.mark.parametrize("case", sorted(BAD_LOANS))
def test_loan_refuses_a_frame_it_cannot_lend(pair, case):
    kwargs, error = BAD_LOANS[case]
    before = pair.ring.stats()
    with pytest.raises(error):
        pair.prod.loan(**kwargs)
    assert_unchanged_and_usable(pair, before)


@pytest.mark.parametrize("timeout", [-1, -0.001, -1e-9, float("-inf"), float("nan")])
def test_a_negative_timeout_is_refused_by_every_blocking_call(pair, timeout):
    before = pair.ring.stats()
    with pytest.raises(conveyor.InvalidArgument):
        pair.cons.receive(timeout=timeout)
    with pytest.raises(conveyor.InvalidArgument):
        pair.prod.put(GOOD, timeout=timeout)
    with pytest.raises(conveyor.InvalidArgument):
        pair.prod.loan(timeout=timeout)
    assert_unchanged_and_usable(pair, before)


BAD_RINGS = {
    "slots 0": dict(slots=0, shape=(4,), dtype=np.float64),
    "slots -1": dict(slots=-1, shape=(4,), dtype=np.float64),
    "slots above the maximum": dict(slots=65537, shape=(4,), dtype=np.float64),
    "rank 5": dict(slots=2, shape=(1, 1, 1, 1, 1), dtype=np.float64),
    "negative extent": dict(slots=2, shape=(-4,), dtype=np.float64),
    "int64": dict(slots=2, shape=(4,), dtype=np.int64),
    "object": dict(slots=2, shape=(4,), dtype=object),
    "name without slash": dict(slots=2, shape=(4,), dtype=np.float64, name="cvpy-no-slash"),
    "name with two slashes": dict(slots=2, shape=(4,), dtype=np.float64, name="/cvpy/x"),
    "name too long": dict(slots=2, shape=(4,), dtype=np.float64, name="/" + "x" * 250),
}


@pytest.mark.parametrize("case", sorted(BAD_RINGS))
def test_a_ring_that_cannot_be_made_is_refused(case):
    fds = open_fds()
    with pytest.raises(conveyor.InvalidArgument):
        conveyor.Ring(**BAD_RINGS[case])
    assert open_fds() == fds


def test_a_taken_name_is_refused_and_its_ring_is_untouched():
    ring = support.make_ring("named", slots=2, shape=(4, 5))
    with ring.producer() as prod:
        prod.put(GOOD, timeout=0, tag=1)
        before = ring.stats()
        fds = open_fds()
        with pytest.raises(conveyor.Exists) as caught:
            conveyor.Ring(slots=3, shape=(8,), dtype=np.float64, name=ring.name)
        assert isinstance(caught.value, FileExistsError)
        assert open_fds() == fds and ring.stats() == before
        assert os.path.exists(shm_path(ring.name))
        with ring.consumer() as cons:
            x = cons.receive(timeout=0)
            assert frame_of(x).tag == 1 and same_bits(x, GOOD)
            del x
    ring.close()
    assert not os.path.exists(shm_path(ring.name))


def test_attaching_a_missing_name_is_a_system_error():
    with pytest.raises(conveyor.SystemCallFailed) as caught:
        conveyor.Ring.attach(support.ring_name("missing"))
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOENT
    with pytest.raises(conveyor.InvalidArgument):
        conveyor.Ring.attach("no-slash")


# ---- garbage in shared memory ----------------------------------------------------------

def real_ring_bytes():
    """The bytes of a live named ring with a frame in it (then closed and unlinked)."""
    ring = support.make_ring("named", slots=2, shape=(512,))
    with ring.producer() as prod:
        prod.put(np.ones(512), timeout=0)
        with open(shm_path(ring.name), "rb") as f:
            data = f.read()
    ring.close()
    assert len(data) == ring.mapped_bytes
    return bytearray(data)


def garbage_cases():
    page = support.page_size()
    real = real_ring_bytes()
    version = bytearray(real)
    version[8:12] = (int.from_bytes(real[8:12], "little") + 100).to_bytes(4, "little")
    geometry = bytearray(real)  # slot_count (offset 16) no longer matches the offsets
    geometry[16:20] = (int.from_bytes(real[16:20], "little") + 1).to_bytes(4, "little")
    return {
        "empty": (b"", conveyor.NotARing),
        "zeros": (bytes(4 * page), conveyor.NotARing),
        "random bytes": (os.urandom(16 * page), conveyor.NotARing),
        "text": (b"not a ring\n" * 1000, conveyor.NotARing),
        "magic only": (bytes(real[:8]), conveyor.Truncated),
        "header, slots cut off": (bytes(real[: len(real) - page]), conveyor.Truncated),
        "another layout version": (bytes(version), conveyor.VersionMismatch),
        "impossible geometry": (bytes(geometry), conveyor.RingCorrupt),
    }


GARBAGE = sorted(["empty", "zeros", "random bytes", "text", "magic only", "header, slots cut off",
                  "another layout version", "impossible geometry"])


@pytest.mark.parametrize("case", GARBAGE)
def test_attaching_garbage_by_name_raises_and_changes_nothing(case):
    data, error = garbage_cases()[case]
    name = support.ring_name("garbage")
    with open(shm_path(name), "xb") as f:
        f.write(data)
    try:
        fds = open_fds()
        with pytest.raises(error) as caught:
            conveyor.Ring.attach(name)
        assert name in str(caught.value)
        assert open_fds() == fds
        with open(shm_path(name), "rb") as f:
            assert f.read() == data  # not a byte written, not unlinked
    finally:
        os.unlink(shm_path(name))
    pair = Pair(slots=2, shape=(4, 5))  # and rings still work
    assert_unchanged_and_usable(pair, pair.ring.stats())
    pair.close()


class _Descriptor:
    """Stands in for multiprocessing.reduction.DupFd in a memfd ring's pickle."""

    def __init__(self, fd):
        self.fd = fd

    def detach(self):
        return os.dup(self.fd)


class _SpawningPopen:
    """What multiprocessing.reduction.DupFd consults while a child is being spawned."""

    def duplicate_for_child(self, fd):
        return fd

    def DupFd(self, fd):  # noqa: N802 - multiprocessing's name
        return _Descriptor(fd)


def rebuild_on_fd(fd):
    """What unpickling a memfd ring does in a spawned child, on the descriptor `fd`."""
    from multiprocessing import context
    template = support.make_ring("memfd", slots=2, shape=(512,))
    context.set_spawning_popen(_SpawningPopen())
    try:
        rebuild, args = template.__reduce__()[:2]
    finally:
        context.set_spawning_popen(None)
        template.close()
    assert isinstance(args[0], _Descriptor), args
    return rebuild(_Descriptor(fd), *args[1:])


def test_the_descriptor_path_attaches_a_real_memfd_ring():
    # The harness of the test below, on a ring that is not garbage: it must work.
    from multiprocessing import context
    ring = support.make_ring("memfd", slots=2, shape=(4, 5))
    context.set_spawning_popen(_SpawningPopen())
    try:
        rebuild, args = ring.__reduce__()[:2]
    finally:
        context.set_spawning_popen(None)
    copy = rebuild(*args)
    assert (copy.slots, copy.slot_bytes, copy.backing) == (2, ring.slot_bytes, "memfd")
    with copy.producer() as prod, ring.consumer() as cons:
        prod.put(GOOD, timeout=0, tag=3)
        x = cons.receive(timeout=0)
        assert frame_of(x).tag == 3 and same_bits(x, GOOD)
        del x
    copy.close()
    ring.close()


@pytest.mark.parametrize("case", GARBAGE)
@pytest.mark.parametrize("sealed", [True, False])
def test_attaching_garbage_by_descriptor_raises_and_changes_nothing(case, sealed):
    data, error = garbage_cases()[case]
    fd = os.memfd_create("cvpy-garbage", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.write(fd, data)
        if sealed:
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW)
        elif case in ("header, slots cut off", "another layout version", "impossible geometry"):
            # A whole ring header in a file that can be resized: refused for that first
            # (conveyor.h: attach_fd takes sealed memfds only).
            error = conveyor.NotSealed
        fds = open_fds()
        with pytest.raises(error):
            rebuild_on_fd(fd)
        assert open_fds() == fds
        assert os.pread(fd, len(data) + 1, 0) == data
    finally:
        os.close(fd)
