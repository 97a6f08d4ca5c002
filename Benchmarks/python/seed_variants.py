#!/usr/bin/env python3
"""The question's variants in Python 3, on one workload and one checksum rule.

The 2016 question pipes 1000 samples of uniform 500x2000 float64 through
h(x) = x*x, g(x) = 3x, f(x) = x + 1 and sums them. These are faithful ports of the
question's code and of its answers (Python 2 -> 3, nothing else changed in spirit):

  serial              generate, h, g, f, sum in one process
  mp-queue            the question: one process per stage, multiprocessing.Queue (pickles)
  threads-pipeline    answer 1: the same pipeline with threading.Thread and queue.Queue
  array-queue         answer 1: the ArrayQueue of shared-memory slots (copy in, pass the id,
                      copy out), one process per stage
  shared-memory       the same pipeline over multiprocessing.shared_memory slots: the stage
                      computes straight into a free slot (one copy fewer than ArrayQueue)
  conveyor-ring       the same pipeline over the `conveyor` package's rings: each stage
                      computes into a loaned slot of the next ring (np.multiply(x, x,
                      out=out)) from a read-only view of its input slot; nothing is copied
                      or pickled. Skipped, with a note on stderr, when conveyor is not
                      importable (as are the next three).
  conveyor-dropin     the question's own code with only the import changed: `from conveyor
                      import parallel_pipeline`; each yielded array is copied once into a slot
  conveyor-pipeline   conveyor.Pipeline: numpy stages h(x, out) writing into their slots, one
                      process per stage, the sum in the parent
  conveyor-kernels    the same with Conveyor's kernels: fill_uniform, the fused program
                      h+g+f in place, conveyor.sum (the Swift rows' data and checksum)
  iceoryx2            the peer: the same pipeline over iceoryx2's Python bindings, zero copy,
                      bounded, event waits (iceoryx2_pipeline.py); skipped with a note when
                      iceoryx2 is not installed
  pool-arrays         answer 1: Pool.imap_unordered per sample, returning arrays
  pool-sums           answer 1: Pool.imap_unordered per sample, returning sums
  threads-per-sample  answer 1: worker threads, one whole sample each

Same seeds rule everywhere: sample i is np.random.default_rng([seed, i]).random(shape),
so every variant sees the same data whatever process makes it; the checksum adds the
per-sample sums in sample order, so every variant gives the same bits.

Usage: seed_variants.py [--samples N] [--rows R] [--cols C] [--buffer B] [--workers W]
                        [--variants a,b] [--json PATH|-]
"""
import argparse
import json
import os
import queue
import sys
import threading
import time
import multiprocessing as mp
from multiprocessing import shared_memory

import numpy as np

try:
    import conveyor
except ImportError as error:
    conveyor = None
    CONVEYOR_MISSING = f"the conveyor package is not importable by {sys.executable} ({error})"

from seed_common import SEED, STAGES, checksum, final, sample  # noqa: E402,F401


class End:
    """The question's __EndToken."""


# ---- serial --------------------------------------------------------------------------
def serial(n, shape, buffer, workers):
    return checksum([float(final(i, shape).sum()) for i in range(n)])


# ---- the question's decorator pipeline, over processes or threads ------------------------
def run_stage(inbox, outbox, index):
    while True:
        x = inbox.get()
        if isinstance(x, End):
            outbox.put(x)
            return
        outbox.put(STAGES[index](x))


def produce(outbox, n, shape):
    for i in range(n):
        outbox.put(sample(i, shape))
    outbox.put(End())


def pipeline(n, shape, buffer, make_queue, make_worker):
    queues = [make_queue(buffer) for _ in range(len(STAGES) + 1)]
    workers = [make_worker(target=produce, args=(queues[0], n, shape))]
    workers += [make_worker(target=run_stage, args=(queues[k], queues[k + 1], k)) for k in range(len(STAGES))]
    for w in workers:
        w.start()
    sums = []
    while True:
        x = queues[-1].get()
        if isinstance(x, End):
            break
        sums.append(float(x.sum()))
    for w in workers:
        w.join()
    return checksum(sums)


