/* The edge-function host's C core: the module, value conversion, host-call trampolines,
 * instances and the epoch ticker (see hostcall.h for the layout of the sources).
 *
 * wasmtime's C API calls a host function with an array of wasmtime_component_val_t and
 * expects its result written into another.  Host functions written in C (the hot ones:
 * wasi:io, wasi:clocks, wasi:random, most of wasi:http/types) read and write those values
 * directly.  Host functions written in Python (outbound HTTP, key-value, variables, the
 * CLI world) go through one trampoline that decodes the arguments into Python values,
 * calls the function with the request's call state first, and encodes its return value
 * following a result type spec compiled once (see capi.py for the conventions).
 */
#include "hostcall.h"

#include <errno.h>
#include <string.h>
#include <structmember.h>
#include <time.h>

static PyObject *OnError;    /* on_error(exception, call | None) -> the trap message (logs it) */
static PyObject *WasmError;  /* _hostcall.WasmError: instantiation failed */

/* --- result specs (host functions written in Python) ------------------------------------- */
enum { S_INT, S_STRING, S_BYTES, S_OWN, S_BORROW, S_OPTION, S_RESULT, S_LIST, S_TUPLE,
       S_RECORD, S_VARIANT, S_ENUM };

typedef struct spec {
    int tag, kind;
    uint32_t type_id;
    Py_ssize_t n;
    struct spec **subs;      /* n entries, NULL for "no payload" */
    PyObject **names;        /* n names (record fields, variant cases), or NULL */
} spec_t;

static int int_kind(const char *s) {
    static const char *names[] = {"bool", "s8", "u8", "s16", "u16", "s32", "u32", "s64", "u64"};
    for (int i = 0; i < 9; i++) if (!strcmp(s, names[i])) return i;
    return -1;
}

static spec_t *compile_spec(PyObject *o) {
    spec_t *s = PyMem_Calloc(1, sizeof(spec_t));
    if (!s) { PyErr_NoMemory(); return NULL; }
    if (PyUnicode_Check(o)) {
        const char *t = PyUnicode_AsUTF8(o);
        if (!t) return NULL;
        int k = int_kind(t);
        if (k >= 0) { s->tag = S_INT; s->kind = k; return s; }
        if (!strcmp(t, "string")) { s->tag = S_STRING; return s; }
        if (!strcmp(t, "bytes")) { s->tag = S_BYTES; return s; }
        PyErr_Format(PyExc_ValueError, "unknown spec %s", t);
        return NULL;
    }
    if (!PyTuple_Check(o) || PyTuple_GET_SIZE(o) < 1) {
        PyErr_SetString(PyExc_ValueError, "a spec is a string or a tuple");
        return NULL;
    }
    const char *tag = PyUnicode_AsUTF8(PyTuple_GET_ITEM(o, 0));
    if (!tag) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(o) - 1;
    if (!strcmp(tag, "own") || !strcmp(tag, "borrow")) {
        s->tag = tag[0] == 'o' ? S_OWN : S_BORROW;
        s->type_id = (uint32_t)PyLong_AsUnsignedLong(PyTuple_GET_ITEM(o, 1));
        return PyErr_Occurred() ? NULL : s;
    }
    if (!strcmp(tag, "enum")) { s->tag = S_ENUM; return s; }
    if (!strcmp(tag, "variant")) {
        PyObject *cases = PyTuple_GET_ITEM(o, 1), *key, *value;
        Py_ssize_t pos = 0, i = 0;
        s->tag = S_VARIANT;
        s->n = PyDict_Size(cases);
        s->subs = PyMem_Calloc(s->n, sizeof(spec_t *));
        s->names = PyMem_Calloc(s->n, sizeof(PyObject *));
        while (PyDict_Next(cases, &pos, &key, &value)) {
            s->names[i] = Py_NewRef(key);
            if (value != Py_None && !(s->subs[i] = compile_spec(value))) return NULL;
            i++;
        }
        return s;
    }
    s->n = n;
    s->subs = PyMem_Calloc(n ? n : 1, sizeof(spec_t *));
    if (!strcmp(tag, "record")) {
        s->tag = S_RECORD;
        s->names = PyMem_Calloc(n, sizeof(PyObject *));
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *field = PyTuple_GET_ITEM(o, i + 1);
            s->names[i] = Py_NewRef(PyTuple_GET_ITEM(field, 0));
            if (!(s->subs[i] = compile_spec(PyTuple_GET_ITEM(field, 1)))) return NULL;
        }
        return s;
    }
    if (!strcmp(tag, "option")) s->tag = S_OPTION;
    else if (!strcmp(tag, "result")) s->tag = S_RESULT;
    else if (!strcmp(tag, "list")) s->tag = S_LIST;
    else if (!strcmp(tag, "tuple")) s->tag = S_TUPLE;
    else { PyErr_Format(PyExc_ValueError, "unknown spec tag %s", tag); return NULL; }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *sub = PyTuple_GET_ITEM(o, i + 1);
        if (sub != Py_None && !(s->subs[i] = compile_spec(sub))) return NULL;
    }
    return s;
}

