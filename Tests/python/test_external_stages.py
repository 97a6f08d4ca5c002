"""External stages (conveyor.h section 10): programs as stages of the Python pipeline
(Pipeline.external), and conveyor.serve_stage, the program side in Python.

The programs: the C kernel_stage (Tests/StagePrograms/kernel_stage.c, found by
CONVEYOR_KERNEL_STAGE or in this checkout's builds; its tests are skipped without it),
stage_programs/pystage.py (Python, on conveyor.serve_stage), and the Swift
conveyor-swift-stage (Tests/SwiftStage, CONVEYOR_SWIFT_STAGE; skipped when unset).

What is checked: the seed pipeline (test_pipeline.py's: fill -> square -> times 3 -> add
1) with its "times 3" done by a program gives the serial checksums; every way a program
can end early is reported with the stage, the item and the program's own line (it
raised or failed, crashed, exited, refused the declared shapes and dtypes, broke a rule);
a hanging program is stopped with the run (close(), an exception in the loop, Ctrl-C);
serve_stage driven by hand through a contract made here, its refusals and a malformed
CONVEYOR_STAGE. After every test nothing is left: no child process (zombies included),
no process anywhere that carries the test's mark in its environment (a program orphaned
by a killed worker would), no /dev/shm name.
"""
import support  # first: skips this module under `unittest discover` without the package

import gc
import itertools
import multiprocessing.resource_tracker
import os
import re
import signal
import sys

import numpy as np
import pytest

import conveyor
from conveyor._pipeline.stages import EXTERNAL
from pipeline_scripts.common import child_pids, hang_guard, new_shm_names, process_state, shm_names
from pipeline_scripts.stages import COUNT, PLUS_ONE, SHAPE, fill, serial_item, square_into

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PYSTAGE = os.path.join(HERE, "stage_programs", "pystage.py")
CTRL_C = os.path.join(HERE, "stage_programs", "ctrl_c_external.py")
BAD_ITEM = 7
SMALL = (3, 4)


def _kernel_stage():
    """The C stage program: $CONVEYOR_KERNEL_STAGE, else one of this checkout's builds
    (meson's kernel_stage as scripts/test-python sets it up, SwiftPM's product)."""
    path = os.environ.get("CONVEYOR_KERNEL_STAGE")
    if path:
        return path
    for candidate in (".build-python/meson/kernel_stage", "build/kernel_stage",
                      ".build/debug/conveyor-kernel-stage", ".build/release/conveyor-kernel-stage"):
        full = os.path.join(ROOT, candidate)
        if os.access(full, os.X_OK):
            return full
    return None


KERNEL_STAGE = _kernel_stage()
SWIFT_STAGE = os.environ.get("CONVEYOR_SWIFT_STAGE")
needs_kernel_stage = pytest.mark.skipif(
    KERNEL_STAGE is None, reason="no C stage program: set CONVEYOR_KERNEL_STAGE, or build it "
    "(meson compile -C .build-python/meson kernel_stage, or swift build --product "
    "conveyor-kernel-stage)")
_marks = itertools.count()


def _marked(mark):
    """Pids of processes (other than this one) whose environment carries `mark`; not
    multiprocessing's resource tracker, which the first spawn starts and which lives as
    long as this process."""
    found = set()
    needle = f"CONVEYOR_TEST_MARK={mark}".encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.add(int(pid))
        except OSError:  # ended meanwhile, or not ours to read
            continue
    found.discard(getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None))
    return found


@pytest.fixture(autouse=True)
def leaves_nothing(request, monkeypatch):
    """No test may hang or leave a child process, a process carrying its mark (every
    process it starts inherits CONVEYOR_TEST_MARK, programs included), or a /dev/shm
    name (checked when it passed: a failed test's traceback keeps its run alive)."""
    mark = f"{os.getpid()}-{next(_marks)}"
    monkeypatch.setenv("CONVEYOR_TEST_MARK", mark)
    children, shm = child_pids(), shm_names()
    with hang_guard():
        yield
    if getattr(request.node, "conveyor_call_failed", False):
        return
    gc.collect()
    left = child_pids() - children
    assert not left, f"the test left child processes {sorted(left)}"
    marked = _marked(mark)
    assert not marked, f"the test left processes {sorted(marked)} ({[process_state(p) for p in marked]})"
    assert not new_shm_names(shm), f"the test left /dev/shm names {sorted(new_shm_names(shm))}"


