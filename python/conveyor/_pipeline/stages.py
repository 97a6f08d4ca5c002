"""What a pipeline is made of: its source, its stages, and how each one is called.

A Stage records a node of the pipeline as its user declared it: a name, a kind, the
callable or kernel program, how many replicas run it, and the shape and dtype of the
arrays it writes. How a callable is called is decided once, here, from its signature,
never per item:

- source ``fill(i, out)`` (with ``count``): writes item i into its slot (zero copy);
  ``make(i)`` returns item i, copied once into the slot; an iterable (or a function of
  no arguments returning one) is iterated, each array copied once;
- stage ``h(x, out)`` writes into its slot (zero copy; a numpy ufunc such as
  ``np.square`` is called so), ``h(x)`` returns a new array (copied once); a generator
  function ``h(xs)`` (the question's form) is a stream stage: it is handed an iterator
  of read-only inputs and what it yields is copied into slots;
- a KernelStage (``conveyor.kernel_stage(program)``) runs a fused kernel program on the
  item in its slot, in place, with no Python per element;
- an external stage (``Pipeline.external(command)``) is a program of any language, started
  per replica by its worker, that serves the stage through conveyor_stage_serve
  (conveyor.h section 10; external.py is the worker's side).
"""

import inspect
import os
import re
import shutil

import numpy as np

from .. import _core
from .._kernels import _compile
from .errors import PipelineDefinitionError

__all__ = ["Stage", "KernelStage", "kernel_stage", "check_shape", "check_dtype"]

_DTYPES = {np.dtype(np.float64): _core.DTYPE_F64, np.dtype(np.float32): _core.DTYPE_F32,
           np.dtype(np.uint8): _core.DTYPE_BYTES}
MAX_RANK = 4

# Stage kinds.
SOURCE_FILL = "fill"        # fill(i, out), count items
SOURCE_MAKE = "make"        # make(i) -> array, count items
SOURCE_ITER = "iterate"     # an iterable, or a factory returning one
MAP_INTO = "into"           # h(x, out)
MAP_RETURN = "return"       # h(x) -> array
STREAM = "stream"           # generator function h(xs)
KERNEL = "kernel"           # KernelStage
EXTERNAL = "external"       # a program serving the stage (Pipeline.external)
SOURCE_LINK = "link"        # a segment's source on another rank: items from an MPI link (link_source.py)


def _bad(message):
    return PipelineDefinitionError(message)


def check_dtype(dtype, what):
    """numpy dtype of `dtype`, one of float64, float32, uint8 in native order."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise _bad(f"{what}: {dtype!r} is not a dtype; slots hold float64, float32 or uint8") from None
    if dt not in _DTYPES or dt.byteorder not in "=|":
        raise _bad(f"{what}: dtype {dt} is not supported; slots hold float64, float32 or uint8 "
                   "in native byte order")
    return dt


def check_shape(shape, what):
    """The shape as a tuple of ints >= 0, rank <= 4."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise _bad(f"{what}: shape must be an int or a tuple of ints, not {shape!r}")
    out = []
    for extent in shape:
        if isinstance(extent, bool) or not isinstance(extent, (int, np.integer)) or extent < 0:
            raise _bad(f"{what}: shape {tuple(shape)!r} must hold ints >= 0")
        out.append(int(extent))
    if len(out) > MAX_RANK:
        raise _bad(f"{what}: shape {tuple(out)!r} has rank {len(out)}; slots hold at most "
                   f"{MAX_RANK} dimensions")
    return tuple(out)


def dtype_code(dt):
    """The C core's dtype code of a checked numpy dtype."""
    return _DTYPES[dt]


def _positional_capacity(fn):
    """How many positional arguments `fn` is called with (None if it cannot be told), and
    whether it is a generator function. A parameter with a default counts only when it is
    named ``out`` (``def h(x, out=None)``): ``def g(x, scale=2.0)`` is called as g(x), never
    with a slot in its `scale`. A ufunc takes (x, out) when it has one input and one output;
    np.add and friends are refused by the callers (they would add the slot's old contents)."""
    if isinstance(fn, np.ufunc):
        return (2 if fn.nin == 1 and fn.nout == 1 else -1), False
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None, False
    count = 0
    for parameter in signature.parameters.values():
        if parameter.kind == parameter.VAR_POSITIONAL:
            return 99, inspect.isgeneratorfunction(fn)
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            if parameter.default is not parameter.empty and parameter.name != "out" and count >= 1:
                break
            count += 1
    return count, inspect.isgeneratorfunction(fn)


