/* A stored entry's metadata record written in C (cache/codec.py ``encode``).
 *
 * Every miss stores one record: it was ``marshal.dumps`` of the entry's fields read by
 * an ``attrgetter``.  marshal (version 3 and later) puts every object it writes that
 * has a second reference into a hash table allocated per record, so that a repeat is
 * written as a back-reference, and every value here has one (the entry holds it too):
 * ~23k instructions per record, the table's inserts, growth and release a quarter.
 * ``RecordWriter(cls, fields)(entry)`` reads the fields from the slots of ``cls`` by
 * their offsets and writes the same values in marshal's version-4 encoding, so
 * ``marshal.loads`` reads the record as before (and a record written by marshal, as in
 * every store written before, reads the same).  Only strings are remembered for
 * back-references, in a fixed table on the stack by address: the record's repeats are
 * strings held twice (the key and URL, the ETag and Last-Modified beside their fields),
 * so the record stays marshal's size.  It writes None, bools, ints of 32 bits, floats,
 * str, bytes, exact tuples and lists of these; anything else (a trailer multidict, a
 * ``Partial``, an ``istr`` name, a larger int) raises ValueError, or goes to the
 * ``fallback`` given (codec.py's marshal path), so the usual record is one C call from
 * its caller.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>
#include <time.h>

/* marshal's type codes (Python/marshal.c, version 4) */
#define M_NONE 'N'
#define M_FALSE 'F'
#define M_TRUE 'T'
#define M_INT 'i'
#define M_BINARY_FLOAT 'g'
#define M_STRING 's'
#define M_TUPLE '('
#define M_SMALL_TUPLE ')'
#define M_LIST '['
#define M_UNICODE 'u'
#define M_ASCII 'a'
#define M_SHORT_ASCII 'z'

/* nesting deeper than an entry's (the fields' list of pairs) is refused */
#define MAX_DEPTH 4

#define M_REF 'r'
#define FLAG_REF 0x80

/* strings written once and referred back to after: a fixed table by address (the
 * record's repeats are a few long values held twice, the key and URL, the ETag and
 * Last-Modified beside their fields); full, later strings are written whole */
#define SEEN_SLOTS 128
#define SEEN_MAX 96
/* a back-reference is 5 bytes: only longer strings are worth one */
#define SEEN_MIN_LEN 4

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
    int seen_count;
    PyObject *seen[SEEN_SLOTS];
    uint32_t seen_index[SEEN_SLOTS];
    char small[2048];
} Buf;

