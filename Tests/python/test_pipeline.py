"""conveyor.Pipeline (issue 13): the question's pipeline with each stage in its own process,
arrays moving between them in shared-memory slots.

What a run computes (checksums equal to the serial computation's, for fork and spawn,
replicas and buffers), the forms of sources and stages, declared shapes and dtypes,
the results iterator and its lifetime rules, statistics, and the definition errors.
Failures of stages (StageFailed, StageDied, Ctrl-C) are in test_pipeline_failures.py,
the question's decorator in test_dropin.py.

Every test here is checked afterwards for child processes it left (zombies included)
and names in /dev/shm, and fails instead of hanging (a SIGALRM guard): see
pipeline_scripts/common.py. The stage functions are in pipeline_scripts/stages.py, at
module level, because spawned stage processes import them by name.
"""
import support  # first: skips this module under `unittest discover` without the package

import collections
import gc
import os
import sys
import threading

import numpy as np
import pytest

import conveyor
import conveyor._pipeline
from pipeline_scripts.common import Snapshot, child_pids, hang_guard, new_shm_names, shm_names
from pipeline_scripts.stages import (COUNT, PLUS_ONE, SHAPE, doubled_stream, fill, gen_items,
                                     numbered, pid_into, row_sums, serial_item, square_into, times3)


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


# ---- helpers ---------------------------------------------------------------------

def serial_checksums(count=COUNT):
    return [support.frame_checksum(serial_item(i)) for i in range(count)]


def collect_checksums(acc, x):
    acc.append(support.frame_checksum(x))
    return acc


def the_pipeline(replicas=1, buffer=3, start="fork"):
    return (conveyor.Pipeline(fill, count=COUNT, shape=SHAPE, replicas=replicas, buffer=buffer, start=start)
            .stage(square_into, replicas=replicas)
            .stage(times3, replicas=replicas)
            .stage(conveyor.kernel_stage(PLUS_ONE), name="f", replicas=replicas))


# ---- the computation -------------------------------------------------------------------

def test_the_package_exports_the_pipeline():
    for name in ("Pipeline", "PipelineRun", "PipelineStats", "StageStats", "kernel_stage",
                 "KernelStage", "parallel_pipeline", "PipelineError", "StageFailed",
                 "StageDied", "PipelineDefinitionError"):
        assert getattr(conveyor, name, None) is getattr(conveyor._pipeline, name), f"conveyor.{name}"


@pytest.mark.parametrize("buffer", [1, 2, 3])
@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_fork_checksum_equals_the_serial_one(replicas, buffer):
    run = the_pipeline(replicas, buffer, "fork").run(collect_checksums, [])
    assert run.result == serial_checksums()
    assert run.stats.start == "fork"


@pytest.mark.parametrize("buffer", [1, 3])
@pytest.mark.parametrize("replicas", [1, 2])
def test_spawn_checksum_equals_the_serial_one(replicas, buffer):
    run = the_pipeline(replicas, buffer, "spawn").run(collect_checksums, [])
    assert run.result == serial_checksums()
    assert run.stats.start == "spawn"


def test_the_docstring_example_sums_like_the_serial_loop():
    pipe = (conveyor.Pipeline(fill, count=COUNT, shape=SHAPE).stage(square_into).stage(times3)
            .stage(conveyor.kernel_stage(PLUS_ONE), name="f"))
    run = pipe.run(lambda total, x: total + x.sum(), 0.0)
    assert run.result == sum(serial_item(i).sum() for i in range(COUNT))


def test_item_i_goes_to_replica_i_mod_n():
    run = (conveyor.Pipeline(numbered, count=12, shape=(3,)).stage(pid_into, replicas=3)
           .run(lambda acc, x: acc + [(int(x[0]), float(x[1]))], []))
    pids = [pid for pid, _ in run.result]
    assert [value for _, value in run.result] == [float(i) for i in range(12)]  # in order
    assert len(set(pids)) == 3 and os.getpid() not in pids
    assert all(pids[i] == pids[i % 3] for i in range(12)), pids
    assert run.stats["pid_into"].replicas == 3 and run.stats["pid_into"].items == 12


