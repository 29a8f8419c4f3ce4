/* The cache key and the absent key's read in C (cache/key.py, cache/lmdb_store.py).
 *
 * A miss builds its key twice (the fast path's ``_fresh`` and the stage's ``handle``)
 * and reads the store for it: in Python that was ~15 frames (the key's ``for_parts``,
 * ``url``, ``query``, ``host``; ``lookup_lazy``, ``_variants``, ``_load``, ``_h``,
 * ``_remember_absent``, ``lookup``).  Here each is one C call:
 *
 * ``KeyCore(ignore, whitelist, sort, for_parts, for_request)`` builds the key of an
 * origin-form target (``KeyBuilder.for_parts`` / ``for_request`` without ``[cache.key]
 * headers``: the key is the URL); an absolute-form target goes to the Python methods
 * given, which stay the reference (tests/cache/test_key_native.py holds the two equal).
 *
 * ``Hasher(memos, kept, reference, blake2b)`` is ``lmdb_store._h`` (a key's, variant's or
 * tag's BLAKE2b through the module's memo; hashlib makes the digest): a miss hashes its
 * key, variant and tags.
 *
 * ``Reader(store, lookup, lookup_lazy, hasher, absent_kept, error)`` answers ``SharedStore.lookup_lazy`` for a key neither kept hot nor queued
 * when the store holds no row of the key's hash (its hash, a read transaction, a
 * cursor's ``set_range``, the absent note: py-lmdb's objects called through the C API),
 * and ``SharedStore.lookup`` for a key a single-process node already read absent.  With
 * other processes the note answers only the one lookup that follows in the same flush
 * epoch (the stage's, after the fast path's read): collapsing's lookup after its lease
 * reads the store again, so a key another worker stored meanwhile is found there, as
 * before (the request was a miss when it was read).
 * Anything else (a kept or queued key, a row found, a read that failed) is the Python
 * methods' (``lookup``, ``lookup_lazy``: the reference and the fallback), so a present
 * key is read there again and a failure is reported there.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define HASH_SIZE 16
/* keys read absent noted at most (with other processes), for the stage's lookup after */
#define NOTED_MAX 64

static PyObject *str_amp, *str_q, *str_sep, *str_slash, *str_empty, *str_host;
static PyObject *str_http_port, *str_https_port, *str_colon;
static PyObject *str_get, *str_lower, *str_scheme, *str_headers, *str_target;
static PyObject *str_begin, *str_cursor, *str_set_range, *str_key, *str_abort;
static PyObject *str_epoch, *str_batch_keys, *str_hot, *str_absent, *str_env, *str_db, *str_http, *str_https;
static PyObject *str_digest, *kw_digest_size, *int_16, *int_8;
static PyObject *absent_answer;

/* ---------------------------------------------------------------------------------------
 * the key
 */

typedef struct {
    PyObject_HEAD
    PyObject *ignore;        /* frozenset of ignored parameter names, NULL when empty */
    PyObject *whitelist;     /* frozenset of kept parameter names, NULL: all kept */
    int sort;
    PyObject *py_for_parts;  /* the reference, for absolute-form targets */
    PyObject *py_for_request;
} KeyCore;

/* ``a + b + ...`` of ``n`` strings (new reference). */
static PyObject *concat(PyObject *const *parts, int n) {
    Py_ssize_t len = 0;
    Py_UCS4 maxchar = 0;
    for (int i = 0; i < n; i++) {
        len += PyUnicode_GET_LENGTH(parts[i]);
        Py_UCS4 m = PyUnicode_MAX_CHAR_VALUE(parts[i]);
        maxchar = m > maxchar ? m : maxchar;
    }
    PyObject *out = PyUnicode_New(len, maxchar);
    if (out == NULL) {
        return NULL;
    }
    Py_ssize_t at = 0;
    for (int i = 0; i < n; i++) {
        Py_ssize_t k = PyUnicode_GET_LENGTH(parts[i]);
        if (maxchar < 256) {  /* (the usual URL: one byte a character throughout) */
            memcpy(PyUnicode_1BYTE_DATA(out) + at, PyUnicode_1BYTE_DATA(parts[i]), k);
        } else if (k && PyUnicode_CopyCharacters(out, at, parts[i], 0, k) < 0) {
            Py_DECREF(out);
            return NULL;
        }
        at += k;
    }
    return out;
}

/* ``raw.strip().lower()`` (new reference): an ASCII host in place, any other by str's
 * own methods. */
