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
 *   held.add(conn) / held.run(): the batch's steps (``Batch``): ``add`` keeps ``conn`` for
 *   this loop iteration's ``run`` (scheduled once with the loop's ``call_soon``), ``run``
 *   calls each one's ``run_steps()`` in order with writes held, then flushes: two Python
 *   frames per request before.
 *   held.queue: the stores' list of queued writes (``SharedStore.queue()``), whose
 *   emptiness ``flush`` and ``holding`` read without the ``queued()`` call per loop pass.
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
    PyObject *ready;   /* connections whose steps the next ``run`` runs (``add``) */
    PyObject *queue;   /* the stores' list of queued writes (read for its emptiness), or None */
    char steps_scheduled;  /* a ``run`` is scheduled */
} Held;

static PyObject *get_running_loop;  /* asyncio.get_running_loop, looked up once */
static PyObject *str_is_running, *str_call_soon, *str_flush, *str_queued, *str_is_closing,
    *str_write;
static PyObject *str_writelines;  /* send_wire's large answer */
static PyObject *str_run, *str_run_steps, *str_steps_failed;  /* the batch's steps */

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
    PyObject *ready = PyList_New(0);
    if (ready == NULL)
        return -1;
    Py_XSETREF(self->ready, ready);
    Py_XSETREF(self->queue, Py_NewRef(Py_None));
    self->held = 0;
    self->running = 0;
    self->scheduled = 0;
    self->steps_scheduled = 0;
    return 0;
}

static int held_traverse(Held *self, visitproc visit, void *arg) {
    Py_VISIT(self->out);
    Py_VISIT(self->stores);
    Py_VISIT(self->loop);
    Py_VISIT(self->ready);
    Py_VISIT(self->queue);
    return 0;
}

static int held_clear(Held *self) {
    Py_CLEAR(self->out);
    Py_CLEAR(self->stores);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->ready);
    Py_CLEAR(self->queue);
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

/* Whether the stores have writes queued: the length of their list when it was given
 * (``queue``: no call on every loop pass), else ``stores.queued()`` (-1: an error). */
static int held_stores_queued(Held *self) {
    if (self->stores == NULL || self->stores == Py_None)
        return 0;
    if (self->queue != NULL && PyList_CheckExact(self->queue))
        return PyList_GET_SIZE(self->queue) > 0;
    return call_truth(self->stores, str_queued);
}

