"""A forked child inherits copies of its parent's Producer, Consumer, Loans and received
frames; they stay the parent's. In the child, nothing of them reaches the ring: their
death (also at the child's interpreter exit) releases, abandons and closes nothing, a
`with` block's exit there does nothing, and an explicit call raises WrongRole naming the
owner. The C library takes the first use of an inherited handle for a hand-over (the
child taking the side), which would let the producer overwrite frames the parent still
views and lose the parent's loan.

The exits are real ones: a small program (run with this interpreter) makes the ring,
forks, and its child leaves by sys.exit, so the child's interpreter tears down every
inherited object; the program then checks the ring from the parent's side and prints
what it saw as one dict. Explicit calls are made in a multiprocessing fork child.
"""
import support  # first: skips this module under `unittest discover` without the package

import ast
import multiprocessing
import os
import sys

import numpy as np
import pytest

import conveyor
from support import LIMIT, finish, join, make_ring, recv, same_bits

# The parent keeps a received frame (and a view derived from it) and an open loan with
# data in it, and forks; the child exits at once by sys.exit. argv[1]: the backing, or a
# name for a named ring.
EXIT_WITH_INHERITED_OBJECTS = r"""
import os, sys
import numpy as np, conveyor

where = sys.argv[1]
if where.startswith("/"):
    ring = conveyor.Ring(slots=3, shape=(8,), dtype=np.float64, name=where)
else:
    ring = conveyor.Ring(slots=3, shape=(8,), dtype=np.float64, backing=where)
prod, cons = ring.producer(), ring.consumer()
prod.put(np.full(8, 1.0), timeout=0, tag=0)
prod.put(np.full(8, 2.0), timeout=0, tag=1)
x = cons.receive(timeout=0)           # frame 0, held by this view...
tail = x[2:]                          # ... and by a view derived from it
loan = prod.loan(timeout=0, tag=2)    # an open loan with data in it
out = loan.array
out[...] = 3.0
seen = {}
pid = os.fork()
if pid == 0:
    sys.exit(0)  # the child's interpreter tears down its copies of all of the above
_, status = os.waitpid(pid, 0)
seen["child exit status"] = os.waitstatus_to_exitcode(status)
stats = ring.stats()
seen["released after the child"] = stats["frames_released"]
seen["held after the child"] = cons.held
seen["loan after the child"] = loan.state
seen["views intact"] = bool((x == 1.0).all() and (tail == 1.0).all() and (out == 3.0).all())
loan.commit()
y = cons.receive(timeout=0)
seen["frame 1"] = (y.base.tag, float(y[0]))
del y
z = cons.receive(timeout=0)
seen["frame 2 (the loan)"] = (z.base.tag, float(z[0]))
del z
try:
    prod.put(np.full(8, 4.0), timeout=0, tag=3)
    seen["put while frame 0 is held"] = "a slot"
except conveyor.Timeout:
    seen["put while frame 0 is held"] = "Timeout"
seen["frame 0 still intact"] = bool((x == 1.0).all() and (tail == 1.0).all())
del x, tail
seen["released after the views died"] = ring.stats()["frames_released"]
prod.put(np.full(8, 4.0), timeout=0, tag=3)
prod.close()
w = cons.receive(timeout=0)
seen["frame 3"] = (w.base.tag, float(w[0]))
del w
try:
    cons.receive(timeout=1)
    seen["after the last frame"] = "a frame"
except conveyor.ConveyorError as error:
    seen["after the last frame"] = type(error).__name__
cons.close()
ring.close()
print(repr(seen))
"""

# The parent opens its consumer, producer and loan in `with` blocks and forks inside them;
# the child's sys.exit leaves all three blocks (SystemExit passes through each __exit__).
EXIT_THROUGH_WITH_BLOCKS = r"""
import os, sys
import numpy as np, conveyor

ring = conveyor.Ring(slots=3, shape=(8,), dtype=np.float64)
seen = {}
with ring.consumer() as cons:
    with ring.producer() as prod:
        prod.put(np.full(8, 1.0), timeout=0, tag=0)
        x = cons.receive(timeout=0)
        with prod.loan(timeout=0, tag=1) as out:
            out[...] = 2.0
            pid = os.fork()
            if pid == 0:
                sys.exit(0)
            _, status = os.waitpid(pid, 0)
            seen["child exit status"] = os.waitstatus_to_exitcode(status)
            stats = ring.stats()
            seen["after the child"] = (stats["frames_committed"], stats["frames_released"],
                                       stats["closed"], cons.held, prod.closed, cons.closed)
        seen["after the loan block"] = ring.stats()["frames_committed"]
        seen["frame 0 intact"] = bool((x == 1.0).all())
        del x
    seen["closed by the producer block"] = ring.stats()["closed"]
    frames = []
    try:
        for y in cons:
            frames.append((y.base.tag, float(y[0])))
        seen["end"] = "EndOfStream"
    except conveyor.ConveyorError as error:
        seen["end"] = type(error).__name__
    del y
    seen["frames"] = frames
seen["consumer closed by its block"] = cons.closed
ring.close()
print(repr(seen))
"""


def run_program(children, source, *argv):
    """Runs `source` with this interpreter; returns the dict its last line prints."""
    proc = children.popen([sys.executable, "-c", source, *argv])
    out, err = finish(proc, "the forking program")
    lines = out.strip().splitlines()
    assert lines, f"the program printed nothing; stderr: {err}"
    return ast.literal_eval(lines[-1])