static PyObject *fold(PyObject *raw) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(raw), lo = 0, hi = n;
    int kind = PyUnicode_KIND(raw);
    const void *data = PyUnicode_DATA(raw);
    while (lo < hi && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, lo))) {
        lo++;
    }
    while (hi > lo && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, hi - 1))) {
        hi--;
    }
    if (!PyUnicode_IS_ASCII(raw)) {
        PyObject *stripped = lo == 0 && hi == n ? Py_NewRef(raw) : PyUnicode_Substring(raw, lo, hi);
        if (stripped == NULL) {
            return NULL;
        }
        PyObject *out = PyObject_CallMethodNoArgs(stripped, str_lower);
        Py_DECREF(stripped);
        return out;
    }
    const unsigned char *s = (const unsigned char *)data;
    Py_ssize_t i = lo;
    while (i < hi && !(s[i] >= 'A' && s[i] <= 'Z')) {
        i++;
    }
    if (i == hi) {  /* nothing to lower */
        return lo == 0 && hi == n ? Py_NewRef(raw) : PyUnicode_Substring(raw, lo, hi);
    }
    PyObject *out = PyUnicode_New(hi - lo, 127);
    if (out == NULL) {
        return NULL;
    }
    unsigned char *d = PyUnicode_1BYTE_DATA(out);
    for (Py_ssize_t j = lo; j < hi; j++) {
        unsigned char c = s[j];
        d[j - lo] = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
    }
    return out;
}

/* ``KeyBuilder.host``: folded, the scheme's default port dropped (new reference). */
static PyObject *norm_host(PyObject *raw, PyObject *scheme) {
    PyObject *host = fold(raw);
    if (host == NULL) {
        return NULL;
    }
    PyObject *suffix = str_colon;  /* another scheme: ``":" + ""`` */
    if (PyUnicode_CompareWithASCIIString(scheme, "http") == 0) {
        suffix = str_http_port;
    } else if (PyUnicode_CompareWithASCIIString(scheme, "https") == 0) {
        suffix = str_https_port;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(host);
    Py_ssize_t tail = PyUnicode_Tailmatch(host, suffix, 0, n, 1);
    if (tail < 0) {
        Py_DECREF(host);
        return NULL;
    }
    if (tail) {  /* the suffix holds the host's last ':' */
        Py_SETREF(host, PyUnicode_Substring(host, 0, n - PyUnicode_GET_LENGTH(suffix)));
    }
    return host;
}

/* Whether ``query[start:end]`` is one of ``names`` (a frozenset): 1, 0, -1 on an error.
 * A one-byte query is compared with each name in place (the configured lists are short),
 * any other through a substring and the set. */
static int named(PyObject *names, PyObject *query, Py_ssize_t start, Py_ssize_t end) {
    if (PyUnicode_KIND(query) == PyUnicode_1BYTE_KIND && PySet_GET_SIZE(names) <= 16) {
        const char *p = (const char *)PyUnicode_1BYTE_DATA(query) + start;
        Py_ssize_t pos = 0;
        PyObject *name;
        Py_hash_t hash;
        while (_PySet_NextEntry(names, &pos, &name, &hash)) {
            if (PyUnicode_Check(name) && PyUnicode_GET_LENGTH(name) == end - start
                    && PyUnicode_KIND(name) == PyUnicode_1BYTE_KIND
                    && memcmp(PyUnicode_1BYTE_DATA(name), p, end - start) == 0) {
                return 1;
            }
        }
        return 0;
    }
    PyObject *sub = PyUnicode_Substring(query, start, end);
    if (sub == NULL) {
        return -1;
    }
    int r = PySet_Contains(names, sub);
    Py_DECREF(sub);
    return r;
}

/* Whether the parameter ``query[start:end]`` stays in the key: 1, 0, -1 on an error. */
static int kept_param(KeyCore *self, PyObject *query, Py_ssize_t start, Py_ssize_t end) {
    if (start == end) {  /* (an empty parameter) */
        return 0;
    }
    if (self->whitelist == NULL && self->ignore == NULL) {
        return 1;
    }
    Py_ssize_t eq = PyUnicode_FindChar(query, '=', start, end, 1);
    if (eq == -2) {
        return -1;
    }
    eq = eq < 0 ? end : eq;
    int keep = self->whitelist == NULL ? 1 : named(self->whitelist, query, start, eq);
    if (keep == 1 && self->ignore != NULL) {
        int ignored = named(self->ignore, query, start, eq);
        keep = ignored < 0 ? -1 : !ignored;
    }
    return keep;
}

/* The bounds of the parameter of ``query`` (length ``n``) that starts at ``start``: its
 * end (the next '&' or ``n``), -2 on an error. */
static Py_ssize_t param_end(PyObject *query, Py_ssize_t start, Py_ssize_t n) {
    Py_ssize_t amp = PyUnicode_FindChar(query, '&', start, n, 1);
    return amp == -1 ? n : amp;
}

/* Whether every parameter of ``query`` stays: 1, 0, -1 on an error. */
static int all_kept(KeyCore *self, PyObject *query, Py_ssize_t n) {
    for (Py_ssize_t start = 0; start <= n;) {
        Py_ssize_t end = param_end(query, start, n);
        int keep = end == -2 ? -1 : kept_param(self, query, start, end);
        if (keep <= 0) {
            return keep;
        }
        start = end + 1;
    }
    return 1;
}

/* ``KeyBuilder.query``: empty and filtered-out parameters dropped, sorted when
 * configured (new reference; the query itself when that changes nothing). */
static PyObject *norm_query(KeyCore *self, PyObject *query) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(query);
    if (n == 0 || (self->ignore == NULL && self->whitelist == NULL && !self->sort)) {
        return Py_NewRef(query);
    }
    if (!self->sort) {
        int unchanged = all_kept(self, query, n);
        if (unchanged != 0) {
            return unchanged < 0 ? NULL : Py_NewRef(query);
        }
    }
    PyObject *params = PyList_New(0);
    if (params == NULL) {
        return NULL;
    }
    for (Py_ssize_t start = 0; start <= n;) {
        Py_ssize_t end = param_end(query, start, n);
        int keep = end == -2 ? -1 : kept_param(self, query, start, end);
        if (keep < 0) {
            goto fail;
        }
        if (keep) {
            PyObject *p = PyUnicode_Substring(query, start, end);
            if (p == NULL || PyList_Append(params, p) < 0) {
                Py_XDECREF(p);
                goto fail;
            }
            Py_DECREF(p);
        }
        start = end + 1;
    }
    if (self->sort && PyList_Sort(params) < 0) {
        goto fail;
    }
    PyObject *out = PyUnicode_Join(str_amp, params);
    Py_DECREF(params);
    return out;
fail:
    Py_DECREF(params);
    return NULL;
}