static PyObject *held_flush(Held *self, PyObject *unused) {
    if (self->out == NULL) {
        PyErr_SetString(PyExc_TypeError, "Held was not initialised");
        return NULL;
    }
    self->scheduled = 0;
    self->held = 0;
    if (self->stores != Py_None) {  /* stored before answered: the client then finds it everywhere */
        int queued = held_stores_queued(self);
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

/* ``self.<name>`` called soon on the running loop (the kept one while it runs) */
static int held_soon(Held *self, PyObject *name) {
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
    PyObject *method = PyObject_GetAttr((PyObject *)self, name);
    if (method == NULL)
        return -1;
    PyObject *handle = PyObject_CallMethodOneArg(self->loop, str_call_soon, method);
    Py_DECREF(method);
    if (handle == NULL)
        return -1;
    Py_DECREF(handle);
    return 0;
}

/* schedule one flush on the running loop */
static int held_schedule(Held *self) {
    if (held_soon(self, str_flush) < 0)
        return -1;
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
    int queued = held_stores_queued(self);
    if (queued < 0)
        return NULL;
    return PyBool_FromLong(queued);
}

/* Whether a write must wait for the flush (``holding``), without the bool object. */
static int held_is_holding(Held *self) {
    if (PyList_GET_SIZE(self->out) > 0)
        return 1;
    return held_stores_queued(self);
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

/* add(conn): run ``conn.run_steps()`` in this loop iteration's ``run`` (one callback
 * scheduled for the iteration's first), where ``Batch.add`` took a Python frame per
 * request. */
static PyObject *held_add(Held *self, PyObject *conn) {
    if (self->ready == NULL) {
        PyErr_SetString(PyExc_TypeError, "Held was not initialised");
        return NULL;
    }
    if (PyList_Append(self->ready, conn) < 0)
        return NULL;
    if (!self->steps_scheduled) {
        if (held_soon(self, str_run) < 0)
            return NULL;
        self->steps_scheduled = 1;
    }
    Py_RETURN_NONE;
}

/* One connection's steps; an ``Exception`` they raise goes to ``self._steps_failed(exc)``
 * (the log), so one connection's failure does not strand the others.  -1: an error that
 * must propagate (not an ``Exception``, or the callback's own). */
static int held_run_one(Held *self, PyObject *conn) {
    PyObject *r = PyObject_CallMethodNoArgs(conn, str_run_steps);
    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_Exception))
        return -1;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL)
        PyException_SetTraceback(value, tb);
    r = PyObject_CallMethodOneArg((PyObject *)self, str_steps_failed, value);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* run(): the steps of every connection added since the last run, in order, with writes
 * held (``running``), then the flush: ``Batch.run``'s loop without its frame. */
static PyObject *held_run(Held *self, PyObject *unused) {
    if (self->ready == NULL) {
        PyErr_SetString(PyExc_TypeError, "Held was not initialised");
        return NULL;
    }
    PyObject *fresh = PyList_New(0);
    if (fresh == NULL)
        return NULL;
    self->steps_scheduled = 0;
    PyObject *ready = self->ready;
    self->ready = fresh;
    self->running = 1;
    int failed = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(ready) && !failed; i++) {
        PyObject *conn = Py_NewRef(PyList_GET_ITEM(ready, i));
        failed = held_run_one(self, conn) < 0;
        Py_DECREF(conn);
    }
    Py_DECREF(ready);
    self->running = 0;
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    if (failed)
        PyErr_Fetch(&type, &value, &tb);
    PyObject *r = held_flush(self, NULL);
    if (r == NULL) {  /* the flush's error wins, as a ``finally`` that raises */
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return NULL;
    }
    Py_DECREF(r);
    if (failed) {
        PyErr_Restore(type, value, tb);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMemberDef held_members[] = {
    {"_out", T_OBJECT_EX, offsetof(Held, out), READONLY, "the held (transport, bytes) pairs"},
    {"_held", T_PYSSIZET, offsetof(Held, held), READONLY, "bytes held"},
    {"_loop", T_OBJECT_EX, offsetof(Held, loop), 0, "the kept event loop, or None"},
    {"stores", T_OBJECT_EX, offsetof(Held, stores), 0,
     "the cache store whose writes wait for the end of the loop pass, or None"},
    {"running", T_BOOL, offsetof(Held, running), 0,
     "the batch's steps are running: send holds a write until they end"},
    {"queue", T_OBJECT_EX, offsetof(Held, queue), 0,
     "the stores' list of queued writes, read for its emptiness (cleared in place, never "
     "rebound), or None: then stores.queued() is asked"},
    {"_ready", T_OBJECT_EX, offsetof(Held, ready), READONLY,
     "the connections whose steps the next run runs"},
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
    {"add", (PyCFunction)held_add, METH_O,
     "add(conn): run conn.run_steps() in this loop iteration's run (scheduled once)."},
    {"run", (PyCFunction)held_run, METH_NOARGS,
     "Run the added connections' steps in order with writes held, then flush; an Exception "
     "from one goes to self._steps_failed(exc)."},
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

/* The objects of a filtered plain request (``fast_hits.py`` ``_fast``: a plain
 * GET/HEAD behind filters, without an X-Request-Id of its own), made in one call: the
 * Python makers (``request_parser.py`` ``_exchange`` with ``messages.raw_request`` and
 * ``exchange.client_exchange``, the reference and the fallback) cost ~7.8k instructions per
 * request in their three frames, ~35 slot stores and the request id formatted as bytes then
 * decoded.
 *
 *   bind_makers(raw_request_type, exchange_type, from_body, exchange_ids, raw_plain) -> bool
 *
 * Resolves, once at set-up, the member offset of every slot the maker stores from the
 * classes' slot descriptors (as ``wasm/native/attrs.c`` reads them), after checking that
 * the classes' slots are exactly the ones below (a slot added to a class and not stored
 * here), that they are plain object slots, and that neither class has its own ``__new__``
 * or ``__init__``.  False (nothing bound) when they are not: the caller keeps the Python
 * makers.  ``from_body``: ``messages.FROM_BODY``; ``exchange_ids``: the counter of
 * ``Exchange.id``; ``raw_plain``: ``exchange.RAW_PLAIN``.
 *
 *   filtered_exchange(method, url, raw, host, version, keep_alive, prefix, count, client,
 *                     local, interim) -> exchange
 *
 * What ``_fast`` gets from the Python makers for such a request: the request id
 * ``prefix`` + ``next(count)`` in hex, appended to ``raw`` as ``(b"X-Request-Id", id)``;
 * the ``RawRequest`` over ``(-1, raw)`` with the target ``url`` decoded as Latin-1, its
 * path and query; the ``ClientExchange`` with ``next(exchange_ids)``, ``time.perf_counter()``
 * and ``time.time()`` (read through the module, as the Python maker does), two new dicts,
 * ``plain`` ``raw_plain`` and ``parsed`` ``(url, host)``.  ``raw`` is appended to last, so
 * an error leaves it as it was.
 *
 *   client_exchange(request, client, local, keep_alive, reader, request_id, interim) -> exchange
 *
 * ``exchange.client_exchange``'s ``ClientExchange`` (every other request ``_exchange``
 * makes: the general path, a filtered hit with an X-Request-Id of its own).
 *
 *   bind_plain(request_type, multidict_type, getversion, declined) -> bool
 *   plain_exchange(method, url, raw, version, keep_alive, prefix, count, client, local,
 *                  interim, asked) -> exchange
 *
 * A plain GET/HEAD the fast path declined (the usual miss), without an X-Request-Id of its
 * own, made in one call where ``_plain_head`` ran ``_fields``, ``_exchange`` and
 * ``Request.__init__`` (an interpreter invocation of its own): the ``Request`` with its
 * fields' multidict (below ``bind_plain``), the ``ClientExchange``, and the cache key the
 * fast path made for it taken from ``declined`` (``exchange.DECLINED``).
 */
enum { R_METHOD, R_VERSION, R_BODY, R_SCHEME, R_TRAILERS, R_RAW, R_TARGET, R_PATH, R_QUERY, R_STORED };
static const char *const request_slots[R_STORED] = {
    "method", "version", "body", "scheme", "_trailers", "raw", "target", "path", "query"};
#define REQUEST_UNSET 1  /* ``headers``: a ``RawRequest`` makes it on first read */

enum { X_REQUEST, X_TARGET, X_REQUEST_ID, X_CLIENT, X_LOCAL, X_ID, X_START, X_START_WALL,
       X_ORIGIN, X_CACHE_STATUS, X_X_CACHE, X_ORIGIN_TIME, X_TIMINGS, X_PROPS, X_RESPONSE_BYTES,
       X_STATUS, X_SERVER_TIMING, X_OPEN, X_INTERIM, X_WASM_MAPS, X_PLAIN, X_PARSED,
       X_KEEP_ALIVE, X_READER, X_ERROR, X_CACHE_KEY, X_STORED };
static const char *const exchange_slots[X_STORED] = {
    "request", "target", "request_id", "client", "local", "id", "start", "start_wall",
    "origin", "cache_status", "x_cache", "origin_time", "timings", "props", "response_bytes",
    "status", "server_timing", "_open", "interim", "wasm_maps", "plain", "parsed",
    "keep_alive", "reader", "error", "cache_key"};

typedef struct {
    PyTypeObject *request_type, *exchange_type;
    PyObject *from_body, *exchange_ids, *raw_plain;
    Py_ssize_t request_at[R_STORED], exchange_at[X_STORED];
} Makers;

static Makers makers;  /* bound by bind_makers (request_type NULL: not bound) */

/* bound by bind_plain (request_type NULL: not bound): ``Request`` itself, whose slots are
 * ``RawRequest``'s (the same offsets) and ``headers``; the fields' multidict type and
 * multidict's ``getversion`` */
static struct {
    PyTypeObject *request_type;
    PyObject *multidict, *getversion;
    PyObject *declined;  /* ``exchange.DECLINED``: a list of one note (or None) */
    Py_ssize_t headers_at;
} plain_makers;
static PyObject *str_request_id;  /* "X-Request-Id" */
static PyObject *time_module, *str_perf_counter, *str_time, *str_http, *str_empty, *str_target,
    *bytes_request_id, *minus_one, *zero;

/* the member descriptors (slots) in ``type`` and its bases */
static Py_ssize_t count_slots(PyTypeObject *type) {
    Py_ssize_t n = 0;
    PyObject *mro = type->tp_mro;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mro); i++) {
        PyObject *dict = ((PyTypeObject *)PyTuple_GET_ITEM(mro, i))->tp_dict, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(dict, &pos, NULL, &value))
            n += Py_IS_TYPE(value, &PyMemberDescr_Type);
    }
    return n;
}

