/* Host-call trampolines for edge functions: wasmtime component values <-> Python.
 *
 * wasmtime's C API calls a host function with an array of wasmtime_component_val_t and
 * expects its result written into another.  Doing that conversion in Python (ctypes)
 * costs several microseconds per call; here one C callback decodes the arguments into
 * Python values, calls the host function, and encodes its return value following a
 * result type spec compiled once (see capi.py for the value conventions).
 *
 * The wasmtime functions used are looked up by the Python side in the wheel's shared
 * library and handed over as addresses (configure()), so nothing here links against it.
 * The value layout mirrors wasmtime's component/val.h: a one-byte kind, then a union at
 * offset 8; 32 bytes per value.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

typedef struct { size_t size; uint8_t *data; } name_t;
typedef struct val val_t;
typedef struct { size_t size; val_t *data; } vallist_t;
typedef struct { size_t size; void *data; } valrecord_t;
struct val {
    uint8_t kind;
    union {
        bool b; int8_t s8; uint8_t u8; int16_t s16; uint16_t u16; int32_t s32; uint32_t u32;
        int64_t s64; uint64_t u64; float f32; double f64;
        name_t string;
        vallist_t list;
        valrecord_t record;
        struct { name_t disc; val_t *val; } variant;
        val_t *option;
        struct { bool is_ok; val_t *val; } result;
        void *resource;
    } of;
};
typedef struct { name_t name; val_t val; } entry_t;

enum { K_BOOL, K_S8, K_U8, K_S16, K_U16, K_S32, K_U32, K_S64, K_U64, K_F32, K_F64, K_CHAR,
       K_STRING, K_LIST, K_RECORD, K_TUPLE, K_VARIANT, K_ENUM, K_OPTION, K_RESULT, K_FLAGS,
       K_RESOURCE };

/* the wasmtime C API, by address */
static void *(*any_to_host)(void *ctx, void *any, void **host);
static uint32_t (*host_rep)(void *host);
static void (*host_delete)(void *host);
static void *(*host_new)(bool owned, uint32_t rep, uint32_t ty);
static void *(*host_to_any)(void *ctx, void *host, void **any);
static void (*byte_vec_new)(name_t *out, size_t size, const uint8_t *data);
static void (*vallist_new_uninit)(vallist_t *out, size_t size);
static void (*valtuple_new_uninit)(vallist_t *out, size_t size);
static void (*valrecord_new_uninit)(valrecord_t *out, size_t size);
static val_t *(*val_new)(val_t *src);
static void *(*error_new)(const char *message);
static void (*error_delete)(void *err);
static void *(*func_call)(void *func, void *ctx, val_t *args, size_t nargs, val_t *res, size_t nres);
static void *(*post_return)(void *func, void *ctx);

static PyObject *GuestTrap;  /* edgenode.functions.capi.GuestTrap */

/* --- result specs ------------------------------------------------------------------ */
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
            Py_INCREF(key);
            s->names[i] = key;
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
            s->names[i] = PyTuple_GET_ITEM(field, 0);
            Py_INCREF(s->names[i]);
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

/* --- decoding arguments ------------------------------------------------------------ */
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
        PyObject *payload = v->of.result.val ? decode(ctx, v->of.result.val) : (Py_INCREF(Py_None), Py_None);
        if (!payload) return NULL;
        return Py_BuildValue("(sN)", v->of.result.is_ok ? "ok" : "err", payload);
    }
    case K_VARIANT: {
        PyObject *payload = v->of.variant.val ? decode(ctx, v->of.variant.val) : (Py_INCREF(Py_None), Py_None);
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
        void *err = any_to_host(ctx, v->of.resource, &host);
        if (err) {
            error_delete(err);
            PyErr_SetString(GuestTrap, "a guest-defined resource was passed where a host resource is expected");
            return NULL;
        }
        uint32_t rep = host_rep(host);
        host_delete(host);
        return PyLong_FromUnsignedLong(rep);
    }
    default:
        PyErr_Format(GuestTrap, "unsupported value kind %d", v->kind);
        return NULL;
    }
}

