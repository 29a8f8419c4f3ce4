/* Host functions: the trampoline every import goes through, and the native answers to
 * the hot ones.
 *
 * define() registers an import with wasmtime's linker.  At call time the native
 * implementation (if the import has one) answers, or says HC_FALLBACK; then the Python
 * implementation runs with hostcalls.CURRENT set to the calling VM, its arguments as a
 * tuple of ints (i32 unsigned, i64 signed).  A MemoryFault from Python becomes the
 * import's fault code, a HostTrap (or any other exception, logged) a trap. */
#include <strings.h>

#include "hostcore.h"

enum {
    N_NONE = 0,
    N_GET_HEADER_MAP_VALUE,
    N_GET_HEADER_MAP_PAIRS,
    N_GET_HEADER_MAP_SIZE,
    N_ADD_HEADER_MAP_VALUE,
    N_REPLACE_HEADER_MAP_VALUE,
    N_REMOVE_HEADER_MAP_VALUE,
    N_SET_HEADER_MAP_PAIRS,
    N_GET_LOG_LEVEL,
    N_LOG,
    N_GET_BUFFER_BYTES,
    N_GET_BUFFER_STATUS,
    N_GET_PROPERTY,
    N_SET_PROPERTY,
    N_INCREMENT_METRIC,
    N_RECORD_METRIC,
    N_GET_METRIC,
};

static const char *NATIVE_NAMES[] = {
    "", "proxy_get_header_map_value", "proxy_get_header_map_pairs", "proxy_get_header_map_size",
    "proxy_add_header_map_value", "proxy_replace_header_map_value", "proxy_remove_header_map_value",
    "proxy_set_header_map_pairs", "proxy_get_log_level", "proxy_log", "proxy_get_buffer_bytes",
    "proxy_get_buffer_status", "proxy_get_property", "proxy_set_property", "proxy_increment_metric",
    "proxy_record_metric", "proxy_get_metric", NULL,
};

int hc_native_id(const char *name) {
    for (int i = 1; NATIVE_NAMES[i] != NULL; i++)
        if (strcmp(NATIVE_NAMES[i], name) == 0) return i;
    return N_NONE;
}

typedef struct {
    PyObject *py_fn;
    PyObject *name;
    char sig[32];
    int nparams;
    int has_result;
    int32_t fault;
    int native;
} HostFn;

static inline uint32_t U32(wt_val_raw *raw, int i) { return (uint32_t)raw[i].i32; }

/* --- guest memory helpers ------------------------------------------------------------- */

static int put_u32(Instance *inst, uint32_t ptr, uint32_t value) {
    uint8_t *p = hc_mem(inst, ptr, 4);
    if (p == NULL) return -1;
    memcpy(p, &value, 4);
    return 0;
}

/* Copy ``data`` into a guest allocation and write (pointer, size); as hostcalls._ret_bytes. */
static int64_t ret_bytes(Instance *inst, const char *data, size_t n, uint32_t ret_ptr, uint32_t ret_size,
                         wasm_trap_t **trap) {
    if (n == 0) {
        if (put_u32(inst, ret_ptr, 0) < 0 || put_u32(inst, ret_size, 0) < 0) return ST_INVALID_MEMORY_ACCESS;
        return ST_OK;
    }
    int64_t ptr = hc_guest_alloc(inst, (uint32_t)n, trap);
    if (ptr < 0) return 0;
    if (hc_mem(inst, ret_ptr, 4) == NULL || hc_mem(inst, ret_size, 4) == NULL) return ST_INVALID_MEMORY_ACCESS;
    uint8_t *dst = ptr ? hc_mem(inst, (uint64_t)ptr, n) : NULL;
    if (dst == NULL) return ST_INVALID_MEMORY_ACCESS;
    memcpy(dst, data, n);
    put_u32(inst, ret_ptr, (uint32_t)ptr);
    put_u32(inst, ret_size, (uint32_t)n);
    return ST_OK;
}

/* --- the effective stream's maps --------------------------------------------------------- */

/* 1 / 0 for a bool attribute of the effective context, -1 on error */
static int ctx_flag(PyObject *ctx, PyObject *name) {
    PyObject *v = PyObject_GetAttr(ctx, name);
    if (v == NULL) return -1;
    int r = PyObject_IsTrue(v);
    Py_DECREF(v);
    return r;
}

/* The stream whose map 0 / 2 a call may use now (borrowed); NULL with *status BAD_ARGUMENT
 * when it is not available in this phase (as hostcalls._map), HC_FALLBACK for the other maps. */
static StreamCore *map_stream(Instance *inst, uint32_t mtype, int write, int64_t *status) {
    *status = ST_BAD_ARGUMENT;
    if (mtype != 0 && mtype != 2) {
        *status = HC_FALLBACK;
        return NULL;
    }
    PyObject *ctx = inst->effective;
    if (!PyObject_TypeCheck(ctx, &StreamCoreType)) return NULL; /* none, or the root context */
    StreamCore *sc = (StreamCore *)ctx;
    int open = mtype == 0 ? sc->request_headers_open : sc->response_headers_open;
    if (!open && (write || !sc->in_log)) return NULL;
    PyObject *message = mtype == 0 ? sc->request : sc->response;
    return message == NULL || message == Py_None ? NULL : sc; /* no response yet */
}

/* The block of map 0 / 2 a call may use now (a new reference), made if the stream has none
 * yet; *status as map_stream's.  ``read``: serialised and current. */
static HeaderBlock *map_block(Instance *inst, uint32_t mtype, int read, int64_t *status) {
    StreamCore *sc = map_stream(inst, mtype, !read, status);
    if (sc == NULL) return NULL;
    HeaderBlock *b = hc_stream_block(sc, mtype == 2);
    if (b == NULL || (read && hc_block_fresh(b) < 0)) {
        *status = HC_FALLBACK; /* let the Python implementation meet (and report) the problem */
        PyErr_Clear();
        return NULL;
    }
    Py_INCREF(b);
    return b;
}

static int ascii_text(const char *p, size_t n) {
    int ascii = 1;
    for (size_t i = 0; i < n; i++) ascii &= (unsigned char)p[i] < 0x80;
    return ascii;
}

/* The first value of lower-case ``key`` in map 0 / 2 (as hc_block_value): a request whose map
 * no call serialised answers from itself, with no block made. */