# ---- helpers ---------------------------------------------------------------------------

def serial_checksums(count=COUNT):
    return [support.frame_checksum(serial_item(i)) for i in range(count)]


def collect_checksums(acc, x):
    acc.append(support.frame_checksum(x))
    return acc


def seed_pipeline(command, replicas=1, buffer=3, start="fork", name="g"):
    """test_pipeline.py's pipeline with its times-3 stage served by `command`."""
    return (conveyor.Pipeline(fill, count=COUNT, shape=SHAPE, replicas=replicas, buffer=buffer, start=start)
            .stage(square_into, replicas=replicas)
            .external(command, name=name, replicas=replicas)
            .stage(conveyor.kernel_stage(PLUS_ONE), name="f", replicas=replicas))


def numbered(i, out):
    """Item i is full of i: a program flagged "at N" knows the item it has."""
    out[...] = i


def numbered_through(command, replicas=1, name=None):
    return conveyor.Pipeline(numbered, count=20, shape=SMALL).external(command, name=name, replicas=replicas)


def python_stage(*flags):
    return [sys.executable, PYSTAGE, *flags]


def c_stage(*args):
    return [KERNEL_STAGE, *args]


def failing(pipe, error_type):
    """Runs pipe, expecting error_type; no stage process may be left when it arrives."""
    children = child_pids()
    with pytest.raises(error_type) as caught:
        pipe.run()
    assert child_pids() == children, "stage processes still there when the error arrived"
    error = caught.value
    assert isinstance(error, conveyor.PipelineError) and not isinstance(error, conveyor.PipelineDefinitionError)
    return error


def assert_gone(pids):
    """The programs `pids` are gone, and so is what they registered in /dev/shm (libomp's
    __KMP_REGISTERED_LIB_<pid>_<uid>, left by a program killed by a signal: its worker
    removes it)."""
    for pid in pids:
        assert process_state(pid) is None, f"program {pid} is still there ({process_state(pid)})"
        left = [n for n in os.listdir("/dev/shm") if n.startswith(f"__KMP_REGISTERED_LIB_{pid}_")]
        assert not left, f"program {pid} left {left} in /dev/shm"


def grandchildren():
    """The processes of this one's children: the programs of external stages."""
    return {p for c in child_pids() for p in child_pids(c)}


# ---- the seed pipeline -----------------------------------------------------------------

@needs_kernel_stage
@pytest.mark.parametrize("replicas,buffer", [(1, 3), (2, 1), (3, 2)])
def test_a_c_stage_program_gives_the_serial_checksums(replicas, buffer):
    run = seed_pipeline(c_stage("mul", "3"), replicas, buffer).run(collect_checksums, [])
    assert run.result == serial_checksums()
    g = next(s for s in run.stats.stages if s.name == "g")
    assert g.items == COUNT and g.replicas == replicas


@needs_kernel_stage
def test_a_program_after_a_kernel_stage_reads_the_slots_it_worked_in():
    """The kernel stage squares in place in the source's slots; the program reads them
    there (its in_pool is the source's pool) and writes its own."""
    pipe = (conveyor.Pipeline(fill, count=COUNT, shape=SHAPE)
            .stage(conveyor.kernel_stage([("square",)]), name="h")
            .external(c_stage("mul", "3"), name="g")
            .stage(conveyor.kernel_stage(PLUS_ONE), name="f"))
    assert pipe.run(collect_checksums, []).result == serial_checksums()


@pytest.mark.parametrize("form", ["into", "return"])
def test_a_python_stage_program_gives_the_serial_checksums(form):
    run = seed_pipeline(python_stage("--form", form)).run(collect_checksums, [])
    assert run.result == serial_checksums()


