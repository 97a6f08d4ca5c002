/*
 * link.c — conveyor._mpi.Link: one end of a libconveyor_mpi link (conveyor_mpi.h section
 * 2), sending or receiving frames of any C-contiguous buffer, zero copy on both ends.
 */
#include "mpiext.h"

#include <stddef.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    PyObject_HEAD
    conveyor_mpi_link *link;  /* NULL once destroyed */
    long pid;                 /* the process that opened it: only it may call MPI */
    int peer, channel, sending;
    int busy;                 /* a call of some thread is inside the link (GIL released) */
} cvmpi_link_object;

static const char *const cvmpi_dtype_names[] = {"uint8", "float32", "float64"};

/* The link, ready for a call from this thread: 0, or -1 with MPIError set. */
static int cvmpi_enter(cvmpi_link_object *self, const char *what) {
    char message[240];
    if (self->link == NULL) {
        PyOS_snprintf(message, sizeof message, "Link.%s: the link (peer %d, channel %d) is destroyed",
                      what, self->peer, self->channel);
    } else if (self->pid != (long)getpid()) {
        PyOS_snprintf(message, sizeof message, "Link.%s: this link belongs to process %ld; a forked "
                      "process must never call MPI", what, self->pid);
    } else if (self->busy) {
        PyOS_snprintf(message, sizeof message, "Link.%s: the link is in use by another thread (a "
                      "link is driven by one thread at a time)", what);
    } else {
        self->busy = 1;
        return 0;
    }
    cvmpi_raise_message(message);
    return -1;
}

static PyObject *cvmpi_link_failed(cvmpi_link_object *self, int status, const char *what) {
    char where[96];
    PyOS_snprintf(where, sizeof where, "Link.%s (peer %d, channel %d)", what, self->peer, self->channel);
    return cvmpi_raise(status, where, conveyor_mpi_link_error(self->link));
}

static int cvmpi_link_init_object(cvmpi_link_object *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"peer", "channel", "sending", "chunk_bytes", "liveness", "heartbeat", NULL};
    int peer, channel, sending;
    unsigned long long chunk_bytes = 0;
    double liveness = 10.0, heartbeat = 0.1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iip|$Kdd", keywords, &peer, &channel, &sending,
                                     &chunk_bytes, &liveness, &heartbeat))
        return -1;
    if (self->link != NULL) {
        cvmpi_raise_message("Link.__init__: the link is already open");
        return -1;
    }
    if (!(liveness > 0 && liveness < 1e9 && heartbeat > 0 && heartbeat < liveness)) {
        cvmpi_raise(CONVEYOR_E_INVALID_ARGUMENT, "Link", "liveness and heartbeat must be seconds > 0, "
                    "heartbeat < liveness");
        return -1;
    }
    conveyor_mpi_link_config config;
    memset(&config, 0, sizeof config);
    config.peer = peer;
    config.channel = channel;
    config.chunk_bytes = chunk_bytes;
    config.liveness_ns = (int64_t)(liveness * 1e9);
    config.heartbeat_ns = (int64_t)(heartbeat * 1e9);
    self->peer = peer, self->channel = channel, self->sending = sending;
    conveyor_mpi_link *link = NULL;
    int status = conveyor_mpi_link_open(&config, sending ? CONVEYOR_MPI_SENDER : CONVEYOR_MPI_RECEIVER, &link);
    if (status != CONVEYOR_OK) {
        char where[96];
        PyOS_snprintf(where, sizeof where, "Link (peer %d, channel %d)", peer, channel);
        cvmpi_raise(status, where, NULL);
        return -1;
    }
    self->link = link;
    self->pid = (long)getpid();
    cvmpi_live_links++;
    return 0;
}

static void cvmpi_link_destroy_now(cvmpi_link_object *self) {
    conveyor_mpi_link *link = self->link;
    self->link = NULL;
    if (link == NULL) return;
    cvmpi_live_links--;
    if (self->pid != (long)getpid()) return;  /* a forked copy: the parent's, left alone */
    Py_BEGIN_ALLOW_THREADS
    conveyor_mpi_link_destroy(link);
    Py_END_ALLOW_THREADS
}

static void cvmpi_link_dealloc(PyObject *op) {
    cvmpi_link_object *self = (cvmpi_link_object *)op;
    if (!self->busy) cvmpi_link_destroy_now(self);
    PyTypeObject *type = Py_TYPE(op);
    freefunc free_fn = __extension__(freefunc)PyType_GetSlot(type, Py_tp_free);
    free_fn(op);
    Py_DECREF(type);
}

