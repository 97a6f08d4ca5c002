/*
 * channel.c — Channel: a HOLDER handle on an index channel (conveyor_channel), which
 * keeps the mapping and opens ends; ChannelEnd: a lane's SENDER or the RECEIVER.
 *
 * A channel carries 64-bit words (slot numbers of a Pool, usually) from up to 64
 * senders, one per lane, to one receiver, which takes the next word of one lane
 * (receive) or of whichever lane has one first (receive_any, round-robin).
 *
 * Waiting. A call first polls (timeout 0) with the GIL held: a word or a free place that
 * is ready costs no GIL hand-off. Then the C call waits with the GIL released in slices
 * of at most CVPY_SLICE_NS (20 ms); between slices the thread takes the GIL back, runs
 * signal handlers (a KeyboardInterrupt they raise ends the call) and stops at the
 * deadline. cvpy_wait is not used: it is tied to ring sides and their lock.
 *
 * Threads. A C handle serves one thread at a time. There is no lock: `in_use` is set (under
 * the GIL) while a call runs, also while it waits with the GIL released, and a call from
 * another thread meanwhile raises RuntimeError at once. destroy() is the exception: it
 * never fails; during a running call it marks the end destroyed, the call gives up at its
 * next slice (Closed) and the handle is destroyed when the call leaves.
 *
 * Fork. A Channel inherited over fork opens ends in the child that belong to the child.
 * A ChannelEnd inherited over fork is its parent's: its first use in the child re-claims
 * the end (Busy while the parent's is alive), and its destruction there, if unused, hands
 * nothing back (the C core's rules).
 */
#include "core.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>

typedef struct cvpy_channel {
    PyObject_HEAD
    conveyor_channel *handle;   /* role HOLDER; NULL once closed */
    int backing;                /* a conveyor_ring_backing */
    PyObject *name;             /* str for NAMED channels, else None */
    PyObject *desc;             /* str: the name, "memfd:N" or "anonymous" */
    uint32_t lanes;
    uint32_t capacity;
    uint64_t mapped_bytes;
    PyObject *weakrefs;
} cvpy_channel;

typedef struct cvpy_channel_end {
    PyObject_HEAD
    conveyor_channel *handle;   /* NULL once destroyed and out of use */
    cvpy_channel *channel;      /* strong */
    PyObject *desc;             /* the channel's (kept alive by `channel`) */
    int role;                   /* CONVEYOR_CHANNEL_SENDER or _RECEIVER */
    uint32_t lane;              /* a sender's lane; 0 for the receiver */
    uint32_t lanes;
    int in_use;                 /* a call runs, maybe waiting with the GIL released */
    int destroyed;              /* destroy() was called: every call raises Closed */
    PyObject *weakrefs;
} cvpy_channel_end;

static PyTypeObject *end_type;

static const char *role_text(int role) {
    return role == CONVEYOR_CHANNEL_SENDER ? "sender" : role == CONVEYOR_CHANNEL_RECEIVER ? "receiver" : "holder";
}

/* ---- Channel ------------------------------------------------------------------------- */

/* Wraps a new HOLDER handle; destroys it on failure. */
static PyObject *channel_wrap(PyTypeObject *type, conveyor_channel *handle, int backing) {
    conveyor_channel_stats stats;
    memset(&stats, 0, sizeof stats);
    int status = conveyor_channel_read_stats(handle, &stats, sizeof stats);
    if (status != CONVEYOR_OK) {
        conveyor_channel_destroy(handle);
        return cvpy_error_in(status, NULL, "reading the new channel's geometry failed");
    }
    allocfunc alloc = CVPY_GET_SLOT(allocfunc, type, Py_tp_alloc);
    cvpy_channel *self = (cvpy_channel *)alloc(type, 0);
    if (self == NULL) {
        conveyor_channel_destroy(handle);
        return NULL;
    }
    self->handle = handle;
    self->backing = backing;
    self->lanes = stats.lanes;
    self->capacity = stats.capacity;
    self->mapped_bytes = stats.mapped_bytes;
    const char *name = conveyor_channel_name(handle);
    self->name = name ? PyUnicode_FromString(name) : Py_NewRef(Py_None);
    if (name != NULL) self->desc = PyUnicode_FromString(name);
    else if (conveyor_channel_fd(handle) >= 0)
        self->desc = PyUnicode_FromFormat("memfd:%d", conveyor_channel_fd(handle));
    else self->desc = PyUnicode_FromString("anonymous");
    if (self->name == NULL || self->desc == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyObject *channel_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"lanes", "capacity", "spin", "backing", "name", NULL};
    PyObject *lanes_obj = NULL, *capacity_obj = NULL, *spin_obj = Py_None, *backing_obj = NULL,
             *name_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OOO:Channel", kwlist, &lanes_obj,
                                     &capacity_obj, &spin_obj, &backing_obj, &name_obj))
        return NULL;
    uint64_t lanes, capacity, spin = CONVEYOR_RING_DEFAULT_SPIN;
    int backing;
    const char *name;
    if (cvpy_arg_u64(lanes_obj, "lanes", 1, CONVEYOR_CHANNEL_MAX_LANES, NULL, &lanes) < 0 ||
        cvpy_arg_u64(capacity_obj, "capacity", 1, CONVEYOR_CHANNEL_MAX_CAPACITY, NULL, &capacity) < 0 ||
        (spin_obj != Py_None && cvpy_arg_u64(spin_obj, "spin", 0, UINT32_MAX, NULL, &spin) < 0) ||
        cvpy_arg_backing(backing_obj, name_obj, &backing, &name) < 0)
        return NULL;
    conveyor_channel_config config;
    memset(&config, 0, sizeof config);
    config.lanes = (uint32_t)lanes;
    config.capacity = (uint32_t)capacity;
    config.spin = (uint32_t)spin;
    config.backing = (int32_t)backing;
    config.name = name;
    conveyor_channel *handle = NULL;
    int status = conveyor_channel_create(&config, &handle);
    if (status != CONVEYOR_OK) {
        PyObject *desc = name ? PyUnicode_FromString(name) : NULL;
        cvpy_errorf_in(status, desc, "creating a channel of %u lanes of %u words",
                       (unsigned)lanes, (unsigned)capacity);
        Py_XDECREF(desc);
        return NULL;
    }
    return channel_wrap(type, handle, backing);
}

