/* HeaderBlock: a message's header map serialised once in the Proxy-Wasm wire format.
 *
 * Built from the node's Request/Response (pseudo-headers first, names lower-cased,
 * names and values as their wire bytes: the node's header text is Latin-1) -- a request
 * whose fields multidict nothing made (RawRequest) from its parsed bytes --, shared by
 * every filter of the stream, and rebuilt only when the message changed (the header
 * multidict's version, or a new method/target/scheme/status object).  Reads (value by
 * name, all pairs, size) are answered from it -- except a request value read before
 * anything serialised the map, which comes from the message (hc_block_value); writes go
 * through the Python view (the single place the map semantics live) and mark it stale. */
#include "hostcore.h"

#include <structmember.h>

int hc_block_check(HeaderBlock *b);

typedef struct {
    const char *k, *v;
    Py_ssize_t kl, vl;
} Pair;

typedef struct {
    Pair *pairs;
    Py_ssize_t n, cap;
    PyObject *keep; /* list of temporary encodings */
} Pairs;

static int pairs_add(Pairs *p, const char *k, Py_ssize_t kl, const char *v, Py_ssize_t vl, Pair *stack) {
    if (p->n == p->cap) {
        Py_ssize_t cap = p->cap * 2;
        Pair *np = PyMem_Malloc(sizeof(Pair) * (size_t)cap);
        if (np == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(np, p->pairs, sizeof(Pair) * (size_t)p->n);
        if (p->pairs != stack) PyMem_Free(p->pairs);
        p->pairs = np;
        p->cap = cap;
    }
    p->pairs[p->n++] = (Pair){k, v, kl, vl};
    return 0;
}

/* The wire bytes of a str: its Latin-1 bytes, or UTF-8 for text beyond U+00FF
 * (abi.encode_text).  *enc: NULL when the bytes are the str's own, else the new bytes
 * object holding them (a new reference). */
static const char *wire_text(PyObject *s, PyObject **enc, Py_ssize_t *len) {
    *enc = NULL;
    if (PyUnicode_Check(s) && PyUnicode_KIND(s) == PyUnicode_1BYTE_KIND) {
        *len = PyUnicode_GET_LENGTH(s);
        return (const char *)PyUnicode_1BYTE_DATA(s);
    }
    PyObject *str = PyUnicode_Check(s) ? Py_NewRef(s) : PyObject_Str(s);
    if (str == NULL) return NULL;
    *enc = PyUnicode_AsEncodedString(str, "utf-8", "surrogateescape");
    Py_DECREF(str);
    if (*enc == NULL) return NULL;
    *len = PyBytes_GET_SIZE(*enc);
    return PyBytes_AS_STRING(*enc);
}

/* wire_text for a block being built: an encoding is kept alive by p->keep. */
static const char *text_bytes(Pairs *p, PyObject *s, Py_ssize_t *len) {
    PyObject *enc;
    const char *v = wire_text(s, &enc, len);
    if (v == NULL || enc == NULL) return v;
    if ((p->keep == NULL && (p->keep = PyList_New(0)) == NULL) || PyList_Append(p->keep, enc) < 0) v = NULL;
    Py_DECREF(enc);
    return v;
}

static int is_host(const char *k, Py_ssize_t kl) {
    return kl == 4 && (k[0] | 0x20) == 'h' && (k[1] | 0x20) == 'o' && (k[2] | 0x20) == 's' && (k[3] | 0x20) == 't';
}

static PyTypeObject *raw_request_type; /* messages.RawRequest (set_view_types) */

PyObject *hc_raw_pairs(PyObject *request) {
    if (Py_TYPE(request) != raw_request_type) return NULL;
    PyObject *raw = HC_SLOT(request, s_raw);
    if (raw == NULL) return NULL;
    PyObject *pairs = PyTuple_Check(raw) && PyTuple_GET_SIZE(raw) == 2 ? PyTuple_GET_ITEM(raw, 1) : NULL;
    if (pairs == NULL || !PyList_Check(pairs)) {
        Py_DECREF(raw);
        PyErr_SetString(PyExc_TypeError, "RawRequest.raw must be (version, list of pairs)");
        return NULL;
    }
    Py_INCREF(pairs);
    Py_DECREF(raw);
    return pairs;
}

/* pairs[i] as two byte strings, or -1 with an exception set. */
static int raw_pair(PyObject *pairs, Py_ssize_t i, const char **k, Py_ssize_t *kl, const char **v, Py_ssize_t *vl) {
    PyObject *item = PyList_GET_ITEM(pairs, i);
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(item, 0)) ||
        !PyBytes_Check(PyTuple_GET_ITEM(item, 1))) {
        PyErr_SetString(PyExc_TypeError, "RawRequest pairs must be (bytes, bytes)");
        return -1;
    }
    *k = PyBytes_AS_STRING(PyTuple_GET_ITEM(item, 0)), *kl = PyBytes_GET_SIZE(PyTuple_GET_ITEM(item, 0));
    *v = PyBytes_AS_STRING(PyTuple_GET_ITEM(item, 1)), *vl = PyBytes_GET_SIZE(PyTuple_GET_ITEM(item, 1));
    return 0;
}