/* the offsets of ``names`` as plain writable object slots of ``type`` into ``at``: 1, or 0
 * when one is not such a slot, or the type's slots are not ``n + unset``, or it has a
 * ``__new__``/``__init__`` of its own (-1: an error) */
static int resolve_slots(PyTypeObject *type, const char *const *names, Py_ssize_t n,
                         Py_ssize_t unset, Py_ssize_t *at) {
    if (type->tp_new != PyBaseObject_Type.tp_new || type->tp_init != PyBaseObject_Type.tp_init
            || type->tp_alloc != PyType_GenericAlloc || count_slots(type) != n + unset)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyUnicode_InternFromString(names[i]);
        if (name == NULL)
            return -1;
        PyObject *d = _PyType_Lookup(type, name);  /* borrowed */
        Py_DECREF(name);
        if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type))
            return 0;
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type != T_OBJECT_EX || (m->flags & READONLY))
            return 0;
        at[i] = m->offset;
    }
    return 1;
}

static int maker_constants(void) {
    static struct { PyObject **slot; const char *text; } names[] = {
        {&str_perf_counter, "perf_counter"}, {&str_time, "time"}, {&str_http, "http"}, {&str_empty, ""},
        {&str_target, "target"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (*names[i].slot == NULL && (*names[i].slot = PyUnicode_InternFromString(names[i].text)) == NULL)
            return -1;
    }
    if (bytes_request_id == NULL && (bytes_request_id = PyBytes_FromString("X-Request-Id")) == NULL)
        return -1;
    if (minus_one == NULL && (minus_one = PyLong_FromLong(-1)) == NULL)
        return -1;
    if (zero == NULL && (zero = PyLong_FromLong(0)) == NULL)
        return -1;
    if (time_module == NULL && (time_module = PyImport_ImportModule("time")) == NULL)
        return -1;
    return 0;
}

static PyObject *bind_makers(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5 || !PyType_Check(args[0]) || !PyType_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError,
                        "bind_makers(raw_request_type, exchange_type, from_body, exchange_ids, raw_plain)");
        return NULL;
    }
    if (maker_constants() < 0)
        return NULL;
    Makers found = {(PyTypeObject *)args[0], (PyTypeObject *)args[1]};
    int ok = resolve_slots(found.request_type, request_slots, R_STORED, REQUEST_UNSET, found.request_at);
    if (ok == 1)
        ok = resolve_slots(found.exchange_type, exchange_slots, X_STORED, 0, found.exchange_at);
    if (ok < 0)
        return NULL;
    if (ok == 0 || !PyIter_Check(args[3]))
        Py_RETURN_FALSE;
    Py_INCREF(found.request_type);
    Py_INCREF(found.exchange_type);
    found.from_body = Py_NewRef(args[2]);
    found.exchange_ids = Py_NewRef(args[3]);
    found.raw_plain = Py_NewRef(args[4]);
    Makers old = makers;
    makers = found;
    Py_XDECREF(old.request_type);
    Py_XDECREF(old.exchange_type);
    Py_XDECREF(old.from_body);
    Py_XDECREF(old.exchange_ids);
    Py_XDECREF(old.raw_plain);
    Py_RETURN_TRUE;
}