@pytest.mark.parametrize("backing", ["memfd", "named", "anonymous"])
def test_a_child_exiting_with_inherited_frames_and_loans_leaves_the_parent_intact(children, backing):
    where = support.ring_name() if backing == "named" else backing
    seen = run_program(children, EXIT_WITH_INHERITED_OBJECTS, where)
    assert seen == {
        "child exit status": 0,
        "released after the child": 0,     # the child's copy of x released nothing
        "held after the child": 1,
        "loan after the child": "open",    # nor abandoned the parent's loan
        "views intact": True,
        "frame 1": (1, 2.0),
        "frame 2 (the loan)": (2, 3.0),    # the loan committed after all, with its data
        "put while frame 0 is held": "Timeout",  # frame 0's slot is still the parent's
        "frame 0 still intact": True,
        "released after the views died": 3,
        "frame 3": (3, 4.0),
        "after the last frame": "EndOfStream",
    }, seen
    if backing == "named":
        assert not os.path.exists(support.shm_path(where))


def test_a_child_leaving_the_parents_with_blocks_changes_nothing(children):
    seen = run_program(children, EXIT_THROUGH_WITH_BLOCKS)
    assert seen == {
        "child exit status": 0,  # no WrongRole from the __exit__ of inherited objects
        # committed, released, stream closed, held, producer closed, consumer closed:
        "after the child": (1, 0, 0, 1, False, False),
        "after the loan block": 2,
        "frame 0 intact": True,
        "closed by the producer block": 1,
        "end": "EndOfStream",
        "frames": [(1, 2.0)],
        "consumer closed by its block": True,
    }, seen


# ---- explicit calls in a child ------------------------------------------------------------

def _outcome(call):
    try:
        call()
    except Exception as error:  # noqa: BLE001 - the child reports whatever it got
        return type(error).__name__, str(error)
    return "returned", ""


def _call_inherited(ring, prod, cons, loan, conn):
    """In a forked child: every call on the inherited producer, consumer and loan, and
    what each raised; then what opening the sides here does."""
    calls = {
        "prod.loan": lambda: prod.loan(timeout=0),
        "prod.put": lambda: prod.put(np.zeros(8), timeout=0),
        "prod.set_spin": lambda: prod.set_spin(0),
        "prod.close": prod.close,
        "prod.detach": prod.detach,
        "cons.receive": lambda: cons.receive(timeout=0),
        "next(cons)": lambda: next(iter(cons)),
        "cons.set_spin": lambda: cons.set_spin(0),
        "cons.close": cons.close,
        "loan.commit": loan.commit,
        "loan.abandon": loan.abandon,
        "ring.producer": ring.producer,
        "ring.consumer": ring.consumer,
    }
    try:
        outcomes = {name: _outcome(call) for name, call in calls.items()}
        conn.send((outcomes, prod.owned, cons.owned, prod.pid, cons.pid, os.getpid()))
    except BaseException as error:  # say so at once rather than let the test wait
        conn.send(repr(error))
        raise


@pytest.mark.parametrize("backing", ["memfd", "named"])
def test_a_child_calling_an_inherited_side_gets_wrong_role(children, backing):
    ring = make_ring(backing, slots=3, shape=(8,))
    prod, cons = ring.producer(), ring.consumer()
    prod.put(np.full(8, 1.0), timeout=0, tag=0)
    prod.put(np.full(8, 2.0), timeout=0, tag=1)
    x = cons.receive(timeout=0)
    loan = prod.loan(timeout=0, tag=2)
    loan.array[...] = 3.0
    here, there = multiprocessing.Pipe()
    child = children.start("fork", _call_inherited, ring, prod, cons, loan, there)
    report = recv(here, "the child's outcomes")
    assert not isinstance(report, str), f"the child failed: {report}"
    outcomes, prod_owned, cons_owned, prod_pid, cons_pid, child_pid = report
    join(child, "calling child")
    me = os.getpid()
    assert (prod_owned, cons_owned, prod_pid, cons_pid) == (False, False, me, me)
    assert prod.owned and cons.owned and (prod.pid, cons.pid) == (me, me)
    assert child_pid != me
    for name, (kind, message) in outcomes.items():
        if name.startswith("ring."):
            continue
        assert kind == "WrongRole", (name, kind, message)
        role = "consumer" if name.startswith(("cons", "next")) else "producer"
        owner = "loan's producer" if name.startswith("loan") else role
        assert f"this {owner} belongs to process {me}; call ring.{role}() in this process" \
            in message, (name, message)
    # The child may not open the sides either: this process holds them.
    assert outcomes["ring.producer"][0] == outcomes["ring.consumer"][0] == "Busy", outcomes
    assert issubclass(conveyor.WrongRole, conveyor.ConveyorError)

    # Nothing changed here: the frame is held, the loan is open, the stream goes on.
    stats = ring.stats()
    assert (stats["frames_committed"], stats["frames_released"], stats["closed"]) == (2, 0, 0)
    assert cons.held == 1 and loan.state == "open" and not prod.closed and not cons.closed
    assert same_bits(x, np.full(8, 1.0))
    loan.commit()
    del x
    for tag, value in ((1, 2.0), (2, 3.0)):
        y = cons.receive(timeout=LIMIT)
        assert y.base.tag == tag and same_bits(y, np.full(8, value))
        del y
    prod.close()
    with pytest.raises(conveyor.EndOfStream):
        cons.receive(timeout=LIMIT)
    cons.close()
    ring.close()