def test_a_python_stage_program_replicated_under_spawn():
    run = seed_pipeline(python_stage(), replicas=2, start="spawn").run(collect_checksums, [])
    assert run.result == serial_checksums()
    assert run.stats.start == "spawn"


@needs_kernel_stage
def test_c_and_python_programs_in_one_pipeline():
    pipe = (conveyor.Pipeline(fill, count=COUNT, shape=SHAPE)
            .external(c_stage("square"), name="h")
            .external(python_stage("--form", "return"), name="g")
            .stage(conveyor.kernel_stage(PLUS_ONE), name="f"))
    assert pipe.stage_names == ["source", "h", "g", "f"]
    assert pipe.run(collect_checksums, []).result == serial_checksums()


needs_swift_stage = pytest.mark.skipif(
    not SWIFT_STAGE, reason="CONVEYOR_SWIFT_STAGE is not set (the Swift stage program: swift "
    "build --product conveyor-swift-stage; scripts/test-python sets it)")


@needs_swift_stage
def test_a_swift_stage_program_gives_the_serial_checksums():
    # Tests/SwiftStage/main.swift: conveyor-swift-stage OP [A] [--fail-at N], as kernel_stage.
    run = seed_pipeline([SWIFT_STAGE, "mul", "3"], replicas=2).run(collect_checksums, [])
    assert run.result == serial_checksums()


@needs_swift_stage
def test_a_failing_swift_program_reports_its_error_with_the_item():
    pipe = numbered_through([SWIFT_STAGE, "copy", "--fail-at", str(BAD_ITEM)], name="swift")
    error = failing(pipe, conveyor.StageFailed)
    assert (error.stage, error.item, error.exception_type) == ("swift", BAD_ITEM, "ProgramFailed")
    assert "asked to fail" in str(error)


@needs_kernel_stage
def test_the_items_arrive_in_place_in_the_stages_own_pool():
    """The program writes into this stage's slots: the sink reads the external stage's
    pool in place (its arrays are views of that pool's slots, no copy)."""
    pipe = conveyor.Pipeline(numbered, count=5, shape=SMALL).external(c_stage("add", "0.5"))
    with pipe.results() as results:
        for t, x in enumerate(results):
            assert np.all(x == t + 0.5)
            assert not x.flags.writeable
            assert isinstance(x.base, conveyor._core.SlotBuffer)
            del x


# ---- failures: the program reports one ----------------------------------------------------

def test_a_python_program_that_raises_fails_with_stage_item_and_message():
    error = failing(numbered_through(python_stage("--raise-at", str(BAD_ITEM))), conveyor.StageFailed)
    assert (error.stage, error.item, error.replica) == ("pystage", BAD_ITEM, 0)
    assert error.exception_type == "ProgramFailed"
    assert f"ValueError: bad item {BAD_ITEM}" in str(error)
    assert f"stage 'pystage' failed on item {BAD_ITEM}" in str(error)
    assert "exited with status 1" in error.remote_traceback


def test_a_plain_serve_stage_call_exits_with_status_1_too():
    error = failing(numbered_through(python_stage("--raise-at", "3", "--plain")), conveyor.StageFailed)
    assert (error.item, error.exception_type) == (3, "ProgramFailed")
    assert "ValueError: bad item 3" in str(error)


@needs_kernel_stage
def test_a_c_program_that_fails_reports_its_line():
    pipe = numbered_through(c_stage("copy", "--fail-at", str(BAD_ITEM)))
    error = failing(pipe, conveyor.StageFailed)
    assert (error.stage, error.item) == (os.path.basename(KERNEL_STAGE), BAD_ITEM)
    assert f"asked to fail at item {BAD_ITEM}" in str(error)


@needs_kernel_stage
def test_a_replicated_program_failing_names_its_replica():
    pipe = numbered_through(c_stage("copy", "--fail-at", str(BAD_ITEM)), replicas=3, name="k")
    error = failing(pipe, conveyor.StageFailed)
    assert (error.stage, error.item, error.replica) == ("k", BAD_ITEM, BAD_ITEM % 3)
    assert "(replica 1)" in str(error)


