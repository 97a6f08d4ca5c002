/*
 * frame.c — the two buffer exporters behind every numpy view of a slot.
 *
 * Frame: a received frame, exported read-only (readonly = 1; a PyBUF_WRITABLE request
 * fails, so numpy cannot set `writeable` back to True). It keeps its consumer alive;
 * when it dies (its last view gone) it marks its frame done, and the consumer releases
 * frames in order while the oldest is done.
 *
 * Loan: a loaned slot, exported writable until commit() or abandon(); after that it
 * refuses writable requests and the array it handed out is made read-only. It keeps its
 * producer alive. It holds its array only through a weak reference: numpy arrays are
 * not tracked by the cycle collector, so a strong one would leak both.
 */
#include "core.h"

#include <string.h>

void cvpy_view_fill(cvpy_view *view, const conveyor_frame_info *info) {
    view->info = *info;
    view->itemsize = cvpy_itemsize(info->dtype);
    Py_ssize_t stride = view->itemsize;
    for (int d = (int)info->rank - 1; d >= 0; d--) {
        view->shape[d] = (Py_ssize_t)info->shape[d];
        view->strides[d] = stride;
        stride *= view->shape[d];
    }
}

/* Fills a Py_buffer from a view: only the fields the request asked for. */
static void view_export(PyObject *exporter, const cvpy_view *view, void *data, int readonly,
                        Py_buffer *buffer, int flags) {
    buffer->buf = data;
    buffer->obj = Py_NewRef(exporter);
    buffer->len = (Py_ssize_t)view->info.byte_length;
    buffer->itemsize = view->itemsize;
    buffer->readonly = readonly;
    buffer->ndim = (int)view->info.rank;
    buffer->format = (flags & PyBUF_FORMAT) ? (char *)cvpy_format(view->info.dtype) : NULL;
    buffer->shape = (flags & PyBUF_ND) == PyBUF_ND ? (Py_ssize_t *)view->shape : NULL;
    buffer->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? (Py_ssize_t *)view->strides : NULL;
    buffer->suboffsets = NULL;
    buffer->internal = NULL;
}

PyObject *cvpy_ndarray(PyObject *shape, uint32_t dtype, PyObject *exporter) {
    if (cvpy_numpy_ready() < 0) return NULL;
    PyObject *args = PyTuple_Pack(3, shape, cvpy.np_dtypes[dtype], exporter);
    if (args == NULL) return NULL;
    PyObject *array = PyObject_Call(cvpy.np_ndarray, args, NULL);
    Py_DECREF(args);
    return array;
}

static uint32_t slot_of(const cvpy_side *side, const void *data) {
    if (side->stride == 0) return 0;
    return (uint32_t)((uint64_t)((const char *)data - side->slot0) / side->stride);
}

/* ---- Frame --------------------------------------------------------------------------- */

cvpy_frame *cvpy_frame_new(cvpy_side *consumer, const void *data, const conveyor_frame_info *info,
                           uint64_t seq) {
    allocfunc alloc = CVPY_GET_SLOT(allocfunc, cvpy.frame_type, Py_tp_alloc);
    cvpy_frame *frame = (cvpy_frame *)alloc(cvpy.frame_type, 0);
    if (frame == NULL) return NULL;
    frame->consumer = (cvpy_side *)Py_NewRef((PyObject *)consumer);
    consumer->live++;
    frame->data = data;
    frame->seq = seq;
    frame->slot = slot_of(consumer, data);
    cvpy_view_fill(&frame->view, info);
    return frame;
}

static void frame_dealloc(PyObject *op) {
    cvpy_frame *frame = (cvpy_frame *)op;
    PyTypeObject *tp = Py_TYPE(op);
    cvpy_side *consumer = frame->consumer;
    consumer->done[frame->seq % consumer->slots] = 1;
    consumer->live--;
    /* Never block here: the lock's holder may be waiting for the GIL we hold. If it is
     * taken, its holder releases this frame before it gives the lock back. In a forked
     * copy of the consumer the trylock fails: the frame is the parent's, left held. */
    if (cvpy_side_trylock(consumer)) cvpy_side_unlock(consumer);
    freefunc tp_free = CVPY_GET_SLOT(freefunc, tp, Py_tp_free);
    tp_free(op);
    Py_DECREF(tp);
    Py_DECREF((PyObject *)consumer);
}

