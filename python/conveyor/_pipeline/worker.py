"""One stage worker: replica k of node n, in a process of its own (fork or spawn).

Per item t (t = k, k + r, ... for a node of r replicas; a stream stage or an iterable
source numbers what it writes 0, 1, 2...):
  1. take t's input slot number from lane (t % r_up) of its input channel, and check the
     word and the slot's descriptor (another process wrote them: trust nothing);
  2. a slot-writing node takes a free slot: one of its first S, then the slot of item
     t - S*r, which its reader sends back in order (plan.py);
  3. compute: the source fills the slot, a function stage reads the input in place
     (read-only) and writes the output slot, a kernel stage transforms its slot in place;
  4. describe the output slot, send its number on, and give the input slot back to its
     owner (a kernel stage hands the slot itself on instead).
At the end it closes its lanes (readers then see end of stream) and waits for its last
slots to come back: a return channel's receiver must stay until its readers are done.

Exit status: 0 done; FAILED after recording a report in the control block (the stage
raised, or broke a rule); STOPPED when a peer died or the stream broke off (the parent
finds the root cause elsewhere). A failing worker exits without closing its lanes, so its
peers see a dead peer, never a clean end of stream.
"""

import signal
import sys
import time
import traceback

import numpy as np

from .. import _core
from .._core import EndOfStream, PeerDied
from .control import BUSY, CURRENT, ENDED_EARLY, IN_WAIT, ITEMS, OUT_WAIT
from .plan import MAX_ITEM, encode
from .external import ProgramEnded, run_external
from .transport import slot_word_problem
from .link_source import run_link_source
from .stages import (EXTERNAL, KERNEL, MAP_INTO, SOURCE_FILL, SOURCE_ITER, SOURCE_LINK, SOURCE_MAKE,
                     STREAM, dtype_code)

__all__ = ["child_main", "FAILED", "STOPPED", "StageRuleError"]

# Exit statuses of a stage process; unusual values, so that a stage's own os._exit(3)
# reads as what it is (StageDied with its status).
FAILED = 103
STOPPED = 104

_now = time.perf_counter_ns


class StageRuleError(Exception):
    """A stage broke a rule of the pipeline (wrong shape or dtype, a slot view kept)."""


class _Stop(Exception):
    """A peer died or the stream broke off: stop quietly, the parent reports the cause."""


