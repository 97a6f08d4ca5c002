"""`from conveyor import parallel_pipeline` (issue 13): the question's own code, with only
the import changed, runs each stage in its own process over Conveyor and gives the serial
result.

The code below is the question's (../shared/seed/, 2016), adapted to Python 3 only where
its Python 2 syntax requires it (`print r` becomes a sum, as in its answer's timing line)
and made smaller (the data rule of the benchmarks: sample i is
default_rng([2016, i]).random(shape), instead of np.random.uniform, so the result is
checkable). Its decorator keeps the question's misspelling, `parrallel_pipeline`, as a
name bound to the drop-in.
"""
import support  # first: skips this module under `unittest discover` without the package

import numpy as np
import pytest

import conveyor
from conveyor import parallel_pipeline
from pipeline_scripts.common import Snapshot, hang_guard

parrallel_pipeline = parallel_pipeline  # the question's spelling
N, SHAPE = 60, (50, 20)


# ---- the question's code (its decorator replaced by the import above) --------------------
@parrallel_pipeline(3)
def f(xs):
    for x in xs:
        yield x + 1.0


@parrallel_pipeline(3)
def g(xs):
    for x in xs:
        yield x * 3


@parrallel_pipeline(3)
def h(xs):
    for x in xs:
        yield x * x


def xs():
    for i in range(N):
        yield np.random.default_rng([2016, i]).random(SHAPE)
# ---- end of the question's code ----------------------------------------------------------


def serial():
    return sum(float(((np.random.default_rng([2016, i]).random(SHAPE) ** 2) * 3 + 1.0).sum()) for i in range(N))


@pytest.fixture(autouse=True)
def leaves_nothing():
    before = Snapshot()
    with hang_guard():
        yield
    before.check("the drop-in")


def test_the_questions_code_gives_the_serial_result():
    rs = f(g(h(xs())))
    total = 0.0
    for r in rs:
        total += float(r.sum())
    assert total == serial()
    assert [s.name for s in rs.stats.stages] == ["source", "h", "g", "f", "sink"]
    assert all(s.items == N for s in rs.stats.stages)


def test_each_stage_runs_in_its_own_process():
    import os

    @parallel_pipeline(2)
    def pid(xs):
        for x in xs:
            yield np.full_like(x, os.getpid())

    pids = {int(r[0, 0]) for r in pid(pid(h(xs())))}
    assert len(pids) == 1 and os.getpid() not in pids  # the last stage's process, not this one
    firsts = [int(r[0, 0]) for r in pid(h(xs()))]
    assert firsts and os.getpid() not in firsts


def test_the_results_are_read_only_views():
    for r in f(xs()):
        with pytest.raises(ValueError):
            r[0, 0] = 1.0
        break


def test_a_stage_changing_the_shape_must_declare_it():
    @parallel_pipeline(3)
    def halve(xs):
        for x in xs:
            yield x[: SHAPE[0] // 2]

    with pytest.raises(conveyor.StageFailed) as caught:
        list(halve(xs()))
    assert caught.value.stage == "halve" and "declare shape=" in str(caught.value)

    @parallel_pipeline(3, shape=(SHAPE[0] // 2, SHAPE[1]), dtype=np.float32)
    def halve32(xs):
        for x in xs:
            yield x[: SHAPE[0] // 2].astype(np.float32)

    out = [np.array(r) for r in halve32(xs())]
    assert len(out) == N and out[0].shape == (SHAPE[0] // 2, SHAPE[1]) and out[0].dtype == np.float32


def test_writing_into_an_input_fails_the_stage():
    @parallel_pipeline(3)
    def in_place(xs):
        for x in xs:
            x += 1.0
            yield x

    with pytest.raises(conveyor.StageFailed) as caught:
        list(in_place(xs()))
    assert caught.value.exception_type == "ValueError" and "read-only" in str(caught.value)


def test_a_composition_runs_once():
    inner = h(xs())
    outer = g(inner)
    assert sum(1 for _ in outer) == N
    assert sum(1 for _ in outer) == 0  # exhausted, like a generator
    with pytest.raises(conveyor.PipelineError):
        next(inner)  # handed to g, which ran it


def test_bad_buffer_size():
    for bad in (0, -1, 1.5, "3", True):
        with pytest.raises(conveyor.PipelineDefinitionError):
            parallel_pipeline(bad)