/* Whether ``target`` is absolute-form (``KeyBuilder.for_parts``' test): 1, 0, -1. */
static int absolute_form(PyObject *target) {
    Py_ssize_t r = PyUnicode_Tailmatch(target, str_http, 0, PY_SSIZE_T_MAX, -1);
    return r != 0 ? (int)r : (int)PyUnicode_Tailmatch(target, str_https, 0, PY_SSIZE_T_MAX, -1);
}

/* ``(url, url)`` of an origin-form target (new reference). */
static PyObject *origin_form_key(KeyCore *self, PyObject *scheme, PyObject *host, PyObject *target) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(target);
    Py_ssize_t q = PyUnicode_FindChar(target, '?', 0, n, 1);
    if (q == -2) {
        return NULL;
    }
    PyObject *path = NULL, *query = NULL, *url = NULL, *normal = NULL;
    PyObject *h = norm_host(host, scheme);
    if (h == NULL) {
        return NULL;
    }
    if (q < 0) {
        path = Py_NewRef(n ? target : str_slash);
        query = Py_NewRef(str_empty);
    } else {
        path = q ? PyUnicode_Substring(target, 0, q) : Py_NewRef(str_slash);
        query = PyUnicode_Substring(target, q + 1, n);
    }
    if (path == NULL || query == NULL || (normal = norm_query(self, query)) == NULL) {
        goto done;
    }
    if (PyUnicode_GET_LENGTH(normal)) {
        PyObject *parts[6] = {scheme, str_sep, h, path, str_q, normal};
        url = concat(parts, 6);
    } else {
        PyObject *parts[4] = {scheme, str_sep, h, path};
        url = concat(parts, 4);
    }
done:
    Py_DECREF(h);
    Py_XDECREF(path);
    Py_XDECREF(query);
    Py_XDECREF(normal);
    if (url == NULL) {
        return NULL;
    }
    PyObject *pair = PyTuple_Pack(2, url, url);
    Py_DECREF(url);
    return pair;
}

/* The error of a method called on an object made without its ``__init__`` (NULL). */
static PyObject *not_initialised(const char *type) {
    PyErr_Format(PyExc_TypeError, "%s not initialised", type);
    return NULL;
}

static PyObject *key_for_parts(KeyCore *self, PyObject *const *args, Py_ssize_t nargs) {
    if (self->py_for_parts == NULL) {
        return not_initialised("KeyCore");
    }
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "for_parts(scheme, host, target, fields)");
        return NULL;
    }
    int absolute = 1;
    if (PyUnicode_CheckExact(args[0]) && PyUnicode_CheckExact(args[1]) && PyUnicode_CheckExact(args[2])
            && (absolute = absolute_form(args[2])) < 0) {
        return NULL;
    }
    if (absolute) {  /* (or a piece that is not a str) */
        return PyObject_Vectorcall(self->py_for_parts, args, 4, NULL);
    }
    return origin_form_key(self, args[0], args[1], args[2]);
}

