"""The question's pipeline written with conveyor.Ring: each stage its own process,
every array written once, in place, into a shared-memory slot and read there.

    python3 ring_version.py [SAMPLES]    (default 1000)

    source --ring--> h --ring--> g --ring--> f --ring--> this process (the sum)

A ring has one producer and one consumer; each stage process is the consumer of the
ring before it and the producer of the ring after it. A stage receives x as a
read-only view of its input slot and writes its result straight into a loaned slot of
the next ring (np.multiply(x, x, out=out): no temporary array). What crosses between
processes is a sequence number; nothing is pickled but the rings themselves, once, when
each process starts (a memfd ring pickles as its file descriptor).

The samples are the question's, from a seeded Generator (np.random.default_rng(2016)),
so the sum equals question.py's and serial.py's to the bit.
"""
import multiprocessing as mp
import sys
import time

import numpy as np

import conveyor

SHAPE = (500, 2000)


def source(ring, n_samples):
    rng = np.random.default_rng(2016)
    with ring.producer() as prod:                    # closes the stream at a clean exit
        for i in range(n_samples):
            with prod.loan(tag=i) as out:            # a writable view of a free slot
                rng.random(out=out)                  # = rng.uniform(0, 1, SHAPE), in place


def h(x, out):
    np.multiply(x, x, out=out)


def g(x, out):
    np.multiply(x, 3, out=out)


def f(x, out):
    np.add(x, 1.0, out=out)


def stage(fn, inbox, outbox):
    """Runs fn on every frame of inbox, writing each result into a slot of outbox."""
    with inbox.consumer() as cons, outbox.producer() as prod:
        for x in cons:                               # read-only views, in order
            with prod.loan() as out:
                fn(x, out)
            del x                                    # its slot goes back to the producer


def main(n_samples):
    # Four rings of 3 slots (the question's buffer size), each slot one 8 MB sample.
    rings = [conveyor.Ring(slots=3, shape=SHAPE, dtype=np.float64) for _ in range(4)]
    processes = [mp.Process(target=source, args=(rings[0], n_samples), name="source")]
    for k, fn in enumerate((h, g, f)):
        processes.append(mp.Process(target=stage, args=(fn, rings[k], rings[k + 1]), name=fn.__name__))
    start = time.perf_counter()
    for p in processes:
        p.start()
    try:
        with rings[-1].consumer() as cons:
            total = sum(x.sum() for x in cons)       # a failed stage: PeerDied here
    finally:
        for p in processes:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
                p.join()
    failed = [f"{p.name} (exit {p.exitcode})" for p in processes if p.exitcode != 0]
    if failed:
        sys.exit(f"ring_version: stage processes failed: {', '.join(failed)}")
    print(f"samples {n_samples}: {time.perf_counter() - start:.2f} s")
    print(f"sum {float(total)!r}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