/* --- decoding arguments for Python ---------------------------------------------------------- */
static PyObject *decode(void *ctx, val_t *v);

static PyObject *decode_list(void *ctx, val_t *items, size_t n, bool tuple) {
    PyObject *out = tuple ? PyTuple_New(n) : PyList_New(n);
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        PyObject *x = decode(ctx, &items[i]);
        if (!x) { Py_DECREF(out); return NULL; }
        if (tuple) PyTuple_SET_ITEM(out, i, x); else PyList_SET_ITEM(out, i, x);
    }
    return out;
}

static PyObject *decode(void *ctx, val_t *v) {
    switch (v->kind) {
    case K_BOOL: return PyBool_FromLong(v->of.b);
    case K_S8: return PyLong_FromLong(v->of.s8);
    case K_U8: return PyLong_FromLong(v->of.u8);
    case K_S16: return PyLong_FromLong(v->of.s16);
    case K_U16: return PyLong_FromLong(v->of.u16);
    case K_S32: return PyLong_FromLong(v->of.s32);
    case K_U32: case K_CHAR: return PyLong_FromUnsignedLong(v->of.u32);
    case K_S64: return PyLong_FromLongLong(v->of.s64);
    case K_U64: return PyLong_FromUnsignedLongLong(v->of.u64);
    case K_STRING: case K_ENUM:
        return PyUnicode_DecodeUTF8((const char *)v->of.string.data, v->of.string.size, "replace");
    case K_LIST: {
        size_t n = v->of.list.size;
        if (n && v->of.list.data[0].kind == K_U8) {
            PyObject *b = PyBytes_FromStringAndSize(NULL, n);
            if (!b) return NULL;
            char *p = PyBytes_AS_STRING(b);
            for (size_t i = 0; i < n; i++) p[i] = (char)v->of.list.data[i].of.u8;
            return b;
        }
        return decode_list(ctx, v->of.list.data, n, false);
    }
    case K_TUPLE: return decode_list(ctx, v->of.list.data, v->of.list.size, true);
    case K_OPTION:
        if (!v->of.option) Py_RETURN_NONE;
        return decode(ctx, v->of.option);
    case K_RESULT: {
        PyObject *payload = v->of.result.val ? decode(ctx, v->of.result.val) : Py_NewRef(Py_None);
        if (!payload) return NULL;
        return Py_BuildValue("(sN)", v->of.result.is_ok ? "ok" : "err", payload);
    }
    case K_VARIANT: {
        PyObject *payload = v->of.variant.val ? decode(ctx, v->of.variant.val) : Py_NewRef(Py_None);
        if (!payload) return NULL;
        return Py_BuildValue("(s#N)", (const char *)v->of.variant.disc.data,
                             (Py_ssize_t)v->of.variant.disc.size, payload);
    }
    case K_RECORD: {
        PyObject *d = PyDict_New();
        entry_t *e = v->of.record.data;
        for (size_t i = 0; d && i < v->of.record.size; i++) {
            PyObject *x = decode(ctx, &e[i].val);
            PyObject *k = PyUnicode_DecodeUTF8((const char *)e[i].name.data, e[i].name.size, "replace");
            int rc = (x && k) ? PyDict_SetItem(d, k, x) : -1;
            Py_XDECREF(x);
            Py_XDECREF(k);
            if (rc < 0) { Py_DECREF(d); return NULL; }
        }
        return d;
    }
    case K_RESOURCE: {
        void *host = NULL;
        void *err = W.any_to_host(ctx, v->of.resource, &host);
        if (err) {
            W.error_delete(err);
            PyErr_SetString(GuestTrap, "a guest-defined resource was passed where a host resource is expected");
            return NULL;
        }
        uint32_t rep = W.host_rep(host);
        W.host_delete(host);
        return PyLong_FromUnsignedLong(rep);
    }
    default:
        PyErr_Format(GuestTrap, "unsupported value kind %d", v->kind);
        return NULL;
    }
}

/* --- encoding results from Python ---------------------------------------------------------------- */
static int encode(void *ctx, spec_t *s, PyObject *o, val_t *out);