def test_a_numpy_ufunc_is_a_stage_writing_its_slot():
    run = (conveyor.Pipeline(fill, count=5, shape=SHAPE).stage(np.square)
           .run(lambda acc, x: acc + [support.frame_checksum(x)], []))
    expected = []
    for i in range(5):
        x = np.empty(SHAPE)
        fill(i, x)
        expected.append(support.frame_checksum(np.square(x)))
    assert run.result == expected


def test_a_make_source_returns_its_items():
    run = (conveyor.Pipeline(lambda i: np.full(SHAPE, float(i)), count=6, shape=SHAPE)
           .run(lambda acc, x: acc + [float(x.mean())], []))
    assert run.result == [float(i) for i in range(6)]


def test_lambdas_are_stages_under_fork():
    run = (conveyor.Pipeline(lambda i, out: fill(i, out), count=COUNT, shape=SHAPE)
           .stage(lambda x, out: square_into(x, out)).stage(lambda x: x * 3)
           .stage(conveyor.kernel_stage(PLUS_ONE)).run(collect_checksums, []))
    assert run.result == serial_checksums()


def test_a_generator_stage_may_change_the_number_of_items():
    run = (conveyor.Pipeline(numbered, count=7, shape=(2,)).stage(doubled_stream)
           .stage(lambda x: x * 10).run(lambda acc, x: acc + [float(x[0])], []))
    assert run.result == [v for i in range(7) for v in (10.0 * i, -10.0 * i)]
    assert [s.items for s in run.stats.stages] == [7, 14, 14, 14]


def test_zero_items():
    run = conveyor.Pipeline(numbered, count=0, shape=(2,)).stage(times3).run(collect_checksums, [])
    assert run.result == []
    assert [s.items for s in run.stats.stages] == [0, 0, 0]


def test_ten_thousand_small_items_through_five_stages_leave_nothing_behind():
    n = 10_000

    def source(i, out):
        out[:] = i
        out[0] = -i

    def stream(xs):
        for x in xs:
            yield x - 1.0

    def serial(i):
        x = np.full(4, float(i))
        x[0] = -i
        return (x * 2.0 + 1.0) * 0.5 - 1.0

    pipe = (conveyor.Pipeline(source, count=n, shape=(4,), buffer=16)
            .stage(lambda x, out: np.multiply(x, 2.0, out=out), name="twice")
            .stage(lambda x: x + 1.0, name="plus1")
            .stage(conveyor.kernel_stage([("mul", 0.5)]), name="half")
            .stage(stream))
    before = Snapshot()
    run = pipe.run(lambda acc, x: acc.append(np.array(x)) or acc, [])
    before.check("a run of 10^4 items")
    assert np.array_equal(np.stack(run.result), np.stack([serial(i) for i in range(n)]))
    assert [s.name for s in run.stats.stages] == ["source", "twice", "plus1", "half", "stream", "sink"]
    assert all(s.items == n for s in run.stats.stages)


def test_a_finished_run_closes_every_descriptor_it_opened():
    # The fork start method opens two pipes per stage process (multiprocessing's
    # sentinel); a run that ended must have closed them, not left them to the next
    # process start or to garbage collection.
    pipe = conveyor.Pipeline(numbered, count=5, shape=(2,)).stage(times3).stage(lambda x: x + 1)
    before = Snapshot()
    pipe.run()
    before.check("a finished run")


def test_the_last_stage_results_live_in_shared_memory_zero_copy():
    with conveyor.Pipeline(fill, count=3, shape=SHAPE).stage(square_into).results() as results:
        x = next(results)
        start, end, path = support.mapping_of(support.data_address(x))
        assert path.startswith("/memfd:"), path
        assert not path.startswith("/dev/shm")
        del x


def copy_stream(xs):
    for x in xs:
        yield x * 1.0


def kernel_serial(i, program):
    x = np.empty(SHAPE)
    fill(i, x)
    return conveyor.apply(x, program)


