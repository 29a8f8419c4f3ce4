/* Bytes in and out of the guest, and wasi:io, wasi:clocks, wasi:random in C.
 *
 * A Source is what the guest reads (a request or response body): complete up front, or
 * fed chunk by chunk from the event loop while a threaded guest waits.  A Sink is what
 * the guest writes: collected in one buffer (inline responses, outgoing request
 * bodies), or relayed chunk by chunk (threaded responses, stdout/stderr lines).  Both
 * are handed to the guest as whole buffers: a read returns what one chunk holds (up to
 * what was asked), a write appends the whole list at once.  Pollables are ready-checks
 * the request's call state waits on.
 */
#include "hostcall.h"

#include <errno.h>
#include <structmember.h>
#include <sys/random.h>

#define MAX_READ (1 << 20)      /* the most one read hands over */
#define WRITE_BUDGET (1 << 20)  /* what check-write allows at once */

/* --- Source ---------------------------------------------------------------------------- */
int source_ready(void *p) {
    SourceObject *s = p;
    return s->eof || s->head < PyList_GET_SIZE(s->chunks);
}

int source_eof(void *p) {
    return ((SourceObject *)p)->eof;
}

/* Up to n bytes now: 1 (ptr/len set, len may be 0 when nothing arrived yet), 0 at the end. */
static int source_read(SourceObject *s, Py_ssize_t n, const uint8_t **ptr, Py_ssize_t *len) {
    Py_ssize_t count = PyList_GET_SIZE(s->chunks);
    if (s->head > 16 && s->head * 2 > count) {  /* drop what was read */
        if (PyList_SetSlice(s->chunks, 0, s->head, NULL) < 0) return -1;
        count -= s->head;
        s->head = 0;
    }
    if (s->head >= count) {
        *ptr = NULL;
        *len = 0;
        return s->eof ? 0 : 1;
    }
    PyObject *chunk = PyList_GET_ITEM(s->chunks, s->head);
    Py_ssize_t avail = PyBytes_GET_SIZE(chunk) - s->offset;
    Py_ssize_t take = avail < n ? avail : n;
    *ptr = (const uint8_t *)PyBytes_AS_STRING(chunk) + s->offset;
    *len = take;
    s->offset += take;
    if (s->offset >= PyBytes_GET_SIZE(chunk)) {
        s->head++;
        s->offset = 0;
    }
    return 1;
}

static int source_append(SourceObject *s, PyObject *data) {
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "a body chunk must be bytes");
        return -1;
    }
    return PyBytes_GET_SIZE(data) ? PyList_Append(s->chunks, data) : 0;
}

PyObject *source_new(PyObject *data, CallObject *call) {
    SourceObject *s = PyObject_GC_New(SourceObject, &SourceType);
    if (!s) return NULL;
    s->chunks = PyList_New(0);
    s->head = s->offset = 0;
    s->eof = data != NULL && data != Py_None;
    s->error = Py_NewRef(Py_None);
    s->trailers = Py_NewRef(Py_None);
    s->call = (CallObject *)Py_XNewRef((PyObject *)call);
    PyObject_GC_Track(s);
    if (!s->chunks || (s->eof && source_append(s, data) < 0)) {
        Py_DECREF(s);
        return NULL;
    }
    return (PyObject *)s;
}

static PyObject *source_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *names[] = {"data", "call", NULL};
    PyObject *data = Py_None, *call = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO", names, &data, &call)) return NULL;
    if (call != Py_None && !PyObject_TypeCheck(call, &CallType)) {
        PyErr_SetString(PyExc_TypeError, "call: a Call or None");
        return NULL;
    }
    return source_new(data, call == Py_None ? NULL : (CallObject *)call);
}

static void source_wake(SourceObject *s) {
    if (s->call) call_notify(s->call);
}

static PyObject *source_feed(SourceObject *s, PyObject *data) {
    if (source_append(s, data) < 0) return NULL;
    source_wake(s);
    Py_RETURN_NONE;
}

