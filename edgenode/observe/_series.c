/* The request metrics' per-request work in C (observe/metrics.py): as Python,
 * ``NodeMetrics.observe`` cost ~5.1k instructions per request and ``observe_parts`` ~2.9k
 * (a label's ``upper()``, a clock read, four in-place updates of a series' lists), plus
 * ``Signals.request_end``'s frame and loop around it on every request.
 *
 *   BOUNDS: the duration histograms' upper bounds (seconds; a last bucket is +Inf).
 *
 *   Series() -> series
 *
 * One label's figures: requests per status class (``classes``: other, 1xx .. 5xx),
 * body bytes sent (``bytes``), the duration histogram's per-bucket counts (``counts``,
 * le: a value <= its bound, the last +Inf) and its ``sum``.  Read as the Python values
 * the metrics always exposed (lists of ints, an int, a float).  An origin's latency
 * histogram is a series whose classes and bytes stay 0.
 *
 *   Recorder(origin_requests) -> recorder
 *
 * The series of one process: ``series`` (label -> Series), ``origin`` (origin name ->
 * Series), and the tally ``origin_requests`` (a ``collections.Counter``) it was given.
 *   recorder.observe_parts(label, status, sent, elapsed): one request from plain
 *   values (the front end's fast path has no exchange).
 *   recorder.observe(exchange, response): one finished request: label from
 *   ``exchange.x_cache`` (upper-cased, "NONE" when empty), status ``exchange.status or
 *   response.status`` (0 without a response), ``exchange.response_bytes``, the seconds
 *   since ``exchange.start`` (a ``time.perf_counter`` reading); with ``origin_time`` not
 *   None also the origin's tally and latency (``exchange.origin`` or "default").
 * Every input is read before anything is counted: a bad value raises and counts nothing.
 *
 *   RequestEnd(hooks, log) -> request_end
 *
 * ``request_end(exchange, response)`` calls each of the list ``hooks`` (read at each
 * call: hooks appended later run too) with both; a hook raising an ``Exception`` is
 * logged with ``log.exception("on_request_end hook failed", exc_info=error)`` and the
 * rest still run.  With the metrics' ``observe`` the only hook a request's completion
 * runs no Python frame.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <time.h>

#define N_BOUNDS 15
#define N_BUCKETS (N_BOUNDS + 1)
#define N_CLASSES 6

static const double BOUNDS[N_BOUNDS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0};

/* interned attribute names and constants, made at import */
static PyObject *s_x_cache, *s_status, *s_response_bytes, *s_start, *s_origin_time, *s_origin,
    *s_upper, *s_exception, *s_exc_info, *s_none_label, *s_default, *s_hook_failed, *one;

/* -- Series ----------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    long long classes[N_CLASSES];
    long long bytes;
    long long counts[N_BUCKETS];
    double sum;
} Series;

static PyTypeObject SeriesType;

/* bisect_left(BOUNDS, value): the first bucket whose bound is >= value (NaN: the first) */
static int bucket_of(double value) {
    int i = 0;
    while (i < N_BOUNDS && BOUNDS[i] < value)
        i++;
    return i;
}

/* a status's class index: code // 100 for 100..599, else 0 ("other") */
static int class_of(long status) {
    return status >= 100 && status < 600 ? (int)(status / 100) : 0;
}

static void series_count(Series *s, int klass, long long sent, double elapsed) {
    s->classes[klass]++;
    s->bytes += sent;
    s->counts[bucket_of(elapsed)]++;
    s->sum += elapsed;
}

static PyObject *int_list(const long long *values, int n) {
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLongLong(values[i]);
        if (v == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, v);
    }
    return out;
}

static PyObject *Series_classes(Series *self, void *closure) {
    return int_list(self->classes, N_CLASSES);
}

static PyObject *Series_counts(Series *self, void *closure) {
    return int_list(self->counts, N_BUCKETS);
}

static PyObject *Series_bytes(Series *self, void *closure) {
    return PyLong_FromLongLong(self->bytes);
}

static PyObject *Series_sum(Series *self, void *closure) {
    return PyFloat_FromDouble(self->sum);
}