static PyObject *key_for_request(KeyCore *self, PyObject *req) {
    if (self->py_for_request == NULL) {
        return not_initialised("KeyCore");
    }
    PyObject *scheme = NULL, *headers = NULL, *host = NULL, *target = NULL, *out = NULL;
    if ((scheme = PyObject_GetAttr(req, str_scheme)) == NULL
            || (headers = PyObject_GetAttr(req, str_headers)) == NULL
            || (target = PyObject_GetAttr(req, str_target)) == NULL) {
        goto done;
    }
    PyObject *get_args[3] = {headers, str_host, str_empty};
    if ((host = PyObject_VectorcallMethod(str_get, get_args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)) == NULL) {
        goto done;
    }
    int absolute = 1;
    if (PyUnicode_CheckExact(scheme) && PyUnicode_CheckExact(host) && PyUnicode_CheckExact(target)
            && (absolute = absolute_form(target)) < 0) {
        goto done;
    }
    if (absolute) {  /* (or a piece that is not a str) */
        out = PyObject_CallOneArg(self->py_for_request, req);
    } else {
        out = origin_form_key(self, scheme, host, target);
    }
done:
    Py_XDECREF(scheme);
    Py_XDECREF(headers);
    Py_XDECREF(host);
    Py_XDECREF(target);
    return out;
}

static int key_init(KeyCore *self, PyObject *args, PyObject *kwds) {
    PyObject *ignore, *whitelist, *for_parts, *for_request;
    int sort;
    if (!PyArg_ParseTuple(args, "O!OpOO:KeyCore", &PyFrozenSet_Type, &ignore, &whitelist, &sort,
                          &for_parts, &for_request)) {
        return -1;
    }
    if (whitelist != Py_None && !PyFrozenSet_Check(whitelist)) {
        PyErr_SetString(PyExc_TypeError, "KeyCore: whitelist is a frozenset or None");
        return -1;
    }
    Py_XSETREF(self->ignore, PySet_GET_SIZE(ignore) ? Py_NewRef(ignore) : NULL);
    Py_XSETREF(self->whitelist, whitelist == Py_None ? NULL : Py_NewRef(whitelist));
    self->sort = sort;
    Py_XSETREF(self->py_for_parts, Py_NewRef(for_parts));
    Py_XSETREF(self->py_for_request, Py_NewRef(for_request));
    return 0;
}

static int key_traverse(KeyCore *self, visitproc visit, void *arg) {
    Py_VISIT(self->ignore);
    Py_VISIT(self->whitelist);
    Py_VISIT(self->py_for_parts);
    Py_VISIT(self->py_for_request);
    return 0;
}

static int key_clear(KeyCore *self) {
    Py_CLEAR(self->ignore);
    Py_CLEAR(self->whitelist);
    Py_CLEAR(self->py_for_parts);
    Py_CLEAR(self->py_for_request);
    return 0;
}

static void key_dealloc(KeyCore *self) {
    PyObject_GC_UnTrack(self);
    key_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef key_methods[] = {
    {"for_parts", (PyCFunction)(void (*)(void))key_for_parts, METH_FASTCALL,
     "for_parts(scheme, host, target, fields) -> (url, key): KeyBuilder.for_parts without headers"},
    {"for_request", (PyCFunction)key_for_request, METH_O,
     "for_request(req) -> (url, key): KeyBuilder.for_request without headers"},
    {NULL}
};

static PyTypeObject KeyCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.cache._key.KeyCore",
    .tp_basicsize = sizeof(KeyCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "KeyCore(ignore, whitelist, sort, for_parts, for_request): the usual cache key",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)key_init,
    .tp_traverse = (traverseproc)key_traverse,
    .tp_clear = (inquiry)key_clear,
    .tp_dealloc = (destructor)key_dealloc,
    .tp_methods = key_methods,
};

/* ---------------------------------------------------------------------------------------
 * the hashes of keys, variants and tags (``lmdb_store._h``)
 */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *memo16;     /* the memos of 16- and 8-byte digests, by text */
    PyObject *memo8;
    Py_ssize_t kept;      /* a memo is cleared when it holds this many */
    PyObject *reference;  /* the Python function, for anything else */
    PyObject *blake2b;    /* hashlib.blake2b: the digest itself is the library's */
} Hasher;

/* The blake2b digest of ``text`` (UTF-8, surrogates passed) of ``size`` bytes, through
 * ``memo`` (borrowed from the memo; NULL on an error). */
static PyObject *memo_hash(Hasher *self, PyObject *memo, PyObject *text, int size) {
    PyObject *digest = PyDict_GetItemWithError(memo, text);
    if (digest != NULL || PyErr_Occurred()) {
        return digest;
    }
    PyObject *data = PyUnicode_IS_ASCII(text)
        ? PyBytes_FromStringAndSize((const char *)PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text))
        : PyUnicode_AsEncodedString(text, "utf-8", "surrogatepass");
    if (data == NULL) {
        return NULL;
    }
    PyObject *args[2] = {data, size == 16 ? int_16 : int_8};
    PyObject *h = PyObject_Vectorcall(self->blake2b, args, 1, kw_digest_size);
    Py_DECREF(data);
    if (h == NULL) {
        return NULL;
    }
    digest = PyObject_CallMethodNoArgs(h, str_digest);
    Py_DECREF(h);
    if (digest == NULL) {
        return NULL;
    }
    if (PyDict_GET_SIZE(memo) >= self->kept) {
        PyDict_Clear(memo);
    }
    int r = PyDict_SetItem(memo, text, digest);
    Py_DECREF(digest);  /* the memo holds it */
    return r < 0 ? NULL : digest;
}