static PyObject *source_finish(SourceObject *s, PyObject *args, PyObject *kw) {
    static char *names[] = {"trailers", "error", NULL};
    PyObject *trailers = Py_None, *error = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO", names, &trailers, &error)) return NULL;
    Py_XSETREF(s->trailers, Py_NewRef(trailers));
    Py_XSETREF(s->error, Py_NewRef(error));
    s->eof = 1;
    source_wake(s);
    Py_RETURN_NONE;
}

static PyObject *source_py_ready(SourceObject *s, PyObject *unused) {
    return PyBool_FromLong(source_ready(s));
}

static int source_traverse(SourceObject *s, visitproc visit, void *arg) {
    Py_VISIT(s->chunks);
    Py_VISIT(s->error);
    Py_VISIT(s->trailers);
    Py_VISIT(s->call);
    return 0;
}

static int source_clear(SourceObject *s) {
    Py_CLEAR(s->chunks);
    Py_CLEAR(s->error);
    Py_CLEAR(s->trailers);
    Py_CLEAR(s->call);
    return 0;
}

static void source_dealloc(SourceObject *s) {
    PyObject_GC_UnTrack(s);
    source_clear(s);
    PyObject_GC_Del(s);
}

static PyMethodDef source_methods[] = {
    {"feed", (PyCFunction)source_feed, METH_O, "append a chunk (the producer side)"},
    {"finish", (PyCFunction)(void (*)(void))source_finish, METH_VARARGS | METH_KEYWORDS,
     "finish(trailers=None, error=None): the end of the body"},
    {"ready", (PyCFunction)source_py_ready, METH_NOARGS, "a read would not wait"},
    {NULL},
};
static PyMemberDef source_members[] = {
    {"eof", T_INT, offsetof(SourceObject, eof), READONLY, NULL},
    {"error", T_OBJECT, offsetof(SourceObject, error), READONLY, NULL},
    {"trailers", T_OBJECT, offsetof(SourceObject, trailers), 0, NULL},
    {NULL},
};

PyTypeObject SourceType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.functions._hostcall.Source",
    .tp_doc = "Source(data=None, call=None): bytes the guest reads; complete when data is given.",
    .tp_basicsize = sizeof(SourceObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = source_tp_new,
    .tp_dealloc = (destructor)source_dealloc,
    .tp_traverse = (traverseproc)source_traverse,
    .tp_clear = (inquiry)source_clear,
    .tp_methods = source_methods,
    .tp_members = source_members,
};

/* --- Sink ---------------------------------------------------------------------------------- */
int sink_write(SinkObject *s, const uint8_t *data, size_t n, size_t stride) {
    if (s->closed) {
        PyErr_SetString(GuestTrap, "write to a finished body");
        return -1;
    }
    s->size += (int64_t)n;
    if (s->size > s->limit) {
        PyErr_Format(GuestTrap, "body exceeds the function's max_body_bytes (%lld)", (long long)s->limit);
        return -1;
    }
    if (!n) return 0;
    char *out;
    PyObject *chunk = NULL;
    if (s->relay != Py_None) {
        chunk = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
        if (!chunk) return -1;
        out = PyBytes_AS_STRING(chunk);
    } else {
        if (s->len + (Py_ssize_t)n > s->cap) {
            Py_ssize_t cap = s->cap ? s->cap : 1024;
            while (cap < s->len + (Py_ssize_t)n) cap *= 2;
            char *grown = PyMem_Realloc(s->buf, cap);
            if (!grown) { PyErr_NoMemory(); return -1; }
            s->buf = grown;
            s->cap = cap;
        }
        out = s->buf + s->len;
        s->len += (Py_ssize_t)n;
    }
    if (stride == 1) memcpy(out, data, n);
    else for (size_t i = 0; i < n; i++) out[i] = (char)data[i * stride];
    if (!chunk) return 0;
    PyObject *r = PyObject_CallOneArg(s->relay, chunk);
    Py_DECREF(chunk);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

int sink_close(SinkObject *s) {
    s->closed = 1;
    if (s->relay == Py_None) return 0;
    PyObject *r = PyObject_CallOneArg(s->relay, Py_None);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

PyObject *sink_new(int64_t limit, PyObject *relay) {
    SinkObject *s = PyObject_GC_New(SinkObject, &SinkType);
    if (!s) return NULL;
    s->buf = NULL;
    s->len = s->cap = 0;
    s->size = 0;
    s->limit = limit;
    s->closed = 0;
    s->relay = Py_NewRef(relay ? relay : Py_None);
    s->on_close = Py_NewRef(Py_None);
    s->trailers = Py_NewRef(Py_None);
    PyObject_GC_Track(s);
    return (PyObject *)s;
}

static PyObject *sink_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *names[] = {"limit", "relay", NULL};
    long long limit;
    PyObject *relay = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "L|O", names, &limit, &relay)) return NULL;
    return sink_new(limit, relay);
}