static PyGetSetDef Series_getset[] = {
    {"classes", (getter)Series_classes, NULL, "requests per status class (other, 1xx .. 5xx)", NULL},
    {"bytes", (getter)Series_bytes, NULL, "body bytes sent", NULL},
    {"counts", (getter)Series_counts, NULL, "requests per duration bucket (the last +Inf)", NULL},
    {"sum", (getter)Series_sum, NULL, "the durations' sum, seconds", NULL},
    {NULL},
};

static PyObject *Series_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    if (!_PyArg_NoPositional("Series", args) || !_PyArg_NoKeywords("Series", kwds))
        return NULL;
    return type->tp_alloc(type, 0);  /* zeroed */
}

static PyTypeObject SeriesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.observe._series.Series",
    .tp_basicsize = sizeof(Series),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One label's requests per status class, bytes and duration histogram.",
    .tp_getset = Series_getset,
    .tp_new = Series_new,
};

/* the series of ``key`` in ``table``, made on first use (a borrowed reference) */
static Series *series_in(PyObject *table, PyObject *key) {
    PyObject *found = PyDict_GetItemWithError(table, key);
    if (found != NULL)
        return (Series *)found;
    if (PyErr_Occurred())
        return NULL;
    PyObject *made = PyType_GenericAlloc(&SeriesType, 0);
    if (made == NULL)
        return NULL;
    int rc = PyDict_SetItem(table, key, made);
    Py_DECREF(made);  /* the table holds it */
    return rc < 0 ? NULL : (Series *)made;
}

/* -- Recorder --------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *series;          /* label -> Series */
    PyObject *by_x_cache;      /* exchange.x_cache as set -> its label's Series */
    PyObject *origin;          /* origin name -> Series */
    PyObject *origin_requests; /* origin name -> requests (a Counter) */
} Recorder;

static int Recorder_init(Recorder *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"origin_requests", NULL};
    PyObject *tally;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!:Recorder", kwlist, &PyDict_Type, &tally))
        return -1;
    PyObject *series = PyDict_New(), *by_x_cache = PyDict_New(), *origin = PyDict_New();
    if (series == NULL || by_x_cache == NULL || origin == NULL) {
        Py_XDECREF(series);
        Py_XDECREF(by_x_cache);
        Py_XDECREF(origin);
        return -1;
    }
    Py_INCREF(tally);
    Py_XSETREF(self->series, series);
    Py_XSETREF(self->by_x_cache, by_x_cache);
    Py_XSETREF(self->origin, origin);
    Py_XSETREF(self->origin_requests, tally);
    return 0;
}

static int Recorder_traverse(Recorder *self, visitproc visit, void *arg) {
    Py_VISIT(self->series);
    Py_VISIT(self->by_x_cache);
    Py_VISIT(self->origin);
    Py_VISIT(self->origin_requests);
    return 0;
}

static int Recorder_clear(Recorder *self) {
    Py_CLEAR(self->series);
    Py_CLEAR(self->by_x_cache);
    Py_CLEAR(self->origin);
    Py_CLEAR(self->origin_requests);
    return 0;
}

static void Recorder_dealloc(Recorder *self) {
    PyObject_GC_UnTrack(self);
    Recorder_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int ready(Recorder *self) {
    if (self->series != NULL)
        return 1;
    PyErr_SetString(PyExc_RuntimeError, "Recorder not initialised");
    return 0;
}

/* time.perf_counter() as CPython computes it on Linux (CLOCK_MONOTONIC, ns to seconds) */
static double perf_counter(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    if (ns % 1000000000LL == 0)
        return (double)(ns / 1000000000LL);
    return (double)ns / 1e9;
}

/* a status's class index from a Python value: non-ints and out-of-range ints are "other" */
static int class_of_object(PyObject *status) {
    if (!PyLong_Check(status))
        return 0;
    int overflow;
    long code = PyLong_AsLongAndOverflow(status, &overflow);
    return overflow ? 0 : class_of(code);
}

static PyObject *Recorder_observe_parts(Recorder *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!_PyArg_CheckPositional("observe_parts", nargs, 4, 4) || !ready(self))
        return NULL;
    long long sent = PyLong_AsLongLong(args[2]);
    if (sent == -1 && PyErr_Occurred())
        return NULL;
    double elapsed = PyFloat_AsDouble(args[3]);
    if (elapsed == -1.0 && PyErr_Occurred())
        return NULL;
    Series *s = series_in(self->series, args[0]);
    if (s == NULL)
        return NULL;
    series_count(s, class_of_object(args[1]), sent, elapsed);
    Py_RETURN_NONE;
}