static int map_value(StreamCore *sc, uint32_t mtype, const char *key, size_t klen, PyObject **owner,
                     const char **value, size_t *vlen) {
    if (mtype == 0 && sc->request_block == NULL && ascii_text(key, klen))
        return hc_request_value(sc->request, key, klen, owner, value, vlen);
    HeaderBlock *b = hc_stream_block(sc, mtype == 2);
    if (b == NULL) {
        *owner = NULL;
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "no message for the map");
        return -1;
    }
    Py_INCREF(b);
    int found = hc_block_value(b, key, klen, owner, value, vlen);
    Py_DECREF(b);
    return found;
}

static int64_t get_header_map_value(Instance *inst, wt_val_raw *raw, wasm_trap_t **trap) {
    int64_t status;
    uint32_t mtype = U32(raw, 0);
    StreamCore *sc = map_stream(inst, mtype, 0, &status);
    if (sc == NULL) return status;
    uint32_t klen = U32(raw, 2);
    uint8_t *key = hc_mem(inst, U32(raw, 1), klen);
    if (key == NULL) return ST_INVALID_MEMORY_ACCESS;
    char small[128];
    char *lower = klen <= sizeof small ? small : PyMem_Malloc(klen);
    if (lower == NULL) return HC_FALLBACK;
    for (uint32_t i = 0; i < klen; i++) {
        unsigned char c = key[i];
        lower[i] = (char)((c >= 'A' && c <= 'Z') ? (c | 0x20) : c);
    }
    size_t vlen = 0;
    const char *v = NULL;
    PyObject *owner = NULL;
    int found = map_value(sc, mtype, lower, klen, &owner, &v, &vlen);
    if (lower != small) PyMem_Free(lower);
    if (found < 0) { /* let the Python implementation meet (and report) the problem */
        PyErr_Clear();
        return HC_FALLBACK;
    }
    int64_t r;
    if (!found && !inst->v010) {
        r = ST_NOT_FOUND;
    } else {
        /* ret_bytes may run the guest allocator; ``owner`` keeps the value alive */
        r = ret_bytes(inst, found ? v : "", found ? vlen : 0, U32(raw, 3), U32(raw, 4), trap);
    }
    Py_XDECREF(owner);
    return r;
}

static int64_t get_header_map_pairs(Instance *inst, wt_val_raw *raw, wasm_trap_t **trap, int size_only) {
    int64_t status;
    HeaderBlock *b = map_block(inst, U32(raw, 0), 1, &status);
    if (b == NULL) return status;
    PyObject *wire = b->wire;
    Py_INCREF(wire);
    Py_DECREF(b);
    int64_t r;
    if (size_only) {
        r = put_u32(inst, U32(raw, 1), (uint32_t)PyBytes_GET_SIZE(wire)) < 0 ? ST_INVALID_MEMORY_ACCESS : ST_OK;
    } else {
        r = ret_bytes(inst, PyBytes_AS_STRING(wire), (size_t)PyBytes_GET_SIZE(wire), U32(raw, 1), U32(raw, 2),
                      trap);
    }
    Py_DECREF(wire);
    return r;
}

static int forbidden(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\r' || p[i] == '\n' || p[i] == 0) return 1;
    return 0;
}

/* The status of a map write whose Python call returned ``res`` (a new reference or
 * NULL): a ValueError is BAD_ARGUMENT, any other exception traps.  The stream's block of
 * the message (``b``; NULL: it made none) goes stale.  Another filter's block of the message
 * needs nothing: it was last checked before this guest call began (hc_serial moved since),
 * so its next read compares the message again. */
static int64_t write_status(HeaderBlock *b, PyObject *res, wasm_trap_t **trap, PyObject *fn_name) {
    int64_t r = ST_OK;
    if (res == NULL) {
        if (PyErr_ExceptionMatches(PyExc_ValueError)) {
            PyErr_Clear();
            r = ST_BAD_ARGUMENT;
        } else {
            *trap = hc_trap_from_pyerr(fn_name);
        }
    }
    Py_XDECREF(res);
    if (b != NULL) Py_CLEAR(b->wire); /* rebuilt on the next read */
    return r;
}

/* The response's pre-serialised head (``Response.wire_head``, a cache hit's) when it is
 * current for ``headers`` (a new reference), else NULL with no error set. */
static PyObject *current_wire(PyObject *message, PyObject *headers) {
    PyObject *wire = HC_SLOT(message, s_wire_head);
    if (wire == NULL) {
        PyErr_Clear();
        return NULL;
    }
    if (PyTuple_Check(wire) && PyTuple_GET_SIZE(wire) == 2 && PyBytes_Check(PyTuple_GET_ITEM(wire, 1)) &&
        PyLong_CheckExact(PyTuple_GET_ITEM(wire, 0))) {
        unsigned long long version, kept = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(wire, 0));
        if (!PyErr_Occurred() && hc_md_version(headers, &version) == 0 && version == kept) return wire;
        PyErr_Clear();
    }
    Py_DECREF(wire);
    return NULL;
}

/* Fields the front end writes itself (framing, Connection, X-Request-Id): a head that
 * holds one of them is serialised field by field, never from ``wire_head``. */
static int own_field(const char *k, uint32_t n) {
    static const char *names[] = {"connection", "content-length", "transfer-encoding", "x-request-id"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i]) == n && memcmp(names[i], k, n) == 0) return 1;
    return 0;
}

/* A field added to a response whose ``wire`` head was current: the head with the field
 * appended, as the front end would write it, stays current (a cache hit behind a filter
 * that adds a header is still written from bytes, not field by field). */