static val_t *boxed(void *ctx, spec_t *s, PyObject *o) {
    val_t tmp;
    memset(&tmp, 0, sizeof tmp);
    if (encode(ctx, s, o, &tmp) < 0) return NULL;
    return W.val_new(&tmp);
}

static int put_utf8(PyObject *o, name_t *out) {
    Py_ssize_t len;
    const char *p = PyUnicode_AsUTF8AndSize(o, &len);
    if (!p) return -1;
    W.byte_vec_new(out, (size_t)len, (const uint8_t *)p);
    return 0;
}

static spec_t *case_spec(spec_t *s, PyObject *name, Py_ssize_t *index) {
    for (Py_ssize_t i = 0; i < s->n; i++) {
        if (PyUnicode_Compare(s->names[i], name) == 0) { *index = i; return s->subs[i]; }
    }
    *index = -1;
    return NULL;
}

static int encode(void *ctx, spec_t *s, PyObject *o, val_t *out) {
    switch (s->tag) {
    case S_INT: {
        out->kind = (uint8_t)s->kind;
        if (s->kind == K_BOOL) { out->of.b = PyObject_IsTrue(o); return 0; }
        if (s->kind == K_U64) out->of.u64 = PyLong_AsUnsignedLongLong(o);
        else if (s->kind == K_S64) out->of.s64 = PyLong_AsLongLong(o);
        else {
            long x = PyLong_AsLong(o);
            switch (s->kind) {
            case K_S8: out->of.s8 = (int8_t)x; break;
            case K_U8: out->of.u8 = (uint8_t)x; break;
            case K_S16: out->of.s16 = (int16_t)x; break;
            case K_U16: out->of.u16 = (uint16_t)x; break;
            case K_S32: out->of.s32 = (int32_t)x; break;
            default: out->of.u32 = (uint32_t)x; break;
            }
        }
        return PyErr_Occurred() ? -1 : 0;
    }
    case S_STRING: out->kind = K_STRING; return put_utf8(o, &out->of.string);
    case S_ENUM: out->kind = K_ENUM; return put_utf8(o, &out->of.string);
    case S_BYTES: {
        Py_buffer view;
        if (PyObject_GetBuffer(o, &view, PyBUF_SIMPLE) < 0) return -1;
        ret_bytes(out, view.buf, (size_t)view.len);
        PyBuffer_Release(&view);
        return 0;
    }
    case S_OWN: case S_BORROW: {
        unsigned long rep = PyLong_AsUnsignedLong(o);
        if (PyErr_Occurred()) return -1;
        return put_resource(ctx, s->tag == S_OWN, (uint32_t)rep, s->type_id, out);
    }
    case S_OPTION:
        out->kind = K_OPTION;
        out->of.option = NULL;
        if (o == Py_None) return 0;
        return (out->of.option = boxed(ctx, s->subs[0], o)) ? 0 : -1;
    case S_RESULT: case S_VARIANT: {
        if (!PyTuple_Check(o) || PyTuple_GET_SIZE(o) != 2) {
            PyErr_SetString(PyExc_TypeError, "expected a (case, payload) tuple");
            return -1;
        }
        PyObject *name = PyTuple_GET_ITEM(o, 0), *payload = PyTuple_GET_ITEM(o, 1);
        spec_t *sub;
        if (s->tag == S_RESULT) {
            const char *c = PyUnicode_AsUTF8(name);
            if (!c) return -1;
            bool ok = !strcmp(c, "ok");
            sub = s->subs[ok ? 0 : 1];
            out->kind = K_RESULT;
            out->of.result.is_ok = ok;
            out->of.result.val = NULL;
            if (sub && !(out->of.result.val = boxed(ctx, sub, payload))) return -1;
            return 0;
        }
        Py_ssize_t index;
        sub = case_spec(s, name, &index);
        if (index < 0) { PyErr_Format(PyExc_ValueError, "no case %R", name); return -1; }
        out->kind = K_VARIANT;
        out->of.variant.val = NULL;
        if (sub && !(out->of.variant.val = boxed(ctx, sub, payload))) return -1;
        return put_utf8(name, &out->of.variant.disc);
    }
    case S_LIST: case S_TUPLE: {
        PyObject *seq = PySequence_Fast(o, "expected a sequence");
        if (!seq) return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        if (s->tag == S_LIST) ret_list(out, (size_t)n);
        else ret_tuple(out, (size_t)n);
        int rc = 0;
        for (Py_ssize_t i = 0; rc == 0 && i < n; i++)
            rc = encode(ctx, s->tag == S_LIST ? s->subs[0] : s->subs[i], PySequence_Fast_GET_ITEM(seq, i),
                        &out->of.list.data[i]);
        Py_DECREF(seq);
        return rc;
    }
    case S_RECORD: {
        out->kind = K_RECORD;
        W.valrecord_new_uninit(&out->of.record, (size_t)s->n);
        entry_t *e = out->of.record.data;
        memset(e, 0, s->n * sizeof(entry_t));
        for (Py_ssize_t i = 0; i < s->n; i++) {
            PyObject *x = PyDict_GetItemWithError(o, s->names[i]);
            if (!x) { if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, s->names[i]); return -1; }
            if (put_utf8(s->names[i], &e[i].name) < 0 || encode(ctx, s->subs[i], x, &e[i].val) < 0) return -1;
        }
        return 0;
    }
    }
    PyErr_SetString(PyExc_ValueError, "bad spec");
    return -1;
}

