"""The worker of an external stage (Pipeline.external): a proxy between the pipeline's
channels and a program that serves the stage (conveyor.h section 10).

In its worker process it starts the program, once, with the CONVEYOR_STAGE contract in
its environment: the fds of the upstream pool (in_pool) and of this stage's pool
(out_pool), two one-lane channels made here (jobs: this worker sends, done: the program
sends), the write end of a report pipe, the worker's pid as `parent` (the program dies
with this process). subprocess passes exactly those fds, at the numbers the line names.

Per item t it does what a function stage's worker does, with the program as its compute:
take t's input word (checked), take a free slot of its own pool, send the two job words
(t << 24 | in_slot, t << 24 | out_slot), wait for the done word, check it and the output
slot's descriptor (the declared dtype and shape, tag t: the program wrote them), send the
slot on and give the input back. Every wait runs in 20 ms slices; between them it checks
that the program is alive and that the run is not stopping (the control block's STOPPING
word), so a program that dies or hangs never hangs the worker. At end of stream it closes
jobs and expects the program to exit with status 0.

Whatever way the worker leaves, the program is gone first: killed (SIGKILL) and reaped,
unless it exited by itself. A program killed by a signal (by the worker, or a crash)
cannot remove what its libraries registered in /dev/shm at exit (LLVM's libomp, which a
clang-built program with OpenMP loads, registers __KMP_REGISTERED_LIB_<pid>_<uid>): the
worker removes that while the dead program is still a zombie, so its pid cannot have been
reused, and only then reaps it. It waits for the program's exit on a pidfd, never by
polling. A program that ended early is reported with the item it had:
its report line (read after it ended) as a failure for exit status 1 (ProgramFailed) or
2 (ContractRefused), as a death for a signal or any other status (0 included).
"""

import os
import select
import signal
import subprocess
import time

from .. import _core
from .._core import EndOfStream, PeerDied
from .plan import MAX_ITEM, encode
from .transport import slot_word_problem

__all__ = ["run_external", "ProgramEnded", "contract_line"]

_SLICE = 0.02  # seconds between the checks of the program and of the run
_DTYPE_NAMES = {_core.DTYPE_BYTES: "bytes", _core.DTYPE_F32: "f32", _core.DTYPE_F64: "f64"}
_now = time.perf_counter_ns


class ProgramEnded(Exception):
    """The program ended before it should have: `report` is what the worker records."""

    def __init__(self, item, exception_type, message, trace, **extra):
        super().__init__(message)
        self.item = item
        self.exception_type = exception_type
        self.message = message
        self.trace = trace
        self.extra = extra


class _Stopping(Exception):
    """The run is stopping: leave (after the program is gone), as STOPPED."""


def _layout_text(code, shape):
    return f"{_DTYPE_NAMES[code]}:{'x'.join(str(e) for e in shape)}"


def contract_line(in_layout, out_layout, fds, parent, replica, name):
    """The CONVEYOR_STAGE line: layouts are (dtype code, shape), fds a dict of in_pool,
    out_pool, jobs, done, report."""
    return (f"conveyor-stage/{_core.STAGE_PROTOCOL} in={_layout_text(*in_layout)} "
            f"out={_layout_text(*out_layout)} in_pool={fds['in_pool']} out_pool={fds['out_pool']} "
            f"jobs={fds['jobs']} done={fds['done']} report={fds['report']} parent={parent} "
            f"replica={replica} name={name}")


