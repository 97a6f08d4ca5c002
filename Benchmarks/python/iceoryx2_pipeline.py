"""The question's pipeline over iceoryx2 (PyPI `iceoryx2` 0.10): the zero-copy peer to beat.

`iceoryx2_pipeline(n, shape, buffer, workers)` has the contract of seed_variants'
`conveyor_ring_pipeline`: a source process makes sample i = seed_common.sample(i, shape),
three processes apply h, g, f (seed_common.STAGES), the parent sums every final sample in
sample order and returns seed_common.checksum(sums), bit for bit the `serial` variant's
result. `workers` is unused. Processes are started with multiprocessing (the caller sets
the fork start method); every process builds its own iceoryx2 node after it started.

What it does, per edge (source->h, h->g, g->f, f->parent):

  * one publish-subscribe service of Slice[c_double] (rows*cols elements), created by the
    writer and opened by the reader: one publisher, one subscriber, history 0, safe overflow
    OFF (enable_safe_overflow(False): a full subscriber buffer is never overwritten),
    subscriber buffer size = `buffer`, subscriber_max_borrowed_samples 1, publisher
    max_loaned_samples 1, backpressure strategy RetryUntilDelivered (0.10's "block"),
    Static allocation.
  * zero copy: the writer loans an uninitialised slice (loan_slice_uninit), numpy writes
    straight into it through a view of exactly rows*cols*8 bytes at payload_ptr
    (sample(i, out=view) or STAGES[k](x, out=view)), assume_init().send(); the reader
    receives and reads in place through a read-only view and releases the sample
    (Sample.delete) once it has computed into its next loan, before its next receive.
    Nothing else copies a payload. The views are built from payload_ptr and the header's
    element count (checked on every receive), not from Sample.payload(): for a
    Slice[c_double], 0.10's payload().len() is the BYTE count (8 * rows * cols), so
    payload().as_memory_view() would be 8x too long.
  * event-based waits: an event service "<edge>.ready" (writer -> reader: READY after each
    send, END after the last one: the end-of-stream marker) and "<edge>.ack" (reader ->
    writer: ACK, counted with EventActivation.count). The reader blocks on its ready
    listener only after receive() returned nothing and stops at END once its buffer is
    drained (END is notified after the last send, so it is seen only when every sample is
    receivable). The writer holds `buffer` credits and blocks on its ack listener when it
    has none, so it never sends into a full buffer and RetryUntilDelivered never retries.
    That matters: 0.10 implements RetryUntilDelivered as an adaptive wait (10000
    sched_yield calls, then 100 us and then 10 ms sleeps: iceoryx2-bb/posix adaptive_wait),
    i.e. busy spinning and sleep polling, which the default mode never reaches.

Modes (`_run(n, shape, buffer, mode)`, mode = "<wait>+<flow>"). All modes tie within the
noise of this machine (measurements below); `iceoryx2_pipeline` uses DEFAULT_MODE =
"listener+slots": the simpler wait, no polling anywhere, the competitors' bound of
`buffer` samples per edge, and the fewest page faults:

  wait  listener  each wait is Listener.timed_wait on the one listener the process needs
                  now (ready for input, ack for credit);
        waitset   each process has one WaitSet with all its listeners attached
                  (attach_notification): wait_and_process_with_timeout, then try_wait on
                  the listeners that fired.
  flow  slots     a credit is a sample of the edge: the writer spends it on loan, the reader
                  acks after Sample.delete, and the publisher preallocates exactly `buffer`
                  samples (override_sample_preallocation(buffer)), so at most `buffer`
                  samples per edge exist at once, loaned, queued or being read: the bound of
                  conveyor-ring's and shared-memory's `buffer` slots. Fewest 8 MB samples to
                  fault in: 29k minor faults per run against 44k for "buffer".
        buffer    a credit is a place in the subscriber buffer: spent on send, acked on
                  receive, iceoryx2's default worst-case preallocation (buffer + 2 samples).
        retry     no ack events: the writer blocks inside send() in RetryUntilDelivered
                  (iceoryx2's own yield/sleep backpressure) when the buffer is full.

The 1 s timeouts are only a watchdog for a dead peer (then the run raises instead of
hanging); data is never waited for by timeout. A multiprocessing.Barrier fences startup:
writers create their edges, then readers open them (no open_or_create races, which cost
up to 30 ms of iceoryx2 retry waits), then publishers update their connections, then
subscribers theirs (has_samples), and only then is anything sent. That last handshake is
needed: history is 0, and with the buffer full and the subscriber's half of the connection
not yet attached, RetryUntilDelivered does not block but drops the sample silently
(ZeroCopySendError::NoConnectedReceiverAndBufferIsFull, which Publisher.send does not
report): the retry flow lost 2 to 17 of 20 samples before it was added. The same barrier
fences shutdown, so no publisher goes away while its reader still holds data.

Files: each run has its own iceoryx2 config with the prefix "iox2cv<pid>x<run>_" and the
root path /tmp/iox2cv<pid>x<run>_/ (global.prefix / global.root_path; dead-node cleanup off,
as no other node can use the prefix), so nothing it creates can clash with another run or
another iceoryx2 user. iceoryx2 removes its services, ports and nodes when they are
dropped but keeps two things: "/dev/shm/<prefix><hash>_node.0_10_0.global_mgmt" and the
root directory (with empty nodes/ and services/). Both carry this run's unique prefix, so
the parent removes them at the end, after every process joined (also when a stage failed);
/dev/shm and /tmp are then as they were before the run.

Measured on 2 vCPUs (AMD EPYC VM, Python 3.11.7, numpy 2.4.6, iceoryx2 0.10.0), shape
500x2000, buffer 3, n = 200, checksum equal to `serial` (400002907.68552965) every time:

  iceoryx2_pipeline (listener+slots), 3 runs of this command, from Benchmarks/python:
../../.build-python/venv/bin/python -c "import multiprocessing as mp, time; mp.set_start_method('fork'); from iceoryx2_pipeline import iceoryx2_pipeline as f; t = time.perf_counter(); c = f(200, (500, 2000), 3, None); print((time.perf_counter() - t) * 5, 'ms/sample', repr(c))"
      5.17, 3.09, 4.19 ms/sample: median 4.19
  right after it, 3 runs of
    ../../.build-python/venv/bin/python seed_variants.py --variants conveyor-ring,shared-memory --samples 200
      conveyor-ring 3.41, 3.33, 3.28: median 3.33    shared-memory 5.09, 4.14, 4.01: median 4.14

  The VM's speed drifts by up to 2x within a minute, so the modes were also compared in
  interleaved rounds (one run of each mode per round, 7 rounds, medians in ms/sample):
    listener+slots 4.22   waitset+slots 4.40   listener+buffer 3.94   waitset+buffer 4.27
    listener+retry 4.51   conveyor-ring 4.39   shared-memory 5.24
  and in two earlier batches (7 and 8 rounds, before the create/open split of startup):
    listener+slots 4.12 / 4.30, waitset+slots 3.83 / 4.50, listener+buffer 4.18 / 4.85,
    waitset+buffer 4.22 / 4.67, listener+retry 4.12 / 4.42, conveyor-ring 4.36 / 4.09,
    shared-memory 5.30 / 5.00.
  The iceoryx2 modes differ by less than the noise; all are close to the floor the
  machine allows (the source's default_rng.random into 8 MB takes 2.4-3.4 ms on its own,
  and the five processes' ~6 ms of CPU per sample are shared by 2 CPUs). The fixed cost
  is larger than conveyor-ring's: n = 1 takes 110-120 ms against 63 ms (about 32 ms to
  fork and build 5 nodes, 12 services and their ports up to the last startup barrier,
  then 7-10 ms of first-touch page faults for each of the first `buffer` samples of every
  edge, and about 20 ms to drop the ports and nodes), i.e. about 0.25 ms/sample at n=200.
"""
import ctypes
import itertools
import os
import shutil
import multiprocessing as mp

