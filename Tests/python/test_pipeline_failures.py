"""conveyor.Pipeline when things go wrong (issue 13): a stage that raises (StageFailed
with the stage, the item, the exception's type and its remote traceback), one that is
killed or exits (StageDied), one that breaks the pipeline's rules (a kept reference, a
wrong shape or dtype, writing its read-only input), an exception in the reduce or the
caller's loop, and Ctrl-C in a program running a pipeline.

Whatever the failure, when it reaches the caller every stage process has been reaped
(none is running, none is a zombie) and nothing is left in /dev/shm; the autouse fixture
checks both after every test, and a SIGALRM guard turns a hang into a failure.

The failing stages are at module level here, or in pipeline_scripts/stages.py for
spawn; each fails on item BAD_ITEM (the source numbers item i with the value i).
"""
import support  # first: skips this module under `unittest discover` without the package

import gc
import os
import signal
import sys
import time

import numpy as np
import pytest

import conveyor
from pipeline_scripts.common import (Snapshot, child_pids, hang_guard, new_shm_names,
                                     process_state, shm_names)
from pipeline_scripts import stages
from pipeline_scripts.stages import BAD_ITEM, numbered

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pipeline_scripts")
COUNT = 20
SHAPE = (3, 4)
KEPT = []  # what a misbehaving stage keeps (in its own process: this one's stays empty)


@pytest.fixture(autouse=True)
def leaves_nothing(request):
    """No test may hang, leave a child process (running or a zombie) or a /dev/shm name
    (checked when it passed: a failed test's traceback keeps its run alive)."""
    children, shm = child_pids(), shm_names()
    with hang_guard():
        yield
    if getattr(request.node, "conveyor_call_failed", False):
        return
    left = child_pids() - children
    assert not left, f"the test left child processes {sorted(left)}"
    assert not new_shm_names(shm), f"the test left /dev/shm names {sorted(new_shm_names(shm))}"


def value(x):
    return int(x.flat[0])


def failing(pipe, error_type, reduce=None, initial=None):
    """Runs pipe, expecting error_type; checks that the run left no child process (at
    once) and, once the error is dropped, no descriptor. Returns the error."""
    before = Snapshot()
    children = child_pids()
    with pytest.raises(error_type) as caught:
        pipe.run(reduce, initial)
    assert child_pids() == children, "stage processes still there when the error arrived"
    error = caught.value
    assert isinstance(error, conveyor.PipelineError) and isinstance(error, conveyor.ConveyorError)
    assert not isinstance(error, conveyor.PipelineDefinitionError)
    # The error's traceback holds the run; dropped with it, the run holds nothing.
    error_copy = (type(error), str(error), error.stage, error.replica, error.item,
                  getattr(error, "exception_type", None), getattr(error, "remote_traceback", None),
                  getattr(error, "signal", None), getattr(error, "exitcode", None))
    del caught, error
    gc.collect()
    before.check("a failed run")
    return FailureRecord(*error_copy)


class FailureRecord:
    def __init__(self, type_, message, stage, replica, item, exception_type, remote_traceback,
                 signal_, exitcode):
        self.type, self.message, self.stage, self.replica, self.item = type_, message, stage, replica, item
        self.exception_type, self.remote_traceback = exception_type, remote_traceback
        self.signal, self.exitcode = signal_, exitcode


# ---- stages that raise ------------------------------------------------------------------

def raising_into(x, out):
    out[...] = x
    if value(x) == BAD_ITEM:
        raise ZeroDivisionError("into stage: the bad item")  # raise: into


def raising_return(x):
    if value(x) == BAD_ITEM:
        raise ZeroDivisionError("return stage: the bad item")  # raise: return
    return x + 1


def raising_stream(xs):
    for x in xs:
        if value(x) == BAD_ITEM:
            raise ZeroDivisionError("generator stage: the bad item")  # raise: stream
        yield x


def raising_fill(i, out):
    if i == BAD_ITEM:
        raise ZeroDivisionError("source: the bad item")  # raise: source
    out[...] = i


def raising_iterable():
    for i in range(COUNT):
        if i == BAD_ITEM:
            raise ZeroDivisionError("iterable source: the bad item")  # raise: iterable
        yield np.full(SHAPE, float(i))


def source_only():
    return conveyor.Pipeline(numbered, count=COUNT, shape=SHAPE)