/* the series of an exchange's ``x_cache``: its upper-cased label's ("NONE" when empty),
 * remembered by the value as set (labels are few: one lookup per request, no upper()) */
static Series *series_of_x_cache(Recorder *self, PyObject *x_cache) {
    PyObject *found = PyDict_GetItemWithError(self->by_x_cache, x_cache);
    if (found != NULL)
        return (Series *)found;
    if (PyErr_Occurred())
        return NULL;
    int truth = PyObject_IsTrue(x_cache);
    if (truth < 0)
        return NULL;
    PyObject *label = truth ? PyObject_CallMethodNoArgs(x_cache, s_upper) : Py_NewRef(s_none_label);
    if (label == NULL)
        return NULL;
    Series *s = series_in(self->series, label);
    Py_DECREF(label);
    if (s == NULL || PyDict_SetItem(self->by_x_cache, x_cache, (PyObject *)s) < 0)
        return NULL;
    return s;
}

/* ``exchange.status or (response.status if response else 0)`` (a new reference) */
static PyObject *status_of(PyObject *exchange, PyObject *response) {
    PyObject *status = PyObject_GetAttr(exchange, s_status);
    if (status == NULL)
        return NULL;
    int truth = PyObject_IsTrue(status);
    if (truth != 0) {
        if (truth < 0)
            Py_CLEAR(status);
        return status;
    }
    Py_DECREF(status);
    truth = PyObject_IsTrue(response);
    if (truth < 0)
        return NULL;
    return truth ? PyObject_GetAttr(response, s_status) : PyLong_FromLong(0);
}

/* ``exchange.origin or "default"`` (a new reference) */
static PyObject *origin_of(PyObject *exchange) {
    PyObject *origin = PyObject_GetAttr(exchange, s_origin);
    if (origin == NULL)
        return NULL;
    int truth = PyObject_IsTrue(origin);
    if (truth > 0)
        return origin;
    Py_DECREF(origin);
    return truth < 0 ? NULL : Py_NewRef(s_default);
}

/* ``origin_requests[origin] += 1`` and the origin's latency histogram */
static int count_origin(Recorder *self, PyObject *origin, double origin_time) {
    Series *hist = series_in(self->origin, origin);
    if (hist == NULL)
        return -1;
    PyObject *n = PyDict_GetItemWithError(self->origin_requests, origin);
    if (n == NULL && PyErr_Occurred())
        return -1;
    PyObject *more = n == NULL ? Py_NewRef(one) : PyNumber_Add(n, one);
    if (more == NULL)
        return -1;
    int rc = PyObject_SetItem(self->origin_requests, origin, more);
    Py_DECREF(more);
    if (rc == 0) {
        hist->counts[bucket_of(origin_time)]++;
        hist->sum += origin_time;
    }
    return rc;
}

/* the exchange's origin_time: -1 with *has 0 when None */
static int origin_time_of(PyObject *exchange, int *has, double *value) {
    PyObject *t = PyObject_GetAttr(exchange, s_origin_time);
    if (t == NULL)
        return -1;
    *has = t != Py_None;
    *value = *has ? PyFloat_AsDouble(t) : 0.0;
    Py_DECREF(t);
    return *has && *value == -1.0 && PyErr_Occurred() ? -1 : 0;
}

/* a float attribute of ``obj`` */
static int float_attr(PyObject *obj, PyObject *name, double *value) {
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return -1;
    *value = PyFloat_AsDouble(v);
    Py_DECREF(v);
    return *value == -1.0 && PyErr_Occurred() ? -1 : 0;
}

/* an int attribute of ``obj`` */
static int int_attr(PyObject *obj, PyObject *name, long long *value) {
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return -1;
    *value = PyLong_AsLongLong(v);
    Py_DECREF(v);
    return *value == -1 && PyErr_Occurred() ? -1 : 0;
}

