/* The usual miss's entry made in C (cache/policy.py ``build_entry``).
 *
 * Every stored miss ran ``build_entry``'s Python: the names not stored, the stored list
 * with its wire block and size (a C pass), the freshness facts (a C call), the entry's
 * ~30 slot stores, the hits' multidict and the wire decision, ~41k instructions of
 * which most was the interpreter around the C calls.  ``UsualEntry(Entry, CIMultiDict,
 * statuses)(key, url, status, reason, pairs, body, cc, targeted, request_time,
 * response_time, heuristic_fraction, heuristic_max, default_ttl)`` makes the same entry
 * in one call for the usual response, or answers None and ``build_entry``'s Python
 * (its reference: tests/cache/test_entry_native.py) makes it.  The usual response: no
 * targeted directives, no ``private``/``no-cache`` naming fields, no Vary, no Connection,
 * a valid Date, names ASCII, names and values Latin-1 without CR or LF (then the wire
 * block is theirs), and what the freshness facts read as Python does.  The caller
 * passes no trailers and no incomplete (206) response.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>

#include "_facts.h"

static compute_facts_fn compute_facts;

/* the entry's slots this sets, in this order (cache/policy.py ``Entry.__slots__``) */
enum {
    S_KEY, S_URL, S_VARIANT, S_STATUS, S_REASON, S_HEADERS, S_BODY, S_SIZE, S_REQUEST_TIME,
    S_RESPONSE_TIME, S_DATE, S_AGE0, S_LIFETIME, S_FRESH_UNTIL, S_SWR, S_SIE, S_NO_STALE,
    S_NO_CACHE, S_AUTH_OK, S_ETAG, S_LAST_MODIFIED, S_LAST_MODIFIED_TS, S_VARY, S_VARY_VALUES,
    S_SURROGATE_KEYS, S_SURROGATE_CONTROL, S_PROTO, S_WIRE, S_TRAILERS, S_HIT, S_PARTIAL, S_COUNT
};

static const char *slot_names[S_COUNT] = {
    "key", "url", "variant", "status", "reason", "headers", "body", "size", "request_time",
    "response_time", "date", "age0", "lifetime", "fresh_until", "swr", "sie", "no_stale",
    "no_cache", "auth_ok", "etag", "last_modified", "last_modified_ts", "vary", "vary_values",
    "surrogate_keys", "surrogate_control", "proto", "wire", "trailers", "hit", "partial",
};

/* what a field's lower-case name means here (the last five are stored too: only the
 * stored miss's decision, ``UsualEntry.stored``, looks at them) */
enum {
    F_STORED, F_DROPPED, F_AGE, F_SURROGATE_KEY, F_SURROGATE_CONTROL, F_X_CACHE, F_OTHER_PATH,
    F_CONTENT_LENGTH, F_CACHE_CONTROL, F_CDN_CACHE_CONTROL, F_SET_COOKIE, F_EXPIRES
};

/* ``policy._NOT_STORED`` and the names that send a response to the Python path, by
 * length (a name is compared only with the special names of its length) */
typedef struct { const char *name; int kind; } Special;

static const Special len2[] = {{"te", F_DROPPED}, {NULL, 0}};
static const Special len3[] = {{"age", F_AGE}, {NULL, 0}};
static const Special len4[] = {{"vary", F_OTHER_PATH}, {NULL, 0}};
static const Special len7[] = {{"trailer", F_DROPPED}, {"upgrade", F_DROPPED}, {"x-cache", F_X_CACHE},
                               {"expires", F_EXPIRES}, {NULL, 0}};
static const Special len10[] = {{"keep-alive", F_DROPPED}, {"connection", F_OTHER_PATH},
                                {"set-cookie", F_SET_COOKIE}, {NULL, 0}};
static const Special len13[] = {{"surrogate-key", F_SURROGATE_KEY}, {"cache-control", F_CACHE_CONTROL},
                                {NULL, 0}};
static const Special len14[] = {{"content-length", F_CONTENT_LENGTH}, {NULL, 0}};
static const Special len16[] = {{"proxy-connection", F_DROPPED}, {NULL, 0}};
static const Special len17[] = {{"transfer-encoding", F_DROPPED}, {"surrogate-control", F_SURROGATE_CONTROL},
                                {"cdn-cache-control", F_CDN_CACHE_CONTROL}, {NULL, 0}};
static const Special len18[] = {{"proxy-authenticate", F_DROPPED}, {NULL, 0}};
static const Special len19[] = {{"proxy-authorization", F_DROPPED}, {NULL, 0}};

/* the longest special name, "proxy-authorization" */
#define SPECIAL_MAX 19

static const Special *by_length[SPECIAL_MAX + 1] = {
    [2] = len2, [3] = len3, [4] = len4, [7] = len7, [10] = len10, [13] = len13, [14] = len14,
    [16] = len16, [17] = len17, [18] = len18, [19] = len19,
};

/* The kind of the ASCII name ``s`` (``n`` characters), compared without case. */
static int kind_of(const Py_UCS1 *s, Py_ssize_t n) {
    if (n > SPECIAL_MAX || by_length[n] == NULL) {
        return F_STORED;
    }
    for (const Special *k = by_length[n]; k->name != NULL; k++) {
        Py_ssize_t i = 0;
        while (i < n && ((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]) == (Py_UCS1)k->name[i]) {
            i++;
        }
        if (i == n) {
            return k->kind;
        }
    }
    return F_STORED;
}

