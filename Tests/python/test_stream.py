"""10^5 small frames from a child process, every one checked: tags in order, and the
stream checksum the producer computed equals the consumer's and the one computed here."""
import support  # first: skips this module under `unittest discover` without the package

import multiprocessing
import time

import numpy as np
import pytest

import peers
from support import frame_of, join, recv

COUNT = 100_000


def expected_checksum(count):
    t = np.arange(count, dtype=np.float64)
    frames = np.stack([t, t + 0.5, t + 0.25, 0.0 - t], axis=1)  # as peers.stream_small_frames: +0.0 at t=0
    words = frames.view(np.uint64)
    odd = np.arange(4, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    per_frame = (words * odd).sum(axis=1, dtype=np.uint64)
    return int(((np.arange(count, dtype=np.uint64) + np.uint64(1)) * per_frame).sum(dtype=np.uint64))


@pytest.mark.parametrize("backing", ["memfd", "named"])
def test_a_hundred_thousand_frames_cross_processes_intact(children, backing):
    ring = support.make_ring(backing, slots=64, shape=(4,))
    here, there = multiprocessing.Pipe()
    start = time.monotonic()
    child = children.start("fork", peers.stream_small_frames, ring, COUNT, there)
    sums = []
    next_tag = 0
    with ring.consumer() as cons:
        for x in cons:
            tag = frame_of(x).tag
            if tag != next_tag:
                raise AssertionError(f"frame {next_tag} came as tag {tag}")
            next_tag += 1
            sums.append((tag, support.frame_checksum(x)))
        del x  # the loop's last frame, still bound: its slot comes back now
    seconds = time.monotonic() - start
    produced = recv(here, "the producer's checksum")
    join(child, "producer child")
    assert next_tag == COUNT
    received = support.stream_checksum(sums)
    assert received == produced == expected_checksum(COUNT)
    stats = ring.stats()
    assert stats["frames_committed"] == stats["frames_released"] == COUNT
    assert stats["bytes_committed"] == COUNT * 32
    print(f"{COUNT} frames over a {backing} ring in {seconds:.2f} s")
    ring.close()
