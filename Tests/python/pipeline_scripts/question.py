"""The question's program (the 2016 question Conveyor answers) with its decorator
replaced by the drop-in, run as a script by test_dropin.py: python question.py
START_METHOD SEED.

Only what Python 2 syntax requires is changed (`print r` -> print(r.sum()), one line a
result) and the data is smaller; the script first sets multiprocessing's default start
method to START_METHOD, to show that the drop-in does not depend on it, and seeds numpy's
global generator with SEED, so that the test can compute the serial result.
"""
import multiprocessing
import sys

import numpy as np

from conveyor import parallel_pipeline as parrallel_pipeline

N, SHAPE = 30, (50, 20)


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

def xs():
    for i in range(N):
        yield np.random.uniform(0,1,SHAPE)

if __name__ == "__main__":
    multiprocessing.set_start_method(sys.argv[1])
    np.random.seed(int(sys.argv[2]))
    rs = f(g(h(xs())))
    for r in rs:
        print(repr(float(r.sum())))
