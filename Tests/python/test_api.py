"""The API as the spec names it: Ring attributes and stats, loans (with, commit, abandon,
other shapes and dtypes, ranks 0 to 4), put (a copy), receive and iteration, end of
stream, closing, Busy sides, attaching a named ring by name."""
import support  # first: skips this module under `unittest discover` without the package

import numpy as np
import pytest

import conveyor
from support import LIMIT, Pair, frame_of, same_bits

STATS_KEYS = {"frames_committed", "bytes_committed", "frames_released", "producer_waits",
              "producer_wakes", "consumer_waits", "consumer_wakes", "peak_occupancy",
              "slot_count", "closed", "slot_bytes", "mapped_bytes"}


def test_version():
    # The package and the C core it links are one release (scripts/check-versions holds
    # the header, meson.build, pyproject.toml and the changelog to the same number).
    assert conveyor.__version__ == "0.6.0"
    assert conveyor.c_version() == conveyor.__version__


@pytest.mark.parametrize("backing", ["memfd", "named", "anonymous"])
def test_a_ring_describes_itself(backing):
    ring = support.make_ring(backing, slots=3, shape=(500, 20), dtype=np.float32)
    assert (ring.slots, ring.slot_bytes, ring.shape, ring.dtype) == (3, 40_000, (500, 20), np.dtype(np.float32))
    if backing == "named":
        assert ring.name.startswith("/" + support.SHM_PREFIX)
    else:
        assert ring.name is None
    assert ring.mapped_bytes >= 3 * 40_000
    stats = ring.stats()
    assert STATS_KEYS <= set(stats)
    assert (stats["slot_count"], stats["slot_bytes"], stats["mapped_bytes"]) == (3, 40_000, ring.mapped_bytes)
    assert stats["frames_committed"] == stats["closed"] == 0
    ring.close()


def test_a_ring_is_a_context_manager():
    with conveyor.Ring(slots=2, shape=(4,), dtype=np.float64, name=support.ring_name()) as ring:
        path = support.shm_path(ring.name)
        assert support.os.path.exists(path)
    assert not support.os.path.exists(path)


def test_a_loan_in_a_with_block_is_committed_with_its_tag():
    p = Pair(slots=2, shape=(4, 5))
    with p.prod.loan(tag=42) as out:
        assert isinstance(out, np.ndarray) and out.flags.writeable and out.flags.c_contiguous
        assert out.shape == (4, 5) and out.dtype == np.float64
        out[...] = 1.5
    x = p.cons.receive(timeout=LIMIT)
    frame = frame_of(x)
    assert (frame.tag, frame.sequence) == (42, 0) and same_bits(x, np.full((4, 5), 1.5))
    assert frame.address == x.ctypes.data and frame.slot == 0
    del x, frame
    p.close()


def test_an_exception_in_a_loan_block_abandons_the_loan():
    p = Pair(slots=2, shape=(4, 5))
    with pytest.raises(RuntimeError, match="in the block"):
        with p.prod.loan() as out:
            out[...] = 9.0
            raise RuntimeError("in the block")
    assert p.ring.stats()["frames_committed"] == 0
    with pytest.raises(conveyor.Timeout):
        p.cons.receive(timeout=0)
    with p.prod.loan(tag=1) as out:  # the slot was given back: loan again at once
        out[...] = 1.0
    x = p.cons.receive(timeout=LIMIT)
    assert frame_of(x).tag == 1 and same_bits(x, np.ones((4, 5)))
    del x
    p.close()


def test_loan_commit_and_abandon_without_with():
    p = Pair(slots=2, shape=(4, 5))
    loan = p.prod.loan(tag=3)
    loan.array[...] = 3.0
    loan.abandon()
    loan = p.prod.loan(tag=4)
    loan.array[...] = 4.0
    loan.commit()
    x = p.cons.receive(timeout=LIMIT)
    assert frame_of(x).tag == 4 and same_bits(x, np.full((4, 5), 4.0))
    assert p.ring.stats()["frames_committed"] == 1
    with pytest.raises(conveyor.ConveyorError):
        loan.commit()  # once only
    del x
    p.close()