static PyObject *sink_data(SinkObject *s, PyObject *unused) {
    return PyBytes_FromStringAndSize(s->buf ? s->buf : "", s->len);
}

static int sink_traverse(SinkObject *s, visitproc visit, void *arg) {
    Py_VISIT(s->relay);
    Py_VISIT(s->on_close);
    Py_VISIT(s->trailers);
    return 0;
}

static int sink_clear(SinkObject *s) {
    Py_CLEAR(s->relay);
    Py_CLEAR(s->on_close);
    Py_CLEAR(s->trailers);
    return 0;
}

static void sink_dealloc(SinkObject *s) {
    PyObject_GC_UnTrack(s);
    sink_clear(s);
    PyMem_Free(s->buf);
    PyObject_GC_Del(s);
}

static PyMethodDef sink_methods[] = {
    {"data", (PyCFunction)sink_data, METH_NOARGS, "what was written (collected sinks)"},
    {NULL},
};
static PyMemberDef sink_members[] = {
    {"closed", T_INT, offsetof(SinkObject, closed), READONLY, "the body was finished"},
    {"size", T_LONGLONG, offsetof(SinkObject, size), READONLY, "bytes written"},
    {"on_close", T_OBJECT, offsetof(SinkObject, on_close), 0, "called with the sink once finished"},
    {"trailers", T_OBJECT, offsetof(SinkObject, trailers), READONLY, "[(name, bytes)] given at finish"},
    {NULL},
};

PyTypeObject SinkType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.functions._hostcall.Sink",
    .tp_doc = "Sink(limit, relay=None): bytes the guest writes, collected or relayed.",
    .tp_basicsize = sizeof(SinkObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = sink_tp_new,
    .tp_dealloc = (destructor)sink_dealloc,
    .tp_traverse = (traverseproc)sink_traverse,
    .tp_clear = (inquiry)sink_clear,
    .tp_methods = sink_methods,
    .tp_members = sink_members,
};

/* --- native resources ------------------------------------------------------------------------ */
NativeObject *native_new(PyObject *a, PyObject *b) {
    NativeObject *o = PyObject_GC_New(NativeObject, &NativeType);
    if (!o) return NULL;
    o->a = Py_XNewRef(a);
    o->b = Py_XNewRef(b);
    o->until = 0;
    o->kind = o->flags = o->status = 0;
    PyObject_GC_Track(o);
    return o;
}

static int native_traverse(NativeObject *o, visitproc visit, void *arg) {
    Py_VISIT(o->a);
    Py_VISIT(o->b);
    return 0;
}

static int native_clear(NativeObject *o) {
    Py_CLEAR(o->a);
    Py_CLEAR(o->b);
    return 0;
}

static void native_dealloc(NativeObject *o) {
    PyObject_GC_UnTrack(o);
    native_clear(o);
    PyObject_GC_Del(o);
}