static PyObject *hasher_call(Hasher *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs == 2 && kwnames == NULL && PyUnicode_CheckExact(args[0]) && PyLong_CheckExact(args[1])) {
        long size = PyLong_AsLong(args[1]);
        PyObject *memo = size == 16 ? self->memo16 : size == 8 ? self->memo8 : NULL;
        if (memo != NULL) {
            PyObject *digest = memo_hash(self, memo, args[0], (int)size);
            return Py_XNewRef(digest);
        }
        if (size == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    return PyObject_Vectorcall(self->reference, args, nargsf, kwnames);
}

static int hasher_init(Hasher *self, PyObject *args, PyObject *kwds) {
    PyObject *memos, *reference, *blake2b;
    Py_ssize_t kept;
    if (!PyArg_ParseTuple(args, "O!nOO:Hasher", &PyDict_Type, &memos, &kept, &reference, &blake2b)) {
        return -1;
    }
    PyObject *sizes[2] = {PyLong_FromLong(16), PyLong_FromLong(8)};
    PyObject *m16 = sizes[0] == NULL ? NULL : PyDict_GetItemWithError(memos, sizes[0]);
    PyObject *m8 = sizes[1] == NULL ? NULL : PyDict_GetItemWithError(memos, sizes[1]);
    Py_XDECREF(sizes[0]);
    Py_XDECREF(sizes[1]);
    if (m16 == NULL || m8 == NULL || !PyDict_CheckExact(m16) || !PyDict_CheckExact(m8)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "Hasher: memos maps 16 and 8 to dicts");
        }
        return -1;
    }
    Py_XSETREF(self->memo16, Py_NewRef(m16));
    Py_XSETREF(self->memo8, Py_NewRef(m8));
    Py_XSETREF(self->reference, Py_NewRef(reference));
    Py_XSETREF(self->blake2b, Py_NewRef(blake2b));
    self->kept = kept;
    self->vectorcall = (vectorcallfunc)hasher_call;
    return 0;
}

static PyObject *hasher_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    Hasher *self = (Hasher *)PyType_GenericNew(type, args, kwds);
    if (self != NULL) {
        self->vectorcall = NULL;
    }
    return (PyObject *)self;
}

static PyObject *hasher_tp_call(Hasher *self, PyObject *args, PyObject *kwds) {
    if (self->reference == NULL) {
        PyErr_SetString(PyExc_TypeError, "Hasher not initialised");
        return NULL;
    }
    return PyVectorcall_Call((PyObject *)self, args, kwds);
}

static int hasher_traverse(Hasher *self, visitproc visit, void *arg) {
    Py_VISIT(self->memo16);
    Py_VISIT(self->memo8);
    Py_VISIT(self->reference);
    Py_VISIT(self->blake2b);
    return 0;
}

static int hasher_clear(Hasher *self) {
    Py_CLEAR(self->memo16);
    Py_CLEAR(self->memo8);
    Py_CLEAR(self->reference);
    Py_CLEAR(self->blake2b);
    return 0;
}

static void hasher_dealloc(Hasher *self) {
    PyObject_GC_UnTrack(self);
    hasher_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject HasherType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.cache._key.Hasher",
    .tp_basicsize = sizeof(Hasher),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Hasher(memos, kept, reference, blake2b)(text, size): lmdb_store._h in C",
    .tp_vectorcall_offset = offsetof(Hasher, vectorcall),
    .tp_call = (ternaryfunc)hasher_tp_call,
    .tp_new = hasher_new,
    .tp_init = (initproc)hasher_init,
    .tp_traverse = (traverseproc)hasher_traverse,
    .tp_clear = (inquiry)hasher_clear,
    .tp_dealloc = (destructor)hasher_dealloc,
};

/* ---------------------------------------------------------------------------------------
 * the absent key's read
 */

typedef struct {
    PyObject_HEAD
    PyObject *store;          /* the SharedStore (its ``_batch_keys`` read per lookup) */
    PyObject *hot;            /* its ``_hot`` (cleared in place, never rebound) */
    PyObject *absent;         /* its ``_absent`` set, NULL with other processes */
    PyObject *env;            /* its lmdb Environment */
    PyObject *key_db;         /* the ``key`` database */
    PyObject *py_lookup;      /* SharedStore.lookup (the function: the reference) */
    PyObject *py_lookup_lazy; /* SharedStore.lookup_lazy */
    Hasher *hasher;           /* lmdb_store._h */
    Py_ssize_t absent_kept;
    PyObject *noted;          /* with other processes: keys read absent, not yet looked up again */
    PyObject *noted_epoch;    /* the store's flush epoch they were read in */
    PyObject *error;          /* lmdb.Error */
} Reader;