/* The frame description of a buffer: dtype from its format, shape from its extents. */
static int cvmpi_describe(const Py_buffer *view, uint64_t tag, conveyor_frame_info *info) {
    const char *format = view->format ? view->format : "B";
    if (*format == '@' || *format == '=' || *format == '<' || *format == '|') format++;
    memset(info, 0, sizeof *info);
    if (strcmp(format, "d") == 0 && view->itemsize == 8) info->dtype = CONVEYOR_DTYPE_F64;
    else if (strcmp(format, "f") == 0 && view->itemsize == 4) info->dtype = CONVEYOR_DTYPE_F32;
    else if (strchr("Bbc?", format[0]) != NULL && format[1] == '\0' && view->itemsize == 1)
        info->dtype = CONVEYOR_DTYPE_BYTES;
    else {
        char detail[120];
        PyOS_snprintf(detail, sizeof detail, "a buffer of format '%.20s' (item size %zd); links carry "
                      "float64 'd', float32 'f' or bytes", view->format ? view->format : "B",
                      view->itemsize);
        cvmpi_raise(CONVEYOR_E_INVALID_ARGUMENT, "Link.send", detail);
        return -1;
    }
    if (view->ndim > CONVEYOR_FRAME_MAX_RANK) {
        cvmpi_raise(CONVEYOR_E_INVALID_ARGUMENT, "Link.send", "a buffer of more than 4 dimensions");
        return -1;
    }
    info->rank = (uint32_t)view->ndim;
    for (int d = 0; d < view->ndim; d++) info->shape[d] = (uint64_t)view->shape[d];
    info->byte_length = (uint64_t)view->len;
    info->tag = tag;
    return 0;
}

static PyObject *cvmpi_link_send(cvmpi_link_object *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"array", "tag", NULL};
    PyObject *obj;
    unsigned long long tag = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|K", keywords, &obj, &tag)) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    conveyor_frame_info info;
    if (cvmpi_describe(&view, tag, &info) < 0 || cvmpi_enter(self, "send") < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = conveyor_mpi_link_send(self->link, view.buf, &info);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    PyBuffer_Release(&view);
    if (status != CONVEYOR_OK) return cvmpi_link_failed(self, status, "send");
    Py_RETURN_NONE;
}

static PyObject *cvmpi_link_close(cvmpi_link_object *self, PyObject *unused) {
    (void)unused;
    if (cvmpi_enter(self, "close") < 0) return NULL;
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = conveyor_mpi_link_close(self->link);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (status != CONVEYOR_OK) return cvmpi_link_failed(self, status, "close");
    Py_RETURN_NONE;
}

static PyObject *cvmpi_link_next(cvmpi_link_object *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"timeout", NULL};
    PyObject *timeout_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O", keywords, &timeout_obj)) return NULL;
    double timeout = -1.0;
    if (timeout_obj != Py_None) {
        timeout = PyFloat_AsDouble(timeout_obj);
        if (timeout == -1.0 && PyErr_Occurred()) return NULL;
        if (timeout < 0) timeout = 0;
    }
    if (cvmpi_enter(self, "next") < 0) return NULL;
    int64_t left = timeout < 0 ? -1 : (int64_t)(timeout * 1e9);
    conveyor_frame_info info;
    int status;
    for (;;) {
        int64_t slice = left < 0 || left > CVMPI_SLICE_NS ? CVMPI_SLICE_NS : left;
        Py_BEGIN_ALLOW_THREADS
        status = conveyor_mpi_link_next(self->link, slice, &info);
        Py_END_ALLOW_THREADS
        if (status != CONVEYOR_E_TIMEOUT) break;
        if (left >= 0 && (left -= slice) <= 0) break;
        if (PyErr_CheckSignals() < 0) {
            self->busy = 0;
            return NULL;
        }
    }
    self->busy = 0;
    if (status == CONVEYOR_E_END_OF_STREAM) Py_RETURN_NONE;
    if (status == CONVEYOR_E_TIMEOUT) {
        PyErr_Format(PyExc_TimeoutError, "Link.next (peer %d, channel %d): no frame within %.3f s",
                     self->peer, self->channel, timeout);
        return NULL;
    }
    if (status != CONVEYOR_OK) return cvmpi_link_failed(self, status, "next");
    PyObject *shape = PyTuple_New((Py_ssize_t)info.rank);
    if (shape == NULL) return NULL;
    for (uint32_t d = 0; d < info.rank; d++) {
        PyObject *extent = PyLong_FromUnsignedLongLong(info.shape[d]);
        if (extent == NULL) {
            Py_DECREF(shape);
            return NULL;
        }
        PyTuple_SetItem(shape, (Py_ssize_t)d, extent);
    }
    return Py_BuildValue("(sNK)", cvmpi_dtype_names[info.dtype], shape, (unsigned long long)info.tag);
}