def test_stages_of_different_replica_counts():
    # Item t goes from replica t % r_up to replica t % r: every pair of counts deals
    # differently, a stream stage (one replica) renumbers in between.
    pipe = (conveyor.Pipeline(fill, count=COUNT, shape=SHAPE, replicas=3)
            .stage(square_into, replicas=2)
            .stage(conveyor.kernel_stage([("mul", 3.0)]))
            .stage(copy_stream)
            .stage(conveyor.kernel_stage(PLUS_ONE), replicas=3))
    expected = [support.frame_checksum(kernel_serial(i, [("square",), ("mul", 3.0), ("add", 1.0)]))
                for i in range(COUNT)]
    assert pipe.run(collect_checksums, []).result == expected


def test_kernel_stages_only_work_in_the_source_s_slots():
    pipe = (conveyor.Pipeline(fill, count=COUNT, shape=SHAPE, replicas=2)
            .stage(conveyor.kernel_stage([("square",)]), replicas=3)
            .stage(conveyor.kernel_stage([("mul", 3.0)]), replicas=2)
            .stage(conveyor.kernel_stage(PLUS_ONE)))
    expected = [support.frame_checksum(kernel_serial(i, [("square",), ("mul", 3.0), ("add", 1.0)]))
                for i in range(COUNT)]
    assert pipe.run(collect_checksums, []).result == expected


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_other_dtypes(dtype):
    run = (conveyor.Pipeline(numbered, count=6, shape=(3,), dtype=dtype).stage(lambda x: x * 2)
           .stage(lambda x, out: np.add(x, 1, out=out))
           .run(lambda acc, x: acc + [(x.dtype, x.tolist())], []))
    assert run.result == [(np.dtype(dtype), [2 * i + 1] * 3) for i in range(6)]


@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0, 4)])
def test_empty_items(shape):
    run = (conveyor.Pipeline(numbered, count=5, shape=shape).stage(lambda x: x * 2)
           .stage(square_into).run(lambda acc, x: acc + [x.shape], []))
    assert run.result == [shape] * 5


def test_zero_dimensional_items():
    # shape=() is accepted; arithmetic on a 0-d array gives a numpy scalar, as numpy does.
    run = (conveyor.Pipeline(numbered, count=5, shape=()).stage(lambda x: x * 2)
           .stage(square_into).run(lambda acc, x: acc + [(x.shape, float(x))], []))
    assert run.result == [((), float((2 * i) ** 2)) for i in range(5)]


def test_results_started_in_a_thread_that_ended_still_run():
    # A worker thread starts the run, takes its first result and ends; the main thread
    # consumes the rest. (The first result proves every stage process is set up.) Stage
    # processes must not die with the thread that happened to fork them.
    box = []

    def start():
        results = conveyor.Pipeline(numbered, count=50, shape=(2,)).stage(times3).results()
        box.append((results, float(next(results)[0])))

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    results, first = box.pop()
    with results:
        assert [first] + [float(x[0]) for x in results] == [3.0 * i for i in range(50)]


def test_a_run_in_a_thread():
    out = []
    thread = threading.Thread(target=lambda: out.append(the_pipeline().run(collect_checksums, []).result))
    thread.start()
    thread.join()
    assert out == [serial_checksums()]


def test_a_stage_with_a_defaulted_second_parameter_is_called_with_x_only():
    def scaled(x, scale=2.0):
        return x * scale

    run = (conveyor.Pipeline(numbered, count=4, shape=(2,)).stage(scaled)
           .run(lambda acc, x: acc + [float(x[0])], []))
    assert run.result == [0.0, 2.0, 4.0, 6.0]


def test_a_stage_with_an_out_parameter_that_has_a_default_writes_its_slot():
    def into(x, out=None):
        assert out is not None
        np.multiply(x, 5, out=out)

    run = (conveyor.Pipeline(numbered, count=4, shape=(2,)).stage(into)
           .run(lambda acc, x: acc + [float(x[1])], []))
    assert run.result == [0.0, 5.0, 10.0, 15.0]


def test_a_generator_stage_that_ends_early_stops_an_endless_source():
    def endless():
        i = 0
        while True:
            yield np.full(3, float(i))
            i += 1

    def first5(xs):
        for _, x in zip(range(5), xs):
            yield x

    run = (conveyor.Pipeline(endless, shape=(3,)).stage(first5).stage(times3)
           .run(lambda acc, x: acc + [float(x[0])], []))
    assert run.result == [0.0, 3.0, 6.0, 9.0, 12.0]


