/*
 * kernels.c — the C core's numeric kernels over buffers: fill_uniform, program, sum,
 * and the thread settings. Each call is the C function itself (same bits as a C or Swift
 * caller gets), run with the GIL released from 16 KiB of data.
 */
#include "core.h"

#include <string.h>

/* Below this many bytes the GIL is kept: releasing it costs more than the work. */
#define CVPY_KERNEL_GIL_BYTES 16384

/* Gets a C-contiguous float64/float32 buffer; sets InvalidArgument naming `what`. */
static int kernel_buffer(PyObject *obj, int writable, const char *what, Py_buffer *buf,
                         uint32_t *dtype) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, buf, flags) < 0) {
        PyErr_Clear();
        const char *why = "is not a buffer (a numpy array)";
        if (PyObject_GetBuffer(obj, buf, PyBUF_STRIDES | PyBUF_FORMAT) == 0) {
            why = writable && buf->readonly ? "is read-only" : "is not C-contiguous";
            PyBuffer_Release(buf);
        } else {
            PyErr_Clear();
        }
        cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, NULL,
                    "%s must be a %sC-contiguous float64 or float32 array; this %R %s", what,
                    writable ? "writable " : "", (PyObject *)Py_TYPE(obj), why);
        return -1;
    }
    int code = cvpy_dtype_of_format(buf->format);
    if (code != CONVEYOR_DTYPE_F64 && code != CONVEYOR_DTYPE_F32) {
        PyObject *np_dtype = PyObject_GetAttrString(obj, "dtype");
        if (np_dtype == NULL) PyErr_Clear();
        if (np_dtype != NULL)
            cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, NULL,
                        "%s has dtype %S; the kernels take float64 or float32", what, np_dtype);
        else
            cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, NULL,
                        "%s has element format '%s'; the kernels take float64 ('d') or float32 "
                        "('f')", what, buf->format ? buf->format : "B");
        Py_XDECREF(np_dtype);
        PyBuffer_Release(buf);
        return -1;
    }
    *dtype = (uint32_t)code;
    return 0;
}

static int kernel_u64(PyObject *obj, const char *what, uint64_t *out) {
    unsigned long long v = PyLong_Check(obj) ? PyLong_AsUnsignedLongLong(obj) : (unsigned long long)-1;
    if (v == (unsigned long long)-1 && (PyErr_Occurred() || !PyLong_Check(obj))) {
        PyErr_Clear();
        cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, NULL, "%s must be an int in 0...2**64-1, not %R",
                    what, obj);
        return -1;
    }
    *out = v;
    return 0;
}

static PyObject *kernel_fill_uniform(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                                     PyObject *kwnames) {
    (void)module;
    static const char *const names[] = {"out", "seed", "stream", "first", NULL};
    PyObject *a[4];
    if (cvpy_parse_args(args, nargs, kwnames, names, 4, "fill_uniform", a) < 0) return NULL;
    if (a[0] == NULL || a[1] == NULL || a[2] == NULL) {
        PyErr_SetString(PyExc_TypeError, "fill_uniform() needs out, seed and stream");
        return NULL;
    }
    uint64_t seed, stream, first = 0;
    if (kernel_u64(a[1], "seed", &seed) < 0 || kernel_u64(a[2], "stream", &stream) < 0 ||
        (a[3] != NULL && kernel_u64(a[3], "first", &first) < 0))
        return NULL;
    Py_buffer out;
    uint32_t dtype;
    if (kernel_buffer(a[0], 1, "out", &out, &dtype) < 0) return NULL;
    size_t n = (size_t)out.len / (size_t)cvpy_itemsize(dtype);
    int status;
    int release = out.len >= CVPY_KERNEL_GIL_BYTES;
    PyThreadState *saved = release ? PyEval_SaveThread() : NULL;
    status = dtype == CONVEYOR_DTYPE_F64
                 ? conveyor_f64_fill_uniform(out.buf, n, seed, stream, first)
                 : conveyor_f32_fill_uniform(out.buf, n, seed, stream, first);
    if (release) PyEval_RestoreThread(saved);
    PyBuffer_Release(&out);
    if (status != CONVEYOR_OK) return cvpy_error_in(status, NULL, "fill_uniform");
    Py_RETURN_NONE;
}