/* --- the trampolines ----------------------------------------------------------------------------- */
static void *trap_from_python(void) {
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    if (exc && tb) PyException_SetTraceback(exc, tb);
    PyObject *msg = NULL;
    if (exc && PyErr_GivenExceptionMatches(exc, GuestTrap)) msg = PyObject_Str(exc);
    else if (exc) msg = PyObject_CallFunctionObjArgs(OnError, exc, current_call ? (PyObject *)current_call : Py_None,
                                                     NULL);
    void *err = W.error_new(msg && PyUnicode_Check(msg) ? PyUnicode_AsUTF8(msg) : "host error");
    PyErr_Clear();
    Py_XDECREF(msg);
    Py_XDECREF(type);
    Py_XDECREF(exc);
    Py_XDECREF(tb);
    return err;
}

static CallObject *enter(void) {
    CallObject *c = current_call;
    if (!c) PyErr_SetString(GuestTrap, "host function called outside a request");
    return c;
}

typedef struct { PyObject *impl; spec_t *result; } pyfn_t;

static void *python_trampoline(void *data, void *ctx, void *ty, val_t *args, size_t nargs,
                               val_t *results, size_t nresults) {
    (void)ty;
    pyfn_t *h = data;
    PyGILState_STATE g = PyGILState_Ensure();
    double t0 = now_monotonic();
    CallObject *c = enter();
    PyObject *stack[16] = {(PyObject *)c}, *ret = NULL;
    size_t n = 0;
    if (c && nargs >= 16) PyErr_SetString(GuestTrap, "too many arguments");
    else if (c) {
        for (n = 0; n < nargs; n++) if (!(stack[n + 1] = decode(ctx, &args[n]))) break;
        if (n == nargs) ret = PyObject_Vectorcall(h->impl, stack, nargs + 1, NULL);
        c->python_calls++;
    }
    for (size_t i = 0; i < n; i++) Py_DECREF(stack[i + 1]);
    if (ret && nresults && h->result) {
        memset(results, 0, sizeof(val_t));
        if (encode(ctx, h->result, ret, results) < 0) Py_CLEAR(ret);
    }
    void *err = ret ? NULL : trap_from_python();
    Py_XDECREF(ret);
    if (c) {
        c->host_s += now_monotonic() - t0;
        c->host_calls++;
    }
    PyGILState_Release(g);
    return err;
}

static void *native_trampoline(void *data, void *ctx, void *ty, val_t *args, size_t nargs,
                               val_t *results, size_t nresults) {
    (void)ty; (void)ctx; (void)nargs; (void)nresults;
    PyGILState_STATE g = PyGILState_Ensure();
    double t0 = now_monotonic();
    CallObject *c = enter();
    void *err = NULL;
    if (!c || ((native_fn)data)(c, args, results) < 0) err = trap_from_python();
    if (c) {
        c->host_s += now_monotonic() - t0;
        c->host_calls++;
    }
    PyGILState_Release(g);
    return err;
}

static void *dtor_trampoline(void *data, void *ctx, uint32_t rep) {
    (void)data; (void)ctx;
    PyGILState_STATE g = PyGILState_Ensure();
    double t0 = now_monotonic();
    CallObject *c = enter();
    void *err = NULL;
    if (!c || table_drop(c->table, rep) < 0) err = trap_from_python();
    if (c) {
        c->host_s += now_monotonic() - t0;
        c->host_calls++;
    }
    PyGILState_Release(g);
    return err;
}

/* --- instances ---------------------------------------------------------------------------------- */
typedef struct {
    PyObject_HEAD
    void *store, *ctx;
    wasm_handle_t instance, func;
    TableObject *table;
    PyObject *keep;            /* the engine, linker and component this store uses */
    long calls;
    int broken;
    double instantiate_s;
} InstanceObject;

