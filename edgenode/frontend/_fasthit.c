/* The fast path's per-request work in C (frontend/fast_hits.py): as Python, the check of
 * a head's raw fields (a lower-cased copy of every name, a set lookup and two comparisons
 * each) and the answer's ``b"%s%x\r\n\r\n%s"`` formatting cost ~6k of a fast hit's ~71k
 * instructions, and httptools' version string ~2.3k.
 *
 *   kept_answer(prefix, number, body) -> bytes
 *
 * A kept answer's bytes: ``prefix`` (the head up to the request id's number), the number
 * in lower-case hex, the head's end, ``body``: what ``b"%s%x\r\n\r\n%s"`` makes.
 *
 *   HeadSink(limit, over, url_limit, url_over, not_plain) -> sink
 *
 * httptools' ``on_header``, ``on_url``, ``on_message_begin``, ``on_headers_complete`` and
 * ``on_message_complete`` without a Python frame (as methods, ~1.3k, ~1.5k and ~2.7k
 * instructions per call for the first three), and the head they collect:
 *
 *   sink(name, value): ``on_header``.  Adds the field line's bytes (``len(name) +
 *   len(value) + 4``) to ``size`` and, within ``limit``, appends ``(name, value)`` to the
 *   list ``raw`` and classifies the name (below); past it calls ``over()`` (which raises
 *   the parser's 431) and appends nothing.
 *   sink.on_url(data): ``on_url``.  ``url += data``; past ``url_limit`` bytes calls
 *   ``url_over()`` (which raises the parser's 414) with ``url`` as parsed so far.
 *   sink.begin(): ``on_message_begin``.  A new head: ``raw`` a new empty list, ``size`` 0,
 *   ``url`` empty, ``in_head`` True (the parser sets it False when the head is complete).
 *   sink.complete(): ``on_message_complete``.  Calls ``body_done`` unless it is None: the
 *   parser sets it for a message with a body (whose end has work: trailers, the body's
 *   end); a message without one has none (~0.7k instructions per request as a Python
 *   method).
 *   sink.bind(keep_alive, method, fast, general): the parser's ``should_keep_alive`` and
 *   ``get_method`` and the connection's two head callbacks, once the parser exists.
 *   sink.headers_complete(): ``on_headers_complete``.  ``in_head`` False, then
 *   ``fast(get)`` for a plain (``host`` set) GET or HEAD with an origin-form target, no
 *   Connection field and the parser's keep-alive answer (so HTTP/1.1: below), else
 *   ``general()``.  The usual fresh hit then runs one Python frame from the parser to the
 *   cache's answer, where a Python callback (~110 bytecodes) read the method, the
 *   keep-alive answer and the version and passed the head on: ~3.6k instructions.
 *
 * What the fast path and the version rule ask of the head's fields, decided as each field
 * is appended (a second pass over ``raw`` and its call cost more than the comparisons):
 *
 *   ``host``: the Host value while the fields so far are plain (none of ``not_plain``, the
 *   lower-case names that keep a request off the fast path, ``http.headers.NOT_PLAIN``;
 *   exactly one Host; at most one X-Request-Id: the general path answers or replaces
 *   those), else None.  As parsed: the cache's kept answers are keyed by the raw target
 *   and Host, so a repeated hit decodes neither.
 *   ``incoming``: the first X-Request-Id value, or None.
 *   ``connection``: whether a Connection field came.  Without one, llhttp's keep-alive
 *   answer is the version's (1.1: yes; 1.0, 0.9, 2.0: no; any other version is a parse
 *   error), so the parser callback knows an HTTP/1.1 head without ``get_http_version``,
 *   whose ``str.format`` of the two numbers cost ~2.3k instructions per request.
 *
 * ``raw``, ``url``, ``in_head`` and those three are object members, which the interpreter's
 * attribute caches read (and write) as cheaply as an instance's own attributes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stddef.h>
#include <string.h>

static int lower_eq(const char *name, Py_ssize_t n, const char *low, Py_ssize_t m) {
    if (n != m)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = name[i];
        if (c >= 'A' && c <= 'Z')
            c += 'a' - 'A';
        if (c != low[i])
            return 0;
    }
    return 1;
}

/* ``not_plain``'s names as a flat table, made when a sink is made with that set (the
 * frozen set is a module constant; a sink with another set loads its own again when it
 * classifies): a name is compared with the members of its length only, where walking the
 * set's table cost ~0.25k instructions per field */
#define TABLE_MAX 64
static PyObject *table_set;
static Py_ssize_t table_len;
static const char *table_name[TABLE_MAX];
static Py_ssize_t table_size[TABLE_MAX];