import numpy as np

from seed_common import STAGES, checksum, sample

try:
    import iceoryx2 as iox2
except ImportError as error:  # the caller skips the variant with this note
    iox2 = None
    ICEORYX2_MISSING = f"the iceoryx2 package is not importable ({error})"
else:
    ICEORYX2_MISSING = None

MODES = tuple(f"{wait}+{flow}" for wait in ("listener", "waitset") for flow in ("buffer", "slots", "retry"))
DEFAULT_MODE = "listener+slots"
WATCHDOG_SECONDS = 1  # a wait that long with no event checks that the peers are alive
BARRIER_SECONDS = 120

READY, END, ACK = 0, 1, 0  # event ids: READY/END on "<edge>.ready", ACK on "<edge>.ack"
_runs = itertools.count()


def _config(prefix):
    """A default config whose files all carry `prefix` (in /dev/shm and under /tmp)."""
    config = iox2.config.default()
    glob = config.global_cfg  # a handle: setting its fields changes `config`
    glob.prefix = iox2.FileName.new(prefix)
    glob.root_path = iox2.Path.new(f"/tmp/{prefix}/")
    # Nobody else uses this prefix, so there are no dead nodes of other runs to look for (the
    # parent removes a crashed run's files by prefix). Left on, the scans race with peers
    # that are just dropping their nodes and then log "No config file was loaded" warnings.
    glob.node.cleanup_dead_nodes_on_creation = False
    glob.node.cleanup_dead_nodes_on_destruction = False
    glob.service.cleanup_dead_nodes_on_open = False
    return config


