/*
 * side.c — Producer and Consumer: one side of a ring each, a conveyor_ring handle opened
 * on a RingHolder's mapping (conveyor_ring_open_side).
 *
 * Locking. The C handle is used by one thread at a time: a PyThread lock guards it.
 * Blocking calls hold it while they wait with the GIL released (wait.c). A call that
 * finds it taken waits for it in slices with the GIL released, interruptible by signals
 * and within its own timeout. Everything else here (hold bookkeeping, flags) is guarded
 * by the GIL. A Frame or Loan that dies while another thread holds the lock never blocks
 * on it (it holds the GIL, which the lock holder may need): it marks itself done and
 * leaves the C call to the holder, who runs it right after taking the lock, between wait
 * slices and before giving the lock back (cvpy_side_run_pending).
 *
 * Closing. close() and detach() first raise `stopping`, which a waiting loan, put or
 * receive checks between slices and gives up on; then they take the lock, end the
 * stream (close: conveyor_ring_close) and only then set `closed`, which allows the
 * handle's destruction. A waiter leaving first cannot destroy the handle before the
 * stream's end is written.
 *
 * Fork. A side belongs to the process that opened it (`forks`, `pid`). In a forked copy
 * nothing reaches the C handle but conveyor_ring_destroy at dealloc: no release, abandon
 * or close (the C library would take the first use of an inherited handle for a
 * hand-over, the child taking the parent's side); explicit calls raise WrongRole, and
 * dying Frames and Loans, or a `with` block's exit, change nothing the parent sees.
 *
 * Hold bookkeeping (consumer). The handle may hold up to `slots` received frames
 * (conveyor_ring_set_hold_limit); frames are numbered locally from 0 (`next`, `oldest`)
 * and done[seq % slots] says that frame's Frame object (and so every numpy view of it)
 * is gone. Frames are released oldest first while the oldest is done.
 *
 * Lifetime. Frames and Loans hold a strong reference to their side. The handle is
 * destroyed when the side is closed and nothing of it is alive, or at dealloc.
 */
#include "core.h"

#include <string.h>

/* ---- ownership ------------------------------------------------------------------------ */

PyObject *cvpy_side_foreign_error(cvpy_side *side, const char *what) {
    const char *role = side->role == CONVEYOR_RING_PRODUCER ? "producer" : "consumer";
    return cvpy_errorf(CONVEYOR_E_WRONG_ROLE, side->desc,
                       "this %s belongs to process %ld; call ring.%s() in this process",
                       what ? what : role, side->pid, role);
}

/* ---- lock ---------------------------------------------------------------------------- */

/* The slow path of cvpy_side_lock: another thread holds the lock. Waits in slices with
 * the GIL released (so the holder, who may need the GIL to finish, is never blocked by
 * us), and between slices lets signal handlers run and checks the caller's deadline. */
static int side_lock_wait(cvpy_side *side, int64_t deadline) {
    side->lock_waits++;
    for (;;) {
        int64_t slice = CVPY_SLICE_NS;
        if (deadline != CVPY_FOREVER) {
            int64_t left = deadline - cvpy_now_ns();
            if (left <= 0) {
                cvpy_errorf(CONVEYOR_E_TIMEOUT, side->desc,
                            "another thread is inside a call on this %s and did not leave it "
                            "before the timeout",
                            side->role == CONVEYOR_RING_PRODUCER ? "producer" : "consumer");
                return -1;
            }
            if (left < slice) slice = left;
        }
        PyLockStatus got;
        Py_BEGIN_ALLOW_THREADS
        got = PyThread_acquire_lock_timed(side->lock, (PY_TIMEOUT_T)((slice + 999) / 1000), 0);
        Py_END_ALLOW_THREADS
        if (got == PY_LOCK_ACQUIRED) return 0;
        if (PyErr_CheckSignals() < 0) return -1;
    }
}

int cvpy_side_lock(cvpy_side *side, int64_t deadline) {
    if (cvpy_side_foreign(side)) {
        cvpy_side_foreign_error(side, NULL);
        return -1;
    }
    unsigned long me = PyThread_get_thread_ident();
    if (side->lock_owner == me) {
        PyErr_SetString(PyExc_RuntimeError,
                        "re-entrant use of a conveyor producer/consumer by the thread already "
                        "inside one of its calls (from a signal handler or __del__?)");
        return -1;
    }
    if (PyThread_acquire_lock(side->lock, NOWAIT_LOCK)) {
        /* Nothing is queued: work is queued only while the lock is held, and the holder's
         * unlock ran it under the GIL, which this thread has held since. */
        side->lock_owner = me;
        return 0;
    }
    if (side_lock_wait(side, deadline) < 0) return -1;
    side->lock_owner = me;
    /* Taken with the GIL released: what died meanwhile (while the lock was ours, or its
     * previous holder's, without the GIL) is queued. A loan racing a dropped Loan must not
     * find the C loan still outstanding. */
    cvpy_side_run_pending(side);
    return 0;
}

int cvpy_side_trylock(cvpy_side *side) {
    /* A forked copy never touches the handle: releasing or abandoning through it would be
     * its first use in this process, which hands the parent's side over to us. */
    if (cvpy_side_foreign(side)) return 0;
    if (!PyThread_acquire_lock(side->lock, NOWAIT_LOCK)) return 0;
    side->lock_owner = PyThread_get_thread_ident();
    return 1;  /* nothing queued (see cvpy_side_lock); the caller's unlock runs its work */
}