static int load_table(PyObject *set) {
    const char *names[TABLE_MAX];
    Py_ssize_t sizes[TABLE_MAX];
    Py_ssize_t pos = 0, n = 0;
    PyObject *key;
    Py_hash_t hash;
    while (_PySet_NextEntry(set, &pos, &key, &hash)) {
        if (!PyBytes_Check(key) || n == TABLE_MAX) {
            PyErr_SetString(PyExc_TypeError, "HeadSink: not_plain holds at most 64 names, as bytes");
            return -1;
        }
        names[n] = PyBytes_AS_STRING(key);
        sizes[n++] = PyBytes_GET_SIZE(key);
    }
    memcpy(table_name, names, sizeof(names[0]) * n);
    memcpy(table_size, sizes, sizeof(sizes[0]) * n);
    table_len = n;
    Py_INCREF(set);  /* its names stay alive with it */
    Py_XSETREF(table_set, set);
    return 0;
}

/* whether ``name``, lower-cased, is one of the table's names */
static int in_table(const char *name, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < table_len; i++) {
        if (table_size[i] == n && lower_eq(name, n, table_name[i], n))
            return 1;
    }
    return 0;
}

static PyObject *kept_answer(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyLong_Check(args[1]) || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "kept_answer(prefix: bytes, number: int, body: bytes)");
        return NULL;
    }
    unsigned long long number = PyLong_AsUnsignedLongLong(args[1]);
    if (number == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    char hex[16];
    int digits = 0;
    do {
        hex[15 - digits++] = "0123456789abcdef"[number & 15];
        number >>= 4;
    } while (number);
    Py_ssize_t np = PyBytes_GET_SIZE(args[0]), nb = PyBytes_GET_SIZE(args[2]);
    PyObject *out = PyBytes_FromStringAndSize(NULL, np + digits + 4 + nb);
    if (out == NULL)
        return NULL;
    char *p = PyBytes_AS_STRING(out);
    memcpy(p, PyBytes_AS_STRING(args[0]), np);
    p += np;
    memcpy(p, hex + 16 - digits, digits);
    p += digits;
    memcpy(p, "\r\n\r\n", 4);
    memcpy(p + 4, PyBytes_AS_STRING(args[2]), nb);
    return out;
}

typedef struct {
    PyObject_HEAD
    PyObject *raw;  /* list */
    PyObject *url;  /* bytes */
    PyObject *in_head;
    PyObject *over;
    PyObject *url_over;
    PyObject *body_done;
    PyObject *not_plain;   /* frozenset of lower-case bytes names */
    PyObject *host;        /* the Host value while the fields are plain, else None */
    PyObject *incoming;    /* the first X-Request-Id value, or None */
    PyObject *connection;  /* True once a Connection field came */
    PyObject *first_host;  /* the first Host value (NULL before one) */
    PyObject *keep_alive;  /* bind(): the parser's should_keep_alive */
    PyObject *method;      /* bind(): the parser's get_method */
    PyObject *fast;        /* bind(): fast(get) for a pre-screened head */
    PyObject *general;     /* bind(): general() for every other head */
    Py_ssize_t hosts;      /* Host fields so far */
    int blocked;           /* one of not_plain, or a second X-Request-Id, came */
    Py_ssize_t size;
    Py_ssize_t limit;
    Py_ssize_t url_limit;
} HeadSink;

static int sink_init(HeadSink *self, PyObject *args, PyObject *kwds) {
    PyObject *over, *url_over, *not_plain;
    Py_ssize_t limit, url_limit;
    static char *kwlist[] = {"limit", "over", "url_limit", "url_over", "not_plain", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "nOnOO!:HeadSink", kwlist, &limit, &over,
                                     &url_limit, &url_over, &PyFrozenSet_Type, &not_plain))
        return -1;
    if (not_plain != table_set && load_table(not_plain) < 0)  /* its names are checked here */
        return -1;
    PyObject *raw = PyList_New(0);
    if (raw == NULL)
        return -1;
    PyObject *url = PyBytes_FromStringAndSize(NULL, 0);
    if (url == NULL) {
        Py_DECREF(raw);
        return -1;
    }
    Py_XSETREF(self->raw, raw);
    Py_XSETREF(self->url, url);
    Py_XSETREF(self->in_head, Py_NewRef(Py_False));
    Py_XSETREF(self->over, Py_NewRef(over));
    Py_XSETREF(self->url_over, Py_NewRef(url_over));
    Py_XSETREF(self->body_done, Py_NewRef(Py_None));
    Py_XSETREF(self->not_plain, Py_NewRef(not_plain));
    Py_XSETREF(self->host, Py_NewRef(Py_None));
    Py_XSETREF(self->incoming, Py_NewRef(Py_None));
    Py_XSETREF(self->connection, Py_NewRef(Py_False));
    Py_CLEAR(self->first_host);
    self->hosts = 0;
    self->blocked = 0;
    self->limit = limit;
    self->url_limit = url_limit;
    self->size = 0;
    return 0;
}

