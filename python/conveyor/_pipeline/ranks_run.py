"""Pipeline.run_across_ranks: the pipeline cut into segments per MPI rank (rank_plan.py),
each segment run on its rank as a local pipeline (run.py) with the C bridge's links
between them (conveyor._mpi). Under mpirun, every rank calls it with the same definition.

Only the rank's main process calls MPI: stage processes are forked before any link is
opened and never touch one. The ends of the links live in the parent:
- outgoing: the segment's sink is this module's loop over its results, which sends each
  final array on the link straight from its slot (a read-only view, zero copy);
- incoming: the segment's source is a link source (link_source.py) run as a thread of the
  parent (runner_thread.py), which receives each item straight into its slot (zero copy).
A rank with several segments (rank 0 always has the first and, when the last stage is
elsewhere, the last) drives all but its last in threads.

Failure: a segment that fails stops its run, sets the rank's stop flag (its other
segments stop at their next item) and destroys its links, so that the neighbouring ranks
see a dead peer at once and stop in turn. At the end, rank r != 0 sends rank 0 a report
(its statistics and failure) on channel len(segments) + r; rank 0 raises the failure
that explains the others: a rank's own (a stage or reduce that raised, a stage that
died) before a broken link; a rank that sent no report is taken as dead.
"""

import atexit
import json
import threading
import time
import traceback

import numpy as np

from .._mpi_errors import MPIError, MPINotBuilt
from .errors import PipelineError, RankFailed, StageDied, StageFailed
from .link_source import LinkFeed
from .plan import RunPlan
from .rank_plan import RankPlan
from .rank_stats import RankStats, RanksRun
from .run import Results
from .stages import SOURCE_LINK, Stage

__all__ = ["run_across_ranks", "load_mpi"]

_finalize_registered = False


def load_mpi():
    """conveyor._mpi, initialized (MPI_THREAD_MULTIPLE; MPI finalized at exit). Raises
    MPINotBuilt when this conveyor was built without MPI."""
    global _finalize_registered
    try:
        from .. import _mpi
    except ImportError as error:
        raise MPINotBuilt("MPI support was not built into this conveyor (no MPI library was found "
                          "when it was installed): install an MPI (e.g. libopenmpi-dev) and "
                          "reinstall conveyor to use run_across_ranks") from error
    _mpi.init()
    if not _finalize_registered:
        _finalize_registered = True
        atexit.register(_finalize_quietly, _mpi)
    return _mpi


def _finalize_quietly(mpi):
    try:
        mpi.finalize()
    except MPIError:
        pass


class _RankStopping(Exception):
    """Another segment of this rank failed: this one stops too."""


class _Segment:
    """One segment on this rank: its local run, its links, how it ended."""

    def __init__(self, plan, segment, buffer, start, liveness):
        self.segment = segment
        self.liveness = liveness
        self.feed = None
        stages = list(segment.stages)
        if segment.index > 0:
            previous = plan.segments[segment.index - 1]
            self.feed = LinkFeed(segment.index - 1, previous.rank)
            shape, dtype = segment.input
            source = Stage(SOURCE_LINK, self.feed, f"link<-{previous.rank}", 1, shape, dtype)
            stages.insert(0, source)
        self.next_rank = None if segment.holds_sink else plan.segments[segment.index + 1].rank
        self.out_link = None
        self.results = Results(RunPlan(stages, buffer), start)  # forks its stage processes
        self.result = None
        self.failure = None
        self.error = None
        self.link_stats = []

    def open_links(self, mpi):
        index = self.segment.index
        if self.feed is not None:
            self.feed.link = mpi.Link(self.feed.peer, index - 1, False, liveness=self.liveness)
        if self.next_rank is not None:
            self.out_link = mpi.Link(self.next_rank, index, True, liveness=self.liveness)

    def drive(self, reduce, initial, stop):
        """Runs the segment to its end: the real sink's fold, or the sends of its link."""
        try:
            self.results.start_runner_threads()
            accumulated = initial
            with self.results as results:
                for t, x in enumerate(results):
                    if stop.is_set():
                        raise _RankStopping()
                    if self.out_link is not None:
                        self.out_link.send(x, tag=t)
                    elif reduce is not None:
                        accumulated = reduce(accumulated, x)
                    del x
            if self.out_link is not None:
                self.out_link.close()
            self.result = accumulated
        except BaseException as error:  # noqa: B902 - every failure is reported to rank 0
            self.error = error
            self.failure = self._classify(error)
            stop.set()
        finally:
            self._destroy_links()

    def _classify(self, error):
        link_error = self.feed.error if self.feed is not None else None
        link_name = f"link<-{self.feed.peer}" if self.feed is not None else None
        failure = {"time": time.time(), "segment": self.segment.index,
                   "type": getattr(error, "exception_type", None) or type(error).__name__,
                   "message": str(error),
                   "stage": getattr(error, "stage", None), "item": getattr(error, "item", None),
                   "traceback": getattr(error, "remote_traceback", None) or
                   "".join(traceback.format_exception(error))}
        if isinstance(error, MPIError):
            failure["kind"] = "link"
        elif link_error is not None and getattr(error, "stage", None) in (None, link_name):
            failure.update(kind="link", type=type(link_error).__name__, message=str(link_error))
        elif isinstance(error, (StageFailed, StageDied)) or not isinstance(error, (PipelineError, _RankStopping)):
            failure["kind"] = "own"
        else:
            failure["kind"] = "stopped"
        return failure

    def _destroy_links(self):
        for link in (self.feed.link if self.feed is not None else None, self.out_link):
            if link is not None:
                stats = link.stats()
                self.link_stats.append({"channel": link.channel, "peer": link.peer,
                                        "sending": link.sending, "frames": stats["frames"],
                                        "bytes": stats["bytes"],
                                        "blocked_seconds": stats["blocked_seconds"]})
                link.destroy()

    def stats(self):
        s = self.results.stats
        if s is None:
            return {"index": self.segment.index, "seconds": None, "stages": []}
        return {"index": self.segment.index, "seconds": s.seconds,
                "stages": [{"name": st.name, "items": st.items, "busy_seconds": st.busy_seconds}
                           for st in s.stages]}