/* ``v`` as decimal digits, ``str(v)``: a new reference (without ``PyUnicode_FromFormat``'s
 * parsing of its format and its writer: ~1.3k instructions a call). */
static PyObject *decimal(unsigned long long v) {
    char buf[24];
    char *end = buf + sizeof(buf), *p = end;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    if (end - p == 1) {
        return PyUnicode_FromOrdinal(*p);  /* (a kept one-character string) */
    }
    PyObject *s = PyUnicode_New(end - p, 127);
    if (s != NULL) {
        memcpy(PyUnicode_1BYTE_DATA(s), p, end - p);
    }
    return s;
}

/* A value the wire block can hold as it is: Latin-1 without CR or LF. */
static int wire_safe(PyObject *s) {
    if (PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) {
        return 0;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    const void *data = PyUnicode_1BYTE_DATA(s);
    return memchr(data, '\r', n) == NULL && memchr(data, '\n', n) == NULL;
}

/* Whether ``cc`` names fields (``private="a"``, ``no-cache="a"``): those are not stored,
 * which ``policy._not_stored`` decides; 1 yes, 0 no, -1 error. */
static PyObject *private_name, *no_cache_name, *content_length_name;

static int names_fields(PyObject *cc) {
    PyObject *names[2] = {private_name, no_cache_name};
    for (int i = 0; i < 2; i++) {
        PyObject *arg = PyDict_GetItemWithError(cc, names[i]);
        if (arg == NULL) {
            if (PyErr_Occurred()) {
                return -1;
            }
            continue;
        }
        int truth = PyObject_IsTrue(arg);
        if (truth != 0) {
            return truth;
        }
    }
    return 0;
}

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyTypeObject *cls;       /* Entry */
    PyObject *multidict;     /* CIMultiDict: the hits' prototype */
    PyObject *statuses;      /* the statuses with a heuristic lifetime */
    Py_ssize_t offsets[S_COUNT];
} UsualEntry;

/* The stored pairs' ``Name: value\r\n`` lines (``chars`` long) as bytes. */
static PyObject *wire_block(PyObject *stored, Py_ssize_t count, Py_ssize_t chars) {
    PyObject *block = PyBytes_FromStringAndSize(NULL, chars);
    if (block == NULL) {
        return NULL;
    }
    char *out = PyBytes_AS_STRING(block);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = PyList_GET_ITEM(stored, i);
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        Py_ssize_t k = PyUnicode_GET_LENGTH(name), v = PyUnicode_GET_LENGTH(value);
        memcpy(out, PyUnicode_1BYTE_DATA(name), k);
        out += k;
        *out++ = ':';
        *out++ = ' ';
        memcpy(out, PyUnicode_1BYTE_DATA(value), v);
        out += v;
        *out++ = '\r';
        *out++ = '\n';
    }
    return block;
}

/* What one pass over the origin's pairs finds (borrowed references but the lists). */
typedef struct {
    PyObject *stored;    /* the pairs stored, a new list */
    PyObject *tags;      /* Surrogate-Key members, a new list or NULL */
    PyObject *controls;  /* Surrogate-Control values, a new list or NULL */
    PyObject *age;       /* the first Age value, or NULL */
    Py_ssize_t chars;    /* the stored lines' length */
    int x_cache;         /* an X-Cache field is stored: no wire block */
    /* for the stored miss's decision: */
    PyObject *cc;        /* the Cache-Control values, a new list or NULL */
    PyObject *length;    /* the first Content-Length value, or NULL */
    int cdn, cookie, expires;  /* CDN-Cache-Control, Set-Cookie, Expires are there */
} Scan;

static void scan_clear(Scan *s) {
    Py_CLEAR(s->stored);
    Py_CLEAR(s->tags);
    Py_CLEAR(s->controls);
    Py_CLEAR(s->cc);
}

/* Append ``value`` to the list ``*list``, made on first use. */
static int append_to(PyObject **list, PyObject *value) {
    if (*list == NULL && (*list = PyList_New(0)) == NULL) {
        return -1;
    }
    return PyList_Append(*list, value);
}

/* Sort the origin's pairs: 1 done, 0 not the usual response, -1 error. */
static int scan_fields(PyObject *pairs, Scan *s) {
    memset(s, 0, sizeof(*s));
    if ((s->stored = PyList_New(0)) == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
        PyObject *pair = PyList_GET_ITEM(pairs, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) {
            return 0;
        }
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        if (!PyUnicode_CheckExact(name) || !PyUnicode_CheckExact(value) || !PyUnicode_IS_ASCII(name)
                || !wire_safe(name) || !wire_safe(value)) {
            return 0;
        }
        int r = 0;
        switch (kind_of(PyUnicode_1BYTE_DATA(name), PyUnicode_GET_LENGTH(name))) {
        case F_OTHER_PATH:
            return 0;
        case F_DROPPED:
            continue;
        case F_AGE:
            if (s->age == NULL) {
                s->age = value;
            }
            continue;
        case F_SURROGATE_KEY: {
            PyObject *members = PyUnicode_Split(value, NULL, -1);
            if (members == NULL) {
                return -1;
            }
            if (s->tags == NULL) {
                s->tags = members;
                continue;
            }
            r = PyList_SetSlice(s->tags, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, members);
            Py_DECREF(members);
            if (r < 0) {
                return -1;
            }
            continue;
        }
        case F_SURROGATE_CONTROL:
            if (append_to(&s->controls, value) < 0) {
                return -1;
            }
            continue;
        case F_X_CACHE:
            s->x_cache = 1;
            break;
        case F_CONTENT_LENGTH:
            if (s->length == NULL) {
                s->length = value;
            }
            continue;
        case F_CACHE_CONTROL:
            if (append_to(&s->cc, value) < 0) {
                return -1;
            }
            break;
        case F_CDN_CACHE_CONTROL:
            s->cdn = 1;
            break;
        case F_SET_COOKIE:
            s->cookie = 1;
            break;
        case F_EXPIRES:
            s->expires = 1;
            break;
        }
        if (PyList_Append(s->stored, pair) < 0) {
            return -1;
        }
        s->chars += PyUnicode_GET_LENGTH(name) + PyUnicode_GET_LENGTH(value) + 4;
    }
    return 1;
}