static void extend_wire(PyObject *message, PyObject *headers, PyObject *wire, const char *k,
                        uint32_t kl, const uint8_t *v, uint32_t vl) {
    PyObject *block = PyTuple_GET_ITEM(wire, 1);
    Py_ssize_t old = PyBytes_GET_SIZE(block);
    unsigned long long now;
    PyObject *version = hc_md_version(headers, &now) < 0 ? NULL : PyLong_FromUnsignedLongLong(now);
    PyObject *grown = version == NULL ? NULL : PyBytes_FromStringAndSize(NULL, old + kl + vl + 4);
    PyObject *pair = NULL;
    if (grown != NULL) {
        char *p = PyBytes_AS_STRING(grown);
        memcpy(p, PyBytes_AS_STRING(block), old);
        p += old;
        memcpy(p, k, kl);
        p += kl;
        memcpy(p, ": ", 2);
        memcpy(p + 2, v, vl);
        memcpy(p + 2 + vl, "\r\n", 2);
        pair = PyTuple_Pack(2, version, grown);
    }
    if (pair == NULL || HC_SLOT_SET(message, s_wire_head, pair) < 0) PyErr_Clear();
    Py_XDECREF(pair);
    Py_XDECREF(grown);
    Py_XDECREF(version);
}

/* ``n`` Latin-1 bytes as text (a new reference): the text this call site decoded last when
 * the bytes are the same (a filter writes the same names, often the same values, on every
 * stream), else decoded and kept. */
static PyObject *latin1_text(const char *p, uint32_t n, PyObject **last) {
    PyObject *t = *last;
    if (t != NULL && (uint32_t)PyUnicode_GET_LENGTH(t) == n && memcmp(PyUnicode_1BYTE_DATA(t), p, n) == 0)
        return Py_NewRef(t);
    t = PyUnicode_DecodeLatin1(p, n, NULL);
    if (t != NULL) Py_XSETREF(*last, Py_NewRef(t));
    return t;
}

/* add / replace / remove: an ordinary field on the message's multidict (no block needed), a
 * pseudo-header or the request's Host through the block's view (ValueError: BAD_ARGUMENT) */
static int64_t write_header(Instance *inst, wt_val_raw *raw, PyObject *method, int with_value,
                            wasm_trap_t **trap, PyObject *fn_name) {
    int64_t status;
    uint32_t mtype = U32(raw, 0);
    StreamCore *sc = map_stream(inst, mtype, 1, &status);
    if (sc == NULL) return status;
    int is_request = mtype == 0;
    PyObject *message = is_request ? sc->request : sc->response;
    uint32_t klen = U32(raw, 2), vlen = with_value ? U32(raw, 4) : 0;
    uint8_t *key = hc_mem(inst, U32(raw, 1), klen);
    uint8_t *value = with_value ? hc_mem(inst, U32(raw, 3), vlen) : (uint8_t *)"";
    if (key == NULL || value == NULL) return ST_INVALID_MEMORY_ACCESS;
    if (with_value && (klen == 0 || forbidden(key, klen) || forbidden(value, vlen))) return ST_BAD_ARGUMENT;
    /* an ordinary field goes straight to the message's multidict (lower-cased, as the
     * view stores it); pseudo-headers and the request's Host alias through the view */
    int direct = klen > 0 && key[0] != ':' && !(is_request && klen == 4 && strncasecmp((const char *)key, "host", 4) == 0);
    HeaderBlock *b = is_request ? (HeaderBlock *)sc->request_block : (HeaderBlock *)sc->response_block;
    if (!direct && (b = hc_stream_block(sc, !is_request)) == NULL) {
        PyErr_Clear();
        return HC_FALLBACK;
    }
    Py_XINCREF(b);
    Py_INCREF(message);
    char small[128];
    char *lower = !direct || klen <= sizeof small ? small : PyMem_Malloc(klen);
    if (direct && lower != NULL)
        for (uint32_t i = 0; i < klen; i++) {
            unsigned char c = key[i];
            lower[i] = (char)((c >= 'A' && c <= 'Z') ? (c | 0x20) : c);
        }
    static PyObject *last_key, *last_value;
    PyObject *k = lower == NULL ? NULL : latin1_text(direct ? lower : (const char *)key, klen, &last_key);
    PyObject *v = with_value ? latin1_text((const char *)value, vlen, &last_value) : NULL;
    PyObject *res = NULL;
    if (k != NULL && (!with_value || v != NULL)) {
        if (direct) {
            PyObject *headers = HC_SLOT(message, s_headers);
            if (headers != NULL) {
                if (method == s_add) {
                    PyObject *wire = is_request || own_field(lower, klen) ? NULL : current_wire(message, headers);
                    res = hc_md_add(headers, k, v) < 0 ? NULL : Py_NewRef(Py_None);
                    if (res != NULL && wire != NULL) extend_wire(message, headers, wire, lower, klen, value, vlen);
                    Py_XDECREF(wire);
                } else if (method == s_replace) {
                    res = PyObject_SetItem(headers, k, v) < 0 ? NULL : Py_NewRef(Py_None);
                } else {
                    res = PyObject_CallMethodObjArgs(headers, s_popall, k, Py_None, NULL);
                }
                Py_DECREF(headers);
            }
        } else {
            PyObject *view = hc_block_view(b);
            if (view != NULL)
                res = with_value ? PyObject_CallMethodObjArgs(view, method, k, v, NULL)
                                 : PyObject_CallMethodObjArgs(view, method, k, NULL);
        }
    }
    if (lower != small) PyMem_Free(lower);
    Py_XDECREF(k);
    Py_XDECREF(v);
    int64_t r = write_status(b, res, trap, fn_name);
    Py_XDECREF(b);
    Py_DECREF(message);
    return r;
}