void cvpy_side_run_pending(cvpy_side *side) {
    if (side->handle == NULL) return;
    if (side->role == CONVEYOR_RING_CONSUMER) {
        while (side->oldest != side->next && side->done[side->oldest % side->slots]) {
            (void)conveyor_ring_release(side->handle);  /* fails only on a bug of ours */
            side->done[side->oldest % side->slots] = 0;
            side->oldest++;
        }
    } else if (side->pending_abandon) {
        side->pending_abandon = 0;
        if (!side->closed) (void)conveyor_ring_abandon(side->handle);  /* close abandoned it */
    }
}

/* Destroys the handle once the side is closed (under the lock: after conveyor_ring_close
 * for a close, so the stream's end is never lost to a waiter leaving first) and nothing
 * of it is alive. */
static void side_maybe_destroy(cvpy_side *side) {
    if (side->handle == NULL || !side->closed || side->live != 0 || side->oldest != side->next)
        return;
    conveyor_ring *handle = side->handle;
    side->handle = NULL;
    conveyor_ring_destroy(handle);
}

void cvpy_side_unlock(cvpy_side *side) {
    cvpy_side_run_pending(side);
    side_maybe_destroy(side);
    side->lock_owner = 0;
    PyThread_release_lock(side->lock);
}

/* ---- open / dealloc ---------------------------------------------------------------- */

static PyObject *side_open(PyTypeObject *type, PyObject *holder_obj, int role) {
    if (!PyObject_TypeCheck(holder_obj, cvpy.holder_type)) {
        PyErr_Format(PyExc_TypeError, "expected a conveyor._core.RingHolder, not %R",
                     (PyObject *)Py_TYPE(holder_obj));
        return NULL;
    }
    cvpy_holder *holder = (cvpy_holder *)holder_obj;
    if (holder->handle == NULL)
        return cvpy_error(CONVEYOR_E_CLOSED, holder->desc, "the ring is closed");
    allocfunc alloc = CVPY_GET_SLOT(allocfunc, type, Py_tp_alloc);
    cvpy_side *side = (cvpy_side *)alloc(type, 0);
    if (side == NULL) return NULL;
    side->role = role;
    side->holder = Py_NewRef(holder_obj);
    side->desc = Py_NewRef(holder->desc);
    side->lock = PyThread_allocate_lock();
    side->forks = cvpy_forks;
    side->pid = cvpy_pid;
    if (side->lock == NULL) {
        Py_DECREF(side);
        return PyErr_NoMemory();
    }
    side->slots = holder->slots;
    side->slot_bytes = holder->slot_bytes;
    if (role == CONVEYOR_RING_CONSUMER) {
        side->done = PyMem_Calloc(side->slots, 1);
        if (side->done == NULL) {
            Py_DECREF(side);
            return PyErr_NoMemory();
        }
    }
    conveyor_ring *handle = NULL;
    int status = conveyor_ring_open_side(holder->handle, role, &handle);
    if (status != CONVEYOR_OK) {
        Py_DECREF(side);
        return cvpy_error_in(status, holder->desc,
                          role == CONVEYOR_RING_PRODUCER ? "opening the producer side"
                                                         : "opening the consumer side");
    }
    side->handle = handle;
    side->slot0 = conveyor_ring_slot_address(handle, 0);
    if (side->slots > 1)
        side->stride = (uint64_t)((const char *)conveyor_ring_slot_address(handle, 1) - side->slot0);
    if (role == CONVEYOR_RING_CONSUMER) {
        conveyor_ring_stats stats;
        memset(&stats, 0, sizeof stats);
        status = conveyor_ring_set_hold_limit(handle, side->slots);
        if (status == CONVEYOR_OK) status = conveyor_ring_read_stats(handle, &stats, sizeof stats);
        if (status != CONVEYOR_OK) {
            Py_DECREF(side);
            return cvpy_error_in(status, holder->desc, "setting up the consumer");
        }
        side->seq_base = stats.frames_released;
    }
    return (PyObject *)side;
}

static void side_dealloc(PyObject *op) {
    cvpy_side *side = (cvpy_side *)op;
    PyTypeObject *tp = Py_TYPE(op);
    /* No Frame or Loan is alive (each holds a reference), so no thread holds the lock. */
    int foreign = cvpy_side_foreign(side);
    if (side->handle != NULL) {
        /* In a forked copy only conveyor_ring_destroy, which does not hand back a side
         * inherited over fork and not used since: the parent's side stays the parent's. */
        if (!foreign) cvpy_side_run_pending(side);
        conveyor_ring *handle = side->handle;
        side->handle = NULL;
        conveyor_ring_destroy(handle);  /* a producer not closed: its consumer sees PeerDied */
    }
    /* A forked copy's lock may be held by a thread of the parent: freeing a held lock is
     * undefined, so it is left (a few bytes, once per inherited side). */
    if (side->lock != NULL && !foreign) PyThread_free_lock(side->lock);
    PyMem_Free(side->done);
    Py_XDECREF(side->holder);
    Py_XDECREF(side->desc);
    Py_XDECREF(side->last_shape);
    Py_XDECREF(side->def_shape);
    freefunc tp_free = CVPY_GET_SLOT(freefunc, tp, Py_tp_free);
    tp_free(op);
    Py_DECREF(tp);
}

static PyObject *side_closed_error(cvpy_side *side) {
    return cvpy_error(CONVEYOR_E_CLOSED, side->desc,
                      side->role == CONVEYOR_RING_PRODUCER ? "this producer is closed"
                                                           : "this consumer is closed");
}