def test_a_python_program_keeping_a_view_fails_the_item():
    error = failing(numbered_through(python_stage("--keep-at", "5")), conveyor.StageFailed)
    assert error.item == 5
    assert "kept a reference to its input array" in str(error)


def test_a_python_program_returning_none_fails_the_item():
    error = failing(numbered_through(python_stage("--form", "none")), conveyor.StageFailed)
    assert error.item == 0
    assert "StageRuleError" in str(error) and "returned None for item 0" in str(error)


# ---- failures: the program dies ----------------------------------------------------------

@needs_kernel_stage
def test_a_crashing_program_is_a_stage_death_with_its_signal():
    pipe = numbered_through(c_stage("copy", "--crash-at", str(BAD_ITEM)), name="k")
    error = failing(pipe, conveyor.StageDied)
    assert (error.stage, error.item, error.signal, error.exitcode) == ("k", BAD_ITEM, "SIGSEGV", -signal.SIGSEGV)
    assert f"killed by SIGSEGV on item {BAD_ITEM}" in str(error)
    assert_gone([int(re.search(r"\(pid (\d+)\)", str(error)).group(1))])


@needs_kernel_stage
def test_a_program_exiting_before_the_end_is_reported_with_the_item():
    error = failing(numbered_through(c_stage("copy", "--exit-at", str(BAD_ITEM))), conveyor.StageDied)
    assert (error.item, error.signal, error.exitcode) == (BAD_ITEM, None, 0)
    assert f"exited with status 0 on item {BAD_ITEM}, before the end of its stream" in str(error)


# ---- failures: refused declarations --------------------------------------------------------

@needs_kernel_stage
def test_a_c_program_refuses_a_dtype_it_cannot_serve():
    error = failing(numbered_through(c_stage("copy", "--expect", "f32")), conveyor.StageFailed)
    assert error.exception_type == "ContractRefused" and error.item is None
    assert "refuses its input: the pipeline declares f64 3x4, the program accepts f32" in str(error)
    assert "exited with status 2" in str(error)


def test_a_python_program_refuses_an_output_it_cannot_serve():
    error = failing(numbered_through(python_stage("--expect-output", "float32")), conveyor.StageFailed)
    assert error.exception_type == "ContractRefused"
    assert "refuses its output: the pipeline declares f64 3x4, the program accepts f32" in str(error)


def test_a_python_program_refuses_an_input_shape_it_cannot_serve():
    error = failing(numbered_through(python_stage("--expect-input-shape", "5,5")), conveyor.StageFailed)
    assert "refuses its input: the pipeline declares f64 3x4, the program accepts any type 5x5" in str(error)


def test_a_declared_output_dtype_and_shape_reach_the_program():
    """The program's output is what the pipeline declares (here float32): g(x, out) casts
    into it; g(x) returning float64 does not cast safely and fails the item."""
    pipe = conveyor.Pipeline(numbered, count=4, shape=SMALL).external(
        python_stage("--expect-output", "float32"), dtype=np.float32)
    values = pipe.run(lambda acc, x: acc + [(x.dtype, x.shape, float(x.flat[0]))], []).result
    assert values == [(np.float32, SMALL, 3.0 * t) for t in range(4)]
    pipe = conveyor.Pipeline(numbered, count=4, shape=SMALL).external(
        python_stage("--form", "return"), shape=(2, 6))
    error = failing(pipe, conveyor.StageFailed)
    assert error.item == 0
    assert "is float64 (3, 4), but its slots hold float64 (2, 6)" in str(error)


# ---- a program that hangs is stopped with the run -------------------------------------------

HANG_AT = 5


def hanging(flags=None):
    command = c_stage("copy", "--hang-at", str(HANG_AT)) if flags is None else python_stage(*flags)
    return conveyor.Pipeline(numbered, count=20, shape=SMALL).external(command, name="hangs")