/* proxy_set_header_map_pairs: decode (as abi.decode_map), then view.set_pairs */
static int64_t set_header_map_pairs(Instance *inst, wt_val_raw *raw, wasm_trap_t **trap, PyObject *fn_name) {
    int64_t status;
    HeaderBlock *b = map_block(inst, U32(raw, 0), 0, &status);
    if (b == NULL) return status;
    uint32_t size = U32(raw, 2);
    uint8_t *data = hc_mem(inst, U32(raw, 1), size);
    int64_t r = ST_OK;
    PyObject *pairs = NULL;
    if (data == NULL) {
        r = ST_INVALID_MEMORY_ACCESS;
        goto done;
    }
    pairs = PyList_New(0);
    if (pairs == NULL) {
        r = HC_FALLBACK;
        goto done;
    }
    if (size > 1 || (size == 1 && data[0] != 0)) {
        uint32_t n;
        if (size < 4) {
            r = ST_BAD_ARGUMENT;
            goto done;
        }
        memcpy(&n, data, 4);
        uint64_t pos = 4 + 8 * (uint64_t)n;
        if (pos > size) {
            r = ST_BAD_ARGUMENT;
            goto done;
        }
        for (uint32_t i = 0; i < n; i++) {
            uint32_t lens[2];
            memcpy(lens, data + 4 + 8 * (uint64_t)i, 8);
            uint64_t end = pos + lens[0] + lens[1] + 2;
            if (end > size) {
                r = ST_BAD_ARGUMENT;
                goto done;
            }
            const uint8_t *k = data + pos, *v = data + pos + lens[0] + 1;
            if (forbidden(k, lens[0]) || forbidden(v, lens[1])) {
                r = ST_BAD_ARGUMENT;
                goto done;
            }
            PyObject *pair = Py_BuildValue("(NN)", PyUnicode_DecodeLatin1((const char *)k, lens[0], NULL),
                                           PyUnicode_DecodeLatin1((const char *)v, lens[1], NULL));
            if (pair == NULL || PyList_Append(pairs, pair) < 0) {
                Py_XDECREF(pair);
                r = HC_FALLBACK;
                PyErr_Clear();
                goto done;
            }
            Py_DECREF(pair);
            pos = end;
        }
    }
    PyObject *view = hc_block_view(b);
    r = write_status(b, view ? PyObject_CallMethodOneArg(view, s_set_pairs, pairs) : NULL, trap, fn_name);
done:
    Py_XDECREF(pairs);
    Py_DECREF(b);
    return r;
}

/* buffers 0/1 (the bodies) during body callbacks; the rest in Python */
static int64_t body_buffer(Instance *inst, uint32_t btype, PyObject **out) {
    *out = NULL;
    if (btype > 1) return HC_FALLBACK;
    PyObject *ctx = inst->effective;
    if (ctx == Py_None) return ST_NOT_FOUND;
    int root = ctx_flag(ctx, s_is_root);
    if (root != 0) return root < 0 ? HC_FALLBACK : ST_NOT_FOUND;
    PyObject *buf = PyObject_GetAttr(ctx, btype == 0 ? s_request_body : s_response_body);
    if (buf == NULL) {
        PyErr_Clear();
        return HC_FALLBACK;
    }
    if (!PyByteArray_Check(buf) && !PyBytes_Check(buf)) {
        int none = buf == Py_None;
        Py_DECREF(buf);
        return none ? ST_NOT_FOUND : HC_FALLBACK;
    }
    *out = buf;
    return ST_OK;
}

/* a body buffer's bytes: a bytearray, or the message's bytes until a filter writes it */
static const char *buffer_data(PyObject *buf, size_t *len) {
    if (PyByteArray_Check(buf)) {
        *len = (size_t)PyByteArray_GET_SIZE(buf);
        return PyByteArray_AS_STRING(buf);
    }
    *len = (size_t)PyBytes_GET_SIZE(buf);
    return PyBytes_AS_STRING(buf);
}

static int64_t get_buffer_bytes(Instance *inst, wt_val_raw *raw, wasm_trap_t **trap) {
    PyObject *buf;
    int64_t r = body_buffer(inst, U32(raw, 0), &buf);
    if (buf == NULL) return r;
    size_t len, start = U32(raw, 1), want = U32(raw, 2);
    const char *data = buffer_data(buf, &len);
    if (start > len) {
        r = ST_BAD_ARGUMENT;
    } else {
        /* copied out first: the allocator may run Python that resizes the buffer */
        size_t n = len - start < want ? len - start : want;
        PyObject *copy = PyBytes_FromStringAndSize(data + start, (Py_ssize_t)n);
        r = copy ? ret_bytes(inst, PyBytes_AS_STRING(copy), n, U32(raw, 3), U32(raw, 4), trap) : HC_FALLBACK;
        Py_XDECREF(copy);
        PyErr_Clear();
    }
    Py_DECREF(buf);
    return r;
}

static int64_t get_buffer_status(Instance *inst, wt_val_raw *raw) {
    PyObject *buf;
    int64_t r = body_buffer(inst, U32(raw, 0), &buf);
    if (buf == NULL) return r;
    size_t len;
    buffer_data(buf, &len);
    Py_DECREF(buf);
    if (put_u32(inst, U32(raw, 1), (uint32_t)len) < 0 || put_u32(inst, U32(raw, 2), 0) < 0)
        return ST_INVALID_MEMORY_ACCESS;
    return ST_OK;
}

/* --- properties answered here: the common stream attributes ------------------------------ */

/* Read live from the exchange at each call (slot reads), so a filter's change to the
 * request (:path, Host) shows at once; values as properties.py's getters give them.
 * NATIVE_PROPERTIES (this order) tells properties.py which paths these are. */
enum {
    P_NONE = 0,
    P_REQUEST_PATH,
    P_REQUEST_URL_PATH,
    P_REQUEST_QUERY,
    P_REQUEST_HOST,
    P_REQUEST_SCHEME,
    P_REQUEST_METHOD,
    P_REQUEST_PROTOCOL,
    P_REQUEST_ID,
    P_SOURCE_ADDRESS,
    P_SOURCE_PORT,
    P_DESTINATION_ADDRESS,
    P_DESTINATION_PORT,
    P_COUNT,
};

static const char *PROPERTY_NAMES[P_COUNT] = {
    "", "request.path", "request.url_path", "request.query", "request.host", "request.scheme",
    "request.method", "request.protocol", "request.id", "source.address", "source.port",
    "destination.address", "destination.port",
};

PyObject *hc_native_property_names(void) {
    PyObject *t = PyTuple_New(P_COUNT - 1);
    for (int i = 1; t != NULL && i < P_COUNT; i++) {
        PyObject *name = PyUnicode_FromString(PROPERTY_NAMES[i]);
        if (name == NULL) Py_CLEAR(t);
        else PyTuple_SET_ITEM(t, i - 1, name);
    }
    return t;
}

typedef struct {
    PyObject *owner; /* holds ``data`` (a str), or NULL: ``data`` is ``buf`` */
    const char *data;
    Py_ssize_t len;
    char buf[160];
} PropValue;

/* ``text`` (a new reference; exact str only, as str(value).encode() would give it) as the value */
static int text_value(PyObject *text, PropValue *out) {
    if (text == NULL) return -1;
    if (!PyUnicode_CheckExact(text) || (out->data = PyUnicode_AsUTF8AndSize(text, &out->len)) == NULL) {
        Py_DECREF(text);
        return -1;
    }
    out->owner = text;
    return 0;
}