def mp_queue(n, shape, buffer, workers):
    return pipeline(n, shape, buffer, mp.Queue, mp.Process)


def threads_pipeline(n, shape, buffer, workers):
    return pipeline(n, shape, buffer, queue.Queue, threading.Thread)


# ---- answer 1's ArrayQueue: shared-memory slots, copy in, pass the id, copy out --------
class ArrayQueue:
    def __init__(self, template, maxsize):
        self.dtype, self.shape = template.dtype, template.shape
        byte_count = template.nbytes
        self.array_pool = []
        self.free_arrays = mp.Queue(maxsize)
        for i in range(maxsize):
            buf = mp.Array('c', byte_count, lock=False)
            self.array_pool.append(np.frombuffer(buf, dtype=self.dtype).reshape(self.shape))
            self.free_arrays.put(i)
        self.q = mp.Queue(maxsize)

    def put(self, item):
        if isinstance(item, np.ndarray):
            slot = self.free_arrays.get()
            self.array_pool[slot][:] = item
            self.q.put(slot)
        else:
            self.q.put((item,))

    def get(self):
        item = self.q.get()
        if isinstance(item, tuple):
            return item[0]
        arr = self.array_pool[item].copy()
        self.free_arrays.put(item)
        return arr


def array_queue(n, shape, buffer, workers):
    template = np.zeros(shape)
    return pipeline(n, shape, buffer, lambda size: ArrayQueue(template, size), mp.Process)


# ---- multiprocessing.shared_memory slots: compute straight into a free slot ------------
class SlotQueue:
    """A pool of shared_memory slots; put(fn) computes fn(slot) into a free slot."""

    def __init__(self, shape, maxsize):
        self.shape = shape
        nbytes = int(np.prod(shape)) * 8
        self.blocks = [shared_memory.SharedMemory(create=True, size=nbytes) for _ in range(maxsize)]
        self.names = [b.name for b in self.blocks]
        self.free = mp.Queue(maxsize)
        for i in range(maxsize):
            self.free.put(i)
        self.q = mp.Queue(maxsize)
        self._views = {}

    def __getstate__(self):
        return {"shape": self.shape, "names": self.names, "free": self.free, "q": self.q}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.blocks = [shared_memory.SharedMemory(name=name) for name in self.names]
        self._views = {}

    def view(self, slot):
        if slot not in self._views:
            self._views[slot] = np.ndarray(self.shape, dtype=np.float64, buffer=self.blocks[slot].buf)
        return self._views[slot]

    def put_computed(self, compute):
        slot = self.free.get()
        compute(self.view(slot))
        self.q.put(slot)

    def put_end(self):
        self.q.put(None)

    def get(self):
        return self.q.get()

    def release(self, slot):
        self.free.put(slot)

    def close(self, unlink=False):
        self._views.clear()
        for b in self.blocks:
            b.close()
            if unlink:
                b.unlink()


def shm_produce(out, n, shape):
    for i in range(n):
        out.put_computed(lambda view: np.copyto(view, sample(i, shape)))
    out.put_end()
    out.close()


def shm_stage(inbox, out, index):
    while True:
        slot = inbox.get()
        if slot is None:
            out.put_end()
            break
        x = inbox.view(slot)
        out.put_computed(lambda view: STAGES[index](x, out=view))
        inbox.release(slot)
    inbox.close()
    out.close()


def shared_memory_pipeline(n, shape, buffer, workers):
    queues = [SlotQueue(shape, buffer) for _ in range(len(STAGES) + 1)]
    procs = [mp.Process(target=shm_produce, args=(queues[0], n, shape))]
    procs += [mp.Process(target=shm_stage, args=(queues[k], queues[k + 1], k)) for k in range(len(STAGES))]
    for p in procs:
        p.start()
    sums = []
    last = queues[-1]
    while True:
        slot = last.get()
        if slot is None:
            break
        sums.append(float(last.view(slot).sum()))
        last.release(slot)
    for p in procs:
        p.join()
    for q in queues:
        q.close(unlink=True)
    return checksum(sums)