/* Whether the n-byte name ``k``, its ASCII letters lower-cased, is the lower-case ``key``. */
static int lower_name_is(const char *k, const char *key, size_t n) {
    for (size_t j = 0; j < n; j++) {
        unsigned char c = (unsigned char)k[j];
        if ((c >= 'A' && c <= 'Z' ? c | 0x20 : c) != (unsigned char)key[j]) return 0;
    }
    return 1;
}

int hc_pairs_get(PyObject *pairs, const char *key, size_t klen, PyObject **owner, const char **value,
                 size_t *vlen) {
    *owner = NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
        const char *k, *v;
        Py_ssize_t kl, vl;
        if (raw_pair(pairs, i, &k, &kl, &v, &vl) < 0) return -1;
        if ((size_t)kl != klen || !lower_name_is(k, key, klen)) continue;
        *owner = Py_NewRef(PyTuple_GET_ITEM(PyList_GET_ITEM(pairs, i), 1));
        *value = v;
        *vlen = (size_t)vl;
        return 1;
    }
    return 0;
}

static void block_reset(HeaderBlock *b) {
    Py_CLEAR(b->wire);
    PyMem_Free(b->index);
    b->index = NULL;
    b->n = 0;
    Py_CLEAR(b->headers);
    Py_CLEAR(b->method);
    Py_CLEAR(b->target);
    Py_CLEAR(b->scheme);
}


