/*
 * pool.c — Pool: a handle on a slot pool (conveyor_pool), shared memory cut into slots
 * that each carry a frame descriptor; and SlotBuffer, the buffer exporter behind every
 * numpy array over a slot.
 *
 * A pool has no protocol of its own: whoever holds a slot's number (passed on a Channel)
 * may touch the slot. So an array over a slot is just memory: Pool.array() makes a new
 * SlotBuffer (readonly or not, as asked) and a new ndarray over it. array.base is that
 * SlotBuffer, and only the array refers to it; every view derived from the array keeps
 * the array (and so the SlotBuffer) alive. So sys.getrefcount(array.base) tells whether
 * anyone still holds the array or a view of it. A
 * read-only SlotBuffer refuses PyBUF_WRITABLE requests, as a Frame does: numpy cannot
 * make such an array writable.
 *
 * Lifetime. A SlotBuffer holds a strong reference to its Pool and counts itself in
 * `exporters`. close() marks the pool closed (every later call on it raises Closed); the
 * mapping is unmapped (conveyor_pool_destroy) once the pool is closed and no SlotBuffer
 * is alive, or when the Pool is collected (then none is). Arrays alive after close()
 * keep working on memory that stays mapped.
 *
 * Fork. A pool inherited over fork works in the child: the mapping is shared and the
 * handle holds no per-process state. Its destruction in a forked child never unlinks a
 * NAMED pool's name (the C core's rule: only the creating process does).
 */
#include "core.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>

/* ---- arguments shared with channel.c and process.c ------------------------------------ */

int cvpy_arg_u64(PyObject *value, const char *what, uint64_t min, uint64_t max,
                 PyObject *desc, uint64_t *out) {
    if (value != NULL && !PyBool_Check(value) && PyIndex_Check(value)) {
        PyObject *index = PyNumber_Index(value);
        if (index != NULL) {
            unsigned long long v = PyLong_AsUnsignedLongLong(index);  /* negative: error */
            Py_DECREF(index);
            if (!(v == (unsigned long long)-1 && PyErr_Occurred()) && v >= min && v <= max) {
                *out = (uint64_t)v;
                return 0;
            }
        }
        PyErr_Clear();
    }
    cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, desc, "%s must be an int in %llu...%llu, not %R",
                what, (unsigned long long)min, (unsigned long long)max,
                value != NULL ? value : Py_None);
    return -1;
}

int cvpy_arg_backing(PyObject *backing_obj, PyObject *name_obj, int *backing, const char **name) {
    uint64_t b = CONVEYOR_RING_MEMFD;
    if (backing_obj != NULL &&
        cvpy_arg_u64(backing_obj, "backing (BACKING_ANONYMOUS, BACKING_MEMFD or BACKING_NAMED)",
                     CONVEYOR_RING_ANONYMOUS, CONVEYOR_RING_NAMED, NULL, &b) < 0)
        return -1;
    *backing = (int)b;
    *name = NULL;
    if (b == CONVEYOR_RING_NAMED) {
        if (name_obj == NULL || !PyUnicode_Check(name_obj)) {
            cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, NULL,
                        "BACKING_NAMED needs a str name like '/name', not %R",
                        name_obj != NULL ? name_obj : Py_None);
            return -1;
        }
        *name = PyUnicode_AsUTF8AndSize(name_obj, NULL);
        if (*name == NULL) return -1;
    }
    return 0;
}

/* ---- Pool -------------------------------------------------------------------------------- */

typedef struct cvpy_pool {
    PyObject_HEAD
    conveyor_pool *handle;      /* NULL once destroyed */
    int closed;                 /* close() called: every call raises Closed */
    int backing;                /* a conveyor_ring_backing */
    Py_ssize_t exporters;       /* SlotBuffers alive (each holds a reference to the pool) */
    PyObject *name;             /* str for NAMED pools, else None */
    PyObject *desc;             /* str: the name, "memfd:N" or "anonymous" */
    uint32_t slot_count;
    uint64_t slot_bytes;
    uint64_t mapped_bytes;
    PyObject *weakrefs;
} cvpy_pool;