def _remove_files(prefix):
    """Remove what iceoryx2 leaves of the run with this (unique) prefix."""
    for name in os.listdir("/dev/shm"):
        if name.startswith(prefix):
            try:
                os.unlink(os.path.join("/dev/shm", name))
            except FileNotFoundError:
                pass
    shutil.rmtree(f"/tmp/{prefix}", ignore_errors=True)


class _Process:
    """One iceoryx2 node per process, plus the way this process waits for events."""

    def __init__(self, prefix, name, mode, alive):
        self.wait_kind, self.flow = mode.split("+")
        self.alive = alive
        self.timeout = iox2.Duration.from_secs(WATCHDOG_SECONDS)
        self.node = (iox2.NodeBuilder.new().config(_config(prefix)).name(iox2.NodeName.new(name))
                     .signal_handling_mode(iox2.SignalHandlingMode.Disabled).create(iox2.ServiceType.Ipc))
        self.ports = []  # everything to delete(), in order
        self.attached = []  # (guard, listener, handler) in waitset mode
        self.waitset = None
        if self.wait_kind == "waitset":
            self.waitset = (iox2.WaitSetBuilder.new().signal_handling_mode(iox2.SignalHandlingMode.Disabled)
                            .create(iox2.ServiceType.Ipc))

    def pubsub(self, name, buffer, create):
        builder = (self.node.service_builder(iox2.ServiceName.new(name))
                   .publish_subscribe(iox2.Slice[ctypes.c_double])
                   .enable_safe_overflow(False)
                   .history_size(0)
                   .subscriber_max_buffer_size(buffer)
                   .subscriber_max_borrowed_samples(1)
                   .max_publishers(1).max_subscribers(1).max_nodes(2))
        return builder.create() if create else builder.open()

    def event(self, name, create):
        builder = (self.node.service_builder(iox2.ServiceName.new(name)).event()
                   .event_id_max_value(1).max_notifiers(1).max_listeners(1).max_nodes(2)
                   .disable_notifier_created_event().disable_notifier_dropped_event()
                   .disable_notifier_dead_event())
        return builder.create() if create else builder.open()

    def listen(self, listener, handler):
        """Register how this process handles the events of `listener`."""
        if self.waitset is not None:
            self.attached.append((self.waitset.attach_notification(listener), listener, handler))

    def wait(self, listener, handler):
        """Block until an event arrives (on `listener`, or on any attached one), handle it."""
        if self.waitset is None:
            activations = listener.timed_wait(self.timeout)
            for activation in activations:
                handler(activation)
            if not activations:
                self.alive()
            return
        fired, _ = self.waitset.wait_and_process_with_timeout(self.timeout)
        if not fired:
            self.alive()
        for attachment in fired:
            for guard, attached, handle in self.attached:
                if attachment.has_event_from(guard):
                    for activation in attached.try_wait():
                        handle(activation)

    def close(self):
        self.attached.clear()  # guards first: they detach from the waitset
        for port in reversed(self.ports):
            port.delete()
        self.ports.clear()
        if self.waitset is not None:
            self.waitset.delete()
            self.waitset = None
        self.node = None


