/* Histogram: fixed buckets updated from C after every callback (and from Python for the
 * filters' own histogram metrics); read by the Prometheus collector at scrape time. */
#include "hostcore.h"

#include <structmember.h>

void hc_observe(Histogram *h, double value) {
    int lo = 0, hi = h->nb; /* bisect_left: first bound >= value */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (h->bounds[mid] < value) lo = mid + 1;
        else hi = mid;
    }
    h->counts[lo]++;
    h->sum += value;
    h->count++;
}

static int Histogram_init(Histogram *self, PyObject *args, PyObject *kwds) {
    PyObject *bounds, *key = Py_None;
    if (!PyArg_ParseTuple(args, "O|O", &bounds, &key)) return -1;
    PyObject *seq = PySequence_Fast(bounds, "bounds must be a sequence");
    if (seq == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyMem_Free(self->bounds);
    PyMem_Free(self->counts);
    self->bounds = PyMem_Calloc((size_t)(n ? n : 1), sizeof(double));
    self->counts = PyMem_Calloc((size_t)n + 1, sizeof(unsigned long long));
    if (self->bounds == NULL || self->counts == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        self->bounds[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        if (PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    self->nb = (int)n;
    self->sum = 0;
    self->count = 0;
    Py_hash_t hash = PyObject_Hash(key);
    if (hash == -1) return -1;
    Py_INCREF(key);
    Py_XSETREF(self->key, key);
    self->key_hash = hash;
    return 0;
}

static PyObject *Histogram_observe(Histogram *self, PyObject *arg) {
    double v = PyFloat_AsDouble(arg);
    if (v == -1.0 && PyErr_Occurred()) return NULL;
    hc_observe(self, v);
    Py_RETURN_NONE;
}

static PyObject *Histogram_get_counts(Histogram *self, void *closure) {
    PyObject *list = PyList_New(self->nb + 1);
    if (list == NULL) return NULL;
    for (int i = 0; i <= self->nb; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(self->counts[i]);
        if (v == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, v);
    }
    return list;
}

static PyObject *Histogram_get_bounds(Histogram *self, void *closure) {
    PyObject *t = PyTuple_New(self->nb);
    if (t == NULL) return NULL;
    for (int i = 0; i < self->nb; i++) PyTuple_SET_ITEM(t, i, PyFloat_FromDouble(self->bounds[i]));
    return t;
}

/* [(upper bound as text, cumulative count), ..., ("+Inf", count)] as Prometheus wants */
static PyObject *Histogram_buckets(Histogram *self, PyObject *unused) {
    PyObject *out = PyList_New(0);
    unsigned long long acc = 0;
    for (int i = 0; out != NULL && i <= self->nb; i++) {
        acc += self->counts[i];
        PyObject *label;
        if (i < self->nb) {
            PyObject *f = PyFloat_FromDouble(self->bounds[i]);
            label = f ? PyObject_Repr(f) : NULL;
            Py_XDECREF(f);
        } else {
            label = PyUnicode_FromString("+Inf");
        }
        PyObject *item = label ? Py_BuildValue("(NK)", label, acc) : NULL;
        if (item == NULL || PyList_Append(out, item) < 0) Py_CLEAR(out);
        Py_XDECREF(item);
    }
    return out;
}

static void Histogram_dealloc(Histogram *self) {
    PyMem_Free(self->bounds);
    PyMem_Free(self->counts);
    Py_XDECREF(self->key);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Histogram_methods[] = {
    {"observe", (PyCFunction)Histogram_observe, METH_O, "count one value"},
    {"buckets", (PyCFunction)Histogram_buckets, METH_NOARGS, "cumulative buckets, Prometheus style"},
    {NULL},
};

static PyMemberDef Histogram_members[] = {
    {"sum", T_DOUBLE, offsetof(Histogram, sum), READONLY, "sum of the values"},
    {"count", T_ULONGLONG, offsetof(Histogram, count), READONLY, "number of values"},
    {"key", T_OBJECT, offsetof(Histogram, key), READONLY, "(filter, phase) for Exchange.timings"},
    {NULL},
};

static PyGetSetDef Histogram_getset[] = {
    {"counts", (getter)Histogram_get_counts, NULL, "per-bucket counts, +Inf last", NULL},
    {"bounds", (getter)Histogram_get_bounds, NULL, "upper bounds", NULL},
    {NULL},
};

PyTypeObject HistogramType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgenode.wasm._hostcore.Histogram",
    .tp_basicsize = sizeof(Histogram),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Histogram(bounds, key=None): fixed-bucket histogram updated from C",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Histogram_init,
    .tp_dealloc = (destructor)Histogram_dealloc,
    .tp_methods = Histogram_methods,
    .tp_members = Histogram_members,
    .tp_getset = Histogram_getset,
};