/* room for ``n`` more bytes past the stack buffer (records of large bodies' fields) */
static int grow(Buf *b, Py_ssize_t n) {
    Py_ssize_t cap = b->cap * 2;
    while (cap < b->len + n) {
        cap *= 2;
    }
    char *data = b->data == b->small ? PyMem_Malloc(cap) : PyMem_Realloc(b->data, cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (b->data == b->small) {
        memcpy(data, b->small, b->len);
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline int reserve(Buf *b, Py_ssize_t n) {
    return b->len + n <= b->cap ? 0 : grow(b, n);
}

static void put_u32(Buf *b, uint32_t v) {
    char *p = b->data + b->len;
    p[0] = (char)(v & 0xff);
    p[1] = (char)((v >> 8) & 0xff);
    p[2] = (char)((v >> 16) & 0xff);
    p[3] = (char)((v >> 24) & 0xff);
    b->len += 4;
}

/* a type code, a 32-bit length and ``n`` bytes */
static int put_sized(Buf *b, int code, const char *s, Py_ssize_t n) {
    if (n > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "record value too large");
        return -1;
    }
    if (reserve(b, 5 + n) < 0) {
        return -1;
    }
    b->data[b->len++] = (char)code;
    put_u32(b, (uint32_t)n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

/* A back-reference when ``v`` was written before (1), else 0 with ``*flag`` set to
 * FLAG_REF when it is remembered now (marshal numbers the flagged objects in order). */
static int seen_before(Buf *b, PyObject *v, int *flag) {
    *flag = 0;
    if (PyUnicode_GET_LENGTH(v) < SEEN_MIN_LEN || Py_REFCNT(v) == 1) {
        return 0;
    }
    size_t i = (size_t)(((uintptr_t)v >> 4) * 0x9E3779B97F4A7C15ull >> 57);  /* 7 bits */
    while (b->seen[i] != NULL) {
        if (b->seen[i] == v) {
            b->data[b->len++] = M_REF;
            put_u32(b, b->seen_index[i]);
            return 1;
        }
        i = (i + 1) & (SEEN_SLOTS - 1);
    }
    if (b->seen_count < SEEN_MAX) {
        b->seen[i] = v;
        b->seen_index[i] = (uint32_t)b->seen_count++;
        *flag = FLAG_REF;
    }
    return 0;
}

static int put_str(Buf *b, PyObject *v) {
    int flag;
    if (PyUnicode_READY(v) < 0) {  /* (a legacy string of the deprecated C API) */
        return -1;
    }
    if (seen_before(b, v, &flag)) {  /* (``put_value`` reserved its 5 bytes) */
        return 0;
    }
    if (PyUnicode_IS_ASCII(v)) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(v);
        const char *s = (const char *)PyUnicode_1BYTE_DATA(v);
        if (n < 256) {
            if (reserve(b, 2 + n) < 0) {
                return -1;
            }
            b->data[b->len++] = (char)(M_SHORT_ASCII | flag);
            b->data[b->len++] = (char)n;
            memcpy(b->data + b->len, s, n);
            b->len += n;
            return 0;
        }
        return put_sized(b, M_ASCII | flag, s, n);
    }
    PyObject *utf8 = PyUnicode_AsEncodedString(v, "utf8", "surrogatepass");
    if (utf8 == NULL) {
        return -1;
    }
    int r = put_sized(b, M_UNICODE | flag, PyBytes_AS_STRING(utf8), PyBytes_GET_SIZE(utf8));
    Py_DECREF(utf8);
    return r;
}

static int put_value(Buf *b, PyObject *v, int depth);

static int put_items(Buf *b, PyObject *const *items, Py_ssize_t n, int depth) {
    for (Py_ssize_t i = 0; i < n; i++) {
        if (put_value(b, items[i], depth + 1) < 0) {
            return -1;
        }
    }
    return 0;
}

static int put_value(Buf *b, PyObject *v, int depth) {
    if (reserve(b, 9) < 0) {  /* the largest fixed-size value: a float */
        return -1;
    }
    if (v == Py_None) {
        b->data[b->len++] = M_NONE;
    } else if (v == Py_True) {
        b->data[b->len++] = M_TRUE;
    } else if (v == Py_False) {
        b->data[b->len++] = M_FALSE;
    } else if (PyUnicode_CheckExact(v)) {
        return put_str(b, v);
    } else if (PyFloat_CheckExact(v)) {
        b->data[b->len++] = M_BINARY_FLOAT;
        if (PyFloat_Pack8(PyFloat_AS_DOUBLE(v), b->data + b->len, 1) < 0) {
            return -1;
        }
        b->len += 8;
    } else if (PyLong_CheckExact(v)) {
        int overflow;
        long x = PyLong_AsLongAndOverflow(v, &overflow);
        if (overflow || x < INT32_MIN || x > INT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "int beyond 32 bits");
            return -1;
        }
        b->data[b->len++] = M_INT;
        put_u32(b, (uint32_t)(int32_t)x);
    } else if (PyBytes_CheckExact(v)) {
        return put_sized(b, M_STRING, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v));
    } else if (depth >= MAX_DEPTH) {
        PyErr_SetString(PyExc_ValueError, "record nested too deep");
        return -1;
    } else if (PyTuple_CheckExact(v)) {
        Py_ssize_t n = PyTuple_GET_SIZE(v);
        if (n < 256) {
            b->data[b->len++] = M_SMALL_TUPLE;
            b->data[b->len++] = (char)n;
        } else {
            b->data[b->len++] = M_TUPLE;
            put_u32(b, (uint32_t)n);
        }
        return put_items(b, ((PyTupleObject *)v)->ob_item, n, depth);
    } else if (PyList_CheckExact(v)) {
        Py_ssize_t n = PyList_GET_SIZE(v);
        b->data[b->len++] = M_LIST;
        put_u32(b, (uint32_t)n);
        /* (no Python code runs while it is written: the list cannot change) */
        return put_items(b, ((PyListObject *)v)->ob_item, n, depth);
    } else {
        PyErr_Format(PyExc_ValueError, "not a plain record value: %.100s", Py_TYPE(v)->tp_name);
        return -1;
    }
    return 0;
}

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *fallback;    /* called with the entry when a value is not one it writes, or NULL */
    PyTypeObject *cls;
    PyObject *names;       /* tuple of the field names, for the error of an unset slot */
    Py_ssize_t count;
    Py_ssize_t *offsets;   /* each field's slot offset in ``cls`` */
} RecordWriter;

static PyObject *writer_vectorcall(RecordWriter *self, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames);

/* The slot offsets of the object slots ``names`` of ``cls`` into ``offsets``; -1 with
 * TypeError for a name that is not one. */
static int slot_offsets(PyObject *cls, PyObject *names, Py_ssize_t *offsets) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        PyObject *descr = PyUnicode_Check(name) ? _PyType_Lookup((PyTypeObject *)cls, name) : NULL;
        if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)
                || ((PyMemberDescrObject *)descr)->d_member->type != T_OBJECT_EX) {
            PyErr_Format(PyExc_TypeError, "%R is not an object slot of %R", name, cls);
            return -1;
        }
        offsets[i] = ((PyMemberDescrObject *)descr)->d_member->offset;
    }
    return 0;
}