static int frame_getbuffer(PyObject *op, Py_buffer *buffer, int flags) {
    cvpy_frame *frame = (cvpy_frame *)op;
    if (flags & PyBUF_WRITABLE) {
        /* numpy asks for a writable buffer first and falls back to a read-only one on
         * every array it makes over a frame: a prebuilt message keeps the refusal cheap
         * (the exception instance is made only if someone looks at it). */
        buffer->obj = NULL;
        PyErr_SetObject(PyExc_BufferError, cvpy.msg_frame_readonly);
        return -1;
    }
    view_export(op, &frame->view, (void *)frame->data, 1, buffer, flags);
    frame->exports++;
    return 0;
}

static void frame_releasebuffer(PyObject *op, Py_buffer *buffer) {
    (void)buffer;
    ((cvpy_frame *)op)->exports--;
}

static PyObject *frame_get(PyObject *op, void *closure) {
    cvpy_frame *frame = (cvpy_frame *)op;
    switch ((int)(intptr_t)closure) {
    case 0: return PyLong_FromUnsignedLongLong(frame->consumer->seq_base + frame->seq);
    case 1: return PyLong_FromUnsignedLong(frame->slot);
    case 2: return PyLong_FromUnsignedLongLong(frame->view.info.tag);
    case 3: return PyLong_FromVoidPtr((void *)frame->data);
    case 4: return PyLong_FromUnsignedLongLong(frame->view.info.byte_length);
    default: return PyLong_FromSsize_t(frame->exports);
    }
}

static PyObject *frame_repr(PyObject *op) {
    cvpy_frame *frame = (cvpy_frame *)op;
    return PyUnicode_FromFormat("<conveyor.Frame sequence=%llu slot=%u tag=%llu nbytes=%llu on ring %U>",
                                (unsigned long long)(frame->consumer->seq_base + frame->seq),
                                (unsigned)frame->slot, (unsigned long long)frame->view.info.tag,
                                (unsigned long long)frame->view.info.byte_length,
                                frame->consumer->desc);
}

