"""A run in the parent: it starts the stage processes, is the sink (results come to it
in order, as read-only views of the last stage's slots), watches the processes, and
stops and reaps all of them, whatever happens.

Failure: the run notices a stage process that ended badly when the sink's wait slice
(50 ms) runs out or a channel reports a dead peer. It gives the stage processes a second
to end by themselves (the others stop once they see a dead peer), kills what is left
(SIGKILL: they hold nothing that needs cleaning, and their shared memory is unnamed),
reaps them all, and raises the root cause: the earliest failure a stage reported
(StageFailed, with its traceback), else a stage that died by a signal or exited on its
own (StageDied). A Ctrl-C, an exception in your loop or reduce, or leaving the loop early
(close(), the end of a ``with`` block, garbage collection) stops the run the same way.
Either way the workers of external stages are told first (the control block's STOPPING
word, which they look at every 20 ms) and kill and reap their programs before they leave.
"""

import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time

from .._core import EndOfStream, PeerDied
from .errors import PipelineDefinitionError, PipelineError, StageDied, StageFailed
from .plan import encode
from .stats import PipelineStats, StageStats
from .runner_thread import RunnerThread
from .stages import EXTERNAL, SOURCE_LINK, dtype_code
from .transport import RunTransport, slot_word_problem
from .worker import STOPPED, child_main

__all__ = ["Results"]

_SLICE = 0.05  # seconds the sink waits before it looks at the stage processes
_GRACE = 1.0   # seconds failed and stopping stages get to end by themselves
_now = time.perf_counter_ns