/* A tuple of ``list``'s items, () when NULL (new reference). */
static PyObject *as_tuple(PyObject *list) {
    return list == NULL ? PyTuple_New(0) : PyList_AsTuple(list);
}

/* Store ``value`` (a new reference, NULL when its making failed) in the empty slot. */
static int set_slot(UsualEntry *self, PyObject *e, int slot, PyObject *value) {
    if (value == NULL) {
        return -1;
    }
    *(PyObject **)((char *)e + self->offsets[slot]) = value;
    return 0;
}

static PyObject *floatv(double v) {
    return PyFloat_FromDouble(v);
}

static PyObject *boolv(int v) {
    return Py_NewRef(v ? Py_True : Py_False);
}

/* The entry's slots from what the scan and the facts found; -1 on an error. */
static int fill(UsualEntry *self, PyObject *e, PyObject *const *args, Scan *s, PyObject *block,
                Facts *x, Py_ssize_t size) {
    PyObject *proto = PyObject_CallOneArg(self->multidict, s->stored);
    if (proto == NULL) {
        return -1;
    }
    if (set_slot(self, e, S_PROTO, proto) < 0
            || set_slot(self, e, S_KEY, Py_NewRef(args[0])) < 0
            || set_slot(self, e, S_URL, Py_NewRef(args[1])) < 0
            || set_slot(self, e, S_VARIANT, PyUnicode_New(0, 0)) < 0
            || set_slot(self, e, S_STATUS, Py_NewRef(args[2])) < 0
            || set_slot(self, e, S_REASON, Py_NewRef(args[3])) < 0
            || set_slot(self, e, S_HEADERS, Py_NewRef(s->stored)) < 0
            || set_slot(self, e, S_BODY, Py_NewRef(args[5])) < 0
            || set_slot(self, e, S_SIZE, PyLong_FromSsize_t(size)) < 0
            || set_slot(self, e, S_REQUEST_TIME, Py_NewRef(args[8])) < 0
            || set_slot(self, e, S_RESPONSE_TIME, Py_NewRef(args[9])) < 0
            || set_slot(self, e, S_DATE, floatv(x->date)) < 0
            || set_slot(self, e, S_AGE0, floatv(x->age0)) < 0
            || set_slot(self, e, S_LIFETIME, floatv(x->lifetime)) < 0
            || set_slot(self, e, S_FRESH_UNTIL, floatv(x->fresh_until)) < 0
            || set_slot(self, e, S_SWR, floatv(x->swr)) < 0
            || set_slot(self, e, S_SIE, floatv(x->sie)) < 0
            || set_slot(self, e, S_NO_STALE, boolv(x->no_stale)) < 0
            || set_slot(self, e, S_NO_CACHE, boolv(x->no_cache)) < 0
            || set_slot(self, e, S_AUTH_OK, boolv(x->auth_ok)) < 0
            || set_slot(self, e, S_ETAG, Py_NewRef(x->etag ? x->etag : Py_None)) < 0
            || set_slot(self, e, S_LAST_MODIFIED, Py_NewRef(x->last_modified ? x->last_modified : Py_None)) < 0
            || set_slot(self, e, S_LAST_MODIFIED_TS, x->has_last ? floatv(x->last_ts) : Py_NewRef(Py_None)) < 0
            || set_slot(self, e, S_VARY, PyTuple_New(0)) < 0
            || set_slot(self, e, S_VARY_VALUES, PyTuple_New(0)) < 0
            || set_slot(self, e, S_SURROGATE_KEYS, as_tuple(s->tags)) < 0
            || set_slot(self, e, S_SURROGATE_CONTROL, as_tuple(s->controls)) < 0
            || set_slot(self, e, S_WIRE, Py_NewRef(s->x_cache ? Py_None : block)) < 0
            || set_slot(self, e, S_TRAILERS, Py_NewRef(Py_None)) < 0
            || set_slot(self, e, S_HIT, Py_NewRef(Py_None)) < 0
            || set_slot(self, e, S_PARTIAL, Py_NewRef(Py_None)) < 0) {
        return -1;
    }
    return 0;
}

#define NARGS 13

/* The entry of the scanned usual response (``args`` as ``usual_call``'s but for ``cc``):
 * a new reference; NULL with an exception, or without one when the facts leave the
 * response to Python.  ``reused``: only an entry that could be reused (a lifetime, a
 * validator or a stale window: the stage's ``_put`` stores no other). */
