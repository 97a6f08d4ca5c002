"""The topology of one run: which node owns which slots, who reads them, and how items
are dealt. Pure arithmetic on the declared stages, shared by the parent and every stage
process so that all of them agree without talking.

Nodes: 0 is the source, 1...N the stages, N + 1 the sink (the parent, one replica).
Dealing: item t of an edge is handled by replica t % r of the node, and travels on lane
(t % r_up) of that replica's input channel, where r_up is the upstream node's replica
count: every lane carries its items in increasing order.

Slots: every node that writes slots (the source, function stages, generator stages) owns
a pool of ``per_replica`` slots per replica; replica j owns slots j*S ... (j+1)*S - 1. A
kernel stage works in the slot it received and hands it on, so the owner of its output is
the owner of its input. The *reader* of an owner's slots is the first node after it that
reads slots (a function or generator stage, or the sink): it gives each slot back, on
lane (its own replica) of the owner replica's return channel, once it is done with it.
In order: replica j's item t (its ordinal t // r) reuses the slot of item t - S*r, so a
producing worker knows which word comes back next and where.

S = buffer (the stage's own, if it declared one), plus one where the reader holds one item while it asks for the next (the sink's
``for x in results`` keeps the previous x bound, and so does a generator stage's
``for x in xs``): without that slot a buffer of 1 would stop such a loop.
"""

from .stages import KERNEL, STREAM

__all__ = ["RunPlan", "SLOT_BITS", "encode", "decode"]

# A channel word: item in the high 40 bits, slot in the low 24 (pools hold <= 65,536
# slots). Every 64-bit value decodes to some pair; receivers check it before use.
SLOT_BITS = 24
_SLOT_MASK = (1 << SLOT_BITS) - 1
MAX_ITEM = (1 << (64 - SLOT_BITS)) - 1


def encode(item, slot):
    """The word for `item` in `slot`."""
    return item << SLOT_BITS | slot


def decode(word):
    """(item, slot) of a received word."""
    return word >> SLOT_BITS, word & _SLOT_MASK


class RunPlan:
    """The nodes of a run and the arithmetic of their slots and channels."""

    def __init__(self, stages, buffer):
        self.stages = stages                    # source first; the sink is not a Stage
        self.buffer = buffer
        self.sink = len(stages)                 # index of the sink node
        self.replicas = [s.replicas for s in stages] + [1]
        writes = [s.writes_slots for s in stages] + [False]
        reads = [s.reads_slots for s in stages] + [True]
        self.owner = []
        for n, w in enumerate(writes):
            self.owner.append(n if w else self.owner[n - 1])
        self.reader = [None] * len(writes)
        for h, w in enumerate(writes):
            if w:
                self.reader[h] = next(m for m in range(h + 1, len(writes)) if reads[m])
        self.per_replica = [None] * len(writes)
        for h, m in enumerate(self.reader):
            if m is not None:
                holds_one = m == self.sink or stages[m].kind == STREAM
                own = stages[h].buffer or buffer
                self.per_replica[h] = own + (1 if holds_one else 0)

    def node_name(self, n):
        return "sink" if n == self.sink else self.stages[n].name

    def input_owner(self, n):
        """The node whose pool holds node n's input slots."""
        return self.owner[n - 1]

    def input_capacity(self, n):
        """Words a lane into node n may hold: every slot of its input's pool in flight."""
        h = self.input_owner(n)
        return self.per_replica[h] * self.replicas[h]

    def item_layout(self, n):
        """(shape, dtype) of the items node n writes (for the sink: of its input)."""
        stage = self.stages[n if n < self.sink else n - 1]
        return stage.shape, stage.dtype

    def is_kernel(self, n):
        return n < self.sink and self.stages[n].kind == KERNEL

    def expected_items(self):
        """How many items reach the sink, if known before the run: the source's count
        when no stream stage can change it."""
        if self.stages[0].count is None or any(s.kind == STREAM for s in self.stages):
            return None
        return self.stages[0].count

    def workers(self):
        """Every (node, replica) that runs in a process of its own, in pipeline order."""
        return [(n, k) for n in range(self.sink) for k in range(self.replicas[n])]