PyTypeObject NativeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.functions._hostcall.Native",
    .tp_doc = "A host resource implemented in C (stream, pollable, body, request, response).",
    .tp_basicsize = sizeof(NativeObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)native_dealloc,
    .tp_traverse = (traverseproc)native_traverse,
    .tp_clear = (inquiry)native_clear,
};

static NativeObject *get(CallObject *c, val_t *arg, uint8_t type) {
    uint32_t rep;
    if (arg_rep(c, arg, &rep) < 0) return NULL;
    slot_t *s = table_get(c->table, rep, type);
    return s ? (NativeObject *)s->obj : NULL;
}

/* --- wasi:io/error, wasi:io/poll ------------------------------------------------------------------ */
static int error_debug(CallObject *c, val_t *args, val_t *res) {
    NativeObject *e = get(c, &args[0], T_IO_ERROR);
    if (!e) return -1;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(e->a, &n);
    if (!s) return -1;
    ret_string(res, s, (size_t)n);
    return 0;
}

static int pollable_ready(void *p) {
    NativeObject *o = p;
    switch (o->kind) {
    case P_ALWAYS: return 1;
    case P_TIMER: return now_monotonic() >= o->until;
    case P_SOURCE: return source_ready(o->a);
    case P_SOURCE_EOF: return source_eof(o->a);
    default: {
        if (current_call) current_call->python_calls++;
        PyObject *r = PyObject_CallNoArgs(o->a);
        int ready = r ? PyObject_IsTrue(r) : -1;
        Py_XDECREF(r);
        return ready;
    }
    }
}

static int poll_ready(CallObject *c, val_t *args, val_t *res) {
    NativeObject *p = get(c, &args[0], T_POLLABLE);
    if (!p) return -1;
    int r = pollable_ready(p);
    if (r < 0) return -1;
    ret_bool(res, r);
    return 0;
}

static int poll_block(CallObject *c, val_t *args, val_t *res) {
    NativeObject *p = get(c, &args[0], T_POLLABLE);
    return p ? call_wait(c, pollable_ready, p, p->kind == P_TIMER ? p->until : -1) : -1;
}

typedef struct { NativeObject **items; size_t n; } pollset_t;

static int any_ready(void *arg) {
    pollset_t *set = arg;
    for (size_t i = 0; i < set->n; i++) {
        int r = pollable_ready(set->items[i]);
        if (r) return r;
    }
    return 0;
}

static int poll_list(CallObject *c, val_t *args, val_t *res) {
    size_t n = args[0].of.list.size;
    int rc = -1;
    if (!n) { PyErr_SetString(GuestTrap, "poll with an empty list"); return -1; }
    NativeObject **items = PyMem_Malloc(n * sizeof(NativeObject *));
    uint32_t *ready = PyMem_Malloc(n * sizeof(uint32_t));
    if (!items || !ready) { PyErr_NoMemory(); goto done; }
    double until = -1;
    for (size_t i = 0; i < n; i++) {
        if (!(items[i] = get(c, &args[0].of.list.data[i], T_POLLABLE))) goto done;
        if (items[i]->kind == P_TIMER && (until < 0 || items[i]->until < until)) until = items[i]->until;
    }
    pollset_t set = {items, n};
    if (call_wait(c, any_ready, &set, until) < 0) goto done;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        int r = pollable_ready(items[i]);
        if (r < 0) goto done;
        if (r) ready[count++] = (uint32_t)i;
    }
    ret_list(res, count);
    for (size_t i = 0; i < count; i++) ret_u32(&res->of.list.data[i], ready[i]);
    rc = 0;
done:
    PyMem_Free(items);
    PyMem_Free(ready);
    return rc;
}

static int new_pollable(CallObject *c, val_t *out, int kind, PyObject *a, double until, uint32_t parent) {
    NativeObject *p = native_new(a, NULL);
    if (!p) return -1;
    p->kind = kind;
    p->until = until;
    return ret_own_new(c, out, (PyObject *)p, T_POLLABLE, parent);
}

