"""Rings for numpy: Ring, Producer, Consumer (Loan and Frame come from the extension).

The per-frame paths (loan, commit, receive, iteration, release) are in C
(conveyor._core); this module adds what is not per frame: argument checking at ring
creation, context managers, pickling for multiprocessing, and removing a named ring's
name at interpreter exit.
"""

import atexit
import os
import weakref

import numpy as np

from . import _core

__all__ = ["Ring", "Producer", "Consumer", "Loan", "Frame"]

Loan = _core.Loan
Frame = _core.Frame

_BACKINGS = {
    "anonymous": _core.BACKING_ANONYMOUS,
    "memfd": _core.BACKING_MEMFD,
    "named": _core.BACKING_NAMED,
}
_BACKING_NAMES = {code: name for name, code in _BACKINGS.items()}
_DTYPES = (np.dtype(np.uint8), np.dtype(np.float32), np.dtype(np.float64))


def _invalid(detail, ring=None, status=2):
    """The InvalidArgument (or other status) exception the C layer would raise."""
    return _core._error(status, detail, ring)


def _check_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise _invalid(f"{dtype!r} is not a dtype; frames hold float64, float32 or uint8") from None
    if dt not in _DTYPES or dt.byteorder not in "=|":
        raise _invalid(f"dtype {dt} is not supported; frames hold float64, float32 or uint8 "
                       "in native byte order")
    return dt


def _check_shape(shape):
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise _invalid(f"shape must be an int or a tuple of ints, not {shape!r}")
    out = []
    for extent in shape:
        if isinstance(extent, bool) or not isinstance(extent, (int, np.integer)):
            raise _invalid(f"shape {tuple(shape)!r}: extent {extent!r} is not an int")
        if extent < 0:
            raise _invalid(f"shape {tuple(shape)!r}: extents must be >= 0")
        out.append(int(extent))
    if len(out) > _core.MAX_RANK:
        raise _invalid(f"shape {tuple(out)!r} has rank {len(out)}; frames have at most "
                       f"{_core.MAX_RANK} dimensions")
    return tuple(out)


def _check_name(name):
    if not isinstance(name, str):
        raise _invalid(f"a ring name is a str like '/x', not {name!r}")
    if len(name) < 2 or name[0] != "/" or "/" in name[1:] or len(name.encode()) > 200:
        shown = repr(name) if len(name) <= 60 else repr(name[:40]) + f"... ({len(name)} chars)"
        raise _invalid(f"bad ring name {shown}: a name is '/' then 1 to 199 bytes "
                       "without another '/'")


