"""The extension's bindings of the C core's pools and channels (issue 13), tested as
bindings: _core.Pool and the arrays it makes over slots (their SlotBuffer exporters),
_core.Channel and its ends (_core.ChannelEnd), and _core.die_with_parent.

Processes are made with os.fork() directly (a child leaves by os._exit, so it tears
down nothing it inherited) and reaped with a bound. Every wait is for the event itself:
a child's exit, a pipe's EOF, a channel counter that only grows. Every channel and pool
is a memfd one but in the two named round trips, which check that the name goes.
"""
import support  # first: skips this module under `unittest discover` without the package

import ctypes
import gc
import os
import select
import signal
import sys
import threading
import time
import traceback

import numpy as np
import pytest

import conveyor
from conveyor import _core
from support import LIMIT, wait_until

F64, F32, BYTES = _core.DTYPE_F64, _core.DTYPE_F32, _core.DTYPE_BYTES
SENDER, RECEIVER = _core.CHANNEL_SENDER, _core.CHANNEL_RECEIVER


# ---- processes ---------------------------------------------------------------------------

def fork(body):
    """Runs body() in a child made by os.fork(); the child leaves by os._exit: 0 if body
    returned, 1 if it raised (its traceback on stderr). Returns the child's pid."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            body()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    support.STARTED_PIDS.add(pid)
    return pid


def reap(pid, limit=LIMIT):
    """Waits for child `pid` to end: its exit code, or minus the signal that killed it."""
    status = []

    def ended():
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if done:
            status.append(os.waitstatus_to_exitcode(wait_status))
        return bool(status)

    try:
        wait_until(ended, f"child {pid} exits", limit)
    except AssertionError:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    return status[0]


def read_until_eof(fd, what, limit=LIMIT):
    """Everything read from pipe `fd` until EOF (every write end closed), within `limit`."""
    deadline = time.monotonic() + limit
    data = b""
    while True:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        if not ready:
            raise AssertionError(f"no EOF within {limit} s: {what}")
        chunk = os.read(fd, 4096)
        if not chunk:
            return data
        data += chunk


def read_line(fd, what, limit=LIMIT):
    """One line from pipe `fd` (bytes, without the newline), within `limit`."""
    deadline = time.monotonic() + limit
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        if not ready:
            raise AssertionError(f"no line within {limit} s: {what}")
        chunk = os.read(fd, 1)
        if not chunk:
            raise AssertionError(f"EOF before a line: {what}")
        data += chunk
    return data[:-1]


def mapped_inodes():
    """The inodes of every file mapped into this process (/proc/self/maps)."""
    inodes = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 5 and fields[4] != "0":
                inodes.add(int(fields[4]))
    return inodes


def get_buffer(obj, flags):
    """PyObject_GetBuffer(obj, flags) itself (the exporter's exception, not a caller's
    rewording of it); releases the buffer and returns its readonly flag."""
    view = ctypes.create_string_buffer(256)  # larger than a Py_buffer
    ctypes.pythonapi.PyObject_GetBuffer.argtypes = [ctypes.py_object, ctypes.c_void_p, ctypes.c_int]
    ctypes.pythonapi.PyBuffer_Release.argtypes = [ctypes.c_void_p]
    ctypes.pythonapi.PyObject_GetBuffer(obj, view, flags)  # raises the exporter's exception
    # Py_buffer: buf, obj, len, itemsize, then int readonly
    readonly = ctypes.c_int.from_buffer(view, 4 * ctypes.sizeof(ctypes.c_void_p)).value
    ctypes.pythonapi.PyBuffer_Release(view)
    return readonly


PYBUF_SIMPLE, PYBUF_WRITABLE = 0, 1


# ---- constants -----------------------------------------------------------------------------

def test_the_constants_are_the_c_headers():
    assert (_core.CHANNEL_SENDER, _core.CHANNEL_RECEIVER, _core.CHANNEL_HOLDER) == (1, 2, 3)
    assert _core.POOL_MAX_SLOTS == 65536
    assert _core.CHANNEL_MAX_LANES == 64
    assert _core.CHANNEL_MAX_CAPACITY == 65536


# ---- Pool ------------------------------------------------------------------------------------

def test_a_pool_created_and_attached_by_fd_share_their_slots():
    pool = _core.Pool(4, 4096)
    assert (pool.slot_count, pool.slot_bytes, pool.backing, pool.name) == (4, 4096, _core.BACKING_MEMFD, None)
    assert pool.mapped_bytes >= 4 * 4096 and pool.desc == f"memfd:{pool.fd}"
    other = _core.Pool.attach_fd(pool.fd)
    assert other.fd != pool.fd  # its own dup
    assert (other.slot_count, other.slot_bytes, other.mapped_bytes) == (4, 4096, pool.mapped_bytes)
    out = pool.array(2, F64, (16,), True)
    out[...] = np.arange(16.0)
    seen = other.array(2, F64, (16,), False)
    assert np.array_equal(seen, np.arange(16.0))
    back = other.array(3, BYTES, (4096,), writable=True)  # the other way round
    back[...] = 7
    assert (pool.array(3, BYTES, 4096) == 7).all()
    assert pool.array(0, F64, (16,)).ctypes.data != out.ctypes.data
    assert "slots=4 slot_bytes=4096 backing=memfd" in repr(pool)
    other.close()
    pool.close()


def test_a_named_pool_attached_by_name_shares_its_slots_and_its_name_goes():
    name = support.ring_name("pool")
    pool = _core.Pool(2, 64, backing=_core.BACKING_NAMED, name=name)
    assert (pool.name, pool.desc, pool.backing) == (name, name, _core.BACKING_NAMED)
    assert os.path.exists(support.shm_path(name))
    other = _core.Pool.attach_named(name)
    pool.array(1, F32, (16,), True)[...] = 2.5
    assert (other.array(1, F32, (16,)) == 2.5).all()
    other.close()
    pool.close()
    assert not os.path.exists(support.shm_path(name))
    with pytest.raises(conveyor.SystemCallFailed) as raised:
        _core.Pool.attach_named(name)
    assert raised.value.errno == 2  # ENOENT


def test_a_read_only_array_refuses_writes_and_cannot_be_made_writable():
    pool = _core.Pool(2, 4096)
    x = pool.array(0, F64, (4,), False)
    assert not x.flags.writeable
    with pytest.raises(ValueError):
        x[0] = 1.0
    with pytest.raises(ValueError):
        x.setflags(write=True)
    with pytest.raises(ValueError):
        x[1:].setflags(write=True)
    buffer = x.base
    assert type(buffer) is _core.SlotBuffer and buffer.readonly and buffer.slot == 0
    with pytest.raises(BufferError, match="read-only"):
        get_buffer(buffer, PYBUF_WRITABLE)
    assert get_buffer(buffer, PYBUF_SIMPLE) == 1  # exported with readonly = 1
    assert memoryview(buffer).readonly
    with pytest.raises(TypeError):
        ctypes.c_char.from_buffer(buffer)  # ctypes: "underlying buffer is not writable"
    w = pool.array(0, F64, (4,), True)
    assert w.flags.writeable and not w.base.readonly
    assert get_buffer(w.base, PYBUF_WRITABLE) == 0
    w[...] = 5.0
    assert (x == 5.0).all()  # the same slot
    del x, w, buffer
    pool.close()


def test_the_base_refcount_drops_when_the_array_and_its_views_die():
    pool = _core.Pool(2, 4096)
    x = pool.array(1, F32, (8, 8), True)
    base = x.base
    assert pool.exporters == 1 and base.pool is pool
    alone = sys.getrefcount(base)  # x, `base` and the call's argument
    view = x[2:]
    del x
    assert sys.getrefcount(base) == alone  # the view keeps x, which keeps base
    del view
    assert sys.getrefcount(base) == alone - 1  # nobody but `base` now
    del base
    assert pool.exporters == 0
    pool.close()


@pytest.mark.parametrize("dtype, shape, tag", [
    (F64, (3, 4), 0),
    (F32, (2, 3, 4, 5), 2 ** 64 - 1),
    (BYTES, (), 5),
    (BYTES, (0,), 1),
    (F64, (512,), 77),
])
def test_describe_and_frame_round_trip(dtype, shape, tag):
    pool = _core.Pool(3, 4096)
    other = _core.Pool.attach_fd(pool.fd)
    pool.describe(2, dtype, shape, tag)
    assert other.frame(2) == (dtype, shape, tag)
    pool.describe(2, F64, [2], tag=9)  # a list is a shape too; describing again replaces
    assert other.frame(2) == (F64, (2,), 9)
    other.close()
    pool.close()


def test_the_frame_of_a_slot_never_described_is_ring_corrupt():
    pool = _core.Pool(2, 4096)
    with pytest.raises(conveyor.RingCorrupt, match="slot 1.*CONVEYOR_E_CORRUPT.*memfd:"):
        pool.frame(1)
    pool.close()


def test_bad_arguments_raise_the_class_that_names_them():
    pool = _core.Pool(4, 4096)
    for call in (lambda i: pool.array(i, F64, (1,)), lambda i: pool.describe(i, F64, (1,), 0), pool.frame):
        for index in (4, -1, "0", 1.0, True, 2 ** 70):
            with pytest.raises(conveyor.InvalidArgument, match="slot index"):
                call(index)
    for call in (lambda d: pool.array(0, d, (1,)), lambda d: pool.describe(0, d, (1,))):
        for dtype in (3, -1, np.float64, "f8", None):
            with pytest.raises(conveyor.InvalidArgument, match="dtype"):
                call(dtype)
    for call in (lambda s: pool.array(0, F64, s), lambda s: pool.describe(0, F64, s)):
        for shape in ((1, 1, 1, 1, 1), (-1,), "x", (1.5,), None):
            with pytest.raises(conveyor.InvalidArgument) as raised:
                call(shape)
            assert type(raised.value) is conveyor.InvalidArgument
        for shape in ((513,), (8, 8, 8, 2), (2 ** 40, 2 ** 40)):  # 4104, 8192 bytes, 2**83
            with pytest.raises(conveyor.TooLarge):
                call(shape)
    with pytest.raises(conveyor.TooLarge, match="4097 bytes; slots hold 4096"):
        pool.array(0, BYTES, (4097,))
    pool.array(0, BYTES, (4096,))  # exactly a slot
    for tag in (-1, 2 ** 64, 1.0):
        with pytest.raises(conveyor.InvalidArgument, match="tag"):
            pool.describe(0, F64, (1,), tag)
    for args in ((0, 1), (1, 0), (_core.POOL_MAX_SLOTS + 1, 1), (1, _core.MAX_SLOT_BYTES + 1),
                 ("1", 1), (1, 1, 9), (1, 1, _core.BACKING_NAMED)):
        with pytest.raises(conveyor.InvalidArgument):
            _core.Pool(*args)
    with pytest.raises(conveyor.InvalidArgument):
        _core.Pool.attach_fd(-1)
    channel = _core.Channel(1, 1)
    with pytest.raises(conveyor.NotARing):
        _core.Pool.attach_fd(channel.fd)  # a channel is not a pool
    with pytest.raises(conveyor.NotARing):
        _core.Channel.attach_fd(pool.fd)  # nor the reverse
    channel.close()
    pool.close()


def test_a_closed_pool_raises_closed_but_a_live_array_still_reads_until_it_dies():
    pool = _core.Pool(2, 4096)
    inode = os.fstat(pool.fd).st_ino
    x = pool.array(1, F64, (8,), True)
    x[...] = np.arange(8.0)
    pool.close()
    pool.close()  # idempotent
    assert pool.closed
    for call in (lambda: pool.array(0, F64, (1,)), lambda: pool.describe(0, F64, (1,)),
                 lambda: pool.frame(0), lambda: pool.fd):
        with pytest.raises(conveyor.Closed, match="the pool is closed"):
            call()
    assert np.array_equal(x, np.arange(8.0))  # still mapped
    x[0] = 42.0
    assert x[0] == 42.0 and inode in mapped_inodes()
    del x
    assert inode not in mapped_inodes()  # the last array gone: unmapped


def test_a_pool_inherited_over_fork_works_in_the_child():
    pool = _core.Pool(4, 4096)

    def child():
        pool.array(3, F64, (4,), True)[...] = [1.0, 2.0, 3.0, 4.0]
        pool.describe(3, F64, (4,), 99)

    assert reap(fork(child)) == 0
    assert pool.frame(3) == (F64, (4,), 99)
    assert np.array_equal(pool.array(3, F64, (4,)), [1.0, 2.0, 3.0, 4.0])
    pool.close()


# ---- Channel --------------------------------------------------------------------------------

def open_channel(lanes=2, capacity=8):
    channel = _core.Channel(lanes, capacity)
    senders = [channel.open(SENDER, lane) for lane in range(lanes)]
    return channel, senders, channel.open(RECEIVER)


def test_a_channel_reports_its_geometry_and_counters():
    channel, (s0, s1), receiver = open_channel(2, 8)
    assert (channel.lanes, channel.capacity, channel.backing, channel.name) == (2, 8, _core.BACKING_MEMFD, None)
    assert channel.desc == f"memfd:{channel.fd}" and channel.mapped_bytes > 0
    assert (s0.role, s0.lane, s1.lane, receiver.role, receiver.lane) == (SENDER, 0, 1, RECEIVER, 0)
    assert s1.channel is channel
    assert "lanes=2 capacity=8" in repr(channel) and "sender lane=1" in repr(s1)
    s0.send(1)
    s1.send(2)
    receiver.receive(1)
    stats = channel.stats()
    assert stats["words_sent"] == 2 and stats["words_received"] == 1
    assert (stats["lanes"], stats["capacity"], stats["mapped_bytes"]) == (2, 8, channel.mapped_bytes)
    assert set(stats) == {"words_sent", "words_received", "sender_waits", "sender_wakes",
                          "receiver_waits", "receiver_wakes", "lanes", "capacity", "mapped_bytes"}


def test_words_arrive_in_order_on_each_of_two_lanes():
    channel, (s0, s1), receiver = open_channel(2, 8)
    for i in range(6):
        assert s0.send(i) is True
        assert s1.send(100 + i, timeout=0) is True
    assert [receiver.receive(1) for _ in range(3)] == [100, 101, 102]
    assert [receiver.receive(0, timeout=0) for _ in range(6)] == list(range(6))
    assert [receiver.receive(lane=1, timeout=LIMIT) for _ in range(3)] == [103, 104, 105]


def test_a_receive_times_out_with_none_promptly():
    channel, (s0, s1), receiver = open_channel(2, 2)
    for call in (lambda t: receiver.receive(0, timeout=t), lambda t: receiver.receive_any(timeout=t)):
        assert call(0) is None
        start = time.monotonic()
        assert call(0.05) is None
        took = time.monotonic() - start
        assert 0.045 <= took < 1.0, took
    assert s0.send(1) and s0.send(2)  # the lane is full now
    assert s0.send(3, timeout=0) is False
    start = time.monotonic()
    assert s0.send(3, timeout=0.05) is False
    assert 0.045 <= time.monotonic() - start < 1.0
    assert receiver.receive(0) == 1 and s0.send(3, timeout=0) is True


def test_receive_any_serves_ready_lanes_round_robin():
    channel, senders, receiver = open_channel(3, 8)
    for lane, sender in enumerate(senders):
        for i in range(3):
            sender.send(10 * lane + i)
    got = [receiver.receive_any(timeout=0) for _ in range(9)]
    assert got == [(lane, 10 * lane + i) for i in range(3) for lane in range(3)]
    assert receiver.receive_any(timeout=0) is None
    senders[1].send(7)
    assert receiver.receive_any() == (1, 7)


def test_end_of_stream_after_the_sender_closes_its_lane():
    channel, (s0, s1), receiver = open_channel(2, 4)
    s0.send(1)
    s0.close()
    s0.close()  # idempotent
    with pytest.raises(conveyor.Closed, match="sending on lane 0"):
        s0.send(2)
    assert receiver.receive(0) == 1
    with pytest.raises(conveyor.EndOfStream, match="receiving from lane 0"):
        receiver.receive(0, timeout=LIMIT)
    assert receiver.receive_any(timeout=0) is None  # lane 1 is open, and empty
    s1.send(5)
    s1.close()
    assert receiver.receive_any(timeout=LIMIT) == (1, 5)
    with pytest.raises(conveyor.EndOfStream):
        receiver.receive_any(timeout=LIMIT)


@pytest.mark.parametrize("call", ["receive", "receive_any"])
def test_peer_died_once_the_senders_process_died_without_closing(call):
    channel = _core.Channel(2, 4)
    receiver = channel.open(RECEIVER)

    def child():
        sender = channel.open(SENDER, 1)  # the holder inherited over fork opens it here
        sender.send(41)

    pid = fork(child)
    if call == "receive":
        assert receiver.receive(1, timeout=LIMIT) == 41
    else:
        assert receiver.receive_any(timeout=LIMIT) == (1, 41)
    assert reap(pid) == 0
    with pytest.raises(conveyor.PeerDied, match="lane 1.*CONVEYOR_E_PEER_DEAD") as raised:
        if call == "receive":
            receiver.receive(1, timeout=LIMIT)
        else:
            receiver.receive_any(timeout=LIMIT)
    assert raised.value.lane == 1
    assert raised.value.status == 11 and raised.value.name == "CONVEYOR_E_PEER_DEAD"
    # The lane is handed over to a new sender in this process, and goes on.
    sender = channel.open(SENDER, 1)
    sender.send(42)
    assert receiver.receive(1, timeout=LIMIT) == 42


def test_a_forked_child_opens_the_receiver_of_an_inherited_holder():
    channel = _core.Channel(1, 4)
    sender = channel.open(SENDER)

    def child():
        receiver = channel.open(RECEIVER)
        assert receiver.receive(0, timeout=LIMIT) == 77
        with pytest.raises(conveyor.EndOfStream):
            receiver.receive(0, timeout=LIMIT)

    pid = fork(child)
    assert sender.send(77, timeout=LIMIT)
    sender.close()
    assert reap(pid) == 0
    assert channel.stats()["words_received"] == 1


def test_a_word_out_of_range_is_invalid_argument():
    channel, (sender,), receiver = open_channel(1, 4)
    for word in (-1, 2 ** 64, 1.0, "1", True, None, 2 ** 200):
        with pytest.raises(conveyor.InvalidArgument, match="a word must be an int in 0...18446744073709551615"):
            sender.send(word)
        with pytest.raises(ValueError):
            sender.send(word)
    for word in (0, 2 ** 64 - 1, np.uint64(2 ** 63), 12345):
        assert sender.send(word)
        assert receiver.receive(0) == int(word)
    for lane in (1, -1, "0", 0.0):
        with pytest.raises(conveyor.InvalidArgument, match="lane"):
            receiver.receive(lane, timeout=0)
    for timeout in (-1, float("nan"), "1"):
        with pytest.raises(conveyor.InvalidArgument, match="timeout"):
            receiver.receive(0, timeout=timeout)
    assert channel.stats()["words_sent"] == 4  # nothing was sent by a failed call


def test_a_call_while_another_threads_call_waits_raises_runtime_error_at_once():
    channel, (sender,), receiver = open_channel(1, 4)
    baseline = channel.stats()["receiver_waits"]
    result = {}

    def blocked():
        try:
            result["word"] = receiver.receive(0, timeout=2)
        except BaseException as error:  # reported below
            result["error"] = error

    thread = threading.Thread(target=blocked, daemon=True)
    thread.start()
    try:
        wait_until(lambda: channel.stats()["receiver_waits"] > baseline,
                   "the thread sleeps in receive")
        for call in (lambda: receiver.receive(0, timeout=1), lambda: receiver.receive_any(timeout=1),
                     lambda: receiver.receive(0, timeout=0)):
            start = time.monotonic()
            with pytest.raises(RuntimeError, match="used by another thread"):
                call()
            assert time.monotonic() - start < 0.5
        assert sender.send(9)
    finally:
        thread.join(LIMIT)
    assert result == {"word": 9}
    sender.send(10)
    assert receiver.receive(0, timeout=0) == 10  # usable again from this thread


def test_destroy_from_another_thread_ends_a_blocked_receive_with_closed():
    channel, (sender,), receiver = open_channel(1, 4)
    baseline = channel.stats()["receiver_waits"]
    result = {}

    def blocked():
        try:
            result["word"] = receiver.receive(0, timeout=LIMIT)
        except BaseException as error:  # reported below
            result["error"] = error

    thread = threading.Thread(target=blocked, daemon=True)
    thread.start()
    wait_until(lambda: channel.stats()["receiver_waits"] > baseline, "the thread sleeps in receive")
    receiver.destroy()
    thread.join(LIMIT)
    assert not thread.is_alive()
    assert isinstance(result.get("error"), conveyor.Closed), result
    assert receiver.destroyed
    again = channel.open(RECEIVER)  # handed back once the call left
    sender.send(3)
    assert again.receive(0) == 3


def test_a_signal_handlers_exception_ends_a_blocked_receive():
    channel, (sender,), receiver = open_channel(1, 4)

    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        start = time.monotonic()
        with pytest.raises(Interrupted):
            receiver.receive(0, timeout=LIMIT)
        assert time.monotonic() - start < LIMIT / 2
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    sender.send(4)
    assert receiver.receive(0, timeout=0) == 4  # not left in use


def test_ends_refuse_the_other_roles_calls_and_taken_ends():
    channel, (s0, s1), receiver = open_channel(2, 4)
    with pytest.raises(conveyor.WrongRole):
        s0.receive(0, timeout=0)
    with pytest.raises(conveyor.WrongRole):
        s0.receive_any(timeout=0)
    with pytest.raises(conveyor.WrongRole, match="sending"):
        receiver.send(1)
    with pytest.raises(conveyor.WrongRole, match="destroy"):
        receiver.close()
    with pytest.raises(conveyor.Busy, match="opening the sender of lane 0"):
        channel.open(SENDER, 0)
    with pytest.raises(conveyor.Busy, match="opening the receiver"):
        channel.open(RECEIVER)
    for role, lane in ((_core.CHANNEL_HOLDER, 0), (0, 0), (SENDER, 2), (RECEIVER, 1), (SENDER, -1)):
        with pytest.raises(conveyor.InvalidArgument):
            channel.open(role, lane)
    s0.destroy()
    replacement = channel.open(SENDER, 0)  # handed back
    assert replacement.send(8) and receiver.receive(0) == 8


def test_a_destroyed_end_and_a_closed_channel_raise_closed():
    channel, (sender,), receiver = open_channel(1, 4)
    sender.destroy()
    sender.destroy()  # idempotent
    assert sender.destroyed
    for call in (lambda: sender.send(1), lambda: sender.close(), lambda: sender.receive(0)):
        with pytest.raises(conveyor.Closed, match="destroyed"):
            call()
    receiver.destroy()
    for call in (lambda: receiver.receive(0), lambda: receiver.receive_any(), lambda: receiver.close()):
        with pytest.raises(conveyor.Closed):
            call()
    end = channel.open(SENDER)
    channel.close()
    channel.close()  # idempotent
    assert channel.closed
    for call in (lambda: channel.open(RECEIVER), channel.stats, lambda: channel.fd):
        with pytest.raises(conveyor.Closed, match="the channel is closed"):
            call()
    assert end.send(5)  # an end keeps its own handle
    assert end.channel is channel


def test_bad_channel_arguments_are_invalid_argument():
    for args in ((0, 1), (1, 0), (_core.CHANNEL_MAX_LANES + 1, 1), (1, _core.CHANNEL_MAX_CAPACITY + 1),
                 (1, 1, -1), (1, 1, 2 ** 32), (1, 1, None, 7), (1, 1, None, _core.BACKING_NAMED),
                 (1.0, 1)):
        with pytest.raises(conveyor.InvalidArgument):
            _core.Channel(*args)
    with pytest.raises(conveyor.InvalidArgument):
        _core.Channel.attach_fd("3")


def test_a_channel_attached_by_fd_carries_words_between_holders():
    channel = _core.Channel(2, 4, spin=0, backing=_core.BACKING_MEMFD)
    other = _core.Channel.attach_fd(channel.fd)
    assert (other.lanes, other.capacity, other.mapped_bytes) == (2, 4, channel.mapped_bytes)
    sender = channel.open(SENDER, 1)
    receiver = other.open(RECEIVER)
    sender.send(2 ** 40)
    assert receiver.receive_any(timeout=LIMIT) == (1, 2 ** 40)
    with pytest.raises(conveyor.Busy):
        channel.open(RECEIVER)  # the same end, through the other holder


def test_a_named_channel_attached_by_name_carries_words_and_its_name_goes():
    name = support.ring_name("channel")
    channel = _core.Channel(1, 4, backing=_core.BACKING_NAMED, name=name)
    assert (channel.name, channel.desc, channel.fd >= 0) == (name, name, True)
    other = _core.Channel.attach_named(name)
    sender, receiver = channel.open(SENDER), other.open(RECEIVER)
    sender.send(6)
    assert receiver.receive(0, timeout=LIMIT) == 6
    for end in (sender, receiver):
        end.destroy()
    other.close()
    channel.close()
    assert not os.path.exists(support.shm_path(name))


def test_an_anonymous_channel_and_pool_cross_fork():
    channel = _core.Channel(1, 4, backing=_core.BACKING_ANONYMOUS)
    pool = _core.Pool(2, 4096, backing=_core.BACKING_ANONYMOUS)
    assert (channel.fd, channel.desc, pool.fd, pool.desc) == (-1, "anonymous", -1, "anonymous")
    receiver = channel.open(RECEIVER)

    def child():
        pool.array(1, BYTES, (3,), True)[...] = [1, 2, 3]
        pool.describe(1, BYTES, (3,), 5)
        channel.open(SENDER).send(1)  # the slot's number, published by the send

    pid = fork(child)
    slot = receiver.receive(0, timeout=LIMIT)
    assert pool.frame(slot) == (BYTES, (3,), 5)
    assert list(pool.array(slot, BYTES, (3,))) == [1, 2, 3]
    assert reap(pid) == 0


# ---- die_with_parent ---------------------------------------------------------------------

PR_SET_CHILD_SUBREAPER = 36


def test_die_with_parent_kills_a_process_whose_parent_exits():
    """A (this test) forks B, B forks C; C calls die_with_parent(B), says so on a pipe and
    sleeps; B exits; C must die: its end of the pipe closes. This process is the
    subreaper meanwhile, so C is re-parented here and its death signal can be read. If C
    does not die, the test kills it (a sleeper left behind would hold pytest's output)."""
    libc = ctypes.CDLL(None, use_errno=True)
    subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    ready_r, ready_w = os.pipe()  # C's line, then EOF when C dies
    go_r, go_w = os.pipe()        # EOF: B exits
    c_pid, c_dead = None, False
    try:
        def b():
            os.close(ready_r)
            os.close(go_w)
            b_pid = os.getpid()
            c = os.fork()
            if c == 0:
                try:
                    os.close(go_r)
                    _core.die_with_parent(b_pid)
                    os.write(ready_w, b"%d\n" % os.getpid())
                    while True:
                        signal.pause()
                finally:
                    os._exit(3)
            os.close(ready_w)  # only C holds a write end now
            os.read(go_r, 1)

        b_pid = fork(b)
        os.close(ready_w)
        os.close(go_r)
        c_pid = int(read_line(ready_r, "C's pid after die_with_parent"))
        support.STARTED_PIDS.add(c_pid)
        os.close(go_w)
        go_w = None
        assert reap(b_pid) == 0
        read_until_eof(ready_r, "C dies when B exits", limit=10)
        c_dead = True
        if subreaper:
            assert reap(c_pid, limit=10) == -signal.SIGKILL
    finally:
        if c_pid is not None and not c_dead:
            try:
                os.kill(c_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if subreaper:
                reap(c_pid)
        if subreaper:
            libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        os.close(ready_r)
        if go_w is not None:
            os.close(go_w)


def test_die_with_parent_returns_for_the_parent_and_kills_at_once_for_another_pid():
    assert reap(fork(lambda: _core.die_with_parent(os.getppid()))) == 0
    # Not the parent (its own pid): as if the parent had died before the call.
    assert reap(fork(lambda: _core.die_with_parent(os.getpid()))) == -signal.SIGKILL


def test_die_with_parent_refuses_what_is_not_a_pid():
    for pid in (0, -1, 2 ** 31, "1", 1.0, True, None):
        with pytest.raises(conveyor.InvalidArgument, match="parent_pid"):
            _core.die_with_parent(pid)
