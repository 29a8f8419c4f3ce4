/* The per-field passes of a miss in C: the origin request's field lines from the
 * client's (proxy/forwarding.py ``forward_head``), the origin client's field callback
 * (http/client.py), the response's hop-by-hop check (``forward_response``) and the
 * stored fields' passes (cache/policy.py ``build_entry``).
 *
 * In Python each is ~1k interpreter instructions per field or test: a join, a
 * lower-cased copy, a regular expression and two counts over the request's lines; a
 * callback frame and two decodes per field as the origin's head is parsed; a multidict
 * test per hop-by-hop name; a lower() per name, a filter, a join, two counts and an
 * encode when the response is stored.
 * Here each is one C call, with the same results (tests/http/test_fields_native.py
 * holds them to the Python expressions they replace).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>

/* ``name.lower()`` of an ASCII name as a new plain str, ``name`` itself when it is one
 * already. */
static PyObject *lowered_ascii(PyObject *name, const Py_UCS1 *src, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n && !(src[i] >= 'A' && src[i] <= 'Z')) {
        i++;
    }
    if (i == n && PyUnicode_CheckExact(name)) {
        Py_INCREF(name);
        return name;
    }
    PyObject *out = PyUnicode_New(n, 127);
    if (out == NULL) {
        return NULL;
    }
    Py_UCS1 *dst = PyUnicode_1BYTE_DATA(out);
    for (Py_ssize_t j = 0; j < n; j++) {
        Py_UCS1 c = src[j];
        dst[j] = (c >= 'A' && c <= 'Z') ? (Py_UCS1)(c + 32) : c;
    }
    return out;
}

/* Lower-cased names kept by their text, a slot per (length, first, middle and last
 * character): an origin's field names repeat from response to response, so each is
 * lowered, allocated and hashed once (the stored fields' names go through a set), not
 * once per field. */
#define KEPT_SLOTS 128
static struct {
    PyObject *text;  /* an exact str holding the name as it came */
    PyObject *low;   /* its lower-case form, hashed */
} kept[KEPT_SLOTS];

/* The slot of a name's text (``n`` > 0 characters, or bytes of the same values). */
static size_t kept_slot(const unsigned char *src, Py_ssize_t n) {
    return ((size_t)n * 31 + src[0] * 7 + src[n / 2] * 3 + src[n - 1]) % KEPT_SLOTS;
}

/* The kept name whose text is the ``n`` > 0 bytes at ``src`` (borrowed), or NULL. */
static PyObject *kept_text(const unsigned char *src, Py_ssize_t n, size_t slot) {
    PyObject *text = kept[slot].text;
    if (text != NULL && PyUnicode_GET_LENGTH(text) == n
            && memcmp(PyUnicode_1BYTE_DATA(text), src, (size_t)n) == 0) {
        return text;
    }
    return NULL;
}

/* ``name.lower()`` as a plain str (a new reference): ASCII names (every field name on
 * the wire) lowered here and kept (``kept``), others by ``str.lower``. */
static PyObject *lowered(PyObject *name) {
    if (!PyUnicode_Check(name)) {
        PyErr_SetString(PyExc_TypeError, "field names must be str");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(name)) {
        return PyObject_CallMethod(name, "lower", NULL);
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(name);
    const Py_UCS1 *src = PyUnicode_1BYTE_DATA(name);
    if (n == 0) {
        return lowered_ascii(name, src, n);
    }
    size_t slot = kept_slot(src, n);
    if (kept_text(src, n, slot) != NULL) {
        Py_INCREF(kept[slot].low);
        return kept[slot].low;
    }
    PyObject *low = lowered_ascii(name, src, n);
    if (low == NULL) {
        return NULL;
    }
    if (PyUnicode_CheckExact(name)) {
        (void)PyObject_Hash(low);  /* kept with it (a str's hash cannot fail) */
        Py_INCREF(name);
        Py_INCREF(low);
        Py_XSETREF(kept[slot].text, name);
        Py_XSETREF(kept[slot].low, low);
    }
    return low;
}

/* The pair at ``i`` of ``pairs`` as borrowed name and value (str both). */
static int pair_at(PyObject *pairs, Py_ssize_t i, PyObject **name, PyObject **value) {
    PyObject *pair = PyList_GET_ITEM(pairs, i);
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        PyErr_SetString(PyExc_TypeError, "fields must be (name, value) pairs");
        return -1;
    }
    *name = PyTuple_GET_ITEM(pair, 0);
    *value = PyTuple_GET_ITEM(pair, 1);
    if (!PyUnicode_Check(*value)) {
        PyErr_SetString(PyExc_TypeError, "field values must be str");
        return -1;
    }
    return 0;
}