@pytest.mark.parametrize("shape", [(), (7,), (2, 3), (2, 1, 3), (1, 2, 2, 2)])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_frames_of_any_rank_up_to_4_and_every_dtype(shape, dtype):
    p = Pair(slots=2, shape=(64,), dtype=np.float64)  # 512-byte slots
    data = (np.arange(int(np.prod(shape)), dtype=np.float64) * 1.25 % 256).astype(dtype).reshape(shape)
    with p.prod.loan(shape=shape, dtype=dtype, tag=1) as out:
        assert out.shape == shape and out.dtype == np.dtype(dtype)
        out[...] = data
    p.prod.put(data, timeout=0, tag=2)
    for tag in (1, 2):
        x = p.cons.receive(timeout=LIMIT)
        assert frame_of(x).tag == tag
        assert x.shape == shape and x.dtype == np.dtype(dtype) and same_bits(x, data)
        del x
    p.close()


def test_put_copies_the_array():
    p = Pair(slots=2, shape=(4, 5))
    a = np.arange(20.0).reshape(4, 5)
    p.prod.put(a, timeout=0, tag=8)
    a[...] = -1.0
    x = p.cons.receive(timeout=LIMIT)
    assert frame_of(x).tag == 8 and same_bits(x, np.arange(20.0).reshape(4, 5))
    assert x.ctypes.data != a.ctypes.data
    del x
    p.close()


def test_iteration_ends_at_end_of_stream_and_so_does_receive():
    p = Pair(slots=4, shape=(3,))
    for t in range(3):
        p.prod.put(np.full(3, float(t)), timeout=0, tag=t)
    p.prod.close()
    p.prod.close()  # twice is fine
    assert [float(x[0]) for x in p.cons] == [0.0, 1.0, 2.0]
    with pytest.raises(conveyor.EndOfStream):
        p.cons.receive(timeout=0)
    assert p.ring.stats()["closed"] == 1
    with pytest.raises(conveyor.Closed):
        p.prod.put(np.zeros(3), timeout=0)
    p.cons.close()
    p.ring.close()


def test_a_clean_producer_with_block_closes_the_stream():
    ring = conveyor.Ring(slots=2, shape=(3,), dtype=np.float64)
    with ring.producer() as prod:
        prod.put(np.ones(3), timeout=0)
    with ring.consumer() as cons:
        assert [x.sum() for x in cons] == [3.0]
    ring.close()


def test_an_exception_leaving_a_producer_with_block_does_not_close():
    ring = conveyor.Ring(slots=2, shape=(3,), dtype=np.float64)
    with pytest.raises(RuntimeError):
        with ring.producer() as prod:
            prod.put(np.ones(3), timeout=0)
            raise RuntimeError("the producer failed")
    assert ring.stats()["closed"] == 0
    with ring.consumer() as cons:
        assert cons.receive(timeout=LIMIT).sum() == 3.0
        with pytest.raises(conveyor.PeerDied):
            cons.receive(timeout=LIMIT)
    ring.close()


def test_each_side_has_one_live_handle():
    ring = conveyor.Ring(slots=2, shape=(3,), dtype=np.float64)
    prod, cons = ring.producer(), ring.consumer()
    with pytest.raises(conveyor.Busy):
        ring.producer()
    with pytest.raises(conveyor.Busy):
        ring.consumer()
    prod.put(np.ones(3), timeout=0)  # the refused claims changed nothing
    assert cons.receive(timeout=0).sum() == 3.0
    prod.close()
    cons.close()
    ring.close()


def test_attach_by_name_sees_the_rings_geometry_and_frames_carry_their_own():
    ring = support.make_ring("named", slots=3, shape=(6,), dtype=np.float64)
    other = conveyor.Ring.attach(ring.name)
    assert (other.slots, other.slot_bytes, other.name, other.backing) == (3, 48, ring.name, "named")
    assert other.mapped_bytes == ring.mapped_bytes
    assert other.shape is None and other.dtype is None  # not recorded in the ring
    with ring.producer() as prod:
        prod.put(np.arange(6, dtype=np.float32).reshape(2, 3), timeout=0, tag=1)
    with other.consumer() as cons:
        x = cons.receive(timeout=0)
        assert x.dtype == np.float32 and x.shape == (2, 3) and frame_of(x).tag == 1
        del x
    other.close()
    assert support.os.path.exists(support.shm_path(ring.name))  # only the creator unlinks
    ring.close()