/* --- encoding results -------------------------------------------------------------- */
static int encode(void *ctx, spec_t *s, PyObject *o, val_t *out);

static int put_resource(void *ctx, bool owned, PyObject *o, uint32_t ty, val_t *out) {
    unsigned long rep = PyLong_AsUnsignedLong(o);
    if (PyErr_Occurred()) return -1;
    void *host = host_new(owned, (uint32_t)rep, ty), *any = NULL;
    void *err = host_to_any(ctx, host, &any);
    host_delete(host);
    if (err) { error_delete(err); PyErr_SetString(GuestTrap, "cannot hand a resource to the guest"); return -1; }
    out->kind = K_RESOURCE;
    out->of.resource = any;
    return 0;
}

static val_t *boxed(void *ctx, spec_t *s, PyObject *o) {
    val_t tmp;
    memset(&tmp, 0, sizeof tmp);
    if (encode(ctx, s, o, &tmp) < 0) return NULL;
    return val_new(&tmp);
}

static int put_utf8(PyObject *o, name_t *out) {
    Py_ssize_t len;
    const char *p = PyUnicode_AsUTF8AndSize(o, &len);
    if (!p) return -1;
    byte_vec_new(out, (size_t)len, (const uint8_t *)p);
    return 0;
}

static spec_t *case_spec(spec_t *s, PyObject *name, Py_ssize_t *index) {
    for (Py_ssize_t i = 0; i < s->n; i++) {
        int eq = PyUnicode_Compare(s->names[i], name);
        if (eq == 0) { *index = i; return s->subs[i]; }
    }
    *index = -1;
    return NULL;
}

static int encode_seq(void *ctx, spec_t *item, PyObject *seq, val_t *data, Py_ssize_t n, spec_t **subs) {
    for (Py_ssize_t i = 0; i < n; i++) {
        if (encode(ctx, subs ? subs[i] : item, PySequence_Fast_GET_ITEM(seq, i), &data[i]) < 0) return -1;
    }
    return 0;
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
        out->kind = K_LIST;
        vallist_new_uninit(&out->of.list, (size_t)view.len);
        for (Py_ssize_t i = 0; i < view.len; i++) {
            out->of.list.data[i].kind = K_U8;
            out->of.list.data[i].of.u8 = ((const uint8_t *)view.buf)[i];
        }
        PyBuffer_Release(&view);
        return 0;
    }
    case S_OWN: case S_BORROW: return put_resource(ctx, s->tag == S_OWN, o, s->type_id, out);
    case S_OPTION:
        out->kind = K_OPTION;
        out->of.option = NULL;
        if (o == Py_None) return 0;
        return (out->of.option = boxed(ctx, s->subs[0], o)) ? 0 : -1;
    case S_RESULT: case S_VARIANT: {
        PyObject *name, *payload;
        if (!PyTuple_Check(o) || PyTuple_GET_SIZE(o) != 2) {
            PyErr_SetString(PyExc_TypeError, "expected a (case, payload) tuple");
            return -1;
        }
        name = PyTuple_GET_ITEM(o, 0);
        payload = PyTuple_GET_ITEM(o, 1);
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
        int rc;
        if (s->tag == S_LIST) {
            out->kind = K_LIST;
            vallist_new_uninit(&out->of.list, (size_t)n);
            memset(out->of.list.data, 0, n * sizeof(val_t));
            rc = encode_seq(ctx, s->subs[0], seq, out->of.list.data, n, NULL);
        } else {
            out->kind = K_TUPLE;
            valtuple_new_uninit(&out->of.list, (size_t)n);
            memset(out->of.list.data, 0, n * sizeof(val_t));
            rc = encode_seq(ctx, NULL, seq, out->of.list.data, n, s->subs);
        }
        Py_DECREF(seq);
        return rc;
    }
    case S_RECORD: {
        out->kind = K_RECORD;
        valrecord_new_uninit(&out->of.record, (size_t)s->n);
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

/* --- the callbacks ----------------------------------------------------------------- */
typedef struct {
    PyObject *impl, *on_error, *account;
    spec_t *result;
} hostfn_t;

static void *fail(PyObject *on_error) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *msg = NULL;
    if (type && PyErr_GivenExceptionMatches(type, GuestTrap)) msg = PyObject_Str(value);
    else if (value) msg = PyObject_CallOneArg(on_error, value);
    void *err = error_new(msg && PyUnicode_Check(msg) ? PyUnicode_AsUTF8(msg) : "host error");
    PyErr_Clear();
    Py_XDECREF(msg); Py_XDECREF(type); Py_XDECREF(value); Py_XDECREF(tb);
    return err;
}