/* --- wasi:io/streams ---------------------------------------------------------------------------- */
static void closed(val_t *res) {
    val_t e;
    ret_case(&e, "closed", NULL);
    ret_result(res, false, &e);
}

static int failed(CallObject *c, val_t *res, PyObject *message) {
    NativeObject *err = native_new(message, NULL);
    val_t own, e;
    if (!err || ret_own_new(c, &own, (PyObject *)err, T_IO_ERROR, 0) < 0) return -1;
    ret_case(&e, "last-operation-failed", &own);
    ret_result(res, false, &e);
    return 0;
}

/* read / skip: one chunk's worth, waiting first when blocking */
static int input(CallObject *c, val_t *args, val_t *res, bool blocking, bool skip) {
    NativeObject *in = get(c, &args[0], T_INPUT_STREAM);
    if (!in) return -1;
    SourceObject *src = (SourceObject *)in->a;
    uint64_t want = args[1].of.u64 < MAX_READ ? args[1].of.u64 : MAX_READ;
    if (blocking && call_wait(c, source_ready, src, -1) < 0) return -1;
    const uint8_t *data;
    Py_ssize_t len;
    int r = source_read(src, (Py_ssize_t)want, &data, &len);
    if (r < 0) return -1;
    if (r == 0) {
        if (src->error != Py_None) return failed(c, res, src->error);
        closed(res);
        return 0;
    }
    val_t ok;
    if (skip) ret_u64(&ok, (uint64_t)len);
    else ret_bytes(&ok, data, (size_t)len);
    ret_result(res, true, &ok);
    return 0;
}

static int in_read(CallObject *c, val_t *a, val_t *r) { return input(c, a, r, false, false); }
static int in_blocking_read(CallObject *c, val_t *a, val_t *r) { return input(c, a, r, true, false); }
static int in_skip(CallObject *c, val_t *a, val_t *r) { return input(c, a, r, false, true); }
static int in_blocking_skip(CallObject *c, val_t *a, val_t *r) { return input(c, a, r, true, true); }

static int in_subscribe(CallObject *c, val_t *args, val_t *res) {
    uint32_t rep;
    if (arg_rep(c, &args[0], &rep) < 0) return -1;
    slot_t *s = table_get(c->table, rep, T_INPUT_STREAM);
    return s ? new_pollable(c, res, P_SOURCE, ((NativeObject *)s->obj)->a, 0, rep) : -1;
}

static SinkObject *output(CallObject *c, val_t *arg) {
    NativeObject *out = get(c, arg, T_OUTPUT_STREAM);
    return out ? (SinkObject *)out->a : NULL;
}

static void ok_unit(val_t *res) {
    ret_result(res, true, NULL);
}

static int out_check_write(CallObject *c, val_t *args, val_t *res) {
    SinkObject *s = output(c, &args[0]);
    if (!s) return -1;
    if (s->closed) { closed(res); return 0; }
    val_t ok;
    ret_u64(&ok, WRITE_BUDGET);
    ret_result(res, true, &ok);
    return 0;
}

static int out_write(CallObject *c, val_t *args, val_t *res) {
    SinkObject *s = output(c, &args[0]);
    if (!s) return -1;
    if (s->closed) { closed(res); return 0; }
    vallist_t *data = &args[1].of.list;
    if (sink_write(s, data->size ? &data->data[0].of.u8 : NULL, data->size, sizeof(val_t)) < 0) return -1;
    ok_unit(res);
    return 0;
}

static int out_flush(CallObject *c, val_t *args, val_t *res) {
    SinkObject *s = output(c, &args[0]);
    if (!s) return -1;
    if (s->closed) closed(res);
    else ok_unit(res);
    return 0;
}

static int out_subscribe(CallObject *c, val_t *args, val_t *res) {
    uint32_t rep;
    if (arg_rep(c, &args[0], &rep) < 0 || !table_get(c->table, rep, T_OUTPUT_STREAM)) return -1;
    return new_pollable(c, res, P_ALWAYS, NULL, 0, rep);
}

