"""The swift-seed sum computed independently, in numpy, from the generator's definition.

    python3 numpy_reference.py [COUNT]

Conveyor's uniform generator is specified in conveyor.h section 7 (SplitMix64 evaluated
at a counter); this file re-implements that formula with numpy's uint64 arithmetic, so
it shares no code with the library: sample i is uniform stream (2016, i) of 500*2000
doubles, then h, g, f are numpy's x*x, 3*x, x+1, and each sample is summed by numpy.
It prints the total with full precision. numpy sums in another order than Conveyor's
compensated sum, so the two totals agree to about 1e-15 relative, not to the bit:
scripts/test-examples compares them with a 1e-12 relative tolerance.
"""
import sys

import numpy as np

SEED, ROWS, COLS = 2016, 500, 2000
GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
STREAM_GAMMA = np.uint64(0xD1B54A32D192ED03)


def mix64(z):
    """The SplitMix64 finalizer, on a uint64 array (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform(seed, stream, n):
    """Elements 0..n-1 of uniform stream (seed, stream): conveyor_f64_fill_uniform's values."""
    key = mix64(mix64(np.array([seed], dtype=np.uint64)) ^ (np.uint64(stream) * STREAM_GAMMA))
    counters = np.arange(1, n + 1, dtype=np.uint64)
    bits = mix64(key + counters * GOLDEN_GAMMA)
    one_to_two = np.uint64(0x3FF0000000000000) | (bits >> np.uint64(12))  # a double in [1, 2)
    return one_to_two.view(np.float64) - 1.0


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    total = 0.0
    with np.errstate(over="ignore"):
        for i in range(count):
            x = uniform(SEED, i, ROWS * COLS)
            total += float((3 * (x * x) + 1.0).sum())
    print(repr(total))