def test_close_in_a_forked_copy_leaves_the_run_alone():
    results = conveyor.Pipeline(numbered, count=40, shape=(2,)).stage(times3).results()
    first = float(next(results)[0])

    def in_the_copy():
        results.close()
        try:
            next(results)
        except conveyor.PipelineError:
            pass
        del results_ref[:]
        gc.collect()

    results_ref = [results]
    assert support.in_forked_copy(in_the_copy) == 0
    with results:
        assert [first] + [float(x[0]) for x in results] == [3.0 * i for i in range(40)]


# ---- sources ---------------------------------------------------------------------------

@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_an_iterable_source_with_shape(start):
    run = (conveyor.Pipeline(gen_items, shape=SHAPE, start=start).stage(square_into).stage(times3)
           .stage(conveyor.kernel_stage(PLUS_ONE)).run(collect_checksums, []))
    assert run.result == serial_checksums()
    assert run.stats["source"].items == COUNT


@pytest.mark.parametrize("form", ["generator function", "generator object", "list"])
def test_an_iterable_source_without_shape_is_peeked_under_fork(form):
    source = {"generator function": gen_items, "generator object": gen_items(),
              "list": list(gen_items())}[form]
    pipe = conveyor.Pipeline(source).stage(square_into).stage(times3).stage(conveyor.kernel_stage(PLUS_ONE))
    run = pipe.run(collect_checksums, [])
    assert run.result == serial_checksums()  # the peeked first item is not lost
    assert run.stats["source"].items == COUNT


def test_a_peeked_source_learns_shape_and_dtype():
    items = [np.full((3, 2), float(i), np.float32) for i in range(4)]
    run = conveyor.Pipeline(iter(items)).stage(lambda x: x * 2).run(
        lambda acc, x: acc + [(x.shape, x.dtype, float(x[0, 0]))], [])
    assert run.result == [((3, 2), np.dtype(np.float32), 2.0 * i) for i in range(4)]


def test_an_empty_iterable_source_with_shape_runs_no_items():
    run = conveyor.Pipeline(iter([]), shape=(3,)).stage(times3).run(collect_checksums, [])
    assert run.result == [] and run.stats["sink"].items == 0


# ---- declared shapes and dtypes --------------------------------------------------------

def test_a_declared_output_shape_and_dtype():
    rows, cols = SHAPE
    pipe = (conveyor.Pipeline(fill, count=COUNT, shape=SHAPE)
            .stage(row_sums, shape=(rows,), dtype=np.float32)
            .stage(lambda x: x * 2))
    run = pipe.run(lambda acc, x: acc + [np.array(x)], [])
    for i, got in enumerate(run.result):
        x = np.empty(SHAPE)
        fill(i, x)
        want = np.empty(rows, np.float32)
        row_sums(x, want)
        assert got.dtype == np.float32 and got.shape == (rows,)
        assert support.same_bits(got, want * 2)


def test_a_return_stage_may_return_a_safely_castable_dtype():
    run = (conveyor.Pipeline(numbered, count=4, shape=(3,), dtype=np.float32)
           .stage(lambda x: x.astype(np.uint8), dtype=np.uint8)
           .stage(lambda x: x.astype(np.float32) / 2, dtype=np.float64)  # float32 -> float64 slot
           .run(lambda acc, x: acc + [(x.dtype, float(x[0]))], []))
    assert run.result == [(np.dtype(np.float64), i / 2) for i in range(4)]


# ---- results ---------------------------------------------------------------------------

def test_results_are_read_only_views_in_order():
    seen = []
    with the_pipeline().results() as results:
        for x in results:
            assert not x.flags.writeable
            with pytest.raises(ValueError):
                x[0, 0] = 1.0
            with pytest.raises(ValueError):
                x += 1
            with pytest.raises(ValueError):
                x.flags.writeable = True
            seen.append(support.frame_checksum(x))
    assert seen == serial_checksums()


def test_for_x_in_pipe():
    got = [support.frame_checksum(x) for x in the_pipeline()]
    assert got == serial_checksums()


