"""The question's decorator, made real: ``from conveyor import parallel_pipeline``.

The 2016 question wrote each stage as a generator over the previous one's output and
composed them as ``f(g(h(xs())))``, with ``@parallel_pipeline(3)`` meant to put each
stage in its own process; its multiprocessing.Queue pickled every array. This decorator
keeps that code unchanged: calling a decorated stage records it, the composition builds a
Pipeline (the source's iterable, then each decorated generator, in order), and iterating
the outermost one runs it, each stage in its own forked process, each yielded array
copied once into a shared-memory slot and read in place by the next stage.

What it cannot do, and says so with a PipelineError instead of guessing:
- every stage yields numpy arrays of one shape and dtype: its input's unless declared
  with ``@parallel_pipeline(3, shape=..., dtype=...)``; a different one fails the stage;
- arrays a stage receives are read-only views, valid until it asks for the next one
  (``x += 1`` raises; ``yield x + 1`` is fine); keep copies, not views;
- the composition runs once: iterate it once (a second ``for`` sees it exhausted);
- every stage between the source and the end is decorated: a plain generator between
  decorated stages would carry a running pipeline into the next stage's process, which
  fails that stage with a PipelineError saying so (decorate it too);
- processes are forked (the source iterable is continued in a child): it works on Linux
  (as all of Conveyor), whatever multiprocessing's default start method is.
"""

import functools

from .errors import PipelineDefinitionError
from .pipeline import Pipeline

__all__ = ["parallel_pipeline"]


def parallel_pipeline(buffer_size=50, *, shape=None, dtype=None):
    """Decorator for a generator stage ``f(xs)``: ``f(upstream)`` then runs f in its own
    process as part of a Conveyor pipeline, with ``buffer_size`` slots for what f yields
    (what a multiprocessing.Queue's maxsize would be). ``shape``/``dtype`` declare what f yields when it is not
    its input's shape and dtype. Iterating the outermost call yields the last stage's
    arrays in order as read-only views (copy what you keep for long). Raises
    PipelineDefinitionError for a bad argument, StageFailed/StageDied when a stage fails
    (after stopping every stage)."""
    if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 1:
        raise PipelineDefinitionError(f"parallel_pipeline: buffer_size must be an int >= 1, not "
                                      f"{buffer_size!r}")

    def decorate(f):
        @functools.wraps(f)
        def stage(xs):
            return _Composed(xs, (f, buffer_size, shape, dtype))
        return stage
    return decorate


class _Composed:
    """``f(g(h(xs)))`` before it runs: the source iterable and the stages so far. An
    iterator: the first next() starts the pipeline."""

    def __init__(self, upstream, stage):
        if isinstance(upstream, _Composed) and upstream._results is None:
            self._source, self._stages = upstream._source, upstream._stages + [stage]
            upstream._consumed = True
        else:
            self._source, self._stages = upstream, [stage]
        self._results = None
        self._consumed = False

    def __iter__(self):
        return self

    def __next__(self):
        if self._results is None:
            if self._consumed:
                raise PipelineDefinitionError("this stage's output was handed to another "
                                              "parallel_pipeline stage, which runs it")
            self._results = self._start()
        return next(self._results)

    def _start(self):
        pipe = Pipeline(self._source, buffer=self._stages[0][1], start="fork")
        for f, buffer_size, shape, dtype in self._stages:
            pipe = pipe.stage(f, shape=shape, dtype=dtype, buffer=buffer_size)
        return pipe.results()

    @property
    def stats(self):
        """PipelineStats of the run once it ended, else None."""
        return None if self._results is None else self._results.stats

    def close(self):
        """Stops the run if it is going."""
        if self._results is not None:
            self._results.close()