static int side_parse_tag(PyObject *tag, cvpy_side *side, uint64_t *out) {
    *out = 0;
    if (tag == NULL) return 0;
    unsigned long long v = PyLong_Check(tag) ? PyLong_AsUnsignedLongLong(tag) : (unsigned long long)-1;
    if (v == (unsigned long long)-1 && (PyErr_Occurred() || !PyLong_Check(tag))) {
        PyErr_Clear();
        cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, side->desc,
                    "tag must be an int in 0...2**64-1, not %R", tag);
        return -1;
    }
    *out = v;
    return 0;
}

/* ---- common methods ------------------------------------------------------------------ */

static PyObject *side_set_spin(PyObject *op, PyObject *arg) {
    cvpy_side *side = (cvpy_side *)op;
    if (cvpy_side_foreign(side)) return cvpy_side_foreign_error(side, NULL);
    unsigned long long spin = PyLong_AsUnsignedLongLong(arg);
    if ((spin == (unsigned long long)-1 && PyErr_Occurred()) || spin > UINT32_MAX) {
        PyErr_Clear();
        return cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, side->desc,
                           "spin must be an int in 0...4294967295, not %R", arg);
    }
    if (side->handle == NULL) return side_closed_error(side);
    if (cvpy_side_lock(side, CVPY_FOREVER) < 0) return NULL;
    int status = side->handle ? conveyor_ring_set_spin(side->handle, (uint32_t)spin) : CONVEYOR_E_CLOSED;
    cvpy_side_unlock(side);
    if (status != CONVEYOR_OK) return cvpy_error(status, side->desc, NULL);
    Py_RETURN_NONE;
}

static PyObject *side_slot_address(PyObject *op, PyObject *arg) {
    cvpy_side *side = (cvpy_side *)op;
    long index = PyLong_AsLong(arg);
    if (index == -1 && PyErr_Occurred()) return NULL;
    if (index < 0 || (unsigned long)index >= side->slots)
        return cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, side->desc, "slot index %ld is not in 0...%u",
                           index, side->slots - 1);
    return PyLong_FromVoidPtr((void *)(side->slot0 + (uint64_t)index * side->stride));
}

static PyObject *side_get_closed(PyObject *op, void *closure) {
    (void)closure;
    return PyBool_FromLong(((cvpy_side *)op)->closed);
}

static PyObject *side_get_pid(PyObject *op, void *closure) {
    (void)closure;
    return PyLong_FromLong(((cvpy_side *)op)->pid);
}

static PyObject *side_get_owned(PyObject *op, void *closure) {
    (void)closure;
    return PyBool_FromLong(!cvpy_side_foreign((cvpy_side *)op));
}

static PyObject *side_get_lock_waits(PyObject *op, void *closure) {
    (void)closure;
    return PyLong_FromUnsignedLongLong(((cvpy_side *)op)->lock_waits);
}

static PyObject *side_get_slots(PyObject *op, void *closure) {
    (void)closure;
    return PyLong_FromUnsignedLong(((cvpy_side *)op)->slots);
}

static PyObject *side_get_slot_bytes(PyObject *op, void *closure) {
    (void)closure;
    return PyLong_FromUnsignedLongLong(((cvpy_side *)op)->slot_bytes);
}

static PyObject *side_get_desc(PyObject *op, void *closure) {
    (void)closure;
    return Py_NewRef(((cvpy_side *)op)->desc);
}

static PyObject *side_get_holder(PyObject *op, void *closure) {
    (void)closure;
    return Py_NewRef(((cvpy_side *)op)->holder);
}

/* ---- what both sides expose -------------------------------------------------------------- */

/* The methods both sides have; `waiter` names the call that waits ("loan", "receive"). */
#define CVPY_SIDE_METHODS(waiter)                                                              \
    {"slot_address", side_slot_address, METH_O,                                                \
     "slot_address($self, index)\n--\n\nReturns int. "                                          \
     "The address of slot `index` in this process's mapping (conveyor_ring_slot_address),\n"   \
     "to check that an array is the slot itself: x.ctypes.data == slot_address(x.base.slot).\n" \
     "Raises InvalidArgument for an index outside 0...slots-1."},                              \
    {"set_spin", side_set_spin, METH_O,                                                        \
     "set_spin($self, n)\n--\n\n"                                                              \
     "Pause iterations a waiting " waiter " spins before it sleeps on a futex (0: sleep at\n"   \
     "once). Spinning trades a core for wake-up latency. Raises InvalidArgument, Closed,\n"    \
     "WrongRole (another process)."}

/* The attributes both sides have; `side` is "producer" or "consumer". */
#define CVPY_SIDE_GETSET(side)                                                                 \
    {"slot_bytes", side_get_slot_bytes, NULL, "Capacity of each slot in bytes.", NULL},        \
    {"ring_desc", side_get_desc, NULL, "How messages name the ring.", NULL},                   \
    {"holder", side_get_holder, NULL, "The RingHolder this side was opened from.", NULL},      \
    {"pid", side_get_pid, NULL, "The process that opened this side: only it may use it (a "    \
     "forked child\ninherits a copy that raises WrongRole; it calls ring." side "() itself).",  \
     NULL},                                                                                    \
    {"owned", side_get_owned, NULL,                                                            \
     "True in the process that opened this side, False in a forked child's copy.", NULL},      \
    {"lock_waits", side_get_lock_waits, NULL,                                                  \
     "Calls that found another thread inside a call on this side and waited for it\n"          \
     "(within their timeout; a poll gives up at once): a diagnostic counter.", NULL}