static int out_write_zeroes(CallObject *c, val_t *args, val_t *res) {
    SinkObject *s = output(c, &args[0]);
    if (!s) return -1;
    if (s->closed) { closed(res); return 0; }
    static const uint8_t zeroes[4096];
    for (uint64_t left = args[1].of.u64; left;) {
        size_t n = left < sizeof zeroes ? (size_t)left : sizeof zeroes;
        if (sink_write(s, zeroes, n, 1) < 0) return -1;
        left -= n;
    }
    ok_unit(res);
    return 0;
}

static int splice(CallObject *c, val_t *args, val_t *res, bool blocking) {
    SinkObject *dst = output(c, &args[0]);
    NativeObject *in = dst ? get(c, &args[1], T_INPUT_STREAM) : NULL;
    if (!in) return -1;
    SourceObject *src = (SourceObject *)in->a;
    if (dst->closed) { closed(res); return 0; }
    uint64_t want = args[2].of.u64 < MAX_READ ? args[2].of.u64 : MAX_READ;
    if (blocking && call_wait(c, source_ready, src, -1) < 0) return -1;
    const uint8_t *data;
    Py_ssize_t len;
    int r = source_read(src, (Py_ssize_t)want, &data, &len);
    if (r < 0) return -1;
    if (r == 0) {
        if (src->error != Py_None) return failed(c, res, src->error);
        closed(res);
        return 0;
    }
    if (sink_write(dst, data, (size_t)len, 1) < 0) return -1;
    val_t ok;
    ret_u64(&ok, (uint64_t)len);
    ret_result(res, true, &ok);
    return 0;
}

static int out_splice(CallObject *c, val_t *a, val_t *r) { return splice(c, a, r, false); }
static int out_blocking_splice(CallObject *c, val_t *a, val_t *r) { return splice(c, a, r, true); }

/* --- wasi:clocks ----------------------------------------------------------------------------- */
static int mono_now(CallObject *c, val_t *args, val_t *res) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ret_u64(res, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
    return 0;
}

static int mono_resolution(CallObject *c, val_t *args, val_t *res) {
    ret_u64(res, 1);
    return 0;
}

static int mono_instant(CallObject *c, val_t *args, val_t *res) {
    return new_pollable(c, res, P_TIMER, NULL, (double)args[0].of.u64 * 1e-9, 0);
}

static int mono_duration(CallObject *c, val_t *args, val_t *res) {
    return new_pollable(c, res, P_TIMER, NULL, now_monotonic() + (double)args[0].of.u64 * 1e-9, 0);
}

static const char *const DATETIME[] = {"seconds", "nanoseconds"};

static void datetime(val_t *res, uint64_t seconds, uint32_t nanoseconds) {
    ret_record(res, 2, DATETIME);
    entry_t *e = res->of.record.data;
    ret_u64(&e[0].val, seconds);
    ret_u32(&e[1].val, nanoseconds);
}

static int wall_now(CallObject *c, val_t *args, val_t *res) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    datetime(res, (uint64_t)ts.tv_sec, (uint32_t)ts.tv_nsec);
    return 0;
}

static int wall_resolution(CallObject *c, val_t *args, val_t *res) {
    datetime(res, 0, 1000);
    return 0;
}

/* --- wasi:random: OS randomness read 64 KiB at a time (guests ask for a few bytes many
 * times per request; a system call each would cost more than the rest of the call) ------ */
static uint8_t entropy[65536];
static size_t entropy_pos = sizeof entropy;

static int take_entropy(uint8_t *out, size_t n) {  /* with the GIL: no other thread here */
    while (n) {
        if (entropy_pos == sizeof entropy) {
            for (size_t got = 0; got < sizeof entropy;) {
                ssize_t r = getrandom(entropy + got, sizeof entropy - got, 0);
                if (r < 0) {
                    if (errno == EINTR) continue;
                    PyErr_SetFromErrno(PyExc_OSError);
                    return -1;
                }
                got += (size_t)r;
            }
            entropy_pos = 0;
        }
        size_t take = sizeof entropy - entropy_pos < n ? sizeof entropy - entropy_pos : n;
        memcpy(out, entropy + entropy_pos, take);
        entropy_pos += take;
        out += take;
        n -= take;
    }
    return 0;
}