/* The lower-cased name of the pair at ``i`` (a new reference; NULL with an error set), and
 * its name and value as borrowed references. */
static PyObject *lowered_at(PyObject *pairs, Py_ssize_t i, PyObject **name, PyObject **value) {
    if (pair_at(pairs, i, name, value) < 0) {
        return NULL;
    }
    return lowered(*name);
}

PyDoc_STRVAR(lower_names_doc,
"lower_names(pairs) -> set\n\n"
"The lower-case names of a list of (name, value) str pairs: ``{k.lower() for k, _ in pairs}``.");

static PyObject *lower_names(PyObject *self, PyObject *pairs) {
    if (!PyList_Check(pairs)) {
        PyErr_SetString(PyExc_TypeError, "pairs must be a list");
        return NULL;
    }
    PyObject *names = PySet_New(NULL);
    if (names == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
        PyObject *name, *value;
        PyObject *low = lowered_at(pairs, i, &name, &value);
        if (low == NULL) {
            goto fail;
        }
        int rc = PySet_Add(names, low);
        Py_DECREF(low);
        if (rc < 0) {
            goto fail;
        }
    }
    return names;
fail:
    Py_DECREF(names);
    return NULL;
}

/* Whether ``s`` can be written as it is in a field line: Latin-1, no CR or LF. */
static int wire_safe(PyObject *s) {
    if (PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) {
        return 0;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    const void *data = PyUnicode_1BYTE_DATA(s);
    return memchr(data, '\r', n) == NULL && memchr(data, '\n', n) == NULL;
}

PyDoc_STRVAR(field_block_doc,
"field_block(pairs, drop) -> (stored, block, chars)\n\n"
"``stored``: the pairs whose lower-case name is not in ``drop`` (a new list of the same\n"
"tuples); ``block``: their ``Name: value\\r\\n`` lines as Latin-1 bytes, or None when a\n"
"name or value holds CR, LF or a character beyond Latin-1; ``chars``: the lines' length\n"
"in characters (what ``len`` of the joined text is).\n\n"
"``field_block(pairs, drop, names)``: also adds every pair's lower-case name (stored or\n"
"not) to the set ``names``, so a caller needing both lowers each name once.");

static PyObject *field_block(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 && nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "field_block(pairs, drop[, names])");
        return NULL;
    }
    PyObject *pairs = args[0], *drop = args[1], *names = nargs == 3 ? args[2] : NULL;
    if (!PyList_Check(pairs) || !PyAnySet_Check(drop) || (names != NULL && !PySet_Check(names))) {
        PyErr_SetString(PyExc_TypeError, "field_block(list, set or frozenset[, set])");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(pairs);
    PyObject *stored = PyList_New(0);
    if (stored == NULL) {
        return NULL;
    }
    Py_ssize_t chars = 0;
    int safe = 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name, *value;
        PyObject *low = lowered_at(pairs, i, &name, &value);
        if (low == NULL) {
            goto fail;
        }
        int dropped = PySet_Contains(drop, low);
        if (dropped >= 0 && names != NULL && PySet_Add(names, low) < 0) {
            dropped = -1;
        }
        Py_DECREF(low);
        if (dropped < 0) {
            goto fail;
        }
        if (dropped) {
            continue;
        }
        if (PyList_Append(stored, PyList_GET_ITEM(pairs, i)) < 0) {
            goto fail;
        }
        chars += PyUnicode_GET_LENGTH(name) + PyUnicode_GET_LENGTH(value) + 4;
        if (safe && !(wire_safe(name) && wire_safe(value))) {
            safe = 0;
        }
    }
    PyObject *block;
    if (safe) {
        block = PyBytes_FromStringAndSize(NULL, chars);
        if (block == NULL) {
            goto fail;
        }
        char *out = PyBytes_AS_STRING(block);
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(stored); i++) {
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
    } else {
        block = Py_None;
        Py_INCREF(block);
    }
    PyObject *result = Py_BuildValue("(NNn)", stored, block, chars);
    return result;