static PyObject *channel_attach_fd(PyObject *cls, PyObject *arg) {
    uint64_t fd;
    if (cvpy_arg_u64(arg, "an fd", 0, INT_MAX, NULL, &fd) < 0) return NULL;
    conveyor_channel *handle = NULL;
    int status = conveyor_channel_attach_fd((int)fd, CONVEYOR_CHANNEL_HOLDER, 0, &handle);
    if (status != CONVEYOR_OK) {
        PyObject *desc = PyUnicode_FromFormat("fd %d", (int)fd);
        cvpy_error_in(status, desc, "attaching a channel by fd");
        Py_XDECREF(desc);
        return NULL;
    }
    return channel_wrap((PyTypeObject *)cls, handle, CONVEYOR_RING_MEMFD);
}

static PyObject *channel_attach_named(PyObject *cls, PyObject *arg) {
    if (!PyUnicode_Check(arg))
        return cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, NULL,
                           "a channel name is a str like '/name', not %R", arg);
    const char *name = PyUnicode_AsUTF8AndSize(arg, NULL);
    if (name == NULL) return NULL;
    conveyor_channel *handle = NULL;
    int status = conveyor_channel_attach_named(name, CONVEYOR_CHANNEL_HOLDER, 0, &handle);
    if (status != CONVEYOR_OK) return cvpy_error_in(status, arg, "attaching a named channel");
    return channel_wrap((PyTypeObject *)cls, handle, CONVEYOR_RING_NAMED);
}

static void channel_dealloc(PyObject *op) {
    cvpy_channel *self = (cvpy_channel *)op;
    PyTypeObject *tp = Py_TYPE(op);
    if (self->weakrefs != NULL) PyObject_ClearWeakRefs(op);
    conveyor_channel *handle = self->handle;
    self->handle = NULL;
    conveyor_channel_destroy(handle);
    Py_XDECREF(self->name);
    Py_XDECREF(self->desc);
    freefunc tp_free = CVPY_GET_SLOT(freefunc, tp, Py_tp_free);
    tp_free(op);
    Py_DECREF(tp);
}

static PyObject *channel_closed_error(cvpy_channel *self) {
    return cvpy_error(CONVEYOR_E_CLOSED, self->desc, "the channel is closed");
}