static PyObject *kernel_program(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
    (void)module;
    static const char *const names[] = {"out", "x", "ops", NULL};
    PyObject *a[3];
    if (cvpy_parse_args(args, nargs, kwnames, names, 3, "program", a) < 0) return NULL;
    if (a[0] == NULL || a[1] == NULL || a[2] == NULL) {
        PyErr_SetString(PyExc_TypeError, "program() needs out, x and ops");
        return NULL;
    }
    PyObject *ops_seq = PySequence_Tuple(a[2]);
    if (ops_seq == NULL) return NULL;
    Py_ssize_t count = PyTuple_Size(ops_seq);
    if (count > CONVEYOR_PROGRAM_MAX_OPS) {
        Py_DECREF(ops_seq);
        return cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, NULL,
                           "a program has at most %d steps, not %zd", CONVEYOR_PROGRAM_MAX_OPS, count);
    }
    Py_buffer x, out, operands[CONVEYOR_PROGRAM_MAX_OPS];
    int have_operand[CONVEYOR_PROGRAM_MAX_OPS] = {0};
    conveyor_op ops[CONVEYOR_PROGRAM_MAX_OPS];
    memset(ops, 0, sizeof ops);
    uint32_t xtype, otype;
    PyObject *result = NULL;
    if (kernel_buffer(a[1], 0, "x", &x, &xtype) < 0) {
        Py_DECREF(ops_seq);
        return NULL;
    }
    if (kernel_buffer(a[0], 1, "out", &out, &otype) < 0) {
        PyBuffer_Release(&x);
        Py_DECREF(ops_seq);
        return NULL;
    }
    if (otype != xtype || out.len != x.len) {
        cvpy_error(CONVEYOR_E_INVALID_ARGUMENT, NULL,
                   "out must have the dtype and size of x");
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        int code;
        double sa = 0, sb = 0;
        PyObject *operand = Py_None;
        if (!PyArg_ParseTuple(PyTuple_GetItem(ops_seq, i), "i|ddO:program step", &code, &sa, &sb,
                              &operand))
            goto done;
        ops[i].code = code;
        ops[i].a = sa;
        ops[i].b = sb;
        if (operand != Py_None) {
            uint32_t ptype;
            if (kernel_buffer(operand, 0, "an operand", &operands[i], &ptype) < 0) goto done;
            have_operand[i] = 1;
            if (ptype != xtype || operands[i].len != x.len) {
                cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, NULL,
                            "the operand of step %zd must have the dtype and size of x", i);
                goto done;
            }
            ops[i].operand = operands[i].buf;
        }
    }
    size_t n = (size_t)x.len / (size_t)cvpy_itemsize(xtype);
    int release = x.len >= CVPY_KERNEL_GIL_BYTES;
    PyThreadState *saved = release ? PyEval_SaveThread() : NULL;
    int status = xtype == CONVEYOR_DTYPE_F64
                     ? conveyor_f64_program(out.buf, x.buf, n, ops, (size_t)count)
                     : conveyor_f32_program(out.buf, x.buf, n, ops, (size_t)count);
    if (release) PyEval_RestoreThread(saved);
    if (status != CONVEYOR_OK) {
        cvpy_error(status, NULL, NULL);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    for (Py_ssize_t i = 0; i < count; i++)
        if (have_operand[i]) PyBuffer_Release(&operands[i]);
    PyBuffer_Release(&out);
    PyBuffer_Release(&x);
    Py_DECREF(ops_seq);
    return result;
}

static PyObject *kernel_sum(PyObject *module, PyObject *arg) {
    (void)module;
    Py_buffer x;
    uint32_t dtype;
    if (kernel_buffer(arg, 0, "x", &x, &dtype) < 0) return NULL;
    size_t n = (size_t)x.len / (size_t)cvpy_itemsize(dtype);
    double result = 0;
    int release = x.len >= CVPY_KERNEL_GIL_BYTES;
    PyThreadState *saved = release ? PyEval_SaveThread() : NULL;
    int status = dtype == CONVEYOR_DTYPE_F64 ? conveyor_f64_sum(x.buf, n, &result)
                                             : conveyor_f32_sum(x.buf, n, &result);
    if (release) PyEval_RestoreThread(saved);
    PyBuffer_Release(&x);
    if (status != CONVEYOR_OK) return cvpy_error_in(status, NULL, "sum");
    return PyFloat_FromDouble(result);
}

static PyObject *kernel_set_threads(PyObject *module, PyObject *arg) {
    (void)module;
    long threads = PyLong_AsLong(arg);
    if (threads == -1 && PyErr_Occurred()) return NULL;
    if (threads < 1 || threads > CONVEYOR_MAX_THREADS)
        return cvpy_errorf(CONVEYOR_E_INVALID_ARGUMENT, NULL, "threads must be in 1...%d, not %ld",
                           CONVEYOR_MAX_THREADS, threads);
    int status = conveyor_set_threads((int)threads);
    if (status != CONVEYOR_OK) return cvpy_errorf_in(status, NULL, "set_threads(%ld)", threads);
    Py_RETURN_NONE;
}

static PyObject *kernel_get_threads(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyLong_FromLong(conveyor_get_threads());
}

static PyObject *kernel_has_openmp(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyBool_FromLong(conveyor_has_openmp());
}

static PyMethodDef kernel_methods[] = {
    {"fill_uniform", CVPY_METH(kernel_fill_uniform), METH_FASTCALL | METH_KEYWORDS,
     "fill_uniform($module, out, seed, stream, first=0)\n--\n\n"
     "conveyor_f64/f32_fill_uniform over a writable C-contiguous buffer."},
    {"program", CVPY_METH(kernel_program), METH_FASTCALL | METH_KEYWORDS,
     "program($module, out, x, ops)\n--\n\n"
     "conveyor_f64/f32_program; ops: tuples (code, a, b, operand buffer or None)."},
    {"sum", kernel_sum, METH_O, "sum($module, x)\n--\n\nReturns float. conveyor_f64/f32_sum over a C-contiguous buffer."},
    {"set_threads", kernel_set_threads, METH_O,
     "set_threads($module, n)\n--\n\nconveyor_set_threads: threads every kernel uses, process-wide."},
    {"get_threads", kernel_get_threads, METH_NOARGS,
     "get_threads($module)\n--\n\nReturns int. conveyor_get_threads: threads kernels called from this thread use."},
    {"has_openmp", kernel_has_openmp, METH_NOARGS,
     "has_openmp($module)\n--\n\nReturns bool. Whether the C core was built with OpenMP."},
    {NULL, NULL, 0, NULL},
};

int cvpy_kernels_init(PyObject *module) { return PyModule_AddFunctions(module, kernel_methods); }