def run_across_ranks(pipeline, reduce, initial, buffer, start, liveness):
    """The body of Pipeline.run_across_ranks (see there)."""
    mpi = load_mpi()
    rank, size = mpi.rank(), mpi.size()
    plan = RankPlan(pipeline._stages, size)
    segments = []
    try:
        for segment in plan.on(rank):  # every fork happens here, before any link exists
            segments.append(_Segment(plan, segment, buffer, start, liveness))
    except BaseException:
        for s in segments:
            s.results.close()
        raise
    reports = _open_reports(mpi, plan, rank, size, liveness)
    stop = threading.Event()
    for s in segments:
        try:
            s.open_links(mpi)
        except MPIError as error:
            s.error, s.failure = error, s._classify(error)
            stop.set()
    threads = [threading.Thread(target=s.drive, args=(reduce, initial, stop), daemon=True,
                                name=f"conveyor:segment:{s.segment.index}") for s in segments[:-1]]
    for thread in threads:
        thread.start()
    if segments:
        if segments[-1].failure is None:
            segments[-1].drive(reduce, initial, stop)
        else:
            segments[-1].results.close()
            segments[-1]._destroy_links()
    for thread in threads:
        thread.join()
    own = RankStats(rank, [s.stats() for s in segments], [l for s in segments for l in s.link_stats],
                    _first_failure(segments))
    ranks = [None] * size
    ranks[rank] = own
    if rank != 0:
        _send_report(reports, own)
        if own.failure is not None:
            raise _local_error(own.failure, rank, _first_error(segments))
        return RanksRun(None, ranks)
    for r, link in reports.items():
        ranks[r] = _receive_report(link, r)
    _raise_root_cause(ranks, _first_error(segments))
    sink = segments[-1]
    return RanksRun(sink.result, ranks)


def _open_reports(mpi, plan, rank, size, liveness):
    """The report links: rank 0 receives one from every other rank, which sends one."""
    if rank != 0:
        return {0: mpi.Link(0, plan.report_channel(rank), True, liveness=liveness)}
    return {r: mpi.Link(r, plan.report_channel(r), False, liveness=liveness) for r in range(1, size)}


def _first_failure(segments):
    failures = [s.failure for s in segments if s.failure is not None]
    order = {"own": 0, "link": 1, "stopped": 2}
    return min(failures, key=lambda f: (order[f["kind"]], f["time"])) if failures else None


def _first_error(segments):
    failure = _first_failure(segments)
    return next((s.error for s in segments if s.failure is failure), None) if failure else None


def _send_report(reports, own):
    link = reports[0]
    try:
        link.send(np.frombuffer(json.dumps(own.to_report()).encode(), np.uint8))
        link.close()
    except MPIError:
        pass  # rank 0 is gone: it cannot be told
    finally:
        link.destroy()


def _receive_report(link, r):
    try:
        described = link.next()
        if described is None:
            raise MPIError(f"rank {r} ended its report link without a report")
        data = bytearray(described[1][0])
        link.receive_into(data)
        link.next()
        return RankStats.from_report(json.loads(data.decode()))
    except (MPIError, ValueError) as error:
        return RankStats(r, [], [], {"kind": "dead", "time": 0.0, "type": type(error).__name__,
                                     "message": f"rank {r} sent no report: {error}",
                                     "stage": None, "item": None, "traceback": None})
    finally:
        link.destroy()


def _describe(failure, rank):
    where = f"rank {rank}"
    if failure.get("stage") is not None:
        where += f", stage '{failure['stage']}'"
    if failure.get("item") is not None:
        where += f", item {failure['item']}"
    return f"{where}: {failure['type']}: {failure['message'].split(chr(10))[0]}"


def _local_error(failure, rank, error):
    return RankFailed(f"the run across ranks failed on {_describe(failure, rank)}", rank=rank,
                      stage=failure.get("stage"), item=failure.get("item"),
                      exception_type=failure.get("type"), remote_traceback=failure.get("traceback"))


def _raise_root_cause(ranks, own_error):
    failed = [(r.failure, r.rank) for r in ranks if r is not None and r.failure is not None]
    if not failed:
        return
    order = {"own": 0, "dead": 0, "link": 1, "stopped": 2}
    failure, rank = min(failed, key=lambda f: (order[f[0]["kind"]], f[0]["time"], f[1]))
    if rank == 0 and own_error is not None:
        raise own_error
    raise RankFailed(f"the run across ranks failed on {_describe(failure, rank)}", rank=rank,
                     stage=failure.get("stage"), item=failure.get("item"),
                     exception_type=failure.get("type"), remote_traceback=failure.get("traceback"))