class Ring:
    """A ring of `slots` shared-memory slots carrying numpy arrays between processes.

    ``Ring(slots, shape=None, dtype=None, name=None, backing=None, slot_bytes=None,
    spin=None)``

    One producer loans slots, writes arrays into them in place and commits them; one
    consumer receives them in place as read-only arrays, in order. Nothing is copied or
    pickled: what crosses is a sequence number. When every slot is full the producer
    waits (backpressure).

    - ``shape``, ``dtype``: the default frame of ``producer().loan()``; each slot holds
      ``prod(shape) * itemsize`` bytes (or ``slot_bytes``, if larger). dtype is
      float64 (the default), float32 or uint8; rank <= 4. With ``slot_bytes`` alone
      loans must give their shape.
    - ``backing``: ``"memfd"`` (the default: passes to any child, fork or spawn, by
      fd), ``"named"`` (implied by ``name="/x"``: unrelated processes use
      ``Ring.attach("/x")``), ``"anonymous"`` (fork only, by inheritance).
    - ``spin``: pause iterations a waiting side spins before sleeping (default 2048).

    Lifetime rule: a received array, or any numpy view derived from it, keeps its slot.
    The slot goes back to the producer when the last view dies, in stream order; until
    then its data cannot change, and nothing crashes after ``close()``, destruction of
    the ring or garbage collection. A view kept for long stalls the producer once its
    slot comes round again: backpressure, never corruption.

    A named ring is removed from /dev/shm when its creating process closes it, when the
    ring and every producer/consumer opened from it are collected, or at interpreter
    exit; another process (or a forked child) never removes it.

    Processes: a forked child inherits the Ring and calls ``ring.producer()`` or
    ``ring.consumer()`` itself. A Producer, Consumer, Loan or received frame it inherits
    stays its parent's: calls on them there raise WrongRole, and their death there (at
    the child's exit too) or a ``with`` block's exit changes nothing the parent sees.
    Other processes get the ring by pickling (multiprocessing does it for a spawned
    child's arguments and for queues and pipes) or by ``Ring.attach(name)``.

    Pickle a memfd ring only to hand it to multiprocessing. Outside the start of a
    process, its fd travels through multiprocessing's resource_sharer
    (``multiprocessing.reduction.DupFd``): every ``pickle.dumps`` keeps a duplicate of
    the fd open in this process (and a server thread running) until that pickle is
    loaded, and a pickle can be loaded once only. A pickle kept, stored or never loaded
    keeps the ring's memory alive; a named ring pickles as its name and has none of this.

    Cost: one mmap (plus memfd_create or shm_open); memory is committed as slots are
    first written. Raises InvalidArgument (slots <= 0, bad shape or dtype, bad name),
    TooLarge, Exists (the name is taken), SystemCallFailed.
    """

    __slots__ = ("_holder", "_shape", "_dtype", "__weakref__")

    def __init__(self, slots, shape=None, dtype=None, name=None, backing=None,
                 slot_bytes=None, spin=None):
        if isinstance(slots, bool) or not isinstance(slots, (int, np.integer)):
            raise _invalid(f"slots must be an int, not {slots!r}")
        if not 1 <= slots <= _core.MAX_SLOTS:
            raise _invalid(f"slots must be in 1...{_core.MAX_SLOTS}, not {slots}")
        if backing is None:
            backing = "named" if name is not None else "memfd"
        if backing not in _BACKINGS:
            raise _invalid(f"backing must be 'memfd', 'named' or 'anonymous', not {backing!r}")
        if (backing == "named") != (name is not None):
            raise _invalid("a named ring needs name='/x', and only a named ring takes a name")
        if name is not None:
            _check_name(name)
        dt = _check_dtype(dtype) if dtype is not None else _DTYPES[2]
        frame_bytes = None
        if shape is not None:
            shape = _check_shape(shape)
            frame_bytes = dt.itemsize
            for extent in shape:
                frame_bytes *= extent
        if slot_bytes is None:
            if frame_bytes is None:
                raise _invalid("give the frame shape (and dtype), or slot_bytes")
            slot_bytes = max(frame_bytes, 1)
        elif isinstance(slot_bytes, bool) or not isinstance(slot_bytes, (int, np.integer)):
            raise _invalid(f"slot_bytes must be an int, not {slot_bytes!r}")
        elif frame_bytes is not None and frame_bytes > slot_bytes:
            raise _invalid(f"a frame of shape {shape} ({frame_bytes} bytes) does not fit in "
                           f"slot_bytes={slot_bytes}", status=21)
        if not 1 <= slot_bytes <= _core.MAX_SLOT_BYTES:
            what = f"a frame of shape {shape} takes" if slot_bytes == frame_bytes else "a slot of"
            raise _invalid(f"{what} {slot_bytes} bytes; slots hold 1...{_core.MAX_SLOT_BYTES}",
                           status=21 if slot_bytes > 0 else 2)
        self._holder = _core.RingHolder.create(int(slots), int(slot_bytes), _BACKINGS[backing],
                                               name, spin)
        self._shape = shape
        self._dtype = dt if shape is not None or dtype is not None else None
        if self._holder.creator:
            _creators.add(self._holder)

    @classmethod
    def _wrap(cls, holder, shape, dtype):
        ring = cls.__new__(cls)
        ring._holder = holder
        ring._shape = _check_shape(shape) if shape is not None else None
        ring._dtype = _check_dtype(dtype) if dtype is not None else None
        if ring._shape is not None and ring._dtype is None:
            ring._dtype = _DTYPES[2]
        return ring

    @classmethod
    def attach(cls, name, shape=None, dtype=None):
        """Attaches the existing named ring `name` (made by any process, in any language).

        ``shape``/``dtype`` set the default frame of ``loan()`` here (unknown otherwise:
        ``Ring.shape`` is then None and loans must say their shape). This process never
        removes the name. Cost: shm_open, fstat, mmap. Raises SystemCallFailed (errno
        ENOENT: no such ring), InvalidArgument (a bad name), NotARing, VersionMismatch,
        Truncated, RingCorrupt (the memory is not a valid ring: nothing was changed).
        """
        _check_name(name)
        return cls._wrap(_core.RingHolder.attach_named(name), shape, dtype)

    @classmethod
    def from_fd(cls, fd, shape=None, dtype=None):
        """Attaches the memfd ring behind `fd` (dup'ed: close yours when done).

        For an fd passed by hand (e.g. to or from a C program); multiprocessing passes
        rings by pickling them instead. Raises NotSealed (not a memfd ring's fd),
        NotARing, VersionMismatch, Truncated, RingCorrupt, SystemCallFailed.
        """
        return cls._wrap(_core.RingHolder.attach_fd(fd), shape, dtype)

    # ---- sides ---------------------------------------------------------------------------

    def producer(self):
        """Claims the producer side: a Producer (a context manager).

        In a forked child, call it on the inherited ring: the side is claimed for the
        child. Cost: no system call (one liveness probe if a previous owner is recorded).
        Raises Busy (another live producer holds the side), Closed (ring closed).
        """
        return Producer(self._holder, self._shape, self._dtype)

    def consumer(self):
        """Claims the consumer side: a Consumer (a context manager, iterable).

        A new consumer resumes where the previous one stopped: a frame a dead consumer
        held is received again. Raises Busy, Closed.
        """
        return Consumer(self._holder)

    # ---- attributes ------------------------------------------------------------------------

    @property
    def slots(self):
        """Number of slots: frames in flight at most."""
        return self._holder.slots

    @property
    def slot_bytes(self):
        """Capacity of each slot in bytes."""
        return self._holder.slot_bytes

    @property
    def shape(self):
        """Default frame shape of loans (a tuple), or None when unknown."""
        return self._shape

    @property
    def dtype(self):
        """Default numpy dtype of loans, or None when unknown."""
        return self._dtype

    @property
    def name(self):
        """The name of a named ring ('/x'), else None."""
        return self._holder.name

    @property
    def backing(self):
        """'memfd', 'named' or 'anonymous'."""
        return _BACKING_NAMES[self._holder.backing]

    @property
    def mapped_bytes(self):
        """Bytes of shared memory the ring maps (header, descriptors, page-rounded slots)."""
        return self._holder.mapped_bytes

    @property
    def fd(self):
        """The fd of a memfd or named ring (owned by the ring; -1 if anonymous), for
        passing it to a C program by hand. Raises Closed after close()."""
        return self._holder.fd

    @property
    def closed(self):
        """True after close()."""
        return self._holder.closed

    def stats(self):
        """The ring's shared counters as a dict (the fields of conveyor_ring_stats:
        frames_committed, frames_released, producer_waits, peak_occupancy, ...).
        Cost: a few loads. Raises Closed after close()."""
        return self._holder.stats()

    def close(self):
        """Releases this process's handle on the ring; the creator of a named ring also
        removes the name from /dev/shm. Producers and consumers already opened keep
        working until closed. Idempotent; never raises."""
        self._holder.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    def __repr__(self):
        state = " closed" if self.closed else ""
        return (f"<conveyor.Ring {self._holder.desc}{state} slots={self.slots} "
                f"slot_bytes={self.slot_bytes} shape={self._shape} "
                f"dtype={None if self._dtype is None else self._dtype.name}>")

    # ---- pickling -------------------------------------------------------------------------

    def __reduce__(self):
        """Pickling, for multiprocessing: a named ring by its name; a memfd ring by its fd,
        through ``multiprocessing.reduction.DupFd`` (at a process start, the fd is passed
        to the child directly; otherwise multiprocessing's resource_sharer keeps a
        duplicate of it open here until the pickle is loaded, once: do not pickle a memfd
        ring for any other purpose). Raises InvalidArgument for an anonymous ring."""
        meta = (self._shape, None if self._dtype is None else self._dtype.str)
        backing = self.backing
        if backing == "anonymous":
            raise _invalid("anonymous rings cross fork by inheritance only and cannot be "
                           "pickled; make the ring with backing='memfd' (the default) or a "
                           "name to pass it to a spawned process", self._holder.desc)
        if backing == "named":
            return (_rebuild_named, (self.name,) + meta)
        from multiprocessing.reduction import DupFd
        return (_rebuild_memfd, (DupFd(self._holder.fd),) + meta)


