"""A received view is read-only in a way numpy cannot undo, and so is every view derived
from it; a loan's array turns read-only once the loan is committed or abandoned."""
import support  # noqa: F401  (first: skips this module under `unittest discover` without the package)

import ctypes

import numpy as np
import pytest

import conveyor
from support import LIMIT, Pair, frame_of, same_bits

SENT = np.arange(20, dtype=np.float64).reshape(4, 5) + 0.5


@pytest.fixture
def pair():
    p = Pair(slots=3, shape=(4, 5))
    yield p
    p.close()


def derived_views(x):
    """Views numpy makes from x without copying."""
    return {
        "x": x, "x[1:]": x[1:], "x.T": x.T, "x.reshape(-1)": x.reshape(-1),
        "x[::2, ::2]": x[::2, ::2], "x.view(uint64)": x.view(np.uint64), "x[None]": x[None],
        "np.asarray(x)": np.asarray(x), "x.ravel()": x.ravel(), "x[1:][1:].T": x[1:][1:].T,
        "np.asarray(frame)": np.asarray(frame_of(x)),
    }


def assert_read_only(name, v):
    assert not v.flags.writeable, name
    with pytest.raises(ValueError):
        v.flags.writeable = True
    with pytest.raises(ValueError):
        v.setflags(write=True)
    with pytest.raises(ValueError):
        v[(0,) * v.ndim] = 1
    with pytest.raises(ValueError):
        v[...] = 7
    with pytest.raises(ValueError):
        np.add(v, 1, out=v)


def test_a_received_view_and_every_view_derived_from_it_stay_read_only(pair):
    pair.send(SENT)
    x = pair.cons.receive(timeout=LIMIT)
    for name, v in derived_views(x).items():
        assert_read_only(name, v)
    assert same_bits(x, SENT)


def test_the_frame_exports_a_read_only_buffer(pair):
    pair.send(SENT)
    x = pair.cons.receive(timeout=LIMIT)
    frame = frame_of(x)
    view = memoryview(frame)
    assert view.readonly and view.nbytes == SENT.nbytes and view.shape == (4, 5)
    with pytest.raises(TypeError):
        view[0, 0] = 1.0
    # A writable export is refused outright (ctypes asks for one).
    with pytest.raises((TypeError, BufferError)):
        (ctypes.c_char * SENT.nbytes).from_buffer(frame)
    view.release()
    assert same_bits(x, SENT)


def test_kernels_refuse_a_received_view_as_output(pair):
    pair.send(SENT)
    x = pair.cons.receive(timeout=LIMIT)
    with pytest.raises((ValueError, TypeError, BufferError)):
        conveyor.fill_uniform(x, 1, 2)
    with pytest.raises((ValueError, TypeError, BufferError)):
        conveyor.apply(SENT, [("square",)], out=x)
    with pytest.raises((ValueError, TypeError, BufferError)):
        conveyor.apply(x, [("square",)], out=x)
    assert same_bits(x, SENT)


@pytest.mark.parametrize("finish", ["commit", "abandon", "with"])
def test_a_loans_array_turns_read_only_when_the_loan_ends(pair, finish):
    if finish == "with":
        with pair.prod.loan() as out:
            out[...] = SENT
        array = out
    else:
        loan = pair.prod.loan()
        array = loan.array
        assert array.flags.writeable and array.shape == (4, 5) and array.dtype == np.float64
        array[...] = SENT
        getattr(loan, finish)()
    assert_read_only("loan array", array)
    if finish == "abandon":
        with pytest.raises(conveyor.Timeout):
            pair.cons.receive(timeout=0)
    else:
        assert same_bits(pair.cons.receive(timeout=LIMIT), SENT)
    assert same_bits(array, SENT)
    if finish != "with":
        # The loan's buffer refuses new writable exports.
        with pytest.raises((TypeError, BufferError)):
            (ctypes.c_char * SENT.nbytes).from_buffer(loan)