/* ---- producer -------------------------------------------------------------------------- */

typedef struct {
    void *data;
    uint64_t capacity;
} loan_context;

static int attempt_loan(conveyor_ring *handle, int64_t slice_ns, void *context) {
    loan_context *c = context;
    return conveyor_ring_loan(handle, slice_ns, &c->data, &c->capacity);
}

static PyObject *producer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"holder", "shape", "dtype", NULL};
    PyObject *holder = NULL, *shape = Py_None, *dtype = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OO:Producer", kwlist, &holder, &shape,
                                     &dtype))
        return NULL;
    if (!PyObject_TypeCheck(holder, cvpy.holder_type)) {
        PyErr_Format(PyExc_TypeError, "expected a conveyor._core.RingHolder, not %R",
                     (PyObject *)Py_TYPE(holder));
        return NULL;
    }
    /* Validate the defaults before claiming the side. */
    cvpy_holder *h = (cvpy_holder *)holder;
    conveyor_frame_info info;
    memset(&info, 0, sizeof info);
    info.dtype = CONVEYOR_DTYPE_F64;
    PyObject *shape_tuple = NULL;
    int has_dtype = dtype != Py_None, has_default = shape != Py_None;
    if (has_dtype && cvpy_dtype_code(dtype, h->desc, &info.dtype) < 0) return NULL;
    if (has_default &&
        cvpy_frame_info(shape, info.dtype, h->slot_bytes, h->desc, &info, &shape_tuple) < 0)
        return NULL;
    cvpy_side *side = (cvpy_side *)side_open(type, holder, CONVEYOR_RING_PRODUCER);
    if (side == NULL) {
        Py_XDECREF(shape_tuple);
        return NULL;
    }
    side->has_default = has_default;
    side->has_dtype = has_dtype || has_default;
    side->def_info = info;
    side->def_shape = shape_tuple;
    return (PyObject *)side;
}

/* Finishes the producer's open loan (if any) as abandoned by close/detach. */
static void producer_drop_open_loan(cvpy_loan *loan) {
    if (loan == NULL) return;
    loan->closed_by_producer = 1;
    cvpy_loan_finish(loan, CVPY_LOAN_ABANDONED);
    Py_DECREF((PyObject *)loan);
}

static PyObject *producer_loan(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
    cvpy_side *side = (cvpy_side *)op;
    static const char *const names[] = {"shape", "dtype", "tag", "timeout", NULL};
    PyObject *a[4] = {NULL, NULL, NULL, NULL};
    if ((nargs != 0 || kwnames != NULL) &&
        cvpy_parse_args(args, nargs, kwnames, names, 2, "loan", a) < 0)
        return NULL;
    if (cvpy_side_foreign(side)) return cvpy_side_foreign_error(side, NULL);
    if (side->closed) return side_closed_error(side);
    PyObject *shape_arg = a[0] == Py_None ? NULL : a[0];
    PyObject *dtype_arg = a[1] == Py_None ? NULL : a[1];
    conveyor_frame_info info;
    PyObject *shape;
    if (shape_arg == NULL && dtype_arg == NULL) {
        if (!side->has_default)
            return cvpy_error(CONVEYOR_E_INVALID_ARGUMENT, side->desc,
                              "this ring has no default frame shape: pass shape= and dtype=");
        info = side->def_info;
        shape = Py_NewRef(side->def_shape);
    } else {
        uint32_t code = side->has_dtype ? side->def_info.dtype : CONVEYOR_DTYPE_F64;
        if (dtype_arg != NULL && cvpy_dtype_code(dtype_arg, side->desc, &code) < 0) return NULL;
        PyObject *shape_src = shape_arg ? shape_arg : side->def_shape;
        if (shape_src == NULL)
            return cvpy_error(CONVEYOR_E_INVALID_ARGUMENT, side->desc,
                              "this ring has no default frame shape: pass shape=");
        if (cvpy_frame_info(shape_src, code, side->slot_bytes, side->desc, &info, &shape) < 0)
            return NULL;
    }
    int64_t timeout_ns;
    if (side_parse_tag(a[2], side, &info.tag) < 0 || cvpy_timeout_ns(a[3], side->desc, &timeout_ns) < 0)
        goto fail;
    static const char open_loan_message[] =
        "this producer already has an open loan: commit or abandon it first";
    if (side->open_loan != NULL) {
        cvpy_error(CONVEYOR_E_BAD_STATE, side->desc, open_loan_message);
        goto fail;
    }
    int64_t deadline = cvpy_deadline(timeout_ns);
    if (cvpy_side_lock(side, deadline) < 0) goto fail;
    loan_context c = {NULL, 0};
    /* Another thread may have got a loan while this one waited for the lock. */
    int status = side->open_loan != NULL ? -2 : cvpy_wait(side, deadline, attempt_loan, &c);
    cvpy_side_unlock(side);
    if (status != CONVEYOR_OK) {
        if (status == -2) cvpy_error(CONVEYOR_E_BAD_STATE, side->desc, open_loan_message);
        else if (status > 0)
            cvpy_error(status, side->desc, status == CONVEYOR_E_CLOSED && (side->closed || side->stopping)
                                               ? "this producer was closed" : NULL);
        goto fail;
    }
    cvpy_loan *loan = cvpy_loan_new(side, c.data, c.capacity, &info, shape);
    Py_DECREF(shape);
    if (loan == NULL) {
        /* Never block with an exception set: the lock's holder (or this, now) abandons. */
        side->pending_abandon = 1;
        if (cvpy_side_trylock(side)) cvpy_side_unlock(side);
        return NULL;
    }
    side->open_loan = loan;
    if (side->closed) {  /* closed by another thread while this one made the Loan */
        side->open_loan = NULL;
        loan->closed_by_producer = 1;
        loan->state = CVPY_LOAN_ABANDONED;
    }
    return (PyObject *)loan;
fail:
    Py_DECREF(shape);
    return NULL;
}