def _display_name(fn, fallback):
    name = getattr(fn, "__name__", None)
    return name if isinstance(name, str) and name and name != "<lambda>" else fallback


class KernelStage:
    """A stage that runs a fused Conveyor kernel program on each item in its slot, in
    place: one pass over memory in C, no Python per element, no copy. Make it with
    ``conveyor.kernel_stage(program)``; ``program`` is as for ``conveyor.apply`` (e.g.
    ``[("square",), ("mul", 3.0), ("add", 1.0)]``) and is checked when the pipeline is
    defined. The item's shape and dtype do not change (float64 or float32 only)."""

    __slots__ = ("program", "name")

    def __init__(self, program, name=None):
        if isinstance(program, (str, bytes)) or not hasattr(program, "__iter__"):
            raise _bad("kernel_stage: a program is a list of steps like [('square',), ('mul', 3.0)]")
        self.program = list(program)
        self.name = name

    def compile(self, shape, dt):
        """The C program for items of this shape and dtype (raises on a bad program)."""
        if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise _bad(f"kernel stage {self.name or ''}: kernels take float64 or float32 items, "
                       f"not {dt}")
        probe = np.lib.stride_tricks.as_strided(np.zeros(1, dt), shape=shape, strides=(0,) * len(shape))
        try:
            return _compile(self.program, probe)
        except ValueError as error:
            raise _bad(f"kernel stage {self.name or ''}: {error}") from None

    def __repr__(self):
        return f"kernel_stage({self.program!r})"


def kernel_stage(program, name=None):
    """A pipeline stage running the fused kernel `program` in place on each item (see
    KernelStage). Cost per item: one read and one write of the item, on one core; the
    definition is checked by Pipeline.stage (raises PipelineDefinitionError)."""
    return KernelStage(program, name)


class Stage:
    """One node as declared: kind, callable or program, name, replicas, output shape and
    dtype (the input's unless declared). Built by Pipeline; not public."""

    __slots__ = ("kind", "body", "name", "replicas", "shape", "dtype", "count", "steps", "buffer",
                 "rank")

    def __init__(self, kind, body, name, replicas, shape, dtype, count=None, steps=None):
        self.buffer = None  # slots per replica for what it writes; None: the run's buffer
        self.rank = None    # the MPI rank it is placed on (run_across_ranks); None: the previous stage's
        self.kind = kind
        self.body = body
        self.name = name
        self.replicas = replicas
        self.shape = shape
        self.dtype = dtype
        self.count = count
        self.steps = steps

    @property
    def writes_slots(self):
        """Whether it writes items into slots of its own (a kernel stage works in the slot
        it received and hands that on)."""
        return self.kind != KERNEL

    @property
    def reads_slots(self):
        """Whether it reads its input from a slot it then gives back (a kernel stage hands
        its input slot on instead; a source has no input)."""
        return self.kind in (MAP_INTO, MAP_RETURN, STREAM, EXTERNAL)

    @property
    def nbytes(self):
        n = self.dtype.itemsize
        for extent in self.shape:
            n *= extent
        return n


def check_replicas(replicas, what):
    if isinstance(replicas, bool) or not isinstance(replicas, (int, np.integer)) or not 1 <= replicas <= 64:
        raise _bad(f"{what}: replicas must be an int in 1...64, not {replicas!r}")
    return int(replicas)