RAISING = {
    # form: (pipeline, stage name, replica, the raising line)
    "into": (lambda: source_only().stage(raising_into).stage(lambda x: x),
             "raising_into", 0, 'raise ZeroDivisionError("into stage: the bad item")'),
    "return": (lambda: source_only().stage(raising_return),
               "raising_return", 0, 'raise ZeroDivisionError("return stage: the bad item")'),
    "stream": (lambda: source_only().stage(raising_stream).stage(lambda x: x * 2),
               "raising_stream", 0, 'raise ZeroDivisionError("generator stage: the bad item")'),
    "source": (lambda: conveyor.Pipeline(raising_fill, count=COUNT, shape=SHAPE).stage(lambda x: x),
               "source", 0, 'raise ZeroDivisionError("source: the bad item")'),
    "iterable source": (lambda: conveyor.Pipeline(raising_iterable, shape=SHAPE).stage(lambda x: x),
                        "source", 0, 'raise ZeroDivisionError("iterable source: the bad item")'),
    "replicated": (lambda: source_only().stage(raising_into, replicas=3),
                   "raising_into", BAD_ITEM % 3, 'raise ZeroDivisionError("into stage: the bad item")'),
    "replicated source": (lambda: conveyor.Pipeline(raising_fill, count=COUNT, shape=SHAPE, replicas=2),
                          "source", BAD_ITEM % 2, 'raise ZeroDivisionError("source: the bad item")'),
}


@pytest.mark.parametrize("form", list(RAISING))
def test_a_raising_stage_fails_the_run_with_stage_item_and_remote_traceback(form):
    make, name, replica, line = RAISING[form]
    error = failing(make(), conveyor.StageFailed)
    assert error.stage == name
    assert error.item == BAD_ITEM
    assert error.replica == replica
    assert error.exception_type == "ZeroDivisionError"
    assert line in error.remote_traceback, error.remote_traceback
    assert "ZeroDivisionError" in error.remote_traceback.splitlines()[-1]
    assert f"'{name}'" in error.message and f"item {BAD_ITEM}" in error.message
    assert line in error.message  # the remote traceback ends the message


def test_a_raising_stage_under_spawn():
    pipe = (conveyor.Pipeline(numbered, count=COUNT, shape=SHAPE, start="spawn")
            .stage(stages.raise_on_bad_into))
    error = failing(pipe, conveyor.StageFailed)
    assert (error.stage, error.item, error.exception_type) == ("raise_on_bad_into", BAD_ITEM, "ValueError")
    assert 'raise ValueError(f"item {BAD_ITEM} is bad")' in error.remote_traceback


def test_a_stage_failing_on_its_first_item():
    def at_once(x):
        raise KeyError("at once")

    error = failing(source_only().stage(at_once), conveyor.StageFailed)
    assert (error.stage, error.item, error.exception_type) == ("at_once", 0, "KeyError")


def test_a_stream_stage_failing_before_its_first_output():
    def never_yields(xs):
        for x in xs:
            raise KeyError("before the first output")
        yield  # a generator function

    error = failing(source_only().stage(never_yields), conveyor.StageFailed)
    assert (error.stage, error.exception_type) == ("never_yields", "KeyError")
    assert error.item == 0


# ---- stages that die ----------------------------------------------------------------------

def sigkill_into(x, out):
    if value(x) == BAD_ITEM:
        os.kill(os.getpid(), signal.SIGKILL)
    out[...] = x


def sigkill_stream(xs):
    for x in xs:
        if value(x) == BAD_ITEM:
            os.kill(os.getpid(), signal.SIGKILL)
        yield x


def sigkill_fill(i, out):
    if i == BAD_ITEM:
        os.kill(os.getpid(), signal.SIGKILL)
    out[...] = i


KILLED = {
    "into": (lambda: source_only().stage(sigkill_into).stage(lambda x: x), "sigkill_into", 0),
    "return": (lambda: source_only().stage(stages.sigkill_on_bad), "sigkill_on_bad", 0),
    "stream": (lambda: source_only().stage(sigkill_stream), "sigkill_stream", 0),
    "source": (lambda: conveyor.Pipeline(sigkill_fill, count=COUNT, shape=SHAPE).stage(lambda x: x),
               "source", 0),
    "replicated": (lambda: source_only().stage(sigkill_into, replicas=2), "sigkill_into", 1),
    "spawn": (lambda: conveyor.Pipeline(numbered, count=COUNT, shape=SHAPE, start="spawn")
              .stage(stages.sigkill_on_bad), "sigkill_on_bad", 0),
}


@pytest.mark.parametrize("form", list(KILLED))
def test_a_stage_killed_by_sigkill_is_stage_died(form):
    make, name, replica = KILLED[form]
    error = failing(make(), conveyor.StageDied)
    assert error.type is conveyor.StageDied
    assert error.signal == "SIGKILL" and error.exitcode == -signal.SIGKILL
    assert (error.stage, error.item, error.replica) == (name, BAD_ITEM, replica)
    assert "SIGKILL" in error.message and f"'{name}'" in error.message
    assert f"item {BAD_ITEM}" in error.message