# ---- conveyor rings: compute straight into a loaned slot, views in place ---------------
def ring_produce(ring, n, shape):
    with ring.producer() as prod:
        for i in range(n):
            with prod.loan() as out:  # committed at the end of the block
                sample(i, shape, out=out)


def ring_stage(inbox, outbox, index):
    with inbox.consumer() as cons, outbox.producer() as prod:
        for x in cons:  # read-only views of the input slots, until end of stream
            with prod.loan() as out:
                STAGES[index](x, out=out)
            del x  # gives the input slot back now, not after the next frame arrives


def conveyor_ring_pipeline(n, shape, buffer, workers):
    rings = [conveyor.Ring(slots=buffer, shape=shape, dtype=np.float64) for _ in range(len(STAGES) + 1)]
    procs = [mp.Process(target=ring_produce, args=(rings[0], n, shape))]
    procs += [mp.Process(target=ring_stage, args=(rings[k], rings[k + 1], k)) for k in range(len(STAGES))]
    for p in procs:
        p.start()
    sums = []
    try:
        with rings[-1].consumer() as cons:
            for x in cons:
                sums.append(float(x.sum()))
                del x
    finally:
        for p in procs:
            p.join()
        for ring in rings:
            ring.close()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed or len(sums) != n:
        raise RuntimeError(f"conveyor-ring: a stage failed (exit codes {failed}, {len(sums)} of {n} samples)")
    return checksum(sums)


# ---- conveyor.Pipeline and the drop-in decorator: the same transport as Swift's ---------
def conveyor_dropin(n, shape, buffer, workers):
    """The question's own code, with `from conveyor import parallel_pipeline` as the only
    change (and the data rule's xs): generator stages yielding new arrays, each copied
    once into a slot."""
    from conveyor import parallel_pipeline

    @parallel_pipeline(buffer)
    def f(xs):
        for x in xs:
            yield x + 1.0

    @parallel_pipeline(buffer)
    def g(xs):
        for x in xs:
            yield x * 3

    @parallel_pipeline(buffer)
    def h(xs):
        for x in xs:
            yield x * x

    def xs():
        for i in range(n):
            yield sample(i, shape)

    rs = f(g(h(xs())))
    return checksum([float(r.sum()) for r in rs])


def conveyor_pipeline(n, shape, buffer, workers):
    """conveyor.Pipeline with numpy stages writing into their slots (h(x, out)), one
    process per stage, the sum in this one."""
    pipe = conveyor.Pipeline(lambda i, out: sample(i, shape, out=out), count=n, shape=shape,
                             buffer=buffer)
    for name, stage in zip("hgf", STAGES):
        pipe = pipe.stage(stage, name=name)
    sums = []
    pipe.run(lambda _, x: sums.append(float(x.sum())))
    return checksum(sums)


def conveyor_kernels(n, shape, buffer, workers):
    """The same pipeline on Conveyor's kernels: fill (its counter-based generator, the
    Swift rows' data), the fused program h+g+f in place, the compensated sum."""
    program = conveyor.kernel_stage([("square",), ("mul", 3.0), ("add", 1.0)])
    pipe = (conveyor.Pipeline(lambda i, out: conveyor.fill_uniform(out, SEED, i), count=n,
                              shape=shape, buffer=buffer)
            .stage(program, name="h+g+f"))
    sums = []
    pipe.run(lambda _, x: sums.append(conveyor.sum(x)))
    return checksum(sums)


def iceoryx2(n, shape, buffer, workers):
    from iceoryx2_pipeline import iceoryx2_pipeline
    return iceoryx2_pipeline(n, shape, buffer, workers)


# ---- answer 1: parallelize samples, not functions ---------------------------------------
def final_indexed(args):
    i, shape = args
    return i, final(i, shape)


