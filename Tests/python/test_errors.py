"""One exception class per C status: .status and .name, the hierarchy the spec gives
(ConveyorError at the root, standard exceptions mixed in where they fit), and a message
that names the ring."""
import support  # first: skips this module under `unittest discover` without the package

import numpy as np
import pytest

import conveyor
from support import LIMIT, Pair

# class name -> (C status, C name, standard exception it must also be)
STATUSES = {
    "NullPointer": (1, "CONVEYOR_E_NULL_POINTER", None),
    "InvalidArgument": (2, "CONVEYOR_E_INVALID_ARGUMENT", ValueError),
    "SizeOverflow": (3, "CONVEYOR_E_OVERFLOW", ValueError),
    "Misaligned": (4, "CONVEYOR_E_MISALIGNED", ValueError),
    "Overlap": (5, "CONVEYOR_E_OVERLAP", ValueError),
    "Unsupported": (6, "CONVEYOR_E_UNSUPPORTED", None),
    "OutOfMemory": (7, "CONVEYOR_E_NO_MEMORY", MemoryError),
    "Timeout": (8, "CONVEYOR_E_TIMEOUT", TimeoutError),
    "EndOfStream": (9, "CONVEYOR_E_END_OF_STREAM", None),
    "Closed": (10, "CONVEYOR_E_CLOSED", None),
    "PeerDied": (11, "CONVEYOR_E_PEER_DEAD", None),
    "BadState": (12, "CONVEYOR_E_BAD_STATE", None),
    "WrongRole": (13, "CONVEYOR_E_WRONG_ROLE", None),
    "NotARing": (14, "CONVEYOR_E_NOT_A_RING", None),
    "VersionMismatch": (15, "CONVEYOR_E_VERSION", None),
    "Truncated": (16, "CONVEYOR_E_TRUNCATED", None),
    "RingCorrupt": (17, "CONVEYOR_E_CORRUPT", None),
    "Exists": (18, "CONVEYOR_E_EXISTS", FileExistsError),
    "Busy": (19, "CONVEYOR_E_BUSY", None),
    "SystemCallFailed": (20, "CONVEYOR_E_SYSTEM", OSError),
    "TooLarge": (21, "CONVEYOR_E_TOO_LARGE", ValueError),
    "NotSealed": (22, "CONVEYOR_E_NOT_SEALED", None),
}

SUBCLASSES_OF_INVALID_ARGUMENT = {"SizeOverflow", "Misaligned", "Overlap", "TooLarge"}


@pytest.mark.parametrize("name", sorted(STATUSES))
def test_every_status_has_its_class(name):
    cls = getattr(conveyor, name)
    _, _, standard = STATUSES[name]
    assert issubclass(cls, conveyor.ConveyorError) and issubclass(cls, Exception)
    if standard is not None:
        assert issubclass(cls, standard)
    if name in SUBCLASSES_OF_INVALID_ARGUMENT:
        assert issubclass(cls, conveyor.InvalidArgument)
    # No status class is another's, except the four kinds of invalid argument.
    for other in STATUSES:
        if other != name:
            expected = other == "InvalidArgument" and name in SUBCLASSES_OF_INVALID_ARGUMENT
            assert issubclass(cls, getattr(conveyor, other)) == expected, (name, other)


def test_timeout_is_a_timeout_error_with_status_name_and_ring():
    p = Pair()
    with pytest.raises(TimeoutError) as caught:
        p.cons.receive(timeout=0)
    e = caught.value
    assert isinstance(e, conveyor.Timeout) and isinstance(e, conveyor.ConveyorError)
    assert (e.status, e.name) == (8, "CONVEYOR_E_TIMEOUT")
    assert f"({e.name}) on ring memfd:" in str(e), str(e)
    p.close()


def check(e, cls_name, ring_name=None):
    status, c_name, _ = STATUSES[cls_name]
    assert type(e) is getattr(conveyor, cls_name), (type(e), cls_name)
    assert (e.status, e.name) == (status, c_name)
    assert f"({c_name})" in str(e), str(e)
    if ring_name is not None:
        assert f"on ring {ring_name}" in str(e), str(e)


def test_ring_errors_carry_their_status_and_the_rings_name():
    ring = support.make_ring("named", slots=1, shape=(4,))
    prod = ring.producer()
    with pytest.raises(conveyor.Busy) as caught:
        ring.producer()
    check(caught.value, "Busy", ring.name)
    cons = ring.consumer()
    with pytest.raises(conveyor.Timeout) as caught:
        cons.receive(timeout=0.001)
    check(caught.value, "Timeout", ring.name)
    with pytest.raises(conveyor.TooLarge) as caught:
        prod.put(np.zeros(5), timeout=0)
    check(caught.value, "TooLarge", ring.name)
    with pytest.raises(conveyor.InvalidArgument) as caught:
        cons.receive(timeout=-1)
    check(caught.value, "InvalidArgument", ring.name)
    prod.put(np.zeros(4), timeout=0)
    with pytest.raises(conveyor.Timeout) as caught:  # full
        prod.put(np.zeros(4), timeout=0)
    check(caught.value, "Timeout", ring.name)
    prod.close()
    with pytest.raises(conveyor.Closed) as caught:
        prod.loan(timeout=0)
    check(caught.value, "Closed", ring.name)
    assert cons.receive(timeout=LIMIT).shape == (4,)
    with pytest.raises(conveyor.EndOfStream) as caught:
        cons.receive(timeout=LIMIT)
    check(caught.value, "EndOfStream", ring.name)
    with pytest.raises(conveyor.Exists) as caught:
        conveyor.Ring(slots=1, shape=(4,), dtype=np.float64, name=ring.name)
    check(caught.value, "Exists", ring.name)
    cons.close()
    ring.close()
    missing = support.ring_name("missing")
    with pytest.raises(conveyor.SystemCallFailed) as caught:
        conveyor.Ring.attach(missing)
    check(caught.value, "SystemCallFailed", missing)


def test_kernel_errors_carry_their_status():
    x = np.zeros(64)
    with pytest.raises(conveyor.Overlap) as caught:
        conveyor.apply(x[1:33], [("square",)], out=x[:32])
    check(caught.value, "Overlap")
    with pytest.raises(conveyor.InvalidArgument) as caught:
        conveyor.set_threads(0)
    check(caught.value, "InvalidArgument")
    if not conveyor.has_openmp():
        with pytest.raises(conveyor.Unsupported) as caught:
            conveyor.set_threads(2)
        check(caught.value, "Unsupported")
