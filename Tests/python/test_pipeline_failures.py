"""conveyor.Pipeline when a stage fails (issue 13): a stage that raises, one killed by a
signal, one that exits on its own, one that breaks the slot rules, an exception in the
reduce, and Ctrl-C. Each is reported by stage and item, and leaves no process (running
or zombie), descriptor or /dev/shm name behind.
"""
import support  # first: skips this module under `unittest discover` without the package

import os
import select
import signal
import subprocess
import sys

import pytest

import conveyor
from pipeline_scripts.common import Snapshot, hang_guard, process_state
from pipeline_scripts.stages import (FAIL_AT, exit7_at, keeps_input, numbered, raise_at,
                                     sigkill_at, wrong_dtype, wrong_shape)

HERE = os.path.dirname(os.path.abspath(__file__))
COUNT = 40
SHAPE = (8,)


@pytest.fixture(autouse=True)
def leaves_nothing():
    before = Snapshot()
    with hang_guard():
        yield
    before.check("the failed run")


def pipeline_with(stage, start="fork", replicas=1):
    return (conveyor.Pipeline(numbered, count=COUNT, shape=SHAPE, start=start)
            .stage(stage, replicas=replicas)
            .stage(conveyor.kernel_stage([("add", 1.0)]), name="f"))


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_a_raising_stage_is_named_with_its_item_and_remote_traceback(start):
    with pytest.raises(conveyor.StageFailed) as caught:
        pipeline_with(raise_at, start).run()
    error = caught.value
    assert isinstance(error, conveyor.PipelineError) and isinstance(error, conveyor.ConveyorError)
    assert (error.stage, error.item, error.exception_type) == ("raise_at", FAIL_AT, "ZeroDivisionError")
    assert "the raising line" in error.remote_traceback
    assert "stage 'raise_at'" in str(error) and f"item {FAIL_AT}" in str(error)


def test_a_replica_that_raises_is_named_with_its_replica():
    with pytest.raises(conveyor.StageFailed) as caught:
        pipeline_with(raise_at, replicas=3).run()
    assert (caught.value.stage, caught.value.replica, caught.value.item) == ("raise_at", FAIL_AT % 3, FAIL_AT)
    assert "(replica 1)" in str(caught.value)


def test_a_stage_killed_by_a_signal_is_named_with_the_signal():
    with pytest.raises(conveyor.StageDied) as caught:
        pipeline_with(sigkill_at).run()
    error = caught.value
    assert (error.stage, error.item, error.signal, error.exitcode) == ("sigkill_at", FAIL_AT, "SIGKILL", -9)
    assert "killed by SIGKILL" in str(error)


def test_a_stage_that_exits_on_its_own_is_named_with_its_status():
    with pytest.raises(conveyor.StageDied) as caught:
        pipeline_with(exit7_at).run()
    assert (caught.value.stage, caught.value.item, caught.value.signal, caught.value.exitcode) == \
        ("exit7_at", FAIL_AT, None, 7)


def test_a_failing_source_is_named():
    def source(i, out):
        if i == 3:
            raise KeyError("no such sample")
        out[...] = i
    with pytest.raises(conveyor.StageFailed) as caught:
        conveyor.Pipeline(source, count=10, shape=SHAPE).stage(lambda x: x + 1).run()
    assert (caught.value.stage, caught.value.item, caught.value.exception_type) == ("source", 3, "KeyError")


def test_a_stage_that_keeps_its_input_fails_with_a_message():
    with pytest.raises(conveyor.StageFailed) as caught:
        pipeline_with(keeps_input).run()
    assert "kept a reference to its input" in str(caught.value)
    assert caught.value.item == 0


@pytest.mark.parametrize("stage, words", [(wrong_shape, "(2,)"), (wrong_dtype, "complex128")])
def test_a_stage_returning_another_shape_or_dtype_fails_with_a_message(stage, words):
    with pytest.raises(conveyor.StageFailed) as caught:
        pipeline_with(stage).run()
    message = str(caught.value)
    assert words in message and "declare shape=" in message and caught.value.item == 0


def test_a_generator_stage_that_keeps_every_input_fails_instead_of_hanging():
    def hoard(xs):
        kept = []
        for x in xs:
            kept.append(x)
            yield x * 2
    with pytest.raises(conveyor.StageFailed) as caught:
        conveyor.Pipeline(numbered, count=COUNT, shape=SHAPE, buffer=2).stage(hoard).run()
    assert "keeps views" in str(caught.value)


def test_an_exception_in_reduce_propagates_and_stops_the_run():
    def reduce(acc, x):
        if acc == 5:
            raise RuntimeError("the reduce gave up")
        return acc + 1
    with pytest.raises(RuntimeError, match="the reduce gave up"):
        pipeline_with(lambda x: x).run(reduce, 0)


def test_the_run_after_a_failure_works():
    with pytest.raises(conveyor.StageFailed):
        pipeline_with(raise_at).run()
    assert pipeline_with(lambda x: x).run(lambda n, x: n + 1, 0).result == COUNT


def _read_line(stream, limit=60.0):
    ready, _, _ = select.select([stream], [], [], limit)
    assert ready, f"no line from the script within {limit} s"
    return stream.readline()


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_ctrl_c_stops_every_stage_and_raises_keyboard_interrupt(start):
    script = subprocess.Popen([sys.executable, os.path.join(HERE, "pipeline_scripts", "ctrl_c.py"), start],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True, cwd=HERE)
    try:
        started = _read_line(script.stdout).split()
        assert started and started[0] == "started", started
        stage_pids = [int(p) for p in started[1:]]
        assert len(stage_pids) == 4
        script.send_signal(signal.SIGINT)
        children = _read_line(script.stdout).split()
        assert children == ["children"], f"stage processes not reaped at KeyboardInterrupt: {children}"
        script.wait(timeout=60)
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait()
    stderr = script.stderr.read()
    script.stdout.close()
    script.stderr.close()
    assert script.returncode == -signal.SIGINT, stderr
    assert "KeyboardInterrupt" in stderr
    assert [p for p in stage_pids if process_state(p) is not None] == []