static PyObject *Recorder_observe(Recorder *self, PyObject *const *args, Py_ssize_t nargs) {
    if (!_PyArg_CheckPositional("observe", nargs, 2, 2) || !ready(self))
        return NULL;
    PyObject *exchange = args[0];
    double start, origin_time;
    long long sent;
    int has_origin;
    if (float_attr(exchange, s_start, &start) < 0 || int_attr(exchange, s_response_bytes, &sent) < 0
        || origin_time_of(exchange, &has_origin, &origin_time) < 0)
        return NULL;
    double elapsed = perf_counter() - start;
    PyObject *status = status_of(exchange, args[1]);
    if (status == NULL)
        return NULL;
    int klass = class_of_object(status);
    Py_DECREF(status);
    PyObject *origin = has_origin ? origin_of(exchange) : NULL;
    if (has_origin && origin == NULL)
        return NULL;
    PyObject *x_cache = PyObject_GetAttr(exchange, s_x_cache);
    Series *s = x_cache == NULL ? NULL : series_of_x_cache(self, x_cache);
    Py_XDECREF(x_cache);
    if (s != NULL)
        series_count(s, klass, sent, elapsed);
    int rc = s == NULL || (origin != NULL && count_origin(self, origin, origin_time) < 0) ? -1 : 0;
    Py_XDECREF(origin);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef Recorder_methods[] = {
    {"observe", (PyCFunction)(void (*)(void))Recorder_observe, METH_FASTCALL,
     "observe(exchange, response): record one finished request"},
    {"observe_parts", (PyCFunction)(void (*)(void))Recorder_observe_parts, METH_FASTCALL,
     "observe_parts(label, status, sent, elapsed): record one request from plain values"},
    {NULL},
};

static PyMemberDef Recorder_members[] = {
    {"series", T_OBJECT, offsetof(Recorder, series), READONLY, "label -> Series"},
    {"origin", T_OBJECT, offsetof(Recorder, origin), READONLY, "origin name -> Series"},
    {NULL},
};

static PyTypeObject RecorderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.observe._series.Recorder",
    .tp_basicsize = sizeof(Recorder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A process's request series by cache label and origin latencies.",
    .tp_traverse = (traverseproc)Recorder_traverse,
    .tp_clear = (inquiry)Recorder_clear,
    .tp_dealloc = (destructor)Recorder_dealloc,
    .tp_methods = Recorder_methods,
    .tp_members = Recorder_members,
    .tp_init = (initproc)Recorder_init,
    .tp_new = PyType_GenericNew,
};

/* -- RequestEnd ------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *hooks;  /* a list, read at each call */
    PyObject *log;    /* a logging.Logger */
    vectorcallfunc vectorcall;
} RequestEnd;

static int RequestEnd_init(RequestEnd *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"hooks", "log", NULL};
    PyObject *hooks, *log;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O:RequestEnd", kwlist, &PyList_Type, &hooks, &log))
        return -1;
    Py_XSETREF(self->hooks, Py_NewRef(hooks));
    Py_XSETREF(self->log, Py_NewRef(log));
    return 0;
}

/* log a hook's Exception (the error indicator, cleared) as the Python loop's
 * ``log.exception`` did; 0, or -1 when logging itself raised */
static int log_failure(RequestEnd *self) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL)
        PyException_SetTraceback(value, tb);
    int rc = -1;
    PyObject *method = PyObject_GetAttr(self->log, s_exception);
    PyObject *kwargs = method == NULL ? NULL : PyDict_New();
    if (kwargs != NULL && PyDict_SetItem(kwargs, s_exc_info, value) == 0) {
        PyObject *margs = PyTuple_Pack(1, s_hook_failed);
        PyObject *r = margs == NULL ? NULL : PyObject_Call(method, margs, kwargs);
        Py_XDECREF(margs);
        rc = r == NULL ? -1 : 0;
        Py_XDECREF(r);
    }
    Py_XDECREF(kwargs);
    Py_XDECREF(method);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return rc;
}

