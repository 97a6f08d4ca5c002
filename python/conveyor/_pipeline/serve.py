"""conveyor.serve_stage: a Python program as one stage of a pipeline (conveyor.h section
10). A pipeline in any language (Swift's Pipeline.external, Python's Pipeline.external)
starts the program with the CONVEYOR_STAGE contract in its environment; serve_stage hands
the contract to the C core's conveyor_stage_serve, which does the whole protocol (attach
the pools and channels, check every word and descriptor, describe the output, send it
on), and calls the stage function per item on numpy arrays over the slots, in place.

    import numpy as np, conveyor
    def g(x, out):                       # or g(x) returning the result (copied once)
        np.multiply(x, 3, out=out)
    if __name__ == "__main__":
        conveyor.serve_stage(g, output=(np.float64, None))
"""

import signal
import sys
import threading
import traceback

import numpy as np

from .. import _core
from .errors import PipelineDefinitionError, StageProgramError
from .stages import _display_name, _positional_capacity, check_dtype, dtype_code
from .worker import StageRuleError, copy_checked

__all__ = ["serve_stage"]

_NUMPY = {_core.DTYPE_BYTES: np.dtype(np.uint8), _core.DTYPE_F32: np.dtype(np.float32),
          _core.DTYPE_F64: np.dtype(np.float64)}
# conveyor_stage_main's exit statuses: a malformed or refused contract is 2.
_CONTRACT_STATUSES = {_core.InvalidArgument.status, _core.VersionMismatch.status}


def _expectation(value, what):
    """An input=/output= argument as the binding takes it: None, or (dtype code or None,
    shape tuple with 0 for "any extent", or None)."""
    if value is None:
        return None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise PipelineDefinitionError(f"serve_stage: {what} must be None or (dtype, shape), "
                                      f"either of them None for any, not {value!r}")
    dtype, shape = value
    code = None if dtype is None else dtype_code(check_dtype(dtype, f"serve_stage {what}"))
    if shape is None:
        return code, None
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not 1 <= len(shape) <= _core.MAX_RANK:
        raise PipelineDefinitionError(f"serve_stage: {what} shape must be a tuple of 1 to "
                                      f"{_core.MAX_RANK} extents (None for any), not {shape!r}")
    extents = []
    for extent in shape:
        if extent is None:
            extents.append(0)
        elif isinstance(extent, (int, np.integer)) and not isinstance(extent, bool) and extent >= 1:
            extents.append(int(extent))
        else:
            raise PipelineDefinitionError(f"serve_stage: {what} shape {tuple(shape)!r} must hold "
                                          "ints >= 1, or None for any extent")
    return code, tuple(extents)


def _strip_tracebacks(error):
    """Drops the tracebacks of an exception and of those it chains: their frames hold the
    item's arrays, which must die with the item."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        error.__traceback__ = None
        error = error.__cause__ or error.__context__


class _Served:
    """What serve_stage learns while it serves: the stage's name and the first failure."""

    __slots__ = ("name", "item", "error", "trace")

    def __init__(self):
        self.name = self.item = self.error = self.trace = None


def _item_function(fn, into, served):
    """The binding's per-item callback: arrays over the two views, then fn. Returns None,
    or the one-line reason the item failed ("ValueError: bad")."""
    frombuffer = np.frombuffer

    def serve_item(x_view, out_view, item, replica, in_layout, out_layout, name):
        served.name = name
        x = out = result = None
        try:
            out = frombuffer(out_view, _NUMPY[out_layout[0]]).reshape(out_layout[1])
            if x_view is not None:
                x = frombuffer(x_view, _NUMPY[in_layout[0]]).reshape(in_layout[1])
            result = fn(x, out) if into else fn(x)
            if result is None and not into:
                raise StageRuleError(f"stage '{name}' returned None for item {item}: a stage "
                                     "h(x) returns its result (or is written h(x, out))")
            if result is not None and result is not out:
                copy_checked(out, result, f"stage '{name}': the array returned for item {item}")
            return None
        except BaseException as error:  # noqa: B902 - every failure fails the item, by name
            x = out = result = None
            served.item = item
            served.trace = "".join(traceback.format_exception(error))
            _strip_tracebacks(error)
            served.error = error
            text = str(error)
            return f"{type(error).__name__}: {text}" if text else type(error).__name__
        finally:
            x = out = result = None

    return serve_item


