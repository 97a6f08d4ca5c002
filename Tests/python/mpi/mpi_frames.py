"""Under `mpirun -n 2`: frames cross a conveyor._mpi.Link intact: float32 and float64
arrays, bytes, empty frames, a frame bigger than chunk_bytes (many messages), tags, end
of stream, the statistics; and a receive into a buffer too small raises MPIError.
Prints `mpi_frames: ok ...` on rank 1 (scripts/test-mpi-python checks it).

    mpirun -n 2 python Tests/python/mpi/mpi_frames.py
"""

import sys

import numpy as np

import conveyor
from conveyor import _mpi

CHUNK = 1000


def frames():
    rng = np.random.default_rng(7)
    return [rng.random((3, 4)), rng.random((5, 7)).astype(np.float32), b"hello, rank 1",
            np.zeros((0, 3)), np.zeros((4, 0), np.float32), b"",
            rng.random((17, 333)), rng.random((100, 50)).astype(np.float32)]


def expect(ok, what):
    if not ok:
        print(f"mpi_frames: FAILED {what}")
        sys.exit(1)


def main():
    _mpi.init()
    expect(_mpi.size() == 2, "run it with mpirun -n 2")
    sent = frames()
    if _mpi.rank() == 0:
        with _mpi.Link(1, 0, True, chunk_bytes=CHUNK, liveness=5.0, heartbeat=0.02) as link:
            for t, x in enumerate(sent):
                link.send(x, tag=100 + t)
            link.send(np.ones(10))  # for the receive into a buffer too small
            try:  # the receiver broke its end on purpose (a buffer too small) and left
                link.close()
            except conveyor.PeerDead:
                pass
            expect(link.stats()["frames"] == len(sent) + 1, f"sender stats {link.stats()}")
    else:
        with _mpi.Link(0, 0, False, liveness=5.0, heartbeat=0.02) as link:
            for t, x in enumerate(sent):
                dtype, shape, tag = link.next()
                want = np.asarray(np.frombuffer(x, np.uint8) if isinstance(x, bytes) else x)
                expect((dtype, shape, tag) == (want.dtype.name, want.shape, 100 + t),
                       f"frame {t} described {(dtype, shape, tag)}")
                got = np.empty(shape, dtype)
                link.receive_into(got)
                expect(np.array_equal(got, want), f"frame {t} arrived different")
            link.next()
            try:
                link.receive_into(bytearray(8))
                expect(False, "a receive into 8 bytes of an 80-byte frame did not raise")
            except conveyor.MPIError as error:
                expect(error.name == "CONVEYOR_E_TOO_LARGE", f"too small raised {error!r}")
            stats = link.stats()
            expect(stats["frames"] == len(sent), f"receiver stats {stats}")
            print(f"mpi_frames: ok {len(sent)} frames (float64, float32, bytes, empty, over "
                  f"{CHUNK}-byte chunks), {stats['bytes']} bytes in {stats['messages']} messages")
    _mpi.finalize()


if __name__ == "__main__":
    main()
