/*
 * stage.c — serve_stage: the program side of a pipeline stage (conveyor.h section 10) for
 * Python, a thin binding of conveyor_stage_serve. The C core parses and checks the
 * CONVEYOR_STAGE contract, attaches the pools and channels, checks every job word and
 * descriptor, describes the output and sends it on; Python only computes.
 *
 * The GIL. conveyor_stage_serve runs with the GIL released (its waits sleep in futexes);
 * the per-item trampoline takes it back for the Python callback and releases it again, on
 * the same thread (PyEval_RestoreThread / PyEval_SaveThread of one saved thread state).
 *
 * Views. Per item the callback gets a read-only memoryview of the input slot and a
 * writable one of the output slot, each made from a StageSlot: a small exporter of the
 * slot's bytes that counts its exports. numpy's frombuffer(view) keeps a memoryview of its
 * own on the same managed buffer, which keeps the StageSlot's export open, so after the
 * callback returned and its view was released, a StageSlot still exported means that an
 * array (or a view of one) outlived the call: that fails the item, since the slots are
 * reused and unmapped at the end. (Releasing a memoryview over raw memory would not tell:
 * numpy's own memoryview does not count as an export of it.)
 */
#include "core.h"

#include <stdio.h>
#include <string.h>

typedef struct serve_context {
    PyObject *callback;          /* borrowed: serve_stage's argument */
    PyThreadState *thread;       /* saved while the C core runs */
    PyObject *name;              /* the stage's name (str), made at the first item */
    PyObject *in_layout;         /* (dtype code, shape tuple) of the last input, or NULL */
    conveyor_frame_info in_info; /* what in_layout describes */
    PyObject *out_layout;
    conveyor_frame_info out_info;
    PyObject *error;             /* the first exception the binding itself met, or NULL */
} serve_context;