static PyObject *channel_open(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames) {
    cvpy_channel *self = (cvpy_channel *)op;
    static const char *const names[] = {"role", "lane", NULL};
    PyObject *a[2];
    if (cvpy_parse_args(args, nargs, kwnames, names, 2, "open", a) < 0) return NULL;
    if (a[0] == NULL) {
        PyErr_SetString(PyExc_TypeError, "open() needs a role: CHANNEL_SENDER or CHANNEL_RECEIVER");
        return NULL;
    }
    if (self->handle == NULL) return channel_closed_error(self);
    uint64_t role, lane = 0;
    if (cvpy_arg_u64(a[0], "role (CHANNEL_SENDER or CHANNEL_RECEIVER)", CONVEYOR_CHANNEL_SENDER,
                     CONVEYOR_CHANNEL_RECEIVER, self->desc, &role) < 0)
        return NULL;
    if (a[1] != NULL &&
        cvpy_arg_u64(a[1], role == CONVEYOR_CHANNEL_SENDER ? "a sender's lane" : "the receiver's lane (it takes every lane)",
                     0, role == CONVEYOR_CHANNEL_SENDER ? self->lanes - 1 : 0, self->desc, &lane) < 0)
        return NULL;
    /* Checked again: __index__ may have run Python code, which may have closed it. */
    if (self->handle == NULL) return channel_closed_error(self);
    allocfunc alloc = CVPY_GET_SLOT(allocfunc, end_type, Py_tp_alloc);
    cvpy_channel_end *end = (cvpy_channel_end *)alloc(end_type, 0);
    if (end == NULL) return NULL;
    end->channel = (cvpy_channel *)Py_NewRef(op);
    end->desc = self->desc;
    end->role = (int)role;
    end->lane = (uint32_t)lane;
    end->lanes = self->lanes;
    int status = conveyor_channel_open(self->handle, (int)role, (uint32_t)lane, &end->handle);
    if (status != CONVEYOR_OK) {
        end->handle = NULL;
        Py_DECREF(end);
        if (role == CONVEYOR_CHANNEL_SENDER)
            return cvpy_errorf_in(status, self->desc, "opening the sender of lane %u", (unsigned)lane);
        return cvpy_error_in(status, self->desc, "opening the receiver");
    }
    return (PyObject *)end;
}

static PyObject *channel_stats(PyObject *op, PyObject *unused) {
    (void)unused;
    cvpy_channel *self = (cvpy_channel *)op;
    if (self->handle == NULL) return channel_closed_error(self);
    conveyor_channel_stats s;
    memset(&s, 0, sizeof s);
    int status = conveyor_channel_read_stats(self->handle, &s, sizeof s);
    if (status != CONVEYOR_OK) return cvpy_error_in(status, self->desc, "reading the counters");
    PyObject *dict = PyDict_New();
    if (dict == NULL) return NULL;
    if (cvpy_dict_set_u64(dict, "words_sent", s.words_sent) < 0 ||
        cvpy_dict_set_u64(dict, "words_received", s.words_received) < 0 ||
        cvpy_dict_set_u64(dict, "sender_waits", s.sender_waits) < 0 ||
        cvpy_dict_set_u64(dict, "sender_wakes", s.sender_wakes) < 0 ||
        cvpy_dict_set_u64(dict, "receiver_waits", s.receiver_waits) < 0 ||
        cvpy_dict_set_u64(dict, "receiver_wakes", s.receiver_wakes) < 0 ||
        cvpy_dict_set_u64(dict, "lanes", s.lanes) < 0 ||
        cvpy_dict_set_u64(dict, "capacity", s.capacity) < 0 ||
        cvpy_dict_set_u64(dict, "mapped_bytes", s.mapped_bytes) < 0) {
        Py_DECREF(dict);
        return NULL;
    }
    return dict;
}

static PyObject *channel_close(PyObject *op, PyObject *unused) {
    (void)unused;
    cvpy_channel *self = (cvpy_channel *)op;
    conveyor_channel *handle = self->handle;
    self->handle = NULL;
    conveyor_channel_destroy(handle);
    Py_RETURN_NONE;
}

static PyObject *channel_get_fd(PyObject *op, void *closure) {
    (void)closure;
    cvpy_channel *self = (cvpy_channel *)op;
    if (self->handle == NULL) return channel_closed_error(self);
    return PyLong_FromLong(conveyor_channel_fd(self->handle));
}

static PyObject *channel_get(PyObject *op, void *closure) {
    cvpy_channel *self = (cvpy_channel *)op;
    switch ((int)(intptr_t)closure) {
    case 0: return PyLong_FromUnsignedLong(self->lanes);
    case 1: return PyLong_FromUnsignedLong(self->capacity);
    case 2: return PyLong_FromUnsignedLongLong(self->mapped_bytes);
    case 3: return PyLong_FromLong(self->backing);
    case 4: return Py_NewRef(self->name);
    case 5: return Py_NewRef(self->desc);
    default: return PyBool_FromLong(self->handle == NULL);
    }
}

static PyObject *channel_repr(PyObject *op) {
    cvpy_channel *self = (cvpy_channel *)op;
    return PyUnicode_FromFormat("<conveyor._core.Channel %U%s lanes=%u capacity=%u>", self->desc,
                                self->handle == NULL ? " closed" : "", (unsigned)self->lanes,
                                (unsigned)self->capacity);
}