static int sink_traverse(HeadSink *self, visitproc visit, void *arg) {
    Py_VISIT(self->raw);
    Py_VISIT(self->in_head);
    Py_VISIT(self->over);
    Py_VISIT(self->url_over);
    Py_VISIT(self->body_done);
    Py_VISIT(self->not_plain);
    Py_VISIT(self->keep_alive);
    Py_VISIT(self->method);
    Py_VISIT(self->fast);
    Py_VISIT(self->general);
    return 0;
}

static int sink_clear(HeadSink *self) {
    Py_CLEAR(self->raw);
    Py_CLEAR(self->url);
    Py_CLEAR(self->in_head);
    Py_CLEAR(self->over);
    Py_CLEAR(self->url_over);
    Py_CLEAR(self->body_done);
    Py_CLEAR(self->not_plain);
    Py_CLEAR(self->host);
    Py_CLEAR(self->incoming);
    Py_CLEAR(self->connection);
    Py_CLEAR(self->first_host);
    Py_CLEAR(self->keep_alive);
    Py_CLEAR(self->method);
    Py_CLEAR(self->fast);
    Py_CLEAR(self->general);
    return 0;
}

static void sink_dealloc(HeadSink *self) {
    PyObject_GC_UnTrack(self);
    sink_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int sink_ready(HeadSink *self) {
    if (self->raw == NULL || self->url == NULL || self->not_plain == NULL) {
        PyErr_SetString(PyExc_TypeError, "HeadSink was not initialised");
        return -1;
    }
    return 0;
}

/* the appended field's part in ``host``, ``incoming`` and ``connection`` (the module's
 * comment) */
static int classify(HeadSink *self, PyObject *name, PyObject *value) {
    const char *s = PyBytes_AS_STRING(name);
    Py_ssize_t n = PyBytes_GET_SIZE(name);
    if (self->not_plain != table_set && load_table(self->not_plain) < 0)
        return -1;  /* (another sink's set was loaded since) */
    if (lower_eq(s, n, "host", 4)) {
        if (self->hosts++ == 0)
            self->first_host = Py_NewRef(value);
    } else if (lower_eq(s, n, "x-request-id", 12)) {
        if (self->incoming != Py_None)
            self->blocked = 1;
        else
            Py_SETREF(self->incoming, Py_NewRef(value));
    } else {
        if (lower_eq(s, n, "connection", 10) && self->connection != Py_True)
            Py_SETREF(self->connection, Py_NewRef(Py_True));
        if (in_table(s, n))
            self->blocked = 1;
    }
    PyObject *host = !self->blocked && self->hosts == 1 ? self->first_host : Py_None;
    if (self->host != host)
        Py_SETREF(self->host, Py_NewRef(host));
    return 0;
}

/* call ``over`` (a callback that raises the parser's error); None if it returns */
static PyObject *call_over(PyObject *over) {
    PyObject *r = PyObject_CallNoArgs(over);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyObject *sink_call(HeadSink *self, PyObject *args, PyObject *kwds) {
    PyObject *name, *value;
    if (kwds != NULL || PyTuple_GET_SIZE(args) != 2) {
        PyErr_SetString(PyExc_TypeError, "HeadSink(name: bytes, value: bytes)");
        return NULL;
    }
    name = PyTuple_GET_ITEM(args, 0);
    value = PyTuple_GET_ITEM(args, 1);
    if (!PyBytes_Check(name) || !PyBytes_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "HeadSink(name: bytes, value: bytes)");
        return NULL;
    }
    if (sink_ready(self) < 0)
        return NULL;
    self->size += PyBytes_GET_SIZE(name) + PyBytes_GET_SIZE(value) + 4;  /* "Name: value\r\n" */
    if (self->size > self->limit)
        return call_over(self->over);
    PyObject *pair = PyTuple_Pack(2, name, value);
    if (pair == NULL)
        return NULL;
    int rc = PyList_Append(self->raw, pair);
    Py_DECREF(pair);
    if (rc < 0 || classify(self, name, value) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *sink_url(HeadSink *self, PyObject *data) {
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "HeadSink.on_url(data: bytes)");
        return NULL;
    }
    if (sink_ready(self) < 0)
        return NULL;
    if (PyBytes_GET_SIZE(self->url) == 0)  /* the whole target in one piece: mostly */
        Py_SETREF(self->url, Py_NewRef(data));
    else {
        PyBytes_Concat(&self->url, data);  /* on failure: NULL, which sink_ready reports */
        if (self->url == NULL)
            return NULL;
    }
    if (PyBytes_GET_SIZE(self->url) > self->url_limit)
        return call_over(self->url_over);
    Py_RETURN_NONE;
}

static PyObject *sink_begin(HeadSink *self, PyObject *unused) {
    if (sink_ready(self) < 0)
        return NULL;
    PyObject *url = PyBytes_FromStringAndSize(NULL, 0);
    if (url == NULL)
        return NULL;
    PyObject *raw = PyList_New(0);
    if (raw == NULL) {
        Py_DECREF(url);
        return NULL;
    }
    Py_SETREF(self->url, url);
    Py_SETREF(self->raw, raw);
    Py_XSETREF(self->in_head, Py_NewRef(Py_True));
    Py_SETREF(self->host, Py_NewRef(Py_None));
    Py_SETREF(self->incoming, Py_NewRef(Py_None));
    Py_SETREF(self->connection, Py_NewRef(Py_False));
    Py_CLEAR(self->first_host);
    self->hosts = 0;
    self->blocked = 0;
    self->size = 0;
    Py_RETURN_NONE;
}

static PyObject *sink_complete(HeadSink *self, PyObject *unused) {
    PyObject *done = self->body_done;
    if (done == NULL || done == Py_None)
        Py_RETURN_NONE;
    PyObject *r = PyObject_CallNoArgs(done);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyObject *sink_bind(HeadSink *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "HeadSink.bind(keep_alive, method, fast, general)");
        return NULL;
    }
    Py_XSETREF(self->keep_alive, Py_NewRef(args[0]));
    Py_XSETREF(self->method, Py_NewRef(args[1]));
    Py_XSETREF(self->fast, Py_NewRef(args[2]));
    Py_XSETREF(self->general, Py_NewRef(args[3]));
    Py_RETURN_NONE;
}