fail:
    Py_DECREF(stored);
    return NULL;
}

PyDoc_STRVAR(names_disjoint_doc,
"names_disjoint(pairs, names) -> bool\n\n"
"Whether no name of a list of (name, value) str pairs is, lower-cased, one of ``names``\n"
"(a tuple of lower-case ASCII str): ``{k.lower() for k, _ in pairs}.isdisjoint(names)``\n"
"without making the lower-case names.  False for a name beyond Latin-1 (the caller then\n"
"asks the multidict).");

static PyObject *names_disjoint(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_Check(args[0]) || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "names_disjoint(list, tuple)");
        return NULL;
    }
    PyObject *pairs = args[0], *names = args[1];
    Py_ssize_t count = PyTuple_GET_SIZE(names);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
        PyObject *name, *value;
        if (pair_at(pairs, i, &name, &value) < 0) {
            return NULL;
        }
        if (!PyUnicode_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "field names must be str");
            return NULL;
        }
        if (PyUnicode_KIND(name) != PyUnicode_1BYTE_KIND) {
            Py_RETURN_FALSE;
        }
        Py_ssize_t n = PyUnicode_GET_LENGTH(name);
        const Py_UCS1 *data = PyUnicode_1BYTE_DATA(name);
        for (Py_ssize_t j = 0; j < count; j++) {
            PyObject *low = PyTuple_GET_ITEM(names, j);
            if (!PyUnicode_Check(low) || !PyUnicode_IS_ASCII(low)) {
                PyErr_SetString(PyExc_TypeError, "names must be ASCII str");
                return NULL;
            }
            if (PyUnicode_GET_LENGTH(low) != n) {
                continue;
            }
            const Py_UCS1 *want = PyUnicode_1BYTE_DATA(low);
            Py_ssize_t k = 0;
            while (k < n) {
                Py_UCS1 c = data[k];
                if (c >= 'A' && c <= 'Z') {
                    c = (Py_UCS1)(c + 32);
                }
                if (c != want[k]) {
                    break;
                }
                k++;
            }
            if (k == n) {
                Py_RETURN_FALSE;
            }
        }
    }
    Py_RETURN_TRUE;
}

/* Whether the ``n`` bytes at ``p`` hold CR or LF. */
static int has_crlf(const char *p, Py_ssize_t n) {
    return memchr(p, '\r', n) != NULL || memchr(p, '\n', n) != NULL;
}

/* ``name.lower()`` of a bytes name (ASCII letters, as bytes.lower), ``name`` itself
 * when it has no upper-case letter. */
static PyObject *lowered_bytes(PyObject *name) {
    Py_ssize_t n = PyBytes_GET_SIZE(name);
    const char *src = PyBytes_AS_STRING(name);
    Py_ssize_t i = 0;
    while (i < n && !(src[i] >= 'A' && src[i] <= 'Z')) {
        i++;
    }
    if (i == n) {
        Py_INCREF(name);
        return name;
    }
    PyObject *out = PyBytes_FromStringAndSize(src, n);
    if (out == NULL) {
        return NULL;
    }
    char *dst = PyBytes_AS_STRING(out);
    for (; i < n; i++) {
        if (dst[i] >= 'A' && dst[i] <= 'Z') {
            dst[i] = (char)(dst[i] + 32);
        }
    }
    return out;
}

PyDoc_STRVAR(request_lines_doc,
"request_lines(pairs, edited) -> (block, host) | None\n\n"
"The client's fields (a list of (name, value) bytes pairs) as the origin request's\n"
"lines: ``block`` is CRLF then each ``Name: value`` line but Host's with its CRLF,\n"
"``host`` the Host value (None without one).  None when a lower-case name is in\n"
"``edited`` (a set of bytes), Host comes twice, or a name or value holds CR or LF.");

/* the frozenset of edited names last seen, and the lengths of its names (bit n: n bytes;
 * bit 63: 63 bytes or more): a name of another length is not looked up */
static PyObject *edited_seen;
static uint64_t edited_lengths;