/* store ``value`` (a new reference, taken) in ``obj``'s slot at ``offset`` (empty: made by
 * tp_alloc) */
static inline void put(PyObject *obj, Py_ssize_t offset, PyObject *value) {
    *(PyObject **)((char *)obj + offset) = value;
}

/* ``time.<name>()``, as the Python maker calls it (a replaced clock function included) */
static PyObject *clock_read(PyObject *name) {
    PyObject *clock = PyObject_GetAttr(time_module, name);
    if (clock == NULL)
        return NULL;
    PyObject *now = PyObject_CallNoArgs(clock);
    Py_DECREF(clock);
    return now;
}

/* the request id ``prefix`` + ``next(count)`` in lower-case hex, as bytes */
static PyObject *request_id_bytes(PyObject *prefix, PyObject *count) {
    PyObject *next = PyIter_Next(count);
    if (next == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "the request id counter ended");
        return NULL;
    }
    unsigned long long number = PyLong_AsUnsignedLongLong(next);
    Py_DECREF(next);
    if (number == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    char hex[16];
    int digits = 0;
    do {
        hex[15 - digits++] = "0123456789abcdef"[number & 15];
        number >>= 4;
    } while (number);
    Py_ssize_t np = PyBytes_GET_SIZE(prefix);
    PyObject *wire = PyBytes_FromStringAndSize(NULL, np + digits);
    if (wire == NULL)
        return NULL;
    memcpy(PyBytes_AS_STRING(wire), PyBytes_AS_STRING(prefix), np);
    memcpy(PyBytes_AS_STRING(wire) + np, hex + 16 - digits, digits);
    return wire;
}