def serve_stage(fn, *, input=None, output=None):
    """Serves one stage of a pipeline in this program until end of stream: the program
    side of conveyor.h section 10, for a program that a pipeline started with the
    CONVEYOR_STAGE contract in its environment (Pipeline.external, or Swift's). Returns
    0 at end of stream, so ``conveyor.serve_stage(fn)`` and
    ``raise SystemExit(conveyor.serve_stage(fn))`` both end the program as the pipeline
    expects.

    ``fn`` is called as a pipeline stage is (Pipeline.stage): ``fn(x, out)`` writes its
    result into ``out`` (zero copy; a one-input ufunc such as np.square is called so),
    ``fn(x)`` returns an array of the declared output shape that casts safely to its
    dtype (copied once into the slot). ``x`` is a read-only numpy array over the input
    slot and ``out`` a writable one over the output slot, both in place in the pipeline's
    shared memory, valid only during the call: keeping either (or a view) fails the item,
    so copy what you keep (np.array(x)). Shapes and dtypes are the pipeline's declaration.

    ``input``/``output``: what this program accepts, checked against the contract before
    the first item: None (anything) or (dtype, shape), dtype None for any, shape None for
    any or a tuple whose None extents accept any, e.g. ``output=(np.float32, (None, 3))``.
    A mismatch is refused with a message naming both sides.

    Ctrl-C ends the program at once (SIGINT takes its default action while it serves, as
    for a C program; a pipeline that starts it with SIGINT ignored keeps it ignored), and
    it dies with the process that started it.

    Cost: per item, the C core's two channel receives, one send and checks (well under a
    microsecond), two memoryviews and two arrays over them and the call of fn (a few
    microseconds of Python); the waits sleep in futexes with the GIL released.

    Raises StageProgramError (a ConveyorError and a SystemExit whose code is the exit
    status) after the one-line reason was written to the pipeline's report: code 1 when
    fn raised (its exception is the __cause__ and its traceback is printed to stderr; the
    line says "stage 'g' item 7: ValueError: bad"), broke a rule (returned None, a wrong
    shape or dtype, kept a view), or the pipeline died or sent something impossible;
    code 2 when CONVEYOR_STAGE is missing, malformed, of another protocol version or
    refused. Raises PipelineDefinitionError (a ValueError) at once for a bad fn, input or
    output.
    """
    if not callable(fn):
        raise PipelineDefinitionError(f"serve_stage: a stage is a function, not {fn!r}")
    capacity, generator = _positional_capacity(fn)
    if capacity == -1 or generator:
        raise PipelineDefinitionError(
            f"serve_stage: {_display_name(fn, repr(fn))} must be h(x, out) or h(x) (a ufunc "
            "of one input and one output); a generator stage is not served by a program")
    into = capacity is not None and capacity >= 2
    contract_in = _expectation(input, "input")
    contract_out = _expectation(output, "output")
    served = _Served()
    callback = _item_function(fn, into, served)

    # Ctrl-C: the C core's waits do not return to Python, so a Python handler could only
    # run at the next item. The default action ends the program at once, as for a C
    # program (nothing of the pipeline's needs cleaning here). An ignored SIGINT (a
    # pipeline that handles Ctrl-C itself started this program) stays ignored.
    restore = None
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            restore = signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        status, binding_error = _core.serve_stage(callback, contract_in, contract_out)
    finally:
        if restore is not None:
            signal.signal(signal.SIGINT, restore)
    if status == 0:
        return 0
    code = 2 if status in _CONTRACT_STATUSES else 1
    name = _core._error(status).name
    cause = served.error if served.error is not None else binding_error
    if served.trace:
        sys.stderr.write(f"conveyor.serve_stage: stage '{served.name}' failed on item "
                         f"{served.item}:\n{served.trace}")
        sys.stderr.flush()
    if served.error is not None:
        text = str(served.error)
        what = f"{type(served.error).__name__}: {text}" if text else type(served.error).__name__
        message = f"stage '{served.name}' item {served.item}: {what}"
    elif code == 2:
        message = ("the stage's CONVEYOR_STAGE contract is missing, malformed or refused "
                   f"({name}); the reason was written to the pipeline's report (or stderr)")
    else:
        message = (f"serving stage '{served.name}' stopped ({name}); the reason was written to "
                   "the pipeline's report (or stderr)")
    raise StageProgramError(message, code=code, status=status, name=name, stage=served.name,
                            item=served.item) from cause
