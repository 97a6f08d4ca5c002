"""The pipeline's exceptions: what went wrong, in which stage, on which item.

Every one is a ConveyorError (so ``except conveyor.ConveyorError`` catches a pipeline's
failures with the rings'), and a PipelineError with these attributes:

- ``stage``: the stage's name ("source", "h", "sink"...), or None for the whole run;
- ``replica``: which copy of the stage (0 for a stage without replicas), or None;
- ``item``: the item it was working on (its index in the stream), or None.
"""

from .._core import ConveyorError

__all__ = ["PipelineError", "StageFailed", "StageDied", "PipelineDefinitionError",
           "StageProgramError", "RankFailed"]


class PipelineError(ConveyorError):
    """A pipeline run failed; see the subclasses. Raised by Pipeline.run and by
    iterating Pipeline.results(); when it reaches you, every stage process has been
    stopped and reaped and the run's shared memory is gone."""

    status = None
    name = "PIPELINE"

    def __init__(self, message, *, stage=None, replica=None, item=None):
        super().__init__(message)
        self.stage = stage
        self.replica = replica
        self.item = item


class StageFailed(PipelineError):
    """A stage raised an exception, or broke the pipeline's rules (an array of the wrong
    shape or dtype, a view of a slot kept after returning). ``exception_type`` is the
    remote exception's class name ("ZeroDivisionError"), ``remote_traceback`` its
    formatted traceback from the stage's process (also at the end of the message).

    For an external stage (Pipeline.external) whose program reported a failure, the
    message holds the program's one-line report; ``exception_type`` is "ProgramFailed"
    (it exited with status 1) or "ContractRefused" (status 2: it refused the shapes and
    dtypes the pipeline declared, or the contract line), and ``remote_traceback`` says
    which program ended how (a Python program's own traceback is on its stderr)."""

    def __init__(self, message, *, stage, replica, item, exception_type, remote_traceback):
        super().__init__(message, stage=stage, replica=replica, item=item)
        self.exception_type = exception_type
        self.remote_traceback = remote_traceback


class StageDied(PipelineError):
    """A stage's process ended without reporting: killed by a signal (``signal`` is its
    name, e.g. "SIGKILL", ``exitcode`` is minus its number) or exited with a status of
    its own (``os._exit(1)`` in a stage: ``signal`` is None, ``exitcode`` the status).
    For an external stage these describe its program (also one that exited with status 0
    before it finished its item)."""

    def __init__(self, message, *, stage, replica, item, signal, exitcode):
        super().__init__(message, stage=stage, replica=replica, item=item)
        self.signal = signal
        self.exitcode = exitcode


class PipelineDefinitionError(PipelineError, ValueError):
    """The pipeline cannot run as defined: a bad shape, dtype, replica count, buffer,
    start method, stage or source, found before any process starts. Also a ValueError."""


class StageProgramError(ConveyorError, SystemExit):
    """conveyor.serve_stage stopped before the end of the stream: the stage function
    raised or broke a rule (``code`` 1), the contract was malformed or refused (``code``
    2), or the pipeline died (``code`` 1). Its one-line reason was already written where
    the pipeline reads it (the contract's report fd, else stderr).

    It is a ConveyorError (``except conveyor.ConveyorError`` catches it) and also a
    SystemExit whose ``code`` is the program's exit status, so a program that ends with
    ``conveyor.serve_stage(fn)`` (or ``raise SystemExit(conveyor.serve_stage(fn))``) exits
    with 0, 1 or 2 as conveyor_stage_main does, without a second report. Attributes:
    ``status`` and ``name`` (the C status, e.g. 11 and "CONVEYOR_E_BAD_STATE"), ``stage``
    (the stage's name, or None before the contract was read), ``item`` (the item that
    failed, or None), ``code``. The stage function's own exception, if any, is its
    ``__cause__`` (with its traceback, also printed to stderr)."""

    def __init__(self, message, *, code, status, name, stage=None, item=None):
        super().__init__(message)
        self.code = code
        self.status = status
        self.name = name
        self.stage = stage
        self.item = item


class RankFailed(PipelineError):
    """A run across ranks (Pipeline.run_across_ranks) failed on another rank than this
    one: ``rank`` is the rank whose own failure explains the others (a stage that raised
    or died there, or the rank itself died), ``stage`` and ``item`` what failed there,
    ``exception_type`` and ``remote_traceback`` as for StageFailed (None when unknown).
    Raised on rank 0 with the root cause; on the other ranks with what that rank saw."""

    def __init__(self, message, *, rank, stage=None, item=None, exception_type=None,
                 remote_traceback=None):
        super().__init__(message, stage=stage, item=item)
        self.rank = rank
        self.exception_type = exception_type
        self.remote_traceback = remote_traceback