static PyObject *cvmpi_link_receive_into(cvmpi_link_object *self, PyObject *obj) {
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (cvmpi_enter(self, "receive_into") < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = conveyor_mpi_link_receive_payload(self->link, view.buf, (uint64_t)view.len);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    PyBuffer_Release(&view);
    if (status != CONVEYOR_OK) return cvmpi_link_failed(self, status, "receive_into");
    Py_RETURN_NONE;
}

static PyObject *cvmpi_link_check(cvmpi_link_object *self, PyObject *unused) {
    (void)unused;
    if (cvmpi_enter(self, "check") < 0) return NULL;
    int status = conveyor_mpi_link_check(self->link);
    self->busy = 0;
    if (status != CONVEYOR_OK) return cvmpi_link_failed(self, status, "check");
    Py_RETURN_NONE;
}

static PyObject *cvmpi_link_stats(cvmpi_link_object *self, PyObject *unused) {
    (void)unused;
    if (self->link == NULL) return cvmpi_raise_message("Link.stats: the link is destroyed");
    conveyor_mpi_link_stats s;
    conveyor_mpi_link_get_stats(self->link, &s);
    return Py_BuildValue("{sKsKsKsdsK}", "frames", (unsigned long long)s.frames,
                         "bytes", (unsigned long long)s.bytes, "messages", (unsigned long long)s.messages,
                         "blocked_seconds", (double)s.blocked_ns / 1e9,
                         "heartbeats", (unsigned long long)s.heartbeats);
}

static PyObject *cvmpi_link_destroy(cvmpi_link_object *self, PyObject *unused) {
    (void)unused;
    if (self->busy) return cvmpi_raise_message("Link.destroy: the link is in use by another thread");
    cvmpi_link_destroy_now(self);
    Py_RETURN_NONE;
}

static PyObject *cvmpi_link_enter(PyObject *self, PyObject *unused) {
    (void)unused;
    return Py_NewRef(self);
}

static PyObject *cvmpi_link_exit(cvmpi_link_object *self, PyObject *args) {
    (void)args;
    return cvmpi_link_destroy(self, NULL);
}

static PyObject *cvmpi_link_get_peer(cvmpi_link_object *self, void *c) {
    (void)c;
    return PyLong_FromLong(self->peer);
}

static PyObject *cvmpi_link_get_channel(cvmpi_link_object *self, void *c) {
    (void)c;
    return PyLong_FromLong(self->channel);
}

static PyObject *cvmpi_link_get_sending(cvmpi_link_object *self, void *c) {
    (void)c;
    return PyBool_FromLong(self->sending);
}

static PyObject *cvmpi_link_get_open(cvmpi_link_object *self, void *c) {
    (void)c;
    return PyBool_FromLong(self->link != NULL);
}

static PyMethodDef cvmpi_link_methods[] = {
    {"send", CVMPI_METH(cvmpi_link_send), METH_VARARGS | METH_KEYWORDS,
     "send(array, tag=0)\n--\n\nSender: sends one frame, read in place from `array` (any "
     "C-contiguous buffer: a float64\n'd' or float32 'f' array of 0 to 4 dimensions, or bytes-like "
     "of 1-byte items), with `tag`\n(an int the receiver gets back, e.g. the item's index), and "
     "returns once MPI is done with\nthe buffer: zero copy, the network's copy is the only one. "
     "The GIL is released while it\nwaits. Cost: one descriptor message and one per chunk_bytes of "
     "payload. Raises MPIError\n(status CONVEYOR_E_INVALID_ARGUMENT for an unsupported buffer, "
     "CONVEYOR_E_CLOSED after\nclose(), CONVEYOR_E_WRONG_ROLE on a receiver), PeerDead when the "
     "receiver died or left.\nA failed link stays broken."},
    {"close", CVMPI_METH(cvmpi_link_close), METH_NOARGS,
     "close()\n--\n\nSender: ends the stream and waits for the receiver's acknowledgement, so on "
     "return every\nframe was received. Closing twice is fine. GIL released while waiting. Raises "
     "MPIError,\nPeerDead (the receiver died or left first)."},
    {"next", CVMPI_METH(cvmpi_link_next), METH_VARARGS | METH_KEYWORDS,
     "next(timeout=None)\n--\n\nReceiver: waits for the next frame's descriptor and returns "
     "(dtype, shape, tag) with\ndtype 'uint8', 'float32' or 'float64' and shape a tuple; None at "
     "the end of the stream (and\nagain later). Its payload must then be taken with receive_into "
     "before the next call.\ntimeout None waits as long as the peer is alive (its heartbeats come), "
     "else at most\n`timeout` seconds, then raises TimeoutError. Waits in 20 ms slices with the "
     "GIL released,\nlooking at signals between them. Raises PeerDead (the sender died, went silent "
     "for\n`liveness` seconds, or left without close()), MPIError (CONVEYOR_E_CORRUPT: a "
     "descriptor\nthat breaks the protocol; CONVEYOR_E_BAD_STATE: a payload not taken)."},
    {"receive_into", CVMPI_METH(cvmpi_link_receive_into), METH_O,
     "receive_into(buffer)\n--\n\nReceiver: receives the payload of the frame next() described "
     "straight into `buffer`\n(a writable C-contiguous buffer of at least its byte length, e.g. a "
     "numpy array or a\nbytearray): no other copy. The caller checks dtype and shape from next(); "
     "the bytes land\nas they were sent. Waits with the GIL released until all of it came. Raises "
     "MPIError\n(CONVEYOR_E_TOO_LARGE: the buffer is too small, and the link is then broken;\n"
     "CONVEYOR_E_BAD_STATE: no frame described), PeerDead."},
    {"check", CVMPI_METH(cvmpi_link_check), METH_NOARGS,
     "check()\n--\n\nRaises PeerDead if the peer has been silent for longer than `liveness` "
     "seconds, else\nreturns None. Cost: a mutex, no MPI call."},
    {"stats", CVMPI_METH(cvmpi_link_stats), METH_NOARGS,
     "stats()\n--\n\nThe link's counters as a dict: frames, bytes (payload), messages, "
     "blocked_seconds (time\nwaited inside link calls) and heartbeats received. Cost: a copy of "
     "five counters. Raises\nMPIError once destroyed."},
    {"destroy", CVMPI_METH(cvmpi_link_destroy), METH_NOARGS,
     "destroy()\n--\n\nStops the heartbeat thread and frees the end, after exchanging a BYE with "
     "the peer\n(waiting at most `liveness` seconds): a sender should close() first, or its "
     "receiver's\nnext wait raises PeerDead. Idempotent; garbage collection does it too. In a "
     "forked copy\nit only forgets the handle (no MPI call). Raises MPIError while another thread "
     "uses it."},
    {"__enter__", CVMPI_METH(cvmpi_link_enter), METH_NOARGS,
     "__enter__()\n--\n\nReturns the link; leaving the with block destroys it."},
    {"__exit__", CVMPI_METH(cvmpi_link_exit), METH_VARARGS,
     "__exit__(*exc)\n--\n\nDestroys the link (see destroy)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef cvmpi_link_getset[] = {
    {"peer", (getter)cvmpi_link_get_peer, NULL, "The other end's rank in MPI_COMM_WORLD.", NULL},
    {"channel", (getter)cvmpi_link_get_channel, NULL, "The link's channel number (0...4095).", NULL},
    {"sending", (getter)cvmpi_link_get_sending, NULL, "True for the sending end.", NULL},
    {"open", (getter)cvmpi_link_get_open, NULL, "False once destroyed.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot cvmpi_link_slots[] = {
    {Py_tp_doc, (void *)
     "Link(peer, channel, sending, *, chunk_bytes=0, liveness=10.0, heartbeat=0.1)\n--\n\n"
     "One end of a link of libconveyor_mpi: a stream of frames from this rank to `peer`\n"
     "(sending=True) or from it (sending=False) on `channel` (0...4095; both ends agree on it).\n"
     "chunk_bytes: the sender's payload bytes per MPI message (0: 4 MiB); liveness: seconds\n"
     "after which a silent peer is dead; heartbeat: seconds between heartbeats (< liveness).\n"
     "Opening starts a heartbeat thread and waits for no message, so ends open in any order;\n"
     "call conveyor._mpi.init() first. One thread drives a link at a time; only the process\n"
     "that opened it may call it (a forked child's copy raises). Raises MPIError\n"
     "(CONVEYOR_E_INVALID_ARGUMENT: peer, channel, sizes; CONVEYOR_E_UNSUPPORTED: MPI not\n"
     "initialized with MPI_THREAD_MULTIPLE)."},
    {Py_tp_new, CVMPI_SLOT(PyType_GenericNew)},
    {Py_tp_init, CVMPI_SLOT(cvmpi_link_init_object)},
    {Py_tp_dealloc, CVMPI_SLOT(cvmpi_link_dealloc)},
    {Py_tp_methods, cvmpi_link_methods},
    {Py_tp_getset, cvmpi_link_getset},
    {0, NULL},
};

static PyType_Spec cvmpi_link_spec = {
    .name = "conveyor._mpi.Link",
    .basicsize = sizeof(cvmpi_link_object),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = cvmpi_link_slots,
};

int cvmpi_link_init(PyObject *module) {
    PyObject *type = PyType_FromSpec(&cvmpi_link_spec);
    if (type == NULL) return -1;
    int failed = PyModule_AddObjectRef(module, "Link", type);
    Py_DECREF(type);
    return failed;
}
