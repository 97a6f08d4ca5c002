/*
 * ring.c — RingHolder: a handle of role HOLDER on a ring's memory. It claims neither
 * side; it keeps the mapping (and fd, or name) alive, reports geometry and counters, and
 * opens producers and consumers on the same mapping (conveyor_ring_open_side).
 * A named ring's creator removes the name when its holder closes or is collected.
 */
#include "core.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

static PyObject *holder_desc(conveyor_ring *handle, int backing) {
    if (backing == CONVEYOR_RING_NAMED) {
        const char *name = conveyor_ring_name(handle);
        return PyUnicode_FromString(name ? name : "(named)");
    }
    if (backing == CONVEYOR_RING_MEMFD) return PyUnicode_FromFormat("memfd:%d", conveyor_ring_fd(handle));
    return PyUnicode_FromString("anonymous");
}

/* Wraps a new HOLDER handle; destroys it on failure. */
static PyObject *holder_wrap(PyTypeObject *type, conveyor_ring *handle, int backing, int creator) {
    conveyor_ring_stats stats;
    memset(&stats, 0, sizeof stats);
    int status = conveyor_ring_read_stats(handle, &stats, sizeof stats);
    if (status != CONVEYOR_OK) {
        conveyor_ring_destroy(handle);
        return cvpy_error_in(status, NULL, "reading the new ring's geometry failed");
    }
    cvpy_holder *self = (cvpy_holder *)PyType_GenericAlloc(type, 0);
    if (self == NULL) {
        conveyor_ring_destroy(handle);
        return NULL;
    }
    self->handle = handle;
    self->backing = backing;
    self->slots = stats.slot_count;
    self->slot_bytes = stats.slot_bytes;
    self->mapped_bytes = stats.mapped_bytes;
    self->creator = creator && backing == CONVEYOR_RING_NAMED;
    self->creator_pid = (long)getpid();
    const char *name = backing == CONVEYOR_RING_NAMED ? conveyor_ring_name(handle) : NULL;
    self->name = name ? PyUnicode_FromString(name) : Py_NewRef(Py_None);
    self->desc = holder_desc(handle, backing);
    if (self->name == NULL || self->desc == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* Removes the name now if this process created it (conveyor_ring_remove_name: once only,
 * never in a forked child, never a later ring's of the same name). */
static void holder_unlink(cvpy_holder *self) {
    if (!self->creator || self->handle == NULL) return;
    self->creator = 0;
    (void)conveyor_ring_remove_name(self->handle);  /* a failure leaves it to destroy */
}

static void holder_close_handle(cvpy_holder *self) {
    holder_unlink(self);
    conveyor_ring *handle = self->handle;
    self->handle = NULL;
    conveyor_ring_destroy(handle);
}

static void holder_dealloc(PyObject *op) {
    cvpy_holder *self = (cvpy_holder *)op;
    PyTypeObject *tp = Py_TYPE(op);
    if (self->weakrefs != NULL) PyObject_ClearWeakRefs(op);
    holder_close_handle(self);
    Py_XDECREF(self->name);
    Py_XDECREF(self->desc);
    freefunc tp_free = CVPY_GET_SLOT(freefunc, tp, Py_tp_free);
    tp_free(op);
    Py_DECREF(tp);
}

static int holder_parse_u64(PyObject *value, const char *what, uint64_t max, uint64_t *out) {
    if (value == NULL || !PyLong_Check(value) || PyBool_Check(value)) {
        cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, NULL, "%s must be an int, not %R", what,
                    value ? value : Py_None);
        return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (overflow != 0 || v < 1 || (uint64_t)v > max) {
        cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, NULL, "%s must be in 1...%llu, not %R", what,
                    (unsigned long long)max, value);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

static PyObject *holder_create(PyObject *cls, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
    static const char *const names[] = {"slots", "slot_bytes", "backing", "name", "spin", NULL};
    PyObject *a[5];
    if (cvpy_parse_args(args, nargs, kwnames, names, 5, "create", a) < 0) return NULL;
    uint64_t slots, slot_bytes, spin = CONVEYOR_RING_DEFAULT_SPIN;
    if (holder_parse_u64(a[0], "slots", CONVEYOR_RING_MAX_SLOTS, &slots) < 0 ||
        holder_parse_u64(a[1], "slot_bytes", CONVEYOR_RING_MAX_SLOT_BYTES, &slot_bytes) < 0)
        return NULL;
    long backing = a[2] ? PyLong_AsLong(a[2]) : CONVEYOR_RING_MEMFD;
    if (backing == -1 && PyErr_Occurred()) return NULL;
    if (backing < CONVEYOR_RING_ANONYMOUS || backing > CONVEYOR_RING_NAMED)
        return cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, NULL, "unknown backing %ld", backing);
    if (a[4] != NULL && a[4] != Py_None) {
        unsigned long long v = PyLong_AsUnsignedLongLong(a[4]);
        if (v == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            return cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, NULL,
                               "spin must be an int in 0...4294967295, not %R", a[4]);
        }
        if (v > UINT32_MAX)
            return cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, NULL,
                               "spin must be an int in 0...4294967295, not %R", a[4]);
        spin = v;
    }
    const char *name = NULL;
    if (backing == CONVEYOR_RING_NAMED) {
        if (a[3] == NULL || !PyUnicode_Check(a[3]))
            return cvpy_error(CONVEYOR_E_INVALID_ARGUMENT, NULL, "a named ring needs a str name");
        name = PyUnicode_AsUTF8AndSize(a[3], NULL);
        if (name == NULL) return NULL;
    }
    conveyor_ring_config config;
    memset(&config, 0, sizeof config);
    config.slot_count = (uint32_t)slots;
    config.slot_bytes = slot_bytes;
    config.spin = (uint32_t)spin;
    config.backing = (int32_t)backing;
    config.name = name;
    conveyor_ring *handle = NULL;
    int status = conveyor_ring_create_holder(&config, &handle);
    if (status != CONVEYOR_OK) {
        PyObject *desc = name ? PyUnicode_FromString(name) : NULL;
        cvpy_errorf_in(status, desc, "creating a ring of %llu slots of %llu bytes",
                    (unsigned long long)slots, (unsigned long long)slot_bytes);
        Py_XDECREF(desc);
        return NULL;
    }
    return holder_wrap((PyTypeObject *)cls, handle, (int)backing, 1);
}

static PyObject *holder_attach_fd(PyObject *cls, PyObject *arg) {
    if (PyBool_Check(arg) || !PyIndex_Check(arg))
        return cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, NULL, "an fd is an int, not %R", arg);
    PyObject *index = PyNumber_Index(arg);
    if (index == NULL) return NULL;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(index, &overflow);
    Py_DECREF(index);
    if (v == -1 && PyErr_Occurred()) return NULL;
    if (overflow != 0 || v < 0 || v > INT_MAX)
        return cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, NULL, "bad fd %R: fds are 0...%d", arg,
                           INT_MAX);
    int fd = (int)v;
    conveyor_ring *handle = NULL;
    int status = conveyor_ring_attach_fd(fd, CONVEYOR_RING_HOLDER, &handle);
    if (status != CONVEYOR_OK) {
        PyObject *desc = PyUnicode_FromFormat("fd %d", fd);
        cvpy_error_in(status, desc, "attaching a ring by fd");
        Py_XDECREF(desc);
        return NULL;
    }
    return holder_wrap((PyTypeObject *)cls, handle, CONVEYOR_RING_MEMFD, 0);
}

