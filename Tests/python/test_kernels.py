"""The Python kernels give the same bits as the C library's: Tests/CrossLang/kernel_bits
(built by scripts/test-python against the Meson-installed libconveyor) prints the C
results of fill_uniform, a fused program and a sum, and each must equal what
conveyor.fill_uniform / apply / sum return, at the same thread count (1, and 2 when the
package is built with OpenMP)."""
import support  # first: skips this module under `unittest discover` without the package

import struct
import sys
import threading
import time
import subprocess

import numpy as np
import pytest

import conveyor
from support import LIMIT

# Every op alone, in both scalar and array form where it has both (x and y are uniform in
# [0, 1), so min and max against 0.5, or 2x against y, go both ways), then chains.
PROGRAMS = {
    "copy": [("copy",)], "square": [("square",)], "affine": [("affine", 2.5, -0.75)],
    "add a": [("add", 0.375)], "sub a": [("sub", 0.3)], "rsub a": [("rsub", 0.3)],
    "mul a": [("mul", 3.0)], "div a": [("div", 7.0)], "rdiv a": [("rdiv", 7.0)],
    "min a": [("min", 0.5)], "max a": [("max", 0.5)],
    "add y": [("add", "y")], "sub y": [("sub", "y")], "mul y": [("mul", "y")],
    "div y": [("div", "y")], "min y": [("mul", 2.0), ("min", "y")],
    "max y": [("mul", 2.0), ("max", "y")],
    "square-mul-add": [("square",), ("mul", 3.0), ("add", 1.0)],
    "scalars": [("affine", 2.5, -0.75), ("rsub", 1.0), ("rdiv", 3.0), ("min", 0.9),
                ("max", 0.1), ("sub", 0.3), ("div", 7.0), ("copy",)],
    "arrays": [("add", "y"), ("mul", "y"), ("sub", "y"), ("div", "y"), ("min", "y"), ("max", "y")],
}
# Sizes: empty, one, a vector tail, several strips, and above the parallel threshold (2 MiB).
SIZES = {np.float64: [0, 1, 37, 4099, 300_001], np.float32: [0, 1, 37, 4099, 600_001]}
SEEDS = [(2016, 3, 0), (2**64 - 1, 2**63 + 5, 12_345)]


def c_result(threads, dtype, n, kind, seed, stream, first, program=()):
    args = [support.program("CONVEYOR_TEST_KERNEL_BITS"), str(threads),
            "f64" if dtype == np.float64 else "f32", str(n), kind, str(seed), str(stream), str(first)]
    for op in program:
        name, operands = op[0], op[1:]
        args.append(":".join([name] + ["@y" if a == "y" else repr(float(a)) for a in operands]))
    done = subprocess.run(args, capture_output=True, timeout=LIMIT)
    assert done.returncode == 0, (args, done.returncode, done.stderr.decode())
    return done.stdout


def py_inputs(dtype, n, seed, stream, first):
    x, y = np.empty(n, dtype=dtype), np.empty(n, dtype=dtype)
    conveyor.fill_uniform(x, seed, stream, first=first)
    conveyor.fill_uniform(y, (seed + 1) % 2**64, stream, first=first)
    return x, y


def with_operand(program, y):
    return [tuple(y if a == "y" else a for a in op) for op in program]


CASES = [(dtype, n) for dtype in (np.float64, np.float32) for n in SIZES[dtype]]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype,n", CASES, ids=[f"{np.dtype(d).name}-{n}" for d, n in CASES])
def test_kernels_give_the_c_librarys_bits(threads_restored, threads, dtype, n):
    if threads > 1 and not conveyor.has_openmp():
        with pytest.raises(conveyor.Unsupported):
            conveyor.set_threads(threads)
        pytest.skip("the package is serial (has_openmp() is False): one thread only")
    conveyor.set_threads(threads)
    assert conveyor.get_threads() == threads
    mismatches = []
    for seed, stream, first in SEEDS:
        where = (n, seed, stream, first)
        x, y = py_inputs(dtype, n, seed, stream, first)
        if x.tobytes() != c_result(threads, dtype, n, "fill", seed, stream, first):
            mismatches.append(("fill_uniform", where))
        for name, program in PROGRAMS.items():
            expected = c_result(threads, dtype, n, "program", seed, stream, first, program)
            out = conveyor.apply(x, with_operand(program, y))
            if out.dtype != dtype or out.shape != x.shape or out.tobytes() != expected:
                mismatches.append(("apply " + name, where))
            given = np.empty_like(x)
            if conveyor.apply(x, with_operand(program, y), out=given) is not given:
                mismatches.append(("apply out= does not return out", where))
            if given.tobytes() != expected:
                mismatches.append(("apply out= " + name, where))
            in_place = x.copy()
            conveyor.apply(in_place, with_operand(program, y), out=in_place)
            if in_place.tobytes() != expected:
                mismatches.append(("apply in place " + name, where))
        expected_sum = c_result(threads, dtype, n, "sum", seed, stream, first)
        if struct.pack("d", conveyor.sum(x)) != expected_sum:
            mismatches.append(("sum", where))
        transformed = conveyor.apply(x, PROGRAMS["square-mul-add"])
        expected_sum = c_result(threads, dtype, n, "sum", seed, stream, first, PROGRAMS["square-mul-add"])
        if struct.pack("d", conveyor.sum(transformed)) != expected_sum:
            mismatches.append(("sum after apply", where))
    assert mismatches == []