/* Whether the store holds a row of the hash ``kh``: 1, 0 (none), -1 when the read
 * failed with lmdb.Error (cleared: Python reads again and reports it), -2 on another
 * error. */
static int has_rows(Reader *self, PyObject *kh) {
    PyObject *txn = NULL, *cur = NULL, *found = NULL, *k = NULL;
    int out = -2;
    if ((txn = PyObject_CallMethodNoArgs(self->env, str_begin)) == NULL
            || (cur = PyObject_CallMethodOneArg(txn, str_cursor, self->key_db)) == NULL
            || (found = PyObject_CallMethodOneArg(cur, str_set_range, kh)) == NULL) {
        goto done;
    }
    if (found != Py_True) {
        out = 0;
        goto done;
    }
    if ((k = PyObject_CallMethodNoArgs(cur, str_key)) == NULL) {
        goto done;
    }
    if (!PyBytes_Check(k)) {
        PyErr_SetString(PyExc_TypeError, "a cursor key that is not bytes");
        goto done;
    }
    out = PyBytes_GET_SIZE(k) >= HASH_SIZE && memcmp(PyBytes_AS_STRING(k), PyBytes_AS_STRING(kh), HASH_SIZE) == 0;
done:
    Py_XDECREF(k);
    Py_XDECREF(found);
    Py_XDECREF(cur);
    if (txn != NULL) {
        PyObject *exc_type, *exc_value, *exc_tb;
        PyErr_Fetch(&exc_type, &exc_value, &exc_tb);  /* the read's error outlives the abort */
        PyObject *r = PyObject_CallMethodNoArgs(txn, str_abort);
        if (r == NULL) {
            if (exc_type == NULL) {
                out = -2;
            } else {
                PyErr_Clear();
            }
        }
        Py_XDECREF(r);
        if (exc_type != NULL) {
            PyErr_Restore(exc_type, exc_value, exc_tb);
        }
        Py_DECREF(txn);
    }
    if (out == -2 && PyErr_ExceptionMatches(self->error)) {
        PyErr_Clear();
        out = -1;
    }
    return out;
}

/* Note a key read absent: in a single-process node for good (``_remember_absent``: only
 * this process stores, and its ``put`` forgets the key); with other processes for the
 * one lookup that follows in this flush epoch (``note_taken``). */
static int remember_absent(Reader *self, PyObject *key) {
    if (self->absent != NULL) {
        if (PySet_GET_SIZE(self->absent) >= self->absent_kept && PySet_Clear(self->absent) < 0) {
            return -1;
        }
        return PySet_Add(self->absent, key);
    }
    PyObject *epoch = PyObject_GetAttr(self->store, str_epoch);
    if (epoch == NULL) {
        return -1;
    }
    int same = self->noted_epoch == NULL ? 0 : PyObject_RichCompareBool(epoch, self->noted_epoch, Py_EQ);
    if (same < 0) {
        Py_DECREF(epoch);
        return -1;
    }
    if (!same || PyDict_GET_SIZE(self->noted) >= NOTED_MAX) {
        PyDict_Clear(self->noted);
    }
    Py_XSETREF(self->noted_epoch, epoch);
    return PyDict_SetItem(self->noted, key, Py_None);
}

/* ``key``'s note dropped, if any: 0, -1 on an error. */
static int drop_note(PyObject *noted, PyObject *key) {
    int r = PyDict_Contains(noted, key);
    return r <= 0 ? r : PyDict_DelItem(noted, key);
}

/* With other processes: whether ``key`` was read absent in this flush epoch and not looked
 * up since (the note is taken: the next lookup, collapsing's after its lease, reads the
 * store); 1, 0, -1 on an error. */
static int note_taken(Reader *self, PyObject *key) {
    if (PyDict_GET_SIZE(self->noted) == 0) {
        return 0;
    }
    int r = PyDict_Contains(self->noted, key);
    if (r <= 0 || PyDict_DelItem(self->noted, key) < 0) {
        return r == 0 ? 0 : -1;
    }
    PyObject *epoch = PyObject_GetAttr(self->store, str_epoch);
    if (epoch == NULL) {
        return -1;
    }
    r = PyObject_RichCompareBool(epoch, self->noted_epoch, Py_EQ);
    Py_DECREF(epoch);
    return r;
}