/* the lengths of the names in ``edited`` (a set of bytes) into ``lengths``, kept for a
 * frozenset; -1 (an error set) when a member is not bytes */
static int lengths_of(PyObject *edited, uint64_t *lengths) {
    if (edited == edited_seen) {
        *lengths = edited_lengths;
        return 0;
    }
    uint64_t found = 0;
    Py_ssize_t pos = 0;
    PyObject *key;
    Py_hash_t hash;
    while (_PySet_NextEntry(edited, &pos, &key, &hash)) {
        if (!PyBytes_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "edited names must be bytes");
            return -1;
        }
        found |= (uint64_t)1 << (PyBytes_GET_SIZE(key) < 63 ? PyBytes_GET_SIZE(key) : 63);
    }
    if (PyFrozenSet_CheckExact(edited)) {
        Py_XSETREF(edited_seen, Py_NewRef(edited));
        edited_lengths = found;
    }
    *lengths = found;
    return 0;
}

/* Whether the bytes name ``name`` (``k`` bytes) is ``Host`` in any case */
static int is_host_name(const char *name, Py_ssize_t k) {
    return k == 4 && (name[0] | 0x20) == 'h' && (name[1] | 0x20) == 'o' && (name[2] | 0x20) == 's'
        && (name[3] | 0x20) == 't';
}

static PyObject *request_lines(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_Check(args[0]) || !PyAnySet_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "request_lines(list, set or frozenset)");
        return NULL;
    }
    PyObject *pairs = args[0], *edited = args[1];
    uint64_t lengths;
    if (lengths_of(edited, &lengths) < 0) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(pairs), size = 2, host_at = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(pairs, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2
                || !PyBytes_Check(PyTuple_GET_ITEM(pair, 0)) || !PyBytes_Check(PyTuple_GET_ITEM(pair, 1))) {
            PyErr_SetString(PyExc_TypeError, "fields must be (name, value) bytes pairs");
            return NULL;
        }
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        Py_ssize_t k = PyBytes_GET_SIZE(name), v = PyBytes_GET_SIZE(value);
        if (has_crlf(PyBytes_AS_STRING(name), k) || has_crlf(PyBytes_AS_STRING(value), v)) {
            Py_RETURN_NONE;
        }
        int is_host = is_host_name(PyBytes_AS_STRING(name), k), found = 0;
        if (!is_host && (lengths >> (k < 63 ? k : 63) & 1)) {
            PyObject *low = lowered_bytes(name);
            if (low == NULL) {
                return NULL;
            }
            found = PySet_Contains(edited, low);
            Py_DECREF(low);
            if (found < 0) {
                return NULL;
            }
        }
        if (found || (is_host && host_at >= 0)) {
            Py_RETURN_NONE;
        }
        if (is_host) {
            host_at = i;
        } else {
            size += k + v + 4;
        }
    }
    PyObject *block = PyBytes_FromStringAndSize(NULL, size);
    if (block == NULL) {
        return NULL;
    }
    char *out = PyBytes_AS_STRING(block);
    *out++ = '\r';
    *out++ = '\n';
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i == host_at) {
            continue;
        }
        PyObject *pair = PyList_GET_ITEM(pairs, i);
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        Py_ssize_t k = PyBytes_GET_SIZE(name), v = PyBytes_GET_SIZE(value);
        memcpy(out, PyBytes_AS_STRING(name), k);
        out += k;
        *out++ = ':';
        *out++ = ' ';
        memcpy(out, PyBytes_AS_STRING(value), v);
        out += v;
        *out++ = '\r';
        *out++ = '\n';
    }
    PyObject *host = host_at >= 0 ? PyTuple_GET_ITEM(PyList_GET_ITEM(pairs, host_at), 1) : Py_None;
    PyObject *found = PyTuple_Pack(2, block, host);
    Py_DECREF(block);
    return found;
}

/* ``Latin1Pairs(target)``: called with a field's name and value (``bytes``, as
 * httptools hands them to ``on_header``), appends ``(name, value)`` decoded as Latin-1
 * to the list ``target``.  It holds only that list (of str pairs): no cycle. */
typedef struct {
    PyObject_HEAD
    PyObject *target;
    vectorcallfunc vectorcall;
} Latin1Pairs;