static int writer_init(RecordWriter *self, PyObject *args, PyObject *kwds) {
    PyObject *cls, *names, *fallback = NULL;
    if (!PyArg_ParseTuple(args, "O!O!|O:RecordWriter", &PyType_Type, &cls, &PyTuple_Type, &names, &fallback)) {
        return -1;
    }
    if (fallback == Py_None) {
        fallback = NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    if (n >= 256) {
        PyErr_SetString(PyExc_ValueError, "too many fields");
        return -1;
    }
    Py_ssize_t *offsets = PyMem_Malloc(sizeof(Py_ssize_t) * (n ? n : 1));
    if (offsets == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (slot_offsets(cls, names, offsets) < 0) {
        PyMem_Free(offsets);
        return -1;
    }
    PyMem_Free(self->offsets);
    Py_INCREF(cls);
    Py_XSETREF(self->cls, (PyTypeObject *)cls);
    Py_INCREF(names);
    Py_XSETREF(self->names, names);
    Py_XINCREF(fallback);
    Py_XSETREF(self->fallback, fallback);
    self->count = n;
    self->offsets = offsets;
    self->vectorcall = (vectorcallfunc)writer_vectorcall;
    return 0;
}

/* The record of ``entry``'s slots; ValueError for a value it does not write. */
static PyObject *write_record(RecordWriter *self, PyObject *entry) {
    if (!PyObject_TypeCheck(entry, self->cls)) {
        PyErr_Format(PyExc_TypeError, "expected %.100s, got %.100s", self->cls->tp_name,
                     Py_TYPE(entry)->tp_name);
        return NULL;
    }
    Buf b;
    b.data = b.small;
    b.len = 0;
    b.cap = sizeof(b.small);
    b.seen_count = 0;
    memset(b.seen, 0, sizeof(b.seen));
    b.data[b.len++] = M_SMALL_TUPLE;
    b.data[b.len++] = (char)self->count;
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < self->count; i++) {
        PyObject *v = *(PyObject **)((char *)entry + self->offsets[i]);
        if (v == NULL) {
            PyErr_SetObject(PyExc_AttributeError, PyTuple_GET_ITEM(self->names, i));
            goto done;
        }
        if (put_value(&b, v, 0) < 0) {
            goto done;
        }
    }
    result = PyBytes_FromStringAndSize(b.data, b.len);
done:
    if (b.data != b.small) {
        PyMem_Free(b.data);
    }
    return result;
}

/* ``write_record``, handing an entry with a value it does not write to the fallback */
static PyObject *writer_vectorcall(RecordWriter *self, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames) {
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "RecordWriter takes one entry");
        return NULL;
    }
    PyObject *result = write_record(self, args[0]);
    if (result == NULL && self->fallback != NULL && PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyErr_Clear();
        result = PyObject_CallOneArg(self->fallback, args[0]);
    }
    return result;
}

static PyObject *writer_call(RecordWriter *self, PyObject *args, PyObject *kwds) {
    if (self->cls == NULL) {
        PyErr_SetString(PyExc_TypeError, "RecordWriter not initialised");
        return NULL;
    }
    return PyVectorcall_Call((PyObject *)self, args, kwds);
}

static PyObject *writer_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    RecordWriter *self = (RecordWriter *)PyType_GenericNew(type, args, kwds);
    if (self != NULL) {
        self->vectorcall = NULL;
    }
    return (PyObject *)self;
}

static int writer_traverse(RecordWriter *self, visitproc visit, void *arg) {
    Py_VISIT(self->cls);
    Py_VISIT(self->names);
    Py_VISIT(self->fallback);
    return 0;
}

static int writer_clear(RecordWriter *self) {
    Py_CLEAR(self->cls);
    Py_CLEAR(self->names);
    Py_CLEAR(self->fallback);
    return 0;
}

static void writer_dealloc(RecordWriter *self) {
    PyObject_GC_UnTrack(self);
    writer_clear(self);
    PyMem_Free(self->offsets);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject RecordWriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.cache._record.RecordWriter",
    .tp_doc = PyDoc_STR("RecordWriter(cls, fields[, fallback])(obj): marshal.dumps(tuple of obj's "
                        "slots named by fields) for plain values, strings referred back to; "
                        "fallback(obj) for an obj with other values (else ValueError)"),
    .tp_basicsize = sizeof(RecordWriter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(RecordWriter, vectorcall),
    .tp_new = writer_new,
    .tp_init = (initproc)writer_init,
    .tp_call = (ternaryfunc)writer_call,
    .tp_traverse = (traverseproc)writer_traverse,
    .tp_clear = (inquiry)writer_clear,
    .tp_dealloc = (destructor)writer_dealloc,
};

/* an object value's head (codec.py ``_HEAD``, ``>24sIB``): the object id, the record's
 * length big-endian, 1 when the body follows */
#define OID_SIZE 24
#define HEAD_SIZE (OID_SIZE + 4 + 1)

PyDoc_STRVAR(pack_value_doc,
"pack_value(oid, record, body, inline_limit) -> bytes\n\n"
"An object's stored value (codec.py ``pack``): the head (the 24-byte ``oid``, the\n"
"record's length, whether the body follows), ``record``, and ``body`` when it is at most\n"
"``inline_limit`` bytes, in one allocation.");

/* The stored value of ``record`` and ``body`` (both bytes) under the 24-byte ``oid``. */
static PyObject *make_value(const char *oid, PyObject *record, PyObject *body, Py_ssize_t limit) {
    Py_ssize_t n = PyBytes_GET_SIZE(record), body_len = PyBytes_GET_SIZE(body);
    if (n > (Py_ssize_t)UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a record under 4 GiB");
        return NULL;
    }
    int inline_body = body_len <= limit;
    PyObject *value = PyBytes_FromStringAndSize(NULL, HEAD_SIZE + n + (inline_body ? body_len : 0));
    if (value == NULL) {
        return NULL;
    }
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(value);
    memcpy(p, oid, OID_SIZE);
    p[OID_SIZE] = (unsigned char)(n >> 24);
    p[OID_SIZE + 1] = (unsigned char)(n >> 16);
    p[OID_SIZE + 2] = (unsigned char)(n >> 8);
    p[OID_SIZE + 3] = (unsigned char)n;
    p[OID_SIZE + 4] = (unsigned char)inline_body;
    memcpy(p + HEAD_SIZE, PyBytes_AS_STRING(record), n);
    if (inline_body) {
        memcpy(p + HEAD_SIZE + n, PyBytes_AS_STRING(body), body_len);
    }
    return value;
}

static PyObject *pack_value(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1]) || !PyBytes_Check(args[2])
            || !PyLong_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "pack_value(oid: bytes, record: bytes, body: bytes, inline_limit: int)");
        return NULL;
    }
    Py_ssize_t limit = PyLong_AsSsize_t(args[3]);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (PyBytes_GET_SIZE(args[0]) != OID_SIZE) {
        PyErr_SetString(PyExc_ValueError, "an object id of 24 bytes and a record under 4 GiB");
        return NULL;
    }
    return make_value(PyBytes_AS_STRING(args[0]), args[1], args[2], limit);
}