/* Whether ``key`` is queued for this loop pass's commit: 1, 0, -1 on an error. */
static int queued(Reader *self, PyObject *key) {
    PyObject *keys = PyObject_GetAttr(self->store, str_batch_keys);
    if (keys == NULL) {
        return -1;
    }
    int r = PyAnySet_Check(keys) ? (PySet_GET_SIZE(keys) ? PySet_Contains(keys, key) : 0) : 1;
    Py_DECREF(keys);
    return r;
}

/* ``lookup_lazy``'s answer for a key read absent: 1 (absent: None), 0 (the Python
 * method answers), -1 on an error. */
static int read_absent(Reader *self, PyObject *key) {
    if (!PyUnicode_CheckExact(key)) {
        return 0;
    }
    if (PyDict_GET_SIZE(self->noted) && drop_note(self->noted, key) < 0) {  /* (read again now) */
        return -1;
    }
    PyObject *hot = PyDict_GetItemWithError(self->hot, key);
    if (hot != NULL || PyErr_Occurred()) {
        return hot != NULL ? 0 : -1;
    }
    int r = queued(self, key);
    if (r != 0) {
        return r < 0 ? -1 : 0;
    }
    if (self->absent != NULL && (r = PySet_Contains(self->absent, key)) != 0) {
        return r;
    }
    PyObject *kh = memo_hash(self->hasher, self->hasher->memo16, key, HASH_SIZE);
    if (kh == NULL) {
        return -1;
    }
    Py_INCREF(kh);  /* (the memo may be cleared meanwhile) */
    r = has_rows(self, kh);
    Py_DECREF(kh);
    if (r == -2) {
        return -1;
    }
    if (r != 0) {
        return 0;  /* a row, or a failed read: Python's */
    }
    return remember_absent(self, key) < 0 ? -1 : 1;
}

static PyObject *reader_lookup_lazy(Reader *self, PyObject *const *args, Py_ssize_t nargs) {
    if (self->store == NULL) {
        return not_initialised("Reader");
    }
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "lookup_lazy(key, fields)");
        return NULL;
    }
    int r = read_absent(self, args[0]);
    if (r != 0) {
        return r < 0 ? NULL : Py_NewRef(Py_None);
    }
    PyObject *call[3] = {self->store, args[0], args[1]};
    return PyObject_Vectorcall(self->py_lookup_lazy, call, 3, NULL);
}

static PyObject *reader_lookup(Reader *self, PyObject *const *args, Py_ssize_t nargs) {
    if (self->store == NULL) {
        return not_initialised("Reader");
    }
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "lookup(key, req_headers)");
        return NULL;
    }
    if (PyUnicode_CheckExact(args[0])) {
        int r;
        if (self->absent != NULL) {
            r = PySet_Contains(self->absent, args[0]);
        } else if ((r = note_taken(self, args[0])) > 0) {
            int q = queued(self, args[0]);  /* (a store of it queued since: Python's) */
            r = q < 0 ? -1 : !q;
        }
        if (r != 0) {
            return r < 0 ? NULL : Py_NewRef(absent_answer);
        }
    }
    PyObject *call[3] = {self->store, args[0], args[1]};
    return PyObject_Vectorcall(self->py_lookup, call, 3, NULL);
}

static int reader_init(Reader *self, PyObject *args, PyObject *kwds) {
    PyObject *store, *py_lookup, *py_lookup_lazy, *hasher, *error;
    Py_ssize_t absent_kept;
    if (!PyArg_ParseTuple(args, "OOOO!nO:Reader", &store, &py_lookup, &py_lookup_lazy, &HasherType,
                          &hasher, &absent_kept, &error)) {
        return -1;
    }
    PyObject *hot = PyObject_GetAttr(store, str_hot);
    PyObject *absent = hot == NULL ? NULL : PyObject_GetAttr(store, str_absent);
    PyObject *env = absent == NULL ? NULL : PyObject_GetAttr(store, str_env);
    PyObject *dbs = env == NULL ? NULL : PyObject_GetAttr(store, str_db);
    PyObject *key_db = dbs == NULL ? NULL : PyObject_GetItem(dbs, str_key);
    Py_XDECREF(dbs);
    if (key_db == NULL || !PyDict_CheckExact(hot) || (absent != Py_None && !PySet_CheckExact(absent))) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "Reader: the store's _hot is a dict, its _absent a set or None");
        }
        Py_XDECREF(hot);
        Py_XDECREF(absent);
        Py_XDECREF(env);
        Py_XDECREF(key_db);
        return -1;
    }
    Py_XSETREF(self->store, Py_NewRef(store));
    Py_XSETREF(self->hot, hot);
    Py_XSETREF(self->absent, absent == Py_None ? NULL : absent);
    if (absent == Py_None) {
        Py_DECREF(absent);
    }
    Py_XSETREF(self->env, env);
    Py_XSETREF(self->key_db, key_db);
    Py_XSETREF(self->py_lookup, Py_NewRef(py_lookup));
    Py_XSETREF(self->py_lookup_lazy, Py_NewRef(py_lookup_lazy));
    Py_XSETREF(self->hasher, (Hasher *)Py_NewRef(hasher));
    Py_XSETREF(self->noted, PyDict_New());
    Py_CLEAR(self->noted_epoch);
    if (self->noted == NULL) {
        return -1;
    }
    Py_XSETREF(self->error, Py_NewRef(error));
    self->absent_kept = absent_kept;
    return 0;
}

