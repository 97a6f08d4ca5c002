"""Conveyor's numeric kernels from Python: the C functions themselves, over numpy arrays.

Every call is one C call (conveyor_f64_* / conveyor_f32_*), so the results are the
same bits a C or Swift caller gets on the same thread count. The GIL is released
while a kernel runs (from 16 KiB of data). Arrays must be C-contiguous float64 or
float32: nothing is converted or copied behind your back.
"""

import numbers

import numpy as np

from . import _core

__all__ = ["fill_uniform", "apply", "sum", "set_threads", "get_threads", "has_openmp"]

# name -> (opcode with a scalar operand, opcode with an array operand, scalar count)
_OPS = {
    "copy": (_core.OP_COPY, None, 0),
    "square": (_core.OP_SQUARE, None, 0),
    "add": (_core.OP_ADD_SCALAR, _core.OP_ADD, 1),
    "sub": (_core.OP_SUB_SCALAR, _core.OP_SUB, 1),
    "rsub": (_core.OP_RSUB_SCALAR, None, 1),
    "mul": (_core.OP_MUL_SCALAR, _core.OP_MUL, 1),
    "div": (_core.OP_DIV_SCALAR, _core.OP_DIV, 1),
    "rdiv": (_core.OP_RDIV_SCALAR, None, 1),
    "min": (_core.OP_MIN_SCALAR, _core.OP_MIN, 1),
    "max": (_core.OP_MAX_SCALAR, _core.OP_MAX, 1),
    "affine": (_core.OP_AFFINE, None, 2),
}


def _invalid(detail):
    return _core._error(2, detail)


def fill_uniform(out, seed, stream, first=0):
    """Fills `out` with elements first, first+1, ... of the uniform [0, 1) stream
    (seed, stream): a counter-based generator, the same values for any split or thread
    count, on every machine (conveyor_f64_fill_uniform / conveyor_f32_fill_uniform).

    out: a writable C-contiguous float64 or float32 array (float32 is its own sequence).
    seed, stream, first: ints in 0...2**64-1. Cost: about 10 vector instructions per 8
    doubles; parallel above the threshold when OpenMP is built in. Raises
    InvalidArgument (not writable, not contiguous, another dtype, a bad seed).
    """
    _core.fill_uniform(out, seed, stream, first)


def _scalar(value, what):
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind == "f":
        return float(value)
    raise _invalid(f"{what} needs a number, not {value!r}")


def _compile(program, x):
    if isinstance(program, (str, bytes)) or not hasattr(program, "__iter__"):
        raise _invalid("a program is a list of steps like [('square',), ('mul', 3.0)]")
    steps = []
    for index, step in enumerate(program):
        if isinstance(step, str):
            step = (step,)
        if not isinstance(step, (tuple, list)) or not step or step[0] not in _OPS:
            names = ", ".join(sorted(_OPS))
            raise _invalid(f"program step {index} ({step!r}) must be a tuple starting with "
                           f"one of: {names}")
        name, args = step[0], tuple(step[1:])
        scalar_code, array_code, arity = _OPS[name]
        if len(args) != arity:
            raise _invalid(f"program step {index}: {name!r} takes {arity} operand(s), "
                           f"got {len(args)}")
        if arity == 1 and isinstance(args[0], np.ndarray) and args[0].ndim > 0:
            if array_code is None:
                raise _invalid(f"program step {index}: {name!r} takes a scalar only")
            operand = args[0]
            if operand.shape != x.shape or operand.dtype != x.dtype:
                raise _invalid(f"program step {index}: the operand has shape {operand.shape} "
                               f"and dtype {operand.dtype}; x has {x.shape} and {x.dtype}")
            steps.append((array_code, 0.0, 0.0, operand))
        else:
            scalars = [_scalar(a, f"program step {index} ({name!r})") for a in args]
            scalars += [0.0] * (2 - len(scalars))
            steps.append((scalar_code, scalars[0], scalars[1], None))
    if len(steps) > _core.PROGRAM_MAX_OPS:
        raise _invalid(f"a program has at most {_core.PROGRAM_MAX_OPS} steps, not {len(steps)}")
    return steps


def apply(x, program, out=None):
    """Applies a fused elementwise program to x in one pass over memory and returns out.

    program: a list of steps applied left to right, e.g.
    ``[("square",), ("mul", 3.0), ("add", 1.0)]`` computes ``(x*x)*3 + 1``. Steps:
    copy, square, add, sub, mul, div, min, max (a number, or an array of x's shape and
    dtype), rsub, rdiv (``a - v``, ``a / v``: a number), affine (a, b: ``a*v + b``,
    two roundings). out: None allocates like x; out may be x itself (in place), not a
    partial overlap. The result is bit-identical to conveyor_f64_program /
    conveyor_f32_program from C (and to the same ops applied one call at a time).
    Cost: one read of x (and of each
    array operand) and one write of out. Raises InvalidArgument (an unknown step, a
    wrong operand, not C-contiguous float64/float32, out of another shape or dtype),
    Overlap.
    """
    if not isinstance(x, np.ndarray):
        raise _invalid(f"x must be a numpy array, not {type(x).__name__}")
    steps = _compile(program, x)
    if out is None:
        out = np.empty_like(x, order="C")
    elif not isinstance(out, np.ndarray) or out.shape != x.shape:
        raise _invalid("out must be an array of x's shape and dtype")
    _core.program(out, x, steps)
    return out


def sum(x):  # noqa: A001 - the public name is conveyor.sum
    """The sum of x, accumulated in double with compensated (TwoSum) arithmetic:
    about twice the working precision, and the same result for the same data and thread
    count whatever the address or timing (conveyor_f64_sum / conveyor_f32_sum; float32
    is widened). Returns a float. Cost: one read of x. Raises InvalidArgument (not
    C-contiguous float64/float32)."""
    return _core.sum(x)


def set_threads(n):
    """Sets how many threads every kernel uses from now on, process-wide
    (conveyor_set_threads). Raises InvalidArgument (n outside 1...256), Unsupported
    (n > 1 in a build without OpenMP, which the pip-installed package is by default)."""
    _core.set_threads(n)


def get_threads():
    """The number of threads kernels called from this thread use (>= 1)."""
    return _core.get_threads()


def has_openmp():
    """True if the C core in this package was built with OpenMP (parallel kernels)."""
    return _core.has_openmp()