def test_the_kernels_accept_any_c_contiguous_shape():
    x = np.empty((3, 4, 5))
    conveyor.fill_uniform(x, 7, 1)
    flat = np.empty(60)
    conveyor.fill_uniform(flat, 7, 1)
    assert x.tobytes() == flat.tobytes()
    assert conveyor.apply(x, [("square",)]).shape == (3, 4, 5)
    assert conveyor.sum(x) == conveyor.sum(flat)


BAD_KERNEL_CALLS = {
    "fill non-contiguous": lambda: conveyor.fill_uniform(np.zeros((4, 10))[:, ::2], 1, 2),
    "fill int64": lambda: conveyor.fill_uniform(np.zeros(8, dtype=np.int64), 1, 2),
    "fill negative seed": lambda: conveyor.fill_uniform(np.zeros(8), -1, 2),
    "apply unknown op": lambda: conveyor.apply(np.zeros(8), [("cube",)]),
    "apply missing scalar": lambda: conveyor.apply(np.zeros(8), [("add",)]),
    "apply 17 steps": lambda: conveyor.apply(np.zeros(8), [("square",)] * 17),
    "apply operand of another length": lambda: conveyor.apply(np.zeros(8), [("add", np.zeros(7))]),
    "apply operand of another dtype": lambda: conveyor.apply(np.zeros(8), [("add", np.zeros(8, np.float32))]),
    "apply out of another shape": lambda: conveyor.apply(np.zeros(8), [("square",)], out=np.zeros(9)),
    "apply object array": lambda: conveyor.apply(np.zeros(8, dtype=object), [("square",)]),
    "sum int64": lambda: conveyor.sum(np.zeros(8, dtype=np.int64)),
    "sum non-contiguous": lambda: conveyor.sum(np.zeros((4, 10))[:, ::2]),
}


@pytest.mark.parametrize("case", sorted(BAD_KERNEL_CALLS))
def test_bad_kernel_calls_raise(case):
    with pytest.raises((ValueError, TypeError, OverflowError, BufferError)):
        BAD_KERNEL_CALLS[case]()


def test_the_kernels_release_the_gil():
    # With a switch interval of an hour, the interpreter never takes the GIL from the main
    # thread by force: another thread can run Python only while the main thread gives the
    # GIL up itself, here only inside the kernel call. A counting thread that is waiting for
    # the GIL therefore moves `count` across the call if and only if the call released it.
    # Whether the OS runs the counter during one particular call is up to the scheduler,
    # so each kernel is called again until it is seen (bounded by LIMIT); a kernel that
    # keeps the GIL is never seen and fails at the bound. No duration is assumed.
    big = np.ones(1 << 22)  # 32 MiB, touched once here so no call pays page faults
    calls = {
        "fill_uniform": lambda: conveyor.fill_uniform(big, 1, 2),
        "apply": lambda: conveyor.apply(big, [("square",)] * 4, out=big),
        "sum": lambda: conveyor.sum(big.view(np.float32)),
    }
    count, stop = [0], threading.Event()

    def counter():
        while not stop.is_set():
            count[0] += 1
            time.sleep(0)  # gives the GIL back so the main thread is never kept waiting

    thread = threading.Thread(target=counter)
    previous = sys.getswitchinterval()
    thread.start()
    try:
        support.wait_until(lambda: count[0] > 0, "the counting thread to start")
        sys.setswitchinterval(3600)
        for name, call in calls.items():
            deadline = time.monotonic() + LIMIT
            while True:
                before = count[0]
                call()
                if count[0] != before:
                    break
                assert time.monotonic() < deadline, f"{name}: no other thread ran during any call"
                time.sleep(0.001)  # let the counter get back to waiting for the GIL
    finally:
        sys.setswitchinterval(previous)
        stop.set()
        thread.join(LIMIT)