def test_keeping_every_result_alive_raises_instead_of_hanging():
    kept = []
    with pytest.raises(conveyor.PipelineError) as caught:
        for x in the_pipeline(buffer=1):
            kept.append(x)  # views, not copies: the last stage runs out of slots
    assert not isinstance(caught.value, (conveyor.StageFailed, conveyor.StageDied))
    assert "np.array" in str(caught.value)
    assert 1 <= len(kept) < COUNT
    # What arrived stays readable and right after the run stopped.
    assert [support.frame_checksum(x) for x in kept] == serial_checksums(len(kept))


def test_keeping_copies_of_every_result_is_fine():
    kept = [np.array(x) for x in the_pipeline(buffer=1)]
    assert [support.frame_checksum(x) for x in kept] == serial_checksums()


@pytest.mark.parametrize("buffer", [1, 2, 3])
def test_holding_up_to_buffer_results_while_asking_for_the_next_is_fine(buffer):
    kept = collections.deque(maxlen=buffer)  # views of the last `buffer` results
    checksums = []
    for x in the_pipeline(buffer=buffer):
        kept.append(x)
        checksums.append(support.frame_checksum(x))
    assert checksums == serial_checksums()
    assert [support.frame_checksum(x) for x in kept] == serial_checksums()[-buffer:]


def test_after_the_end_results_may_be_kept():
    results = conveyor.Pipeline(numbered, count=3, shape=(2,), buffer=3).results()
    kept = list(results)  # fewer items than slots: all of them may stay alive
    assert results.stats is not None and results.stats["sink"].items == 3
    gc.collect()
    assert [x.tolist() for x in kept] == [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]
    assert next(results, "ended") == "ended"


def test_break_early_and_close_stop_the_run():
    before = child_pids()
    results = conveyor.Pipeline(numbered, count=10_000, shape=(2,)).stage(times3).results()
    pids = child_pids() - before
    assert len(pids) == 2
    for t, x in enumerate(results):
        if t == 3:
            break
    kept = x
    results.close()
    assert pids and not pids & child_pids()  # killed and reaped
    assert float(kept[0]) == 9.0          # what was received stays readable
    assert list(results) == []            # the run is over
    results.close()                       # twice is fine


def test_leaving_the_with_block_early_stops_the_run():
    before = child_pids()
    with conveyor.Pipeline(numbered, count=10_000, shape=(2,)).stage(times3).results() as results:
        pids = child_pids() - before
        next(results)
    assert pids and not pids & child_pids()


def test_dropping_an_unfinished_results_stops_the_run():
    before = child_pids()
    results = conveyor.Pipeline(numbered, count=10_000, shape=(2,)).stage(times3).results()
    pids = child_pids() - before
    next(results)
    del results
    gc.collect()
    assert pids and not pids & child_pids()


def test_a_pipeline_runs_again():
    pipe = the_pipeline()
    assert pipe.run(collect_checksums, []).result == pipe.run(collect_checksums, []).result \
        == serial_checksums()


def test_run_without_reduce_counts():
    run = conveyor.Pipeline(numbered, count=9, shape=(2,)).run()
    assert run.result is None and run.stats["sink"].items == 9


def test_run_may_override_start_and_buffer():
    # Lambdas cannot be spawned; the pipeline says spawn, the run says fork.
    pipe = (conveyor.Pipeline(lambda i, out: fill(i, out), count=COUNT, shape=SHAPE, buffer=3, start="spawn")
            .stage(square_into).stage(times3).stage(conveyor.kernel_stage(PLUS_ONE)))
    run = pipe.run(collect_checksums, [], buffer=1, start="fork")
    assert run.result == serial_checksums() and run.stats.start == "fork"


# ---- statistics ------------------------------------------------------------------------

