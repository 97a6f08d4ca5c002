"""What the pipeline tests share: the state a run must leave as it found it (child
processes, open descriptors, /dev/shm), and a guard that turns a hung run into a failure.

Imported by spawned stage processes too (they import the test module to find its stage
functions), so it imports nothing heavier than numpy and the standard library.
"""
import contextlib
import multiprocessing.resource_tracker
import os
import re
import signal

#: How long one pipeline test may run before the guard fails it (a correct one takes
#: well under 2 s; this only turns a hang into a failure).
HANG_LIMIT = 60.0


class Hung(AssertionError):
    """Raised in the main thread by the guard's SIGALRM."""


@contextlib.contextmanager
def hang_guard(limit=HANG_LIMIT):
    """Fails what runs inside with Hung after `limit` s. The pipeline's sink waits in
    slices and runs Python signal handlers between them, so a hung run raises here
    (and stops its stages on the way out) instead of hanging the suite. An itimer is not
    inherited by fork, so stage processes never see it."""
    def on_alarm(signum, frame):
        raise Hung(f"still running after {limit} s (hung)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _tracker_pid():
    tracker = multiprocessing.resource_tracker._resource_tracker
    return getattr(tracker, "_pid", None)


def child_pids(pid="self"):
    """Pids of the direct children of a process, zombies included (a child stays in
    its parent's list until it is reaped). multiprocessing's resource tracker, which the
    first spawn starts and which lives as long as this process, is not counted."""
    pids = set()
    task_dir = f"/proc/{pid}/task"
    for tid in os.listdir(task_dir):
        try:
            with open(f"{task_dir}/{tid}/children") as f:
                pids.update(int(p) for p in f.read().split())
        except FileNotFoundError:  # the thread ended meanwhile
            pass
    if pid == "self":
        pids.discard(_tracker_pid())
    return pids


def process_state(pid):
    """The state letter of /proc/<pid>/stat ('R', 'S', 'Z'...), or None if no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def open_fds():
    """The descriptors this process has open, with what they point at; not the pipe to
    multiprocessing's resource tracker (see child_pids)."""
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[int(fd)] = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the descriptor listdir itself used
            pass
    fds.pop(getattr(multiprocessing.resource_tracker._resource_tracker, "_fd", None), None)
    return fds


#: /dev/shm names other programs on this machine make while the tests run: Python's
#: multiprocessing.shared_memory (psm_..., the benchmarks; the package never uses it),
#: iceoryx2's (iox2..., the benchmarks' peer), and the C, Swift and pytest suites' names,
#: which carry the pid of their maker.
_FOREIGN = re.compile(r"psm_[0-9a-f]+$|iox2|(?:cvpy|conveyor-[a-z-]+?)-(\d+)")
_KMP = re.compile(r"__KMP_REGISTERED_LIB_(\d+)")


def shm_names():
    return set(os.listdir("/dev/shm"))


def _descendants(pid):
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        try:
            children = child_pids(p)
        except (FileNotFoundError, ProcessLookupError):
            continue
        todo.extend(children - found)
        found |= children
    return found


def _held_by_others(name, ours):
    """Whether a process outside `ours` has /dev/shm/<name> open or mapped: then it is
    that process's (another test run or benchmark on this machine), not a leak of ours."""
    path = "/dev/shm/" + name
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in ours:
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(path):
                    return True
            with open(f"/proc/{pid}/maps") as maps:
                if path in maps.read():
                    return True
        except OSError:  # it ended meanwhile, or is not ours to read
            continue
    return False


def new_shm_names(before, ours=()):
    """Names in /dev/shm now that were not in `before`, except those other programs made:
    a known foreign kind (see _FOREIGN; one with a pid counts when the pid is this
    process's or in `ours`), or one that a process outside this one's tree holds."""
    mine = {os.getpid(), *ours}
    new = set()
    for name in shm_names() - before:
        match = _FOREIGN.match(name) or _KMP.match(name)
        if match is None or (match.lastindex and int(match.group(1)) in mine):
            new.add(name)
    if new:
        tree = mine | _descendants(os.getpid())
        new = {name for name in new if not _held_by_others(name, tree)}
    return new


class Snapshot:
    """Children, descriptors and /dev/shm names of this process at one moment; check()
    asserts that they are the same again (a run that ended leaves nothing behind)."""

    def __init__(self):
        self.children = child_pids()
        self.fds = open_fds()
        self.shm = shm_names()

    def check(self, what="the run", stage_pids=()):
        children = child_pids() - self.children
        assert not children, (f"{what} left child processes: "
                              f"{ {p: process_state(p) for p in children} }")
        fds = open_fds()
        extra = {fd: target for fd, target in fds.items() if self.fds.get(fd) != target}
        assert not extra, f"{what} left descriptors open: {extra}"
        shm = new_shm_names(self.shm, stage_pids)
        assert not shm, f"{what} left names in /dev/shm: {sorted(shm)}"
