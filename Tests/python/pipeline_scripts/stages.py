"""Stage and source functions of the pipeline tests, at module level so that spawned
stage processes can import them by name. A small module on purpose: every spawned stage
process imports it (and with it only numpy and conveyor), not the test module and pytest.

The question's pipeline, each step a different stage form: fill(i, out) writes item i
into its slot, square_into(x, out) writes its output slot, times3(x) returns a new
array, and a kernel stage adds 1 (PLUS_ONE). serial_item(i) computes the same here.
"""
import os

import numpy as np

import conveyor

SHAPE = (40, 50)
COUNT = 30
PLUS_ONE = [("add", 1.0)]


def fill(i, out):
    """Item i of the stream, written into its slot (the Pipeline docstring's source)."""
    np.random.default_rng([2016, i]).random(out=out)


def square_into(x, out):
    np.multiply(x, x, out=out)


def times3(x):
    return x * 3


def gen_items():
    """An iterable source: a generator function of no arguments, COUNT items of SHAPE."""
    for i in range(COUNT):
        x = np.empty(SHAPE)
        fill(i, x)
        yield x


def numbered(i, out):
    """Item i is an array full of i (so a stage can tell which item it has)."""
    out[...] = i


def pid_into(x, out):
    """Tags the item with the pid of the process that handled it (element 0)."""
    out[...] = x
    out.flat[0] = os.getpid()


def row_sums(x, out):
    np.sum(x, axis=1, out=out)


def doubled_stream(xs):
    """A generator stage yielding two outputs per input: x, then -x."""
    for x in xs:
        yield x
        yield -x


def serial_item(i):
    """What fill -> square_into -> times3 -> kernel add 1 makes of item i, here."""
    x = np.empty(SHAPE)
    fill(i, x)
    y = np.empty(SHAPE)
    square_into(x, y)
    return conveyor.apply(times3(y), PLUS_ONE)


# ---- failing stages (test_pipeline_failures.py) ---------------------------------------

BAD_ITEM = 7


def raise_on_bad_into(x, out):
    out[...] = x
    if int(x.flat[0]) == BAD_ITEM:
        raise ValueError(f"item {BAD_ITEM} is bad")  # the raising line


def sigkill_on_bad(x):
    if int(x.flat[0]) == BAD_ITEM:
        os.kill(os.getpid(), 9)
    return x


def exit7_on_bad(x):
    if int(x.flat[0]) == BAD_ITEM:
        os._exit(7)
    return x


# ---- stages that fail (test_pipeline_failures.py) -------------------------------------
FAIL_AT = 7


def raise_at(x, out):
    """Raises ZeroDivisionError on item FAIL_AT (the item is element 0 of numbered)."""
    if int(x.flat[0]) == FAIL_AT:
        raise ZeroDivisionError(f"no item {FAIL_AT} for this stage")  # the raising line
    out[...] = x


def sigkill_at(x, out):
    if int(x.flat[0]) == FAIL_AT:
        os.kill(os.getpid(), 9)
    out[...] = x


def exit7_at(x, out):
    if int(x.flat[0]) == FAIL_AT:
        os._exit(7)
    out[...] = x


_kept = []


def keeps_input(x, out):
    _kept.append(x)
    out[...] = x


def wrong_shape(x):
    return x[:2]


def wrong_dtype(x):
    return x.astype(np.complex128)