static PyObject *holder_attach_named(PyObject *cls, PyObject *arg) {
    if (!PyUnicode_Check(arg))
        return cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, NULL,
                           "a ring name is a str like '/name', not %R", arg);
    const char *name = PyUnicode_AsUTF8AndSize(arg, NULL);
    if (name == NULL) return NULL;
    conveyor_ring *handle = NULL;
    int status = conveyor_ring_attach_named(name, CONVEYOR_RING_HOLDER, &handle);
    if (status != CONVEYOR_OK) return cvpy_error_in(status, arg, "attaching a named ring");
    return holder_wrap((PyTypeObject *)cls, handle, CONVEYOR_RING_NAMED, 0);
}

static PyObject *holder_closed_error(cvpy_holder *self) {
    return cvpy_error(CONVEYOR_E_CLOSED, self->desc, "the ring is closed");
}

static PyObject *holder_stats(PyObject *op, PyObject *unused) {
    (void)unused;
    cvpy_holder *self = (cvpy_holder *)op;
    if (self->handle == NULL) return holder_closed_error(self);
    conveyor_ring_stats s;
    memset(&s, 0, sizeof s);
    int status = conveyor_ring_read_stats(self->handle, &s, sizeof s);
    if (status != CONVEYOR_OK) return cvpy_error(status, self->desc, NULL);
    PyObject *dict = PyDict_New();
    if (dict == NULL) return NULL;
    if (cvpy_dict_set_u64(dict, "frames_committed", s.frames_committed) < 0 ||
        cvpy_dict_set_u64(dict, "bytes_committed", s.bytes_committed) < 0 ||
        cvpy_dict_set_u64(dict, "frames_released", s.frames_released) < 0 ||
        cvpy_dict_set_u64(dict, "producer_waits", s.producer_waits) < 0 ||
        cvpy_dict_set_u64(dict, "producer_wakes", s.producer_wakes) < 0 ||
        cvpy_dict_set_u64(dict, "consumer_waits", s.consumer_waits) < 0 ||
        cvpy_dict_set_u64(dict, "consumer_wakes", s.consumer_wakes) < 0 ||
        cvpy_dict_set_u64(dict, "peak_occupancy", s.peak_occupancy) < 0 ||
        cvpy_dict_set_u64(dict, "slot_count", s.slot_count) < 0 ||
        cvpy_dict_set_u64(dict, "closed", s.closed) < 0 ||
        cvpy_dict_set_u64(dict, "slot_bytes", s.slot_bytes) < 0 ||
        cvpy_dict_set_u64(dict, "mapped_bytes", s.mapped_bytes) < 0) {
        Py_DECREF(dict);
        return NULL;
    }
    return dict;
}