static PyObject *error_text(void *err) {
    name_t msg = {0, NULL};
    W.error_message(err, &msg);
    PyObject *text = PyUnicode_DecodeUTF8((const char *)msg.data, (Py_ssize_t)msg.size, "replace");
    W.byte_vec_delete(&msg);
    W.error_delete(err);
    return text;
}

static PyObject *instance_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *names[] = {"engine", "linker", "component", "export_index", "memory_limit", "keep", NULL};
    unsigned long long engine, linker, component, index;
    long long memory;
    PyObject *keep;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "KKKKLO", names, &engine, &linker, &component, &index,
                                     &memory, &keep)) return NULL;
    double t0 = now_monotonic();
    InstanceObject *self = (InstanceObject *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->keep = Py_NewRef(keep);
    self->table = (TableObject *)PyObject_CallNoArgs((PyObject *)&TableType);
    if (!self->table) { Py_DECREF(self); return NULL; }
    self->store = W.store_new((void *)engine, NULL, NULL);
    self->ctx = W.store_context(self->store);
    W.store_limiter(self->store, memory, -1, -1, -1, -1);
    W.set_epoch_deadline(self->ctx, (uint64_t)1 << 40);  /* instantiation runs no guest code worth bounding */
    void *err = W.instantiate((void *)linker, self->ctx, (void *)component, &self->instance);
    if (err) {
        PyObject *text = error_text(err);
        if (text) { PyErr_SetObject(WasmError, text); Py_DECREF(text); }
        Py_DECREF(self);
        return NULL;
    }
    if (!W.get_func(&self->instance, self->ctx, (void *)index, &self->func)) {
        PyErr_SetString(WasmError, "the handler export is not a function");
        Py_DECREF(self);
        return NULL;
    }
    self->instantiate_s = now_monotonic() - t0;
    return (PyObject *)self;
}

/* run(call, request, source, ticks) -> None, or the error text of a trap or limit */
static PyObject *instance_run(InstanceObject *self, PyObject *args) {
    CallObject *c;
    PyObject *request, *source;
    unsigned long long ticks;
    if (!PyArg_ParseTuple(args, "O!OO!K", &CallType, &c, &request, &SourceType, &source, &ticks)) return NULL;
    TableObject *t = self->table;
    uint32_t first = t->next;
    NativeObject *req = native_new(request, source);
    NativeObject *out = native_new(NULL, NULL);
    if (!req || !out) goto fail;
    uint32_t req_rep = table_add(t, (PyObject *)req, T_INCOMING_REQUEST, 0);
    uint32_t out_rep = req_rep ? table_add(t, (PyObject *)out, T_RESPONSE_OUTPARAM, 0) : 0;
    Py_CLEAR(req);
    Py_CLEAR(out);
    if (!out_rep) goto fail;
    Py_XSETREF(c->table, (TableObject *)Py_NewRef(t));
    c->ctx = self->ctx;
    val_t params[2];  /* func_call copies its arguments: ours are freed after the call */
    memset(params, 0, sizeof params);
    if (put_resource(self->ctx, true, req_rep, T_INCOMING_REQUEST, &params[0]) < 0) goto fail;
    if (put_resource(self->ctx, true, out_rep, T_RESPONSE_OUTPARAM, &params[1]) < 0) {
        W.val_delete(&params[0]);
        goto fail;
    }
    W.set_epoch_deadline(self->ctx, ticks);
    self->calls++;
    CallObject *prev = current_call;
    current_call = c;
    double t0 = now_monotonic(), host0 = c->host_s;
    void *err;
    if (c->threaded) {
        Py_BEGIN_ALLOW_THREADS
        err = W.func_call(&self->func, self->ctx, params, 2, NULL, 0);
        if (!err) err = W.post_return(&self->func, self->ctx);
        Py_END_ALLOW_THREADS
    } else {
        err = W.func_call(&self->func, self->ctx, params, 2, NULL, 0);
        if (!err) err = W.post_return(&self->func, self->ctx);
    }
    c->guest_s += now_monotonic() - t0 - (c->host_s - host0);
    current_call = prev;
    W.val_delete(&params[0]);
    W.val_delete(&params[1]);
    int forgotten = table_forget_from(t, first);
    if (forgotten < 0) {
        if (err) W.error_delete(err);
        return NULL;
    }
    if (!err) Py_RETURN_NONE;
    self->broken = 1;  /* an instance that trapped may not be entered again */
    return error_text(err);
fail:
    Py_XDECREF(req);
    Py_XDECREF(out);
    return NULL;
}