/* -- the usual object's rows (lmdb_store.py ``_Txn.insert_all``) ----------------------
 *
 * ``_Txn.insert`` stores one entry: its object id (16 bytes of the key's hash, 8 of the
 * variant's), the next tick, and its rows through py-lmdb's ``put``.  The usual entry of
 * a single-process node is a key read absent (no old variants to read or replace) that
 * is its own URL (no URL index row) in a store without URL index rows, and it fits: its
 * rows are the object under its tick (appended), the id's tick, a large body's own row
 * and one row per Surrogate-Key, and its totals move by one object and one URL.
 * ``UsualWriter(Entry, hash, inline_limit)`` writes a batch's usual entries in one call,
 * the same rows in the same order as ``insert`` (the hashes from ``hash``, lmdb_store's
 * ``_h``; a Surrogate-Key's kept in a memo of its own, since most stores repeat a few and
 * a call of ``_h`` is a Python frame), and hands every other entry to ``insert`` (its
 * ``fallback``) with the totals written back first (read again before the next usual
 * entry, as ``store._url_rows`` is). */

/* Surrogate-Keys whose hashes are kept (then the memo starts again) */
#define TAGS_KEPT 1024

/* the entry slots the rows are made of */
enum { F_KEY, F_URL, F_VARIANT, F_SIZE, F_BODY, F_TAGS, F_COUNT };
static const char *const usual_fields[F_COUNT] = {"key", "url", "variant", "size", "body", "surrogate_keys"};
/* the transaction's totals it moves (lmdb_store ``_Txn.totals``) */
enum { T_TICK, T_BYTES, T_ENTRIES, T_URLS, T_COUNT };
static const char *const total_names[T_COUNT] = {"tick", "bytes", "entries", "urls"};

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyTypeObject *cls;
    PyObject *hash;           /* hash(text, size) -> bytes of that size */
    PyObject *empty_variant;  /* hash("", 8): the variant of every entry without Vary */
    PyObject *sizes[2];       /* 16 and 8, the digest sizes */
    PyObject *url_rows;       /* "_url_rows", read from the store */
    PyObject *tags;           /* Surrogate-Key -> its hash: most stores repeat a few tags */
    PyObject *totals[T_COUNT];
    Py_ssize_t offsets[F_COUNT];
    Py_ssize_t inline_limit;
} UsualWriter;

/* ``text``'s hash of ``size`` bytes (new reference), checked for its length */
static PyObject *digest(UsualWriter *self, PyObject *text, int which, Py_ssize_t size) {
    PyObject *args[2] = {text, self->sizes[which]};
    PyObject *d = PyObject_Vectorcall(self->hash, args, 2, NULL);
    if (d != NULL && (!PyBytes_CheckExact(d) || PyBytes_GET_SIZE(d) != size)) {
        Py_DECREF(d);
        PyErr_SetString(PyExc_TypeError, "hash gave no digest of the size asked");
        return NULL;
    }
    return d;
}

/* The 16-byte hash of the Surrogate-Key ``tag`` (borrowed: held by the memo). */
static PyObject *tag_digest(UsualWriter *self, PyObject *tag) {
    PyObject *d = PyDict_GetItemWithError(self->tags, tag);
    if (d != NULL || PyErr_Occurred()) {
        return d;
    }
    if (PyDict_GET_SIZE(self->tags) >= TAGS_KEPT) {
        PyDict_Clear(self->tags);
    }
    d = digest(self, tag, 0, 16);
    if (d == NULL) {
        return NULL;
    }
    int r = PyDict_SetItem(self->tags, tag, d);
    Py_DECREF(d);
    return r < 0 ? NULL : d;
}