static PyObject *make_entry(UsualEntry *self, PyObject *const *args, PyObject *cc, int heuristic,
                            Scan *s, int reused) {
    double fraction = PyFloat_AsDouble(args[10]), hmax = PyFloat_AsDouble(args[11]);
    double default_ttl = PyFloat_AsDouble(args[12]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    PyObject *result = NULL, *length = NULL, *length_pair = NULL, *block = NULL, *e = NULL;
    Py_ssize_t count = PyList_GET_SIZE(s->stored), body_len = PyBytes_GET_SIZE(args[5]);
    length = decimal((unsigned long long)body_len);
    if (length == NULL || (length_pair = PyTuple_Pack(2, content_length_name, length)) == NULL
            || PyList_Append(s->stored, length_pair) < 0) {
        goto done;
    }
    Facts x;
    if (compute_facts(s->stored, cc, 0, heuristic, s->age ? s->age : Py_None,
                      PyFloat_AS_DOUBLE(args[8]), PyFloat_AS_DOUBLE(args[9]), fraction, hmax,
                      default_ttl, &x) < 0) {
        if (PyErr_ExceptionMatches(PyExc_ValueError)) {  /* read differently in Python */
            PyErr_Clear();
        }
        goto done;
    }
    if (!x.dated) {  /* a Date to add: Python's */
        goto done;
    }
    if (reused && x.lifetime <= 0 && x.etag == NULL && x.last_modified == NULL && x.swr <= 0
            && x.sie <= 0) {
        goto done;
    }
    Py_ssize_t size = body_len + s->chars + PyUnicode_GET_LENGTH(length) + 18
                      + PyUnicode_GET_LENGTH(args[0]) + 200;
    if ((block = wire_block(s->stored, count, s->chars)) == NULL
            || (e = PyObject_CallNoArgs((PyObject *)self->cls)) == NULL) {
        goto done;
    }
    if (fill(self, e, args, s, block, &x, size) == 0) {
        result = Py_NewRef(e);
    }
done:
    Py_XDECREF(e);
    Py_XDECREF(block);
    Py_XDECREF(length_pair);
    Py_XDECREF(length);
    return result;
}

/* NULL with an exception, else None (new reference). */
static PyObject *none_unless_error(void) {
    return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
}

/* Whether ``args`` hold the types ``usual_call`` and ``usual_stored`` take as they are. */
static int usual_types(PyObject *const *args) {
    return PyUnicode_Check(args[0]) && PyLong_CheckExact(args[2]) && PyList_Check(args[4])
           && PyBytes_CheckExact(args[5]) && PyDict_Check(args[6]) && PyFloat_CheckExact(args[8])
           && PyFloat_CheckExact(args[9]);
}

static PyObject *usual_call(UsualEntry *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != NARGS || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "UsualEntry(key, url, status, reason, pairs, body, cc, targeted, "
                                         "request_time, response_time, heuristic_fraction, "
                                         "heuristic_max, default_ttl)");
        return NULL;
    }
    if (!usual_types(args)) {
        Py_RETURN_NONE;  /* (values of other types: stored as they are, by Python) */
    }
    int targeted = PyObject_IsTrue(args[7]);
    if (targeted < 0) {
        return NULL;
    }
    int named = targeted ? 1 : names_fields(args[6]);
    if (named != 0) {
        return named < 0 ? NULL : Py_NewRef(Py_None);
    }
    int heuristic = PySet_Contains(self->statuses, args[2]);
    if (heuristic < 0) {
        return NULL;
    }
    Scan s;
    int usual = scan_fields(args[4], &s);
    PyObject *result = usual > 0 ? make_entry(self, args, args[6], heuristic, &s, 0) : NULL;
    scan_clear(&s);
    return result != NULL ? result : none_unless_error();
}

/* ``value`` as the decimal number its ASCII digits spell (``str.isdigit`` and ``int``
 * as the stage reads Content-Length), or -1: empty, another character, or too long. */
static Py_ssize_t digits_value(PyObject *value) {
    if (!PyUnicode_IS_ASCII(value)) {
        return -1;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    const Py_UCS1 *d = PyUnicode_1BYTE_DATA(value);
    if (n == 0 || n > 15) {
        return -1;
    }
    Py_ssize_t v = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (d[i] < '0' || d[i] > '9') {
            return -1;
        }
        v = v * 10 + (d[i] - '0');
    }
    return v;
}

static PyObject *must_understand_name, *no_store_name, *public_name, *max_age_name, *s_maxage_name;

/* Whether ``cc`` holds ``name``: 1, 0, or -1 with an exception. */
static int has(PyObject *cc, PyObject *name) {
    return PyDict_Contains(cc, name);
}

/* The stored miss's decision on what the scan and ``cc`` found (RFC 9111 §3, as
 * ``policy.storability`` and the stage's length checks decide it for a GET with no
 * request directives or credentials): 1 stored as the usual entry, 0 left to Python,
 * -1 error.  Left to Python: a targeted field (CDN-Cache-Control, Surrogate-Control),
 * Set-Cookie, must-understand, no-store, private, no freshness information, a body
 * longer than ``max_bytes`` and a Content-Length that is not the body's length (and,
 * in ``make_entry``, an entry that could never be reused). */