static PyGetSetDef frame_getset[] = {
    {"sequence", frame_get, NULL, "Position of the frame in the ring's stream (0 = first frame ever committed).", (void *)0},
    {"slot", frame_get, NULL, "Index of the slot holding the frame, 0...slots-1.", (void *)1},
    {"tag", frame_get, NULL, "The producer's tag (an int, 0 unless set).", (void *)2},
    {"address", frame_get, NULL, "The frame's data pointer in this process (an int).", (void *)3},
    {"nbytes", frame_get, NULL, "Bytes of payload.", (void *)4},
    {"exports", frame_get, NULL, "Buffer exports currently open (memoryviews of the frame).", (void *)5},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot frame_slots[] = {
    {Py_tp_doc, "Frame: one received frame, in place in its slot, exported read-only through\n"
                "the buffer protocol. A received array's .base. While it is alive (any array or\n"
                "memoryview over it keeps it), its slot is not reused. Made by Consumer.receive."},
    {Py_tp_dealloc, CVPY_SLOT(frame_dealloc)},
    {Py_tp_getset, frame_getset},
    {Py_tp_repr, CVPY_SLOT(frame_repr)},
    {Py_bf_getbuffer, CVPY_SLOT(frame_getbuffer)},
    {Py_bf_releasebuffer, CVPY_SLOT(frame_releasebuffer)},
    {0, NULL},
};

static PyType_Spec frame_spec = {
    .name = "conveyor.Frame",
    .basicsize = sizeof(cvpy_frame),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = frame_slots,
};

/* ---- Loan ---------------------------------------------------------------------------- */

cvpy_loan *cvpy_loan_new(cvpy_side *producer, void *data, uint64_t capacity,
                         const conveyor_frame_info *info, PyObject *shape) {
    allocfunc alloc = CVPY_GET_SLOT(allocfunc, cvpy.loan_type, Py_tp_alloc);
    cvpy_loan *loan = (cvpy_loan *)alloc(cvpy.loan_type, 0);
    if (loan == NULL) return NULL;
    loan->producer = (cvpy_side *)Py_NewRef((PyObject *)producer);
    producer->live++;
    loan->data = data;
    loan->capacity = capacity;
    loan->slot = slot_of(producer, data);
    loan->state = CVPY_LOAN_OPEN;
    loan->shape = Py_NewRef(shape);
    cvpy_view_fill(&loan->view, info);
    return loan;
}

/* The array handed out, if it is still alive: a new reference, or NULL (no error). */
static PyObject *loan_live_array(cvpy_loan *loan) {
    if (loan->array_ref == NULL) return NULL;
    PyObject *array = PyObject_CallNoArgs(loan->array_ref);
    if (array == NULL) {
        PyErr_Clear();
        return NULL;
    }
    if (array == Py_None) {
        Py_DECREF(array);
        return NULL;
    }
    return array;
}

void cvpy_loan_finish(cvpy_loan *loan, int state) {
    loan->state = state;
    if (loan->producer->open_loan == loan) loan->producer->open_loan = NULL;
    if (PyErr_Occurred()) return;  /* run no Python code over a pending exception */
    PyObject *array = loan_live_array(loan);
    if (array == NULL) return;
    PyObject *setflags = PyObject_GetAttr(array, cvpy.str_setflags);
    PyObject *result = setflags ? PyObject_Call(setflags, cvpy.empty_tuple, cvpy.kw_write_false) : NULL;
    if (result == NULL) PyErr_Clear();
    Py_XDECREF(result);
    Py_XDECREF(setflags);
    Py_DECREF(array);
}

static void loan_dealloc(PyObject *op) {
    cvpy_loan *loan = (cvpy_loan *)op;
    PyTypeObject *tp = Py_TYPE(op);
    cvpy_side *producer = loan->producer;
    int open = loan->state == CVPY_LOAN_OPEN;
    if (open && producer->open_loan == loan) producer->open_loan = NULL;
    producer->live--;
    /* In a forked copy of the producer nothing happens: the loan is the parent's. */
    if (open && !cvpy_side_foreign(producer)) {
        producer->pending_abandon = 1;  /* abandoned now, or by the lock's holder */
        if (cvpy_side_trylock(producer)) cvpy_side_unlock(producer);
    } else if (cvpy_side_trylock(producer)) {
        cvpy_side_unlock(producer);  /* the last Loan of a closed producer: destroy it */
    }
    Py_XDECREF(loan->array_ref);
    Py_XDECREF(loan->shape);
    freefunc tp_free = CVPY_GET_SLOT(freefunc, tp, Py_tp_free);
    tp_free(op);
    Py_DECREF(tp);
    Py_DECREF((PyObject *)producer);
}

static int loan_getbuffer(PyObject *op, Py_buffer *buffer, int flags) {
    cvpy_loan *loan = (cvpy_loan *)op;
    int readonly = loan->state != CVPY_LOAN_OPEN;
    if ((flags & PyBUF_WRITABLE) && readonly) {
        buffer->obj = NULL;
        PyErr_SetString(PyExc_BufferError,
                        loan->state == CVPY_LOAN_COMMITTED
                            ? "this loan was committed: its slot belongs to the consumer now"
                            : "this loan was abandoned: its slot is no longer yours");
        return -1;
    }
    view_export(op, &loan->view, loan->data, readonly, buffer, flags);
    loan->exports++;
    return 0;
}

static void loan_releasebuffer(PyObject *op, Py_buffer *buffer) {
    (void)buffer;
    ((cvpy_loan *)op)->exports--;
}

static PyObject *loan_state_error(cvpy_loan *loan, const char *what) {
    if (loan->closed_by_producer)
        return cvpy_errorf(CONVEYOR_E_CLOSED, loan->producer->desc,
                           "cannot %s: the producer was closed, which abandoned this loan", what);
    return cvpy_errorf(CONVEYOR_E_BAD_STATE, loan->producer->desc, "cannot %s: the loan was already %s",
                       what, loan->state == CVPY_LOAN_COMMITTED ? "committed" : "abandoned");
}

static PyObject *loan_array(PyObject *op, void *closure) {
    (void)closure;
    cvpy_loan *loan = (cvpy_loan *)op;
    PyObject *array = loan_live_array(loan);
    if (array != NULL) return array;
    array = cvpy_ndarray(loan->shape, loan->view.info.dtype, op);
    if (array == NULL) return NULL;
    PyObject *ref = PyWeakref_NewRef(array, NULL);
    if (ref == NULL) {
        Py_DECREF(array);
        return NULL;
    }
    PyObject *old = loan->array_ref;
    loan->array_ref = ref;
    Py_XDECREF(old);
    return array;
}

static PyObject *loan_enter(PyObject *op, PyObject *unused) {
    (void)unused;
    return loan_array(op, NULL);
}

static PyObject *loan_commit(PyObject *op, PyObject *unused) {
    (void)unused;
    cvpy_loan *loan = (cvpy_loan *)op;
    cvpy_side *producer = loan->producer;
    if (cvpy_side_foreign(producer)) return cvpy_side_foreign_error(producer, "loan's producer");
    if (loan->state != CVPY_LOAN_OPEN) return loan_state_error(loan, "commit");
    if (cvpy_side_lock(producer, CVPY_FOREVER) < 0) return NULL;
    int status = producer->handle && !producer->closed
                     ? conveyor_ring_commit(producer->handle, &loan->view.info)
                     : CONVEYOR_E_CLOSED;
    cvpy_side_unlock(producer);
    if (status != CONVEYOR_OK) return cvpy_error_in(status, producer->desc, "committing a loan");
    cvpy_loan_finish(loan, CVPY_LOAN_COMMITTED);
    Py_RETURN_NONE;
}

static PyObject *loan_abandon(PyObject *op, PyObject *unused) {
    (void)unused;
    cvpy_loan *loan = (cvpy_loan *)op;
    cvpy_side *producer = loan->producer;
    if (cvpy_side_foreign(producer)) return cvpy_side_foreign_error(producer, "loan's producer");
    if (loan->state == CVPY_LOAN_ABANDONED) Py_RETURN_NONE;
    if (loan->state != CVPY_LOAN_OPEN) return loan_state_error(loan, "abandon");
    if (cvpy_side_lock(producer, CVPY_FOREVER) < 0) return NULL;
    int status = producer->handle && !producer->closed ? conveyor_ring_abandon(producer->handle)
                                                       : CONVEYOR_OK;
    cvpy_side_unlock(producer);
    cvpy_loan_finish(loan, CVPY_LOAN_ABANDONED);
    if (status != CONVEYOR_OK) return cvpy_error_in(status, producer->desc, "abandoning a loan");
    Py_RETURN_NONE;
}

static PyObject *loan_exit(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    cvpy_loan *loan = (cvpy_loan *)op;
    /* A forked child leaving a block its parent opened: the loan is the parent's, to
     * commit or abandon there. Nothing is done here, and nothing is raised. */
    if (cvpy_side_foreign(loan->producer)) Py_RETURN_FALSE;
    if (loan->state == CVPY_LOAN_OPEN) {
        int failed = nargs > 0 && args[0] != Py_None;
        PyObject *result = failed ? loan_abandon(op, NULL) : loan_commit(op, NULL);
        if (result == NULL) return NULL;
        Py_DECREF(result);
    }
    Py_RETURN_FALSE;
}

static PyObject *loan_get(PyObject *op, void *closure) {
    cvpy_loan *loan = (cvpy_loan *)op;
    switch ((int)(intptr_t)closure) {
    case 0: return PyLong_FromUnsignedLongLong(loan->view.info.tag);
    case 1: return PyLong_FromUnsignedLong(loan->slot);
    case 2: return PyLong_FromVoidPtr(loan->data);
    case 3: return PyLong_FromUnsignedLongLong(loan->capacity);
    case 4: return PyLong_FromUnsignedLongLong(loan->view.info.byte_length);
    case 5: return Py_NewRef(loan->shape);
    case 6:
        if (cvpy_numpy_ready() < 0) return NULL;
        return Py_NewRef(cvpy.np_dtypes[loan->view.info.dtype]);
    default:
        return PyUnicode_FromString(loan->state == CVPY_LOAN_OPEN        ? "open"
                                    : loan->state == CVPY_LOAN_COMMITTED ? "committed"
                                                                         : "abandoned");
    }
}

static int loan_set_tag(PyObject *op, PyObject *value, void *closure) {
    (void)closure;
    cvpy_loan *loan = (cvpy_loan *)op;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete a loan's tag");
        return -1;
    }
    if (loan->state != CVPY_LOAN_OPEN) {
        loan_state_error(loan, "set the tag");
        return -1;
    }
    unsigned long long tag = PyLong_Check(value) ? PyLong_AsUnsignedLongLong(value) : (unsigned long long)-1;
    if (tag == (unsigned long long)-1 && (PyErr_Occurred() || !PyLong_Check(value))) {
        PyErr_Clear();
        cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, loan->producer->desc,
                    "tag must be an int in 0...2**64-1, not %R", value);
        return -1;
    }
    loan->view.info.tag = tag;
    return 0;
}