static int int_value(long long v, PropValue *out) { /* _enc(int): 8 bytes little-endian */
    for (int i = 0; i < 8; i++) out->buf[i] = (char)((unsigned long long)v >> (8 * i));
    out->data = out->buf;
    out->len = 8;
    return 0;
}

/* (host, port) of the exchange's peer ``which`` (client / local), borrowed: 1, or 0 if not a plain pair */
static int peer(PyObject *ex, PyObject *which, PyObject **host, long long *port) {
    PyObject *t = PyObject_GetAttr(ex, which);
    if (t == NULL) return 0;
    int ok = PyTuple_CheckExact(t) && PyTuple_GET_SIZE(t) >= 2 && PyUnicode_CheckExact(PyTuple_GET_ITEM(t, 0)) &&
             PyLong_CheckExact(PyTuple_GET_ITEM(t, 1));
    if (ok) {
        *host = PyTuple_GET_ITEM(t, 0);
        *port = PyLong_AsLongLong(PyTuple_GET_ITEM(t, 1));
        ok = !(*port == -1 && PyErr_Occurred());
    }
    Py_DECREF(t); /* the exchange holds the tuple, the tuple its items */
    return ok;
}

/* _addr(peer): "host:port", "[host]:port" for IPv6 */
static int address_value(PyObject *host, long long port, PropValue *out) {
    Py_ssize_t n;
    const char *h = PyUnicode_AsUTF8AndSize(host, &n);
    if (h == NULL || n > (Py_ssize_t)sizeof out->buf - 32) return -1;
    int v6 = memchr(h, ':', (size_t)n) != NULL;
    out->len = snprintf(out->buf, sizeof out->buf, v6 ? "[%.*s]:%lld" : "%.*s:%lld", (int)n, h, port);
    out->data = out->buf;
    return 0;
}

/* request.headers.get(name, default) (a new reference; ``name`` lower-case ASCII) */
static PyObject *request_header(PyObject *request, PyObject *name, PyObject *dflt) {
    PyObject *pairs = hc_raw_pairs(request);
    if (pairs != NULL) { /* a RawRequest: from its parsed bytes */
        Py_ssize_t kl;
        const char *k = PyUnicode_AsUTF8AndSize(name, &kl), *v;
        PyObject *owner = NULL;
        size_t vl;
        int r = k == NULL ? -1 : hc_pairs_get(pairs, k, (size_t)kl, &owner, &v, &vl);
        Py_DECREF(pairs);
        PyObject *out = r < 0 ? NULL : r ? PyUnicode_DecodeLatin1(v, (Py_ssize_t)vl, NULL) : Py_NewRef(dflt);
        Py_XDECREF(owner);
        return out;
    }
    if (PyErr_Occurred()) return NULL;
    PyObject *headers = PyObject_GetAttr(request, s_headers);
    if (headers == NULL) return NULL;
    PyObject *v = PyObject_CallMethodObjArgs(headers, s_get, name, dflt, NULL);
    Py_DECREF(headers);
    return v;
}

/* The value of attribute ``id`` for exchange ``ex``: 0 (``out`` set; release ``out->owner``),
 * or -1, not answered here (an exception may be set: the Python getter decides). */
static int native_value(int id, PyObject *ex, PropValue *out) {
    out->owner = NULL;
    PyObject *host;
    long long port;
    switch (id) {
    case P_SOURCE_ADDRESS:
    case P_DESTINATION_ADDRESS:
        return peer(ex, id == P_SOURCE_ADDRESS ? s_client : s_local, &host, &port) ? address_value(host, port, out)
                                                                                    : -1;
    case P_SOURCE_PORT:
    case P_DESTINATION_PORT:
        return peer(ex, id == P_SOURCE_PORT ? s_client : s_local, &host, &port) ? int_value(port, out) : -1;
    case P_REQUEST_ID: {
        PyObject *rid = PyObject_GetAttr(ex, s_request_id);
        if (rid == NULL || !PyUnicode_CheckExact(rid)) {
            Py_XDECREF(rid);
            return -1;
        }
        if (PyUnicode_GET_LENGTH(rid) > 0) return text_value(rid, out);
        Py_DECREF(rid);
        PyObject *req = PyObject_GetAttr(ex, s_request);
        rid = req ? request_header(req, s_x_request_id, Py_None) : NULL;
        Py_XDECREF(req);
        if (rid != Py_None) return text_value(rid, out);
        Py_DECREF(rid);
        PyObject *num = PyObject_GetAttr(ex, s_id);
        if (num == NULL || !PyLong_CheckExact(num)) {
            Py_XDECREF(num);
            return -1;
        }
        PyObject *text = PyObject_Str(num);
        Py_DECREF(num);
        return text_value(text, out);
    }
    }
    PyObject *req = PyObject_GetAttr(ex, s_request);
    if (req == NULL) return -1;
    PyObject *v = NULL;
    switch (id) {
    case P_REQUEST_PATH:
        v = PyObject_GetAttr(req, s_target);
        break;
    case P_REQUEST_URL_PATH:
        v = PyObject_GetAttr(req, s_path);
        break;
    case P_REQUEST_QUERY:
        v = PyObject_GetAttr(req, s_query);
        break;
    case P_REQUEST_SCHEME:
        v = PyObject_GetAttr(req, s_scheme);
        break;
    case P_REQUEST_METHOD:
        v = PyObject_GetAttr(req, s_method);
        break;
    case P_REQUEST_HOST:
        v = request_header(req, s_host, s_empty);
        break;
    case P_REQUEST_PROTOCOL: { /* f"HTTP/{version}" */
        PyObject *version = PyObject_GetAttr(req, s_version);
        Py_DECREF(req);
        if (version == NULL || !PyUnicode_CheckExact(version)) {
            Py_XDECREF(version);
            return -1;
        }
        Py_ssize_t n;
        const char *text = PyUnicode_AsUTF8AndSize(version, &n);
        int r = -1;
        if (text != NULL && n <= (Py_ssize_t)sizeof out->buf - 5) {
            memcpy(out->buf, "HTTP/", 5);
            memcpy(out->buf + 5, text, (size_t)n);
            out->data = out->buf;
            out->len = n + 5;
            r = 0;
        }
        Py_DECREF(version);
        return r;
    }
    }
    Py_DECREF(req);
    return text_value(v, out);
}

