"""The shared memory of one run: a slot pool per node that writes slots, the channels
that carry slot numbers between workers, and the control block. All of it is made by
the parent before any stage process starts, backed by sealed memfds: forked stages
inherit it, spawned ones receive the fds (multiprocessing passes them at process start),
and nothing of it has a name, so nothing can be left in /dev/shm by any crash.

- inputs[n][k]: the input channel of replica k of node n >= 1 (the sink included), one
  lane per replica of node n - 1;
- returns[h][j]: the return channel of replica j of slot-writing node h, one lane per
  replica of the node that reads h's slots (plan.reader[h]).

A lane holds every slot its pool can have in flight, so a send never waits: the only
waits are for an item and for a free slot (see plan.py for who waits for what).
"""

import copyreg
import os

from .. import _core
from .control import ControlBlock
from .plan import decode

__all__ = ["RunTransport", "WorkerEnds", "slot_word_problem"]


def _rebuild(attach_fd, dupfd):
    fd = dupfd.detach()
    try:
        return attach_fd(fd)
    finally:
        os.close(fd)


def _reduce_by_fd(shared):
    """Pickles a Pool or Channel as its fd: only at a spawned process's start, where DupFd
    passes the fd to the child directly."""
    from multiprocessing.reduction import DupFd
    return (_rebuild, (type(shared).attach_fd, DupFd(shared.fd)))


copyreg.pickle(_core.Pool, _reduce_by_fd)
copyreg.pickle(_core.Channel, _reduce_by_fd)


def slot_word_problem(word, item, replica, per_replica, pool, layout=None):
    """(slot, why) for a received word: why is None when the word says `item` sits in one
    of `replica`'s slots of `pool` (per_replica slots each) and, with layout = (dtype code,
    shape), the slot's descriptor says it holds that item so; else it says what is wrong.
    Words and descriptors come from shared memory another process writes: every receiver
    checks them here before it touches a slot."""
    got, slot = decode(word)
    if got != item or slot // per_replica != replica or slot >= pool.slot_count:
        return slot, (f"protocol error: expected item {item} in a slot of replica {replica}, "
                      f"received item {got} in slot {slot}")
    if layout is not None:
        described = pool.frame(slot)
        if described != (*layout, item):
            return slot, (f"protocol error: slot {slot} holds {described}, expected "
                          f"{(*layout, item)} (dtype, shape, item)")
    return slot, None


class RunTransport:
    """Pools, channels and the control block of a run (picklable for spawn)."""

    def __init__(self, plan):
        self.plan = plan
        self.pools = [None] * (plan.sink + 1)
        made = []
        try:
            for h, stage in enumerate(plan.stages):
                if plan.per_replica[h] is None:
                    continue
                count = plan.per_replica[h] * stage.replicas
                slot_bytes = max(stage.nbytes, 1)
                self.pools[h] = _core.Pool(count, slot_bytes)
                made.append(self.pools[h])
            self.inputs = [[]]
            for n in range(1, plan.sink + 1):
                capacity = plan.input_capacity(n)
                lanes = plan.replicas[n - 1]
                self.inputs.append([_core.Channel(lanes, capacity) for _ in range(plan.replicas[n])])
                made.extend(self.inputs[-1])
            self.returns = []
            for h, m in enumerate(plan.reader):
                if m is None:
                    self.returns.append([])
                    continue
                self.returns.append([_core.Channel(plan.replicas[m], plan.per_replica[h])
                                     for _ in range(plan.replicas[h])])
                made.extend(self.returns[-1])
            self.control = ControlBlock(len(plan.workers()) + 1)
        except BaseException:
            for thing in made:
                thing.close()
            raise

    @property
    def nbytes(self):
        """Bytes of shared memory the run holds (pools, channels, control block)."""
        total = self.control.nbytes
        for pool in self.pools:
            total += pool.mapped_bytes if pool is not None else 0
        for group in self.inputs + self.returns:
            total += sum(channel.mapped_bytes for channel in group)
        return total

    def open_ends(self, n, k):
        """The channel ends worker (n, k) uses, opened by the calling process (a stage
        process does this first, so that its peers see at once if it dies). Raises Busy
        if a live process holds one of them, RingCorrupt."""
        plan = self.plan
        ends = WorkerEnds()
        if n > 0:
            ends.input = self.inputs[n][k].open(_core.CHANNEL_RECEIVER, 0)
        if n < plan.sink:
            ends.onward = [c.open(_core.CHANNEL_SENDER, k) for c in self.inputs[n + 1]]
        if plan.reader[n] is not None:
            ends.freed = self.returns[n][k].open(_core.CHANNEL_RECEIVER, 0)
        if n > 0 and (n == plan.sink or plan.stages[n].reads_slots):
            ends.back = [c.open(_core.CHANNEL_SENDER, k) for c in self.returns[plan.input_owner(n)]]
        return ends

    def close(self):
        """Unmaps what this process holds (arrays still alive keep their slots mapped)."""
        for pool in self.pools:
            if pool is not None:
                pool.close()
        for group in self.inputs + self.returns:
            for channel in group:
                channel.close()
        self.control.close()


class WorkerEnds:
    """The channel ends of one worker, used by its one thread."""

    __slots__ = ("input", "onward", "freed", "back")

    def __init__(self):
        self.input = None     # receiver: a word per item, on the sending replica's lane
        self.onward = []      # sender, lane k, into each replica of the next node
        self.freed = None     # receiver: this writer's slots coming back
        self.back = []        # sender, lane k, into the return channel of each input owner replica

    def finish(self):
        """Ends every lane this worker sends on: readers drain them, then see end of stream
        (a lane left open would read as a dead peer once the process is gone)."""
        for sender in self.onward + self.back:
            sender.close()

    def destroy(self):
        for end in [self.input, self.freed] + self.onward + self.back:
            if end is not None:
                end.destroy()