def child_main(transport, n, k, worker, parent_pid):
    """The body of a stage process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C for the run
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    if parent_pid is not None:
        _core.die_with_parent(parent_pid)
    sys.exit(Worker(transport, n, k, worker).run())


def copy_checked(out, value, what):
    """Copies a returned or yielded array into its slot, refusing a shape or dtype that
    would need broadcasting or a lossy cast."""
    if isinstance(value, np.generic):  # what numpy arithmetic on a 0-d array gives
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise StageRuleError(f"{what} is a {type(value).__name__}, not a numpy array")
    if value.shape != out.shape or not np.can_cast(value.dtype, out.dtype, "safe"):
        raise StageRuleError(f"{what} is {value.dtype} {value.shape}, but its slots hold "
                             f"{out.dtype} {out.shape}: declare shape= and dtype= for the stage")
    np.copyto(out, value)


class Worker:
    def __init__(self, transport, n, k, worker):
        plan = transport.plan
        self.plan, self.transport, self.n, self.k, self.worker = plan, transport, n, k, worker
        self.stage = plan.stages[n]
        self.name = self.stage.name
        self.r = plan.replicas[n]
        self.words = transport.control.words
        self.base = transport.control.base(worker)
        self.item = None
        if n > 0:
            h = plan.input_owner(n)
            self.in_pool = transport.pools[h]
            self.in_owner_r = plan.replicas[h]
            self.in_s = plan.per_replica[h]
            self.in_r = plan.replicas[n - 1]
            shape, dt = plan.item_layout(n - 1)
            self.in_shape, self.in_code = shape, dtype_code(dt)
        h = plan.owner[n]
        self.out_pool = transport.pools[h]
        self.out_code = dtype_code(self.stage.dtype)
        if plan.reader[n] is not None:
            self.s = plan.per_replica[n]
            self.reader_r = plan.replicas[plan.reader[n]]
        self.written = 0          # slots this writer has filled (its ordinal)
        self.held = []            # stream stage: [item, slot, exporter] of inputs not given back
        self.runner = None        # the RunnerThread when it runs in the parent (runner_thread.py)

    # ---- the run ---------------------------------------------------------------------

    def run(self):
        try:
            self.ends = self.transport.open_ends(self.n, self.k)
            if self.runner is None:  # a thread of the parent leaves the parent's setting alone
                _core.set_threads(1)  # parallelism comes from stages and replicas
            kind = self.stage.kind
            if kind == SOURCE_LINK:
                run_link_source(self)
            elif kind in (SOURCE_FILL, SOURCE_MAKE, SOURCE_ITER):
                self.run_source()
            elif kind == STREAM:
                self.run_stream()
            elif kind == EXTERNAL:
                run_external(self)
            else:
                self.run_per_item()
            self.ends.finish()
            self.await_slots_back()
            return 0
        except (_Stop, PeerDied):
            return STOPPED
        except ProgramEnded as error:  # an external stage's program: what it reported
            self.transport.control.report_failure(self.worker, error.item, error.exception_type,
                                                  error.message, error.trace, **error.extra)
            return FAILED
        except BaseException as error:  # noqa: B902 - every failure is reported by name
            self.transport.control.report_failure(
                self.worker, self.item, type(error).__name__, str(error), traceback.format_exc())
            return FAILED

    def count(self, items=0, busy=0, in_wait=0, out_wait=0):
        w, b = self.words, self.base
        w[b + ITEMS] += items
        w[b + BUSY] += busy
        w[b + IN_WAIT] += in_wait
        w[b + OUT_WAIT] += out_wait

    def begin(self, item):
        self.item = item
        self.words[self.base + CURRENT] = item + 1

    # ---- words -----------------------------------------------------------------------

    def take_input(self, t):
        """The slot of input item t, checked; None at end of stream."""
        try:
            word = self.ends.input.receive(t % self.in_r)
        except EndOfStream:
            return None
        slot, problem = slot_word_problem(word, t, t % self.in_owner_r, self.in_s, self.in_pool,
                                          (self.in_code, self.in_shape))
        if problem:
            raise StageRuleError(problem)
        return slot

    def take_free_slot(self):
        """A slot of this writer for its next item: one of its first S, then the slot
        its reader gives back in order."""
        ordinal = self.written
        if ordinal < self.s:
            return self.k * self.s + ordinal
        earlier = (ordinal - self.s) * self.r + self.k
        try:
            word = self.ends.freed.receive(earlier % self.reader_r)
        except EndOfStream:
            raise _Stop() from None
        return self.returned_slot(word, earlier)

    def returned_slot(self, word, earlier):
        """The slot in a word its reader sent back for item `earlier`, checked."""
        slot, problem = slot_word_problem(word, earlier, self.k, self.s, self.out_pool)
        if problem:
            raise StageRuleError(f"{problem} (a slot coming back)")
        return slot

    def send_on(self, t, slot):
        if t > MAX_ITEM:
            raise StageRuleError(f"item {t} does not fit a channel word")
        self.ends.onward[t % self.plan.replicas[self.n + 1]].send(encode(t, slot))

    def give_back(self, t, slot):
        self.ends.back[t % self.in_owner_r].send(encode(t, slot))

    def publish(self, t, slot):
        """Describes a written slot and sends its number on."""
        self.out_pool.describe(slot, self.out_code, self.stage.shape, t)
        self.written += 1
        self.send_on(t, slot)

    def await_slots_back(self):
        """Waits for this writer's last slots (at most S) to come back before leaving."""
        if self.plan.reader[self.n] is None:
            return
        for ordinal in range(max(0, self.written - self.s), self.written):
            earlier = ordinal * self.r + self.k
            try:
                word = self.ends.freed.receive(earlier % self.reader_r)
            except EndOfStream:
                raise _Stop() from None
            self.returned_slot(word, earlier)

    def check_released(self, array, what):
        """A stage must not keep a view of its slots: they are reused for later items.
        Called as check_released(x, ...) with the caller's own name still bound."""
        # References: the caller's name, this parameter and getrefcount's argument; the
        # exporter (array.base) has one from the array and one for the argument. A view
        # made of the array holds one of the two more.
        if sys.getrefcount(array) > 3 or sys.getrefcount(array.base) > 2:
            raise StageRuleError(
                f"stage '{self.name}' kept a reference to its {what} array (or a view of it) "
                "after returning: its slot is reused for later items, so copy what you keep "
                "(np.array(x))")

    # ---- sources ---------------------------------------------------------------------

    def run_source(self):
        stage = self.stage
        if stage.kind == SOURCE_ITER:
            items = stage.body() if callable(stage.body) else stage.body
            numbered = enumerate(items)
        else:
            numbered = ((t, None) for t in range(self.k, stage.count, self.r))
        body, shape, fill = stage.body, stage.shape, stage.kind == SOURCE_FILL
        while True:
            t0 = _now()
            if stage.kind == SOURCE_ITER:
                self.begin(self.written)  # an iterator that raises fails this item
            try:
                t, value = next(numbered)  # first: a free slot taken is a return consumed
            except StopIteration:
                return
            self.begin(t)
            if stage.kind == SOURCE_MAKE:
                value = body(t)
            t1 = _now()
            slot = self.take_free_slot()
            t2 = _now()
            out = self.out_pool.array(slot, self.out_code, shape, True)
            if fill:
                result = body(t, out)
                if result is not None and result is not out:
                    copy_checked(out, result, f"source '{self.name}': the array returned for item {t}")
                result = None
            else:
                copy_checked(out, value, f"source '{self.name}': item {t}")
            value = None
            self.check_released(out, "output")
            del out
            self.publish(t, slot)
            self.count(1, (t1 - t0) + (_now() - t2), 0, t2 - t1)

    # ---- function and kernel stages --------------------------------------------------

    def run_per_item(self):
        stage = self.stage
        kernel = stage.kind == KERNEL
        into = stage.kind == MAP_INTO
        body, shape = stage.body, stage.shape
        for t in range(self.k, MAX_ITEM, self.r):
            t0 = _now()
            in_slot = self.take_input(t)
            if in_slot is None:
                return
            self.begin(t)
            t1 = _now()
            if kernel:
                x = self.in_pool.array(in_slot, self.in_code, self.in_shape, True)
                _core.program(x, x, stage.steps)
                del x
                t2 = t1
                self.send_on(t, in_slot)
                self.count(1, _now() - t2, t1 - t0, 0)
                continue
            out_slot = self.take_free_slot()
            t2 = _now()
            x = self.in_pool.array(in_slot, self.in_code, self.in_shape, False)
            out = self.out_pool.array(out_slot, self.out_code, shape, True)
            result = body(x, out) if into else body(x)
            if result is None and not into:
                raise StageRuleError(f"stage '{self.name}' returned None for item {t}: a stage "
                                     "h(x) returns its result (or is written h(x, out))")
            if result is not None and result is not out:
                copy_checked(out, result, f"stage '{self.name}': the array returned for item {t}")
            result = None
            self.check_released(x, "input")
            self.check_released(out, "output")
            del x, out
            self.publish(t, out_slot)
            self.give_back(t, in_slot)
            self.count(1, _now() - t2, t1 - t0, t2 - t1)

    # ---- stream (generator) stages -----------------------------------------------------

    def run_stream(self):
        inputs = _Inputs(self)
        outputs = iter(self.stage.body(inputs))
        shape = self.stage.shape
        t = 0
        while True:
            t0 = _now()
            inputs.waited = 0
            try:
                value = next(outputs)
            except StopIteration:
                break
            t1 = _now()
            slot = self.take_free_slot()
            t2 = _now()
            out = self.out_pool.array(slot, self.out_code, shape, True)
            copy_checked(out, value, f"stage '{self.name}': item {t} it yielded")
            value = None
            del out
            self.publish(t, slot)
            self.count(1, (t1 - t0 - inputs.waited) + (_now() - t2), inputs.waited, t2 - t1)
            t += 1
        outputs = None
        if inputs.ended:
            inputs.release(everything=True)
        else:
            self.stop_upstream()

    def stop_upstream(self):
        """A generator that ended before its input did: the stream ends here. Its upstream
        is told to stop by its ends going away (its writers see a dead peer and exit as
        STOPPED, which the ENDED_EARLY word makes expected), instead of computing a
        possibly endless rest that nobody reads."""
        self.words[self.base + ENDED_EARLY] = 1  # before the ends go: what the parent reads
        self.ends.input.destroy()
        for sender in self.ends.back:
            sender.destroy()
        self.ends.input, self.ends.back = None, []
        self.held.clear()