static PyMethodDef channel_methods[] = {
    {"attach_fd", channel_attach_fd, METH_O | METH_CLASS,
     "attach_fd($type, fd)\n--\n\n"
     "A new holder on the memfd channel behind `fd` (conveyor_channel_attach_fd, role\n"
     "HOLDER; dup'ed: the caller keeps and closes its fd). Claims no end. Cost: fstat,\n"
     "fcntl, mmap. Raises InvalidArgument (not an int in 0...2**31-1), NotSealed, NotARing\n"
     "(not a channel), VersionMismatch, Truncated, RingCorrupt, SystemCallFailed."},
    {"attach_named", channel_attach_named, METH_O | METH_CLASS,
     "attach_named($type, name)\n--\n\n"
     "A new holder on the named channel `name` ('/x'). Claims no end and never unlinks the\n"
     "name. Raises SystemCallFailed (errno ENOENT: no such channel), InvalidArgument (bad\n"
     "name), NotARing, VersionMismatch, Truncated, RingCorrupt."},
    {"open", CVPY_METH(channel_open), METH_FASTCALL | METH_KEYWORDS,
     "open($self, role, lane=0)\n--\n\nReturns ChannelEnd. "
     "Opens an end on this holder's mapping\n"
     "(conveyor_channel_open): role CHANNEL_SENDER with its lane (0...lanes-1), or\n"
     "CHANNEL_RECEIVER (lane 0: it receives from every lane). The end belongs to the calling\n"
     "process, also when this holder was inherited over fork, and claims its end at once.\n"
     "Cost: no system call but the liveness probe of a previous owner. Raises Busy (a live\n"
     "handle holds that end), InvalidArgument (role, lane), RingCorrupt (impossible shared\n"
     "indices: nothing claimed), Closed (this holder is closed), OutOfMemory."},
    {"stats", channel_stats, METH_NOARGS,
     "stats($self)\n--\n\nReturns dict. "
     "The channel's shared counters summed over its lanes (the fields of\n"
     "conveyor_channel_stats: words_sent, words_received, sender_waits, sender_wakes,\n"
     "receiver_waits, receiver_wakes, lanes, capacity, mapped_bytes), read without locking:\n"
     "each is exact, they are not a snapshot. Cost: a load per lane and counter, one dict.\n"
     "Raises Closed after close()."},
    {"close", channel_close, METH_NOARGS,
     "close($self)\n--\n\n"
     "Destroys this holder handle. Ends opened from it keep their own handles (and each\n"
     "keeps this object alive) and go on working. Idempotent; never raises."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef channel_getset[] = {
    {"fd", channel_get_fd, NULL, "The fd of a memfd or named channel (owned by the holder), -1 if anonymous. Raises Closed after close().", NULL},
    {"lanes", channel_get, NULL, "Number of lanes (senders).", (void *)0},
    {"capacity", channel_get, NULL, "Words each lane holds.", (void *)1},
    {"mapped_bytes", channel_get, NULL, "Bytes of the shared mapping.", (void *)2},
    {"backing", channel_get, NULL, "BACKING_ANONYMOUS, BACKING_MEMFD or BACKING_NAMED.", (void *)3},
    {"name", channel_get, NULL, "The name of a named channel, else None.", (void *)4},
    {"desc", channel_get, NULL, "How messages name the channel: its name, 'memfd:N' or 'anonymous'.", (void *)5},
    {"closed", channel_get, NULL, "True after close().", (void *)6},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef channel_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(cvpy_channel, weakrefs), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot channel_slots[] = {
    {Py_tp_doc, "Channel(lanes, capacity, spin=DEFAULT_SPIN, backing=BACKING_MEMFD, name=None): a new\n"
                "index channel (conveyor_channel_create) and a HOLDER handle on it: it claims no\n"
                "end, keeps the mapping and opens ends with open(). lanes senders (1...64), each on\n"
                "its own lane of `capacity` 64-bit words; one receiver. Channel.attach_fd /\n"
                "attach_named attach an existing one. Cost: one mmap (plus memfd_create or\n"
                "shm_open) of a page, 384 bytes per lane and lanes * capacity * 8 bytes. Raises\n"
                "InvalidArgument (a value out of range, a bad name), Exists (the name is taken),\n"
                "SystemCallFailed, OutOfMemory."},
    {Py_tp_new, CVPY_SLOT(channel_new)},
    {Py_tp_dealloc, CVPY_SLOT(channel_dealloc)},
    {Py_tp_repr, CVPY_SLOT(channel_repr)},
    {Py_tp_methods, channel_methods},
    {Py_tp_getset, channel_getset},
    {Py_tp_members, channel_members},
    {0, NULL},
};

static PyType_Spec channel_spec = {
    .name = "conveyor._core.Channel",
    .basicsize = sizeof(cvpy_channel),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = channel_slots,
};

/* ---- ChannelEnd: entering and leaving a call ------------------------------------------- */

static void end_free_handle(cvpy_channel_end *self) {
    conveyor_channel *handle = self->handle;
    self->handle = NULL;
    conveyor_channel_destroy(handle);  /* peers see PEER_DEAD unless the lane was closed */
}

/* The handle for a call, `in_use` set; or NULL with Closed or RuntimeError set. */
static conveyor_channel *end_enter(cvpy_channel_end *self) {
    if (self->destroyed || self->handle == NULL) {
        cvpy_errorf(CONVEYOR_E_CLOSED, self->desc, "this channel %s was destroyed",
                    role_text(self->role));
        return NULL;
    }
    if (self->in_use) {
        PyErr_Format(PyExc_RuntimeError,
                     "this channel %s (channel %U) is used by another thread: an end serves "
                     "one thread at a time (or a signal handler called it while one of its "
                     "calls was waiting)",
                     role_text(self->role), self->desc);
        return NULL;
    }
    self->in_use = 1;
    return self->handle;
}

/* Ends a call: a destroy() that came meanwhile takes effect now. */
static void end_leave(cvpy_channel_end *self) {
    self->in_use = 0;
    if (self->destroyed && self->handle != NULL) end_free_handle(self);
}

/* What one attempt moves: the word sent, or the word and lane received. */
typedef struct end_io {
    uint64_t word;
    uint32_t lane;
} end_io;

typedef int (*end_attempt_fn)(conveyor_channel *handle, int64_t slice_ns, end_io *io);

static int attempt_send(conveyor_channel *handle, int64_t slice_ns, end_io *io) {
    return conveyor_channel_send(handle, io->word, slice_ns);
}

static int attempt_receive(conveyor_channel *handle, int64_t slice_ns, end_io *io) {
    return conveyor_channel_receive(handle, io->lane, slice_ns, &io->word);
}

static int attempt_receive_any(conveyor_channel *handle, int64_t slice_ns, end_io *io) {
    return conveyor_channel_receive_any(handle, slice_ns, &io->lane, &io->word);
}

/* Polls once with the GIL held, then waits in slices of at most CVPY_SLICE_NS with it
 * released until `attempt` returns something other than CONVEYOR_E_TIMEOUT or `deadline`
 * (cvpy_deadline; 0: the poll only) passes. Between slices, with the GIL: a destroy()
 * ends the wait (CONVEYOR_E_CLOSED) and signal handlers run. Returns a conveyor status,
 * or -1 with a signal handler's exception (KeyboardInterrupt) set. */
static int end_wait(cvpy_channel_end *self, conveyor_channel *handle, int64_t deadline,
                    end_attempt_fn attempt, end_io *io) {
    int status = attempt(handle, 0, io);
    if (status != CONVEYOR_E_TIMEOUT || deadline == 0) return status;
    for (;;) {
        if (self->destroyed) return CONVEYOR_E_CLOSED;
        int64_t slice = CVPY_SLICE_NS;
        if (deadline != CVPY_FOREVER) {
            int64_t left = deadline - cvpy_now_ns();
            if (left <= 0) return CONVEYOR_E_TIMEOUT;
            if (left < slice) slice = left;
        }
        Py_BEGIN_ALLOW_THREADS
        status = attempt(handle, slice, io);
        Py_END_ALLOW_THREADS
        if (status != CONVEYOR_E_TIMEOUT) return status;
        if (PyErr_CheckSignals() < 0) return -1;
    }
}

/* Raises the class of `status` for a call on `lane`: "<context>: <C message> (<NAME>) on
 * ring <desc>", the instance's attribute .lane set to the lane. Returns NULL. */
static PyObject *end_lane_error(cvpy_channel_end *self, int status, uint32_t lane,
                                const char *context) {
    PyObject *code = PyLong_FromLong(status);
    PyObject *detail = PyUnicode_FromFormat("%s (lane %u): %s", context, (unsigned)lane,
                                            conveyor_status_message(status));
    PyObject *lane_obj = PyLong_FromUnsignedLong(lane);
    PyObject *exc = NULL;
    if (code != NULL && detail != NULL && lane_obj != NULL) {
        PyObject *argv[3] = {code, detail, self->desc};
        exc = cvpy_make_error_py(NULL, argv, 3, NULL);
    }
    if (exc != NULL && PyObject_SetAttrString(exc, "lane", lane_obj) == 0)
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_XDECREF(exc);
    Py_XDECREF(code);
    Py_XDECREF(detail);
    Py_XDECREF(lane_obj);
    return NULL;
}

enum { END_SEND, END_RECEIVE, END_RECEIVE_ANY };

/* The exception of a failed call (status > 0, not TIMEOUT) of kind END_*. */
static PyObject *end_error(cvpy_channel_end *self, int status, uint32_t lane, int kind) {
    if (status == CONVEYOR_E_CLOSED && self->destroyed)
        return cvpy_errorf(CONVEYOR_E_CLOSED, self->desc,
                           "this channel %s was destroyed while the call waited",
                           role_text(self->role));
    if (kind == END_SEND)
        return cvpy_errorf_in(status, self->desc, "sending on lane %u", (unsigned)self->lane);
    if (status == CONVEYOR_E_PEER_DEAD || status == CONVEYOR_E_CORRUPT)
        return end_lane_error(self, status, lane,
                              kind == END_RECEIVE_ANY ? "receiving from any lane" : "receiving");
    if (kind == END_RECEIVE_ANY) return cvpy_error_in(status, self->desc, "receiving from any lane");
    return cvpy_errorf_in(status, self->desc, "receiving from lane %u", (unsigned)lane);
}

/* ---- ChannelEnd: the calls ------------------------------------------------------------- */

/* A word: an int in 0...2**64-1 (exact ints take the fast path). */
static int end_parse_word(cvpy_channel_end *self, PyObject *obj, uint64_t *word) {
    if (PyLong_CheckExact(obj)) {
        unsigned long long v = PyLong_AsUnsignedLongLong(obj);
        if (v != (unsigned long long)-1 || !PyErr_Occurred()) {
            *word = v;
            return 0;
        }
        PyErr_Clear();
    }
    return cvpy_arg_u64(obj, "a word", 0, UINT64_MAX, self->desc, word);
}

/* A lane of this channel: 0...lanes-1. */
static int end_parse_lane(cvpy_channel_end *self, PyObject *obj, uint32_t *lane) {
    if (PyLong_CheckExact(obj)) {
        unsigned long v = PyLong_AsUnsignedLong(obj);
        if ((v != (unsigned long)-1 || !PyErr_Occurred()) && v < self->lanes) {
            *lane = (uint32_t)v;
            return 0;
        }
        PyErr_Clear();
    }
    uint64_t v;
    if (cvpy_arg_u64(obj, "a lane", 0, self->lanes - 1, self->desc, &v) < 0) return -1;
    *lane = (uint32_t)v;
    return 0;
}

static PyObject *end_send(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames) {
    cvpy_channel_end *self = (cvpy_channel_end *)op;
    PyObject *a[2] = {NULL, NULL};
    if (nargs == 1 && kwnames == NULL) {
        a[0] = args[0];
    } else {
        static const char *const names[] = {"word", "timeout", NULL};
        if (cvpy_parse_args(args, nargs, kwnames, names, 2, "send", a) < 0) return NULL;
        if (a[0] == NULL) {
            PyErr_SetString(PyExc_TypeError, "send() missing required argument 'word'");
            return NULL;
        }
    }
    end_io io = {0, 0};
    int64_t timeout_ns = -1;
    if (end_parse_word(self, a[0], &io.word) < 0 ||
        (a[1] != NULL && cvpy_timeout_ns(a[1], self->desc, &timeout_ns) < 0))
        return NULL;
    int64_t deadline = cvpy_deadline(timeout_ns);
    conveyor_channel *handle = end_enter(self);
    if (handle == NULL) return NULL;
    int status = end_wait(self, handle, deadline, attempt_send, &io);
    if (status > 0 && status != CONVEYOR_E_TIMEOUT) end_error(self, status, self->lane, END_SEND);
    end_leave(self);
    if (status == CONVEYOR_OK) Py_RETURN_TRUE;
    if (status == CONVEYOR_E_TIMEOUT) Py_RETURN_FALSE;
    return NULL;  /* raised above, or a signal handler's exception */
}

static PyObject *end_receive(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames) {
    cvpy_channel_end *self = (cvpy_channel_end *)op;
    PyObject *a[2] = {NULL, NULL};
    if (nargs == 1 && kwnames == NULL) {
        a[0] = args[0];
    } else {
        static const char *const names[] = {"lane", "timeout", NULL};
        if (cvpy_parse_args(args, nargs, kwnames, names, 2, "receive", a) < 0) return NULL;
        if (a[0] == NULL) {
            PyErr_SetString(PyExc_TypeError, "receive() missing required argument 'lane'");
            return NULL;
        }
    }
    end_io io = {0, 0};
    int64_t timeout_ns = -1;
    if (end_parse_lane(self, a[0], &io.lane) < 0 ||
        (a[1] != NULL && cvpy_timeout_ns(a[1], self->desc, &timeout_ns) < 0))
        return NULL;
    int64_t deadline = cvpy_deadline(timeout_ns);
    conveyor_channel *handle = end_enter(self);
    if (handle == NULL) return NULL;
    int status = end_wait(self, handle, deadline, attempt_receive, &io);
    if (status > 0 && status != CONVEYOR_E_TIMEOUT) end_error(self, status, io.lane, END_RECEIVE);
    end_leave(self);
    if (status == CONVEYOR_OK) return PyLong_FromUnsignedLongLong(io.word);
    if (status == CONVEYOR_E_TIMEOUT) Py_RETURN_NONE;
    return NULL;
}

static PyObject *end_receive_any(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames) {
    cvpy_channel_end *self = (cvpy_channel_end *)op;
    PyObject *a[1] = {NULL};
    if (nargs != 0 || kwnames != NULL) {
        static const char *const names[] = {"timeout", NULL};
        if (cvpy_parse_args(args, nargs, kwnames, names, 1, "receive_any", a) < 0) return NULL;
    }
    int64_t timeout_ns = -1;
    if (a[0] != NULL && cvpy_timeout_ns(a[0], self->desc, &timeout_ns) < 0) return NULL;
    int64_t deadline = cvpy_deadline(timeout_ns);
    conveyor_channel *handle = end_enter(self);
    if (handle == NULL) return NULL;
    end_io io = {0, 0};
    int status = end_wait(self, handle, deadline, attempt_receive_any, &io);
    if (status > 0 && status != CONVEYOR_E_TIMEOUT) end_error(self, status, io.lane, END_RECEIVE_ANY);
    end_leave(self);
    if (status == CONVEYOR_E_TIMEOUT) Py_RETURN_NONE;
    if (status != CONVEYOR_OK) return NULL;
    PyObject *lane = PyLong_FromUnsignedLong(io.lane);
    PyObject *word = PyLong_FromUnsignedLongLong(io.word);
    PyObject *pair = lane && word ? PyTuple_New(2) : NULL;
    if (pair == NULL) {
        Py_XDECREF(lane);
        Py_XDECREF(word);
        return NULL;
    }
    PyTuple_SetItem(pair, 0, lane);  /* steals */
    PyTuple_SetItem(pair, 1, word);
    return pair;
}

static PyObject *end_close(PyObject *op, PyObject *unused) {
    (void)unused;
    cvpy_channel_end *self = (cvpy_channel_end *)op;
    conveyor_channel *handle = end_enter(self);
    if (handle == NULL) return NULL;
    if (self->role != CONVEYOR_CHANNEL_SENDER) {
        end_leave(self);
        return cvpy_error(CONVEYOR_E_WRONG_ROLE, self->desc,
                          "a receiver has no lane to close: only a sender ends its lane's "
                          "stream; use destroy() to hand the receiver back");
    }
    int status = conveyor_channel_close(handle);
    end_leave(self);
    if (status != CONVEYOR_OK)
        return cvpy_errorf_in(status, self->desc, "closing lane %u", (unsigned)self->lane);
    Py_RETURN_NONE;
}

static PyObject *end_destroy(PyObject *op, PyObject *unused) {
    (void)unused;
    cvpy_channel_end *self = (cvpy_channel_end *)op;
    self->destroyed = 1;
    if (!self->in_use && self->handle != NULL) end_free_handle(self);
    Py_RETURN_NONE;
}

static void end_dealloc(PyObject *op) {
    cvpy_channel_end *self = (cvpy_channel_end *)op;
    PyTypeObject *tp = Py_TYPE(op);
    if (self->weakrefs != NULL) PyObject_ClearWeakRefs(op);
    /* No call runs: it would hold a reference. Inherited over fork and unused, the C core
     * hands nothing back. */
    if (self->handle != NULL) end_free_handle(self);
    freefunc tp_free = CVPY_GET_SLOT(freefunc, tp, Py_tp_free);
    tp_free(op);
    Py_DECREF(tp);
    Py_XDECREF((PyObject *)self->channel);
}

static PyObject *end_get(PyObject *op, void *closure) {
    cvpy_channel_end *self = (cvpy_channel_end *)op;
    switch ((int)(intptr_t)closure) {
    case 0: return PyLong_FromLong(self->role);
    case 1: return PyLong_FromUnsignedLong(self->lane);
    case 2: return Py_NewRef((PyObject *)self->channel);
    default: return PyBool_FromLong(self->destroyed);
    }
}

static PyObject *end_repr(PyObject *op) {
    cvpy_channel_end *self = (cvpy_channel_end *)op;
    if (self->role == CONVEYOR_CHANNEL_SENDER)
        return PyUnicode_FromFormat("<conveyor._core.ChannelEnd sender lane=%u%s on channel %U>",
                                    (unsigned)self->lane, self->destroyed ? " destroyed" : "",
                                    self->desc);
    return PyUnicode_FromFormat("<conveyor._core.ChannelEnd receiver lanes=%u%s on channel %U>",
                                (unsigned)self->lanes, self->destroyed ? " destroyed" : "",
                                self->desc);
}

static PyMethodDef end_methods[] = {
    {"send", CVPY_METH(end_send), METH_FASTCALL | METH_KEYWORDS,
     "send($self, word, timeout=None)\n--\n\nReturns bool. "
     "Sender: appends `word` (an int in 0...2**64-1)\n"
     "to its lane (conveyor_channel_send), waiting while the lane is full: True once sent,\n"
     "False if `timeout` ran out first (None waits forever, 0 polls, > 0 seconds). Cost\n"
     "when there is room: ~0.1-0.3 us, no allocation, no system call unless the receiver\n"
     "sleeps (a futex wake); the GIL is released while waiting (Ctrl-C interrupts within\n"
     "20 ms). Raises InvalidArgument (word or timeout), Closed (the lane was closed, or this\n"
     "end destroyed), PeerDied (the receiver died or left), RingCorrupt, Busy (first use\n"
     "after a fork while the parent's end is alive), WrongRole (on the receiver),\n"
     "RuntimeError (another thread is inside a call on this end)."},
    {"receive", CVPY_METH(end_receive), METH_FASTCALL | METH_KEYWORDS,
     "receive($self, lane, timeout=None)\n--\n\nReturns int or None. "
     "Receiver: takes the next word of\n"
     "`lane` in the order it was sent (conveyor_channel_receive), waiting while the lane is\n"
     "empty; None if `timeout` ran out first (None waits forever, 0 polls, > 0 seconds).\n"
     "Cost when a word is ready: ~0.1-0.3 us, no allocation but the int. Raises EndOfStream\n"
     "(the lane was closed and drained), PeerDied (its sender died without closing and\n"
     "every word it sent was taken; .lane names the lane), RingCorrupt (.lane too),\n"
     "InvalidArgument (lane, timeout), Closed (destroyed), Busy (first use after a fork),\n"
     "WrongRole (on a sender), RuntimeError (another thread is inside a call on this end)."},
    {"receive_any", CVPY_METH(end_receive_any), METH_FASTCALL | METH_KEYWORDS,
     "receive_any($self, timeout=None)\n--\n\nReturns (lane, word) or None. "
     "Receiver, wait-any: the next word\n"
     "of whichever lane has one, round-robin from the lane after the one served last\n"
     "(conveyor_channel_receive_any); None if `timeout` ran out first. Closed, drained lanes\n"
     "are skipped. Cost when a word is ready: ~0.2-0.4 us (one tuple). Raises EndOfStream\n"
     "(every lane is done), PeerDied (a lane's sender died without closing, once per dead\n"
     "sender while other lanes can deliver, again once none can) and RingCorrupt (a lane's\n"
     "indices are impossible; that lane is skipped afterwards), both with .lane naming the\n"
     "lane; Closed, Busy, WrongRole, RuntimeError as receive()."},
    {"close", end_close, METH_NOARGS,
     "close($self)\n--\n\n"
     "Sender: ends its lane's stream (conveyor_channel_close): the receiver takes every word\n"
     "sent before, then EndOfStream on the lane. Idempotent. Cost: a store and maybe a futex\n"
     "wake. The end stays open (destroy() hands it back). Raises WrongRole on the receiver\n"
     "(it has no lane to close: use destroy()), Closed after destroy(), Busy or RingCorrupt\n"
     "(first use after a fork), RuntimeError (another thread is inside a call)."},
    {"destroy", end_destroy, METH_NOARGS,
     "destroy($self)\n--\n\n"
     "Hands the end back and frees the handle (conveyor_channel_destroy): its peers see\n"
     "PeerDied unless this sender closed its lane first. Every later call raises Closed.\n"
     "During another thread's call on this end, that call raises Closed within 20 ms and the\n"
     "handle goes when it leaves. Idempotent; never raises. Also what collection does."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef end_getset[] = {
    {"role", end_get, NULL, "CHANNEL_SENDER or CHANNEL_RECEIVER.", (void *)0},
    {"lane", end_get, NULL, "A sender's lane; 0 for the receiver.", (void *)1},
    {"channel", end_get, NULL, "The Channel this end was opened from (kept alive by the end).", (void *)2},
    {"destroyed", end_get, NULL, "True after destroy().", (void *)3},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef end_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(cvpy_channel_end, weakrefs), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot end_slots[] = {
    {Py_tp_doc, "ChannelEnd: a lane's sender or the receiver of a Channel (Channel.open). Used by\n"
                "one thread at a time: a call while another thread's runs raises RuntimeError.\n"
                "It belongs to the process that opened it; destroy() (or collection) hands it\n"
                "back, and its peers then see PeerDied unless a sender closed its lane first."},
    {Py_tp_dealloc, CVPY_SLOT(end_dealloc)},
    {Py_tp_repr, CVPY_SLOT(end_repr)},
    {Py_tp_methods, end_methods},
    {Py_tp_getset, end_getset},
    {Py_tp_members, end_members},
    {0, NULL},
};

static PyType_Spec end_spec = {
    .name = "conveyor._core.ChannelEnd",
    .basicsize = sizeof(cvpy_channel_end),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = end_slots,
};

int cvpy_channel_init(PyObject *module) {
    PyObject *channel = PyType_FromModuleAndSpec(module, &channel_spec, NULL);
    if (channel == NULL) return -1;
    cvpy.channel_type = (PyTypeObject *)channel;
    if (PyModule_AddObjectRef(module, "Channel", channel) < 0) return -1;
    PyObject *end = PyType_FromModuleAndSpec(module, &end_spec, NULL);
    if (end == NULL) return -1;
    end_type = (PyTypeObject *)end;
    return PyModule_AddObjectRef(module, "ChannelEnd", end);
}