/* 1: a GET, 0: a HEAD, -1: another method (-2: an error), by the parser's method name */
static int get_or_head(PyObject *method) {
    PyObject *name = PyObject_CallNoArgs(method);
    if (name == NULL)
        return -2;
    int kind = -1;
    if (PyBytes_Check(name)) {
        const char *s = PyBytes_AS_STRING(name);
        Py_ssize_t n = PyBytes_GET_SIZE(name);
        if (n == 3 && memcmp(s, "GET", 3) == 0)
            kind = 1;
        else if (n == 4 && memcmp(s, "HEAD", 4) == 0)
            kind = 0;
    }
    Py_DECREF(name);
    return kind;
}

static PyObject *sink_headers_complete(HeadSink *self, PyObject *unused) {
    if (self->general == NULL) {
        PyErr_SetString(PyExc_TypeError, "HeadSink.headers_complete before bind()");
        return NULL;
    }
    Py_XSETREF(self->in_head, Py_NewRef(Py_False));
    if (self->host != Py_None && self->connection != Py_True && self->url != NULL
            && PyBytes_GET_SIZE(self->url) > 0 && PyBytes_AS_STRING(self->url)[0] == '/') {
        int kind = get_or_head(self->method);
        if (kind == -2)
            return NULL;
        if (kind >= 0) {
            PyObject *keep = PyObject_CallNoArgs(self->keep_alive);
            if (keep == NULL)
                return NULL;
            int alive = PyObject_IsTrue(keep);
            Py_DECREF(keep);
            if (alive < 0)
                return NULL;
            if (alive)  /* no Connection field: HTTP/1.1 */
                return PyObject_CallOneArg(self->fast, kind ? Py_True : Py_False);
        }
    }
    return PyObject_CallNoArgs(self->general);
}

static PyMemberDef sink_members[] = {
    {"raw", T_OBJECT_EX, offsetof(HeadSink, raw), READONLY, "the list the head's fields are appended to"},
    {"url", T_OBJECT_EX, offsetof(HeadSink, url), READONLY, "the head's target so far"},
    {"in_head", T_OBJECT_EX, offsetof(HeadSink, in_head), 0,
     "True from begin() until the parser has the whole head"},
    {"size", T_PYSSIZET, offsetof(HeadSink, size), 0, "the field lines' bytes so far"},
    {"host", T_OBJECT_EX, offsetof(HeadSink, host), READONLY,
     "the Host value while the head's fields are plain, else None"},
    {"incoming", T_OBJECT_EX, offsetof(HeadSink, incoming), READONLY,
     "the head's first X-Request-Id value, or None"},
    {"connection", T_OBJECT_EX, offsetof(HeadSink, connection), READONLY,
     "whether the head has a Connection field"},
    {"body_done", T_OBJECT_EX, offsetof(HeadSink, body_done), 0,
     "what complete() calls (a message with a body), or None"},
    {NULL},
};