@pytest.mark.parametrize("program", ["c", "python"])
def test_closing_the_results_stops_a_hanging_program(program):
    if program == "c" and KERNEL_STAGE is None:
        pytest.skip("no C stage program")
    pipe = hanging(None if program == "c" else ["--hang-at", str(HANG_AT)])
    factor = 1 if program == "c" else 3  # kernel_stage copy, pystage times 3
    results = pipe.results()
    for t in range(HANG_AT):
        assert int(next(results).flat[0]) == factor * t  # served: the program runs
    programs = grandchildren()
    assert len(programs) == 1
    results.close()  # item HANG_AT never comes: the program hangs on it
    assert_gone(programs)


@needs_kernel_stage
def test_an_exception_in_the_loop_stops_a_hanging_program():
    seen = []

    def reduce(acc, x):
        seen.append(int(x.flat[0]))
        if len(seen) == HANG_AT:
            seen.append(grandchildren())
            raise KeyboardInterrupt  # what Ctrl-C raises in the loop
        return acc

    with pytest.raises(KeyboardInterrupt):
        hanging().run(reduce, None)
    programs = seen[-1]
    assert len(programs) == 1
    assert_gone(programs)


def test_a_failure_elsewhere_stops_the_programs():
    """A Python stage fails while the external stage before it is serving: the run stops,
    and the program (killed by its worker) is gone with it."""
    def bad(x):
        if int(x.flat[0]) == 3 * BAD_ITEM:  # the program multiplies by 3
            raise ZeroDivisionError("downstream")
        return x

    pipe = numbered_through(python_stage()).stage(bad)
    error = failing(pipe, conveyor.StageFailed)
    assert (error.stage, error.item, error.exception_type) == ("bad", BAD_ITEM, "ZeroDivisionError")


@pytest.mark.parametrize("program", ["c", "python"])
@pytest.mark.parametrize("to", ["the script", "the process group"])
def test_ctrl_c_stops_a_hanging_program(children, to, program):
    if program == "c" and KERNEL_STAGE is None:
        pytest.skip("no C stage program")
    shm = shm_names()
    command = c_stage("copy", "--hang-at", "3") if program == "c" else python_stage("--hang-at", "3")
    proc = children.popen([sys.executable, CTRL_C, *command], start_new_session=True)
    line = support.read_line(proc.stdout, "the script's 'started'")
    assert line.startswith("started "), (line, proc.stderr.read() if proc.poll() is not None else "")
    words = line.split()[1:]
    workers = [int(p) for p in words[:words.index("programs")]]
    programs = [int(p) for p in words[words.index("programs") + 1:]]
    assert len(workers) == 2 and len(programs) == 1
    if to == "the script":
        os.kill(proc.pid, signal.SIGINT)
    else:  # a terminal's Ctrl-C: the program gets it too, and ignores it (the run stops it)
        os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=support.LIMIT)  # a safety net only
    assert proc.returncode == -signal.SIGINT, (proc.returncode, out, err)
    assert err.rstrip().splitlines()[-1] == "KeyboardInterrupt", err
    assert out.splitlines() == ["children"], f"the script still had children: {out!r}"
    assert_gone(workers + programs)
    assert not new_shm_names(shm, workers + programs + [proc.pid])


# ---- definitions ----------------------------------------------------------------------------

def test_external_definitions_are_checked_at_once():
    source = conveyor.Pipeline(numbered, count=3, shape=SMALL)
    for command in ("kernel_stage", [], [1, 2], None):
        with pytest.raises(conveyor.PipelineDefinitionError, match="list of str"):
            source.external(command)
    with pytest.raises(conveyor.PipelineDefinitionError, match="not found"):
        source.external(["/nonexistent/conveyor-stage-program"])
    scalar = conveyor.Pipeline(numbered, count=3, shape=())
    with pytest.raises(conveyor.PipelineDefinitionError, match="1 to 4 extents"):
        scalar.external(python_stage())
    with pytest.raises(conveyor.PipelineDefinitionError, match="replicas"):
        source.external(python_stage(), replicas=0)
    pipe = source.external(python_stage(), shape=(6, 2), dtype=np.float32)
    stage = pipe._stages[-1]
    assert (stage.kind, stage.name, stage.shape, stage.dtype) == (EXTERNAL, "pystage", (6, 2), np.float32)
    assert source.external([sys.executable, PYSTAGE], name="mine").stage_names[-1] == "mine"