static PyObject *producer_put(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames) {
    cvpy_side *side = (cvpy_side *)op;
    static const char *const names[] = {"array", "timeout", "tag", NULL};
    PyObject *a[3];
    if (cvpy_parse_args(args, nargs, kwnames, names, 3, "put", a) < 0) return NULL;
    if (a[0] == NULL) {
        PyErr_SetString(PyExc_TypeError, "put() missing required argument 'array'");
        return NULL;
    }
    if (cvpy_side_foreign(side)) return cvpy_side_foreign_error(side, NULL);
    if (side->closed) return side_closed_error(side);
    conveyor_frame_info info;
    memset(&info, 0, sizeof info);
    int64_t timeout_ns;
    if (side_parse_tag(a[2], side, &info.tag) < 0 || cvpy_timeout_ns(a[1], side->desc, &timeout_ns) < 0)
        return NULL;
    Py_buffer buf;
    if (PyObject_GetBuffer(a[0], &buf, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_Clear();
        if (PyObject_CheckBuffer(a[0]))
            return cvpy_error(CONVEYOR_E_INVALID_ARGUMENT, side->desc,
                              "put() needs a C-contiguous array and this one is not (copy it "
                              "with numpy.ascontiguousarray, or loan() and write in place)");
        return cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, side->desc,
                           "put() needs an array (float64, float32 or uint8), not %R",
                           (PyObject *)Py_TYPE(a[0]));
    }
    int dtype = cvpy_dtype_of_format(buf.format);
    if (dtype < 0 || buf.itemsize != cvpy_itemsize((uint32_t)dtype)) {
        PyObject *np_dtype = PyObject_GetAttrString(a[0], "dtype");
        if (np_dtype == NULL) PyErr_Clear();
        if (np_dtype != NULL)
            cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, side->desc,
                        "put(): dtype %S is not supported; frames hold float64, float32 or "
                        "uint8 in native byte order", np_dtype);
        else
            cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, side->desc,
                        "put(): element format '%s' is not supported; frames hold float64 "
                        "('d'), float32 ('f') or uint8 ('B') in native byte order",
                        buf.format ? buf.format : "B");
        Py_XDECREF(np_dtype);
        goto fail;
    }
    if (buf.ndim > CONVEYOR_FRAME_MAX_RANK) {
        cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, side->desc,
                    "put(): the array has %d dimensions; frames have at most %d", buf.ndim,
                    CONVEYOR_FRAME_MAX_RANK);
        goto fail;
    }
    info.dtype = (uint32_t)dtype;
    info.rank = (uint32_t)buf.ndim;
    for (int d = 0; d < buf.ndim; d++) info.shape[d] = (uint64_t)buf.shape[d];
    info.byte_length = (uint64_t)buf.len;
    if (info.byte_length > side->slot_bytes) {
        cvpy_errorf(CONVEYOR_E_TOO_LARGE, side->desc,
                    "put(): the array takes %zd bytes; slots hold %llu", buf.len,
                    (unsigned long long)side->slot_bytes);
        goto fail;
    }
    if (side->open_loan != NULL) {
        cvpy_error(CONVEYOR_E_BAD_STATE, side->desc,
                   "this producer has an open loan: commit or abandon it before put()");
        goto fail;
    }
    int64_t deadline = cvpy_deadline(timeout_ns);
    if (cvpy_side_lock(side, deadline) < 0) goto fail;
    loan_context c = {NULL, 0};
    int status = side->open_loan != NULL ? -2 : cvpy_wait(side, deadline, attempt_loan, &c);
    if (status == CONVEYOR_OK) {
        if (buf.len >= 65536) {
            Py_BEGIN_ALLOW_THREADS
            memcpy(c.data, buf.buf, (size_t)buf.len);
            Py_END_ALLOW_THREADS
        } else if (buf.len > 0) {
            memcpy(c.data, buf.buf, (size_t)buf.len);
        }
        status = conveyor_ring_commit(side->handle, &info);
        if (status != CONVEYOR_OK) (void)conveyor_ring_abandon(side->handle);
    }
    cvpy_side_unlock(side);
    PyBuffer_Release(&buf);
    if (status == -1) return NULL;
    if (status == -2)
        return cvpy_error(CONVEYOR_E_BAD_STATE, side->desc,
                          "this producer has an open loan: commit or abandon it before put()");
    if (status != CONVEYOR_OK)
        return cvpy_error(status, side->desc, status == CONVEYOR_E_CLOSED && (side->closed || side->stopping)
                                                  ? "this producer was closed" : NULL);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&buf);
    return NULL;
}

