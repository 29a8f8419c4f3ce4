/* MetricTable: the values of a filter's own metrics (proxy_define_metric), held in C so
 * proxy_increment_metric / proxy_record_metric / proxy_get_metric run without Python.
 *
 * One table per filter name (metrics.FilterMetrics owns it, so values outlive VMs);
 * metric ids are 1-based indexes.  Values are 128-bit, so sums of 64-bit deltas do not
 * wrap: the exporter shows them whole, the guest reads their low 64 bits. */
#include "hostcore.h"

typedef __int128 value_t;

typedef struct Metric {
    int kind; /* abi.MetricType: 0 counter, 1 gauge, 2 histogram */
    value_t value;
    PyObject *hist; /* Histogram for a histogram, else NULL */
} Metric;

static Metric *metric(MetricTable *t, uint32_t mid) {
    return mid >= 1 && (Py_ssize_t)mid <= t->n ? &t->items[mid - 1] : NULL;
}

int hc_metric_increment(MetricTable *t, uint32_t mid, int64_t delta) {
    Metric *m = metric(t, mid);
    if (m == NULL) return ST_NOT_FOUND;
    if (m->kind == 2 || (m->kind == 0 && delta < 0)) return ST_BAD_ARGUMENT;
    m->value += delta;
    return ST_OK;
}

int hc_metric_record(MetricTable *t, uint32_t mid, uint64_t value) {
    Metric *m = metric(t, mid);
    if (m == NULL) return ST_NOT_FOUND;
    if (m->kind == 0) m->value += value;
    else if (m->kind == 1) m->value = value;
    else hc_observe((Histogram *)m->hist, (double)value);
    return ST_OK;
}

int hc_metric_get(MetricTable *t, uint32_t mid, uint64_t *out) {
    Metric *m = metric(t, mid);
    if (m == NULL) return ST_NOT_FOUND;
    if (m->kind == 2) return ST_BAD_ARGUMENT;
    *out = (uint64_t)m->value;
    return ST_OK;
}

static PyObject *from_value(value_t v) {
    return _PyLong_FromByteArray((const unsigned char *)&v, sizeof v, 1, 1);
}

/* add(kind, histogram or None) -> id */
static PyObject *MetricTable_add(MetricTable *self, PyObject *args) {
    int kind;
    PyObject *hist;
    if (!PyArg_ParseTuple(args, "iO", &kind, &hist)) return NULL;
    if (kind < 0 || kind > 2 || (kind == 2) != Py_IS_TYPE(hist, &HistogramType)) {
        PyErr_SetString(PyExc_ValueError, "a histogram metric needs a Histogram, others None");
        return NULL;
    }
    if (self->n == self->cap) {
        Py_ssize_t cap = self->cap ? self->cap * 2 : 8;
        Metric *items = PyMem_Realloc(self->items, (size_t)cap * sizeof(Metric));
        if (items == NULL) return PyErr_NoMemory();
        self->items = items;
        self->cap = cap;
    }
    Metric *m = &self->items[self->n++];
    m->kind = kind;
    m->value = 0;
    m->hist = kind == 2 ? Py_NewRef(hist) : NULL;
    return PyLong_FromSsize_t(self->n);
}

static PyObject *MetricTable_increment(MetricTable *self, PyObject *args) {
    unsigned int mid;
    long long delta;
    if (!PyArg_ParseTuple(args, "IL", &mid, &delta)) return NULL;
    return PyLong_FromLong(hc_metric_increment(self, mid, delta));
}

static PyObject *MetricTable_record(MetricTable *self, PyObject *args) {
    unsigned int mid;
    unsigned long long value;
    if (!PyArg_ParseTuple(args, "IK", &mid, &value)) return NULL;
    return PyLong_FromLong(hc_metric_record(self, mid, value));
}

static PyObject *MetricTable_get(MetricTable *self, PyObject *arg) {
    unsigned long mid = PyLong_AsUnsignedLong(arg);
    if (PyErr_Occurred()) return NULL;
    uint64_t value = 0;
    int status = hc_metric_get(self, (uint32_t)mid, &value);
    return Py_BuildValue("(iK)", status, (unsigned long long)value);
}

/* value(id): the full value, as the Prometheus exporter shows it */
static PyObject *MetricTable_value(MetricTable *self, PyObject *arg) {
    unsigned long mid = PyLong_AsUnsignedLong(arg);
    if (PyErr_Occurred()) return NULL;
    Metric *m = metric(self, (uint32_t)mid);
    if (m == NULL) {
        PyErr_SetString(PyExc_KeyError, "no such metric");
        return NULL;
    }
    return from_value(m->value);
}

static void MetricTable_dealloc(MetricTable *self) {
    for (Py_ssize_t i = 0; i < self->n; i++) Py_XDECREF(self->items[i].hist);
    PyMem_Free(self->items);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef MetricTable_methods[] = {
    {"add", (PyCFunction)MetricTable_add, METH_VARARGS, "add(kind, histogram or None) -> id"},
    {"increment", (PyCFunction)MetricTable_increment, METH_VARARGS, "increment(id, delta) -> status"},
    {"record", (PyCFunction)MetricTable_record, METH_VARARGS, "record(id, u64 value) -> status"},
    {"get", (PyCFunction)MetricTable_get, METH_O, "get(id) -> (status, low 64 bits)"},
    {"value", (PyCFunction)MetricTable_value, METH_O, "value(id) -> int"},
    {NULL},
};

PyTypeObject MetricTableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgenode.wasm._hostcore.MetricTable",
    .tp_basicsize = sizeof(MetricTable),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "MetricTable(): a filter's own metrics, updated by the host core",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)MetricTable_dealloc,
    .tp_methods = MetricTable_methods,
};
