"""A Python stage program on conveyor.serve_stage, for test_external_stages.py.

    python pystage.py [--form into|return|none] [--raise-at N] [--keep-at N] [--hang-at N]
                      [--expect-output DTYPE] [--expect-input-shape R,C] [--plain]

Items carry their index in element 0 when a failure flag is given (the tests' numbered
source). It multiplies each item by 3: as g(x, out) (--form into, the default), as g(x) returning
x * 3 (--form return), or returning None (--form none: a rule broken on item 0). Failure
flags, each at item N: --raise-at raises ValueError("bad item N"), --keep-at keeps its
input array in a global (a view kept after returning), --hang-at never returns (only
a signal ends it). --expect-output f32 declares
output=(float32, None), which a pipeline of float64 items must see refused. The program
ends with ``raise SystemExit(conveyor.serve_stage(...))``, or with --plain with a bare
``conveyor.serve_stage(...)`` call: either way its exit status is 0, 1 or 2.
"""
import argparse
import threading

import numpy as np

import conveyor

KEPT = []


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--form", choices=["into", "return", "none"], default="into")
    parser.add_argument("--raise-at", type=int, default=-1)
    parser.add_argument("--keep-at", type=int, default=-1)
    parser.add_argument("--hang-at", type=int, default=-1)
    parser.add_argument("--expect-output", default=None)
    parser.add_argument("--expect-input-shape", default=None)
    parser.add_argument("--plain", action="store_true")
    args = parser.parse_args()

    def check(x):
        flagged = max(args.raise_at, args.keep_at, args.hang_at) >= 0
        item = int(round(float(x.flat[0]))) if flagged else None
        if item == args.hang_at:
            threading.Event().wait()
        if item == args.raise_at:
            raise ValueError(f"bad item {item}")
        if item == args.keep_at:
            KEPT.append(x)

    def into(x, out):
        check(x)
        np.multiply(x, 3, out=out)

    def returning(x):
        check(x)
        return x * 3

    def nothing(x):
        return None

    fn = {"into": into, "return": returning, "none": nothing}[args.form]
    output = (np.dtype(args.expect_output), None) if args.expect_output else None
    expect_input = None
    if args.expect_input_shape:
        expect_input = (None, tuple(int(e) for e in args.expect_input_shape.split(",")))
    if args.plain:
        conveyor.serve_stage(fn, input=expect_input, output=output)
    else:
        raise SystemExit(conveyor.serve_stage(fn, input=expect_input, output=output))


if __name__ == "__main__":
    main()