def _rebuild_named(name, shape, dtype):
    return Ring._wrap(_core.RingHolder.attach_named(name), shape, dtype)


def _rebuild_memfd(dupfd, shape, dtype):
    fd = dupfd.detach()
    try:
        holder = _core.RingHolder.attach_fd(fd)
    finally:
        os.close(fd)
    return Ring._wrap(holder, shape, dtype)


# Holders of named rings this process created: their names go at interpreter exit.
_creators = weakref.WeakSet()


@atexit.register
def _remove_names():
    for holder in list(_creators):
        holder.close()


class Producer(_core.Producer):
    """The producer side of a ring: loans slots, commits frames, ends the stream.

    Made by ``Ring.producer()``. ``with ring.producer() as prod:`` closes the stream at
    a clean exit of the block (the consumer then gets EndOfStream after the last
    frame); an exception leaving the block detaches without closing, so the consumer
    gets PeerDied instead of a truncated stream that looks complete. A Producer
    collected without close() does the same as detach().

    A Producer belongs to the process that opened it (``pid``, ``owned``). A forked
    child's inherited copy raises WrongRole on every call, its ``with`` block exit does
    nothing there, and its death there changes nothing: the stream stays the parent's.
    The child calls ``ring.producer()`` itself (Busy while the parent's is open).

    Methods: ``loan(shape=None, dtype=None, *, tag=0, timeout=None)`` -> Loan,
    ``put(array, timeout=None, tag=0)``, ``close()``, ``detach()``, ``set_spin(n)``.
    One thread at a time should use a producer; calls from several are serialized (a
    call waiting for another thread's counts that wait in its timeout and wakes for
    Ctrl-C; close() from another thread makes a waiting loan or put raise Closed).
    Producers do not pickle: pass the Ring and call ``ring.producer()`` there.
    """

    __slots__ = ()
    __module__ = "conveyor"

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self.owned:
            return False  # a forked child leaving its parent's block: the side is the parent's
        if exc_type is None:
            self.close()
        else:
            self.detach()
        return False

    def __reduce__(self):
        raise TypeError("a conveyor Producer cannot be pickled: pass the Ring to the other "
                        "process and call ring.producer() there")

    def __repr__(self):
        state = "closed" if self.closed else "open"
        if not self.owned:
            state += f" (process {self.pid}'s)"
        return f"<conveyor.Producer {state} on ring {self.ring_desc} shape={self.shape}>"