static PyObject *loan_repr(PyObject *op) {
    cvpy_loan *loan = (cvpy_loan *)op;
    return PyUnicode_FromFormat("<conveyor.Loan %s slot=%u shape=%R nbytes=%llu on ring %U>",
                                loan->state == CVPY_LOAN_OPEN        ? "open"
                                : loan->state == CVPY_LOAN_COMMITTED ? "committed"
                                                                     : "abandoned",
                                (unsigned)loan->slot, loan->shape,
                                (unsigned long long)loan->view.info.byte_length, loan->producer->desc);
}

static PyMethodDef loan_methods[] = {
    {"commit", loan_commit, METH_NOARGS,
     "commit($self)\n--\n\n"
     "Publishes the slot as the next frame (shape, dtype and tag of the loan). The array\n"
     "handed out becomes read-only and the loan refuses new writable views. Cost: a store\n"
     "and a fence; a futex wake only if the consumer sleeps. Raises BadState (already\n"
     "committed or abandoned), Closed (the producer closed, which abandoned the loan),\n"
     "WrongRole (in a forked child: the loan is its parent's)."},
    {"abandon", loan_abandon, METH_NOARGS,
     "abandon($self)\n--\n\n"
     "Gives the slot back unpublished; the array becomes read-only. Idempotent. Raises\n"
     "BadState after commit, WrongRole in a forked child (the loan is its parent's)."},
    {"__enter__", loan_enter, METH_NOARGS,
     "__enter__($self)\n--\n\nThe writable array over the slot (as .array)."},
    {"__exit__", CVPY_METH(loan_exit), METH_FASTCALL,
     "__exit__($self, type, value, traceback)\n--\n\n"
     "Commits the loan, or abandons it if the block raised. Never suppresses the exception.\n"
     "In a forked child leaving a block its parent opened, does nothing (the loan is the\n"
     "parent's)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef loan_getset[] = {
    {"array", loan_array, NULL, "The C-contiguous ndarray over the slot: writable while the loan is open, read-only after.", NULL},
    {"tag", loan_get, loan_set_tag, "The int the consumer will see as Frame.tag; settable until commit.", (void *)0},
    {"slot", loan_get, NULL, "Index of the loaned slot.", (void *)1},
    {"address", loan_get, NULL, "The slot's data pointer in this process (an int).", (void *)2},
    {"capacity", loan_get, NULL, "Bytes the slot can hold.", (void *)3},
    {"nbytes", loan_get, NULL, "Bytes of the frame being written.", (void *)4},
    {"shape", loan_get, NULL, "Shape of the frame.", (void *)5},
    {"dtype", loan_get, NULL, "numpy dtype of the frame.", (void *)6},
    {"state", loan_get, NULL, "'open', 'committed' or 'abandoned'.", (void *)7},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot loan_slots[] = {
    {Py_tp_doc, "Loan: a slot lent by Producer.loan(), exported writable through the buffer\n"
                "protocol until commit() or abandon(). `with prod.loan() as out:` commits at the\n"
                "end of the block, abandons if it raises. A loan that dies open is abandoned.\n"
                "At commit the array handed out (.array, `out`) becomes read-only, but numpy\n"
                "views derived from it inside the block (out[1:], out.T, a reshape) stay\n"
                "writable: numpy gives no way to reach them. Writing through one after commit\n"
                "changes a frame the consumer may be reading: do not keep them past the block.\n"
                "A loan inherited by a forked child is its parent's: commit/abandon raise\n"
                "WrongRole there, and its death or a `with` exit there changes nothing."},
    {Py_tp_dealloc, CVPY_SLOT(loan_dealloc)},
    {Py_tp_methods, loan_methods},
    {Py_tp_getset, loan_getset},
    {Py_tp_repr, CVPY_SLOT(loan_repr)},
    {Py_bf_getbuffer, CVPY_SLOT(loan_getbuffer)},
    {Py_bf_releasebuffer, CVPY_SLOT(loan_releasebuffer)},
    {0, NULL},
};

static PyType_Spec loan_spec = {
    .name = "conveyor.Loan",
    .basicsize = sizeof(cvpy_loan),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = loan_slots,
};

int cvpy_frame_init(PyObject *module) {
    PyObject *frame = PyType_FromModuleAndSpec(module, &frame_spec, NULL);
    if (frame == NULL) return -1;
    cvpy.frame_type = (PyTypeObject *)frame;
    if (PyModule_AddObjectRef(module, "Frame", frame) < 0) return -1;
    PyObject *loan = PyType_FromModuleAndSpec(module, &loan_spec, NULL);
    if (loan == NULL) return -1;
    cvpy.loan_type = (PyTypeObject *)loan;
    return PyModule_AddObjectRef(module, "Loan", loan);
}