def test_stats():
    pipe = the_pipeline(replicas=2)
    assert pipe.stage_names == ["source", "square_into", "times3", "f"]
    stats = pipe.run(collect_checksums, []).stats
    names = ["source", "square_into", "times3", "f", "sink"]
    assert [s.name for s in stats.stages] == names
    assert [s.items for s in stats.stages] == [COUNT] * 5
    assert [s.replicas for s in stats.stages] == [2, 2, 2, 2, 1]
    for s in stats.stages:
        assert 0.0 <= s.utilization <= 1.05, s
        assert s.busy_seconds >= 0 and s.input_wait_seconds >= 0 and s.output_wait_seconds >= 0
        assert s.items_per_second > 0
    assert stats.bottleneck in names
    assert stats.seconds > 0 and stats.shared_memory_bytes > 0 and stats.start == "fork"
    assert stats["times3"] is stats.stages[2]
    with pytest.raises(KeyError):
        stats["nope"]
    lines = str(stats).splitlines()
    for name in names:
        assert sum(line.split()[0] == name for line in lines) == 1, (name, str(stats))
    assert f"bottleneck: {stats.bottleneck}" in lines[-1]


def test_stage_names_default_and_declared():
    pipe = (conveyor.Pipeline(numbered, count=1, shape=(1,), name="src").stage(lambda x: x)
            .stage(times3, name="three").stage(conveyor.kernel_stage(PLUS_ONE, name="k"))
            .stage(conveyor.kernel_stage(PLUS_ONE)))
    assert pipe.stage_names == ["src", "stage1", "three", "k", "stage4"]
    assert [s.name for s in pipe.run().stats.stages] == pipe.stage_names + ["sink"]
    assert "src -> stage1 -> three -> k -> stage4" in repr(pipe)


def test_stage_returns_a_new_pipeline():
    base = conveyor.Pipeline(numbered, count=4, shape=(2,))
    longer = base.stage(times3)
    assert base.stage_names == ["source"] and longer.stage_names == ["source", "times3"]
    assert base.run(lambda acc, x: acc + [float(x[0])], []).result == [0.0, 1.0, 2.0, 3.0]


# ---- definition errors -----------------------------------------------------------------

def definition_error(make):
    children = child_pids()
    with pytest.raises(conveyor.PipelineDefinitionError) as caught:
        make()
    error = caught.value
    assert isinstance(error, ValueError) and isinstance(error, conveyor.PipelineError)
    assert isinstance(error, conveyor.ConveyorError)
    assert child_pids() == children
    return error


@pytest.mark.parametrize("buffer", [0, 1025, -1, 1.5, True, "3", None])
def test_bad_buffer(buffer):
    definition_error(lambda: conveyor.Pipeline(numbered, count=1, shape=(1,), buffer=buffer))
    pipe = conveyor.Pipeline(numbered, count=1, shape=(1,))
    definition_error(lambda: pipe.stage(times3, buffer=buffer if buffer is not None else 0))
    definition_error(lambda: pipe.run(buffer=buffer if buffer is not None else 0))


@pytest.mark.parametrize("replicas", [0, 65, -1, 1.5, True, "2", None])
def test_bad_replicas(replicas):
    definition_error(lambda: conveyor.Pipeline(numbered, count=1, shape=(1,), replicas=replicas))
    pipe = conveyor.Pipeline(numbered, count=1, shape=(1,))
    definition_error(lambda: pipe.stage(times3, replicas=replicas))
    definition_error(lambda: pipe.stage(conveyor.kernel_stage(PLUS_ONE), replicas=replicas))


@pytest.mark.parametrize("start", ["forkserver", "Fork", "", None, 1])
def test_bad_start(start):
    definition_error(lambda: conveyor.Pipeline(numbered, count=1, shape=(1,), start=start))
    pipe = conveyor.Pipeline(numbered, count=1, shape=(1,))
    if start is not None:  # None means the pipeline's own
        definition_error(lambda: pipe.run(start=start))
        definition_error(lambda: pipe.results(start=start))


@pytest.mark.parametrize("shape", [(-1,), (2, -3), "ab", 1.5, (1.0, 2), (1, 2, 3, 4, 5), (True,), {"a": 1}])
def test_bad_shape(shape):
    definition_error(lambda: conveyor.Pipeline(numbered, count=1, shape=shape))
    pipe = conveyor.Pipeline(numbered, count=1, shape=(1,))
    definition_error(lambda: pipe.stage(times3, shape=shape))