class Consumer(_core.Consumer):
    """The consumer side of a ring: receives frames in place, as read-only arrays.

    Made by ``Ring.consumer()``. ``receive(timeout=None)`` returns the next frame;
    iterating yields frames until end of stream (``for x in cons:``). Up to ``slots``
    received frames may be alive at once; each goes back to the producer, in order,
    when its last view dies. ``with`` closes the consumer at the end of the block.
    Consumers do not pickle: pass the Ring and call ``ring.consumer()`` there.

    A Consumer belongs to the process that opened it (``pid``, ``owned``). A forked
    child's inherited copy raises WrongRole on every call; its ``with`` block exit, its
    death and the death of the frames it inherited change nothing there: the parent's
    frames stay held, its stream goes on. The child calls ``ring.consumer()`` itself.
    """

    __slots__ = ()
    __module__ = "conveyor"

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.owned:  # else a forked child leaving its parent's block: nothing to do
            self.close()
        return False

    def __reduce__(self):
        raise TypeError("a conveyor Consumer cannot be pickled: pass the Ring to the other "
                        "process and call ring.consumer() there")

    def __repr__(self):
        state = "closed" if self.closed else "open"
        if not self.owned:
            state += f" (process {self.pid}'s)"
        return f"<conveyor.Consumer {state} on ring {self.ring_desc} held={self.held}>"


Ring.__module__ = "conveyor"
