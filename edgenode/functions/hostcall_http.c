/* wasi:http/types in C: fields, the incoming request and its body, the outgoing response
 * and its body, and the response outparam.
 *
 * Fields follow WASI 0.2: names must be tokens, values free of CR, LF and NUL, hop-by-hop
 * fields and `host` are forbidden, and fields handed to a request or response (or read
 * from an incoming one) are immutable.  A request's fields are built from its headers
 * in one pass when the guest first asks for them.  A body is taken once, its stream
 * once, and finished only after its stream was dropped: anything else traps the guest.
 * Outgoing requests (and the responses to them) are Python (http_host.py); they use
 * these fields, bodies and streams through the table.
 */
#include "hostcall.h"

#include <strings.h>
#include <structmember.h>

typedef struct {
    char *mem;                 /* name, then value, in one allocation */
    uint32_t nlen, vlen;
} field_t;

typedef struct {
    PyObject_HEAD
    field_t *items;
    Py_ssize_t n, cap;
    int immutable;
} FieldsObject;

static const char *const METHODS[] = {"get", "head", "post", "put", "delete", "connect", "options",
                                      "trace", "patch"};
static const char *const FORBIDDEN[] = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
                                        "proxy-authorization", "te", "transfer-encoding", "upgrade", "host",
                                        "http2-settings"};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* --- the Fields type -------------------------------------------------------------------------- */
static int fields_push(FieldsObject *f, const char *name, size_t nlen, const uint8_t *value, size_t vlen,
                       size_t stride) {
    if (f->n == f->cap) {
        Py_ssize_t cap = f->cap ? f->cap * 2 : 8;
        field_t *grown = PyMem_Realloc(f->items, cap * sizeof(field_t));
        if (!grown) { PyErr_NoMemory(); return -1; }
        f->items = grown;
        f->cap = cap;
    }
    char *mem = PyMem_Malloc(nlen + vlen + 1);
    if (!mem) { PyErr_NoMemory(); return -1; }
    memcpy(mem, name, nlen);
    if (stride == 1) { if (vlen) memcpy(mem + nlen, value, vlen); }
    else for (size_t i = 0; i < vlen; i++) mem[nlen + i] = (char)value[i * stride];
    f->items[f->n++] = (field_t){mem, (uint32_t)nlen, (uint32_t)vlen};
    return 0;
}

static void fields_remove(FieldsObject *f, const char *name, size_t nlen) {
    Py_ssize_t kept = 0;
    for (Py_ssize_t i = 0; i < f->n; i++) {
        field_t *x = &f->items[i];
        if (x->nlen == nlen && !strncasecmp(x->mem, name, nlen)) PyMem_Free(x->mem);
        else f->items[kept++] = *x;
    }
    f->n = kept;
}

static FieldsObject *fields_new(int immutable) {
    FieldsObject *f = PyObject_New(FieldsObject, &FieldsType);
    if (!f) return NULL;
    f->items = NULL;
    f->n = f->cap = 0;
    f->immutable = immutable;
    return f;
}

static FieldsObject *fields_copy(FieldsObject *src, int immutable) {
    FieldsObject *f = fields_new(immutable);
    for (Py_ssize_t i = 0; f && i < src->n; i++) {
        field_t *x = &src->items[i];
        if (fields_push(f, x->mem, x->nlen, (const uint8_t *)x->mem + x->nlen, x->vlen, 1) < 0) Py_CLEAR(f);
    }
    return f;
}