/* a request of ``type`` (made by ``tp_alloc``: no ``__init__`` runs) with the slots
 * ``Request.__init__`` stores: ``headers`` NULL leaves that slot unset (a ``RawRequest``
 * makes it on first read) and ``raw`` is ``(raw_version, raw)`` */
static PyObject *make_request(PyTypeObject *type, PyObject *headers, PyObject *raw_version,
                              PyObject *method, PyObject *url, PyObject *target, PyObject *raw,
                              PyObject *version) {
    const char *s = PyBytes_AS_STRING(url);
    const char *mark = memchr(s, '?', PyBytes_GET_SIZE(url));  /* Latin-1: a byte per character */
    PyObject *path, *query;
    if (mark == NULL) {  /* ``target.partition("?")``: the target itself, "" */
        path = Py_NewRef(target);
        query = Py_NewRef(str_empty);
    } else {
        Py_ssize_t at = mark - s;
        path = PyUnicode_Substring(target, 0, at);
        query = PyUnicode_Substring(target, at + 1, PyUnicode_GET_LENGTH(target));
        if (path == NULL || query == NULL) {
            Py_XDECREF(path);
            Py_XDECREF(query);
            return NULL;
        }
    }
    PyObject *pair = PyTuple_Pack(2, raw_version, raw);
    PyObject *request = pair == NULL ? NULL : type->tp_alloc(type, 0);
    if (request == NULL) {
        Py_XDECREF(pair);
        Py_DECREF(path);
        Py_DECREF(query);
        return NULL;
    }
    const Py_ssize_t *at = makers.request_at;
    put(request, at[R_METHOD], Py_NewRef(method));
    put(request, at[R_VERSION], Py_NewRef(version));
    put(request, at[R_BODY], PyBytes_FromStringAndSize(NULL, 0));  /* b"": the shared empty bytes */
    put(request, at[R_SCHEME], Py_NewRef(str_http));
    put(request, at[R_TRAILERS], Py_NewRef(makers.from_body));
    put(request, at[R_RAW], pair);
    put(request, at[R_TARGET], Py_NewRef(target));
    put(request, at[R_PATH], path);
    put(request, at[R_QUERY], query);
    if (headers != NULL)
        put(request, plain_makers.headers_at, Py_NewRef(headers));
    return request;
}

/* an exchange's values from its maker's caller (borrowed) */
typedef struct {
    PyObject *request, *target, *request_id, *client, *local, *keep_alive, *reader, *interim,
        *plain, *parsed, *cache_key;
} ExchangeArgs;

/* the ``ClientExchange`` ``client_exchange`` makes from ``a``: its own id, clocks and dicts */
static PyObject *make_exchange(const ExchangeArgs *a) {
    PyObject *id = PyIter_Next(makers.exchange_ids);
    PyObject *start = id == NULL ? NULL : clock_read(str_perf_counter);
    PyObject *wall = start == NULL ? NULL : clock_read(str_time);
    PyObject *timings = wall == NULL ? NULL : PyDict_New();
    PyObject *props = timings == NULL ? NULL : PyDict_New();
    PyObject *ex = props == NULL ? NULL : makers.exchange_type->tp_alloc(makers.exchange_type, 0);
    if (ex == NULL) {
        if (id == NULL && !PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "the exchange id counter ended");
        Py_XDECREF(id);
        Py_XDECREF(start);
        Py_XDECREF(wall);
        Py_XDECREF(timings);
        Py_XDECREF(props);
        return NULL;
    }
    const Py_ssize_t *at = makers.exchange_at;
    put(ex, at[X_REQUEST], Py_NewRef(a->request));
    put(ex, at[X_TARGET], Py_NewRef(a->target));
    put(ex, at[X_REQUEST_ID], Py_NewRef(a->request_id));
    put(ex, at[X_CLIENT], Py_NewRef(a->client));
    put(ex, at[X_LOCAL], Py_NewRef(a->local));
    put(ex, at[X_ID], id);
    put(ex, at[X_START], start);
    put(ex, at[X_START_WALL], wall);
    put(ex, at[X_ORIGIN], Py_NewRef(Py_None));
    put(ex, at[X_CACHE_STATUS], Py_NewRef(str_empty));
    put(ex, at[X_X_CACHE], Py_NewRef(str_empty));
    put(ex, at[X_ORIGIN_TIME], Py_NewRef(Py_None));
    put(ex, at[X_TIMINGS], timings);
    put(ex, at[X_PROPS], props);
    put(ex, at[X_RESPONSE_BYTES], Py_NewRef(zero));
    put(ex, at[X_STATUS], Py_NewRef(zero));
    put(ex, at[X_SERVER_TIMING], Py_NewRef(Py_False));
    put(ex, at[X_OPEN], Py_NewRef(Py_None));
    put(ex, at[X_INTERIM], Py_NewRef(a->interim));
    put(ex, at[X_WASM_MAPS], Py_NewRef(Py_None));
    put(ex, at[X_PLAIN], Py_NewRef(a->plain));
    put(ex, at[X_PARSED], Py_NewRef(a->parsed));
    put(ex, at[X_KEEP_ALIVE], Py_NewRef(a->keep_alive));
    put(ex, at[X_READER], Py_NewRef(a->reader));
    put(ex, at[X_ERROR], Py_NewRef(Py_None));
    put(ex, at[X_CACHE_KEY], Py_NewRef(a->cache_key));
    return ex;
}