typedef struct cvpy_slot_buffer {
    PyObject_HEAD
    cvpy_pool *pool;            /* strong */
    void *data;
    uint32_t slot;
    int readonly;
    cvpy_view view;
    Py_ssize_t exports;
} cvpy_slot_buffer;

static PyTypeObject *slot_buffer_type;
static PyObject *msg_slot_readonly;  /* the BufferError message of a writable request */

/* Unmaps once the pool is closed and no SlotBuffer is alive. */
static void pool_maybe_destroy(cvpy_pool *self) {
    if (self->handle == NULL || !self->closed || self->exporters != 0) return;
    conveyor_pool *handle = self->handle;
    self->handle = NULL;
    conveyor_pool_destroy(handle);
}

static PyObject *pool_closed_error(cvpy_pool *self) {
    return cvpy_error(CONVEYOR_E_CLOSED, self->desc, "the pool is closed");
}

/* Wraps a new handle; destroys it on failure. */
static PyObject *pool_wrap(PyTypeObject *type, conveyor_pool *handle, int backing) {
    allocfunc alloc = CVPY_GET_SLOT(allocfunc, type, Py_tp_alloc);
    cvpy_pool *self = (cvpy_pool *)alloc(type, 0);
    if (self == NULL) {
        conveyor_pool_destroy(handle);
        return NULL;
    }
    self->handle = handle;
    self->backing = backing;
    self->slot_count = conveyor_pool_slot_count(handle);
    self->slot_bytes = conveyor_pool_slot_bytes(handle);
    self->mapped_bytes = conveyor_pool_mapped_bytes(handle);
    const char *name = conveyor_pool_name(handle);
    self->name = name ? PyUnicode_FromString(name) : Py_NewRef(Py_None);
    if (name != NULL) self->desc = PyUnicode_FromString(name);
    else if (conveyor_pool_fd(handle) >= 0)
        self->desc = PyUnicode_FromFormat("memfd:%d", conveyor_pool_fd(handle));
    else self->desc = PyUnicode_FromString("anonymous");
    if (self->name == NULL || self->desc == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyObject *pool_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"slot_count", "slot_bytes", "backing", "name", NULL};
    PyObject *count_obj = NULL, *bytes_obj = NULL, *backing_obj = NULL, *name_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OO:Pool", kwlist, &count_obj, &bytes_obj,
                                     &backing_obj, &name_obj))
        return NULL;
    uint64_t slot_count, slot_bytes;
    int backing;
    const char *name;
    if (cvpy_arg_u64(count_obj, "slot_count", 1, CONVEYOR_POOL_MAX_SLOTS, NULL, &slot_count) < 0 ||
        cvpy_arg_u64(bytes_obj, "slot_bytes", 1, CONVEYOR_RING_MAX_SLOT_BYTES, NULL, &slot_bytes) < 0 ||
        cvpy_arg_backing(backing_obj, name_obj, &backing, &name) < 0)
        return NULL;
    conveyor_pool_config config;
    memset(&config, 0, sizeof config);
    config.slot_count = (uint32_t)slot_count;
    config.slot_bytes = slot_bytes;
    config.backing = (int32_t)backing;
    config.name = name;
    conveyor_pool *handle = NULL;
    int status = conveyor_pool_create(&config, &handle);
    if (status != CONVEYOR_OK) {
        PyObject *desc = name ? PyUnicode_FromString(name) : NULL;
        cvpy_errorf_in(status, desc, "creating a pool of %llu slots of %llu bytes",
                       (unsigned long long)slot_count, (unsigned long long)slot_bytes);
        Py_XDECREF(desc);
        return NULL;
    }
    return pool_wrap(type, handle, backing);
}

static PyObject *pool_attach_fd(PyObject *cls, PyObject *arg) {
    uint64_t fd;
    if (cvpy_arg_u64(arg, "an fd", 0, INT_MAX, NULL, &fd) < 0) return NULL;
    conveyor_pool *handle = NULL;
    int status = conveyor_pool_attach_fd((int)fd, &handle);
    if (status != CONVEYOR_OK) {
        PyObject *desc = PyUnicode_FromFormat("fd %d", (int)fd);
        cvpy_error_in(status, desc, "attaching a pool by fd");
        Py_XDECREF(desc);
        return NULL;
    }
    return pool_wrap((PyTypeObject *)cls, handle, CONVEYOR_RING_MEMFD);
}