class _Writer:
    """The publishing end of an edge: loan into a numpy view, send, notify."""

    def __init__(self, proc, edge, shape, buffer):
        self.proc, self.shape = proc, shape
        self.count = int(np.prod(shape))
        self.ctype = ctypes.c_double * self.count  # exactly count * 8 bytes
        service = proc.pubsub(edge, buffer, create=True)  # the writer creates the edge
        builder = (service.publisher_builder()
                   .initial_max_slice_len(self.count)
                   .allocation_strategy(iox2.AllocationStrategy.Static)
                   .max_loaned_samples(1)
                   .backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered))
        if proc.flow == "slots":  # `buffer` samples per edge, all of them in flight at most
            builder = builder.override_sample_preallocation(buffer)
        self.pub = builder.create()
        self.ready = proc.event(f"{edge}.ready", create=True).notifier_builder().create()
        proc.ports += [self.pub, self.ready]
        self.ready_id, self.end_id = iox2.EventId.new(READY), iox2.EventId.new(END)
        self.credit = None  # retry: iceoryx2's own backpressure
        self.spend_on_loan = proc.flow == "slots"
        if proc.flow != "retry":
            self.credit = buffer  # free places in the reader's buffer / free samples
            self.acks = proc.event(f"{edge}.ack", create=True).listener_builder().create()
            proc.ports.append(self.acks)
            proc.listen(self.acks, self._on_ack)

    def _on_ack(self, activation):
        self.credit += activation.count

    def loan(self):
        """A loaned uninitialised sample and a writable view of its payload."""
        if self.spend_on_loan:
            while self.credit == 0:
                self.proc.wait(self.acks, self._on_ack)
            self.credit -= 1
        loaned = self.pub.loan_slice_uninit(self.count)
        view = np.ndarray(self.shape, np.float64, buffer=self.ctype.from_address(loaned.payload_ptr))
        return loaned, view

    def send(self, loaned):
        if self.credit is not None and not self.spend_on_loan:
            while self.credit == 0:
                self.proc.wait(self.acks, self._on_ack)
            self.credit -= 1
        loaned.assume_init().send()
        self.ready.notify_with_custom_event_id(self.ready_id)

    def end(self):
        self.ready.notify_with_custom_event_id(self.end_id)

    def connect(self):
        self.pub.update_connections()  # the sending half of the zero-copy connection


class _Reader:
    """The subscribing end of an edge: receive, read in place, release."""

    def __init__(self, proc, edge, shape, buffer):
        self.proc, self.shape = proc, shape
        self.count = int(np.prod(shape))
        self.ctype = ctypes.c_double * self.count
        service = proc.pubsub(edge, buffer, create=False)  # ... and the reader opens it
        self.sub = service.subscriber_builder().buffer_size(buffer).create()
        self.ready = proc.event(f"{edge}.ready", create=False).listener_builder().create()
        proc.ports += [self.sub, self.ready]
        proc.listen(self.ready, self._on_ready)
        self.ack = None
        self.ack_on_release = proc.flow == "slots"
        if proc.flow != "retry":
            self.ack = proc.event(f"{edge}.ack", create=False).notifier_builder().create()
            self.ack_id = iox2.EventId.new(ACK)
            proc.ports.append(self.ack)
        self.ended = False

    def connect(self):
        self.sub.has_samples()  # updates the connections: the receiving half

    def _on_ready(self, activation):
        if activation.id.as_value == END:
            self.ended = True

    def receive(self):
        """(sample, read-only view) of the next sample, or None at the end of the stream."""
        while True:
            got = self.sub.receive()
            if got is not None:
                break
            if self.ended:
                return None
            self.proc.wait(self.ready, self._on_ready)
        if self.ack is not None and not self.ack_on_release:
            self.ack.notify_with_custom_event_id(self.ack_id)  # a place in the buffer is free
        if got.header.number_of_elements != self.count:
            raise RuntimeError(f"iceoryx2: got {got.header.number_of_elements} elements, expected {self.count}")
        view = np.ndarray(self.shape, np.float64, buffer=self.ctype.from_address(got.payload_ptr))
        view.flags.writeable = False
        return got, view

    def release(self, received):
        received.delete()  # the sample goes back to its publisher
        if self.ack is not None and self.ack_on_release:
            self.ack.notify_with_custom_event_id(self.ack_id)  # ... and may be loaned again