def exit7_stream(xs):
    for x in xs:
        if value(x) == BAD_ITEM:
            os._exit(7)
        yield x


@pytest.mark.parametrize("form", ["return", "stream"])
def test_a_stage_calling_os_exit_is_stage_died_with_its_status(form):
    body = {"return": stages.exit7_on_bad, "stream": exit7_stream}[form]
    error = failing(source_only().stage(body).stage(lambda x: x), conveyor.StageDied)
    assert error.exitcode == 7 and error.signal is None
    assert (error.stage, error.item) == (body.__name__, BAD_ITEM)
    assert "status 7" in error.message


@pytest.mark.parametrize("status", [1, 2, 3, 4, 255])
def test_any_exit_status_of_a_stage_is_reported(status):
    # Small statuses are what a stage's own code may exit with (sys.exit(1), a failing
    # C library...): none may be mistaken for the run's own "failed" or "stopped" ones.
    def quits(x):
        if value(x) == BAD_ITEM:
            os._exit(status)
        return x

    error = failing(source_only().stage(quits), conveyor.StageDied)
    assert (error.stage, error.item, error.exitcode, error.signal) == ("quits", BAD_ITEM, status, None)


def test_a_stage_exiting_with_status_0_mid_stream_is_not_a_success():
    def quits(x):
        if value(x) == BAD_ITEM:
            os._exit(0)
        return x

    record = []
    with pytest.raises(conveyor.PipelineError):
        conveyor.Pipeline(numbered, count=COUNT, shape=SHAPE).stage(quits).run(
            lambda acc, x: record.append(value(x)), None)
    assert record == list(range(BAD_ITEM))


# ---- stages that break the rules --------------------------------------------------------

def keeps_input_into(x, out):
    KEPT.append(x)
    out[...] = x


def keeps_output_into(x, out):
    out[...] = x
    KEPT.append(out)


def keeps_input_view(x):
    KEPT.append(x[1:])
    return x * 2


def keeps_output_fill(i, out):
    out[...] = i
    KEPT.append(out[0])


KEEPERS = {
    "input of (x, out)": (lambda: source_only().stage(keeps_input_into), "keeps_input_into", "input"),
    "output of (x, out)": (lambda: source_only().stage(keeps_output_into), "keeps_output_into", "output"),
    "view of the input of (x)": (lambda: source_only().stage(keeps_input_view), "keeps_input_view", "input"),
    "output of fill": (lambda: conveyor.Pipeline(keeps_output_fill, count=COUNT, shape=SHAPE),
                       "source", "output"),
}


@pytest.mark.parametrize("form", list(KEEPERS))
def test_a_stage_keeping_a_reference_fails(form):
    make, name, what = KEEPERS[form]
    error = failing(make(), conveyor.StageFailed)
    assert "kept a reference" in error.message and f"its {what} array" in error.message
    assert error.stage == name and error.item == 0
    assert "np.array(x)" in error.message
    assert KEPT == []  # the stage's globals are its process's


def test_a_generator_stage_keeping_its_inputs_fails():
    def hoards(xs):
        kept = []
        for x in xs:
            kept.append(x)
            yield x

    error = failing(source_only().stage(hoards), conveyor.StageFailed)
    assert error.stage == "hoards" and "copy what you keep" in error.message


def test_a_generator_stage_keeping_copies_is_fine():
    def keeps_copies(xs):
        kept = []
        for x in xs:
            kept.append(np.array(x))
            yield kept[-1] * 2

    run = source_only().stage(keeps_copies).run(lambda acc, x: acc + [value(x)], [])
    assert run.result == [2 * i for i in range(COUNT)]


WRONG = {
    # form: (stage, declared dtype, words the message must hold)
    "shape": (lambda x: x[:, :2], None, ["(3, 2)", "(3, 4)", "declare shape="]),
    "transposed shape": (lambda x: x.T, None, ["(4, 3)", "(3, 4)"]),
    "unsafe dtype": (lambda x: x.astype(np.float64), np.float32, ["float64", "float32", "declare"]),
    "complex dtype": (lambda x: x.astype(np.complex128), None, ["complex128", "float64"]),
    "not an array": (lambda x: x.tolist(), None, ["list", "numpy array"]),
    "scalar": (lambda x: float(x.sum()), None, ["float", "numpy array"]),
}


@pytest.mark.parametrize("form", list(WRONG))
def test_a_return_stage_returning_the_wrong_array_fails(form):
    body, dtype, words = WRONG[form]
    error = failing(source_only().stage(body, name="wrong", dtype=dtype), conveyor.StageFailed)
    assert error.stage == "wrong" and error.item == 0
    for word in words:
        assert word in error.message, (word, error.message)