static void account(PyObject *fn, double seconds) {
    PyObject *arg = PyFloat_FromDouble(seconds);
    PyObject *r = arg ? PyObject_CallOneArg(fn, arg) : NULL;
    Py_XDECREF(arg);
    Py_XDECREF(r);
    PyErr_Clear();
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *host_trampoline(void *data, void *ctx, void *ty, val_t *args, size_t nargs,
                             val_t *results, size_t nresults) {
    (void)ty;
    hostfn_t *h = data;
    PyGILState_STATE g = PyGILState_Ensure();
    double t0 = now();
    void *err = NULL;
    PyObject *tuple = PyTuple_New((Py_ssize_t)nargs), *ret = NULL;
    for (size_t i = 0; tuple && i < nargs; i++) {
        PyObject *x = decode(ctx, &args[i]);
        if (!x) { Py_CLEAR(tuple); break; }
        PyTuple_SET_ITEM(tuple, i, x);
    }
    if (tuple) ret = PyObject_Call(h->impl, tuple, NULL);
    if (ret && nresults && h->result) {
        memset(results, 0, sizeof(val_t));
        if (encode(ctx, h->result, ret, results) < 0) Py_CLEAR(ret);
    }
    if (!ret) err = fail(h->on_error);
    Py_XDECREF(ret);
    Py_XDECREF(tuple);
    account(h->account, now() - t0);
    PyGILState_Release(g);
    return err;
}

static void *dtor_trampoline(void *data, void *ctx, uint32_t rep) {
    (void)ctx;
    hostfn_t *h = data;
    PyGILState_STATE g = PyGILState_Ensure();
    double t0 = now();
    void *err = NULL;
    PyObject *ret = PyObject_CallFunction(h->impl, "k", (unsigned long)rep);
    if (!ret) err = fail(h->on_error);
    Py_XDECREF(ret);
    account(h->account, now() - t0);
    PyGILState_Release(g);
    return err;
}

/* --- module functions -------------------------------------------------------------- */
static PyObject *py_configure(PyObject *self, PyObject *args) {
    PyObject *addrs, *trap;
    if (!PyArg_ParseTuple(args, "O!O", &PyDict_Type, &addrs, &trap)) return NULL;
#define GET(var, name) do { PyObject *a = PyDict_GetItemString(addrs, name); \
        if (!a) { PyErr_Format(PyExc_KeyError, "%s", name); return NULL; } \
        *(void **)&var = PyLong_AsVoidPtr(a); } while (0)
    GET(any_to_host, "wasmtime_component_resource_any_to_host");
    GET(host_rep, "wasmtime_component_resource_host_rep");
    GET(host_delete, "wasmtime_component_resource_host_delete");
    GET(host_new, "wasmtime_component_resource_host_new");
    GET(host_to_any, "wasmtime_component_resource_host_to_any");
    GET(byte_vec_new, "wasm_byte_vec_new");
    GET(vallist_new_uninit, "wasmtime_component_vallist_new_uninit");
    GET(valtuple_new_uninit, "wasmtime_component_valtuple_new_uninit");
    GET(valrecord_new_uninit, "wasmtime_component_valrecord_new_uninit");
    GET(val_new, "wasmtime_component_val_new");
    GET(error_new, "wasmtime_error_new");
    GET(error_delete, "wasmtime_error_delete");
    GET(func_call, "wasmtime_component_func_call");
    GET(post_return, "wasmtime_component_func_post_return");
#undef GET
    Py_XSETREF(GuestTrap, Py_NewRef(trap));
    Py_RETURN_NONE;
}