static PyObject *pool_attach_named(PyObject *cls, PyObject *arg) {
    if (!PyUnicode_Check(arg))
        return cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, NULL,
                           "a pool name is a str like '/name', not %R", arg);
    const char *name = PyUnicode_AsUTF8AndSize(arg, NULL);
    if (name == NULL) return NULL;
    conveyor_pool *handle = NULL;
    int status = conveyor_pool_attach_named(name, &handle);
    if (status != CONVEYOR_OK) return cvpy_error_in(status, arg, "attaching a named pool");
    return pool_wrap((PyTypeObject *)cls, handle, CONVEYOR_RING_NAMED);
}

static void pool_dealloc(PyObject *op) {
    cvpy_pool *self = (cvpy_pool *)op;
    PyTypeObject *tp = Py_TYPE(op);
    if (self->weakrefs != NULL) PyObject_ClearWeakRefs(op);
    /* No SlotBuffer is alive: each holds a reference. */
    conveyor_pool *handle = self->handle;
    self->handle = NULL;
    conveyor_pool_destroy(handle);
    Py_XDECREF(self->name);
    Py_XDECREF(self->desc);
    freefunc tp_free = CVPY_GET_SLOT(freefunc, tp, Py_tp_free);
    tp_free(op);
    Py_DECREF(tp);
}

/* The handle for a call, or NULL with Closed set. */
static conveyor_pool *pool_handle(cvpy_pool *self) {
    if (self->closed || self->handle == NULL) {
        pool_closed_error(self);
        return NULL;
    }
    return self->handle;
}

static int pool_parse_index(cvpy_pool *self, PyObject *arg, uint32_t *index) {
    uint64_t v;
    if (cvpy_arg_u64(arg, "a slot index", 0, self->slot_count - 1, self->desc, &v) < 0) return -1;
    *index = (uint32_t)v;
    return 0;
}

static int pool_parse_dtype(cvpy_pool *self, PyObject *arg, uint32_t *dtype) {
    uint64_t v;
    if (cvpy_arg_u64(arg, "dtype (a conveyor dtype code: DTYPE_BYTES, DTYPE_F32 or DTYPE_F64)",
                     0, CONVEYOR_DTYPE_F64, self->desc, &v) < 0)
        return -1;
    *dtype = (uint32_t)v;
    return 0;
}

/* index, dtype and shape of array() and describe(): the slot and a checked description. */
static int pool_parse_frame(cvpy_pool *self, PyObject *const *a, const char *fname,
                            uint32_t *index, conveyor_frame_info *info, PyObject **shape) {
    if (a[0] == NULL || a[1] == NULL || a[2] == NULL) {
        PyErr_Format(PyExc_TypeError, "%s() needs index, dtype and shape", fname);
        return -1;
    }
    uint32_t dtype;
    if (pool_parse_index(self, a[0], index) < 0 || pool_parse_dtype(self, a[1], &dtype) < 0)
        return -1;
    return cvpy_frame_info(a[2], dtype, self->slot_bytes, self->desc, info, shape);
}

static PyObject *pool_array(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames) {
    cvpy_pool *self = (cvpy_pool *)op;
    static const char *const names[] = {"index", "dtype", "shape", "writable", NULL};
    PyObject *a[4];
    if (cvpy_parse_args(args, nargs, kwnames, names, 4, "array", a) < 0) return NULL;
    if (pool_handle(self) == NULL) return NULL;
    int writable = a[3] != NULL ? PyObject_IsTrue(a[3]) : 0;
    if (writable < 0) return NULL;
    uint32_t index;
    conveyor_frame_info info;
    PyObject *shape;
    if (pool_parse_frame(self, a, "array", &index, &info, &shape) < 0) return NULL;
    allocfunc alloc = CVPY_GET_SLOT(allocfunc, slot_buffer_type, Py_tp_alloc);
    cvpy_slot_buffer *buffer = (cvpy_slot_buffer *)alloc(slot_buffer_type, 0);
    if (buffer == NULL) {
        Py_DECREF(shape);
        return NULL;
    }
    buffer->pool = (cvpy_pool *)Py_NewRef(op);
    self->exporters++;
    /* The handle again: parsing ran Python code (__index__, __bool__), which may have
     * closed the pool from another thread. From here on this buffer keeps it mapped. */
    conveyor_pool *handle = pool_handle(self);
    if (handle == NULL) {
        Py_DECREF(shape);
        Py_DECREF((PyObject *)buffer);
        return NULL;
    }
    buffer->data = conveyor_pool_slot(handle, index);
    buffer->slot = index;
    buffer->readonly = !writable;
    cvpy_view_fill(&buffer->view, &info);
    PyObject *array = cvpy_ndarray(shape, info.dtype, (PyObject *)buffer);
    Py_DECREF(shape);
    Py_DECREF((PyObject *)buffer);  /* the array holds it now (its .base), or it dies */
    return array;
}

