"""Under `mpirun -n 4`: the question's pipeline with h (x*x) on rank 1, g (3x) on rank 2
and f (x+1) on rank 3 gives, on rank 0, the same checksum as run() on one machine, bit
for bit. Prints `mpi_seed: ok ...` on rank 0 (scripts/test-mpi-python checks it).

    mpirun -n 4 python Tests/python/mpi/mpi_seed.py [items]
"""

import sys
import time

import numpy as np

import conveyor

ITEMS = int(sys.argv[1]) if len(sys.argv) > 1 else 40
SHAPE = (250, 400)


def xs(i, out):
    np.random.default_rng([2016, i]).random(out=out)


def h(x, out):
    np.multiply(x, x, out=out)


def g(x, out):
    np.multiply(x, 3.0, out=out)


def f(x, out):
    np.add(x, 1.0, out=out)


def pipeline(placed):
    pipe = conveyor.Pipeline(xs, count=ITEMS, shape=SHAPE)
    return (pipe.stage(h, rank=1 if placed else None).stage(g, rank=2 if placed else None)
            .stage(f, rank=3 if placed else None))


def checksum(total, x):
    return total + float(x.sum())


def main():
    t0 = time.perf_counter()
    across = pipeline(True).run_across_ranks(checksum, 0.0)
    t_across = time.perf_counter() - t0
    from conveyor import _mpi
    if _mpi.rank() != 0:
        return
    t0 = time.perf_counter()
    local = pipeline(False).run(checksum, 0.0)
    t_local = time.perf_counter() - t0
    if across.result != local.result:
        print(f"mpi_seed: FAILED checksum {across.result!r} across ranks, {local.result!r} by run()")
        sys.exit(1)
    for stats in across.ranks:
        print(f"mpi_seed: {stats}")
    sinks = across.ranks[0].segments[-1]["stages"][-1]
    if sinks["items"] != ITEMS:
        print(f"mpi_seed: FAILED the sink saw {sinks['items']} items")
        sys.exit(1)
    print(f"mpi_seed: ok checksum {across.result!r} {ITEMS} items of {SHAPE}: across ranks "
          f"{t_across / ITEMS * 1e3:.2f} ms/item, run() {t_local / ITEMS * 1e3:.2f} ms/item")


if __name__ == "__main__":
    main()