static int stored_usual(PyObject *const *args, Scan *s, PyObject *cc, int heuristic) {
    if (s->cdn || s->controls != NULL || s->cookie) {
        return 0;
    }
    PyObject *refused[3] = {must_understand_name, no_store_name, private_name};
    for (int i = 0; i < 3; i++) {
        int r = has(cc, refused[i]);
        if (r != 0) {
            return r < 0 ? -1 : 0;
        }
    }
    if (!heuristic && !s->expires) {
        PyObject *fresh[3] = {public_name, max_age_name, s_maxage_name};
        int any = 0;
        for (int i = 0; i < 3 && !any; i++) {
            if ((any = has(cc, fresh[i])) < 0) {
                return -1;
            }
        }
        if (!any) {
            return 0;
        }
    }
    Py_ssize_t body_len = PyBytes_GET_SIZE(args[5]);
    Py_ssize_t max_bytes = PyLong_AsSsize_t(args[7]);
    if (max_bytes == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (body_len > max_bytes || (s->length != NULL && digits_value(s->length) != body_len)) {
        return 0;
    }
    return 1;
}

static PyObject *usual_stored(UsualEntry *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != NARGS) {
        PyErr_SetString(PyExc_TypeError, "UsualEntry.stored(key, url, status, reason, pairs, body, memo, "
                                         "max_bytes, request_time, response_time, heuristic_fraction, "
                                         "heuristic_max, default_ttl)");
        return NULL;
    }
    if (!usual_types(args) || !PyLong_CheckExact(args[7])) {
        Py_RETURN_NONE;
    }
    long status = PyLong_AsLong(args[2]);
    if (status == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (status < 200 || status == 304 || status == 206) {  /* not stored, or combined: Python's */
        Py_RETURN_NONE;
    }
    int heuristic = PySet_Contains(self->statuses, args[2]);
    if (heuristic < 0) {
        return NULL;
    }
    Scan s;
    PyObject *cc = NULL, *result = NULL;
    if (scan_fields(args[4], &s) <= 0) {
        goto done;
    }
    if (s.cc == NULL) {
        cc = PyDict_New();
    } else {  /* the parsed directives, when ``parse_cache_control`` has them in its memo */
        PyObject *lines = PyList_AsTuple(s.cc);
        if (lines == NULL) {
            goto done;
        }
        cc = Py_XNewRef(PyDict_GetItemWithError(args[6], lines));
        Py_DECREF(lines);
    }
    if (cc == NULL || !PyDict_CheckExact(cc)) {
        goto done;
    }
    if (names_fields(cc) == 0 && stored_usual(args, &s, cc, heuristic) > 0) {
        result = make_entry(self, args, cc, heuristic, &s, 1);
    }
done:
    Py_XDECREF(cc);
    scan_clear(&s);
    return result != NULL ? result : none_unless_error();
}

static PyMethodDef usual_methods[] = {
    {"stored", (PyCFunction)(void (*)(void))usual_stored, METH_FASTCALL,
     PyDoc_STR("stored(key, url, status, reason, pairs, body, memo, max_bytes, request_time, "
               "response_time, heuristic_fraction, heuristic_max, default_ttl): the entry the cache "
               "stage stores for a GET's usual response (no request directives or credentials), "
               "its decision and its entry in one call; None: the stage's Python decides.  "
               "``memo``: parse_cache_control's parsed values (directives._CC_MEMO)")},
    {NULL, NULL, 0, NULL},
};

/* The slot offsets of ``names`` in ``cls`` (object slots, and all of its slots): 0 or -1. */
static int slot_offsets(PyTypeObject *cls, const char **names, int count, Py_ssize_t *offsets) {
    for (int i = 0; i < count; i++) {
        PyObject *name = PyUnicode_FromString(names[i]);
        if (name == NULL) {
            return -1;
        }
        PyObject *descr = _PyType_Lookup(cls, name);
        if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)
                || ((PyMemberDescrObject *)descr)->d_member->type != T_OBJECT_EX) {
            PyErr_Format(PyExc_TypeError, "%R is not an object slot of %R", name, cls);
            Py_DECREF(name);
            return -1;
        }
        Py_DECREF(name);
        offsets[i] = ((PyMemberDescrObject *)descr)->d_member->offset;
    }
    if (cls->tp_basicsize != (Py_ssize_t)(sizeof(PyObject) + count * sizeof(PyObject *))) {
        PyErr_Format(PyExc_TypeError, "%R has slots this does not set", cls);
        return -1;
    }
    return 0;
}

static int usual_init(UsualEntry *self, PyObject *args, PyObject *kwds) {
    PyObject *cls, *multidict, *statuses;
    if (!PyArg_ParseTuple(args, "O!OO!:UsualEntry", &PyType_Type, &cls, &multidict,
                          &PyFrozenSet_Type, &statuses)) {
        return -1;
    }
    if (slot_offsets((PyTypeObject *)cls, slot_names, S_COUNT, self->offsets) < 0) {
        return -1;
    }
    Py_INCREF(cls);
    Py_XSETREF(self->cls, (PyTypeObject *)cls);
    Py_INCREF(multidict);
    Py_XSETREF(self->multidict, multidict);
    Py_INCREF(statuses);
    Py_XSETREF(self->statuses, statuses);
    self->vectorcall = (vectorcallfunc)usual_call;
    return 0;
}

static PyObject *usual_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    UsualEntry *self = (UsualEntry *)PyType_GenericNew(type, args, kwds);
    if (self != NULL) {
        self->vectorcall = NULL;
    }
    return (PyObject *)self;
}

