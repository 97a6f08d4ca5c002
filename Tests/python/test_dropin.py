"""`from conveyor import parallel_pipeline` (issue 13): the question's own code, with only
its decorator replaced by the import, runs each stage in its own process over Conveyor
and gives the serial result.

The code below is the question's (/work/shared/seed/, 2016): the decorated generator
stages f, g, h, the generator xs() of np.random.uniform samples, and f(g(h(xs()))). It is
adapted to Python 3 only where Python 2 syntax requires it (`print r` becomes print(r),
or the sum of its answer's timing line) and made smaller (N samples of SHAPE instead of
1000 of (500, 2000)). The decorator keeps the question's spelling, `parrallel_pipeline`,
as a name bound to the drop-in. numpy's global generator is seeded before each run, so
the serial computation can draw the same samples (the pipeline's source takes the first
sample here, to learn its shape, and its forked process goes on from that state).

pipeline_scripts/question.py is the same program as a script, run with multiprocessing's
default start method set to spawn and forkserver: the drop-in forks whatever it is.
"""
import support  # first: skips this module under `unittest discover` without the package

import gc
import os
import sys

import numpy as np
import pytest

import conveyor
from conveyor import parallel_pipeline
from pipeline_scripts.common import Snapshot, child_pids, hang_guard, new_shm_names, shm_names

parrallel_pipeline = parallel_pipeline  # the question's spelling
N, SHAPE = 30, (50, 20)
SEED = 2016
SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pipeline_scripts")


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
        yield np.random.uniform(0,1,SHAPE)
# ---- end of the question's code ----------------------------------------------------------


def serial_results(seed=SEED):
    """The question's stages as plain generators in this process: f(g(h(xs()))) serially."""
    np.random.seed(seed)
    return [(x * x) * 3 + 1.0 for x in (np.random.uniform(0, 1, SHAPE) for _ in range(N))]


@pytest.fixture(autouse=True)
def leaves_nothing(request):
    """No test may hang, leave a child process, a descriptor or a /dev/shm name (checked
    when it passed: a failed test's traceback keeps its run alive)."""
    before = Snapshot()
    with hang_guard():
        yield
    if getattr(request.node, "conveyor_call_failed", False):
        return
    gc.collect()  # a composition dropped mid-stream stops its run when collected
    before.check("the drop-in")


def test_the_questions_code_prints_what_the_serial_code_prints(capsys):
    np.random.seed(SEED)
    rs = f(g(h(xs())))
    for r in rs:
        print(r)
    piped = capsys.readouterr().out
    for r in serial_results():
        print(r)
    assert piped == capsys.readouterr().out
    assert piped.count("]]") == N


def test_the_questions_code_gives_the_serial_sum_and_items():
    np.random.seed(SEED)
    rs = f(g(h(xs())))
    checksums = []
    total = 0.0
    for r in rs:
        checksums.append(support.frame_checksum(r))
        total += r.sum()
    serial = serial_results()
    assert checksums == [support.frame_checksum(r) for r in serial]
    assert total == sum(r.sum() for r in serial)


def test_the_answers_sum_line():
    np.random.seed(SEED)
    total = sum(r.sum() for r in f(g(h(xs()))))
    assert total == sum(r.sum() for r in serial_results())


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_the_questions_program_as_a_script_whatever_the_default_start_method(children, method):
    proc = children.popen([sys.executable, os.path.join(SCRIPTS, "question.py"), method, str(SEED)])
    out, err = support.finish(proc, f"question.py {method}")
    assert [float(line) for line in out.split()] == [float(r.sum()) for r in serial_results()], err


def test_the_run_s_statistics():
    np.random.seed(SEED)
    rs = f(g(h(xs())))
    assert rs.stats is None  # not started yet
    assert sum(1 for _ in rs) == N
    assert [s.name for s in rs.stats.stages] == ["source", "h", "g", "f", "sink"]
    assert all(s.items == N for s in rs.stats.stages)
    assert rs.stats.start == "fork"


def test_each_stage_runs_in_its_own_process():
    @parallel_pipeline(2)
    def pid(xs):
        for x in xs:
            y = np.array(x)
            y[0, 0] = os.getpid()
            yield y

    @parallel_pipeline(2)
    def pid2(xs):
        for x in xs:
            y = np.array(x)
            y[0, 1] = os.getpid()
            yield y

    pids = {(int(r[0, 0]), int(r[0, 1])) for r in pid2(pid(h(xs())))}
    assert len(pids) == 1
    (first, second), = pids
    assert len({first, second, os.getpid()}) == 3