static int instance_traverse(InstanceObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->table);
    Py_VISIT(self->keep);
    return 0;
}

static void instance_dealloc(InstanceObject *self) {
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->table);
    if (self->store) W.store_delete(self->store);  /* unmaps its memories: ~0.1-1 ms */
    Py_CLEAR(self->keep);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef instance_methods[] = {
    {"run", (PyCFunction)instance_run, METH_VARARGS,
     "run(call, request, source, ticks) -> None, or the error text of a trap or a limit"},
    {NULL},
};
static PyMemberDef instance_members[] = {
    {"table", T_OBJECT, offsetof(InstanceObject, table), READONLY, NULL},
    {"calls", T_LONG, offsetof(InstanceObject, calls), READONLY, "handle calls made"},
    {"broken", T_INT, offsetof(InstanceObject, broken), 0, "trapped: never enter it again"},
    {"instantiate_s", T_DOUBLE, offsetof(InstanceObject, instantiate_s), READONLY, NULL},
    {NULL},
};

static PyTypeObject InstanceType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.functions._hostcall.Instance",
    .tp_doc = "Instance(engine, linker, component, export_index, memory_limit, keep): a store and "
              "an instance of a component, and its resource table.",
    .tp_basicsize = sizeof(InstanceObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = instance_tp_new,
    .tp_dealloc = (destructor)instance_dealloc,
    .tp_traverse = (traverseproc)instance_traverse,
    .tp_methods = instance_methods,
    .tp_members = instance_members,
};

/* --- the epoch ticker: a thread without the GIL, so a guest that holds it is still
 * interrupted at its deadline ------------------------------------------------------------------- */
typedef struct {
    PyObject_HEAD
    pthread_t thread;
    void *engine;
    double interval;
    volatile int stop, running;
    PyObject *keep;
} TickerObject;

static void *tick(void *arg) {
    TickerObject *t = arg;
    struct timespec ts = {(time_t)t->interval, (long)((t->interval - (time_t)t->interval) * 1e9)};
    while (!t->stop) {
        struct timespec left = ts;
        while (nanosleep(&left, &left) < 0 && errno == EINTR) {}
        W.increment_epoch(t->engine);
    }
    return NULL;
}

static PyObject *ticker_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    unsigned long long engine;
    double interval;
    PyObject *keep;
    if (!PyArg_ParseTuple(args, "KdO", &engine, &interval, &keep)) return NULL;
    TickerObject *t = (TickerObject *)type->tp_alloc(type, 0);
    if (!t) return NULL;
    t->engine = (void *)engine;
    t->interval = interval;
    t->keep = Py_NewRef(keep);
    if (pthread_create(&t->thread, NULL, tick, t) != 0) {
        Py_DECREF(t);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    t->running = 1;
    return (PyObject *)t;
}

static PyObject *ticker_stop(TickerObject *t, PyObject *unused) {
    if (t->running) {
        t->stop = 1;
        Py_BEGIN_ALLOW_THREADS
        pthread_join(t->thread, NULL);
        Py_END_ALLOW_THREADS
        t->running = 0;
    }
    Py_RETURN_NONE;
}