static PyObject *filtered_exchange(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    /* method, url, raw, host, version, keep_alive, prefix, count, client, local, interim */
    if (nargs != 11 || !PyUnicode_Check(args[0]) || !PyBytes_Check(args[1]) || !PyList_Check(args[2])
            || !PyBytes_Check(args[3]) || !PyUnicode_Check(args[4]) || !PyBytes_Check(args[6])) {
        PyErr_SetString(PyExc_TypeError,
                        "filtered_exchange(method: str, url: bytes, raw: list, host: bytes, version: str, "
                        "keep_alive, prefix: bytes, count, client, local, interim)");
        return NULL;
    }
    if (makers.request_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "filtered_exchange before bind_makers");
        return NULL;
    }
    PyObject *url = args[1], *raw = args[2];
    PyObject *wire = request_id_bytes(args[6], args[7]);
    if (wire == NULL)
        return NULL;
    PyObject *rid = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(wire), PyBytes_GET_SIZE(wire), NULL);
    PyObject *id_pair = rid == NULL ? NULL : PyTuple_Pack(2, bytes_request_id, wire);
    Py_DECREF(wire);
    PyObject *target = id_pair == NULL ? NULL
        : PyUnicode_DecodeLatin1(PyBytes_AS_STRING(url), PyBytes_GET_SIZE(url), NULL);
    PyObject *request = target == NULL ? NULL : make_request(makers.request_type, NULL, minus_one, args[0], url, target, raw, args[4]);
    PyObject *parsed = request == NULL ? NULL : PyTuple_Pack(2, url, args[3]);
    PyObject *ex = NULL;
    if (parsed != NULL) {
        ExchangeArgs a = {request, target, rid, args[8], args[9], args[5], Py_None, args[10],
                          makers.raw_plain, parsed, Py_None};
        ex = make_exchange(&a);
    }
    Py_XDECREF(rid);
    Py_XDECREF(target);
    Py_XDECREF(request);
    Py_XDECREF(parsed);
    if (ex != NULL && PyList_Append(raw, id_pair) < 0)
        Py_CLEAR(ex);
    Py_XDECREF(id_pair);
    return ex;
}

static PyObject *native_client_exchange(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    /* request, client, local, keep_alive, reader, request_id, interim */
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError,
                        "client_exchange(request, client, local, keep_alive, reader, request_id, interim)");
        return NULL;
    }
    if (makers.request_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "client_exchange before bind_makers");
        return NULL;
    }
    PyObject *target = PyObject_GetAttr(args[0], str_target);
    if (target == NULL)
        return NULL;
    ExchangeArgs a = {args[0], target, args[5], args[1], args[2], args[3], args[4], args[6],
                      minus_one, Py_None, Py_None};
    PyObject *ex = make_exchange(&a);
    Py_DECREF(target);
    return ex;
}

/* bind_plain(request_type, multidict_type, getversion, declined) -> bool: ``plain_exchange``'s
 * ``Request`` class (after ``bind_makers``): its slots must be exactly ``headers`` and the
 * nine ``RawRequest`` stores, at the same offsets, with ``object``'s ``__new__``.  Its
 * Python ``__init__`` is not run: the maker stores every slot it stores (held equal by
 * tests/frontend/test_plain_exchange.py).  False, nothing bound, otherwise.  ``declined``:
 * ``exchange.DECLINED``, the fast path's note of a declined request's cache key. */