static PyObject *usual_tp_call(UsualEntry *self, PyObject *args, PyObject *kwds) {
    if (self->cls == NULL) {
        PyErr_SetString(PyExc_TypeError, "UsualEntry not initialised");
        return NULL;
    }
    return PyVectorcall_Call((PyObject *)self, args, kwds);
}

static int usual_traverse(UsualEntry *self, visitproc visit, void *arg) {
    Py_VISIT(self->cls);
    Py_VISIT(self->multidict);
    Py_VISIT(self->statuses);
    return 0;
}

static int usual_clear(UsualEntry *self) {
    Py_CLEAR(self->cls);
    Py_CLEAR(self->multidict);
    Py_CLEAR(self->statuses);
    return 0;
}

static void usual_dealloc(UsualEntry *self) {
    PyObject_GC_UnTrack(self);
    usual_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ---- the answer from a whole entry (cache/stage.py ``_serve``'s common answer) ---- */

/* the response's slots this sets (http/messages.py ``Response``, ``_Message``) */
enum { R_STATUS, R_HEADERS, R_BODY, R_REASON, R_FIELDS, R_TRAILERS, R_WIRE_HEAD, R_COUNT };

static const char *response_slot_names[R_COUNT] = {
    "status", "headers", "body", "reason", "fields", "_trailers", "wire_head",
};

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    Py_ssize_t entry_offsets[S_COUNT];  /* Entry's slots */
    PyTypeObject *entry_cls;            /* Entry */
    PyTypeObject *cls;                  /* PrebuiltResponse */
    PyObject *from_body;                /* messages.FROM_BODY */
    PyObject *getversion;               /* multidict.getversion */
    Py_ssize_t offsets[R_COUNT];
} EntryAnswer;

static PyObject *copy_name, *add_name, *age_name, *cache_status_name, *x_cache_name;

/* The entry's slot (borrowed; NULL with AttributeError when unset). */
static PyObject *entry_slot(EntryAnswer *self, PyObject *entry, int slot) {
    PyObject *v = *(PyObject **)((char *)entry + self->entry_offsets[slot]);
    if (v == NULL) {
        PyErr_Format(PyExc_AttributeError, "entry slot %s is not set", slot_names[slot]);
    }
    return v;
}

/* ``wire`` and the three lines a whole answer adds, as one bytes. */
static PyObject *answer_block(PyObject *wire, PyObject *age, PyObject *cache_status, PyObject *x_cache) {
    static const char a[] = "Age: ", c[] = "\r\nCache-Status: ", x[] = "\r\nX-Cache: ";
    PyObject *parts[3] = {age, cache_status, x_cache};
    const char *labels[3] = {a, c, x};
    Py_ssize_t labels_len[3] = {sizeof(a) - 1, sizeof(c) - 1, sizeof(x) - 1};
    Py_ssize_t n = PyBytes_GET_SIZE(wire) + 2;
    for (int i = 0; i < 3; i++) {
        n += labels_len[i] + PyUnicode_GET_LENGTH(parts[i]);
    }
    PyObject *block = PyBytes_FromStringAndSize(NULL, n);
    if (block == NULL) {
        return NULL;
    }
    char *out = PyBytes_AS_STRING(block);
    memcpy(out, PyBytes_AS_STRING(wire), PyBytes_GET_SIZE(wire));
    out += PyBytes_GET_SIZE(wire);
    for (int i = 0; i < 3; i++) {
        memcpy(out, labels[i], labels_len[i]);
        out += labels_len[i];
        memcpy(out, PyUnicode_1BYTE_DATA(parts[i]), PyUnicode_GET_LENGTH(parts[i]));
        out += PyUnicode_GET_LENGTH(parts[i]);
    }
    *out++ = '\r';
    *out++ = '\n';
    return block;
}

/* The entry's fields plus Age, Cache-Status and X-Cache (``_hit_fields``): new reference. */
static PyObject *answer_fields(PyObject *proto, PyObject *age, PyObject *cache_status, PyObject *x_cache) {
    PyObject *headers = PyObject_CallMethodNoArgs(proto, copy_name);
    if (headers == NULL) {
        return NULL;
    }
    PyObject *added = NULL;
    if (PyObject_SetItem(headers, age_name, age) < 0
            || (added = PyObject_CallMethodObjArgs(headers, add_name, cache_status_name, cache_status, NULL)) == NULL
            || PyObject_SetItem(headers, x_cache_name, x_cache) < 0) {
        Py_XDECREF(added);
        Py_DECREF(headers);
        return NULL;
    }
    Py_DECREF(added);
    return headers;
}

/* Store ``value`` (a new reference, NULL when its making failed) in the response's slot. */
static int set_response_slot(EntryAnswer *self, PyObject *r, int slot, PyObject *value) {
    if (value == NULL) {
        return -1;
    }
    *(PyObject **)((char *)r + self->offsets[slot]) = value;
    return 0;
}

#define ANSWER_NARGS 5

/* (entry, now, cache_status, x_cache, head) -> the whole entry's answer, or None when
 * it is not the common one this makes (no wire block, trailers, an Age beyond what
 * ``int`` of a float makes as digits here, a status text beyond Latin-1): ``_serve``'s
 * Python then makes it. */
static PyObject *answer_call(EntryAnswer *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    if (PyVectorcall_NARGS(nargsf) != ANSWER_NARGS || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "EntryAnswer(entry, now, cache_status, x_cache, head)");
        return NULL;
    }
    PyObject *entry = args[0], *cache_status = args[2], *x_cache = args[3];
    if (!PyObject_TypeCheck(entry, self->entry_cls) || !PyFloat_CheckExact(args[1])
            || !PyUnicode_CheckExact(cache_status) || !PyUnicode_CheckExact(x_cache)
            || PyUnicode_KIND(cache_status) != PyUnicode_1BYTE_KIND
            || PyUnicode_KIND(x_cache) != PyUnicode_1BYTE_KIND) {
        Py_RETURN_NONE;
    }
    int head = PyObject_IsTrue(args[4]);
    if (head < 0) {
        return NULL;
    }
    PyObject *wire = entry_slot(self, entry, S_WIRE), *trailers = entry_slot(self, entry, S_TRAILERS);
    PyObject *age0 = entry_slot(self, entry, S_AGE0), *rtime = entry_slot(self, entry, S_RESPONSE_TIME);
    PyObject *proto = entry_slot(self, entry, S_PROTO), *status = entry_slot(self, entry, S_STATUS);
    PyObject *reason = entry_slot(self, entry, S_REASON), *body = entry_slot(self, entry, S_BODY);
    if (wire == NULL || trailers == NULL || age0 == NULL || rtime == NULL || proto == NULL || status == NULL
            || reason == NULL || body == NULL) {
        return NULL;
    }
    if (!PyBytes_CheckExact(wire) || trailers != Py_None || !PyFloat_CheckExact(age0)
            || !PyFloat_CheckExact(rtime)) {
        Py_RETURN_NONE;
    }
    double age_s = PyFloat_AS_DOUBLE(age0) + (PyFloat_AS_DOUBLE(args[1]) - PyFloat_AS_DOUBLE(rtime));
    if (age_s >= 1e15) {  /* (and an infinite one: ``int`` raises in Python) */
        Py_RETURN_NONE;
    }
    PyObject *age = decimal(age_s > 0.0 ? (unsigned long long)age_s : 0ULL);
    if (age == NULL) {
        return NULL;
    }
    PyObject *headers = NULL, *block = NULL, *version = NULL, *wire_head = NULL, *r = NULL, *result = NULL;
    if ((headers = answer_fields(proto, age, cache_status, x_cache)) == NULL
            || (block = answer_block(wire, age, cache_status, x_cache)) == NULL
            || (version = PyObject_CallOneArg(self->getversion, headers)) == NULL
            || (wire_head = PyTuple_Pack(2, version, block)) == NULL
            || (r = PyObject_CallNoArgs((PyObject *)self->cls)) == NULL) {
        goto done;
    }
    if (set_response_slot(self, r, R_STATUS, Py_NewRef(status)) == 0
            && set_response_slot(self, r, R_HEADERS, Py_NewRef(headers)) == 0
            && set_response_slot(self, r, R_BODY, head ? PyBytes_FromStringAndSize(NULL, 0) : Py_NewRef(body)) == 0
            && set_response_slot(self, r, R_REASON, Py_NewRef(reason)) == 0
            && set_response_slot(self, r, R_FIELDS, Py_NewRef(Py_None)) == 0
            && set_response_slot(self, r, R_TRAILERS, Py_NewRef(self->from_body)) == 0
            && set_response_slot(self, r, R_WIRE_HEAD, Py_NewRef(wire_head)) == 0) {
        result = Py_NewRef(r);
    }
done:
    Py_XDECREF(r);
    Py_XDECREF(wire_head);
    Py_XDECREF(version);
    Py_XDECREF(block);
    Py_XDECREF(headers);
    Py_DECREF(age);
    return result;
}