static PyMethodDef sink_methods[] = {
    {"on_url", (PyCFunction)sink_url, METH_O, "httptools' on_url: url += data, within url_limit."},
    {"begin", (PyCFunction)sink_begin, METH_NOARGS,
     "httptools' on_message_begin: raw a new empty list, size 0, url empty, in_head True."},
    {"complete", (PyCFunction)sink_complete, METH_NOARGS,
     "httptools' on_message_complete: calls body_done unless it is None."},
    {"bind", (PyCFunction)(void (*)(void))sink_bind, METH_FASTCALL,
     "bind(keep_alive, method, fast, general): what headers_complete calls."},
    {"headers_complete", (PyCFunction)sink_headers_complete, METH_NOARGS,
     "httptools' on_headers_complete: in_head False, then fast(get) for a plain keep-alive HTTP/1.1 "
     "GET/HEAD with an origin-form target, else general()."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject HeadSinkType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.frontend._fasthit.HeadSink",
    .tp_doc = "HeadSink(limit, over, url_limit, url_over, not_plain): httptools' on_header, on_url, "
              "on_message_begin and on_message_complete in C (see the module's comment).",
    .tp_basicsize = sizeof(HeadSink),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)sink_init,
    .tp_dealloc = (destructor)sink_dealloc,
    .tp_traverse = (traverseproc)sink_traverse,
    .tp_clear = (inquiry)sink_clear,
    .tp_call = (ternaryfunc)sink_call,
    .tp_methods = sink_methods,
    .tp_members = sink_members,
};

/* The loop iteration's held writes (``batch.Batch``'s base): the list of (transport,
 * bytes) a fast hit's answer joins, its byte count, and the flush, in C so the kept answer
 * is built and held in one call from ``_fast`` (``send_kept``) instead of ``kept_answer``
 * and a ``Batch.send`` frame (~50 bytecodes), and the flush per loop pass runs without a
 * frame either.  ``Batch`` (Python) adds the run of the iteration's steps.
 *
 *   held.send(transport, data): hold ``data`` for ``transport``; past ``HOLD_LIMIT``
 *   bytes flush now, else (outside the batch's steps, ``running``) schedule one flush
 *   on the running loop (kept in ``_loop``, asked of asyncio only when it no longer runs).
 *   held.send_kept(transport, prefix, number, body): the same for ``kept_answer``'s bytes.
 *   held.flush(): commit the stores' queued writes (``stores.queued()``/``flush()``),
 *   then write every held buffer whose transport is not closing, in order.
 *   held.holding: buffers are held, or the stores have writes queued.
 *   held.send_wire(transport, line, block, body, rid): a kept head's answer behind
 *   filters (``ResponseWriter._write_wire``): the status line, the block, Content-Length
 *   and X-Request-Id formatted with the body into one buffer and held as ``send`` holds
 *   (written now when nothing waits and the steps are not running), where Python took
 *   four frames (``status_line``, ``_send_message``, ``_send``, ``send``) and a second copy
 *   of the body (``head + body``); past 64 KiB of body, what is held is written first and
 *   then head and body as two buffers.
 */
#define HOLD_LIMIT (64 * 1024)

typedef struct {
    PyObject_HEAD
    PyObject *out;     /* list of (transport, bytes) */
    PyObject *stores;  /* the cache store whose writes wait for the flush, or None */
    PyObject *loop;    /* the kept event loop, or None */
    Py_ssize_t held;   /* bytes in out */
    char running;      /* the batch's steps are running: send holds until they end */
    char scheduled;    /* a flush is scheduled */
} Held;

static PyObject *get_running_loop;  /* asyncio.get_running_loop, looked up once */
static PyObject *str_is_running, *str_call_soon, *str_flush, *str_queued, *str_is_closing,
    *str_write;
static PyObject *str_writelines;  /* send_wire's large answer */

static int held_init(Held *self, PyObject *args, PyObject *kwds) {
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Held() takes no arguments");
        return -1;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return -1;
    Py_XSETREF(self->out, out);
    Py_XSETREF(self->stores, Py_NewRef(Py_None));
    Py_XSETREF(self->loop, Py_NewRef(Py_None));
    self->held = 0;
    self->running = 0;
    self->scheduled = 0;
    return 0;
}