def make_source(source, count, shape, dtype, replicas, name):
    """The source Stage for Pipeline(source, ...)."""
    replicas = check_replicas(replicas, "source")
    dt = check_dtype(np.float64 if dtype is None else dtype, "source")
    if shape is not None:
        shape = check_shape(shape, "source")
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise _bad(f"source: count must be an int >= 0, not {count!r}")
        count = int(count)
    if callable(source):
        capacity, generator = _positional_capacity(source)
        if count is not None and capacity is not None and capacity >= 1 and not generator:
            if shape is None:
                raise _bad("source: a source called per item needs shape= (and dtype=)")
            kind = SOURCE_FILL if capacity >= 2 else SOURCE_MAKE
            return Stage(kind, source, name or "source", replicas, shape, dt, count)
        if capacity not in (None, 0):
            raise _bad(f"source: {source!r} takes arguments; a per-item source (i, out) or (i) "
                       "needs count=, an iterable source is a function of no arguments")
    elif not hasattr(source, "__iter__"):
        raise _bad(f"source: {source!r} is neither callable nor iterable")
    if count is not None:
        raise _bad("source: count= is for a per-item source fill(i, out) or make(i); an "
                   "iterable source ends when its iterator does")
    if replicas != 1:
        raise _bad("source: an iterable source runs in one process (replicas=1); use a "
                   "per-item source fill(i, out) with count= to replicate it")
    return Stage(SOURCE_ITER, source, name or "source", 1, shape, dt if shape is not None else
                 (None if dtype is None else dt))


def make_stage(body, name, shape, dtype, replicas, index, in_shape, in_dtype):
    """A Stage for Pipeline.stage(body, ...); index is its position (1 = first stage)."""
    fallback = f"stage{index}"
    if isinstance(body, KernelStage):
        label = name or body.name or fallback
        replicas = check_replicas(replicas, label)
        if shape is not None and check_shape(shape, label) != in_shape:
            raise _bad(f"{label}: a kernel stage keeps its items' shape {in_shape}")
        if dtype is not None and check_dtype(dtype, label) != in_dtype:
            raise _bad(f"{label}: a kernel stage keeps its items' dtype {in_dtype}")
        steps = body.compile(in_shape, in_dtype)
        return Stage(KERNEL, body, label, replicas, in_shape, in_dtype, steps=steps)
    if not callable(body):
        raise _bad(f"{name or fallback}: a stage is a function or conveyor.kernel_stage(...), "
                   f"not {body!r}")
    label = name or _display_name(body, fallback)
    replicas = check_replicas(replicas, label)
    out_shape = in_shape if shape is None else check_shape(shape, label)
    out_dtype = in_dtype if dtype is None else check_dtype(dtype, label)
    capacity, generator = _positional_capacity(body)
    if capacity == -1:
        raise _bad(f"{label}: a ufunc stage takes one input and one output (np.square, "
                   f"np.negative...), not {body.nin} and {body.nout}")
    if generator:
        if replicas != 1:
            raise _bad(f"{label}: a generator stage sees the whole stream, so it runs in one "
                       "process (replicas=1); write it as h(x, out) or h(x) to replicate it")
        return Stage(STREAM, body, label, 1, out_shape, out_dtype)
    kind = MAP_INTO if capacity is not None and capacity >= 2 else MAP_RETURN
    return Stage(kind, body, label, replicas, out_shape, out_dtype)


def _program_name(command):
    """The default name of an external stage: its program's file name (for
    ``[python, script.py, ...]``, the script's name without .py)."""
    program = os.path.basename(command[0])
    if re.fullmatch(r"python[0-9.]*", program) and len(command) > 1 and command[1].endswith(".py"):
        return os.path.basename(command[1])[:-3] or program
    return program


def make_external(command, name, shape, dtype, replicas, index, in_shape, in_dtype):
    """A Stage for Pipeline.external(command, ...); index is its position."""
    fallback = f"stage{index}"
    if isinstance(command, (str, bytes)) or not isinstance(command, (list, tuple)) or not command \
            or not all(isinstance(part, str) for part in command):
        raise _bad(f"{name or fallback}: an external stage's command is a non-empty list of str "
                   f"(the program and its arguments), not {command!r}")
    label = name or _program_name(command)
    if shutil.which(command[0]) is None:
        raise _bad(f"{label}: the program {command[0]!r} is not found or not executable")
    replicas = check_replicas(replicas, label)
    out_shape = in_shape if shape is None else check_shape(shape, label)
    out_dtype = in_dtype if dtype is None else check_dtype(dtype, label)
    for side, layout in (("input", in_shape), ("output", out_shape)):
        if not 1 <= len(layout) <= MAX_RANK or 0 in layout:
            raise _bad(f"{label}: an external stage's {side} items need 1 to {MAX_RANK} extents, "
                       f"each >= 1 (the CONVEYOR_STAGE contract), not shape {layout}")
    return Stage(EXTERNAL, list(command), label, replicas, out_shape, out_dtype)