static PyObject *pool_describe(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
    cvpy_pool *self = (cvpy_pool *)op;
    static const char *const names[] = {"index", "dtype", "shape", "tag", NULL};
    PyObject *a[4];
    if (cvpy_parse_args(args, nargs, kwnames, names, 4, "describe", a) < 0) return NULL;
    if (pool_handle(self) == NULL) return NULL;
    uint32_t index;
    conveyor_frame_info info;
    PyObject *shape;
    if (pool_parse_frame(self, a, "describe", &index, &info, &shape) < 0) return NULL;
    Py_DECREF(shape);
    uint64_t tag = 0;
    if (a[3] != NULL && cvpy_arg_u64(a[3], "tag", 0, UINT64_MAX, self->desc, &tag) < 0)
        return NULL;
    info.tag = tag;
    conveyor_pool *handle = pool_handle(self);  /* again: parsing may have run Python code */
    if (handle == NULL) return NULL;
    int status = conveyor_pool_describe(handle, index, &info);
    if (status != CONVEYOR_OK)
        return cvpy_errorf_in(status, self->desc, "describing slot %u", (unsigned)index);
    Py_RETURN_NONE;
}

static PyObject *pool_frame(PyObject *op, PyObject *arg) {
    cvpy_pool *self = (cvpy_pool *)op;
    if (pool_handle(self) == NULL) return NULL;
    uint32_t index;
    if (pool_parse_index(self, arg, &index) < 0) return NULL;
    conveyor_pool *handle = pool_handle(self);  /* again: __index__ may have run Python code */
    if (handle == NULL) return NULL;
    const void *data = NULL;
    conveyor_frame_info info;
    memset(&info, 0, sizeof info);
    int status = conveyor_pool_frame(handle, index, &data, &info);
    if (status != CONVEYOR_OK)
        return cvpy_errorf_in(status, self->desc, "reading the frame descriptor of slot %u",
                              (unsigned)index);
    PyObject *shape = PyTuple_New(info.rank);
    if (shape == NULL) return NULL;
    for (uint32_t d = 0; d < info.rank; d++) {
        PyObject *extent = PyLong_FromUnsignedLongLong(info.shape[d]);
        if (extent == NULL) {
            Py_DECREF(shape);
            return NULL;
        }
        PyTuple_SetItem(shape, d, extent);  /* steals */
    }
    PyObject *result = Py_BuildValue("(IOK)", (unsigned)info.dtype, shape,
                                     (unsigned long long)info.tag);
    Py_DECREF(shape);
    return result;
}

static PyObject *pool_close(PyObject *op, PyObject *unused) {
    (void)unused;
    cvpy_pool *self = (cvpy_pool *)op;
    self->closed = 1;
    pool_maybe_destroy(self);
    Py_RETURN_NONE;
}

static PyObject *pool_get_fd(PyObject *op, void *closure) {
    (void)closure;
    cvpy_pool *self = (cvpy_pool *)op;
    conveyor_pool *handle = pool_handle(self);
    return handle ? PyLong_FromLong(conveyor_pool_fd(handle)) : NULL;
}

static PyObject *pool_get(PyObject *op, void *closure) {
    cvpy_pool *self = (cvpy_pool *)op;
    switch ((int)(intptr_t)closure) {
    case 0: return PyLong_FromUnsignedLong(self->slot_count);
    case 1: return PyLong_FromUnsignedLongLong(self->slot_bytes);
    case 2: return PyLong_FromUnsignedLongLong(self->mapped_bytes);
    case 3: return PyLong_FromLong(self->backing);
    case 4: return Py_NewRef(self->name);
    case 5: return Py_NewRef(self->desc);
    case 6: return PyBool_FromLong(self->closed);
    default: return PyLong_FromSsize_t(self->exporters);
    }
}