/* (Re)serialise the map from the message. */
static int block_build(HeaderBlock *b) {
    PyObject *msg = b->message;
    /* a RawRequest: its parsed bytes (b->headers stays NULL: current until it is made) */
    PyObject *list = b->is_request ? hc_raw_pairs(msg) : NULL;
    if (list == NULL && PyErr_Occurred()) return -1;
    PyObject *headers = list != NULL ? NULL : PyObject_GetAttr(msg, s_headers);
    if (list == NULL && headers == NULL) return -1;
    Pair stack[48];
    Pairs p = {stack, 0, 48, NULL};
    PyObject *items = NULL, *method = NULL, *target = NULL, *scheme = NULL, *status = NULL;
    PyObject *wire = NULL;
    int rc = -1;
    char status_text[24];
    unsigned long long version = 0;
    if (list == NULL) {
        if (hc_md_version(headers, &version) < 0) goto done;
        items = PyObject_CallMethodNoArgs(headers, s_items);
        if (items == NULL) goto done;
        list = PySequence_List(items);
        if (list == NULL) goto done;
    }
    Py_ssize_t count = PyList_GET_SIZE(list);
    const char *k, *v;
    Py_ssize_t kl, vl;
    Py_ssize_t authority = -1;
    if (b->is_request) {
        method = PyObject_GetAttr(msg, s_method);
        target = method ? PyObject_GetAttr(msg, s_target) : NULL;
        scheme = target ? PyObject_GetAttr(msg, s_scheme) : NULL;
        if (scheme == NULL) goto done;
        if ((v = text_bytes(&p, method, &vl)) == NULL || pairs_add(&p, ":method", 7, v, vl, stack) < 0) goto done;
        if ((v = text_bytes(&p, target, &vl)) == NULL || pairs_add(&p, ":path", 5, v, vl, stack) < 0) goto done;
        authority = p.n;
        if (pairs_add(&p, ":authority", 10, "", 0, stack) < 0) goto done;
        if ((v = text_bytes(&p, scheme, &vl)) == NULL || pairs_add(&p, ":scheme", 7, v, vl, stack) < 0) goto done;
    } else {
        status = PyObject_GetAttr(msg, s_status);
        if (status == NULL) goto done;
        b->status = PyLong_AsLong(status);
        if (b->status == -1 && PyErr_Occurred()) goto done;
        int len = snprintf(status_text, sizeof status_text, "%ld", b->status);
        if (pairs_add(&p, ":status", 7, status_text, len, stack) < 0) goto done;
    }
    int have_host = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (headers == NULL) {
            if (raw_pair(list, i, &k, &kl, &v, &vl) < 0) goto done;
        } else {
            PyObject *item = PyList_GET_ITEM(list, i);
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
                PyErr_SetString(PyExc_TypeError, "headers.items() must yield pairs");
                goto done;
            }
            if ((k = text_bytes(&p, PyTuple_GET_ITEM(item, 0), &kl)) == NULL) goto done;
            if ((v = text_bytes(&p, PyTuple_GET_ITEM(item, 1), &vl)) == NULL) goto done;
        }
        if (b->is_request && is_host(k, kl)) {
            if (!have_host) p.pairs[authority].v = v, p.pairs[authority].vl = vl;
            have_host = 1;
            continue;
        }
        if (pairs_add(&p, k, kl, v, vl, stack) < 0) goto done;
    }
    Py_ssize_t size = 4 + 8 * p.n;
    for (Py_ssize_t i = 0; i < p.n; i++) size += p.pairs[i].kl + p.pairs[i].vl + 2;
    wire = PyBytes_FromStringAndSize(NULL, size);
    uint32_t *index = PyMem_Malloc(sizeof(uint32_t) * 4 * (size_t)(p.n ? p.n : 1));
    if (wire == NULL || index == NULL) {
        PyMem_Free(index);
        if (wire != NULL) PyErr_NoMemory();
        goto done;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(wire);
    uint32_t head[1] = {(uint32_t)p.n};
    memcpy(out, head, 4);
    unsigned char *data = out + 4 + 8 * p.n;
    for (Py_ssize_t i = 0; i < p.n; i++) {
        Pair *q = &p.pairs[i];
        uint32_t lens[2] = {(uint32_t)q->kl, (uint32_t)q->vl};
        memcpy(out + 4 + 8 * i, lens, 8);
        index[4 * i] = (uint32_t)(data - out);
        index[4 * i + 1] = (uint32_t)q->kl;
        for (Py_ssize_t j = 0; j < q->kl; j++) {
            unsigned char c = (unsigned char)q->k[j];
            *data++ = (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
        }
        *data++ = 0;
        index[4 * i + 2] = (uint32_t)(data - out);
        index[4 * i + 3] = (uint32_t)q->vl;
        memcpy(data, q->v, (size_t)q->vl);
        data += q->vl;
        *data++ = 0;
    }
    block_reset(b);
    b->wire = wire;
    wire = NULL;
    b->index = index;
    b->n = p.n;
    b->headers = headers;
    headers = NULL;
    b->version = version;
    b->method = method, b->target = target, b->scheme = scheme;
    method = target = scheme = NULL;
    rc = 0;
done:
    if (p.pairs != stack) PyMem_Free(p.pairs);
    Py_XDECREF(p.keep);
    Py_XDECREF(items);
    Py_XDECREF(list);
    Py_XDECREF(headers);
    Py_XDECREF(method);
    Py_XDECREF(target);
    Py_XDECREF(scheme);
    Py_XDECREF(status);
    Py_XDECREF(wire);
    return rc;
}

static int same_attr(PyObject *msg, PyObject *name, PyObject *have) {
    PyObject *now = PyObject_GetAttr(msg, name);
    if (now == NULL) return -1;
    int same = now == have;
    Py_DECREF(now);
    return same;
}

/* Make the serialisation current: 0, or -1 with an exception set. */
int hc_block_fresh(HeaderBlock *b) {
    if (b->wire != NULL && b->checked == hc_serial) return 0;
    int rc = hc_block_check(b);
    if (rc == 0) b->checked = hc_serial;
    return rc;
}

int hc_block_check(HeaderBlock *b) {
    if (b->wire == NULL) return block_build(b);
    PyObject *msg = b->message;
    /* built from a RawRequest's bytes: current while its fields are not made */
    int same = b->headers == NULL ? Py_TYPE(msg) == raw_request_type : same_attr(msg, s_headers, b->headers);
    if (same == 1 && b->headers != NULL) {
        unsigned long long version;
        if (hc_md_version(b->headers, &version) < 0) return -1;
        same = version == b->version;
    }
    if (same == 1 && b->is_request) {
        same = same_attr(msg, s_method, b->method);
        if (same == 1) same = same_attr(msg, s_target, b->target);
        if (same == 1) same = same_attr(msg, s_scheme, b->scheme);
    } else if (same == 1) {
        PyObject *status = PyObject_GetAttr(msg, s_status);
        if (status == NULL) return -1;
        long code = PyLong_AsLong(status);
        Py_DECREF(status);
        if (code == -1 && PyErr_Occurred()) return -1;
        same = code == b->status;
    }
    if (same < 0) return -1;
    return same ? 0 : block_build(b);
}

/* The first value of ``key`` (lower-case bytes) in a fresh block, or NULL. */
const char *hc_block_lookup(HeaderBlock *b, const char *key, size_t klen, size_t *vlen) {
    if (b->is_request && klen == 4 && memcmp(key, "host", 4) == 0) key = ":authority", klen = 10;
    const char *base = PyBytes_AS_STRING(b->wire);
    for (Py_ssize_t i = 0; i < b->n; i++) {
        const uint32_t *e = &b->index[4 * i];
        if (e[1] == klen && memcmp(base + e[0], key, klen) == 0) {
            *vlen = e[3];
            return base + e[2];
        }
    }
    return NULL;
}

/* wire_text for one value handed out: *owner holds the bytes (a new reference). */
static const char *value_bytes(PyObject *s, PyObject **owner, Py_ssize_t *len) {
    const char *v = wire_text(s, owner, len);
    if (v != NULL && *owner == NULL) *owner = Py_NewRef(s);
    return v;
}

/* The first value of ``key`` (lower-case bytes) as a serialised block would answer it:
 * 1 and *value (held by *owner, a new reference), 0 not found, -1 with an exception set.
 * A request block that is not serialised yet is not built for it: the field comes from
 * the message itself (a filter that reads a few fields does not pay for the whole map). */
int hc_block_value(HeaderBlock *b, const char *key, size_t klen, PyObject **owner, const char **value,
                   size_t *vlen) {
    *owner = NULL;
    int ascii = 1;
    for (size_t i = 0; i < klen; i++) ascii &= (unsigned char)key[i] < 0x80;
    if (b->wire != NULL || !b->is_request || !ascii) { /* serialised already, or a response */
        if (hc_block_fresh(b) < 0) return -1;
        *value = hc_block_lookup(b, key, klen, vlen);
        if (*value == NULL) return 0;
        *owner = Py_NewRef(b->wire);
        return 1;
    }
    return hc_request_value(b->message, key, klen, owner, value, vlen);
}

int hc_request_value(PyObject *msg, const char *key, size_t klen, PyObject **owner, const char **value,
                     size_t *vlen) {
    *owner = NULL;
    PyObject *found = NULL;
    PyObject *attr = klen == 7 && memcmp(key, ":method", 7) == 0   ? s_method
                     : klen == 5 && memcmp(key, ":path", 5) == 0   ? s_target
                     : klen == 7 && memcmp(key, ":scheme", 7) == 0 ? s_scheme
                                                                   : NULL;
    if (attr != NULL) {
        found = PyObject_GetAttr(msg, attr);
    } else {
        /* "host" and ":authority": the first Host field, "" without one */
        int host = is_host(key, (Py_ssize_t)klen) || (klen == 10 && memcmp(key, ":authority", 10) == 0);
        PyObject *pairs = hc_raw_pairs(msg);
        if (pairs != NULL) { /* a RawRequest: from its parsed bytes */
            int r = host ? hc_pairs_get(pairs, "host", 4, owner, value, vlen) : hc_pairs_get(pairs, key, klen, owner, value, vlen);
            Py_DECREF(pairs);
            if (r == 0 && host) {
                *owner = Py_NewRef(Py_None);
                *value = "";
                *vlen = 0;
                return 1;
            }
            return r;
        }
        if (PyErr_Occurred()) return -1;
        PyObject *headers = PyObject_GetAttr(msg, s_headers);
        PyObject *name = headers == NULL ? NULL
                         : host ? Py_NewRef(s_host) : PyUnicode_DecodeLatin1(key, (Py_ssize_t)klen, NULL);
        found = name == NULL ? NULL : PyObject_CallMethodOneArg(headers, s_get, name);
        Py_XDECREF(name);
        Py_XDECREF(headers);
        if (found == Py_None) {
            Py_DECREF(found);
            if (!host) return 0;
            found = PyUnicode_FromStringAndSize("", 0);
        }
    }
    if (found == NULL) return -1;
    Py_ssize_t n = 0;
    *value = value_bytes(found, owner, &n);
    Py_DECREF(found);
    if (*value == NULL) return -1;
    *vlen = (size_t)n;
    return 1;
}

/* --- Python interface ------------------------------------------------------------------- */

static PyObject *view_types[2]; /* ResponseHeaders, RequestHeaders (set_view_types) */

/* The view writes go through, made on first use (most streams never write a map). */
PyObject *hc_block_view(HeaderBlock *b) {
    if (b->view == NULL) {
        PyObject *cls = view_types[b->is_request ? 1 : 0];
        if (cls == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "_hostcore.set_view_types() first");
            return NULL;
        }
        b->view = PyObject_CallOneArg(cls, b->message);
    }
    return b->view;
}