def _start(barrier, writer=None, open_reader=None):
    """Open the input edge and start with every edge fully connected (module docstring)."""
    barrier.wait(BARRIER_SECONDS)  # every writer has created its edge: no open_or_create races
    reader = open_reader() if open_reader is not None else None
    barrier.wait(BARRIER_SECONDS)  # every port of every process exists
    if writer is not None:
        writer.connect()
    barrier.wait(BARRIER_SECONDS)
    if reader is not None:
        reader.connect()
    barrier.wait(BARRIER_SECONDS)
    return reader


def _child(prefix, name, mode, barrier, body):
    parent = os.getppid()

    def alive():
        if os.getppid() != parent:
            raise RuntimeError(f"iceoryx2 {name}: the parent process is gone")

    proc = None
    try:
        proc = _Process(prefix, name, mode, alive)
        body(proc, barrier)
    except BaseException:
        barrier.abort()  # nobody waits for this process at the barrier any more
        raise
    finally:
        if proc is not None:
            proc.close()


def _source(proc, barrier, n, shape, buffer):
    out = _Writer(proc, "edge0", shape, buffer)
    _start(barrier, writer=out)
    for i in range(n):
        loaned, view = out.loan()
        sample(i, shape, out=view)
        del view  # no view outlives its sample
        out.send(loaned)
    out.end()
    barrier.wait(BARRIER_SECONDS)


def _stage(proc, barrier, k, shape, buffer):
    out = _Writer(proc, f"edge{k + 1}", shape, buffer)
    inbox = _start(barrier, writer=out, open_reader=lambda: _Reader(proc, f"edge{k}", shape, buffer))
    stage = STAGES[k]
    while True:
        got = inbox.receive()
        if got is None:
            break
        received, x = got
        loaned, view = out.loan()
        stage(x, out=view)
        del x, view
        out.send(loaned)
        inbox.release(received)
    out.end()
    barrier.wait(BARRIER_SECONDS)


def _run_source(prefix, mode, barrier, n, shape, buffer):
    _child(prefix, "source", mode, barrier, lambda proc, b: _source(proc, b, n, shape, buffer))


def _run_stage(prefix, mode, barrier, k, shape, buffer):
    _child(prefix, f"stage{k}", mode, barrier, lambda proc, b: _stage(proc, b, k, shape, buffer))


def _run(n, shape, buffer, mode=DEFAULT_MODE):
    if iox2 is None:
        raise RuntimeError(ICEORYX2_MISSING)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    shape = tuple(shape)
    prefix = f"iox2cv{os.getpid()}x{next(_runs)}_"
    barrier = mp.Barrier(len(STAGES) + 2)
    procs = [mp.Process(target=_run_source, args=(prefix, mode, barrier, n, shape, buffer))]
    procs += [mp.Process(target=_run_stage, args=(prefix, mode, barrier, k, shape, buffer))
              for k in range(len(STAGES))]
    for p in procs:
        p.start()

    def alive():
        failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
        if failed:
            raise RuntimeError(f"iceoryx2: a stage failed (exit codes {failed})")

    sums = []
    proc, ok = None, False
    try:
        proc = _Process(prefix, "sink", mode, alive)
        inbox = _start(barrier, open_reader=lambda: _Reader(proc, f"edge{len(STAGES)}", shape, buffer))
        while True:
            got = inbox.receive()
            if got is None:
                break
            received, x = got
            sums.append(float(x.sum()))
            del x
            inbox.release(received)
        barrier.wait(BARRIER_SECONDS)
        ok = True
    finally:
        if proc is not None:
            proc.close()
            del proc
        if not ok:  # a stage may be blocked on an edge that will never move again
            barrier.abort()
            for p in procs:
                p.terminate()
        for p in procs:
            p.join()
        _remove_files(prefix)  # see the module docstring: only this run's files
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed or len(sums) != n:
        raise RuntimeError(f"iceoryx2: a stage failed (exit codes {failed}, {len(sums)} of {n} samples)")
    return checksum(sums)


def iceoryx2_pipeline(n, shape, buffer, workers):
    """The question's pipeline over iceoryx2 publish-subscribe, zero copy (see the module docstring)."""
    return _run(n, shape, buffer, DEFAULT_MODE)