static const char *backing_text(int backing) {
    return backing == CONVEYOR_RING_ANONYMOUS ? "anonymous"
           : backing == CONVEYOR_RING_MEMFD   ? "memfd"
                                              : "named";
}

static PyObject *pool_repr(PyObject *op) {
    cvpy_pool *self = (cvpy_pool *)op;
    return PyUnicode_FromFormat("<conveyor._core.Pool %U%s slots=%u slot_bytes=%llu backing=%s>",
                                self->desc, self->closed ? " closed" : "",
                                (unsigned)self->slot_count,
                                (unsigned long long)self->slot_bytes, backing_text(self->backing));
}

static PyMethodDef pool_methods[] = {
    {"attach_fd", pool_attach_fd, METH_O | METH_CLASS,
     "attach_fd($type, fd)\n--\n\n"
     "Attaches the memfd pool behind `fd` (conveyor_pool_attach_fd; dup'ed: the caller\n"
     "keeps and closes its fd). Cost: fstat, fcntl, mmap. Raises InvalidArgument (not an\n"
     "int in 0...2**31-1), NotSealed, NotARing (not a pool), VersionMismatch, Truncated,\n"
     "RingCorrupt, SystemCallFailed, OutOfMemory."},
    {"attach_named", pool_attach_named, METH_O | METH_CLASS,
     "attach_named($type, name)\n--\n\n"
     "Attaches the named pool `name` ('/x'; conveyor_pool_attach_named). Never unlinks the\n"
     "name. Cost: shm_open, fstat, mmap. Raises SystemCallFailed (errno ENOENT: no such\n"
     "pool), InvalidArgument (bad name), NotARing, VersionMismatch, Truncated, RingCorrupt."},
    {"array", CVPY_METH(pool_array), METH_FASTCALL | METH_KEYWORDS,
     "array($self, index, dtype, shape, writable=False)\n--\n\n"
     "A new C-contiguous numpy.ndarray over slot `index` in place (no copy), read-only\n"
     "unless `writable`: dtype a conveyor dtype code (DTYPE_F64, DTYPE_F32, DTYPE_BYTES),\n"
     "shape an int or a tuple of ints (rank <= 4) whose bytes fit in a slot. Its .base is a\n"
     "new SlotBuffer referred to by the array alone (derived views keep the array), so\n"
     "sys.getrefcount(array.base) tells whether the array or a view is alive; numpy cannot\n"
     "make a read-only one writable. Nothing checks who may touch the slot: the holder of its\n"
     "number. Cost: one SlotBuffer and one ndarray (~1-2 us). Raises InvalidArgument (index\n"
     "out of range, bad dtype code, bad shape), TooLarge (more bytes than a slot), Closed."},
    {"describe", CVPY_METH(pool_describe), METH_FASTCALL | METH_KEYWORDS,
     "describe($self, index, dtype, shape, tag=0)\n--\n\n"
     "Writes slot `index`'s frame descriptor (conveyor_pool_describe): dtype code, shape\n"
     "(rank <= 4) and a tag (int in 0...2**64-1). Call it before sending the slot's number:\n"
     "the send publishes it. Cost: a 64-byte store. Raises InvalidArgument (index, dtype,\n"
     "shape, tag), TooLarge (more bytes than a slot), Closed."},
    {"frame", pool_frame, METH_O,
     "frame($self, index)\n--\n\nReturns (dtype_code, shape_tuple, tag). "
     "Reads slot `index`'s frame\n"
     "descriptor, copied once out of shared memory and validated (conveyor_pool_frame).\n"
     "Cost: a 64-byte copy and a check, one tuple. Raises RingCorrupt (an impossible\n"
     "descriptor, also a slot never described), InvalidArgument (index), Closed."},
    {"close", pool_close, METH_NOARGS,
     "close($self)\n--\n\n"
     "Closes the pool: every later call raises Closed. The mapping is unmapped now if no\n"
     "array of the pool is alive, else when the last one dies (they keep working until\n"
     "then). The creator's last handle of a named pool unlinks the name. Idempotent; never\n"
     "raises."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef pool_getset[] = {
    {"fd", pool_get_fd, NULL, "The fd of a memfd or named pool (owned by the pool), -1 if anonymous. Raises Closed after close().", NULL},
    {"slot_count", pool_get, NULL, "Number of slots.", (void *)0},
    {"slot_bytes", pool_get, NULL, "Capacity of each slot in bytes.", (void *)1},
    {"mapped_bytes", pool_get, NULL, "Bytes of the shared mapping (header, descriptors, page-rounded slots).", (void *)2},
    {"backing", pool_get, NULL, "BACKING_ANONYMOUS, BACKING_MEMFD or BACKING_NAMED.", (void *)3},
    {"name", pool_get, NULL, "The name of a named pool, else None.", (void *)4},
    {"desc", pool_get, NULL, "How messages name the pool: its name, 'memfd:N' or 'anonymous'.", (void *)5},
    {"closed", pool_get, NULL, "True after close().", (void *)6},
    {"exporters", pool_get, NULL, "SlotBuffers alive (each array over a slot has one; views of the array keep it).", (void *)7},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef pool_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(cvpy_pool, weakrefs), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot pool_slots[] = {
    {Py_tp_doc, "Pool(slot_count, slot_bytes, backing=BACKING_MEMFD, name=None): a new slot pool\n"
                "(conveyor_pool_create): shared memory cut into slot_count page-aligned slots of\n"
                "slot_bytes, each with a frame descriptor. Pool.attach_fd / attach_named attach an\n"
                "existing one. Whoever holds a slot's number (sent on a Channel) may touch the\n"
                "slot; nothing else guards it. Works in a forked child (the mapping is shared).\n"
                "Cost: one mmap (plus memfd_create or shm_open); pages are committed lazily.\n"
                "Raises InvalidArgument (a value out of range, a bad name), Exists (the name is\n"
                "taken), SystemCallFailed, OutOfMemory."},
    {Py_tp_new, CVPY_SLOT(pool_new)},
    {Py_tp_dealloc, CVPY_SLOT(pool_dealloc)},
    {Py_tp_repr, CVPY_SLOT(pool_repr)},
    {Py_tp_methods, pool_methods},
    {Py_tp_getset, pool_getset},
    {Py_tp_members, pool_members},
    {0, NULL},
};

static PyType_Spec pool_spec = {
    .name = "conveyor._core.Pool",
    .basicsize = sizeof(cvpy_pool),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = pool_slots,
};

/* ---- SlotBuffer ---------------------------------------------------------------------- */

static void slot_buffer_dealloc(PyObject *op) {
    cvpy_slot_buffer *buffer = (cvpy_slot_buffer *)op;
    PyTypeObject *tp = Py_TYPE(op);
    cvpy_pool *pool = buffer->pool;
    pool->exporters--;
    pool_maybe_destroy(pool);  /* the last array of a closed pool: unmap */
    freefunc tp_free = CVPY_GET_SLOT(freefunc, tp, Py_tp_free);
    tp_free(op);
    Py_DECREF(tp);
    Py_DECREF((PyObject *)pool);
}

static int slot_buffer_getbuffer(PyObject *op, Py_buffer *view, int flags) {
    cvpy_slot_buffer *buffer = (cvpy_slot_buffer *)op;
    if ((flags & PyBUF_WRITABLE) && buffer->readonly) {
        /* numpy asks for a writable buffer first on every array it makes over a read-only
         * slot: a prebuilt message keeps the refusal cheap. */
        view->obj = NULL;
        PyErr_SetObject(PyExc_BufferError, msg_slot_readonly);
        return -1;
    }
    const cvpy_view *v = &buffer->view;
    view->buf = buffer->data;
    view->obj = Py_NewRef(op);
    view->len = (Py_ssize_t)v->info.byte_length;
    view->itemsize = v->itemsize;
    view->readonly = buffer->readonly;
    view->ndim = (int)v->info.rank;
    view->format = (flags & PyBUF_FORMAT) ? (char *)cvpy_format(v->info.dtype) : NULL;
    view->shape = (flags & PyBUF_ND) == PyBUF_ND ? (Py_ssize_t *)v->shape : NULL;
    view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? (Py_ssize_t *)v->strides : NULL;
    view->suboffsets = NULL;
    view->internal = NULL;
    buffer->exports++;
    return 0;
}

static void slot_buffer_releasebuffer(PyObject *op, Py_buffer *view) {
    (void)view;
    ((cvpy_slot_buffer *)op)->exports--;
}

static PyObject *slot_buffer_get(PyObject *op, void *closure) {
    cvpy_slot_buffer *buffer = (cvpy_slot_buffer *)op;
    switch ((int)(intptr_t)closure) {
    case 0: return Py_NewRef((PyObject *)buffer->pool);
    case 1: return PyLong_FromUnsignedLong(buffer->slot);
    case 2: return PyLong_FromVoidPtr(buffer->data);
    case 3: return PyLong_FromUnsignedLongLong(buffer->view.info.byte_length);
    case 4: return PyBool_FromLong(buffer->readonly);
    default: return PyLong_FromSsize_t(buffer->exports);
    }
}

static PyObject *slot_buffer_repr(PyObject *op) {
    cvpy_slot_buffer *buffer = (cvpy_slot_buffer *)op;
    return PyUnicode_FromFormat("<conveyor._core.SlotBuffer slot=%u nbytes=%llu %s of pool %U>",
                                (unsigned)buffer->slot,
                                (unsigned long long)buffer->view.info.byte_length,
                                buffer->readonly ? "read-only" : "writable", buffer->pool->desc);
}

static PyGetSetDef slot_buffer_getset[] = {
    {"pool", slot_buffer_get, NULL, "The Pool whose slot this is (kept alive, and mapped, by this buffer).", (void *)0},
    {"slot", slot_buffer_get, NULL, "Index of the slot.", (void *)1},
    {"address", slot_buffer_get, NULL, "The slot's data pointer in this process (an int).", (void *)2},
    {"nbytes", slot_buffer_get, NULL, "Bytes exported.", (void *)3},
    {"readonly", slot_buffer_get, NULL, "True if it refuses writable buffer requests.", (void *)4},
    {"exports", slot_buffer_get, NULL, "Buffer exports currently open (memoryviews of it).", (void *)5},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot slot_buffer_slots[] = {
    {Py_tp_doc, "SlotBuffer: the buffer exporter behind an array made by Pool.array() (its\n"
                "array.base; views derived from the array keep the array). It keeps its Pool alive\n"
                "and mapped. A read-only one exports readonly=1 and refuses writable requests\n"
                "with a BufferError, so numpy cannot make the array writable."},
    {Py_tp_dealloc, CVPY_SLOT(slot_buffer_dealloc)},
    {Py_tp_getset, slot_buffer_getset},
    {Py_tp_repr, CVPY_SLOT(slot_buffer_repr)},
    {Py_bf_getbuffer, CVPY_SLOT(slot_buffer_getbuffer)},
    {Py_bf_releasebuffer, CVPY_SLOT(slot_buffer_releasebuffer)},
    {0, NULL},
};

static PyType_Spec slot_buffer_spec = {
    .name = "conveyor._core.SlotBuffer",
    .basicsize = sizeof(cvpy_slot_buffer),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = slot_buffer_slots,
};

int cvpy_pool_init(PyObject *module) {
    msg_slot_readonly = PyUnicode_FromString(
        "this pool slot's array was made read-only (Pool.array(..., writable=False)); copy it, "
        "e.g. numpy.array(x), to modify it");
    if (msg_slot_readonly == NULL) return -1;
    PyObject *pool = PyType_FromModuleAndSpec(module, &pool_spec, NULL);
    if (pool == NULL) return -1;
    cvpy.pool_type = (PyTypeObject *)pool;
    if (PyModule_AddObjectRef(module, "Pool", pool) < 0) return -1;
    PyObject *buffer = PyType_FromModuleAndSpec(module, &slot_buffer_spec, NULL);
    if (buffer == NULL) return -1;
    slot_buffer_type = (PyTypeObject *)buffer;
    return PyModule_AddObjectRef(module, "SlotBuffer", buffer);
}