static int answer_init(EntryAnswer *self, PyObject *args, PyObject *kwds) {
    PyObject *entry_cls, *cls, *from_body, *getversion;
    if (!PyArg_ParseTuple(args, "O!O!OO:EntryAnswer", &PyType_Type, &entry_cls, &PyType_Type, &cls,
                          &from_body, &getversion)) {
        return -1;
    }
    if (slot_offsets((PyTypeObject *)entry_cls, slot_names, S_COUNT, self->entry_offsets) < 0
            || slot_offsets((PyTypeObject *)cls, response_slot_names, R_COUNT, self->offsets) < 0) {
        return -1;
    }
    if (((PyTypeObject *)cls)->tp_init != PyBaseObject_Type.tp_init) {
        PyErr_Format(PyExc_TypeError, "%R has an __init__ of its own", cls);
        return -1;
    }
    Py_INCREF(entry_cls);
    Py_XSETREF(self->entry_cls, (PyTypeObject *)entry_cls);
    Py_INCREF(cls);
    Py_XSETREF(self->cls, (PyTypeObject *)cls);
    Py_INCREF(from_body);
    Py_XSETREF(self->from_body, from_body);
    Py_INCREF(getversion);
    Py_XSETREF(self->getversion, getversion);
    self->vectorcall = (vectorcallfunc)answer_call;
    return 0;
}

static PyObject *answer_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    EntryAnswer *self = (EntryAnswer *)PyType_GenericNew(type, args, kwds);
    if (self != NULL) {
        self->vectorcall = NULL;
    }
    return (PyObject *)self;
}