# ---- serve_stage driven by hand ---------------------------------------------------------------

class HandContract:
    """The pipeline's side of one stage, made here by hand (conveyor.h section 10): an
    input pool, an output pool, jobs and done channels and a report pipe, and the
    CONVEYOR_STAGE line that names them."""

    def __init__(self, shape=(2, 3), out_shape=None, dtype="f64", out_dtype=None):
        self.shape = shape
        self.out_shape = out_shape or shape
        nbytes = 8 * int(np.prod(shape)) * 4
        self.in_pool = conveyor._core.Pool(2, nbytes)
        self.out_pool = conveyor._core.Pool(2, nbytes)
        self.jobs_channel = conveyor._core.Channel(1, 2)
        self.done_channel = conveyor._core.Channel(1, 1)
        self.jobs = self.jobs_channel.open(conveyor._core.CHANNEL_SENDER, 0)
        self.done = self.done_channel.open(conveyor._core.CHANNEL_RECEIVER, 0)
        self.report_r, self.report_w = os.pipe()
        fds = (self.in_pool.fd, self.out_pool.fd, self.jobs_channel.fd, self.done_channel.fd, self.report_w)
        self.fds = fds
        text = "x".join(str(e) for e in shape)
        out_text = "x".join(str(e) for e in self.out_shape)
        self.line = (f"conveyor-stage/1 in={dtype}:{text} out={out_dtype or dtype}:{out_text} "
                     f"in_pool={fds[0]} out_pool={fds[1]} jobs={fds[2]} done={fds[3]} "
                     f"report={fds[4]} parent={os.getpid()} replica=0 name=by hand")

    def start(self, children, flags=(), line=None):
        env = dict(os.environ, CONVEYOR_STAGE=self.line if line is None else line)
        proc = children.popen(python_stage(*flags), env=env, pass_fds=self.fds)
        os.close(self.report_w)
        self.report_w = None
        return proc

    def serve(self, item, slot=0):
        """Sends item (its input written here) to the program; returns its output."""
        x = self.in_pool.array(slot, conveyor._core.DTYPE_F64, self.shape, True)
        x[...] = np.arange(x.size).reshape(self.shape) + item
        del x
        self.in_pool.describe(slot, conveyor._core.DTYPE_F64, self.shape, item)
        self.jobs.send(item << 24 | slot)
        self.jobs.send(item << 24 | slot)
        word = self.done.receive(0, support.LIMIT)
        assert word == item << 24 | slot
        assert self.out_pool.frame(slot) == (conveyor._core.DTYPE_F64, self.out_shape, item)
        return np.array(self.out_pool.array(slot, conveyor._core.DTYPE_F64, self.out_shape))

    def report(self):
        """The program's report line (read after it ended)."""
        data = b""
        while chunk := os.read(self.report_r, 4096):
            data += chunk
        return data.decode()

    def close(self):
        for fd in (self.report_r, self.report_w):
            if fd is not None:
                os.close(fd)
        for end in (self.jobs, self.done):
            end.destroy()
        for thing in (self.jobs_channel, self.done_channel, self.in_pool, self.out_pool):
            thing.close()


@pytest.fixture
def contract():
    made = []

    def make(**kwargs):
        made.append(HandContract(**kwargs))
        return made[-1]

    yield make
    for c in made:
        c.close()


def finished(proc):
    out, err = proc.communicate(timeout=support.LIMIT)
    return proc.returncode, err


def test_serve_stage_serves_items_and_exits_0_at_end_of_stream(children, contract):
    c = contract()
    proc = c.start(children)
    for item in range(3):
        out = c.serve(item, slot=item % 2)
        assert np.array_equal(out, 3 * (np.arange(6).reshape(2, 3) + item))
    c.jobs.close()
    code, err = finished(proc)
    assert code == 0, err
    assert c.report() == ""