PyObject *hc_set_view_types(PyObject *self, PyObject *args) {
    PyObject *request, *response, *raw;
    if (!PyArg_ParseTuple(args, "OOO!", &request, &response, &PyType_Type, &raw)) return NULL;
    Py_INCREF(raw);
    Py_XSETREF(raw_request_type, (PyTypeObject *)raw);
    Py_INCREF(request);
    Py_XSETREF(view_types[1], request);
    Py_INCREF(response);
    Py_XSETREF(view_types[0], response);
    Py_RETURN_NONE;
}

static int HeaderBlock_init(HeaderBlock *self, PyObject *args, PyObject *kwds) {
    PyObject *message;
    int is_request;
    if (!PyArg_ParseTuple(args, "Op", &message, &is_request)) return -1;
    Py_CLEAR(self->view);
    Py_INCREF(message);
    Py_XSETREF(self->message, message);
    self->is_request = is_request;
    block_reset(self);
    return 0;
}

/* HeaderBlock(message, is_request) without the call through the type (stream.c). */
PyObject *hc_block_new(PyObject *message, int is_request) {
    HeaderBlock *b = (HeaderBlock *)HeaderBlockType.tp_alloc(&HeaderBlockType, 0);
    if (b == NULL) return NULL;
    b->message = Py_NewRef(message);
    b->is_request = is_request;
    return (PyObject *)b;
}