/* fields from a mapping's items() of str -> str (a request's headers, trailers) */
static FieldsObject *fields_from_mapping(PyObject *mapping) {
    FieldsObject *f = fields_new(1);
    PyObject *items = f ? PyObject_CallMethod(mapping, "items", NULL) : NULL;
    PyObject *it = items ? PyObject_GetIter(items) : NULL, *pair;
    Py_XDECREF(items);
    if (!it) { Py_XDECREF(f); return NULL; }
    while ((pair = PyIter_Next(it))) {
        PyObject *k = PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2 ? PyTuple_GET_ITEM(pair, 0) : NULL;
        PyObject *v = k ? PyTuple_GET_ITEM(pair, 1) : NULL;
        PyObject *vb = v ? PyUnicode_AsLatin1String(v) : NULL;
        if (!vb && v && PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            PyErr_Clear();
            vb = PyUnicode_AsUTF8String(v);
        }
        Py_ssize_t nlen;
        const char *name = vb ? PyUnicode_AsUTF8AndSize(k, &nlen) : NULL;
        int rc = name ? fields_push(f, name, (size_t)nlen, (const uint8_t *)PyBytes_AS_STRING(vb),
                                    (size_t)PyBytes_GET_SIZE(vb), 1) : -1;
        Py_XDECREF(vb);
        Py_DECREF(pair);
        if (rc < 0) break;
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) Py_CLEAR(f);
    return f;
}

/* [(str, bytes)] */
static PyObject *fields_items(FieldsObject *f, PyObject *unused) {
    PyObject *out = PyList_New(f->n);
    for (Py_ssize_t i = 0; out && i < f->n; i++) {
        field_t *x = &f->items[i];
        PyObject *pair = Py_BuildValue("(s#y#)", x->mem, (Py_ssize_t)x->nlen, x->mem + x->nlen, (Py_ssize_t)x->vlen);
        if (!pair) { Py_CLEAR(out); break; }
        PyList_SET_ITEM(out, i, pair);
    }
    return out;
}

/* the CIMultiDict of these fields (values decoded as latin-1, as the node's messages) */
static PyObject *fields_multidict(FieldsObject *f) {
    PyObject *pairs = PyList_New(f->n);
    for (Py_ssize_t i = 0; pairs && i < f->n; i++) {
        field_t *x = &f->items[i];
        PyObject *k = PyUnicode_DecodeLatin1(x->mem, x->nlen, NULL);
        PyObject *v = k ? PyUnicode_DecodeLatin1(x->mem + x->nlen, x->vlen, NULL) : NULL;
        PyObject *pair = v ? PyTuple_Pack(2, k, v) : NULL;
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (!pair) { Py_CLEAR(pairs); break; }
        PyList_SET_ITEM(pairs, i, pair);
    }
    if (!pairs) return NULL;
    PyObject *out = PyObject_CallOneArg(MultiDict, pairs);
    Py_DECREF(pairs);
    return out;
}

static PyObject *fields_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *names[] = {"items", "immutable", NULL};
    PyObject *items = NULL;
    int immutable = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|Op", names, &items, &immutable)) return NULL;
    FieldsObject *f = fields_new(immutable);
    PyObject *it = f && items ? PyObject_GetIter(items) : NULL, *pair;
    if (!it) return (PyObject *)f;
    while ((pair = PyIter_Next(it))) {
        const char *name, *value;
        Py_ssize_t nlen, vlen;
        int ok = PyArg_ParseTuple(pair, "s#y#", &name, &nlen, &value, &vlen);
        int rc = ok ? fields_push(f, name, (size_t)nlen, (const uint8_t *)value, (size_t)vlen, 1) : -1;
        Py_DECREF(pair);
        if (rc < 0) break;
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) Py_CLEAR(f);
    return (PyObject *)f;
}

static void fields_dealloc(FieldsObject *f) {
    for (Py_ssize_t i = 0; i < f->n; i++) PyMem_Free(f->items[i].mem);
    PyMem_Free(f->items);
    PyObject_Free(f);
}

static PyMethodDef fields_methods[] = {
    {"items", (PyCFunction)fields_items, METH_NOARGS, "[(name, value bytes)]"},
    {NULL},
};
static PyMemberDef fields_members[] = {
    {"immutable", T_INT, offsetof(FieldsObject, immutable), 0, NULL},
    {NULL},
};