static PyObject *RequestEnd_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                                       PyObject *kwnames) {
    RequestEnd *self = (RequestEnd *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames)) {
        PyErr_SetString(PyExc_TypeError, "request_end takes no keyword arguments");
        return NULL;
    }
    if (!_PyArg_CheckPositional("request_end", nargs, 2, 2))
        return NULL;
    if (self->hooks == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "RequestEnd not initialised");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(self->hooks); i++) {
        PyObject *hook = Py_NewRef(PyList_GET_ITEM(self->hooks, i));
        PyObject *r = PyObject_Vectorcall(hook, args, 2, NULL);
        Py_DECREF(hook);
        if (r != NULL) {
            Py_DECREF(r);
            continue;
        }
        if (!PyErr_ExceptionMatches(PyExc_Exception) || log_failure(self) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *RequestEnd_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    RequestEnd *self = (RequestEnd *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->vectorcall = RequestEnd_vectorcall;
    return (PyObject *)self;
}

static int RequestEnd_traverse(RequestEnd *self, visitproc visit, void *arg) {
    Py_VISIT(self->hooks);
    Py_VISIT(self->log);
    return 0;
}

static int RequestEnd_clear(RequestEnd *self) {
    Py_CLEAR(self->hooks);
    Py_CLEAR(self->log);
    return 0;
}

static void RequestEnd_dealloc(RequestEnd *self) {
    PyObject_GC_UnTrack(self);
    RequestEnd_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject RequestEndType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.observe._series.RequestEnd",
    .tp_basicsize = sizeof(RequestEnd),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Calls a list's hooks with a finished request, logging the ones that raise.",
    .tp_vectorcall_offset = offsetof(RequestEnd, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_traverse = (traverseproc)RequestEnd_traverse,
    .tp_clear = (inquiry)RequestEnd_clear,
    .tp_dealloc = (destructor)RequestEnd_dealloc,
    .tp_init = (initproc)RequestEnd_init,
    .tp_new = RequestEnd_new,
};

/* -- module ----------------------------------------------------------------------------- */

static int intern_all(void) {
    struct { PyObject **slot; const char *text; } names[] = {
        {&s_x_cache, "x_cache"}, {&s_status, "status"}, {&s_response_bytes, "response_bytes"},
        {&s_start, "start"}, {&s_origin_time, "origin_time"}, {&s_origin, "origin"},
        {&s_upper, "upper"}, {&s_exception, "exception"}, {&s_exc_info, "exc_info"},
        {&s_none_label, "NONE"}, {&s_default, "default"},
        {&s_hook_failed, "on_request_end hook failed"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((*names[i].slot = PyUnicode_InternFromString(names[i].text)) == NULL)
            return -1;
    one = PyLong_FromLong(1);
    return one == NULL ? -1 : 0;
}

static PyObject *bounds_tuple(void) {
    PyObject *out = PyTuple_New(N_BOUNDS);
    for (int i = 0; out != NULL && i < N_BOUNDS; i++) {
        PyObject *v = PyFloat_FromDouble(BOUNDS[i]);
        if (v == NULL)
            Py_CLEAR(out);
        else
            PyTuple_SET_ITEM(out, i, v);
    }
    return out;
}

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_series",
    "The request metrics' series and the completion hooks' loop, per request without a frame.",
    -1, NULL,
};

PyMODINIT_FUNC PyInit__series(void) {
    if (intern_all() < 0 || PyType_Ready(&SeriesType) < 0 || PyType_Ready(&RecorderType) < 0
        || PyType_Ready(&RequestEndType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    PyObject *bounds = bounds_tuple();
    int rc = bounds == NULL || PyModule_AddObjectRef(m, "BOUNDS", bounds) < 0
        || PyModule_AddObjectRef(m, "Series", (PyObject *)&SeriesType) < 0
        || PyModule_AddObjectRef(m, "Recorder", (PyObject *)&RecorderType) < 0
        || PyModule_AddObjectRef(m, "RequestEnd", (PyObject *)&RequestEndType) < 0 ? -1 : 0;
    Py_XDECREF(bounds);
    if (rc < 0)
        Py_CLEAR(m);
    return m;
}