static void ticker_dealloc(TickerObject *t) {
    PyObject *r = ticker_stop(t, NULL);
    Py_XDECREF(r);
    Py_CLEAR(t->keep);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static PyMethodDef ticker_methods[] = {
    {"stop", (PyCFunction)ticker_stop, METH_NOARGS, "stop ticking (waits for the thread)"},
    {NULL},
};

static PyTypeObject TickerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.functions._hostcall.Ticker",
    .tp_doc = "Ticker(engine, interval_s, keep): increments the engine's epoch every interval.",
    .tp_basicsize = sizeof(TickerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = ticker_tp_new,
    .tp_dealloc = (destructor)ticker_dealloc,
    .tp_methods = ticker_methods,
};

/* --- module functions ---------------------------------------------------------------------------- */
static PyObject *py_configure(PyObject *self, PyObject *args) {
    PyObject *addrs, *trap, *multidict, *on_error, *names;
    Py_ssize_t instance_size, func_size;
    if (!PyArg_ParseTuple(args, "O!OOOO!nn", &PyDict_Type, &addrs, &trap, &multidict, &on_error,
                          &PyDict_Type, &names, &instance_size, &func_size)) return NULL;
    if (instance_size > (Py_ssize_t)sizeof(wasm_handle_t) || func_size > (Py_ssize_t)sizeof(wasm_handle_t)) {
        PyErr_SetString(PyExc_ImportError, "wasmtime's component instance/func handles grew");
        return NULL;
    }
#define GET(var, name) do { PyObject *a = PyDict_GetItemString(addrs, name); \
        if (!a) { PyErr_Format(PyExc_KeyError, "%s", name); return NULL; } \
        *(void **)&W.var = PyLong_AsVoidPtr(a); } while (0)
    GET(any_to_host, "wasmtime_component_resource_any_to_host");
    GET(host_rep, "wasmtime_component_resource_host_rep");
    GET(host_delete, "wasmtime_component_resource_host_delete");
    GET(host_new, "wasmtime_component_resource_host_new");
    GET(host_to_any, "wasmtime_component_resource_host_to_any");
    GET(byte_vec_new, "wasm_byte_vec_new");
    GET(byte_vec_delete, "wasm_byte_vec_delete");
    GET(vallist_new_uninit, "wasmtime_component_vallist_new_uninit");
    GET(valtuple_new_uninit, "wasmtime_component_valtuple_new_uninit");
    GET(valrecord_new_uninit, "wasmtime_component_valrecord_new_uninit");
    GET(val_new, "wasmtime_component_val_new");
    GET(val_delete, "wasmtime_component_val_delete");
    GET(error_new, "wasmtime_error_new");
    GET(error_delete, "wasmtime_error_delete");
    GET(error_message, "wasmtime_error_message");
    GET(func_call, "wasmtime_component_func_call");
    GET(post_return, "wasmtime_component_func_post_return");
    GET(store_new, "wasmtime_store_new");
    GET(store_context, "wasmtime_store_context");
    GET(store_limiter, "wasmtime_store_limiter");
    GET(store_delete, "wasmtime_store_delete");
    GET(set_epoch_deadline, "wasmtime_context_set_epoch_deadline");
    GET(instantiate, "wasmtime_component_linker_instantiate");
    GET(get_func, "wasmtime_component_instance_get_func");
    GET(increment_epoch, "wasmtime_engine_increment_epoch");
#undef GET
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(names, &pos, &key, &value)) {  /* leaked on purpose: process lifetime */
        long type = PyLong_AsLong(key);
        const char *name = PyUnicode_AsUTF8(value);
        if (!name || type <= 0 || type >= T_MAX) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "bad resource type %ld", type);
            return NULL;
        }
        type_names[type] = strdup(name);
    }
    Py_XSETREF(GuestTrap, Py_NewRef(trap));
    Py_XSETREF(MultiDict, Py_NewRef(multidict));
    Py_XSETREF(OnError, Py_NewRef(on_error));
    Py_RETURN_NONE;
}

static PyObject *callback_pair(void *cb, void *data) {
    return Py_BuildValue("(NN)", PyLong_FromVoidPtr(cb), PyLong_FromVoidPtr(data));
}

/* python_function(impl, result_spec | None) -> (callback, data) addresses */
static PyObject *py_python_function(PyObject *self, PyObject *args) {
    PyObject *impl, *spec;
    if (!PyArg_ParseTuple(args, "OO", &impl, &spec)) return NULL;
    pyfn_t *h = PyMem_Calloc(1, sizeof(pyfn_t));  /* lives as long as the process */
    if (!h) return PyErr_NoMemory();
    h->impl = Py_NewRef(impl);
    if (spec != Py_None && !(h->result = compile_spec(spec))) return NULL;
    return callback_pair((void *)python_trampoline, h);
}

/* native_function(interface, name) -> (callback, data) addresses, or None */
static PyObject *py_native_function(PyObject *self, PyObject *args) {
    const char *iface, *name;
    if (!PyArg_ParseTuple(args, "ss", &iface, &name)) return NULL;
    const native_t *tables[] = {io_natives, http_natives};
    for (size_t i = 0; i < 2; i++)
        for (const native_t *n = tables[i]; n->iface; n++)
            if (!strcmp(n->iface, iface) && !strcmp(n->name, name))
                return callback_pair((void *)native_trampoline, (void *)n->fn);
    Py_RETURN_NONE;
}

/* native_functions() -> {interface: [name, ...]} */
static PyObject *py_native_functions(PyObject *self, PyObject *unused) {
    PyObject *out = PyDict_New();
    const native_t *tables[] = {io_natives, http_natives};
    for (size_t i = 0; out && i < 2; i++) {
        for (const native_t *n = tables[i]; out && n->iface; n++) {
            PyObject *list = PyDict_GetItemString(out, n->iface), *name = PyUnicode_FromString(n->name);
            if (!list && (list = PyList_New(0))) {
                if (PyDict_SetItemString(out, n->iface, list) < 0) Py_CLEAR(out);
                Py_DECREF(list);
            }
            if (!out || !list || !name || PyList_Append(list, name) < 0) Py_CLEAR(out);
            Py_XDECREF(name);
        }
    }
    return out;
}