static int held_traverse(Held *self, visitproc visit, void *arg) {
    Py_VISIT(self->out);
    Py_VISIT(self->stores);
    Py_VISIT(self->loop);
    return 0;
}

static int held_clear(Held *self) {
    Py_CLEAR(self->out);
    Py_CLEAR(self->stores);
    Py_CLEAR(self->loop);
    return 0;
}

static void held_dealloc(Held *self) {
    PyObject_GC_UnTrack(self);
    held_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* call ``obj.name()`` and return its truth (-1: an error) */
static int call_truth(PyObject *obj, PyObject *name) {
    PyObject *r = PyObject_CallMethodNoArgs(obj, name);
    if (r == NULL)
        return -1;
    int t = PyObject_IsTrue(r);
    Py_DECREF(r);
    return t;
}

static PyObject *held_flush(Held *self, PyObject *unused) {
    if (self->out == NULL) {
        PyErr_SetString(PyExc_TypeError, "Held was not initialised");
        return NULL;
    }
    self->scheduled = 0;
    self->held = 0;
    if (self->stores != Py_None) {  /* stored before answered: the client then finds it everywhere */
        int queued = call_truth(self->stores, str_queued);
        if (queued < 0)
            return NULL;
        if (queued) {
            PyObject *r = PyObject_CallMethodNoArgs(self->stores, str_flush);
            if (r == NULL)
                return NULL;
            Py_DECREF(r);
        }
    }
    PyObject *fresh = PyList_New(0);
    if (fresh == NULL)
        return NULL;
    PyObject *out = self->out, *item;
    self->out = fresh;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(out); i++) {
        /* held while the transport's code runs (someone may hold the old list too) */
        item = Py_NewRef(PyList_GET_ITEM(out, i));
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "Held: a held write is not a (transport, bytes) pair");
            goto fail;
        }
        PyObject *transport = PyTuple_GET_ITEM(item, 0);
        int closing = call_truth(transport, str_is_closing);  /* the peer left: nowhere to go */
        if (closing < 0)
            goto fail;
        if (!closing) {
            PyObject *r = PyObject_CallMethodOneArg(transport, str_write, PyTuple_GET_ITEM(item, 1));
            if (r == NULL)
                goto fail;
            Py_DECREF(r);
        }
        Py_DECREF(item);
    }
    Py_DECREF(out);
    Py_RETURN_NONE;
fail:
    Py_DECREF(item);
    Py_DECREF(out);
    return NULL;
}

/* schedule one flush on the running loop (the kept one while it runs) */
static int held_schedule(Held *self) {
    PyObject *loop = self->loop;
    int running = loop == Py_None ? 0 : call_truth(loop, str_is_running);
    if (running < 0)
        return -1;
    if (!running) {
        loop = PyObject_CallNoArgs(get_running_loop);
        if (loop == NULL)
            return -1;
        Py_SETREF(self->loop, loop);
    }
    PyObject *flush = PyObject_GetAttr((PyObject *)self, str_flush);
    if (flush == NULL)
        return -1;
    PyObject *handle = PyObject_CallMethodOneArg(self->loop, str_call_soon, flush);
    Py_DECREF(flush);
    if (handle == NULL)
        return -1;
    Py_DECREF(handle);
    self->scheduled = 1;
    return 0;
}

/* hold ``data`` (a new reference, taken) for ``transport`` */
static PyObject *held_hold(Held *self, PyObject *transport, PyObject *data) {
    if (self->out == NULL) {
        Py_DECREF(data);
        PyErr_SetString(PyExc_TypeError, "Held was not initialised");
        return NULL;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    PyObject *pair = PyTuple_New(2);
    if (pair == NULL) {
        Py_DECREF(data);
        return NULL;
    }
    PyTuple_SET_ITEM(pair, 0, Py_NewRef(transport));
    PyTuple_SET_ITEM(pair, 1, data);
    int rc = PyList_Append(self->out, pair);
    Py_DECREF(pair);
    if (rc < 0)
        return NULL;
    self->held += n;
    if (self->held > HOLD_LIMIT)
        return held_flush(self, NULL);
    if (!self->running && !self->scheduled && held_schedule(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *held_send(Held *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "send(transport, data: bytes)");
        return NULL;
    }
    return held_hold(self, args[0], Py_NewRef(args[1]));
}

static PyObject *held_send_kept(Held *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "send_kept(transport, prefix, number, body)");
        return NULL;
    }
    PyObject *data = kept_answer(NULL, args + 1, 3);
    if (data == NULL)
        return NULL;
    return held_hold(self, args[0], data);
}