/* --- properties: paths resolved once (a bounded cache), values from properties.py -------- */

static PyObject *resolve_fn, *get_fn, *set_fn; /* set_property_functions */
/* the paths last resolved, by hash of their bytes: a filter's few paths found with no
 * allocation (the dict below holds every path resolved, bounded) */
#define RECENT 64
typedef struct {
    PyObject *key, *entry;
} RecentPath;
static RecentPath recent[RECENT];
/* raw path bytes -> (segments, exchange getter or None, exchange setter or None, native id) */
static PyObject *paths;
#define MAX_PATHS 1024

PyObject *hc_set_property_functions(PyObject *self, PyObject *args) {
    PyObject *resolve, *get, *set;
    if (!PyArg_ParseTuple(args, "OOO", &resolve, &get, &set)) return NULL;
    Py_INCREF(resolve);
    Py_XSETREF(resolve_fn, resolve);
    Py_INCREF(get);
    Py_XSETREF(get_fn, get);
    Py_INCREF(set);
    Py_XSETREF(set_fn, set);
    Py_XSETREF(paths, PyDict_New());
    if (paths == NULL) return NULL;
    for (int i = 0; i < RECENT; i++) {
        Py_CLEAR(recent[i].key);
        Py_CLEAR(recent[i].entry);
    }
    Py_RETURN_NONE;
}

/* The cached (segments, getter, setter, native id) entry for the guest's path bytes at (ptr, len), a new
 * reference; NULL: *status set (INVALID_MEMORY_ACCESS) or an exception. */
static PyObject *property_path(Instance *inst, uint32_t ptr, uint32_t len, int64_t *status) {
    uint8_t *raw = hc_mem(inst, ptr, len);
    if (raw == NULL) {
        *status = ST_INVALID_MEMORY_ACCESS;
        return NULL;
    }
    uint32_t h = 2166136261u; /* FNV-1a: the slot of the recent-paths cache */
    for (uint32_t i = 0; i < len; i++) h = (h ^ raw[i]) * 16777619u;
    RecentPath *slot = &recent[h % RECENT];
    if (slot->key != NULL && PyBytes_GET_SIZE(slot->key) == (Py_ssize_t)len &&
        memcmp(PyBytes_AS_STRING(slot->key), raw, len) == 0)
        return Py_NewRef(slot->entry);
    PyObject *key = PyBytes_FromStringAndSize((const char *)raw, len);
    if (key == NULL) return NULL;
    PyObject *entry = PyDict_GetItemWithError(paths, key);
    if (entry != NULL) {
        Py_INCREF(entry);
    } else if (!PyErr_Occurred() && (entry = PyObject_CallOneArg(resolve_fn, key)) != NULL) {
        if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 4 || !PyLong_CheckExact(PyTuple_GET_ITEM(entry, 3))) {
            PyErr_SetString(PyExc_TypeError, "property path resolver must return (segments, getter, setter, id)");
            Py_CLEAR(entry);
        } else {
            if (PyDict_GET_SIZE(paths) >= MAX_PATHS) PyDict_Clear(paths);
            if (PyDict_SetItem(paths, key, entry) < 0) Py_CLEAR(entry);
        }
    }
    if (entry != NULL) {
        Py_XSETREF(slot->key, Py_NewRef(key));
        Py_XSETREF(slot->entry, Py_NewRef(entry));
    }
    Py_DECREF(key);
    return entry;
}

/* The effective stream's exchange (a new reference), or NULL: no stream (no exception)
 * or an exception. */
static PyObject *stream_exchange(Instance *inst) {
    PyObject *ctx = inst->effective;
    if (ctx == Py_None) return NULL;
    int root = ctx_flag(ctx, s_is_root);
    if (root != 0) return NULL;
    PyObject *ex = PyObject_GetAttr(ctx, s_exchange);
    if (ex == Py_None) Py_CLEAR(ex);
    return ex;
}

/* An attribute computed from the exchange alone, by its getter: bytes / text / absent
 * answered here, NULL (no exception) for anything else (the generic path encodes it). */
static PyObject *exchange_value(Instance *inst, PyObject *getter) {
    PyObject *ex = stream_exchange(inst);
    if (ex == NULL) return NULL;
    PyObject *value = PyObject_CallOneArg(getter, ex);
    Py_DECREF(ex);
    if (value == NULL || value == Py_None || PyBytes_CheckExact(value)) return value;
    if (PyUnicode_CheckExact(value)) {
        PyObject *b = PyUnicode_AsUTF8String(value);
        Py_DECREF(value);
        return b;
    }
    Py_DECREF(value);
    return NULL;
}

static int64_t get_property(Instance *inst, wt_val_raw *raw, wasm_trap_t **trap, PyObject *fn_name) {
    if (get_fn == NULL || inst->owner == NULL) return HC_FALLBACK;
    int64_t status = ST_OK;
    PyObject *entry = property_path(inst, U32(raw, 0), U32(raw, 1), &status);
    if (entry == NULL) {
        if (status != ST_OK) return status;
        *trap = hc_trap_from_pyerr(fn_name);
        return 0;
    }
    long nid = PyLong_AsLong(PyTuple_GET_ITEM(entry, 3));
    if (nid > P_NONE && nid < P_COUNT) {
        PyObject *ex = stream_exchange(inst);
        if (ex == NULL && !PyErr_Occurred()) { /* a stream attribute: absent outside a stream */
            Py_DECREF(entry);
            return ST_NOT_FOUND;
        }
        PropValue v;
        int answered = ex != NULL && native_value((int)nid, ex, &v) == 0;
        Py_XDECREF(ex);
        if (answered) {
            Py_DECREF(entry);
            int64_t r = ret_bytes(inst, v.data, (size_t)v.len, U32(raw, 2), U32(raw, 3), trap);
            Py_XDECREF(v.owner);
            return r;
        }
        PyErr_Clear(); /* the Python getter meets (and reports) the problem */
    }
    PyObject *getter = PyTuple_GET_ITEM(entry, 1), *value = NULL;
    if (getter != Py_None) value = exchange_value(inst, getter);
    if (value == NULL && !PyErr_Occurred())
        value = PyObject_CallFunctionObjArgs(get_fn, inst->owner, PyTuple_GET_ITEM(entry, 0), NULL);
    hc_serial++; /* Python ran */
    Py_DECREF(entry);
    if (value == NULL) {
        *trap = hc_trap_from_pyerr(fn_name);
        return 0;
    }
    int64_t r;
    if (value == Py_None) {
        r = ST_NOT_FOUND;
    } else if (PyBytes_Check(value)) {
        r = ret_bytes(inst, PyBytes_AS_STRING(value), (size_t)PyBytes_GET_SIZE(value), U32(raw, 2), U32(raw, 3), trap);
    } else {
        r = HC_FALLBACK;
    }
    Py_DECREF(value);
    return r;
}