class _Inputs:
    """The iterator a stream stage is handed: read-only arrays of its input items, in
    order. An input slot goes back to its owner once the array (and every view of it) is
    gone, oldest first; the generator's usual ``for x in xs`` keeps one alive while it
    asks for the next, which the plan's extra slot allows. Keeping more would stop the
    upstream for good, so that raises instead."""

    def __init__(self, worker):
        self.w = worker
        self.next_item = 0
        self.ended = False
        self.waited = 0

    def __iter__(self):
        return self

    def release(self, everything=False):
        held = self.w.held
        while held and (everything or sys.getrefcount(held[0][2]) <= 2):
            item, slot, _ = held.pop(0)
            self.w.give_back(item, slot)

    def __next__(self):
        w = self.w
        self.release()
        if self.ended:
            raise StopIteration
        t = self.next_item
        earlier = t - w.in_s * w.in_owner_r
        if w.held and w.held[0][0] <= earlier:
            raise StageRuleError(
                f"stage '{w.name}' keeps views of {len(w.held)} earlier inputs (from item "
                f"{w.held[0][0]}) while asking for item {t}: their slots are needed for new "
                "items, so copy what you keep (np.array(x))")
        t0 = _now()
        slot = w.take_input(t)
        self.waited += _now() - t0
        if slot is None:
            self.ended = True
            raise StopIteration
        # A generator stage's failures name the input it was handed last.
        w.begin(t)
        x = w.in_pool.array(slot, w.in_code, w.in_shape, False)
        w.held.append([t, slot, x.base])
        self.next_item = t + 1
        return x