static PyObject *py_destructor(PyObject *self, PyObject *unused) {
    return callback_pair((void *)dtor_trampoline, NULL);
}

static PyObject *py_add_native(PyObject *self, PyObject *args) {
    /* add_native(table, type, a, parent=0, kind=0) -> rep: a C-implemented resource made in
     * Python (an outbound response's body, a pollable on a Python condition, stdio) */
    TableObject *t;
    int type, kind = 0;
    PyObject *a;
    unsigned int parent = 0;
    if (!PyArg_ParseTuple(args, "O!iO|Ii", &TableType, &t, &type, &a, &parent, &kind)) return NULL;
    if (type <= 0 || type >= T_MAX) return PyErr_Format(PyExc_ValueError, "bad resource type %d", type);
    NativeObject *o = native_new(a == Py_None ? NULL : a, NULL);
    if (!o) return NULL;
    o->kind = kind;
    uint32_t rep = table_add(t, (PyObject *)o, (uint8_t)type, parent);
    Py_DECREF(o);
    return rep ? PyLong_FromUnsignedLong(rep) : NULL;
}

static PyMethodDef methods[] = {
    {"configure", py_configure, METH_VARARGS,
     "configure(addresses, GuestTrap, CIMultiDict, on_error, type_names, instance_size, func_size)"},
    {"python_function", py_python_function, METH_VARARGS, "(callback, data) of a host function in Python"},
    {"native_function", py_native_function, METH_VARARGS, "(callback, data) of a host function in C, or None"},
    {"native_functions", py_native_functions, METH_NOARGS, "{interface: [function, ...]} implemented in C"},
    {"destructor", py_destructor, METH_NOARGS, "(callback, data) of the host resource destructor"},
    {"add_native", py_add_native, METH_VARARGS, "add_native(table, type, a, parent=0, kind=0) -> rep"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_hostcall", NULL, -1, methods, NULL, NULL, NULL, NULL};

static int set_class_attrs(PyTypeObject *type, int type_id, const char *wit) {
    PyObject *id = PyLong_FromLong(type_id), *name = PyUnicode_FromString(wit);
    int rc = id && name && PyDict_SetItemString(type->tp_dict, "TYPE", id) == 0
             && PyDict_SetItemString(type->tp_dict, "WIT", name) == 0 ? 0 : -1;
    Py_XDECREF(id);
    Py_XDECREF(name);
    PyType_Modified(type);
    return rc;
}

PyMODINIT_FUNC PyInit__hostcall(void) {
    if (sizeof(val_t) != 32 || offsetof(val_t, of) != 8 || sizeof(entry_t) != 48) {
        PyErr_SetString(PyExc_ImportError, "unexpected wasmtime_component_val_t layout");
        return NULL;
    }
    PyTypeObject *types[] = {&TableType, &CallType, &SourceType, &SinkType, &NativeType, &FieldsType,
                             &InstanceType, &TickerType};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) if (PyType_Ready(types[i]) < 0) return NULL;
    if (set_class_attrs(&FieldsType, T_FIELDS, "fields") < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    WasmError = PyErr_NewException("edgenode.functions._hostcall.WasmError", NULL, NULL);
    if (!WasmError || PyModule_AddObjectRef(m, "WasmError", WasmError) < 0) return NULL;
    const char *type_names_py[] = {"Table", "Call", "Source", "Sink", "Native", "Fields", "Instance", "Ticker"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (PyModule_AddObjectRef(m, type_names_py[i], (PyObject *)types[i]) < 0) return NULL;
    PyObject *ids = Py_BuildValue("{si si si si si si si si si si si}", "pollable", T_POLLABLE,
                                  "error", T_IO_ERROR, "input-stream", T_INPUT_STREAM,
                                  "output-stream", T_OUTPUT_STREAM, "fields", T_FIELDS,
                                  "incoming-request", T_INCOMING_REQUEST, "response-outparam", T_RESPONSE_OUTPARAM,
                                  "incoming-body", T_INCOMING_BODY, "future-trailers", T_FUTURE_TRAILERS,
                                  "outgoing-response", T_OUTGOING_RESPONSE, "outgoing-body", T_OUTGOING_BODY);
    if (!ids || PyModule_AddObject(m, "TYPES", ids) < 0) return NULL;
    if (PyModule_AddIntConstant(m, "P_PYTHON", P_PYTHON) < 0) return NULL;
    return m;
}