static PyObject *holder_close(PyObject *op, PyObject *unused) {
    (void)unused;
    holder_close_handle((cvpy_holder *)op);
    Py_RETURN_NONE;
}

static PyObject *holder_get_fd(PyObject *op, void *closure) {
    (void)closure;
    cvpy_holder *self = (cvpy_holder *)op;
    if (self->handle == NULL) return holder_closed_error(self);
    return PyLong_FromLong(conveyor_ring_fd(self->handle));
}

static PyObject *holder_get_u64(PyObject *op, void *closure) {
    cvpy_holder *self = (cvpy_holder *)op;
    uint64_t value = closure == (void *)0 ? self->slots
                     : closure == (void *)1 ? self->slot_bytes
                                            : self->mapped_bytes;
    return PyLong_FromUnsignedLongLong(value);
}

static PyObject *holder_get_backing(PyObject *op, void *closure) {
    (void)closure;
    return PyLong_FromLong(((cvpy_holder *)op)->backing);
}

static PyObject *holder_get_name(PyObject *op, void *closure) {
    (void)closure;
    return Py_NewRef(((cvpy_holder *)op)->name);
}

static PyObject *holder_get_desc(PyObject *op, void *closure) {
    (void)closure;
    return Py_NewRef(((cvpy_holder *)op)->desc);
}

static PyObject *holder_get_closed(PyObject *op, void *closure) {
    (void)closure;
    return PyBool_FromLong(((cvpy_holder *)op)->handle == NULL);
}

static PyObject *holder_get_creator(PyObject *op, void *closure) {
    (void)closure;
    cvpy_holder *self = (cvpy_holder *)op;
    return PyBool_FromLong(self->creator && (long)getpid() == self->creator_pid);
}

