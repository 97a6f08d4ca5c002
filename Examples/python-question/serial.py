"""The question's pipeline in one process, plain numpy: the reference sum.

    python3 serial.py [SAMPLES]          (default 1000)

The same samples as question.py and ring_version.py (np.random.default_rng(2016)),
the same operations in the same order (x*x, then *3, then +1.0, then numpy's sum of
each sample, added up in order), so the three sums must be equal to the bit:
scripts/test-examples checks that they are.
"""
import sys
import time

import numpy as np

if __name__ == "__main__":
    n_samples = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    start = time.perf_counter()
    rng = np.random.default_rng(2016)
    total = 0.0
    for i in range(n_samples):
        x = rng.uniform(0, 1, (500, 2000))
        total += ((x * x) * 3 + 1.0).sum()
    print(f"samples {n_samples}: {time.perf_counter() - start:.2f} s")
    print(f"sum {float(total)!r}")