class Results:
    """The results of a running pipeline, in order: an iterator of read-only numpy
    arrays (views of the last stage's slots, zero copy) and a context manager.

    A result keeps its slot until the array and every view of it are gone; slots go back
    in order. Holding the previous result while asking for the next (``for x in
    results``) is fine; holding more than ``buffer`` results stops the pipeline, which
    raises PipelineError instead of waiting forever: copy what you keep (``np.array(x)``).
    Once the stream ended, views may be kept for as long as you like.

    ``stats`` (PipelineStats) is set when the run ended. ``close()`` (or leaving the
    ``with`` block, or dropping the iterator) before the end stops every stage process.
    Iterating raises StageFailed / StageDied when a stage fails, after stopping the run.
    """

    def __init__(self, plan, start):
        self.plan = plan
        self.start_method = start
        self.stats = None
        self._procs = []
        self._killed = set()
        self._held = []           # [item, slot, exporter] of results not given back
        self._next = 0
        self._done = False
        self._pid = os.getpid()
        self._transport = RunTransport(plan)
        self._ends = None
        try:
            self._ends = self._transport.open_ends(plan.sink, 0)
            last = plan.sink - 1
            self._pool = self._transport.pools[plan.owner[last]]
            self._owner_r = plan.replicas[plan.owner[last]]
            self._owner_s = plan.per_replica[plan.owner[last]]
            self._lanes = plan.replicas[last]
            shape, dt = plan.item_layout(last)
            self._shape, self._code = shape, dtype_code(dt)
            self._busy = self._in_wait = 0
            self._returned_at = None
            self._t0 = time.perf_counter()
            self._launch()
        except BaseException:
            self._stop()
            raise

    # ---- processes -------------------------------------------------------------------

    def _launch(self):
        context = multiprocessing.get_context(self.start_method)
        # PR_SET_PDEATHSIG fires when the *thread* that forked ends, so stages started from
        # another thread than the main one rely on their channels instead: they see the
        # parent's ends die (a dead peer) at their next wait.
        import threading
        parent = os.getpid() if threading.current_thread() is threading.main_thread() else None
        # Stage processes ignore Ctrl-C (the run stops them); SIGINT stays blocked from the
        # fork until the child has set that up, so none can catch it half-started.
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
        try:
            for worker, (n, k) in enumerate(self.plan.workers()):
                name = self.plan.node_name(n)
                if self.plan.stages[n].kind == SOURCE_LINK:  # only the parent may call MPI
                    self._procs.append((n, k, worker, RunnerThread(self._transport, n, k, worker,
                                                                   f"conveyor:{name}:{k}")))
                    continue
                proc = context.Process(target=child_main, name=f"conveyor:{name}:{k}",
                                       args=(self._transport, n, k, worker, parent))
                try:
                    proc.start()
                except Exception as error:  # pickling for spawn, or fork itself
                    if self.start_method == "spawn" and "pickle" in f"{type(error).__name__} {error}".lower():
                        raise PipelineDefinitionError(
                            f"stage '{name}' cannot be sent to a spawned process ({error}); define "
                            "it at module level, or use start='fork'") from error
                    raise PipelineError(f"could not start stage '{name}': {error}", stage=name) from error
                self._procs.append((n, k, worker, proc))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    def start_runner_threads(self):
        """Starts the workers that run as threads of this process (a link source, for
        run_across_ranks), once everything they need is in place: they are created, not
        started, with the run, so that no thread of theirs runs while stage processes
        are forked."""
        for _, _, _, proc in self._procs:
            if isinstance(proc, RunnerThread):
                proc.start()

    def runner_threads(self):
        """The RunnerThreads of this run (see start_runner_threads)."""
        return [proc for _, _, _, proc in self._procs if isinstance(proc, RunnerThread)]

    def _check_stages(self):
        """Raises the run's failure if a stage process ended badly."""
        for n, _, _, proc in self._procs:
            code = proc.exitcode
            if code not in (None, 0) and not (code == STOPPED and self._cut_off(n)):
                self._fail()

    def _cut_off(self, n):
        """Whether node n is upstream of a generator stage that ended early (its stopping
        is then the expected end of its stream)."""
        control = self._transport.control
        return any(m > n and control.ended_early(worker) for m, _, worker, _ in self._procs)

    def _fail(self, cause=None):
        """Stops every stage, reaps them, and raises the root cause."""
        self._transport.control.stop()  # external stages' workers stop their programs
        if self._ends is not None:  # the last writers see a dead peer at once
            self._ends.destroy()
            self._ends = None
        try:
            self._await_exits(_GRACE)
        finally:  # a Ctrl-C in the grace still stops everything
            self._kill_and_reap()
        error = self._root_cause()
        self._release_transport()
        raise error from cause

    def _root_cause(self):
        control = self._transport.control
        reported = []
        for n, k, worker, proc in self._procs:
            # A report counts whatever the exit status: its process may have been killed
            # after writing it (the report's last word is written last).
            if proc.exitcode is not None:
                failure = control.failure(worker)
                if failure is not None:
                    reported.append((failure[0], n, k, failure[1]))
        if reported:
            _, n, k, report = min(reported, key=lambda r: r[0])
            if report.get("program") in ("failed", "died"):
                return self._program_error(n, k, report)
            name = self.plan.node_name(n)
            item = report.get("item")
            kind = report.get("type", "Exception")
            where = f"stage '{name}'" + (f" (replica {k})" if self.plan.replicas[n] > 1 else "")
            on = f" on item {item}" if item is not None else ""
            trace = report.get("traceback", "")
            return StageFailed(f"{where} raised {kind}{on}: {report.get('message', '')}\n\n"
                               f"Remote traceback (process of {where}):\n{trace}",
                               stage=name, replica=k, item=item, exception_type=kind,
                               remote_traceback=trace)
        for n, k, worker, proc in self._procs:
            code = proc.exitcode
            if code in (None, 0, STOPPED) or proc.pid in self._killed and code == -signal.SIGKILL:
                continue
            name = self.plan.node_name(n)
            item = control.current_item(worker)
            where = f"stage '{name}'" + (f" (replica {k})" if self.plan.replicas[n] > 1 else "")
            on = f" on item {item}" if item is not None else " before its first item"
            if code < 0:
                try:
                    sig = signal.Signals(-code).name
                except ValueError:
                    sig = f"signal {-code}"
                return StageDied(f"{where} was killed by {sig}{on}", stage=name, replica=k,
                                 item=item, signal=sig, exitcode=code)
            return StageDied(f"{where} exited with status {code}{on} without reporting an error",
                             stage=name, replica=k, item=item, signal=None, exitcode=code)
        return PipelineError("the pipeline stopped: a stage lost its peer, and no stage "
                             "reported why")

    def _program_error(self, n, k, report):
        """The error of an external stage whose program ended early (external.py)."""
        name = self.plan.node_name(n)
        item = report.get("item")
        where = f"stage '{name}'" + (f" (replica {k})" if self.plan.replicas[n] > 1 else "")
        message = report.get("message", "")
        trace = report.get("traceback", "")
        if report["program"] == "died":
            return StageDied(f"{where}: {message}", stage=name, replica=k, item=item,
                             signal=report.get("signal"), exitcode=report.get("exitcode"))
        on = f" on item {item}" if item is not None else ""
        what = "refused its contract" if report.get("type") == "ContractRefused" else "failed"
        status = report.get("exitcode")
        return StageFailed(f"{where} {what}{on}: {message} (its program exited with status "
                           f"{status})", stage=name, replica=k,
                           item=item, exception_type=report.get("type", "ProgramFailed"),
                           remote_traceback=trace)

    def _await_exits(self, seconds):
        """Waits up to `seconds` for the stage processes to end by themselves, as they do
        after a failure: the failed one exits once its report is written, the others
        once they see it gone (a dead peer). Killing them at once could cut a report
        short; a stage busy in its own code for longer is killed."""
        _wait_for_exits([proc for _, _, _, proc in self._procs], seconds)

    def _kill_and_reap(self):
        for _, _, _, proc in self._procs:
            if proc.exitcode is None:
                self._killed.add(proc.pid)
                proc.kill()
        for _, _, _, proc in self._procs:
            proc.join()

    def _stop(self):
        """Kills and reaps every stage process still running; frees the shared memory.
        The workers of external stages are told first and get up to a second to kill and
        reap their programs (they look every 20 ms); the others are killed at once."""
        try:
            self._stop_external_stages()
        finally:  # a Ctrl-C meanwhile still stops everything
            self._kill_and_reap()
            self._release_transport()

    def _stop_external_stages(self):
        proxies = [proc for n, _, _, proc in self._procs
                   if self.plan.stages[n].kind == EXTERNAL and proc.exitcode is None]
        if not proxies:
            return
        self._transport.control.stop()
        _wait_for_exits(proxies, _GRACE)

    def _release_transport(self):
        self._done = True
        # Every process is reaped by now; close() frees its sentinel pipe (exit codes and
        # counters were read before this).
        for _, _, _, proc in self._procs:
            proc.close()
        self._procs = []
        if self._ends is not None:
            self._ends.destroy()
            self._ends = None
        self._held.clear()
        self._transport.close()

    # ---- the sink ----------------------------------------------------------------------

    def __iter__(self):
        return self

    def _give_back(self, everything=False):
        held = self._held
        back = self._ends.back
        while held and (everything or sys.getrefcount(held[0][2]) <= 2):
            item, slot, _ = held.pop(0)
            back[item % self._owner_r].send(encode(item, slot))

    def __next__(self):
        if os.getpid() != self._pid:
            # A forked copy: its stage processes are another process's children, and
            # its channel ends belong to that process.
            raise PipelineError(
                f"these results belong to process {self._pid}, which started the run; a "
                "forked process cannot read them. (With parallel_pipeline: a plain generator "
                "between decorated stages hands a running pipeline to the next stage's "
                "process; decorate it too.)")
        if self._done:
            raise StopIteration
        now = _now()
        if self._returned_at is not None:
            self._busy += now - self._returned_at
        try:
            return self._receive(now)
        except StopIteration:
            raise
        except (PeerDied, EndOfStream) as error:
            self._fail(error)
        except BaseException:
            if not self._done:
                self._stop()
            raise

    def _receive(self, t0):
        t = self._next
        self._give_back()
        earlier = t - self._owner_s * self._owner_r
        if self._held and self._held[0][0] <= earlier:
            raise PipelineError(
                f"{len(self._held)} results (from item {self._held[0][0]}) are still alive while "
                f"item {t} is asked for: the last stage needs their slots for new items. Copy "
                "what you keep (np.array(x)), or raise buffer=", item=t)
        while True:
            try:
                word = self._ends.input.receive(t % self._lanes, _SLICE)
            except EndOfStream:
                self._finish()
                raise StopIteration from None
            if word is not None:
                break
            self._check_stages()
        slot, problem = slot_word_problem(word, t, t % self._owner_r, self._owner_s, self._pool,
                                          (self._code, self._shape))
        if problem:
            self._stop()
            raise PipelineError(f"{problem}, at the sink", stage="sink", item=t)
        x = self._pool.array(slot, self._code, self._shape, False)
        self._held.append([t, slot, x.base])
        self._next = t + 1
        self._returned_at = _now()
        self._in_wait += self._returned_at - t0
        return x

    def _finish(self):
        """End of stream: every item arrived. Gives the last slots back, waits for the
        stages to leave, and computes the statistics."""
        seconds = time.perf_counter() - self._t0
        self._give_back(everything=True)
        self._ends.finish()
        for _, _, _, proc in self._procs:
            while proc.exitcode is None:
                proc.join(_SLICE)
                self._check_stages()
        self._check_stages()
        expected = self.plan.expected_items()
        if expected is not None and self._next != expected:
            self._fail()
        self.stats = self._statistics(seconds)
        self._release_transport()

    def _statistics(self, seconds):
        control = self._transport.control
        per_node = {}
        for n, _, worker, _ in self._procs:
            items, busy, in_wait, out_wait = control.counters(worker)
            acc = per_node.setdefault(n, [0, 0.0, 0.0, 0.0])
            acc[0] += items
            acc[1] += busy
            acc[2] += in_wait
            acc[3] += out_wait
        stages = []
        for n in range(self.plan.sink):
            items, busy, in_wait, out_wait = per_node.get(n, [0, 0.0, 0.0, 0.0])
            stages.append(StageStats(self.plan.node_name(n), self.plan.replicas[n], items, busy,
                                     in_wait, out_wait, seconds))
        stages.append(StageStats("sink", 1, self._next, self._busy / 1e9, self._in_wait / 1e9,
                                 0.0, seconds))
        return PipelineStats(stages, seconds, self._transport.nbytes, self.start_method)

    # ---- lifetime ----------------------------------------------------------------------

    def close(self):
        """Stops the run if it is still going (kills and reaps every stage process: a few
        ms); a no-op once it ended, or in another process than the one that started the
        run (a forked copy). Never raises. Results already received stay readable."""
        if not self._done and os.getpid() == self._pid:
            self._stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - nothing to report to at collection
            pass


def _wait_for_exits(procs, seconds):
    """Waits up to `seconds` for every process of `procs` still running to end, on their
    sentinels (no polling); returns at the deadline with the rest still running."""
    deadline = time.monotonic() + seconds
    running = [proc for proc in procs if proc.exitcode is None]
    while running:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        multiprocessing.connection.wait([proc.sentinel for proc in running], left)
        running = [proc for proc in running if proc.exitcode is None]
