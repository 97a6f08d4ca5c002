"""Zero copy across processes: the array a consumer receives is the ring's slot itself.

A child process (fork or spawn) fills loaned slots in place; the test process receives
each frame and checks that the array's data pointer is the Frame's address, that this
address lies in the mapping of the ring's memory (the memfd or the /dev/shm object) at
exactly the frame's slot, and that the child's writes are there, bit for bit.
"""
import support  # first: skips this module under `unittest discover` without the package

import multiprocessing

import numpy as np
import pytest

import conveyor
import peers
from support import LIMIT, data_address, frame_of, join, mapping_of, recv, same_bits, slot_offset

SHAPE = (64, 64)  # 32 KiB of float64: whole pages, so a slot's stride is its size
SLOTS = 3
COUNT = 7


@pytest.mark.parametrize("backing", ["memfd", "named"])
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_received_array_is_the_slot_a_child_wrote(children, method, backing):
    ring = support.make_ring(backing, slots=SLOTS, shape=SHAPE)
    assert ring.slot_bytes == 64 * 64 * 8
    here, there = multiprocessing.Pipe()
    child = children.start(method, peers.produce_uniform, ring, COUNT, SHAPE, 2016, there)
    loan_addresses, addresses = [], []
    with ring.consumer() as cons:
        for t in range(COUNT):
            x = cons.receive(timeout=LIMIT)
            frame = frame_of(x)
            assert (frame.sequence, frame.tag, frame.slot) == (t, t, t % SLOTS)
            # The array's data pointer is the frame's, seen both ways numpy reports it.
            assert data_address(x) == x.ctypes.data == frame.address
            assert x.shape == SHAPE and x.dtype == np.float64 and x.flags.c_contiguous
            # ...and it is the frame's slot in this process's mapping of the ring.
            start, end, path = mapping_of(frame.address)
            assert end - start == ring.mapped_bytes, (hex(start), hex(end), ring.mapped_bytes)
            assert frame.address - start == slot_offset(ring, frame.slot)
            if backing == "named":
                assert path == support.shm_path(ring.name), path
            else:
                assert path.startswith("/memfd:"), path
            # The child's writes are visible in place.
            assert same_bits(x, support.uniform_frame(SHAPE, 2016, t))
            kind, tag, address = recv(here, "the child's loan address")
            assert (kind, tag) == ("loan", t)
            loan_addresses.append(address)
            addresses.append(frame.address)
            del x, frame
        with pytest.raises(conveyor.EndOfStream):
            cons.receive(timeout=LIMIT)
    assert recv(here, "the child's end") == ("done", COUNT)
    join(child, "producer child")
    # The child's loans were the same slots in its own mapping: under fork that mapping is
    # the inherited one, at the same addresses as ours; under spawn it is elsewhere, with
    # the same layout.
    if method == "fork":
        assert loan_addresses == addresses
    for t, address in enumerate(loan_addresses):
        assert address - loan_addresses[0] == (t % SLOTS) * ring.slot_bytes
    ring.close()
