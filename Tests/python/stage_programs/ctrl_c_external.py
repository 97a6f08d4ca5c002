"""Run by test_external_stages.py (python ctrl_c_external.py PROGRAM ARGS...): a pipeline
whose external stage hangs, in this process, for the test to press Ctrl-C (SIGINT) at.

source (numbered) -> external PROGRAM ARGS... (hangs at item HANG_AT) -> sink. Once the
items before HANG_AT have arrived (so the program is running and serving), it prints
"started <worker pid> <program pid>..." and asks for the next result, which never comes.
On KeyboardInterrupt it prints "children <pid>..." (its direct children still in its
process table, zombies included) and re-raises, so it exits the way Python does on
Ctrl-C (killed by SIGINT, 'KeyboardInterrupt' on stderr).
"""
import os
import signal
import sys

import conveyor

HANG_AT = 3


def numbered(i, out):
    out[...] = i


def children(pid="self"):
    pids = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                pids.update(int(p) for p in f.read().split())
        except FileNotFoundError:
            pass
    return sorted(pids)


def main(command):
    pipe = conveyor.Pipeline(numbered, count=1000, shape=(3, 4)).external(command, name="hangs")
    try:
        with pipe.results() as results:
            for t, x in enumerate(results):
                if t == HANG_AT - 1:
                    workers = children()
                    programs = [p for w in workers for p in children(w)]
                    print("started", *workers, "programs", *programs, flush=True)
            print("ended", flush=True)  # not reached: the program hangs
    except KeyboardInterrupt:
        print("children", *children(), flush=True)
        raise


if __name__ == "__main__":
    # What a program at a terminal has (see pipeline_scripts/ctrl_c.py).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main(sys.argv[1:])