PyTypeObject FieldsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.functions._hostcall.Fields",
    .tp_doc = "Fields(items=(), immutable=False): wasi:http fields, [(name, value bytes)].",
    .tp_basicsize = sizeof(FieldsObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = fields_tp_new,
    .tp_dealloc = (destructor)fields_dealloc,
    .tp_methods = fields_methods,
    .tp_members = fields_members,
};

/* --- checks and helpers ------------------------------------------------------------------------ */
static bool is_tchar(uint8_t ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
           || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* NULL: fine; else the header-error case name */
static const char *field_error(const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen,
                               size_t stride) {
    if (!nlen) return "invalid-syntax";
    for (size_t i = 0; i < nlen; i++) if (!is_tchar(name[i])) return "invalid-syntax";
    for (size_t i = 0; i < COUNT(FORBIDDEN); i++)
        if (strlen(FORBIDDEN[i]) == nlen && !strncasecmp(FORBIDDEN[i], (const char *)name, nlen)) return "forbidden";
    for (size_t i = 0; i < vlen; i++) {
        uint8_t ch = value[i * stride];
        if (ch == '\r' || ch == '\n' || ch == 0) return "invalid-syntax";
    }
    return NULL;
}

static void header_error(val_t *res, const char *name) {
    val_t e;
    ret_case(&e, name, NULL);
    ret_result(res, false, &e);
}

static FieldsObject *get_fields(CallObject *c, val_t *arg) {
    uint32_t rep;
    if (arg_rep(c, arg, &rep) < 0) return NULL;
    slot_t *s = table_get(c->table, rep, T_FIELDS);
    return s ? (FieldsObject *)s->obj : NULL;
}

static NativeObject *get(CallObject *c, val_t *arg, uint8_t type, uint32_t *rep_out) {
    uint32_t rep;
    if (arg_rep(c, arg, &rep) < 0) return NULL;
    slot_t *s = table_get(c->table, rep, type);
    if (rep_out) *rep_out = rep;
    return s ? (NativeObject *)s->obj : NULL;
}

static PyObject *take(CallObject *c, val_t *arg, uint8_t type) {
    uint32_t rep;
    return arg_rep(c, arg, &rep) < 0 ? NULL : table_take(c->table, rep, type);
}

static int own_fields(CallObject *c, val_t *out, FieldsObject *f, uint32_t parent) {
    return f ? ret_own_new(c, out, (PyObject *)f, T_FIELDS, parent) : -1;
}

/* --- fields ------------------------------------------------------------------------------------ */
static int f_new(CallObject *c, val_t *args, val_t *res) {
    return own_fields(c, res, fields_new(0), 0);
}

static int f_from_list(CallObject *c, val_t *args, val_t *res) {
    vallist_t *list = &args[0].of.list;
    for (size_t i = 0; i < list->size; i++) {
        val_t *pair = list->data[i].of.list.data;
        const char *bad = field_error(pair[0].of.string.data, pair[0].of.string.size,
                                      pair[1].of.list.size ? &pair[1].of.list.data[0].of.u8 : NULL,
                                      pair[1].of.list.size, sizeof(val_t));
        if (bad) { header_error(res, bad); return 0; }
    }
    FieldsObject *f = fields_new(0);
    for (size_t i = 0; f && i < list->size; i++) {
        val_t *pair = list->data[i].of.list.data;
        if (fields_push(f, (const char *)pair[0].of.string.data, pair[0].of.string.size,
                        pair[1].of.list.size ? &pair[1].of.list.data[0].of.u8 : NULL, pair[1].of.list.size,
                        sizeof(val_t)) < 0) Py_CLEAR(f);
    }
    val_t own;
    if (own_fields(c, &own, f, 0) < 0) return -1;
    ret_result(res, true, &own);
    return 0;
}

static bool name_is(field_t *x, name_t *name) {
    return x->nlen == name->size && !strncasecmp(x->mem, (const char *)name->data, name->size);
}

static int f_get(CallObject *c, val_t *args, val_t *res) {
    FieldsObject *f = get_fields(c, &args[0]);
    if (!f) return -1;
    name_t *name = &args[1].of.string;
    size_t count = 0;
    for (Py_ssize_t i = 0; i < f->n; i++) count += name_is(&f->items[i], name);
    ret_list(res, count);
    for (Py_ssize_t i = 0, j = 0; i < f->n; i++) {
        field_t *x = &f->items[i];
        if (name_is(x, name)) ret_bytes(&res->of.list.data[j++], (const uint8_t *)x->mem + x->nlen, x->vlen);
    }
    return 0;
}

static int f_has(CallObject *c, val_t *args, val_t *res) {
    FieldsObject *f = get_fields(c, &args[0]);
    if (!f) return -1;
    bool found = false;
    for (Py_ssize_t i = 0; !found && i < f->n; i++) found = name_is(&f->items[i], &args[1].of.string);
    ret_bool(res, found);
    return 0;
}

/* the fields if they may be edited with this name and value, else NULL with `res` set */
static FieldsObject *editable(CallObject *c, val_t *args, val_t *res, const uint8_t *value, size_t vlen,
                              size_t stride, bool *refused) {
    FieldsObject *f = get_fields(c, &args[0]);
    *refused = false;
    if (!f) return NULL;
    const char *bad = f->immutable ? "immutable"
                      : field_error(args[1].of.string.data, args[1].of.string.size, value, vlen, stride);
    if (bad) {
        header_error(res, bad);
        *refused = true;
        return NULL;
    }
    return f;
}

static int f_set(CallObject *c, val_t *args, val_t *res) {
    vallist_t *values = &args[2].of.list;
    FieldsObject *f = NULL;
    bool refused;
    for (size_t i = 0; i < (values->size ? values->size : 1); i++) {
        vallist_t *v = values->size ? &values->data[i].of.list : NULL;
        f = editable(c, args, res, v && v->size ? &v->data[0].of.u8 : NULL, v ? v->size : 0, sizeof(val_t), &refused);
        if (!f) return refused ? 0 : -1;
    }
    name_t *name = &args[1].of.string;
    fields_remove(f, (const char *)name->data, name->size);
    for (size_t i = 0; i < values->size; i++) {
        vallist_t *v = &values->data[i].of.list;
        if (fields_push(f, (const char *)name->data, name->size, v->size ? &v->data[0].of.u8 : NULL, v->size,
                        sizeof(val_t)) < 0) return -1;
    }
    ret_result(res, true, NULL);
    return 0;
}

static int f_delete(CallObject *c, val_t *args, val_t *res) {
    bool refused;
    FieldsObject *f = editable(c, args, res, NULL, 0, 1, &refused);
    if (!f) return refused ? 0 : -1;
    fields_remove(f, (const char *)args[1].of.string.data, args[1].of.string.size);
    ret_result(res, true, NULL);
    return 0;
}

static int f_append(CallObject *c, val_t *args, val_t *res) {
    vallist_t *v = &args[2].of.list;
    const uint8_t *value = v->size ? &v->data[0].of.u8 : NULL;
    bool refused;
    FieldsObject *f = editable(c, args, res, value, v->size, sizeof(val_t), &refused);
    if (!f) return refused ? 0 : -1;
    if (fields_push(f, (const char *)args[1].of.string.data, args[1].of.string.size, value, v->size,
                    sizeof(val_t)) < 0) return -1;
    ret_result(res, true, NULL);
    return 0;
}

static int f_entries(CallObject *c, val_t *args, val_t *res) {
    FieldsObject *f = get_fields(c, &args[0]);
    if (!f) return -1;
    ret_list(res, (size_t)f->n);
    for (Py_ssize_t i = 0; i < f->n; i++) {
        field_t *x = &f->items[i];
        val_t *pair = &res->of.list.data[i];
        ret_tuple(pair, 2);
        ret_string(&pair->of.list.data[0], x->mem, x->nlen);
        ret_bytes(&pair->of.list.data[1], (const uint8_t *)x->mem + x->nlen, x->vlen);
    }
    return 0;
}

static int f_clone(CallObject *c, val_t *args, val_t *res) {
    FieldsObject *f = get_fields(c, &args[0]);
    return f ? own_fields(c, res, fields_copy(f, 0), 0) : -1;
}

/* --- the incoming request and its body --------------------------------------------------------- */
/* a = the node's Request, b = its body Source, flags = consumed */
static int in_method(CallObject *c, val_t *args, val_t *res) {
    NativeObject *r = get(c, &args[0], T_INCOMING_REQUEST, NULL);
    PyObject *m = r ? PyObject_GetAttrString(r->a, "method") : NULL;
    if (!m) return -1;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(m, &n);
    int rc = -1;
    if (s) {
        rc = 0;
        const char *known = NULL;
        bool upper = true;
        for (Py_ssize_t i = 0; i < n; i++) upper &= !(s[i] >= 'a' && s[i] <= 'z');
        for (size_t i = 0; upper && i < COUNT(METHODS); i++)
            if (strlen(METHODS[i]) == (size_t)n && !strncasecmp(METHODS[i], s, n)) known = METHODS[i];
        if (known) ret_case(res, known, NULL);
        else {
            val_t other;
            ret_string(&other, s, (size_t)n);
            ret_case(res, "other", &other);
        }
    }
    Py_DECREF(m);
    return rc;
}

static int optional_string(val_t *res, PyObject *s) {
    if (s == Py_None) { ret_option(res, NULL); return 0; }
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(s, &n);
    if (!p) return -1;
    val_t v;
    ret_string(&v, p, (size_t)n);
    ret_option(res, &v);
    return 0;
}

static int in_path(CallObject *c, val_t *args, val_t *res) {
    NativeObject *r = get(c, &args[0], T_INCOMING_REQUEST, NULL);
    PyObject *target = r ? PyObject_GetAttrString(r->a, "target") : NULL;
    int rc = target ? optional_string(res, target) : -1;
    Py_XDECREF(target);
    return rc;
}

static int in_scheme(CallObject *c, val_t *args, val_t *res) {
    NativeObject *r = get(c, &args[0], T_INCOMING_REQUEST, NULL);
    PyObject *scheme = r ? PyObject_GetAttrString(r->a, "scheme") : NULL;
    if (!scheme) return -1;
    int https = PyUnicode_Check(scheme) && PyUnicode_CompareWithASCIIString(scheme, "https") == 0;
    Py_DECREF(scheme);
    val_t v;
    ret_case(&v, https ? "HTTPS" : "HTTP", NULL);
    ret_option(res, &v);
    return 0;
}

static int in_authority(CallObject *c, val_t *args, val_t *res) {
    NativeObject *r = get(c, &args[0], T_INCOMING_REQUEST, NULL);
    PyObject *headers = r ? PyObject_GetAttrString(r->a, "headers") : NULL;
    PyObject *host = headers ? PyObject_CallMethod(headers, "get", "s", "host") : NULL;
    Py_XDECREF(headers);
    int rc = host ? optional_string(res, host) : -1;
    Py_XDECREF(host);
    return rc;
}

static int in_headers(CallObject *c, val_t *args, val_t *res) {
    uint32_t rep;
    NativeObject *r = get(c, &args[0], T_INCOMING_REQUEST, &rep);
    PyObject *headers = r ? PyObject_GetAttrString(r->a, "headers") : NULL;
    FieldsObject *f = headers ? fields_from_mapping(headers) : NULL;
    Py_XDECREF(headers);
    return own_fields(c, res, f, rep);
}

/* consume / stream: hand out the child once, else err(()) */
static int child_once(CallObject *c, val_t *args, val_t *res, uint8_t type, PyObject *(*field)(NativeObject *),
                      uint8_t child_type) {
    uint32_t rep;
    NativeObject *o = get(c, &args[0], type, &rep);
    if (!o) return -1;
    if (o->flags) { ret_result(res, false, NULL); return 0; }
    NativeObject *child = native_new(field(o), NULL);
    val_t own;
    if (!child || ret_own_new(c, &own, (PyObject *)child, child_type, rep) < 0) return -1;
    o->flags = 1;
    ret_result(res, true, &own);
    return 0;
}

static PyObject *field_a(NativeObject *o) { return o->a; }
static PyObject *field_b(NativeObject *o) { return o->b; }

static int in_consume(CallObject *c, val_t *a, val_t *r) {
    return child_once(c, a, r, T_INCOMING_REQUEST, field_b, T_INCOMING_BODY);
}

static int body_stream(CallObject *c, val_t *a, val_t *r) {
    return child_once(c, a, r, T_INCOMING_BODY, field_a, T_INPUT_STREAM);
}

static int body_finish(CallObject *c, val_t *args, val_t *res) {
    NativeObject *body = (NativeObject *)take(c, &args[0], T_INCOMING_BODY);
    if (!body) return -1;
    NativeObject *ft = native_new(body->a, NULL);
    Py_DECREF(body);
    return ft ? ret_own_new(c, res, (PyObject *)ft, T_FUTURE_TRAILERS, 0) : -1;
}

static int trailers_subscribe(CallObject *c, val_t *args, val_t *res) {
    uint32_t rep;
    NativeObject *ft = get(c, &args[0], T_FUTURE_TRAILERS, &rep);
    NativeObject *p = ft ? native_new(ft->a, NULL) : NULL;
    if (!p) return -1;
    p->kind = P_SOURCE_EOF;
    return ret_own_new(c, res, (PyObject *)p, T_POLLABLE, rep);
}

/* option<result<result<option<own<fields>>, error-code>>> */
static int trailers_get(CallObject *c, val_t *args, val_t *res) {
    NativeObject *ft = get(c, &args[0], T_FUTURE_TRAILERS, NULL);
    if (!ft) return -1;
    SourceObject *src = (SourceObject *)ft->a;
    if (!src->eof) { ret_option(res, NULL); return 0; }
    val_t inner, outer;
    if (ft->flags) {
        ret_result(&outer, false, NULL);
        ret_option(res, &outer);
        return 0;
    }
    ft->flags = 1;
    if (src->error != Py_None) {
        val_t detail, code;
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(src->error, &n);
        if (!s) return -1;
        ret_string(&detail, s, (size_t)n);
        val_t some;
        ret_option(&some, &detail);
        ret_case(&code, "internal-error", &some);
        ret_result(&inner, false, &code);
    } else if (src->trailers == Py_None || PyObject_Length(src->trailers) == 0) {
        if (PyErr_Occurred()) return -1;
        val_t none;
        ret_option(&none, NULL);
        ret_result(&inner, true, &none);
    } else {
        val_t own, some;
        if (own_fields(c, &own, fields_from_mapping(src->trailers), 0) < 0) return -1;
        ret_option(&some, &own);
        ret_result(&inner, true, &some);
    }
    ret_result(&outer, true, &inner);
    ret_option(res, &outer);
    return 0;
}

/* --- the outgoing response and its body ---------------------------------------------------------- */
/* outgoing-response: a = its Fields, b = its body's Sink once asked for, status */
static int resp_new(CallObject *c, val_t *args, val_t *res) {
    FieldsObject *f = (FieldsObject *)take(c, &args[0], T_FIELDS);
    if (!f) return -1;
    f->immutable = 1;
    NativeObject *r = native_new((PyObject *)f, NULL);
    Py_DECREF(f);
    if (!r) return -1;
    r->status = 200;
    return ret_own_new(c, res, (PyObject *)r, T_OUTGOING_RESPONSE, 0);
}

static int resp_status(CallObject *c, val_t *args, val_t *res) {
    NativeObject *r = get(c, &args[0], T_OUTGOING_RESPONSE, NULL);
    if (!r) return -1;
    ret_u16(res, (uint16_t)r->status);
    return 0;
}

static int resp_set_status(CallObject *c, val_t *args, val_t *res) {
    NativeObject *r = get(c, &args[0], T_OUTGOING_RESPONSE, NULL);
    if (!r) return -1;
    uint16_t status = args[1].of.u16;
    bool ok = status >= 100 && status <= 999;
    if (ok) r->status = status;
    ret_result(res, ok, NULL);
    return 0;
}

static int resp_headers(CallObject *c, val_t *args, val_t *res) {
    uint32_t rep;
    NativeObject *r = get(c, &args[0], T_OUTGOING_RESPONSE, &rep);
    return r ? own_fields(c, res, fields_copy((FieldsObject *)r->a, 1), rep) : -1;
}

static int resp_body(CallObject *c, val_t *args, val_t *res) {
    NativeObject *r = get(c, &args[0], T_OUTGOING_RESPONSE, NULL);
    if (!r) return -1;
    if (r->b) { ret_result(res, false, NULL); return 0; }
    PyObject *sink = sink_new(c->max_body_bytes, c->body_relay);
    NativeObject *body = sink ? native_new(sink, NULL) : NULL;
    val_t own;
    if (!body || ret_own_new(c, &own, (PyObject *)body, T_OUTGOING_BODY, 0) < 0) {
        Py_XDECREF(sink);
        return -1;
    }
    r->b = sink;
    ret_result(res, true, &own);
    return 0;
}

/* outgoing-body: a = its Sink, flags = its stream was handed out */
static int body_write(CallObject *c, val_t *a, val_t *r) {
    return child_once(c, a, r, T_OUTGOING_BODY, field_a, T_OUTPUT_STREAM);
}

static int out_body_finish(CallObject *c, val_t *args, val_t *res) {
    uint32_t rep, trailers;
    if (arg_rep(c, &args[0], &rep) < 0 || arg_opt_rep(c, &args[1], &trailers) < 0) return -1;
    slot_t *s = table_get(c->table, rep, T_OUTGOING_BODY);
    if (!s) return -1;
    if (s->children) {
        PyErr_SetString(GuestTrap, "outgoing-body finished while its output-stream is still alive");
        return -1;
    }
    NativeObject *body = (NativeObject *)table_take(c->table, rep, T_OUTGOING_BODY);
    SinkObject *sink = (SinkObject *)body->a;
    int rc = 0;
    if (trailers) {
        FieldsObject *f = (FieldsObject *)table_take(c->table, trailers, T_FIELDS);
        PyObject *items = f ? fields_items(f, NULL) : NULL;
        Py_XDECREF(f);
        if (items) Py_XSETREF(sink->trailers, items);
        else rc = -1;
    }
    if (rc == 0) rc = sink_close(sink);
    if (rc == 0 && sink->on_close != Py_None) {
        c->python_calls++;
        PyObject *r = PyObject_CallOneArg(sink->on_close, (PyObject *)sink);
        rc = r ? 0 : -1;
        Py_XDECREF(r);
    }
    Py_DECREF(body);
    if (rc == 0) ret_result(res, true, NULL);
    return rc;
}

/* --- the response outparam ------------------------------------------------------------------------- */
static int outparam_set(CallObject *c, val_t *args, val_t *res) {
    PyObject *param = take(c, &args[0], T_RESPONSE_OUTPARAM);
    if (!param) return -1;
    Py_DECREF(param);
    val_t *result = &args[1];
    PyObject *head;
    if (result->of.result.is_ok) {
        NativeObject *r = (NativeObject *)take(c, result->of.result.val, T_OUTGOING_RESPONSE);
        if (!r) return -1;
        PyObject *headers = fields_multidict((FieldsObject *)r->a);
        head = headers ? Py_BuildValue("(iNOO)", r->status, headers, r->b ? r->b : Py_None, Py_None) : NULL;
        Py_DECREF(r);
    } else {
        val_t *code = result->of.result.val;
        val_t *detail = code ? code->of.variant.val : NULL;
        if (detail && detail->kind == K_OPTION) detail = detail->of.option;
        PyObject *error = code ? PyUnicode_FromStringAndSize((const char *)code->of.variant.disc.data,
                                                             (Py_ssize_t)code->of.variant.disc.size)
                               : PyUnicode_FromString("internal-error");
        if (error && detail && detail->kind == K_STRING) {
            PyObject *full = PyUnicode_FromFormat("%U: %.*s", error, (int)detail->of.string.size,
                                                  (const char *)detail->of.string.data);
            Py_SETREF(error, full);
        }
        PyObject *none = error ? PyObject_CallNoArgs(MultiDict) : NULL;
        head = none ? Py_BuildValue("(iNON)", 500, none, Py_None, error) : NULL;
        if (!none) Py_XDECREF(error);
    }
    if (!head) return -1;
    Py_XSETREF(c->head, head);
    if (c->on_head != Py_None) {
        c->python_calls++;
        PyObject *r = PyObject_CallOneArg(c->on_head, head);
        if (!r) return -1;
        Py_DECREF(r);
    }
    return 0;
}

static int error_code(CallObject *c, val_t *args, val_t *res) {
    ret_option(res, NULL);
    return 0;
}

const native_t http_natives[] = {
    {"wasi:http/types", "[constructor]fields", f_new},
    {"wasi:http/types", "[static]fields.from-list", f_from_list},
    {"wasi:http/types", "[method]fields.get", f_get},
    {"wasi:http/types", "[method]fields.has", f_has},
    {"wasi:http/types", "[method]fields.set", f_set},
    {"wasi:http/types", "[method]fields.delete", f_delete},
    {"wasi:http/types", "[method]fields.append", f_append},
    {"wasi:http/types", "[method]fields.entries", f_entries},
    {"wasi:http/types", "[method]fields.clone", f_clone},
    {"wasi:http/types", "[method]incoming-request.method", in_method},
    {"wasi:http/types", "[method]incoming-request.path-with-query", in_path},
    {"wasi:http/types", "[method]incoming-request.scheme", in_scheme},
    {"wasi:http/types", "[method]incoming-request.authority", in_authority},
    {"wasi:http/types", "[method]incoming-request.headers", in_headers},
    {"wasi:http/types", "[method]incoming-request.consume", in_consume},
    {"wasi:http/types", "[method]incoming-body.stream", body_stream},
    {"wasi:http/types", "[static]incoming-body.finish", body_finish},
    {"wasi:http/types", "[method]future-trailers.subscribe", trailers_subscribe},
    {"wasi:http/types", "[method]future-trailers.get", trailers_get},
    {"wasi:http/types", "[constructor]outgoing-response", resp_new},
    {"wasi:http/types", "[method]outgoing-response.status-code", resp_status},
    {"wasi:http/types", "[method]outgoing-response.set-status-code", resp_set_status},
    {"wasi:http/types", "[method]outgoing-response.headers", resp_headers},
    {"wasi:http/types", "[method]outgoing-response.body", resp_body},
    {"wasi:http/types", "[method]outgoing-body.write", body_write},
    {"wasi:http/types", "[static]outgoing-body.finish", out_body_finish},
    {"wasi:http/types", "[static]response-outparam.set", outparam_set},
    {"wasi:http/types", "http-error-code", error_code},
    {NULL, NULL, NULL},
};