static int random_bytes(CallObject *c, val_t *args, val_t *res) {
    uint64_t n = args[0].of.u64;
    if (n > MAX_READ) { PyErr_SetString(GuestTrap, "get-random-bytes: at most 1 MiB per call"); return -1; }
    uint8_t *buf = PyMem_Malloc(n ? n : 1);
    if (!buf) { PyErr_NoMemory(); return -1; }
    int rc = take_entropy(buf, n);
    if (rc == 0) ret_bytes(res, buf, n);
    PyMem_Free(buf);
    return rc;
}

static int random_u64(CallObject *c, val_t *args, val_t *res) {
    uint64_t x;
    if (take_entropy((uint8_t *)&x, sizeof x) < 0) return -1;
    ret_u64(res, x);
    return 0;
}

static int random_seed(CallObject *c, val_t *args, val_t *res) {
    uint64_t x[2];
    if (take_entropy((uint8_t *)x, sizeof x) < 0) return -1;
    ret_tuple(res, 2);
    ret_u64(&res->of.list.data[0], x[0]);
    ret_u64(&res->of.list.data[1], x[1]);
    return 0;
}

const native_t io_natives[] = {
    {"wasi:io/error", "[method]error.to-debug-string", error_debug},
    {"wasi:io/poll", "[method]pollable.ready", poll_ready},
    {"wasi:io/poll", "[method]pollable.block", poll_block},
    {"wasi:io/poll", "poll", poll_list},
    {"wasi:io/streams", "[method]input-stream.read", in_read},
    {"wasi:io/streams", "[method]input-stream.blocking-read", in_blocking_read},
    {"wasi:io/streams", "[method]input-stream.skip", in_skip},
    {"wasi:io/streams", "[method]input-stream.blocking-skip", in_blocking_skip},
    {"wasi:io/streams", "[method]input-stream.subscribe", in_subscribe},
    {"wasi:io/streams", "[method]output-stream.check-write", out_check_write},
    {"wasi:io/streams", "[method]output-stream.write", out_write},
    {"wasi:io/streams", "[method]output-stream.blocking-write-and-flush", out_write},
    {"wasi:io/streams", "[method]output-stream.flush", out_flush},
    {"wasi:io/streams", "[method]output-stream.blocking-flush", out_flush},
    {"wasi:io/streams", "[method]output-stream.subscribe", out_subscribe},
    {"wasi:io/streams", "[method]output-stream.write-zeroes", out_write_zeroes},
    {"wasi:io/streams", "[method]output-stream.blocking-write-zeroes-and-flush", out_write_zeroes},
    {"wasi:io/streams", "[method]output-stream.splice", out_splice},
    {"wasi:io/streams", "[method]output-stream.blocking-splice", out_blocking_splice},
    {"wasi:clocks/monotonic-clock", "now", mono_now},
    {"wasi:clocks/monotonic-clock", "resolution", mono_resolution},
    {"wasi:clocks/monotonic-clock", "subscribe-instant", mono_instant},
    {"wasi:clocks/monotonic-clock", "subscribe-duration", mono_duration},
    {"wasi:clocks/wall-clock", "now", wall_now},
    {"wasi:clocks/wall-clock", "resolution", wall_resolution},
    {"wasi:random/random", "get-random-bytes", random_bytes},
    {"wasi:random/random", "get-random-u64", random_u64},
    {"wasi:random/insecure", "get-insecure-random-bytes", random_bytes},
    {"wasi:random/insecure", "get-insecure-random-u64", random_u64},
    {"wasi:random/insecure-seed", "insecure-seed", random_seed},
    {NULL, NULL, NULL},
};