class _Program:
    """The program of one external stage replica and its ends: started by the worker,
    gone (killed if need be, and reaped) after close()."""

    def __init__(self, worker):
        self.worker = worker
        self.command = worker.stage.body
        self.proc = None
        self.report_r = None
        self.finished = None   # the last item whose done word came back
        self.pidfd = None
        self.jobs_channel = _core.Channel(1, 2)   # one item in flight: its two words
        self.done_channel = _core.Channel(1, 1)
        self.jobs = self.jobs_channel.open(_core.CHANNEL_SENDER, 0)
        self.done = self.done_channel.open(_core.CHANNEL_RECEIVER, 0)
        self.report_r, report_w = os.pipe()
        try:
            fds = {"in_pool": worker.in_pool.fd, "out_pool": worker.out_pool.fd,
                   "jobs": self.jobs_channel.fd, "done": self.done_channel.fd, "report": report_w}
            line = contract_line((worker.in_code, worker.in_shape),
                                 (worker.out_code, worker.stage.shape), fds, os.getpid(),
                                 worker.k, worker.name)
            env = dict(os.environ)
            env["CONVEYOR_STAGE"] = line
            # SIGINT stays ignored (inherited): the run handles Ctrl-C and stops the program.
            self.proc = subprocess.Popen(self.command, env=env, pass_fds=sorted(set(fds.values())),
                                         stdin=subprocess.DEVNULL)
            self.pidfd = os.pidfd_open(self.proc.pid)
        except BaseException:
            self.close()
            raise
        finally:
            os.close(report_w)

    @property
    def describe(self):
        return f"program {self.command[0]!r} (pid {self.proc.pid})"

    def exited(self):
        """Whether the program has ended (then it is reaped, its registrations removed).
        Cost: one waitid."""
        if self.proc.returncode is not None:
            return True
        if os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            return False
        self._reap()
        return True

    def _reap(self):
        """Reaps the program, a zombie now: first removes what it left in /dev/shm."""
        prefix = f"__KMP_REGISTERED_LIB_{self.proc.pid}_"
        try:
            names = [n for n in os.listdir("/dev/shm") if n.startswith(prefix)]
        except OSError:
            names = []
        for name in names:
            try:
                os.unlink("/dev/shm/" + name)
            except OSError:
                pass
        self.proc.wait()

    def check_alive(self, item):
        """Raises ProgramEnded if the program has ended (it may not while serving)."""
        if self.exited():
            self.ended(item)

    def check(self, item):
        """Between wait slices: the run stopping, the program's death."""
        if self.worker.transport.control.stopping():
            raise _Stopping()
        self.check_alive(item)

    def read_report(self):
        """The program's report line ('' if none), read once it has ended."""
        if self.report_r is None:
            return ""
        chunks = []
        os.set_blocking(self.report_r, False)
        try:
            while True:
                chunk = os.read(self.report_r, 4096)
                if not chunk:
                    break
                chunks.append(chunk)
        except BlockingIOError:  # a descendant of the program keeps the pipe open
            pass
        finally:
            os.close(self.report_r)
            self.report_r = None
        return b"".join(chunks).decode("utf-8", "replace").strip()

    def ended(self, item, *, at_end=False):
        """The program ended (or is ending: it dropped done) where it should not have, or
        with a bad status at the end: reaps it and raises ProgramEnded with what it
        reported (`item`: the item it had, None between items)."""
        self.wait_exit(check_stopping=True)
        code = self.proc.returncode
        line = self.read_report()
        if at_end:
            where = "after the end of its stream"
        elif item is not None:
            where = f"on item {item}"
        elif self.finished is None:
            where = "before its first item"
        else:
            where = f"after item {self.finished}"
        command = " ".join(self.command)
        if code < 0:
            try:
                sig = signal.Signals(-code).name
            except ValueError:
                sig = f"signal {-code}"
            raise ProgramEnded(item, "ProgramDied", f"its {self.describe} was killed by {sig} "
                               f"{where}" + (f": {line}" if line else ""),
                               f"{command} (pid {self.proc.pid}) was killed by {sig}",
                               program="died", signal=sig, exitcode=code)
        trace = f"{command} (pid {self.proc.pid}) exited with status {code}"
        if line and code in (1, 2):
            kind = "ContractRefused" if code == 2 else "ProgramFailed"
            if code == 2:
                item = None  # it refused the stage, not an item
            raise ProgramEnded(item, kind, line, trace, program="failed", exitcode=code)
        early = ", before the end of its stream," if code == 0 and not at_end else ""
        raise ProgramEnded(item, "ProgramDied", f"its {self.describe} exited with status {code} "
                           f"{where}{early}" + (f" reporting: {line}" if line else " without reporting why"),
                           trace, program="died", signal=None, exitcode=code)

    def wait_exit(self, check_stopping=False):
        """Waits for the program to exit (it is ending, or was told to end), on its pidfd
        in slices, checking between them whether the run is stopping."""
        while not self.exited():
            select.select([self.pidfd], [], [], _SLICE)
            if check_stopping and self.worker.transport.control.stopping():
                raise _Stopping()

    def finish(self):
        """End of stream: closes jobs and expects exit status 0."""
        self.jobs.close()
        self.wait_exit(check_stopping=True)
        if self.proc.returncode != 0:
            self.ended(None, at_end=True)

    def close(self):
        """Kills the program if it still runs, reaps it, frees the channels and the pipe."""
        if self.proc is not None and not self.exited():
            # os.kill, not Popen.send_signal, which polls and so could reap the program
            # before its registrations are removed. Not reaped yet, its pid is still its.
            os.kill(self.proc.pid, signal.SIGKILL)
            os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOWAIT)
            self._reap()
        for fd in (self.report_r, self.pidfd):
            if fd is not None:
                os.close(fd)
        self.report_r = self.pidfd = None
        for end in (self.jobs, self.done):
            end.destroy()
        self.jobs_channel.close()
        self.done_channel.close()