/* ``put(key, value, True, True, append, db)``: py-lmdb's positional form */
static int put_row(PyObject *put, PyObject *key, PyObject *value, int append, PyObject *db) {
    PyObject *args[6] = {key, value, Py_True, Py_True, append ? Py_True : Py_False, db};
    PyObject *r = PyObject_Vectorcall(put, args, 6, NULL);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

static int read_totals(UsualWriter *self, PyObject *totals, long long *t) {
    for (int i = 0; i < T_COUNT; i++) {
        PyObject *v = PyDict_GetItemWithError(totals, self->totals[i]);
        if (v == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_SetObject(PyExc_KeyError, self->totals[i]);
            }
            return -1;
        }
        t[i] = PyLong_AsLongLong(v);
        if (t[i] == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    return 0;
}

static int write_totals(UsualWriter *self, PyObject *totals, const long long *t) {
    for (int i = 0; i < T_COUNT; i++) {
        PyObject *v = PyLong_FromLongLong(t[i]);
        if (v == NULL || PyDict_SetItem(totals, self->totals[i], v) < 0) {
            Py_XDECREF(v);
            return -1;
        }
        Py_DECREF(v);
    }
    return 0;
}

/* 1 when ``store._url_rows`` is False (no URL index rows: a new key that is its URL is a
 * new URL), 0 otherwise, -1 on error */
static int no_url_rows(UsualWriter *self, PyObject *store) {
    PyObject *v = PyObject_GetAttr(store, self->url_rows);
    if (v == NULL) {
        return -1;
    }
    int r = v == Py_False;
    Py_DECREF(v);
    return r;
}

/* The slots of an entry whose key was read absent when it is a usual one that fits in
 * ``room`` (1), else 0. */
static int usual_slots(UsualWriter *self, PyObject *entry, PyObject *record, long long bytes,
                       long long room, PyObject **f, long long *size) {
    if (!Py_IS_TYPE(entry, self->cls) || !PyBytes_CheckExact(record)) {
        return 0;
    }
    for (int i = 0; i < F_COUNT; i++) {
        f[i] = *(PyObject **)((char *)entry + self->offsets[i]);
        if (f[i] == NULL) {
            return 0;  /* (``insert`` raises the AttributeError) */
        }
    }
    if (!PyUnicode_CheckExact(f[F_KEY]) || !PyUnicode_CheckExact(f[F_URL])
            || !PyUnicode_CheckExact(f[F_VARIANT]) || !PyLong_CheckExact(f[F_SIZE])
            || !PyBytes_CheckExact(f[F_BODY]) || !PyTuple_CheckExact(f[F_TAGS])) {
        return 0;
    }
    if (f[F_KEY] != f[F_URL] && PyUnicode_Compare(f[F_KEY], f[F_URL]) != 0) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(f[F_TAGS]); i++) {
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(f[F_TAGS], i))) {
            return 0;
        }
    }
    int overflow;
    *size = PyLong_AsLongLongAndOverflow(f[F_SIZE], &overflow);
    return !overflow && *size >= 0 && bytes + *size <= room;
}

/* The rows of a usual entry (``f``: its slots), the totals ``t`` moved. */
static int usual_rows(UsualWriter *self, PyObject *put, PyObject *const *db, PyObject *record,
                      PyObject *const *f, long long size, long long *t) {
    char oid_buf[OID_SIZE + 16], tick_buf[8];
    PyObject *h = digest(self, f[F_KEY], 0, 16);
    if (h == NULL) {
        return -1;
    }
    memcpy(oid_buf, PyBytes_AS_STRING(h), 16);
    Py_DECREF(h);
    if (PyUnicode_GET_LENGTH(f[F_VARIANT]) == 0) {
        memcpy(oid_buf + 16, PyBytes_AS_STRING(self->empty_variant), 8);
    } else {
        if ((h = digest(self, f[F_VARIANT], 1, 8)) == NULL) {
            return -1;
        }
        memcpy(oid_buf + 16, PyBytes_AS_STRING(h), 8);
        Py_DECREF(h);
    }
    unsigned long long tick = (unsigned long long)++t[T_TICK];
    for (int i = 0; i < 8; i++) {
        tick_buf[i] = (char)(tick >> (56 - 8 * i));
    }
    int r = -1;
    PyObject *oid = PyBytes_FromStringAndSize(oid_buf, OID_SIZE);
    PyObject *tick_key = PyBytes_FromStringAndSize(tick_buf, 8);
    PyObject *value = oid && tick_key ? make_value(oid_buf, record, f[F_BODY], self->inline_limit) : NULL;
    if (value == NULL || put_row(put, tick_key, value, 1, db[0]) < 0
            || put_row(put, oid, tick_key, 0, db[1]) < 0) {
        goto done;
    }
    if (PyBytes_GET_SIZE(f[F_BODY]) > self->inline_limit && put_row(put, oid, f[F_BODY], 0, db[2]) < 0) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(f[F_TAGS]); i++) {
        if ((h = tag_digest(self, PyTuple_GET_ITEM(f[F_TAGS], i))) == NULL) {
            goto done;
        }
        memcpy(oid_buf, PyBytes_AS_STRING(h), 16);  /* the tag row: its hash, then the id */
        memcpy(oid_buf + 16, PyBytes_AS_STRING(oid), OID_SIZE);
        PyObject *row = PyBytes_FromStringAndSize(oid_buf, 16 + OID_SIZE);
        PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
        int failed = row == NULL || empty == NULL || put_row(put, row, empty, 0, db[3]) < 0;
        Py_XDECREF(row);
        Py_XDECREF(empty);
        if (failed) {
            goto done;
        }
    }
    t[T_URLS] += 1;
    t[T_BYTES] += size;
    t[T_ENTRIES] += 1;
    r = 0;
done:
    Py_XDECREF(oid);
    Py_XDECREF(tick_key);
    Py_XDECREF(value);
    return r;
}

/* One call's arguments and state.  The totals dict and ``store._url_rows`` are read only
 * before a usual entry, and the totals written back only before a fallback and at the
 * end, so a batch with no key read absent (several workers) costs nothing more than the
 * loop of ``insert``. */