/* close (end_stream = 1) or detach (0). */
static PyObject *producer_finish(cvpy_side *side, int end_stream) {
    if (cvpy_side_foreign(side)) return cvpy_side_foreign_error(side, NULL);
    /* A loan or put waiting in another thread gives up at its next slice and lets us
     * have the lock; `closed` is set only once the stream is ended, under the lock, so
     * that waiter leaving first cannot destroy the handle before conveyor_ring_close. */
    side->stopping++;
    int locked = cvpy_side_lock(side, CVPY_FOREVER);
    side->stopping--;
    if (locked < 0) return NULL;  /* interrupted (or re-entrant): nothing changed */
    int status = CONVEYOR_OK;
    if (!side->closed) {
        if (end_stream && side->handle != NULL) status = conveyor_ring_close(side->handle);
        side->closed = 1;  /* also if the close failed: the side is done either way */
    }
    cvpy_loan *loan = side->open_loan;
    side->open_loan = NULL;
    Py_XINCREF((PyObject *)loan);
    cvpy_side_unlock(side);
    producer_drop_open_loan(loan);
    if (status != CONVEYOR_OK) return cvpy_error_in(status, side->desc, "closing the stream");
    Py_RETURN_NONE;
}

static PyObject *producer_close(PyObject *op, PyObject *unused) {
    (void)unused;
    return producer_finish((cvpy_side *)op, 1);
}

static PyObject *producer_detach(PyObject *op, PyObject *unused) {
    (void)unused;
    return producer_finish((cvpy_side *)op, 0);
}

static PyObject *producer_get_shape(PyObject *op, void *closure) {
    (void)closure;
    cvpy_side *side = (cvpy_side *)op;
    return Py_NewRef(side->def_shape ? side->def_shape : Py_None);
}

static PyObject *producer_get_dtype(PyObject *op, void *closure) {
    (void)closure;
    cvpy_side *side = (cvpy_side *)op;
    if (!side->has_dtype) Py_RETURN_NONE;
    if (cvpy_numpy_ready() < 0) return NULL;
    return Py_NewRef(cvpy.np_dtypes[side->def_info.dtype]);
}

static PyObject *producer_get_loaned(PyObject *op, void *closure) {
    (void)closure;
    return PyBool_FromLong(((cvpy_side *)op)->open_loan != NULL);
}

static PyMethodDef producer_methods[] = {
    {"loan", CVPY_METH(producer_loan), METH_FASTCALL | METH_KEYWORDS,
     "loan($self, shape=None, dtype=None, *, tag=0, timeout=None)\n--\n\n"
     "Waits for a free slot and lends it as a Loan: `with prod.loan() as out:` gives a\n"
     "writable C-contiguous ndarray over the slot, committed at the end of the block\n"
     "(abandoned if the block raises). shape/dtype default to the ring's; rank <= 4;\n"
     "dtype float64, float32 or uint8. tag: an int for the consumer (Frame.tag).\n"
     "timeout: None waits forever, 0 polls, > 0 seconds, counting any wait for another\n"
     "thread's call on this producer. Cost: no copy, no syscall when a slot is free; the\n"
     "GIL is released while waiting (Ctrl-C interrupts within 20 ms).\n"
     "At commit the loaned array becomes read-only, but views derived from it inside the\n"
     "block (out[1:], out.T...) stay writable (numpy cannot reach them): do not keep them\n"
     "past the block, or writes through them change a frame the consumer may be reading.\n"
     "Raises InvalidArgument/TooLarge (bad shape or dtype; nothing changed), BadState (a\n"
     "loan is already open), Timeout, Closed, PeerDied (the consumer died), WrongRole (in\n"
     "another process than the one that opened the producer, e.g. a forked child)."},
    {"put", CVPY_METH(producer_put), METH_FASTCALL | METH_KEYWORDS,
     "put($self, array, timeout=None, tag=0)\n--\n\n"
     "Copies a C-contiguous float64/float32/uint8 array (rank <= 4) into the next slot and\n"
     "commits it: the copying queue, for data that already exists. Cost: one memcpy (GIL\n"
     "released from 64 KiB). timeout: as loan(). Raises InvalidArgument (non-contiguous,\n"
     "wrong dtype, rank > 4), TooLarge, BadState (a loan is open), Timeout, Closed,\n"
     "PeerDied, WrongRole (another process: see loan()); nothing is sent then."},
    {"close", producer_close, METH_NOARGS,
     "close($self)\n--\n\n"
     "Ends the stream: the consumer receives every committed frame, then EndOfStream.\n"
     "An open loan is abandoned, a loan() or put() waiting in another thread raises\n"
     "Closed. The side is handed back once no Loan of it is alive. Idempotent. Raises\n"
     "WrongRole in another process than the one that opened the producer (a forked child's\n"
     "copy is its parent's: the child calls ring.producer() itself), KeyboardInterrupt if\n"
     "interrupted while another thread's call ends (then nothing changed)."},
    {"detach", producer_detach, METH_NOARGS,
     "detach($self)\n--\n\n"
     "Leaves without ending the stream (what an exception leaving `with` does): an open\n"
     "loan is abandoned and the side handed back; the consumer then gets PeerDied, unless\n"
     "another producer takes the side over and goes on. Idempotent. Raises only as\n"
     "close() does (WrongRole in another process, KeyboardInterrupt)."},
    CVPY_SIDE_METHODS("loan"),
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef producer_getset[] = {
    {"closed", side_get_closed, NULL, "True after close() or detach().", NULL},
    {"slots", side_get_slots, NULL, "Number of slots of the ring.", NULL},
    {"shape", producer_get_shape, NULL, "Default frame shape of loan(), or None.", NULL},
    {"dtype", producer_get_dtype, NULL, "Default numpy dtype of loan(), or None.", NULL},
    {"loaned", producer_get_loaned, NULL, "True while a loan is open.", NULL},
    CVPY_SIDE_GETSET("producer"),
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot producer_slots[] = {
    {Py_tp_doc, "Producer(holder, shape=None, dtype=None): the producer side of a ring.\n"
                "Use Ring.producer(). Claims the side (Busy if another live producer has it).\n"
                "It belongs to the process that opened it: a forked child's copy raises\n"
                "WrongRole on every call, and its death there changes nothing."},
    {Py_tp_new, CVPY_SLOT(producer_new)},
    {Py_tp_dealloc, CVPY_SLOT(side_dealloc)},
    {Py_tp_methods, producer_methods},
    {Py_tp_getset, producer_getset},
    {0, NULL},
};

static PyType_Spec producer_spec = {
    .name = "conveyor._core.Producer",
    .basicsize = sizeof(cvpy_side),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = producer_slots,
};

/* ---- consumer -------------------------------------------------------------------------- */

typedef struct {
    const void *data;
    conveyor_frame_info info;
} receive_context;

static int attempt_receive(conveyor_ring *handle, int64_t slice_ns, void *context) {
    receive_context *c = context;
    return conveyor_ring_receive(handle, slice_ns, &c->data, &c->info);
}

static PyObject *consumer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"holder", NULL};
    PyObject *holder = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:Consumer", kwlist, &holder)) return NULL;
    return side_open(type, holder, CONVEYOR_RING_CONSUMER);
}