/* A value of the routing decision stored on the stream's exchange as properties.py's
 * set_property does (setter: (attribute or Exchange.props key, name, empty as None)), with no
 * Python call.  Status, or -1 with an exception. */
static int64_t exchange_store(Instance *inst, PyObject *setter, const char *data, uint32_t len) {
    PyObject *ex = stream_exchange(inst);
    if (ex == NULL) return PyErr_Occurred() ? -1 : ST_NOT_FOUND;
    PyObject *name = PyTuple_GET_ITEM(setter, 1), *target = NULL;
    PyObject *value = len == 0 && PyTuple_GET_ITEM(setter, 2) == Py_True
                          ? Py_NewRef(Py_None)
                          : PyUnicode_DecodeUTF8(data, len, "replace");
    int rc = -1;
    if (value != NULL) {
        if (PyTuple_GET_ITEM(setter, 0) == Py_True) rc = PyObject_SetAttr(ex, name, value);
        else if ((target = PyObject_GetAttr(ex, s_props)) != NULL) rc = PyObject_SetItem(target, name, value);
    }
    Py_XDECREF(target);
    Py_XDECREF(value);
    Py_DECREF(ex);
    return rc < 0 ? -1 : ST_OK;
}

static int64_t set_property(Instance *inst, wt_val_raw *raw, wasm_trap_t **trap, PyObject *fn_name) {
    if (set_fn == NULL || inst->owner == NULL) return HC_FALLBACK;
    uint8_t *data = hc_mem(inst, U32(raw, 2), U32(raw, 3));
    if (data == NULL) return ST_INVALID_MEMORY_ACCESS;
    int64_t status = ST_OK;
    PyObject *entry = property_path(inst, U32(raw, 0), U32(raw, 1), &status);
    if (entry == NULL) {
        if (status != ST_OK) return status;
        *trap = hc_trap_from_pyerr(fn_name);
        return 0;
    }
    PyObject *setter = PyTuple_GET_ITEM(entry, 2);
    if (setter != Py_None) {
        int64_t r = exchange_store(inst, setter, (const char *)data, U32(raw, 3));
        Py_DECREF(entry);
        if (r < 0) *trap = hc_trap_from_pyerr(fn_name);
        return r < 0 ? 0 : r;
    }
    PyObject *value = PyBytes_FromStringAndSize((const char *)data, U32(raw, 3));
    PyObject *res = value ? PyObject_CallFunctionObjArgs(set_fn, inst->owner, PyTuple_GET_ITEM(entry, 0), value, NULL) : NULL;
    hc_serial++;
    Py_DECREF(entry);
    Py_XDECREF(value);
    if (res == NULL) {
        *trap = hc_trap_from_pyerr(fn_name);
        return 0;
    }
    long r = PyLong_AsLong(res);
    Py_DECREF(res);
    return r;
}

/* --- metrics: the owner's filter's MetricTable ------------------------------------------ */

/* The table (borrowed), found once per instance through owner.plugin.metrics.table, with
 * ``owner.effects`` set as hostcalls._vm_effect does; NULL (no exception): Python answers. */
static MetricTable *metric_table(Instance *inst) {
    if (inst->owner == NULL) return NULL;
    if (inst->metrics == NULL) {
        PyObject *plugin = PyObject_GetAttr(inst->owner, s_plugin);
        PyObject *fm = plugin ? PyObject_GetAttr(plugin, s_metrics) : NULL;
        PyObject *table = fm ? PyObject_GetAttr(fm, s_table) : NULL;
        Py_XDECREF(plugin);
        Py_XDECREF(fm);
        if (table == NULL || !Py_IS_TYPE(table, &MetricTableType)) {
            Py_XDECREF(table);
            PyErr_Clear();
            return NULL;
        }
        inst->metrics = table;
    }
    if (PyObject_SetAttr(inst->owner, s_effects, Py_True) < 0) {
        PyErr_Clear();
        return NULL;
    }
    return (MetricTable *)inst->metrics;
}

static int64_t metric_call(int id, Instance *inst, wt_val_raw *raw) {
    MetricTable *t = metric_table(inst);
    if (t == NULL) return HC_FALLBACK;
    if (id == N_INCREMENT_METRIC) return hc_metric_increment(t, U32(raw, 0), raw[1].i64);
    if (id == N_RECORD_METRIC) return hc_metric_record(t, U32(raw, 0), (uint64_t)raw[1].i64);
    uint64_t value;
    int status = hc_metric_get(t, U32(raw, 0), &value);
    if (status != ST_OK) return status;
    uint8_t *p = hc_mem(inst, U32(raw, 1), 8);
    if (p == NULL) return ST_INVALID_MEMORY_ACCESS;
    memcpy(p, &value, 8);
    return ST_OK;
}

