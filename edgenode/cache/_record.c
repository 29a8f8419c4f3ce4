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
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        PyObject *descr = PyUnicode_Check(name) ? _PyType_Lookup((PyTypeObject *)cls, name) : NULL;
        if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)
                || ((PyMemberDescrObject *)descr)->d_member->type != T_OBJECT_EX) {
            PyMem_Free(offsets);
            PyErr_Format(PyExc_TypeError, "%R is not an object slot of %R", name, cls);
            return -1;
        }
        offsets[i] = ((PyMemberDescrObject *)descr)->d_member->offset;
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
    Py_ssize_t n = PyBytes_GET_SIZE(args[1]), body = PyBytes_GET_SIZE(args[2]);
    if (PyBytes_GET_SIZE(args[0]) != OID_SIZE || n > (Py_ssize_t)UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "an object id of 24 bytes and a record under 4 GiB");
        return NULL;
    }
    int inline_body = body <= limit;
    PyObject *value = PyBytes_FromStringAndSize(NULL, HEAD_SIZE + n + (inline_body ? body : 0));
    if (value == NULL) {
        return NULL;
    }
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(value);
    memcpy(p, PyBytes_AS_STRING(args[0]), OID_SIZE);
    p[OID_SIZE] = (unsigned char)(n >> 24);
    p[OID_SIZE + 1] = (unsigned char)(n >> 16);
    p[OID_SIZE + 2] = (unsigned char)(n >> 8);
    p[OID_SIZE + 3] = (unsigned char)n;
    p[OID_SIZE + 4] = (unsigned char)inline_body;
    memcpy(p + HEAD_SIZE, PyBytes_AS_STRING(args[1]), n);
    if (inline_body) {
        memcpy(p + HEAD_SIZE + n, PyBytes_AS_STRING(args[2]), body);
    }
    return value;
}

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
    if (PyType_Ready(&RecordWriterType) < 0) {
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
    return m;
}