static PyObject *answer_tp_call(EntryAnswer *self, PyObject *args, PyObject *kwds) {
    if (self->cls == NULL) {
        PyErr_SetString(PyExc_TypeError, "EntryAnswer not initialised");
        return NULL;
    }
    return PyVectorcall_Call((PyObject *)self, args, kwds);
}

static int answer_traverse(EntryAnswer *self, visitproc visit, void *arg) {
    Py_VISIT(self->entry_cls);
    Py_VISIT(self->cls);
    Py_VISIT(self->from_body);
    Py_VISIT(self->getversion);
    return 0;
}

static int answer_clear(EntryAnswer *self) {
    Py_CLEAR(self->entry_cls);
    Py_CLEAR(self->cls);
    Py_CLEAR(self->from_body);
    Py_CLEAR(self->getversion);
    return 0;
}

static void answer_dealloc(EntryAnswer *self) {
    PyObject_GC_UnTrack(self);
    answer_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject EntryAnswerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.cache._entry.EntryAnswer",
    .tp_doc = PyDoc_STR("EntryAnswer(Entry, PrebuiltResponse, FROM_BODY, getversion)(entry, now, cache_status, "
                        "x_cache, head): the whole entry's answer as CacheStage._serve makes it (the stored "
                        "fields plus Age, Cache-Status and X-Cache, the head as bytes), or None (_serve's "
                        "Python makes it)"),
    .tp_basicsize = sizeof(EntryAnswer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(EntryAnswer, vectorcall),
    .tp_new = answer_new,
    .tp_init = (initproc)answer_init,
    .tp_call = (ternaryfunc)answer_tp_call,
    .tp_traverse = (traverseproc)answer_traverse,
    .tp_clear = (inquiry)answer_clear,
    .tp_dealloc = (destructor)answer_dealloc,
};

static PyTypeObject UsualEntryType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.cache._entry.UsualEntry",
    .tp_doc = PyDoc_STR("UsualEntry(Entry, CIMultiDict, heuristic_statuses)(key, url, status, reason, "
                        "pairs, body, cc, targeted, request_time, response_time, "
                        "heuristic_fraction, heuristic_max, default_ttl): build_entry's Entry for "
                        "the usual response, or None (build_entry's Python decides)"),
    .tp_basicsize = sizeof(UsualEntry),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(UsualEntry, vectorcall),
    .tp_new = usual_new,
    .tp_init = (initproc)usual_init,
    .tp_call = (ternaryfunc)usual_tp_call,
    .tp_methods = usual_methods,
    .tp_traverse = (traverseproc)usual_traverse,
    .tp_clear = (inquiry)usual_clear,
    .tp_dealloc = (destructor)usual_dealloc,
};

static struct PyModuleDef entry_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "edgenode.cache._entry",
    .m_doc = PyDoc_STR("The usual miss's cache entry made in C (policy.build_entry's Python is its reference)."),
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__entry(void) {
    /* (not ``PyCapsule_Import``: it walks the package's attributes, which are not set
     * while ``edgenode.cache`` imports) */
    PyObject *dates = PyImport_ImportModule("edgenode.cache._dates");
    if (dates == NULL) {
        return NULL;
    }
    PyObject *capsule = PyObject_GetAttrString(dates, "_compute_facts");
    Py_DECREF(dates);
    if (capsule == NULL) {
        return NULL;
    }
    compute_facts = (compute_facts_fn)PyCapsule_GetPointer(capsule, FACTS_CAPSULE);
    Py_DECREF(capsule);
    if (compute_facts == NULL) {
        return NULL;
    }
    if ((private_name == NULL && (private_name = PyUnicode_InternFromString("private")) == NULL)
            || (no_cache_name == NULL && (no_cache_name = PyUnicode_InternFromString("no-cache")) == NULL)
            || (content_length_name == NULL
                && (content_length_name = PyUnicode_InternFromString("Content-Length")) == NULL)
            || (must_understand_name == NULL
                && (must_understand_name = PyUnicode_InternFromString("must-understand")) == NULL)
            || (no_store_name == NULL && (no_store_name = PyUnicode_InternFromString("no-store")) == NULL)
            || (public_name == NULL && (public_name = PyUnicode_InternFromString("public")) == NULL)
            || (max_age_name == NULL && (max_age_name = PyUnicode_InternFromString("max-age")) == NULL)
            || (s_maxage_name == NULL && (s_maxage_name = PyUnicode_InternFromString("s-maxage")) == NULL)) {
        return NULL;
    }
    const char *texts[5] = {"copy", "add", "Age", "Cache-Status", "X-Cache"};
    PyObject **names[5] = {&copy_name, &add_name, &age_name, &cache_status_name, &x_cache_name};
    for (int i = 0; i < 5; i++) {
        if (*names[i] == NULL && (*names[i] = PyUnicode_InternFromString(texts[i])) == NULL) {
            return NULL;
        }
    }
    if (PyType_Ready(&UsualEntryType) < 0 || PyType_Ready(&EntryAnswerType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&entry_module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&UsualEntryType);
    if (PyModule_AddObject(m, "UsualEntry", (PyObject *)&UsualEntryType) < 0) {
        Py_DECREF(&UsualEntryType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&EntryAnswerType);
    if (PyModule_AddObject(m, "EntryAnswer", (PyObject *)&EntryAnswerType) < 0) {
        Py_DECREF(&EntryAnswerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
