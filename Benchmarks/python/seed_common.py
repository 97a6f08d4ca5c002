"""What every Python port of the question shares: the data rule, the stages, the checksum.

Sample i is np.random.default_rng([SEED, i]).random(shape) whatever process makes it, and
the checksum adds the per-sample sums in sample order, so every port gives the same bits.
"""
import numpy as np

SEED = 2016
# h, g, f; out=None makes a new array, as the question's stages do; out=view writes into
# a slot (the shared-memory and conveyor-ring variants).
STAGES = (lambda x, out=None: np.multiply(x, x, out=out),
          lambda x, out=None: np.multiply(x, 3, out=out),
          lambda x, out=None: np.add(x, 1.0, out=out))


def sample(i, shape, out=None):
    """Sample i; with `out`, written into it (the same values: random(out=) fills as random(shape))."""
    if out is None:
        return np.random.default_rng([SEED, i]).random(shape)
    return np.random.default_rng([SEED, i]).random(out=out)


def final(i, shape):
    x = sample(i, shape)
    for stage in STAGES:
        x = stage(x)
    return x


def checksum(sums):
    total = 0.0
    for i in range(len(sums)):
        total += sums[i]
    return total