static PyObject *HeaderBlock_wire(HeaderBlock *self, PyObject *unused) {
    if (hc_block_fresh(self) < 0) return NULL;
    Py_INCREF(self->wire);
    return self->wire;
}

static PyObject *HeaderBlock_get(HeaderBlock *self, PyObject *arg) {
    char *key;
    Py_ssize_t klen;
    if (PyBytes_AsStringAndSize(arg, &key, &klen) < 0 || hc_block_fresh(self) < 0) return NULL;
    size_t vlen;
    const char *v = hc_block_lookup(self, key, (size_t)klen, &vlen);
    if (v == NULL) Py_RETURN_NONE;
    return PyBytes_FromStringAndSize(v, (Py_ssize_t)vlen);
}

static PyObject *HeaderBlock_invalidate(HeaderBlock *self, PyObject *unused) {
    Py_CLEAR(self->wire);
    Py_RETURN_NONE;
}

static int HeaderBlock_traverse(HeaderBlock *self, visitproc visit, void *arg) {
    Py_VISIT(self->view);
    Py_VISIT(self->message);
    Py_VISIT(self->headers);
    return 0;
}

static int HeaderBlock_clear(HeaderBlock *self) {
    Py_CLEAR(self->view);
    Py_CLEAR(self->message);
    block_reset(self);
    return 0;
}

static void HeaderBlock_dealloc(HeaderBlock *self) {
    PyObject_GC_UnTrack(self);
    HeaderBlock_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef HeaderBlock_methods[] = {
    {"wire", (PyCFunction)HeaderBlock_wire, METH_NOARGS, "the map in the Proxy-Wasm format (current)"},
    {"get", (PyCFunction)HeaderBlock_get, METH_O, "first value of a lower-case name, or None"},
    {"invalidate", (PyCFunction)HeaderBlock_invalidate, METH_NOARGS, "rebuild on the next read"},
    {NULL},
};

static PyObject *HeaderBlock_get_view(HeaderBlock *self, void *closure) {
    PyObject *view = hc_block_view(self);
    Py_XINCREF(view);
    return view;
}

static PyGetSetDef HeaderBlock_getset[] = {
    {"view", (getter)HeaderBlock_get_view, NULL, "the map's view, which writes go through", NULL},
    {NULL},
};

static PyMemberDef HeaderBlock_members[] = {
    {"message", T_OBJECT, offsetof(HeaderBlock, message), READONLY, "the Request or Response"},
    {NULL},
};

PyTypeObject HeaderBlockType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgenode.wasm._hostcore.HeaderBlock",
    .tp_basicsize = sizeof(HeaderBlock),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "HeaderBlock(message, is_request): a header map serialised once per change",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)HeaderBlock_init,
    .tp_dealloc = (destructor)HeaderBlock_dealloc,
    .tp_traverse = (traverseproc)HeaderBlock_traverse,
    .tp_clear = (inquiry)HeaderBlock_clear,
    .tp_methods = HeaderBlock_methods,
    .tp_members = HeaderBlock_members,
    .tp_getset = HeaderBlock_getset,
};
