"""A pipeline cut where it crosses MPI ranks (Pipeline.run_across_ranks), as Swift's
RankPlan does: the runs of consecutive stages on one rank (segments), in pipeline order,
and the links between them.

The source is on rank 0, and a stage without a rank runs where the stage before it does.
Segment k ends where the next stage is on another rank; link channel k carries its items
to segment k + 1. If the last stage is not on rank 0, a last segment on rank 0 holds only
the sink. Every rank computes the same plan from the same definition (they run the same
script), so channel numbers agree without a word exchanged. At the end, rank r != 0 sends
its report to rank 0 on channel ``report_channel(r)`` (after every link's). Pure
arithmetic: no MPI here.
"""

from .errors import PipelineDefinitionError

__all__ = ["RankPlan", "Segment", "check_rank"]


def check_rank(rank, what):
    """The rank of a placement (None, or an int >= 0), checked."""
    if rank is None:
        return None
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
        raise PipelineDefinitionError(f"{what}: rank must be None or an int >= 0, not {rank!r}")
    return rank


class Segment:
    """One segment: ``index``, the ``rank`` it runs on, its ``stages`` (the first
    segment's first one is the pipeline's source), ``input`` ((shape, dtype) it receives
    on link ``index - 1``, None for the first) and ``holds_sink`` (it ends with the real
    sink, else with link ``index``)."""

    __slots__ = ("index", "rank", "stages", "input", "holds_sink")

    def __init__(self, index, rank, stages, input, holds_sink):
        self.index, self.rank, self.stages = index, rank, stages
        self.input, self.holds_sink = input, holds_sink

    @property
    def output(self):
        """(shape, dtype) of what it hands on: its last stage's output, or its input."""
        if self.stages:
            return self.stages[-1].shape, self.stages[-1].dtype
        return self.input

    @property
    def names(self):
        return [s.name for s in self.stages]


class RankPlan:
    """The segments of `stages` (source first) for a job of `ranks` ranks. Raises
    PipelineDefinitionError for a rank outside 0...ranks - 1."""

    def __init__(self, stages, ranks):
        runs = [[0, [stages[0]]]]
        for stage in stages[1:]:
            rank = runs[-1][0] if stage.rank is None else stage.rank
            if rank >= ranks:
                raise PipelineDefinitionError(f"stage '{stage.name}' is placed on rank {rank}, but "
                                              f"the job has {ranks} ranks")
            if rank == runs[-1][0]:
                runs[-1][1].append(stage)
            else:
                runs.append([rank, [stage]])
        if runs[-1][0] != 0:
            runs.append([0, []])
        self.ranks = ranks
        self.segments = []
        for k, (rank, run) in enumerate(runs):
            previous = self.segments[k - 1].output if k else None
            self.segments.append(Segment(k, rank, run, previous, k == len(runs) - 1))

    def on(self, rank):
        """The segments rank `rank` runs, in order."""
        return [s for s in self.segments if s.rank == rank]

    def report_channel(self, rank):
        """The channel on which rank `rank` reports to rank 0 at the end."""
        return len(self.segments) + rank
