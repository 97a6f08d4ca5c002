"""The source of a segment that does not hold the pipeline's source (run_across_ranks):
item t comes from the MPI link of the previous segment, received straight into the slot
it then occupies. Zero copy: MPI writes the payload into the slot's shared memory (the
network's copy is the only one), and the slot's number goes on as any source's does.

It runs as a thread of the parent (runner_thread.py), never in a forked child, because
only the parent may call MPI. Per item: wait for the link's descriptor (in 50 ms slices,
looking at the run's stop request), check it (dtype, shape, tag = t), take a free slot
(as every source does, in order), receive the payload into the slot, describe it and
send its number on. At the end of the link's stream the source ends as a finite source
does. A link failure (the other rank died or failed) is kept on the feed for the driver
(ranks_run.py) and ends the worker as STOPPED: it is not this rank's own failure.
"""

import time

__all__ = ["LinkFeed", "run_link_source"]

_SLICE = 0.05
_now = time.perf_counter_ns


class LinkFeed:
    """The body of a link source: the receiving Link (set by the driver after every stage
    process was forked, before the thread starts), and the MPIError that broke it."""

    def __init__(self, channel, peer):
        self.channel, self.peer = channel, peer
        self.link = None
        self.error = None

    def __getstate__(self):  # a spawned stage process gets the plan: never the link
        return {"channel": self.channel, "peer": self.peer, "link": None, "error": None}

    def __setstate__(self, state):
        self.__dict__.update(state)


def run_link_source(w):
    """The body of worker `w` (a Worker of a SOURCE_LINK stage, in a RunnerThread)."""
    from .._mpi_errors import MPIError
    from .worker import StageRuleError, _Stop
    feed, stop = w.stage.body, w.runner.stop
    shape, dtype = w.stage.shape, w.stage.dtype.name
    t = 0
    try:
        while True:
            t0 = _now()
            while True:
                if stop.is_set():
                    raise _Stop()
                try:
                    described = feed.link.next(_SLICE)
                    break
                except TimeoutError:
                    continue
            if described is None:
                return
            if described != (dtype, shape, t):
                raise StageRuleError(f"link from rank {feed.peer} (channel {feed.channel}) sent "
                                     f"{described} where item {t} as {dtype} {shape} was due")
            w.begin(t)
            t1 = _now()
            slot = w.take_free_slot()
            t2 = _now()
            out = w.out_pool.array(slot, w.out_code, shape, True)
            feed.link.receive_into(out)
            del out
            w.publish(t, slot)
            w.count(1, _now() - t2, t1 - t0, t2 - t1)
            t += 1
    except MPIError as error:
        feed.error = error
        raise _Stop() from error