static int reader_traverse(Reader *self, visitproc visit, void *arg) {
    Py_VISIT(self->store);
    Py_VISIT(self->hot);
    Py_VISIT(self->absent);
    Py_VISIT(self->env);
    Py_VISIT(self->key_db);
    Py_VISIT(self->py_lookup);
    Py_VISIT(self->py_lookup_lazy);
    Py_VISIT(self->hasher);
    Py_VISIT(self->noted);
    Py_VISIT(self->noted_epoch);
    Py_VISIT(self->error);
    return 0;
}

static int reader_clear(Reader *self) {
    Py_CLEAR(self->store);
    Py_CLEAR(self->hot);
    Py_CLEAR(self->absent);
    Py_CLEAR(self->env);
    Py_CLEAR(self->key_db);
    Py_CLEAR(self->py_lookup);
    Py_CLEAR(self->py_lookup_lazy);
    Py_CLEAR(self->hasher);
    Py_CLEAR(self->noted);
    Py_CLEAR(self->noted_epoch);
    Py_CLEAR(self->error);
    return 0;
}

static void reader_dealloc(Reader *self) {
    PyObject_GC_UnTrack(self);
    reader_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef reader_methods[] = {
    {"lookup_lazy", (PyCFunction)(void (*)(void))reader_lookup_lazy, METH_FASTCALL,
     "lookup_lazy(key, fields): SharedStore.lookup_lazy, a key read absent answered here"},
    {"lookup", (PyCFunction)(void (*)(void))reader_lookup, METH_FASTCALL,
     "lookup(key, req_headers): SharedStore.lookup, a key known absent answered here"},
    {NULL}
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.cache._key.Reader",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Reader(store, lookup, lookup_lazy, hasher, absent_kept, error)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)reader_init,
    .tp_traverse = (traverseproc)reader_traverse,
    .tp_clear = (inquiry)reader_clear,
    .tp_dealloc = (destructor)reader_dealloc,
    .tp_methods = reader_methods,
};

/* ---------------------------------------------------------------------------------------
 * the module
 */

static struct PyModuleDef key_module = {
    PyModuleDef_HEAD_INIT, "_key", "The cache key and the absent key's read in C.", -1, NULL,
};

static int intern_all(void) {
    struct { PyObject **slot; const char *text; } names[] = {
        {&str_amp, "&"}, {&str_q, "?"}, {&str_sep, "://"}, {&str_slash, "/"}, {&str_empty, ""},
        {&str_host, "host"}, {&str_http_port, ":80"}, {&str_https_port, ":443"}, {&str_colon, ":"},
        {&str_get, "get"}, {&str_lower, "lower"}, {&str_scheme, "scheme"},
        {&str_headers, "headers"}, {&str_target, "target"}, {&str_begin, "begin"},
        {&str_cursor, "cursor"}, {&str_set_range, "set_range"}, {&str_key, "key"},
        {&str_abort, "abort"}, {&str_batch_keys, "_batch_keys"}, {&str_epoch, "_epoch"},
        {&str_hot, "_hot"}, {&str_absent, "_absent"}, {&str_env, "env"}, {&str_db, "_db"},
        {&str_http, "http://"}, {&str_https, "https://"}, {&str_digest, "digest"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if ((*names[i].slot = PyUnicode_InternFromString(names[i].text)) == NULL) {
            return -1;
        }
    }
    PyObject *digest_size = PyUnicode_InternFromString("digest_size");
    kw_digest_size = digest_size == NULL ? NULL : PyTuple_Pack(1, digest_size);
    Py_XDECREF(digest_size);
    int_16 = PyLong_FromLong(16);
    int_8 = PyLong_FromLong(8);
    absent_answer = PyTuple_Pack(2, Py_None, Py_False);
    return kw_digest_size == NULL || int_16 == NULL || int_8 == NULL || absent_answer == NULL ? -1 : 0;
}

PyMODINIT_FUNC PyInit__key(void) {
    if (intern_all() < 0 || PyType_Ready(&KeyCoreType) < 0 || PyType_Ready(&HasherType) < 0
            || PyType_Ready(&ReaderType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&key_module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "KeyCore", (PyObject *)&KeyCoreType) < 0
            || PyModule_AddObjectRef(m, "Hasher", (PyObject *)&HasherType) < 0
            || PyModule_AddObjectRef(m, "Reader", (PyObject *)&ReaderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