def test_serve_stage_reports_a_raising_function_and_exits_1(children, contract):
    c = contract()
    proc = c.start(children, ["--raise-at", "1"])
    c.serve(0)
    item = 1
    c.in_pool.array(0, conveyor._core.DTYPE_F64, c.shape, True)[...] = item
    c.in_pool.describe(0, conveyor._core.DTYPE_F64, c.shape, item)
    c.jobs.send(item << 24)
    c.jobs.send(item << 24)
    code, err = finished(proc)
    assert code == 1
    assert c.report() == "stage 'by hand' item 1: ValueError: bad item 1\n"
    assert "Traceback" in err and 'raise ValueError(f"bad item {item}")' in err


@pytest.mark.parametrize("plain", [False, True])
def test_serve_stage_refuses_a_contract_with_a_message_naming_both(children, contract, plain):
    c = contract()
    proc = c.start(children, ["--expect-output", "float32"] + (["--plain"] if plain else []))
    code, err = finished(proc)
    assert code == 2, err
    assert c.report() == ("stage 'by hand' refuses its output: the pipeline declares f64 2x3, "
                          "the program accepts f32 (any shape)\n")
    assert "Traceback" not in err  # a StageProgramError leaves as a SystemExit: no second report


@pytest.mark.parametrize("line,why", [
    ("conveyor-stage/1 in=f64:2x3 bogus", "malformed CONVEYOR_STAGE"),
    ("conveyor-stage/9 in=f64:2x3", "protocol"),
    (None, "CONVEYOR_STAGE is not set"),
])
def test_serve_stage_exits_2_for_a_malformed_contract(children, line, why):
    env = dict(os.environ)
    env.pop("CONVEYOR_STAGE", None)
    if line is not None:
        env["CONVEYOR_STAGE"] = line
    proc = children.popen(python_stage(), env=env)
    code, err = finished(proc)
    assert code == 2, err
    assert why in err  # no report fd: the line goes to stderr


def test_ctrl_c_ends_a_serving_python_program(children, contract):
    c = contract()
    proc = c.start(children)
    c.serve(0)  # it is serving, waiting for the next job in the C core
    os.kill(proc.pid, signal.SIGINT)
    code, err = finished(proc)
    assert code == -signal.SIGINT, (code, err)


def test_serve_stage_in_this_process_without_a_contract(monkeypatch, capfd):
    monkeypatch.delenv("CONVEYOR_STAGE", raising=False)
    with pytest.raises(conveyor.StageProgramError) as caught:
        conveyor.serve_stage(lambda x, out: None)
    error = caught.value
    assert isinstance(error, SystemExit) and isinstance(error, conveyor.ConveyorError)
    assert error.code == 2 and error.status == conveyor.InvalidArgument.status
    assert error.name == conveyor.InvalidArgument.name
    assert "CONVEYOR_STAGE is not set" in capfd.readouterr().err


def test_serve_stage_checks_its_arguments_at_once():
    def generator(xs):
        yield from xs

    for fn, kwargs, match in [
        (generator, {}, "generator"),
        (np.add, {}, "ufunc of one input"),
        (42, {}, "a function"),
        (lambda x: x, {"input": (np.int32, None)}, "not supported"),
        (lambda x: x, {"output": (None, (0, 3))}, "ints >= 1"),
        (lambda x: x, {"output": np.float32}, r"\(dtype, shape\)"),
    ]:
        with pytest.raises(conveyor.PipelineDefinitionError, match=match):
            conveyor.serve_stage(fn, **kwargs)


def test_the_package_exports_serve_stage():
    assert conveyor.serve_stage is conveyor._pipeline.serve_stage
    assert conveyor.StageProgramError is conveyor._pipeline.StageProgramError
    for name in ("serve_stage", "StageProgramError"):
        assert name in conveyor.__all__
        assert getattr(conveyor, name).__doc__
    assert conveyor.Pipeline.external.__doc__