static int same_layout(const conveyor_frame_info *a, const conveyor_frame_info *b) {
    if (a->dtype != b->dtype || a->rank != b->rank) return 0;
    for (uint32_t d = 0; d < a->rank; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

/* (dtype code, shape tuple) of `info`, cached in *layout while the layout stays the same.
 * A borrowed reference, or NULL with an exception set. */
static PyObject *layout_of(PyObject **layout, conveyor_frame_info *cached,
                           const conveyor_frame_info *info) {
    if (*layout != NULL && same_layout(cached, info)) return *layout;
    PyObject *shape = PyTuple_New(info->rank);
    if (shape == NULL) return NULL;
    for (uint32_t d = 0; d < info->rank; d++) {
        PyObject *extent = PyLong_FromUnsignedLongLong(info->shape[d]);
        if (extent == NULL) {
            Py_DECREF(shape);
            return NULL;
        }
        PyTuple_SetItem(shape, d, extent);  /* steals */
    }
    PyObject *pair = Py_BuildValue("(IN)", (unsigned)info->dtype, shape);
    if (pair == NULL) return NULL;
    Py_XDECREF(*layout);
    *layout = pair;
    *cached = *info;
    return pair;
}

/* Copies str(obj) (UTF-8, cut to fit) into message. */
static void copy_text(PyObject *text, char *message, size_t size) {
    Py_ssize_t length = 0;
    const char *utf8 = text != NULL ? PyUnicode_AsUTF8AndSize(text, &length) : NULL;
    if (utf8 == NULL) {
        PyErr_Clear();
        snprintf(message, size, "the stage's function failed (its message cannot be shown)");
        return;
    }
    snprintf(message, size, "%.*s", (int)(length < (Py_ssize_t)size ? length : (Py_ssize_t)size - 1),
             utf8);
}

/* The pending exception as "Type: message" in `message`; the exception is kept in
 * ctx->error (the first one) and cleared. */
static void take_exception(serve_context *ctx, char *message, size_t size) {
    PyObject *type, *value, *trace;
    PyErr_Fetch(&type, &value, &trace);
    PyErr_NormalizeException(&type, &value, &trace);
    PyObject *type_name = type != NULL ? PyType_GetName((PyTypeObject *)type) : NULL;
    PyObject *text = value != NULL ? PyObject_Str(value) : NULL;
    PyObject *line = NULL;
    if (type_name != NULL && text != NULL)
        line = PyUnicode_GetLength(text) > 0 ? PyUnicode_FromFormat("%U: %U", type_name, text)
                                             : Py_NewRef(type_name);
    PyErr_Clear();
    copy_text(line, message, size);
    Py_XDECREF(line);
    Py_XDECREF(text);
    Py_XDECREF(type_name);
    if (ctx->error == NULL && value != NULL) {
        if (trace != NULL) PyException_SetTraceback(value, trace);
        ctx->error = Py_NewRef(value);
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(trace);
}

/* ---- StageSlot: the exporter behind the views of one item ----------------------------- */

typedef struct stage_slot {
    PyObject_HEAD
    void *data;            /* NULL once the item is over: no new export */
    Py_ssize_t length;
    int readonly;
    Py_ssize_t exports;
} stage_slot;

static PyTypeObject *stage_slot_type;

static int stage_slot_getbuffer(PyObject *op, Py_buffer *view, int flags) {
    stage_slot *slot = (stage_slot *)op;
    if (slot->data == NULL) {
        view->obj = NULL;
        PyErr_SetString(PyExc_BufferError,
                        "this stage item is over: its slot belongs to the pipeline again");
        return -1;
    }
    if (PyBuffer_FillInfo(view, op, slot->data, slot->length, slot->readonly, flags) < 0)
        return -1;  /* a writable request on the input: BufferError */
    slot->exports++;
    return 0;
}

static void stage_slot_releasebuffer(PyObject *op, Py_buffer *view) {
    (void)view;
    ((stage_slot *)op)->exports--;
}

static void stage_slot_dealloc(PyObject *op) {
    PyTypeObject *tp = Py_TYPE(op);
    freefunc tp_free = CVPY_GET_SLOT(freefunc, tp, Py_tp_free);
    tp_free(op);
    Py_DECREF(tp);
}

static PyType_Slot stage_slot_slots[] = {
    {Py_tp_doc, "StageSlot: the exporter behind the memoryviews serve_stage's callback gets\n"
                "(one item's input or output slot); it counts its exports, and refuses new ones\n"
                "once the item is over."},
    {Py_tp_dealloc, CVPY_SLOT(stage_slot_dealloc)},
    {Py_bf_getbuffer, CVPY_SLOT(stage_slot_getbuffer)},
    {Py_bf_releasebuffer, CVPY_SLOT(stage_slot_releasebuffer)},
    {0, NULL},
};

static PyType_Spec stage_slot_spec = {
    .name = "conveyor._core.StageSlot",
    .basicsize = sizeof(stage_slot),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = stage_slot_slots,
};

/* A memoryview over `length` bytes at `data` through a new StageSlot (*slot, a new
 * reference), or NULL with an exception set. */
static PyObject *stage_view(void *data, uint64_t length, int readonly, stage_slot **slot) {
    allocfunc alloc = CVPY_GET_SLOT(allocfunc, stage_slot_type, Py_tp_alloc);
    stage_slot *s = (stage_slot *)alloc(stage_slot_type, 0);
    *slot = s;
    if (s == NULL) return NULL;
    s->data = data;
    s->length = (Py_ssize_t)length;
    s->readonly = readonly;
    return PyMemoryView_FromObject((PyObject *)s);
}

/* Ends one item's view: releases the memoryview the callback was given and closes its
 * StageSlot to new exports. 0, or -1 (with `message` filled) when an export of the slot is
 * still alive: an array or view the callback kept. */
static int end_view(serve_context *ctx, PyObject *view, stage_slot *slot, const char *what,
                    const conveyor_stage_item *item, char *message, size_t size) {
    if (view != NULL) {
        PyObject *result = PyObject_CallMethod(view, "release", NULL);
        if (result == NULL) {  /* an export of the view itself (not numpy's way): kept */
            if (PyErr_ExceptionMatches(PyExc_BufferError)) PyErr_Clear();
            else take_exception(ctx, message, size);
        }
        Py_XDECREF(result);
    }
    if (slot == NULL) return 0;
    slot->data = NULL;
    if (slot->exports == 0) return 0;
    snprintf(message, size,
             "StageRuleError: stage '%s' kept a reference to its %s array (or a view of it) "
             "after item %llu: its slot is reused for later items, so copy what you keep "
             "(np.array(x))", item->name, what, (unsigned long long)item->item);
    return -1;
}

/* One item, with the GIL held. */
static int serve_item(serve_context *ctx, const conveyor_stage_item *item, char *message,
                      size_t size) {
    if (ctx->name == NULL && (ctx->name = PyUnicode_FromString(item->name)) == NULL) {
        take_exception(ctx, message, size);
        return 1;
    }
    stage_slot *in_slot = NULL, *out_slot = NULL;
    PyObject *in_view = NULL, *out_view = NULL, *in_layout = Py_None, *out_layout = NULL;
    int ready = 1, failed = 0;
    if (item->input != NULL) {
        /* In place, the input is the output's slot: read-only here all the same. */
        in_view = stage_view((void *)item->input, item->input_info->byte_length, 1, &in_slot);
        in_layout = in_view ? layout_of(&ctx->in_layout, &ctx->in_info, item->input_info) : NULL;
        ready = in_layout != NULL;
    }
    if (ready)
        out_view = stage_view(item->output, item->output_info->byte_length, 0, &out_slot);
    if (out_view != NULL)
        out_layout = layout_of(&ctx->out_layout, &ctx->out_info, item->output_info);
    PyObject *result = NULL;
    if (out_layout != NULL)
        result = PyObject_CallFunction(ctx->callback, "OOKIOOO", in_view ? in_view : Py_None,
                                       out_view, (unsigned long long)item->item,
                                       (unsigned)item->replica, in_layout, out_layout, ctx->name);
    if (result == NULL) {
        take_exception(ctx, message, size);
        failed = 1;
    } else if (result != Py_None) {
        /* The Python side's own report of a failed item: its message. */
        PyObject *text = PyObject_Str(result);
        copy_text(text, message, size);
        Py_XDECREF(text);
        failed = 1;
    }
    Py_XDECREF(result);
    /* Ended whatever happened: a kept view of a failed item is reported only if nothing
     * else was. */
    char kept_in[CONVEYOR_STAGE_MESSAGE_MAX], kept_out[CONVEYOR_STAGE_MESSAGE_MAX];
    int in_kept = end_view(ctx, in_view, in_slot, "input", item, kept_in, sizeof kept_in) < 0;
    int out_kept = end_view(ctx, out_view, out_slot, "output", item, kept_out, sizeof kept_out) < 0;
    if (in_kept || out_kept) {
        if (!failed) snprintf(message, size, "%s", in_kept ? kept_in : kept_out);
        failed = 1;
    }
    Py_XDECREF(in_view);
    Py_XDECREF(out_view);
    Py_XDECREF((PyObject *)in_slot);
    Py_XDECREF((PyObject *)out_slot);
    return failed;
}

static int serve_trampoline(void *context, const conveyor_stage_item *item, char *message,
                            size_t size) {
    serve_context *ctx = context;
    PyEval_RestoreThread(ctx->thread);
    int failed = serve_item(ctx, item, message, size);
    ctx->thread = PyEval_SaveThread();
    return failed;
}

/* One side of what the program accepts: None (anything), or (dtype code or None, shape or
 * None) with extents >= 0 (0: any extent in that place). */
static int parse_side(PyObject *obj, const char *what, conveyor_stage_side *side) {
    memset(side, 0, sizeof *side);
    side->any_dtype = 1;
    if (obj == NULL || obj == Py_None) return 0;
    if (!PyTuple_Check(obj) || PyTuple_Size(obj) != 2) {
        cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, NULL,
                    "%s must be None or (dtype code or None, shape or None), not %R", what, obj);
        return -1;
    }
    PyObject *dtype = PyTuple_GetItem(obj, 0), *shape = PyTuple_GetItem(obj, 1);
    if (dtype != Py_None) {
        uint64_t code;
        if (cvpy_arg_u64(dtype, "a dtype code", 0, CONVEYOR_DTYPE_F64, NULL, &code) < 0) return -1;
        side->dtype = (uint32_t)code;
        side->any_dtype = 0;
    }
    if (shape == Py_None) return 0;
    if (!PyTuple_Check(shape) || PyTuple_Size(shape) < 1 ||
        PyTuple_Size(shape) > CONVEYOR_FRAME_MAX_RANK) {
        cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, NULL,
                    "%s: a shape is a tuple of 1 to %d extents (0: any), not %R", what,
                    CONVEYOR_FRAME_MAX_RANK, shape);
        return -1;
    }
    side->rank = (uint32_t)PyTuple_Size(shape);
    for (uint32_t d = 0; d < side->rank; d++) {
        uint64_t extent;
        if (cvpy_arg_u64(PyTuple_GetItem(shape, d), "an extent", 0, UINT64_MAX, NULL, &extent) < 0)
            return -1;
        side->shape[d] = extent;
    }
    return 0;
}

static PyObject *stage_serve(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames) {
    (void)module;
    static const char *const names[] = {"callback", "input", "output", NULL};
    PyObject *a[3];
    if (cvpy_parse_args(args, nargs, kwnames, names, 3, "serve_stage", a) < 0) return NULL;
    if (a[0] == NULL || !PyCallable_Check(a[0])) {
        PyErr_SetString(PyExc_TypeError, "serve_stage() needs a callable callback");
        return NULL;
    }
    conveyor_stage_contract contract;
    memset(&contract, 0, sizeof contract);
    if (parse_side(a[1], "input", &contract.input) < 0 ||
        parse_side(a[2], "output", &contract.output) < 0)
        return NULL;
    serve_context ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.callback = a[0];
    ctx.thread = PyEval_SaveThread();
    int status = conveyor_stage_serve(&contract, serve_trampoline, &ctx);
    PyEval_RestoreThread(ctx.thread);
    Py_XDECREF(ctx.name);
    Py_XDECREF(ctx.in_layout);
    Py_XDECREF(ctx.out_layout);
    PyObject *error = ctx.error != NULL ? ctx.error : Py_None;
    PyObject *result = Py_BuildValue("(iO)", status, error);
    Py_XDECREF(ctx.error);
    return result;
}

static PyMethodDef stage_methods[] = {
    {"serve_stage", CVPY_METH(stage_serve), METH_FASTCALL | METH_KEYWORDS,
     "serve_stage($module, callback, input=None, output=None)\n--\n\n"
     "Returns (status, exception or None). Serves the pipeline stage that the CONVEYOR_STAGE\n"
     "contract describes until end of stream (conveyor_stage_serve), with the GIL released\n"
     "while it waits. Per item: callback(input_view, output_view, item, replica,\n"
     "input_layout, output_layout, name), the views memoryviews of the input slot (read-only;\n"
     "None for a source) and of the output slot (writable), the layouts (dtype code, shape).\n"
     "It returns None on success or a str saying why the item failed; an exception fails\n"
     "the item with 'Type: message' (kept, returned as the second element). The views are\n"
     "released after the call: a buffer still exported from one fails the item. input and\n"
     "output: None (anything) or (dtype code or None, shape tuple or None; an extent 0\n"
     "accepts any), checked by the C core against the contract. status is a conveyor status\n"
     "(0: end of stream); the one-line reason of any other was written to the contract's\n"
     "report fd (or stderr). Cost: per item two memoryviews, one call, two releases (~2 us).\n"
     "Raises InvalidArgument (a bad input/output), TypeError (callback not callable)."},
    {NULL, NULL, 0, NULL},
};

int cvpy_stage_init(PyObject *module) {
    PyObject *slot_type = PyType_FromModuleAndSpec(module, &stage_slot_spec, NULL);
    if (slot_type == NULL) return -1;
    stage_slot_type = (PyTypeObject *)slot_type;
    if (PyModule_AddFunctions(module, stage_methods) < 0) return -1;
    if (PyModule_AddIntConstant(module, "STAGE_PROTOCOL", CONVEYOR_STAGE_PROTOCOL) < 0) return -1;
    return PyModule_AddIntConstant(module, "STAGE_MESSAGE_MAX", CONVEYOR_STAGE_MESSAGE_MAX);
}