@pytest.mark.parametrize("dtype", [np.int32, np.complex128, ">f8", "nonsense", object, np.float16])
def test_bad_dtype(dtype):
    definition_error(lambda: conveyor.Pipeline(numbered, count=1, shape=(1,), dtype=dtype))
    pipe = conveyor.Pipeline(numbered, count=1, shape=(1,))
    definition_error(lambda: pipe.stage(times3, dtype=dtype))


def test_a_generator_stage_has_one_replica():
    pipe = conveyor.Pipeline(numbered, count=1, shape=(1,))
    error = definition_error(lambda: pipe.stage(doubled_stream, replicas=2))
    assert "replicas" in str(error)
    assert pipe.stage(doubled_stream, replicas=1).stage_names == ["source", "doubled_stream"]


def test_a_ufunc_of_two_inputs_is_not_a_stage():
    pipe = conveyor.Pipeline(numbered, count=1, shape=(2,))
    error = definition_error(lambda: pipe.stage(np.add))
    assert "ufunc" in str(error)
    assert pipe.stage(np.negative).stage_names == ["source", "negative"]


def test_bad_kernel_stages():
    pipe = conveyor.Pipeline(numbered, count=1, shape=(2,))
    definition_error(lambda: pipe.stage(conveyor.kernel_stage([("nope",)])))
    definition_error(lambda: pipe.stage(conveyor.kernel_stage([("add",)])))
    definition_error(lambda: conveyor.kernel_stage("square"))
    definition_error(lambda: pipe.stage(conveyor.kernel_stage(PLUS_ONE), shape=(3,)))
    definition_error(lambda: pipe.stage(conveyor.kernel_stage(PLUS_ONE), dtype=np.float32))
    bytes_pipe = conveyor.Pipeline(numbered, count=1, shape=(2,), dtype=np.uint8)
    definition_error(lambda: bytes_pipe.stage(conveyor.kernel_stage(PLUS_ONE)))


def test_bad_stages_and_sources():
    pipe = conveyor.Pipeline(numbered, count=1, shape=(2,))
    definition_error(lambda: pipe.stage(42))
    definition_error(lambda: pipe.stage("times3"))
    definition_error(lambda: conveyor.Pipeline(42, count=1, shape=(1,)))
    definition_error(lambda: conveyor.Pipeline(numbered, count=1))             # per item, no shape
    definition_error(lambda: conveyor.Pipeline(numbered, shape=(1,)))          # per item, no count
    definition_error(lambda: conveyor.Pipeline(numbered, count=-1, shape=(1,)))
    definition_error(lambda: conveyor.Pipeline(numbered, count=1.0, shape=(1,)))
    definition_error(lambda: conveyor.Pipeline(gen_items, count=3, shape=SHAPE))  # count, iterable
    definition_error(lambda: conveyor.Pipeline(gen_items, shape=SHAPE, replicas=2))
    definition_error(lambda: conveyor.Pipeline(iter([])))                      # empty, no shape
    definition_error(lambda: conveyor.Pipeline(iter([[1.0, 2.0]])))            # not an array


def test_a_source_without_shape_needs_fork():
    definition_error(lambda: conveyor.Pipeline(gen_items, start="spawn"))
    pipe = conveyor.Pipeline(gen_items(), start="fork")
    definition_error(lambda: pipe.run(start="spawn"))


@pytest.mark.parametrize("where", ["stage", "source"])
def test_a_lambda_under_spawn_is_a_definition_error_and_leaves_nothing(where):
    if where == "stage":
        pipe = conveyor.Pipeline(fill, count=COUNT, shape=SHAPE, start="spawn").stage(lambda x: x * 3)
    else:
        pipe = conveyor.Pipeline(lambda i, out: fill(i, out), count=COUNT, shape=SHAPE, start="spawn")
    before = Snapshot()
    error = definition_error(lambda: pipe.run(collect_checksums, []))
    assert "module level" in str(error) or "fork" in str(error)
    gc.collect()
    before.check("a spawn that could not pickle its stage")


def test_definition_errors_come_before_anything_starts():
    before = Snapshot()
    with pytest.raises(conveyor.PipelineDefinitionError):
        conveyor.Pipeline(numbered, count=1, shape=(2,)).stage(times3).stage(doubled_stream, replicas=3)
    before.check("a bad definition")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