typedef struct {
    PyObject *put;
    PyObject *const *db;  /* obj, key, body, tag */
    PyObject *totals;
    long long room;
    PyObject *store;
    PyObject *fallback;
    long long t[T_COUNT];
    int stale;            /* ``t`` and ``plain`` not read since the last fallback (or ever) */
    int dirty;            /* ``t`` moved since it was read */
    int plain;            /* ``store._url_rows`` is False */
} Batch;

/* One batch item: its rows when usual, else ``fallback(entry, record, new)``. */
static int usual_item(UsualWriter *self, Batch *b, PyObject *item) {
    if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 3) {
        PyErr_SetString(PyExc_TypeError, "batch items are (entry, record, new)");
        return -1;
    }
    PyObject *entry = PyTuple_GET_ITEM(item, 0), *record = PyTuple_GET_ITEM(item, 1);
    if (PyTuple_GET_ITEM(item, 2) == Py_True) {  /* only a key read absent can be usual */
        if (b->stale) {
            if ((b->plain = no_url_rows(self, b->store)) < 0 || read_totals(self, b->totals, b->t) < 0) {
                return -1;
            }
            b->stale = 0;
        }
        PyObject *f[F_COUNT];
        long long size;
        if (b->plain && usual_slots(self, entry, record, b->t[T_BYTES], b->room, f, &size)) {
            b->dirty = 1;
            return usual_rows(self, b->put, b->db, record, f, size, b->t);
        }
    }
    if (b->dirty) {
        if (write_totals(self, b->totals, b->t) < 0) {
            return -1;
        }
        b->dirty = 0;
    }
    PyObject *r = PyObject_Vectorcall(b->fallback, ((PyTupleObject *)item)->ob_item, 3, NULL);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    b->stale = 1;  /* (``insert`` moved the totals and may have written a URL index row) */
    return 0;
}

static PyObject *usual_vectorcall(UsualWriter *self, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames) {
    if (PyVectorcall_NARGS(nargsf) != 7 || kwnames != NULL || !PyTuple_CheckExact(args[1])
            || PyTuple_GET_SIZE(args[1]) != 4 || !PyList_CheckExact(args[2])
            || !PyDict_CheckExact(args[3]) || !PyLong_CheckExact(args[4])) {
        PyErr_SetString(PyExc_TypeError, "UsualWriter(put, (obj, key, body, tag), batch: list, "
                                         "totals: dict, room: int, store, fallback)");
        return NULL;
    }
    Batch b = {args[0], ((PyTupleObject *)args[1])->ob_item, args[3], PyLong_AsLongLong(args[4]),
               args[5], args[6], {0}, 1, 0, 0};
    if (b.room == -1 && PyErr_Occurred()) {
        return NULL;
    }
    /* (the list is flush's own copy, but ``fallback`` runs Python: each item is held) */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(args[2]); i++) {
        PyObject *item = PyList_GET_ITEM(args[2], i);
        Py_INCREF(item);
        int r = usual_item(self, &b, item);
        Py_DECREF(item);
        if (r < 0) {
            return NULL;
        }
    }
    if (b.dirty && write_totals(self, b.totals, b.t) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static int usual_init(UsualWriter *self, PyObject *args, PyObject *kwds) {
    PyObject *cls, *hash;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "O!On:UsualWriter", &PyType_Type, &cls, &hash, &limit)) {
        return -1;
    }
    PyObject *names = PyTuple_New(F_COUNT);
    if (names == NULL) {
        return -1;
    }
    for (int i = 0; i < F_COUNT; i++) {
        PyObject *name = PyUnicode_InternFromString(usual_fields[i]);
        if (name == NULL) {
            Py_DECREF(names);
            return -1;
        }
        PyTuple_SET_ITEM(names, i, name);
    }
    int r = slot_offsets(cls, names, self->offsets);
    Py_DECREF(names);
    if (r < 0) {
        return -1;
    }
    for (int i = 0; i < T_COUNT; i++) {
        Py_XSETREF(self->totals[i], PyUnicode_InternFromString(total_names[i]));
        if (self->totals[i] == NULL) {
            return -1;
        }
    }
    Py_XSETREF(self->url_rows, PyUnicode_InternFromString("_url_rows"));
    Py_XSETREF(self->tags, PyDict_New());
    Py_XSETREF(self->sizes[0], PyLong_FromLong(16));
    Py_XSETREF(self->sizes[1], PyLong_FromLong(8));
    if (self->url_rows == NULL || self->tags == NULL || self->sizes[0] == NULL || self->sizes[1] == NULL) {
        return -1;
    }
    Py_INCREF(cls);
    Py_XSETREF(self->cls, (PyTypeObject *)cls);
    Py_INCREF(hash);
    Py_XSETREF(self->hash, hash);
    self->inline_limit = limit;
    PyObject *empty = PyUnicode_FromStringAndSize(NULL, 0);
    PyObject *h = empty == NULL ? NULL : digest(self, empty, 1, 8);
    Py_XDECREF(empty);
    if (h == NULL) {
        return -1;
    }
    Py_XSETREF(self->empty_variant, h);
    self->vectorcall = (vectorcallfunc)usual_vectorcall;
    return 0;
}

static PyObject *usual_call(UsualWriter *self, PyObject *args, PyObject *kwds) {
    if (self->empty_variant == NULL) {
        PyErr_SetString(PyExc_TypeError, "UsualWriter not initialised");
        return NULL;
    }
    return PyVectorcall_Call((PyObject *)self, args, kwds);
}