def _sliced(receive, program, item):
    """receive(timeout) until it gives a word, checking between slices; EndOfStream
    propagates."""
    while True:
        word = receive(_SLICE)
        if word is not None:
            return word
        program.check(item)


def run_external(worker):
    """The body of an external stage's worker (see the module documentation). Raises
    ProgramEnded when the program ended early, StageRuleError for a word or descriptor it
    should never have produced, _Stop-like exits as the other workers do."""
    from .worker import StageRuleError, _Stop  # worker.py imports this module

    program = _Program(worker)
    try:
        _serve(worker, program, StageRuleError)
        program.finish()
    except _Stopping:
        raise _Stop() from None
    finally:
        program.close()


def _serve(worker, program, StageRuleError):
    ends = worker.ends
    shape, out_code = worker.stage.shape, worker.out_code
    for t in range(worker.k, MAX_ITEM, worker.r):
        t0 = _now()
        try:
            word = _sliced(lambda timeout: ends.input.receive(t % worker.in_r, timeout), program, None)
        except EndOfStream:
            return
        in_slot, problem = slot_word_problem(word, t, t % worker.in_owner_r, worker.in_s,
                                             worker.in_pool, (worker.in_code, worker.in_shape))
        if problem:
            raise StageRuleError(problem)
        worker.begin(t)
        t1 = _now()
        out_slot = _free_slot(worker, program)
        t2 = _now()
        # Room for both words: the program took the last item's before it sent done.
        program.jobs.send(encode(t, in_slot))
        program.jobs.send(encode(t, out_slot))
        try:
            done = _sliced(lambda timeout: program.done.receive(0, timeout), program, t)
        except (EndOfStream, PeerDied):  # it closed or dropped done: it is ending
            program.ended(t)
        got, problem = slot_word_problem(done, t, worker.k, worker.s, worker.out_pool,
                                         (out_code, shape))
        if problem is None and got != out_slot:
            problem = f"protocol error: expected item {t} in slot {out_slot}, received slot {got}"
        if problem:
            raise StageRuleError(f"{problem} (from its {program.describe} on done)")
        program.finished = t
        worker.written += 1
        worker.send_on(t, out_slot)
        worker.give_back(t, in_slot)
        worker.count(1, _now() - t2, t1 - t0, t2 - t1)


def _free_slot(worker, program):
    """take_free_slot, in slices (the program is idle meanwhile, but may die or the run
    may stop)."""
    ordinal = worker.written
    if ordinal < worker.s:
        return worker.k * worker.s + ordinal
    earlier = (ordinal - worker.s) * worker.r + worker.k
    from .worker import _Stop  # worker.py imports this module
    try:
        word = _sliced(lambda timeout: worker.ends.freed.receive(earlier % worker.reader_r, timeout),
                       program, None)
    except EndOfStream:
        raise _Stop() from None
    return worker.returned_slot(word, earlier)