/* The shape tuple of a frame, cached while frames keep the same shape. */
static PyObject *consumer_shape(cvpy_side *side, const conveyor_frame_info *info) {
    if (side->last_shape != NULL && side->last_rank == info->rank &&
        memcmp(side->last_dims, info->shape, info->rank * sizeof info->shape[0]) == 0)
        return Py_NewRef(side->last_shape);
    PyObject *shape = PyTuple_New(info->rank);
    if (shape == NULL) return NULL;
    for (uint32_t d = 0; d < info->rank; d++) {
        PyObject *extent = PyLong_FromUnsignedLongLong(info->shape[d]);
        if (extent == NULL) {
            Py_DECREF(shape);
            return NULL;
        }
        PyTuple_SetItem(shape, d, extent);
    }
    PyObject *old = side->last_shape;
    side->last_shape = Py_NewRef(shape);
    Py_XDECREF(old);
    side->last_rank = info->rank;
    memcpy(side->last_dims, info->shape, sizeof side->last_dims);
    return shape;
}

/* Marks a frame done without a Frame object (one could not be made). */
static void consumer_forget(cvpy_side *side, uint64_t seq) {
    side->done[seq % side->slots] = 1;
    if (cvpy_side_trylock(side)) cvpy_side_unlock(side);
}

/* gc.collect(), which runs even when gc is disabled (PyGC_Collect does not). */
static int side_collect_garbage(void) {
    PyObject *gc = PyImport_ImportModule("gc");
    PyObject *result = gc ? PyObject_CallMethod(gc, "collect", NULL) : NULL;
    Py_XDECREF(gc);
    if (result == NULL) return -1;
    Py_DECREF(result);
    return 0;
}

/* receive: an ndarray, or NULL with an exception; at end of stream with `iterating`,
 * NULL without one (StopIteration). */
static PyObject *consumer_receive_impl(cvpy_side *side, int64_t timeout_ns, int iterating) {
    if (cvpy_side_foreign(side)) return cvpy_side_foreign_error(side, NULL);
    if (side->closed || side->handle == NULL) return side_closed_error(side);
    int64_t deadline = cvpy_deadline(timeout_ns);
    if (cvpy_side_lock(side, deadline) < 0) return NULL;  /* releases what is done */
    if (side->next - side->oldest >= side->slots) {
        /* Every slot is held by a live view. Views in garbage cycles die in a collection;
         * after that, waiting could only deadlock: the producer has no slot to fill. */
        cvpy_side_unlock(side);
        if (side_collect_garbage() < 0) return NULL;
        if (cvpy_side_lock(side, deadline) < 0) return NULL;
        if (side->next - side->oldest >= side->slots) {
            cvpy_side_unlock(side);
            return cvpy_errorf(CONVEYOR_E_BAD_STATE, side->desc,
                               "every slot (%u) is held by a live view of a received frame, so "
                               "no new frame can arrive; drop views (del, or keep a copy) or "
                               "make the ring with more slots (in `for x in consumer` the "
                               "previous x is alive at the next receive: use slots >= 2)",
                               side->slots);
        }
    }
    receive_context c;
    int status = cvpy_wait(side, deadline, attempt_receive, &c);
    uint64_t seq = side->next;
    if (status == CONVEYOR_OK) {
        side->done[seq % side->slots] = 0;
        side->next++;
    }
    cvpy_side_unlock(side);
    if (status != CONVEYOR_OK) {
        if (status == -1) return NULL;
        if (status == CONVEYOR_E_END_OF_STREAM && iterating) return NULL;
        return cvpy_error(status, side->desc, status == CONVEYOR_E_CLOSED && (side->closed || side->stopping)
                                                  ? "this consumer was closed" : NULL);
    }
    PyObject *shape = consumer_shape(side, &c.info);
    if (shape == NULL) {
        consumer_forget(side, seq);
        return NULL;
    }
    cvpy_frame *frame = cvpy_frame_new(side, c.data, &c.info, seq);
    if (frame == NULL) {
        Py_DECREF(shape);
        consumer_forget(side, seq);
        return NULL;
    }
    PyObject *array = cvpy_ndarray(shape, c.info.dtype, (PyObject *)frame);
    Py_DECREF(shape);
    Py_DECREF(frame);  /* the array holds it now (its .base), or it dies and is released */
    return array;
}