static PyObject *bind_plain(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyType_Check(args[0]) || !PyType_Check(args[1]) || !PyCallable_Check(args[2])
            || !PyList_CheckExact(args[3]) || PyList_GET_SIZE(args[3]) != 1) {
        PyErr_SetString(PyExc_TypeError, "bind_plain(request_type, multidict_type, getversion, declined: [note])");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)args[0];
    if (makers.request_type == NULL || type->tp_new != PyBaseObject_Type.tp_new
            || type->tp_alloc != PyType_GenericAlloc || count_slots(type) != R_STORED + 1)
        Py_RETURN_FALSE;
    Py_ssize_t at[R_STORED + 1];
    static const char *const names[R_STORED + 1] = {
        "method", "version", "body", "scheme", "_trailers", "raw", "target", "path", "query", "headers"};
    for (Py_ssize_t i = 0; i <= R_STORED; i++) {
        PyObject *name = PyUnicode_InternFromString(names[i]);
        if (name == NULL)
            return NULL;
        PyObject *d = _PyType_Lookup(type, name);  /* borrowed */
        Py_DECREF(name);
        if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type))
            Py_RETURN_FALSE;
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type != T_OBJECT_EX || (m->flags & READONLY) || (i < R_STORED && m->offset != makers.request_at[i]))
            Py_RETURN_FALSE;
        at[i] = m->offset;
    }
    if (str_request_id == NULL && (str_request_id = PyUnicode_InternFromString("X-Request-Id")) == NULL)
        return NULL;
    Py_XSETREF(plain_makers.multidict, Py_NewRef(args[1]));
    Py_XSETREF(plain_makers.getversion, Py_NewRef(args[2]));
    Py_XSETREF(plain_makers.declined, Py_NewRef(args[3]));
    plain_makers.headers_at = at[R_STORED];
    Py_XSETREF(plain_makers.request_type, (PyTypeObject *)Py_NewRef(type));
    Py_RETURN_TRUE;
}

/* ``[(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]`` and
 * ``(name, value)`` after them, for the multidict */
static PyObject *text_pairs(PyObject *raw, PyObject *name, PyObject *value) {
    Py_ssize_t n = PyList_GET_SIZE(raw);
    PyObject *out = PyList_New(n + 1);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(raw, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(pair, 0))
                || !PyBytes_Check(PyTuple_GET_ITEM(pair, 1))) {
            PyErr_SetString(PyExc_TypeError, "plain_exchange: raw holds (bytes, bytes) pairs");
            Py_DECREF(out);
            return NULL;
        }
        PyObject *k = PyTuple_GET_ITEM(pair, 0), *v = PyTuple_GET_ITEM(pair, 1);
        PyObject *tk = PyUnicode_DecodeLatin1(PyBytes_AS_STRING(k), PyBytes_GET_SIZE(k), NULL);
        PyObject *tv = tk == NULL ? NULL : PyUnicode_DecodeLatin1(PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v), NULL);
        PyObject *text = tv == NULL ? NULL : PyTuple_Pack(2, tk, tv);
        Py_XDECREF(tk);
        Py_XDECREF(tv);
        if (text == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, text);
    }
    PyObject *last = PyTuple_Pack(2, name, value);
    if (last == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    PyList_SET_ITEM(out, n, last);
    return out;
}

/* ``exchange.declined_key(asked)``: the note ``declined`` holds for ``asked``, taken (the
 * cell's reference, the cell emptied), or None; a new reference either way */
static PyObject *take_declined(PyObject *asked) {
    PyObject *cell = plain_makers.declined;
    if (PyList_GET_SIZE(cell) != 1)  /* (one item, as bound: nothing to take otherwise) */
        return Py_NewRef(Py_None);
    PyObject *note = PyList_GET_ITEM(cell, 0);  /* borrowed */
    if (!PyTuple_CheckExact(note) || PyTuple_GET_SIZE(note) != 3 || PyTuple_GET_ITEM(note, 0) != asked)
        return Py_NewRef(Py_None);
    PyList_SET_ITEM(cell, 0, Py_NewRef(Py_None));
    return note;
}

/* plain_exchange(method, url, raw, version, keep_alive, prefix, count, client, local,
 * interim, asked) -> exchange: what ``_plain_head`` gets from the Python makers for a
 * plain GET/HEAD, without an X-Request-Id of its own and its fields not made: the request
 * id as ``filtered_exchange`` makes it, the ``Request`` (``bind_plain``) with its fields
 * multidict (the parsed pairs as Latin-1 text, then X-Request-Id) and ``raw``
 * ``(getversion(fields), raw)``, and the ``ClientExchange`` (no ``parsed``).  ``asked``:
 * None when the fast path was not asked (``plain`` -1), else the ``fields`` callable it
 * was asked with and declined: ``plain`` the fields' version (the sink found none of
 * ``NOT_PLAIN``) and ``cache_key`` the fast path's note for it (``declined_key``).
 * ``raw`` is appended to last and the note taken last, so an error leaves both as they
 * were. */