def test_the_results_are_read_only_views():
    for r in f(xs()):
        assert not r.flags.writeable
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
    assert caught.value.item == 0

    @parallel_pipeline(3, shape=(SHAPE[0] // 2, SHAPE[1]), dtype=np.float32)
    def halve32(xs):
        for x in xs:
            yield x[: SHAPE[0] // 2].astype(np.float32)

    np.random.seed(SEED)
    out = [np.array(r) for r in f(halve32(h(xs())))]  # f: float32 in, float32 out
    np.random.seed(SEED)
    expected = [(x * x)[: SHAPE[0] // 2].astype(np.float32) + 1.0
                for x in (np.random.uniform(0, 1, SHAPE) for _ in range(N))]
    assert len(out) == N and all(r.dtype == np.float32 and r.shape == (25, 20) for r in out)
    assert all(support.same_bits(a, b) for a, b in zip(out, expected))


def test_writing_into_an_input_fails_the_stage():
    @parallel_pipeline(3)
    def in_place(xs):
        for x in xs:
            x += 1.0
            yield x

    with pytest.raises(conveyor.StageFailed) as caught:
        list(in_place(xs()))
    assert caught.value.exception_type == "ValueError" and "read-only" in str(caught.value)


def test_a_raising_decorated_stage_is_named_with_its_item():
    @parallel_pipeline(3)
    def picky(xs):
        for i, x in enumerate(xs):
            if i == 5:
                raise RuntimeError("picky about item 5")  # the raising line
            yield x

    children = child_pids()
    with pytest.raises(conveyor.StageFailed) as caught:
        for _ in f(picky(h(xs()))):
            pass
    error = caught.value
    assert (error.stage, error.item, error.exception_type) == ("picky", 5, "RuntimeError")
    assert 'raise RuntimeError("picky about item 5")' in error.remote_traceback
    assert child_pids() == children


def test_a_composition_runs_once():
    inner = h(xs())
    outer = g(inner)
    assert sum(1 for _ in outer) == N
    assert sum(1 for _ in outer) == 0  # exhausted, like a generator
    with pytest.raises(conveyor.PipelineError):
        next(inner)  # handed to g, which ran it


def test_leaving_early_and_close_stop_the_run():
    children = child_pids()
    rs = f(g(h(iter(np.random.uniform(0, 1, SHAPE) for _ in range(10_000)))))
    first = next(rs)
    assert len(child_pids() - children) == 4  # source, h, g, f
    rs.close()
    assert child_pids() == children
    assert first.shape == SHAPE  # what arrived stays readable


def test_dropping_a_composition_mid_stream_stops_its_run():
    children = child_pids()
    rs = f(g(h(iter(np.random.uniform(0, 1, SHAPE) for _ in range(10_000)))))
    next(rs)
    del rs
    gc.collect()
    assert child_pids() == children


def test_a_plain_generator_between_decorated_stages():
    # The question's style invites mixing: f(plain(h(xs()))). The outer pipeline's source
    # is then a plain generator over the inner composition, continued in a forked
    # process. It must give the serial result, or fail with a PipelineError that says
    # what to do, never in a confusing way (it once failed its source on "item 30" with
    # multiprocessing's "can only join a child process"), and leave nothing behind.
    def plain(xs):
        for x in xs:
            yield x * 3

    np.random.seed(SEED)
    try:
        total = sum(r.sum() for r in f(plain(h(xs()))))
    except conveyor.PipelineError as error:
        assert "plain generator" in str(error) and "decorate" in str(error), str(error)[:600]
    else:
        assert total == sum(r.sum() for r in serial_results())


def test_plain_generators_around_decorated_stages():
    def plain(xs):
        for x in xs:
            yield x * 3

    np.random.seed(SEED)
    outer = [support.frame_checksum(r) for r in plain(f(h(xs())))]  # in this process
    np.random.seed(SEED)
    inner = [support.frame_checksum(r) for r in f(h(plain(xs())))]  # in the source's
    np.random.seed(SEED)
    samples = [np.random.uniform(0, 1, SHAPE) for _ in range(N)]
    assert outer == [support.frame_checksum((x * x + 1.0) * 3) for x in samples]
    assert inner == [support.frame_checksum((x * 3) * (x * 3) + 1.0) for x in samples]


def test_bad_buffer_size():
    for bad in (0, -1, 1.5, "3", True, None):
        with pytest.raises(conveyor.PipelineDefinitionError):
            parallel_pipeline(bad)


@pytest.mark.parametrize("shape, dtype", [((-1,), None), ("ab", None), (None, np.int32), (None, "nonsense")])
def test_a_bad_declared_shape_or_dtype_is_a_definition_error_before_any_process(shape, dtype):
    @parallel_pipeline(3, shape=shape, dtype=dtype)
    def bad(xs):
        yield from xs

    shm, children = shm_names(), child_pids()
    with pytest.raises(conveyor.PipelineDefinitionError):
        next(bad(xs()))
    assert child_pids() == children and not new_shm_names(shm)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