static PyObject *held_holding(Held *self, void *closure) {
    if (self->out != NULL && PyList_GET_SIZE(self->out) > 0)
        Py_RETURN_TRUE;
    if (self->stores == NULL || self->stores == Py_None)
        Py_RETURN_FALSE;
    int queued = call_truth(self->stores, str_queued);
    if (queued < 0)
        return NULL;
    return PyBool_FromLong(queued);
}

/* Whether a write must wait for the flush (``holding``), without the bool object. */
static int held_is_holding(Held *self) {
    if (PyList_GET_SIZE(self->out) > 0)
        return 1;
    if (self->stores == NULL || self->stores == Py_None)
        return 0;
    return call_truth(self->stores, str_queued);
}

/* The kept head's framing: ``line``, ``block``, Content-Length, X-Request-Id (when ``rid``
 * has ``nrid`` bytes), the head's end, and ``body`` when ``with_body``: the bytes
 * ``ResponseWriter._write_wire`` formatted in Python. */
static PyObject *wire_bytes(PyObject *line, PyObject *block, Py_ssize_t length, const char *rid,
                            Py_ssize_t nrid, PyObject *body, int with_body) {
    char digits[24];
    int nd = snprintf(digits, sizeof digits, "%zd", length);
    Py_ssize_t nl = PyBytes_GET_SIZE(line), nk = PyBytes_GET_SIZE(block);
    Py_ssize_t size = nl + nk + 16 + nd + 2 + (nrid ? 14 + nrid + 2 : 0) + 2 + (with_body ? length : 0);
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL)
        return NULL;
    char *p = PyBytes_AS_STRING(out);
    memcpy(p, PyBytes_AS_STRING(line), nl);
    p += nl;
    memcpy(p, PyBytes_AS_STRING(block), nk);
    p += nk;
    memcpy(p, "Content-Length: ", 16);
    memcpy(p + 16, digits, nd);
    p += 16 + nd;
    memcpy(p, "\r\n", 2);
    p += 2;
    if (nrid) {
        memcpy(p, "X-Request-Id: ", 14);
        memcpy(p + 14, rid, nrid);
        p += 14 + nrid;
        memcpy(p, "\r\n", 2);
        p += 2;
    }
    memcpy(p, "\r\n", 2);
    if (with_body)
        memcpy(p + 2, PyBytes_AS_STRING(body), length);
    return out;
}

/* send_wire(transport, line, block, body, rid): a kept head's whole answer written as
 * ``ResponseWriter._send_message`` writes it: up to 64 KiB of body in one buffer, held
 * while the batch's steps run or writes wait (else written now), a larger body after
 * the held writes, head and body as two buffers (the body not copied). */
static PyObject *held_send_wire(Held *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5 || !PyBytes_Check(args[1]) || !PyBytes_Check(args[2]) || !PyBytes_Check(args[3])
            || !(args[4] == Py_None || PyUnicode_Check(args[4]))) {
        PyErr_SetString(PyExc_TypeError,
                        "send_wire(transport, line: bytes, block: bytes, body: bytes, rid: str | None)");
        return NULL;
    }
    if (self->out == NULL) {
        PyErr_SetString(PyExc_TypeError, "Held was not initialised");
        return NULL;
    }
    PyObject *transport = args[0], *body = args[3], *rid = args[4], *encoded = NULL;
    const char *rid_text = NULL;
    Py_ssize_t nrid = 0;
    if (rid != Py_None && PyUnicode_GET_LENGTH(rid) > 0) {
        if (PyUnicode_IS_ASCII(rid)) {
            rid_text = (const char *)PyUnicode_DATA(rid);
            nrid = PyUnicode_GET_LENGTH(rid);
        } else {
            encoded = PyUnicode_AsLatin1String(rid);
            if (encoded == NULL)
                return NULL;
            rid_text = PyBytes_AS_STRING(encoded);
            nrid = PyBytes_GET_SIZE(encoded);
        }
    }
    Py_ssize_t length = PyBytes_GET_SIZE(body);
    int whole = length <= 65536;
    PyObject *data = wire_bytes(args[1], args[2], length, rid_text, nrid, body, whole);
    Py_XDECREF(encoded);
    if (data == NULL)
        return NULL;
    if (whole) {
        int holding = self->running ? 1 : held_is_holding(self);
        if (holding < 0)
            goto fail;
        if (holding)
            return held_hold(self, transport, data);  /* takes data */
        PyObject *r = PyObject_CallMethodOneArg(transport, str_write, data);
        Py_DECREF(data);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
        Py_RETURN_NONE;
    }
    int holding = held_is_holding(self);  /* what is held leaves first: order on the connection */
    if (holding < 0)
        goto fail;
    if (holding) {
        PyObject *r = held_flush(self, NULL);
        if (r == NULL)
            goto fail;
        Py_DECREF(r);
    }
    PyObject *parts = PyList_New(2);
    if (parts == NULL)
        goto fail;
    PyList_SET_ITEM(parts, 0, data);  /* the list owns data now */
    PyList_SET_ITEM(parts, 1, Py_NewRef(body));
    PyObject *r = PyObject_CallMethodOneArg(transport, str_writelines, parts);
    Py_DECREF(parts);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
