"""The question's code (2016: "Fast queue of read-only numpy arrays"),
with its decorator replaced by Conveyor's:

    python3 question.py [SAMPLES]        (default 1000)

Each stage h, g, f runs in its own process, as the question wanted, but no array is
pickled: each array a stage yields is copied once into a shared-memory slot, and the
next stage reads it there in place.

What differs from the question's code, line by line:
- the import below replaces its 26 lines (class __EndToken and def parrallel_pipeline),
  the one change that makes it Conveyor; `as parrallel_pipeline` keeps the question's
  spelling, so the three decorated stages below are its own, unchanged;
- Python 3 (the question is Python 2), and `if __name__ == "__main__":` prints the
  sum, as the answers measure it, instead of printing 1000 arrays;
- xs() draws from a seeded numpy Generator (np.random.default_rng(2016)) instead of
  the global np.random, and takes the sample count from the command line, so that
  scripts/test-examples can check the sum against serial.py's.
"""
import sys
import time

import numpy as np

from conveyor import parallel_pipeline as parrallel_pipeline


@parrallel_pipeline(3)
def f(xs):
    for x in xs:
        yield x + 1.0

@parrallel_pipeline(3)
def g(xs):
    for x in xs:
        yield x * 3

@parrallel_pipeline(3)
def h(xs):
    for x in xs:
        yield x * x

def xs(n_samples=1000):
    rng = np.random.default_rng(2016)
    for i in range(n_samples):
        yield rng.uniform(0, 1, (500, 2000))

if __name__ == "__main__":
    n_samples = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    start = time.perf_counter()
    rs = f(g(h(xs(n_samples))))
    total = sum(r.sum() for r in rs)
    print(f"samples {n_samples}: {time.perf_counter() - start:.2f} s")
    print(f"sum {float(total)!r}")