int64_t hc_native(int id, Instance *inst, wt_val_raw *raw, wasm_trap_t **trap, PyObject *fn_name) {
    switch (id) {
    case N_GET_HEADER_MAP_VALUE:
        return get_header_map_value(inst, raw, trap);
    case N_GET_HEADER_MAP_PAIRS:
        return get_header_map_pairs(inst, raw, trap, 0);
    case N_GET_HEADER_MAP_SIZE:
        return get_header_map_pairs(inst, raw, trap, 1);
    case N_ADD_HEADER_MAP_VALUE:
        return write_header(inst, raw, s_add, 1, trap, fn_name);
    case N_REPLACE_HEADER_MAP_VALUE:
        return write_header(inst, raw, s_replace, 1, trap, fn_name);
    case N_REMOVE_HEADER_MAP_VALUE:
        return write_header(inst, raw, s_remove, 0, trap, fn_name);
    case N_SET_HEADER_MAP_PAIRS:
        return set_header_map_pairs(inst, raw, trap, fn_name);
    case N_GET_LOG_LEVEL:
        return put_u32(inst, U32(raw, 0), (uint32_t)inst->log_level) < 0 ? ST_INVALID_MEMORY_ACCESS : ST_OK;
    case N_LOG: {
        /* below the filter's level and below warn (whose text becomes last_log): drop */
        uint32_t level = U32(raw, 0);
        if (level > 5 || (int)level >= inst->log_level || level >= 3) return HC_FALLBACK;
        return hc_mem(inst, U32(raw, 1), U32(raw, 2)) == NULL ? ST_INVALID_MEMORY_ACCESS : ST_OK;
    }
    case N_GET_BUFFER_BYTES:
        return get_buffer_bytes(inst, raw, trap);
    case N_GET_BUFFER_STATUS:
        return get_buffer_status(inst, raw);
    case N_GET_PROPERTY:
        return get_property(inst, raw, trap, fn_name);
    case N_SET_PROPERTY:
        return set_property(inst, raw, trap, fn_name);
    case N_INCREMENT_METRIC:
    case N_RECORD_METRIC:
    case N_GET_METRIC:
        return metric_call(id, inst, raw);
    }
    return HC_FALLBACK;
}

/* --- the trampoline ------------------------------------------------------------------------ */

static wasm_trap_t *call_python(HostFn *h, Instance *inst, wt_val_raw *raw) {
    PyObject *args = PyTuple_New(h->nparams);
    if (args == NULL) return hc_trap_from_pyerr(h->name);
    for (int i = 0; i < h->nparams; i++) {
        PyObject *v = h->sig[i] == 'I' ? PyLong_FromLongLong(raw[i].i64) : PyLong_FromUnsignedLong(U32(raw, i));
        if (v == NULL) {
            Py_DECREF(args);
            return hc_trap_from_pyerr(h->name);
        }
        PyTuple_SET_ITEM(args, i, v);
    }
    PyObject *prev = PyDict_GetItemWithError(hc_current_dict, s_CURRENT);
    Py_XINCREF(prev);
    PyObject *owner = inst->owner ? inst->owner : Py_None;
    PyDict_SetItem(hc_current_dict, s_CURRENT, owner);
    PyObject *res = PyObject_CallOneArg(h->py_fn, args);
    hc_serial++; /* Python ran: maps may have changed */
    Py_DECREF(args);
    PyDict_SetItem(hc_current_dict, s_CURRENT, prev ? prev : Py_None);
    Py_XDECREF(prev);
    if (res == NULL) {
        if (PyErr_ExceptionMatches(hc_MemoryFault)) {
            PyErr_Clear();
            if (h->has_result) raw[0].i32 = h->fault;
            return NULL;
        }
        return hc_trap_from_pyerr(h->name);
    }
    if (h->has_result) {
        long r = res == Py_None ? 0 : PyLong_AsLong(res);
        if (r == -1 && PyErr_Occurred()) {
            Py_DECREF(res);
            return hc_trap_from_pyerr(h->name);
        }
        raw[0].i32 = (int32_t)r;
    }
    Py_DECREF(res);
    return NULL;
}

static wasm_trap_t *trampoline(void *env, wasmtime_caller_t *caller, wt_val_raw *raw, size_t n) {
    HostFn *h = env;
    Instance *inst = hc_current;
    if (inst == NULL) return hc_trap_from_text("host function called outside a filter callback");
    if (h->native) {
        wasm_trap_t *trap = NULL;
        int64_t r = hc_native(h->native, inst, raw, &trap, h->name);
        if (trap != NULL) return trap;
        if (r != HC_FALLBACK) {
            if (h->has_result) raw[0].i32 = (int32_t)r;
            return NULL;
        }
        PyErr_Clear();
    }
    return call_python(h, inst, raw);
}

static void hostfn_free(void *env) {
    HostFn *h = env;
    PyGILState_STATE g = PyGILState_Ensure();
    Py_XDECREF(h->py_fn);
    Py_XDECREF(h->name);
    PyGILState_Release(g);
    PyMem_RawFree(h);
}

/* define(linker_ptr, module, name, functype_ptr, params, has_result, fault, fn, native) */
PyObject *hc_define(PyObject *self, PyObject *args) {
    unsigned long long linker, functype;
    const char *module, *name, *params;
    Py_ssize_t module_len, name_len;
    int has_result, fault, native;
    PyObject *fn;
    if (!PyArg_ParseTuple(args, "Ks#s#KspiOp", &linker, &module, &module_len, &name, &name_len, &functype,
                          &params, &has_result, &fault, &fn, &native))
        return NULL;
    size_t np = strlen(params);
    if (np >= sizeof(((HostFn *)0)->sig)) {
        PyErr_SetString(PyExc_ValueError, "too many parameters");
        return NULL;
    }
    HostFn *h = PyMem_RawCalloc(1, sizeof(HostFn));
    if (h == NULL) return PyErr_NoMemory();
    memcpy(h->sig, params, np);
    h->nparams = (int)np;
    h->has_result = has_result;
    h->fault = fault;
    h->native = native ? hc_native_id(name) : N_NONE;
    Py_INCREF(fn);
    h->py_fn = fn;
    h->name = PyUnicode_FromStringAndSize(name, name_len);
    if (h->name == NULL) {
        hostfn_free(h);
        return NULL;
    }
    wasmtime_error_t *err = WT.linker_define_func_unchecked(
        (wasmtime_linker_t *)(uintptr_t)linker, module, (size_t)module_len, name, (size_t)name_len,
        (const wasm_functype_t *)(uintptr_t)functype, trampoline, h, hostfn_free);
    if (err != NULL) {
        wt_byte_vec vec;
        WT.error_message(err, &vec);
        PyErr_Format(PyExc_RuntimeError, "cannot define %s.%s: %.*s", module, name, (int)vec.size, vec.data);
        WT.byte_vec_delete(&vec);
        WT.error_delete(err);
        return NULL;
    }
    return PyBool_FromLong(h->native != N_NONE);
}