static hostfn_t *new_hostfn(PyObject *impl, PyObject *on_error, PyObject *acct) {
    hostfn_t *h = PyMem_Calloc(1, sizeof(hostfn_t));  /* lives as long as the process */
    if (!h) { PyErr_NoMemory(); return NULL; }
    h->impl = Py_NewRef(impl);
    h->on_error = Py_NewRef(on_error);
    h->account = Py_NewRef(acct);
    return h;
}

/* host_function(impl, result_spec | None, on_error, account) -> (callback, data) addresses */
static PyObject *py_host_function(PyObject *self, PyObject *args) {
    PyObject *impl, *spec, *on_error, *acct;
    if (!PyArg_ParseTuple(args, "OOOO", &impl, &spec, &on_error, &acct)) return NULL;
    hostfn_t *h = new_hostfn(impl, on_error, acct);
    if (!h) return NULL;
    if (spec != Py_None && !(h->result = compile_spec(spec))) return NULL;
    return Py_BuildValue("(NN)", PyLong_FromVoidPtr((void *)host_trampoline), PyLong_FromVoidPtr(h));
}

/* destructor(drop, on_error, account) -> (callback, data) addresses */
static PyObject *py_destructor(PyObject *self, PyObject *args) {
    PyObject *drop, *on_error, *acct;
    if (!PyArg_ParseTuple(args, "OOO", &drop, &on_error, &acct)) return NULL;
    hostfn_t *h = new_hostfn(drop, on_error, acct);
    if (!h) return NULL;
    return Py_BuildValue("(NN)", PyLong_FromVoidPtr((void *)dtor_trampoline), PyLong_FromVoidPtr(h));
}

/* call_handler(func, ctx, (rep, type), (rep, type)) -> error address (0: success)
 * Calls a function taking two own<host resource> parameters and returning nothing, then
 * post_return; the GIL is released while the guest runs. */
static PyObject *py_call_handler(PyObject *self, PyObject *args) {
    unsigned long long func, ctx;
    unsigned int rep0, ty0, rep1, ty1;
    if (!PyArg_ParseTuple(args, "KK(II)(II)", &func, &ctx, &rep0, &ty0, &rep1, &ty1)) return NULL;
    val_t params[2];
    memset(params, 0, sizeof params);
    PyObject *r0 = PyLong_FromUnsignedLong(rep0), *r1 = PyLong_FromUnsignedLong(rep1);
    int bad = put_resource((void *)ctx, true, r0, ty0, &params[0]) < 0
              || put_resource((void *)ctx, true, r1, ty1, &params[1]) < 0;
    Py_DECREF(r0); Py_DECREF(r1);
    if (bad) return NULL;
    void *err;
    Py_BEGIN_ALLOW_THREADS
    err = func_call((void *)func, (void *)ctx, params, 2, NULL, 0);
    if (!err) err = post_return((void *)func, (void *)ctx);
    Py_END_ALLOW_THREADS
    return PyLong_FromVoidPtr(err);
}

static PyMethodDef methods[] = {
    {"configure", py_configure, METH_VARARGS, "Hand over the wasmtime C API addresses and GuestTrap."},
    {"host_function", py_host_function, METH_VARARGS, "A host-function callback and its data."},
    {"destructor", py_destructor, METH_VARARGS, "A resource-destructor callback and its data."},
    {"call_handler", py_call_handler, METH_VARARGS, "Call handle(own, own) with the GIL released."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_hostcall", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__hostcall(void) {
    if (sizeof(val_t) != 32 || offsetof(val_t, of) != 8 || sizeof(entry_t) != 48) {
        PyErr_SetString(PyExc_ImportError, "unexpected wasmtime_component_val_t layout");
        return NULL;
    }
    return PyModule_Create(&module);
}