def test_a_return_stage_returning_none_fails():
    # A stage h(x) that forgets its return would otherwise pass on whatever its output
    # slot held: zeros at first, then an earlier item's result.
    def forgets_for_odd_items(x):
        if value(x) % 2 == 0:
            return x * 10
        x * 10  # no return

    error = failing(source_only().stage(forgets_for_odd_items), conveyor.StageFailed)
    assert error.stage == "forgets_for_odd_items" and error.item == 1
    assert "None" in error.message


def test_a_generator_stage_yielding_the_wrong_shape_fails():
    def flattens(xs):
        for x in xs:
            yield x.ravel()

    error = failing(source_only().stage(flattens), conveyor.StageFailed)
    assert error.stage == "flattens" and "(12,)" in error.message and "(3, 4)" in error.message


def test_a_make_source_returning_the_wrong_shape_fails():
    pipe = conveyor.Pipeline(lambda i: np.zeros(5), count=COUNT, shape=SHAPE)
    error = failing(pipe, conveyor.StageFailed)
    assert error.stage == "source" and "(5,)" in error.message


def test_a_stage_writing_its_input_fails():
    def in_place(x):
        x += 1
        return x

    error = failing(source_only().stage(in_place), conveyor.StageFailed)
    assert error.exception_type == "ValueError" and "read-only" in error.message
    assert error.stage == "in_place" and error.item == 0


def test_the_pipeline_runs_again_after_a_failure():
    pipe = source_only().stage(raising_return)
    failing(pipe, conveyor.StageFailed)
    ok = source_only().stage(lambda x: x + 1)
    assert ok.run(lambda acc, x: acc + [value(x)], []).result == [i + 1 for i in range(COUNT)]
    failing(pipe, conveyor.StageFailed)


# ---- the caller's exceptions ------------------------------------------------------------

class FromReduce(Exception):
    pass


def test_an_exception_in_reduce_propagates_and_stops_the_run():
    def reduce(acc, x):
        if value(x) == BAD_ITEM:
            raise FromReduce(f"reduce gave up at {value(x)}")
        return acc + 1

    before = Snapshot()
    children = child_pids()
    with pytest.raises(FromReduce, match=f"reduce gave up at {BAD_ITEM}") as caught:
        conveyor.Pipeline(numbered, count=10_000, shape=SHAPE).stage(lambda x: x).run(reduce, 0)
    assert child_pids() == children
    # The traceback holds reduce's frame, and x in it: a view of the run's last slot.
    del caught
    gc.collect()
    before.check("a run whose reduce raised")


def test_an_exception_in_the_loop_body_stops_the_run():
    children = child_pids()
    with pytest.raises(LookupError):
        with conveyor.Pipeline(numbered, count=10_000, shape=SHAPE).stage(lambda x: x).results() as results:
            for x in results:
                if value(x) == 3:
                    raise LookupError("from the loop")
    assert child_pids() == children


# ---- Ctrl-C -----------------------------------------------------------------------------

@pytest.mark.parametrize("to", ["the script", "its process group"])
@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_ctrl_c_stops_every_stage_and_raises_keyboard_interrupt(children, start, to):
    shm = shm_names()
    proc = children.popen([sys.executable, os.path.join(SCRIPTS, "ctrl_c.py"), start],
                          start_new_session=True)
    line = support.read_line(proc.stdout, "the script's 'started'")
    assert line.startswith("started "), (line, proc.stderr.read() if proc.poll() is not None else "")
    pids = [int(p) for p in line.split()[1:]]
    assert len(pids) == 4 and len(set(pids)) == 4
    for pid in pids:  # they are the script's stage processes, all running
        with open(f"/proc/{pid}/stat") as f:
            assert int(f.read().rsplit(")", 1)[1].split()[1]) == proc.pid
    sent = time.monotonic()
    if to == "the script":
        os.kill(proc.pid, signal.SIGINT)
    else:  # what a terminal's Ctrl-C does: every process of the foreground group gets it
        os.killpg(proc.pid, signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=support.LIMIT)  # a safety net only
    except Exception:
        proc.kill()
        raise
    took = time.monotonic() - sent
    print(f"{start}, SIGINT to {to}: exited {took * 1e3:.0f} ms after the signal")
    assert proc.returncode == -signal.SIGINT, (proc.returncode, out, err)
    assert err.rstrip().splitlines()[-1] == "KeyboardInterrupt", err
    assert out.splitlines() == ["children"], f"the script still had children: {out!r}"
    for pid in pids:
        assert process_state(pid) is None, f"stage process {pid} is still there ({process_state(pid)})"
    assert not new_shm_names(shm, pids + [proc.pid])
    assert took < 10.0, f"Ctrl-C took {took:.1f} s to stop the pipeline"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
