"""conveyor.Pipeline: the question's pipeline, each stage in its own process, arrays
moving between them in shared-memory slots without a copy or a pickle."""

import numpy as np

from .errors import PipelineDefinitionError
from .plan import RunPlan
from .rank_plan import check_rank
from .run import Results
from .stages import make_external, make_source, make_stage

__all__ = ["Pipeline", "PipelineRun"]

_STARTS = ("fork", "spawn")


def _check_buffer(buffer):
    if isinstance(buffer, bool) or not isinstance(buffer, (int, np.integer)) or not 1 <= buffer <= 1024:
        raise PipelineDefinitionError(f"buffer must be an int in 1...1024, not {buffer!r}")
    return int(buffer)


def _check_start(start):
    if start not in _STARTS:
        raise PipelineDefinitionError(f"start must be 'fork' or 'spawn', not {start!r}")
    return start


class PipelineRun:
    """What Pipeline.run returns: ``result`` (what the reduce produced) and ``stats``
    (PipelineStats of the run)."""

    __slots__ = ("result", "stats")

    def __init__(self, result, stats):
        self.result = result
        self.stats = stats

    def __repr__(self):
        return f"PipelineRun(result={self.result!r}, stats={self.stats!r})"


class Pipeline:
    """A producer-consumer pipeline of numpy arrays: a source, stages each in its own
    process, and the results back in this one, in order.

    ::

        def xs(i, out):                        # writes item i into its slot
            np.random.default_rng([2016, i]).random(out=out)
        def h(x, out): np.multiply(x, x, out=out)   # reads x in place, writes its slot
        def g(x): return x * 3                 # or returns a new array (copied once)
        pipe = (conveyor.Pipeline(xs, count=1000, shape=(500, 2000))
                .stage(h).stage(g).stage(conveyor.kernel_stage([("add", 1.0)]), name="f"))
        run = pipe.run(lambda total, x: total + x.sum(), 0.0)
        print(run.result, run.stats)           # per-stage busy/wait times, bottleneck

    Every item lives in a slot of shared memory that the stage writing it owns; what
    crosses between processes is the slot's number on a channel (the C core's pools and
    channels: the same transport as Swift's Pipeline). A stage reads its input in place
    as a read-only array; nothing is pickled or copied, except what a stage returns or
    yields instead of writing into ``out`` (copied once into its slot).

    Source (``Pipeline(source, count=None, shape=None, dtype=float64, replicas=1,
    name="source", buffer=3, start="fork")``):

    - ``fill(i, out)`` with ``count``: writes item i into ``out`` (zero copy);
      ``make(i)`` with ``count`` returns item i (copied once). ``replicas=n`` runs n
      copies, item i in copy i % n. ``shape`` is required.
    - an iterable, or a function of no arguments that returns one (a generator
      function): iterated in the source's process, each array copied once. Without
      ``shape`` the first item is taken here, in this process, to learn its shape and
      dtype (fork only, and the iterable must be one that a forked child can go on
      iterating, such as a generator object).

    Stages (``.stage(fn, name=None, shape=None, dtype=None, replicas=1)``): ``fn(x, out)``
    writes its result into ``out`` (a numpy ufunc such as ``np.square`` is called so);
    ``fn(x)`` returns it; a generator function ``fn(xs)`` is handed an iterator of its
    inputs and yields its outputs (any number: it sees the whole stream, so it has one
    replica); ``conveyor.kernel_stage(program)`` runs Conveyor's fused kernels on the
    item in place. Output ``shape`` and ``dtype`` are the input's unless declared, and
    are fixed: every slot is sized before the run starts. ``.external(command, ...)``
    runs a program (C, Python's conveyor.serve_stage, Swift) as a stage, on the same
    slots in place.

    Rules a stage keeps: its input array is read-only and, with ``out``, valid only
    during the call: keeping a reference to either (or a view of them) after returning
    fails the stage with a message, because the slot is reused (copy what you keep:
    ``np.array(x)``). Returned and yielded arrays must have the declared shape and a
    dtype that casts to the declared one safely. A stage runs in its own process, so
    what it changes in globals stays there.

    ``buffer``: slots each writing stage replica owns (a queue's maxsize, in effect): at
    most that many of its items are in flight; small is fast (the working set stays in
    cache). ``start``: "fork" (stages may be any callable, lambdas too) or "spawn"
    (stages and source must be picklable: module-level functions).

    Failures: a stage that raises stops the run with StageFailed naming the stage, the
    item, the exception and its remote traceback; one killed by a signal or exiting on
    its own gives StageDied with the signal's name; Ctrl-C stops every stage at once and
    raises KeyboardInterrupt. Either way every stage process has been reaped and the
    run's shared memory (sealed memfds, no names in /dev/shm) is gone. If this process is
    killed, its stages die with it (PR_SET_PDEATHSIG, for runs started from the main
    thread; from another thread, at their next wait on a channel). A bad definition
    raises PipelineDefinitionError (a ValueError) before anything starts.

    Cost: starting a run forks (about 1 ms each) or spawns (about 100 ms each, numpy
    is imported) one process per stage replica and maps ``buffer`` slots per writing
    replica; per item, a few channel words (well under a microsecond each) and the
    checks of what arrived, tens of microseconds of Python in all.
    """

    __slots__ = ("_stages", "_buffer", "_start", "_peeked")

    def __init__(self, source, *, count=None, shape=None, dtype=None, replicas=1, name=None,
                 buffer=3, start="fork"):
        self._buffer = _check_buffer(buffer)
        self._start = _check_start(start)
        stage = make_source(source, count, shape, dtype, replicas, name)
        if stage.shape is None:
            stage = self._peek(stage)
        self._stages = [stage]

    def _peek(self, stage):
        if self._start != "fork":
            raise PipelineDefinitionError("an iterable source without shape= is read here to "
                                          "learn its shape, which needs start='fork'; give shape= "
                                          "and dtype=")
        iterator = iter(stage.body() if callable(stage.body) else stage.body)
        try:
            first = next(iterator)
        except StopIteration:
            raise PipelineDefinitionError("the source is empty: give shape= and dtype= to run "
                                          "a pipeline of no items") from None
        if not isinstance(first, np.ndarray):
            raise PipelineDefinitionError(f"the source yields {type(first).__name__}; a pipeline "
                                          "carries numpy arrays")
        return make_source(_Prepend(first, iterator), None, first.shape, first.dtype, 1, stage.name)

    def stage(self, fn, *, name=None, shape=None, dtype=None, replicas=1, buffer=None, rank=None):
        """A new Pipeline with `fn` appended as a stage (see the class documentation for
        its forms). ``buffer`` overrides the run's for the slots this stage writes.
        ``rank`` places it on that MPI rank for run_across_ranks (None: where the stage
        before it runs; the source is on rank 0). Checks the definition now: raises
        PipelineDefinitionError (a bad shape, dtype, replicas, buffer, rank, kernel
        program; a generator stage with replicas > 1)."""
        last = self._stages[-1]
        node = make_stage(fn, name, shape, dtype, replicas, len(self._stages), last.shape, last.dtype)
        node.rank = check_rank(rank, f"stage '{node.name}'")
        return self._appending(node, buffer)

    def external(self, command, *, name=None, shape=None, dtype=None, replicas=1, buffer=None,
                 rank=None):
        """A new Pipeline with a PROGRAM appended as a stage: ``command`` (a list of str,
        the program and its arguments) is started by the stage's worker process, once per
        replica, with the CONVEYOR_STAGE contract in its environment (conveyor.h section
        10): a C program on conveyor_stage_main, a Python one on conveyor.serve_stage, a
        Swift one. It reads each input in place in its slot and writes its output in place
        into a slot of this stage's pool: nothing is copied or pickled. ``shape`` and
        ``dtype`` of its output are the input's unless declared (1 to 4 extents); the
        program refuses a declaration it cannot serve. ``name`` defaults to the program's
        file name; ``buffer`` and ``rank`` as for stage().

        Failures name the stage and the item: the program's one-line report as
        StageFailed (exception_type "ProgramFailed" for exit status 1, "ContractRefused"
        for 2), StageDied for a signal or another status (also 0 before the stream
        ended). Ending the run early (a failure elsewhere, close(), Ctrl-C) kills and
        reaps the program; if the worker itself is killed, the program dies with it
        (PR_SET_PDEATHSIG). Its stdout and stderr are this process's; its SIGINT is
        ignored (the run handles Ctrl-C).

        Cost: starting the program (an exec; about 0.1 s for a Python one that imports
        numpy) per replica; per item four channel words between the worker and the
        program and two futex wakes (some 10-50 us), besides the program's own work. The
        worker waits for the program in 20 ms slices, checking that it is alive and
        whether the run is stopping. Raises PipelineDefinitionError now (not a list of
        str, a program not found, a bad shape, dtype, replicas or buffer)."""
        last = self._stages[-1]
        node = make_external(command, name, shape, dtype, replicas, len(self._stages), last.shape,
                             last.dtype)
        node.rank = check_rank(rank, f"stage '{node.name}'")
        return self._appending(node, buffer)

    def _appending(self, node, buffer):
        """A new Pipeline: this one's stages and `node`, which writes `buffer` slots per
        replica when given (checked), else the run's."""
        if buffer is not None:
            node.buffer = _check_buffer(buffer)
        pipe = Pipeline.__new__(Pipeline)
        pipe._stages = self._stages + [node]
        pipe._buffer, pipe._start = self._buffer, self._start
        return pipe

    @property
    def stage_names(self):
        """Names of the source and the stages, in order."""
        return [s.name for s in self._stages]

    def results(self, *, buffer=None, start=None):
        """Starts a run and returns its Results: an iterator of the final arrays in order
        (read-only views, zero copy) and a context manager that stops the run when left.
        Raises PipelineDefinitionError, StageFailed, StageDied while iterating."""
        buffer = self._buffer if buffer is None else _check_buffer(buffer)
        start = self._start if start is None else _check_start(start)
        placed = [s for s in self._stages if s.rank not in (None, 0)]
        if placed:
            raise PipelineDefinitionError(
                f"stage '{placed[0].name}' is placed on rank {placed[0].rank}: run() and results() "
                "run on one machine; run such a pipeline with run_across_ranks() under mpirun "
                "(e.g. mpirun -n 4 python script.py)")
        if start == "spawn" and isinstance(self._stages[0].body, _Prepend):
            raise PipelineDefinitionError("this source was read here to learn its shape and can "
                                          "only continue in a forked process: use start='fork'")
        return Results(RunPlan(self._stages, buffer), start)

    def __iter__(self):
        """``for x in pipeline``: results() with the pipeline's buffer and start."""
        return self.results()

    def run(self, reduce=None, initial=None, *, buffer=None, start=None):
        """Runs the pipeline to the end, folding every final array into ``initial`` in
        order with ``reduce(accumulated, x)`` (x is a read-only view, valid during the
        call; without reduce the results are only counted). Returns a PipelineRun with
        ``result`` and ``stats``. Raises as results() does; an exception in reduce stops
        the run and propagates."""
        accumulated = initial
        with self.results(buffer=buffer, start=start) as results:
            for x in results:
                if reduce is not None:
                    accumulated = reduce(accumulated, x)
                del x
        return PipelineRun(accumulated, results.stats)

    def run_across_ranks(self, reduce=None, initial=None, *, buffer=None, liveness=10.0):
        """Runs the pipeline across the ranks of an MPI job (call it on every rank, under
        mpirun, with the same definition): stages placed with ``rank=`` run on that rank,
        a stage without one where the stage before it runs, the source and the sink on
        rank 0. The pipeline is cut into segments of consecutive stages on one rank; each
        runs there as a local pipeline (stage processes forked as by run()), and the items
        cross between ranks through conveyor._mpi links (the C bridge, no mpi4py, nothing
        pickled). Zero copy on both sides of a link: the sending segment's last slot is
        sent in place, and the receiving segment's source (a thread of the rank's main
        process: only it calls MPI, never a forked stage) receives each item straight into
        its slot.

        Returns a RanksRun: ``result`` (the fold of ``reduce(accumulated, x)`` over the
        final arrays in order, on rank 0; None elsewhere) and ``ranks`` (RankStats per
        rank: segments' stage names, items and busy seconds, links' frames, bytes and
        blocked seconds; rank 0 holds every rank's). ``liveness``: seconds after which a
        silent rank is dead. MPI is initialized on first use (MPI_THREAD_MULTIPLE) and
        finalized at exit.

        Failures: on rank 0, the failure that explains the others: the original exception
        when it was rank 0's own (StageFailed, StageDied, your reduce's), else RankFailed
        naming the rank, the stage and the item (a rank that died is named too, within
        ``liveness``); the other ranks raise RankFailed with what they saw. Raises
        MPINotBuilt (an MPIError) when conveyor was built without MPI, and
        PipelineDefinitionError for a rank outside the job. Cost: per item and link one
        descriptor message and the payload (in 4 MiB chunks); per run a few threads and
        links (heartbeats every 0.1 s)."""
        from .ranks_run import run_across_ranks
        buffer = self._buffer if buffer is None else _check_buffer(buffer)
        if not isinstance(liveness, (int, float)) or isinstance(liveness, bool) or not liveness > 0:
            raise PipelineDefinitionError(f"liveness must be seconds > 0, not {liveness!r}")
        return run_across_ranks(self, reduce, initial, buffer, self._start, float(liveness))

    def __repr__(self):
        return f"<Pipeline {' -> '.join(self.stage_names)}, buffer={self._buffer}, start={self._start!r}>"


class _Prepend:
    """An iterator that yields `first`, then the rest of `iterator` (a peeked source)."""

    def __init__(self, first, iterator):
        self._first = [first]
        self._iterator = iterator

    def __iter__(self):
        return self

    def __next__(self):
        if self._first:
            return self._first.pop()
        return next(self._iterator)