static PyObject *usual_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    UsualWriter *self = (UsualWriter *)PyType_GenericNew(type, args, kwds);
    if (self != NULL) {
        self->vectorcall = NULL;
    }
    return (PyObject *)self;
}

static int usual_traverse(UsualWriter *self, visitproc visit, void *arg) {
    Py_VISIT(self->cls);
    Py_VISIT(self->hash);
    return 0;
}

static int usual_clear(UsualWriter *self) {
    Py_CLEAR(self->cls);
    Py_CLEAR(self->hash);
    Py_CLEAR(self->empty_variant);
    Py_CLEAR(self->url_rows);
    Py_CLEAR(self->tags);
    for (int i = 0; i < 2; i++) {
        Py_CLEAR(self->sizes[i]);
    }
    for (int i = 0; i < T_COUNT; i++) {
        Py_CLEAR(self->totals[i]);
    }
    return 0;
}

static void usual_dealloc(UsualWriter *self) {
    PyObject_GC_UnTrack(self);
    usual_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject UsualWriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.cache._record.UsualWriter",
    .tp_doc = PyDoc_STR("UsualWriter(cls, hash, inline_limit)(put, (obj, key, body, tag), batch, "
                        "totals, room, store, fallback): the rows of a batch's usual entries "
                        "(new, key == URL, no URL index rows, fitting in room), the others "
                        "by fallback(entry, record, new)"),
    .tp_basicsize = sizeof(UsualWriter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(UsualWriter, vectorcall),
    .tp_new = usual_new,
    .tp_init = (initproc)usual_init,
    .tp_call = (ternaryfunc)usual_call,
    .tp_traverse = (traverseproc)usual_traverse,
    .tp_clear = (inquiry)usual_clear,
    .tp_dealloc = (destructor)usual_dealloc,
};

/* -- the store's queue (lmdb_store.py ``SharedStore.put``) ----------------------------
 *
 * Every miss queues its entry for the pass's commit: the size and write-failure checks,
 * the record (``encode``), whether the key was read absent, the batch's tuple and key,
 * and the pass's first store schedules the commit.  ``StoreQueue(cls, encode, batch,
 * keys, absent, schedule, fallback)(entry)`` takes those steps in one call on the
 * store's own list and sets; an entry of another type, or one ``encode`` refuses
 * (ValueError), goes to ``fallback`` (the Python ``put``: the reference, which logs it). */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyTypeObject *cls;
    Py_ssize_t key_offset, size_offset;
    PyObject *encode;
    PyObject *batch;     /* list of (entry, record, new) */
    PyObject *keys;      /* set: the batch's keys */
    PyObject *absent;    /* set of keys read absent, or None */
    PyObject *schedule;  /* () -> bool: the pass's first store (its answer is put's) */
    PyObject *fallback;  /* (entry) -> bool */
    long long max_bytes;
    double retry_until;  /* (monotonic clock) no store before then: writes failed */
} StoreQueue;

static int writes_paused(StoreQueue *self) {
    if (self->retry_until <= 0) {
        return 0;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);  /* (``time.monotonic``'s clock) */
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9 < self->retry_until;
}

/* Queue ``entry`` (its ``key``): the batch's tuple and key, the absent key forgotten. */
static int enqueue(StoreQueue *self, PyObject *entry, PyObject *key, PyObject *record) {
    int new = 0;
    if (self->absent != Py_None) {
        new = PySet_Discard(self->absent, key);  /* 1: it was there */
        if (new < 0) {
            return -1;
        }
    }
    PyObject *item = PyTuple_Pack(3, entry, record, new ? Py_True : Py_False);
    if (item == NULL) {
        return -1;
    }
    int r = PyList_Append(self->batch, item);
    Py_DECREF(item);
    return r < 0 ? -1 : PySet_Add(self->keys, key);
}

static PyObject *queue_vectorcall(StoreQueue *self, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames) {
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "StoreQueue takes one entry");
        return NULL;
    }
    PyObject *entry = args[0];
    if (!Py_IS_TYPE(entry, self->cls)) {
        return PyObject_CallOneArg(self->fallback, entry);
    }
    PyObject *key = *(PyObject **)((char *)entry + self->key_offset);
    PyObject *size = *(PyObject **)((char *)entry + self->size_offset);
    if (key == NULL || size == NULL || !PyUnicode_CheckExact(key) || !PyLong_CheckExact(size)) {
        return PyObject_CallOneArg(self->fallback, entry);
    }
    int overflow;
    long long n = PyLong_AsLongLongAndOverflow(size, &overflow);
    if (overflow > 0 || n > self->max_bytes || writes_paused(self)) {
        Py_RETURN_FALSE;
    }
    PyObject *record = PyObject_CallOneArg(self->encode, entry);
    if (record == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError)) {
            return NULL;
        }
        PyErr_Clear();
        return PyObject_CallOneArg(self->fallback, entry);  /* (it logs the refusal) */
    }
    int r = enqueue(self, entry, key, record);
    Py_DECREF(record);
    if (r < 0) {
        return NULL;
    }
    if (PyList_GET_SIZE(self->batch) == 1) {
        return PyObject_CallNoArgs(self->schedule);
    }
    Py_RETURN_TRUE;
}