static PyObject *consumer_receive(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *kwnames) {
    cvpy_side *side = (cvpy_side *)op;
    static const char *const names[] = {"timeout", NULL};
    PyObject *a[1] = {NULL};
    if ((nargs != 0 || kwnames != NULL) &&
        cvpy_parse_args(args, nargs, kwnames, names, 1, "receive", a) < 0)
        return NULL;
    int64_t timeout_ns = -1;
    if (a[0] != NULL && cvpy_timeout_ns(a[0], side->desc, &timeout_ns) < 0) return NULL;
    return consumer_receive_impl(side, timeout_ns, 0);
}

static PyObject *consumer_iternext(PyObject *op) {
    return consumer_receive_impl((cvpy_side *)op, -1, 1);
}

static PyObject *consumer_iter(PyObject *op) { return Py_NewRef(op); }

static PyObject *consumer_close(PyObject *op, PyObject *unused) {
    (void)unused;
    cvpy_side *side = (cvpy_side *)op;
    if (cvpy_side_foreign(side)) return cvpy_side_foreign_error(side, NULL);
    side->stopping++;  /* a receive waiting in another thread gives up at its next slice */
    int locked = cvpy_side_lock(side, CVPY_FOREVER);
    side->stopping--;
    if (locked < 0) return NULL;  /* interrupted (or re-entrant): nothing changed */
    side->closed = 1;
    cvpy_side_unlock(side);  /* destroys the handle unless views are alive */
    Py_RETURN_NONE;
}

static PyObject *consumer_get_held(PyObject *op, void *closure) {
    (void)closure;
    cvpy_side *side = (cvpy_side *)op;
    return PyLong_FromUnsignedLongLong(side->next - side->oldest);
}

static PyMethodDef consumer_methods[] = {
    {"receive", CVPY_METH(consumer_receive), METH_FASTCALL | METH_KEYWORDS,
     "receive($self, timeout=None)\n--\n\n"
     "Waits for the next frame and returns it in place: a read-only ndarray over the slot\n"
     "(its .base is the Frame). The slot stays held while the array or any view of it is\n"
     "alive, and is given back, in order, when they are gone. timeout: None waits forever,\n"
     "0 polls, > 0 seconds. Cost: no copy, no syscall when a frame is ready; the GIL is\n"
     "released while waiting (Ctrl-C interrupts within 20 ms, the consumer stays usable).\n"
     "The timeout counts any wait for another thread's call on this consumer.\n"
     "Raises EndOfStream (the producer closed and everything was received), Timeout,\n"
     "PeerDied (the producer died or left), BadState (every slot is held by live views),\n"
     "Closed, RingCorrupt, WrongRole (in another process than the one that opened the\n"
     "consumer, e.g. a forked child: it calls ring.consumer() itself)."},
    {"close", consumer_close, METH_NOARGS,
     "close($self)\n--\n\n"
     "Stops receiving (a receive waiting in another thread raises Closed). Frames whose\n"
     "views are gone are released; the side is handed back when the last view of a held\n"
     "frame dies. Idempotent. Raises only WrongRole (in another process: a forked child's\n"
     "copy is its parent's) and KeyboardInterrupt (interrupted while another thread's\n"
     "call ends; then nothing changed)."},
    CVPY_SIDE_METHODS("receive"),
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef consumer_getset[] = {
    {"closed", side_get_closed, NULL, "True after close().", NULL},
    {"held", consumer_get_held, NULL, "Frames received and not yet released (views alive, or waiting for older ones).", NULL},
    {"slots", side_get_slots, NULL, "Number of slots of the ring: the most frames held at once.", NULL},
    CVPY_SIDE_GETSET("consumer"),
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot consumer_slots[] = {
    {Py_tp_doc, "Consumer(holder): the consumer side of a ring. Use Ring.consumer().\n"
                "Iterating yields read-only ndarrays until end of stream. It belongs to the\n"
                "process that opened it: a forked child's copy raises WrongRole on every\n"
                "call, and its death (or its frames' deaths) there changes nothing."},
    {Py_tp_new, CVPY_SLOT(consumer_new)},
    {Py_tp_dealloc, CVPY_SLOT(side_dealloc)},
    {Py_tp_iter, CVPY_SLOT(consumer_iter)},
    {Py_tp_iternext, CVPY_SLOT(consumer_iternext)},
    {Py_tp_methods, consumer_methods},
    {Py_tp_getset, consumer_getset},
    {0, NULL},
};

static PyType_Spec consumer_spec = {
    .name = "conveyor._core.Consumer",
    .basicsize = sizeof(cvpy_side),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = consumer_slots,
};

int cvpy_side_init(PyObject *module) {
    PyObject *producer = PyType_FromModuleAndSpec(module, &producer_spec, NULL);
    if (producer == NULL) return -1;
    cvpy.producer_type = (PyTypeObject *)producer;
    if (PyModule_AddObjectRef(module, "Producer", producer) < 0) return -1;
    PyObject *consumer = PyType_FromModuleAndSpec(module, &consumer_spec, NULL);
    if (consumer == NULL) return -1;
    cvpy.consumer_type = (PyTypeObject *)consumer;
    return PyModule_AddObjectRef(module, "Consumer", consumer);
}