def final_sum_indexed(args):
    i, shape = args
    return i, float(final(i, shape).sum())


def pool_arrays(n, shape, buffer, workers):
    sums = [0.0] * n
    with mp.Pool(workers) as pool:
        for i, r in pool.imap_unordered(final_indexed, ((i, shape) for i in range(n))):
            sums[i] = float(r.sum())
    return checksum(sums)


def pool_sums(n, shape, buffer, workers):
    sums = [0.0] * n
    with mp.Pool(workers) as pool:
        for i, s in pool.imap_unordered(final_sum_indexed, ((i, shape) for i in range(n))):
            sums[i] = s
    return checksum(sums)


def threads_per_sample(n, shape, buffer, workers):
    todo = list(range(n))
    q = queue.Queue(2 * workers)

    def worker():
        while True:
            try:
                i = todo.pop()  # the GIL makes this pop atomic
            except IndexError:
                q.put(None)
                return
            q.put((i, final(i, shape)))

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    sums, done = [0.0] * n, 0
    while done < workers:
        item = q.get()
        if item is None:
            done += 1
        else:
            sums[item[0]] = float(item[1].sum())
    for t in threads:
        t.join()
    return checksum(sums)


VARIANTS = {
    "serial": serial,
    "mp-queue": mp_queue,
    "threads-pipeline": threads_pipeline,
    "array-queue": array_queue,
    "shared-memory": shared_memory_pipeline,
    "conveyor-ring": conveyor_ring_pipeline,
    "conveyor-dropin": conveyor_dropin,
    "conveyor-pipeline": conveyor_pipeline,
    "conveyor-kernels": conveyor_kernels,
    "iceoryx2": iceoryx2,
    "pool-arrays": pool_arrays,
    "pool-sums": pool_sums,
    "threads-per-sample": threads_per_sample,
}


def missing(name):
    """Why variant `name` cannot run here, or None."""
    if name.startswith("conveyor-") and conveyor is None:
        return CONVEYOR_MISSING
    if name == "iceoryx2":
        from iceoryx2_pipeline import ICEORYX2_MISSING
        return ICEORYX2_MISSING
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--cols", type=int, default=2000)
    parser.add_argument("--buffer", type=int, default=3, help="queue size / slots per edge (the question's 3)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="workers of the per-sample variants")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", help="write the rows as JSON to this path ('-' for stdout)")
    parser.add_argument("--progress", action="store_true", help="report each variant on stderr as it finishes")
    args = parser.parse_args()
    if min(args.samples, args.rows, args.cols, args.buffer, args.workers) <= 0:
        parser.error("--samples, --rows, --cols, --buffer and --workers must be positive")
    chosen = [v for v in args.variants.split(",") if v]
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    shape = (args.rows, args.cols)
    rows, skipped = [], []
    for name in chosen:
        reason = missing(name)
        if reason:
            skipped.append({"variant": name, "reason": reason})
            print(f"python {name:20s} skipped: {reason}", file=sys.stderr, flush=True)
            continue
        start = time.perf_counter()
        total = VARIANTS[name](args.samples, shape, args.buffer, args.workers)
        seconds = time.perf_counter() - start
        rows.append({"variant": name, "samples": args.samples, "seconds": seconds,
                     "ms_per_sample": seconds * 1e3 / args.samples, "checksum": total})
        line = f"{name:20s} {seconds:8.3f} s  {seconds * 1e3 / args.samples:8.3f} ms/sample  {total!r}"
        if args.progress:
            print(f"python {line}", file=sys.stderr, flush=True)
        elif args.json != "-":
            print(line, flush=True)
    if args.json:
        text = json.dumps({"python": sys.version.split()[0], "numpy": np.__version__,
                           "conveyor": conveyor.__version__ if conveyor else None, "rows": rows,
                           "skipped": skipped})
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as out:
                out.write(text + "\n")


if __name__ == "__main__":
    mp.set_start_method("fork")
    main()