static int queue_init(StoreQueue *self, PyObject *args, PyObject *kwds) {
    PyObject *cls, *encode, *batch, *keys, *absent, *schedule, *fallback;
    if (!PyArg_ParseTuple(args, "O!OO!O!OOO:StoreQueue", &PyType_Type, &cls, &encode, &PyList_Type,
                          &batch, &PySet_Type, &keys, &absent, &schedule, &fallback)) {
        return -1;
    }
    if (absent != Py_None && !PySet_Check(absent)) {
        PyErr_SetString(PyExc_TypeError, "absent: a set or None");
        return -1;
    }
    PyObject *names = Py_BuildValue("(ss)", "key", "size");
    if (names == NULL) {
        return -1;
    }
    Py_ssize_t offsets[2];
    int r = slot_offsets(cls, names, offsets);
    Py_DECREF(names);
    if (r < 0) {
        return -1;
    }
    self->key_offset = offsets[0];
    self->size_offset = offsets[1];
    Py_INCREF(cls);
    Py_XSETREF(self->cls, (PyTypeObject *)cls);
    Py_INCREF(encode);
    Py_XSETREF(self->encode, encode);
    Py_INCREF(batch);
    Py_XSETREF(self->batch, batch);
    Py_INCREF(keys);
    Py_XSETREF(self->keys, keys);
    Py_INCREF(absent);
    Py_XSETREF(self->absent, absent);
    Py_INCREF(schedule);
    Py_XSETREF(self->schedule, schedule);
    Py_INCREF(fallback);
    Py_XSETREF(self->fallback, fallback);
    self->vectorcall = (vectorcallfunc)queue_vectorcall;
    return 0;
}

static PyObject *queue_call(StoreQueue *self, PyObject *args, PyObject *kwds) {
    if (self->cls == NULL) {
        PyErr_SetString(PyExc_TypeError, "StoreQueue not initialised");
        return NULL;
    }
    return PyVectorcall_Call((PyObject *)self, args, kwds);
}

static PyObject *queue_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    StoreQueue *self = (StoreQueue *)PyType_GenericNew(type, args, kwds);
    if (self != NULL) {
        self->vectorcall = NULL;
        self->max_bytes = 0;
        self->retry_until = 0;
    }
    return (PyObject *)self;
}

static int queue_traverse(StoreQueue *self, visitproc visit, void *arg) {
    Py_VISIT(self->cls);
    Py_VISIT(self->encode);
    Py_VISIT(self->batch);
    Py_VISIT(self->keys);
    Py_VISIT(self->absent);
    Py_VISIT(self->schedule);
    Py_VISIT(self->fallback);
    return 0;
}

static int queue_clear(StoreQueue *self) {
    Py_CLEAR(self->cls);
    Py_CLEAR(self->encode);
    Py_CLEAR(self->batch);
    Py_CLEAR(self->keys);
    Py_CLEAR(self->absent);
    Py_CLEAR(self->schedule);
    Py_CLEAR(self->fallback);
    return 0;
}

static void queue_dealloc(StoreQueue *self) {
    PyObject_GC_UnTrack(self);
    queue_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef queue_members[] = {
    {"max_bytes", T_LONGLONG, offsetof(StoreQueue, max_bytes), 0,
     "entries larger than this are refused"},
    {"retry_until", T_DOUBLE, offsetof(StoreQueue, retry_until), 0,
     "time.monotonic() before which entries are refused (writes failed); 0: none"},
    {NULL},
};

static PyTypeObject StoreQueueType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.cache._record.StoreQueue",
    .tp_doc = PyDoc_STR("StoreQueue(cls, encode, batch, keys, absent, schedule, fallback)(entry): "
                        "SharedStore.put's queueing in one call; fallback(entry) for another type "
                        "or an entry encode refuses"),
    .tp_basicsize = sizeof(StoreQueue),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(StoreQueue, vectorcall),
    .tp_members = queue_members,
    .tp_new = queue_new,
    .tp_init = (initproc)queue_init,
    .tp_call = (ternaryfunc)queue_call,
    .tp_traverse = (traverseproc)queue_traverse,
    .tp_clear = (inquiry)queue_clear,
    .tp_dealloc = (destructor)queue_dealloc,
};

static PyMethodDef record_methods[] = {
    {"pack_value", (PyCFunction)(void (*)(void))pack_value, METH_FASTCALL, pack_value_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef record_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "edgenode.cache._record",
    .m_doc = PyDoc_STR("A stored entry's metadata record in marshal's encoding, and the object's "
                       "stored value, written in C."),
    .m_size = -1,
    .m_methods = record_methods,
};

PyMODINIT_FUNC PyInit__record(void) {
    if (PyType_Ready(&RecordWriterType) < 0 || PyType_Ready(&UsualWriterType) < 0
            || PyType_Ready(&StoreQueueType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&record_module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&RecordWriterType);
    if (PyModule_AddObject(m, "RecordWriter", (PyObject *)&RecordWriterType) < 0) {
        Py_DECREF(&RecordWriterType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&UsualWriterType);
    if (PyModule_AddObject(m, "UsualWriter", (PyObject *)&UsualWriterType) < 0) {
        Py_DECREF(&UsualWriterType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&StoreQueueType);
    if (PyModule_AddObject(m, "StoreQueue", (PyObject *)&StoreQueueType) < 0) {
        Py_DECREF(&StoreQueueType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