static PyObject *plain_exchange(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 11 || !PyUnicode_Check(args[0]) || !PyBytes_Check(args[1]) || !PyList_Check(args[2])
            || !PyUnicode_Check(args[3]) || !PyBytes_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError,
                        "plain_exchange(method: str, url: bytes, raw: list, version: str, keep_alive, "
                        "prefix: bytes, count, client, local, interim, asked)");
        return NULL;
    }
    if (plain_makers.request_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "plain_exchange before bind_plain");
        return NULL;
    }
    PyObject *url = args[1], *raw = args[2];
    PyObject *wire = request_id_bytes(args[5], args[6]);
    if (wire == NULL)
        return NULL;
    PyObject *rid = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(wire), PyBytes_GET_SIZE(wire), NULL);
    PyObject *id_pair = rid == NULL ? NULL : PyTuple_Pack(2, bytes_request_id, wire);
    Py_DECREF(wire);
    PyObject *text = id_pair == NULL ? NULL : text_pairs(raw, str_request_id, rid);
    PyObject *headers = text == NULL ? NULL : PyObject_CallOneArg(plain_makers.multidict, text);
    Py_XDECREF(text);
    PyObject *fields_version = headers == NULL ? NULL : PyObject_CallOneArg(plain_makers.getversion, headers);
    PyObject *target = fields_version == NULL ? NULL
        : PyUnicode_DecodeLatin1(PyBytes_AS_STRING(url), PyBytes_GET_SIZE(url), NULL);
    PyObject *request = target == NULL ? NULL
        : make_request(plain_makers.request_type, headers, fields_version, args[0], url, target, raw, args[3]);
    PyObject *ex = NULL;
    PyObject *asked = args[10];
    if (request != NULL) {
        ExchangeArgs a = {request, target, rid, args[7], args[8], args[4], Py_None, args[9],
                          asked == Py_None ? minus_one : fields_version, Py_None, Py_None};
        ex = make_exchange(&a);
    }
    Py_XDECREF(rid);
    Py_XDECREF(headers);
    Py_XDECREF(fields_version);
    Py_XDECREF(target);
    Py_XDECREF(request);
    if (ex != NULL && PyList_Append(raw, id_pair) < 0)
        Py_CLEAR(ex);
    Py_XDECREF(id_pair);
    if (ex != NULL && asked != Py_None) {
        PyObject **slot = (PyObject **)((char *)ex + makers.exchange_at[X_CACHE_KEY]);
        Py_XSETREF(*slot, take_declined(asked));
    }
    return ex;
}

static int intern_names(void) {
    static struct { PyObject **slot; const char *text; } names[] = {
        {&str_is_running, "is_running"}, {&str_call_soon, "call_soon"}, {&str_flush, "flush"},
        {&str_queued, "queued"}, {&str_is_closing, "is_closing"}, {&str_write, "write"},
        {&str_writelines, "writelines"}, {&str_run, "run"}, {&str_run_steps, "run_steps"},
        {&str_steps_failed, "_steps_failed"},
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
    {"bind_makers", (PyCFunction)(void (*)(void))bind_makers, METH_FASTCALL,
     "bind_makers(raw_request_type, exchange_type, from_body, exchange_ids, raw_plain) -> bool: "
     "the classes' slot offsets for filtered_exchange, or False when their slots are not its own."},
    {"filtered_exchange", (PyCFunction)(void (*)(void))filtered_exchange, METH_FASTCALL,
     "filtered_exchange(method, url, raw, host, version, keep_alive, prefix, count, client, local, "
     "interim) -> exchange: a filtered plain request's RawRequest and ClientExchange."},
    {"bind_plain", (PyCFunction)(void (*)(void))bind_plain, METH_FASTCALL,
     "bind_plain(request_type, multidict_type, getversion) -> bool: plain_exchange's Request class, "
     "or False when its slots are not the ones it stores."},
    {"plain_exchange", (PyCFunction)(void (*)(void))plain_exchange, METH_FASTCALL,
     "plain_exchange(method, url, raw, version, keep_alive, prefix, count, client, local, interim) "
     "-> exchange: a declined plain request's Request, its fields and its ClientExchange."},
    {"client_exchange", (PyCFunction)(void (*)(void))native_client_exchange, METH_FASTCALL,
     "client_exchange(request, client, local, keep_alive, reader, request_id, interim) -> exchange: "
     "exchange.client_exchange's ClientExchange."},
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