fail:
    Py_DECREF(data);
    return NULL;
}

static PyMemberDef held_members[] = {
    {"_out", T_OBJECT_EX, offsetof(Held, out), READONLY, "the held (transport, bytes) pairs"},
    {"_held", T_PYSSIZET, offsetof(Held, held), READONLY, "bytes held"},
    {"_loop", T_OBJECT_EX, offsetof(Held, loop), 0, "the kept event loop, or None"},
    {"stores", T_OBJECT_EX, offsetof(Held, stores), 0,
     "the cache store whose writes wait for the end of the loop pass, or None"},
    {"running", T_BOOL, offsetof(Held, running), 0,
     "the batch's steps are running: send holds a write until they end"},
    {NULL},
};

static PyGetSetDef held_getset[] = {
    {"holding", (getter)held_holding, NULL,
     "a write must wait for flush: answers are held, or stores are queued for the commit", NULL},
    {NULL},
};

static PyMethodDef held_methods[] = {
    {"send", (PyCFunction)(void (*)(void))held_send, METH_FASTCALL,
     "send(transport, data): write data when the batch's steps are over, or after the loop "
     "iteration's reads."},
    {"send_kept", (PyCFunction)(void (*)(void))held_send_kept, METH_FASTCALL,
     "send_kept(transport, prefix, number, body): send() of kept_answer(prefix, number, body)."},
    {"send_wire", (PyCFunction)(void (*)(void))held_send_wire, METH_FASTCALL,
     "send_wire(transport, line, block, body, rid): a kept head's answer (status line, block, "
     "Content-Length, X-Request-Id, body) written as one buffer, held while writes wait."},
    {"flush", (PyCFunction)held_flush, METH_NOARGS,
     "Commit the stores' queued writes, then write what is held, in order."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject HeldType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.frontend._fasthit.Held",
    .tp_doc = "Held(): the loop iteration's held writes (see the module's comment).",
    .tp_basicsize = sizeof(Held),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)held_init,
    .tp_dealloc = (destructor)held_dealloc,
    .tp_traverse = (traverseproc)held_traverse,
    .tp_clear = (inquiry)held_clear,
    .tp_methods = held_methods,
    .tp_members = held_members,
    .tp_getset = held_getset,
};

static int intern_names(void) {
    static struct { PyObject **slot; const char *text; } names[] = {
        {&str_is_running, "is_running"}, {&str_call_soon, "call_soon"}, {&str_flush, "flush"},
        {&str_queued, "queued"}, {&str_is_closing, "is_closing"}, {&str_write, "write"},
        {&str_writelines, "writelines"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (*names[i].slot == NULL && (*names[i].slot = PyUnicode_InternFromString(names[i].text)) == NULL)
            return -1;
    }
    if (get_running_loop == NULL) {
        PyObject *asyncio = PyImport_ImportModule("asyncio");
        if (asyncio == NULL)
            return -1;
        get_running_loop = PyObject_GetAttrString(asyncio, "get_running_loop");
        Py_DECREF(asyncio);
        if (get_running_loop == NULL)
            return -1;
    }
    return 0;
}

static PyMethodDef methods[] = {
    {"kept_answer", (PyCFunction)(void (*)(void))kept_answer, METH_FASTCALL,
     "kept_answer(prefix, number, body) -> bytes: prefix, the number in hex, CRLF CRLF, body."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fasthit", "The fast path's per-request work in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__fasthit(void) {
    if (PyType_Ready(&HeadSinkType) < 0 || PyType_Ready(&HeldType) < 0 || intern_names() < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "HeadSink", (PyObject *)&HeadSinkType) < 0
            || PyModule_AddObjectRef(m, "Held", (PyObject *)&HeldType) < 0
            || PyModule_AddIntConstant(m, "HOLD_LIMIT", HOLD_LIMIT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