static PyMethodDef holder_methods[] = {
    {"create", CVPY_METH(holder_create), METH_FASTCALL | METH_KEYWORDS | METH_CLASS,
     "create($type, slots, slot_bytes, backing=1, name=None, spin=None)\n--\n\n"
     "Makes a new ring with neither side claimed (conveyor_ring_create_holder).\n"
     "Cost: one mmap (plus memfd_create or shm_open); pages are committed lazily.\n"
     "Raises InvalidArgument (a value out of range, a bad name), Exists (the name is\n"
     "taken), SystemCallFailed, OutOfMemory."},
    {"attach_fd", holder_attach_fd, METH_O | METH_CLASS,
     "attach_fd($type, fd)\n--\n\n"
     "Attaches the memfd ring behind `fd` (dup'ed: the caller keeps and closes its fd).\n"
     "Claims nothing. Raises InvalidArgument (not an int in 0...2**31-1), NotSealed,\n"
     "NotARing, VersionMismatch, Truncated, RingCorrupt, SystemCallFailed."},
    {"attach_named", holder_attach_named, METH_O | METH_CLASS,
     "attach_named($type, name)\n--\n\n"
     "Attaches the named ring `name` ('/x'). Claims nothing and never unlinks the name.\n"
     "Raises SystemCallFailed (errno ENOENT: no such ring), InvalidArgument (bad name),\n"
     "NotARing, VersionMismatch, Truncated, RingCorrupt."},
    {"stats", holder_stats, METH_NOARGS,
     "stats($self)\n--\n\nReturns dict. "
     "The ring's shared counters (the fields of conveyor_ring_stats), read without\n"
     "locking: each is exact, they are not a snapshot. Raises Closed after close()."},
    {"close", holder_close, METH_NOARGS,
     "close($self)\n--\n\n"
     "Releases this handle and, for the creator of a named ring, unlinks the name.\n"
     "Producers and consumers opened from it keep working. Idempotent; never raises."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef holder_getset[] = {
    {"fd", holder_get_fd, NULL, "The fd of a memfd or named ring (owned by the holder), -1 if anonymous.", NULL},
    {"slots", holder_get_u64, NULL, "Number of slots.", (void *)0},
    {"slot_bytes", holder_get_u64, NULL, "Capacity of each slot in bytes.", (void *)1},
    {"mapped_bytes", holder_get_u64, NULL, "Bytes of the shared mapping.", (void *)2},
    {"backing", holder_get_backing, NULL, "BACKING_ANONYMOUS, BACKING_MEMFD or BACKING_NAMED.", NULL},
    {"name", holder_get_name, NULL, "The name of a named ring, else None.", NULL},
    {"desc", holder_get_desc, NULL, "How messages name the ring: its name, 'memfd:N' or 'anonymous'.", NULL},
    {"closed", holder_get_closed, NULL, "True after close().", NULL},
    {"creator", holder_get_creator, NULL, "True in the process that created a named ring, until it unlinks it.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef holder_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(cvpy_holder, weakrefs), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot holder_slots[] = {
    {Py_tp_doc, "RingHolder: a ring's memory without a side (conveyor_ring role HOLDER).\n"
                "Made by RingHolder.create / attach_fd / attach_named; conveyor.Ring wraps it.\n"
                "Producer(holder, ...) and Consumer(holder) open the sides on its mapping."},
    {Py_tp_dealloc, CVPY_SLOT(holder_dealloc)},
    {Py_tp_methods, holder_methods},
    {Py_tp_getset, holder_getset},
    {Py_tp_members, holder_members},
    {0, NULL},
};

static PyType_Spec holder_spec = {
    .name = "conveyor._core.RingHolder",
    .basicsize = sizeof(cvpy_holder),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = holder_slots,
};

int cvpy_holder_init(PyObject *module) {
    PyObject *type = PyType_FromModuleAndSpec(module, &holder_spec, NULL);
    if (type == NULL) return -1;
    cvpy.holder_type = (PyTypeObject *)type;
    return PyModule_AddObjectRef(module, "RingHolder", type);
}
