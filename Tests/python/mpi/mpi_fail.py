"""Under `mpirun -n 4`: stage g, on rank 2, raises on item 5; rank 0 raises RankFailed
naming rank 2, stage g and item 5, the other ranks raise RankFailed too, and every rank
ends cleanly (links destroyed, stage processes reaped). Prints `mpi_fail: ok ...` on
rank 0 and `mpi_fail: rank R stopped ...` on the others.

    mpirun -n 4 python Tests/python/mpi/mpi_fail.py
"""

import sys

import numpy as np

import conveyor
from conveyor import _mpi


def xs(i, out):
    np.random.default_rng([2016, i]).random(out=out)


def h(x, out):
    np.multiply(x, x, out=out)


def g(x, out):
    if g.calls == 5:
        raise ValueError("g refuses item 5")
    g.calls += 1
    np.multiply(x, 3.0, out=out)


g.calls = 0


def main():
    pipe = (conveyor.Pipeline(xs, count=40, shape=(250, 400)).stage(h, rank=1).stage(g, rank=2)
            .stage(lambda x, out: np.add(x, 1.0, out=out), name="f", rank=3))
    try:
        pipe.run_across_ranks(lambda total, x: total + float(x.sum()), 0.0, liveness=5.0)
    except conveyor.RankFailed as error:
        rank = _mpi.rank()
        if rank != 0:
            print(f"mpi_fail: rank {rank} stopped: {str(error).splitlines()[0]}")
            return
        if (error.rank, error.stage, error.item, error.exception_type) != (2, "g", 5, "ValueError"):
            print(f"mpi_fail: FAILED rank 0 raised {error!r}: rank {error.rank}, stage "
                  f"{error.stage}, item {error.item}, type {error.exception_type}")
            sys.exit(1)
        if "g refuses item 5" not in str(error):
            print(f"mpi_fail: FAILED the message lacks the stage's: {error}")
            sys.exit(1)
        print(f"mpi_fail: ok rank 0 raised: {str(error).splitlines()[0]}")
        return
    print(f"mpi_fail: FAILED rank {_mpi.rank()} raised nothing")
    sys.exit(1)


if __name__ == "__main__":
    main()