static PyObject *latin1(PyObject *b) {
    if (!PyBytes_Check(b)) {
        PyErr_SetString(PyExc_TypeError, "field names and values must be bytes");
        return NULL;
    }
    return PyUnicode_DecodeLatin1(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b), NULL);
}

/* A field name read as Latin-1: the kept name of the same text (``kept``: one str per
 * name an origin repeats, its lower-case form made once), else a new str, kept. */
static PyObject *latin1_name(PyObject *b) {
    if (PyBytes_Check(b) && PyBytes_GET_SIZE(b) > 0) {
        const unsigned char *src = (const unsigned char *)PyBytes_AS_STRING(b);
        Py_ssize_t n = PyBytes_GET_SIZE(b);
        PyObject *text = kept_text(src, n, kept_slot(src, n));
        if (text != NULL) {
            Py_INCREF(text);
            return text;
        }
    }
    PyObject *name = latin1(b);
    if (name != NULL && PyUnicode_IS_ASCII(name)) {
        PyObject *low = lowered(name);  /* (keeps the name) */
        if (low == NULL) {
            Py_CLEAR(name);
        }
        Py_XDECREF(low);
    }
    return name;
}

static PyObject *latin1_pairs_call(PyObject *self, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames) {
    if (PyVectorcall_NARGS(nargsf) != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "Latin1Pairs takes (name, value)");
        return NULL;
    }
    PyObject *name = latin1_name(args[0]);
    if (name == NULL) {
        return NULL;
    }
    PyObject *value = latin1(args[1]);
    if (value == NULL) {
        Py_DECREF(name);
        return NULL;
    }
    PyObject *pair = PyTuple_New(2);
    if (pair == NULL) {
        Py_DECREF(name);
        Py_DECREF(value);
        return NULL;
    }
    PyTuple_SET_ITEM(pair, 0, name);
    PyTuple_SET_ITEM(pair, 1, value);
    int rc = PyList_Append(((Latin1Pairs *)self)->target, pair);
    Py_DECREF(pair);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *latin1_pairs_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *target;
    if (!PyArg_ParseTuple(args, "O!:Latin1Pairs", &PyList_Type, &target)) {
        return NULL;
    }
    Latin1Pairs *self = (Latin1Pairs *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    Py_INCREF(target);
    self->target = target;
    self->vectorcall = latin1_pairs_call;
    return (PyObject *)self;
}

static void latin1_pairs_dealloc(PyObject *self) {
    Py_XDECREF(((Latin1Pairs *)self)->target);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *latin1_pairs_target(PyObject *self, void *closure) {
    PyObject *target = ((Latin1Pairs *)self)->target;
    Py_INCREF(target);
    return target;
}

static PyGetSetDef latin1_pairs_getset[] = {
    {"target", latin1_pairs_target, NULL, "the list the pairs are appended to", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject Latin1PairsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.http._fields.Latin1Pairs",
    .tp_basicsize = sizeof(Latin1Pairs),
    .tp_dealloc = latin1_pairs_dealloc,
    .tp_vectorcall_offset = offsetof(Latin1Pairs, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Latin1Pairs(target: list): called with (name: bytes, value: bytes), appends the "
              "pair decoded as Latin-1 to target.",
    .tp_new = latin1_pairs_new,
    .tp_getset = latin1_pairs_getset,
};

static PyMethodDef methods[] = {
    {"names_disjoint", (PyCFunction)(void (*)(void))names_disjoint, METH_FASTCALL, names_disjoint_doc},
    {"request_lines", (PyCFunction)(void (*)(void))request_lines, METH_FASTCALL, request_lines_doc},
    {"lower_names", (PyCFunction)lower_names, METH_O, lower_names_doc},
    {"field_block", (PyCFunction)(void (*)(void))field_block, METH_FASTCALL, field_block_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fields",
    "The per-field passes of a miss (the origin request's lines, the origin client's field "
    "callback, build_entry's stored fields), in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__fields(void) {
    if (PyType_Ready(&Latin1PairsType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&Latin1PairsType);
    if (PyModule_AddObject(m, "Latin1Pairs", (PyObject *)&Latin1PairsType) < 0) {
        Py_DECREF(&Latin1PairsType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
