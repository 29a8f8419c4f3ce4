/* The usual origin exchange of a miss in C (http/client.py ``_OriginConnection``).
 *
 * uvloop calls the protocol's ``data_received`` and httptools finds
 * ``on_headers_complete``, ``on_body`` and ``on_message_complete`` on the object it parses
 * for; the request goes out through ``send``.  In Python those were ~8 frames per miss
 * (the read, the head's framing tests, the response made, the waiter settled, the body
 * collected, the message's end, the send), ~0.5-3k interpreter instructions each.
 * ``OriginCore`` is the connection's C base: it holds the state those share with the
 * Python methods as C fields (members for the Python side, as fast as slots) and runs the
 * usual exchange in C: a request without a body, and a final response, not 204/304, to a
 * request other than HEAD, framed by Content-Length or chunked, with no Keep-Alive hint new
 * to the pool, its waiter still waiting, its whole body in the read that carried its head.
 * Every other case goes to the Python methods (the reference: ``_send``,
 * ``_data_received``, ``_headers_complete``, ``_on_body``, ``_message_complete``,
 * ``_after_read``, ``_parse_failed``) before anything is changed, so the two paths never
 * share half a response (tests/http/test_origin_native.py holds the C path's responses to
 * the Python one's).  The connection is released through the pool's ``_release``.
 * ``request_head`` is ``proxy/forwarding.py``'s request line and copy
 * (tests/proxy/test_request_head_native.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    PyObject *pool;         /* the OriginPool */
    PyObject *parser;       /* httptools.HttpResponseParser fed by this connection */
    PyObject *headers;      /* the header section being parsed: (name, value) str pairs */
    PyObject *method;       /* the request's method */
    PyObject *head_waiter;  /* the future of the response head, or None */
    PyObject *early;        /* the response handed on whose body is still in ``parts`` */
    PyObject *parts;        /* ``early``'s body so far */
    PyObject *body;         /* the streamed body (OriginBody), or None */
    PyObject *on_interim;   /* the interim responses' receiver, or None */
    PyObject *status;       /* the final response's status (an int), 0 between messages */
    PyObject *loop;         /* the pool's event loop */
    PyObject *transport;    /* the connection's transport, or None before it is made */
    double head_deadline;   /* when the response head must have arrived */
    double idle_since;      /* when the pool took it back idle */
    Py_ssize_t uses;        /* requests sent on this connection */
    Py_ssize_t fed;         /* bytes received since the request was sent */
    Py_ssize_t max_head;    /* max_header_bytes */
    Py_ssize_t stalled;     /* bytes fed since the parser last reported progress */
    char progress;          /* the parser reported a field, body byte or message end */
    char eof_delimited;     /* the body ends only at the connection's close */
    char busy;              /* a request is out and its response not all in */
    char paused;            /* reading paused by the body's back-pressure */
    char upload_done;       /* the request's body is all sent */
    char got_bytes;         /* a byte of the response arrived */
    char closed;            /* aborted or lost: never sent on again */
} OriginCore;

/* the pool's state the usual exchange reads and writes (``OriginPool``'s C base): members
 * for the Python side, plain fields here, not an attribute lookup each */
typedef struct {
    PyObject_HEAD
    PyObject *loop;         /* the event loop, None before the first request */
    PyObject *cfg;          /* the OriginConfig */
    PyObject *idle;         /* idle connections, most recent last */
    PyObject *waiters;      /* requests waiting for a connection (a deque) */
    PyObject *sweeper;      /* the idle sweep's timer, or None */
    PyObject *heads;        /* connections awaiting a response head (a set) */
    PyObject *head_timer;   /* the first-byte timer, or None */
    PyObject *keep_hint;    /* the origin's last Keep-Alive field, or None */
    double keep_for;        /* how long a connection may wait idle */
    Py_ssize_t requests;    /* requests sent (metrics) */
    Py_ssize_t reused;      /* requests on a kept connection (metrics) */
    char closed;            /* closed: no new requests */
} PoolCore;

static PyTypeObject PoolCoreType;

/* ``pool`` as a ``PoolCore`` with its fields set, or NULL: the Python methods take it */
static PoolCore *pool_core(PyObject *pool) {
    if (pool == NULL || !PyObject_TypeCheck(pool, &PoolCoreType))
        return NULL;
    PoolCore *core = (PoolCore *)pool;
    return core->loop != NULL && core->cfg != NULL && core->idle != NULL && core->waiters != NULL
        && core->sweeper != NULL && core->heads != NULL && core->head_timer != NULL
        && core->keep_hint != NULL ? core : NULL;
}

/* bound once by ``bind``: the classes and values the usual response is made of, and the
 * offsets of the response's slots (``made_response`` stores the same ones) */
static PyObject *md_class, *from_body, *getversion_fn, *long_zero;
static PyTypeObject *response_type;
enum { R_STATUS, R_HEADERS, R_BODY, R_REASON, R_WIRE_HEAD, R_FIELDS, R_TRAILERS, R_SLOTS };
static const char *const response_slots[R_SLOTS] = {
    "status", "headers", "body", "reason", "wire_head", "fields", "_trailers",
};
static Py_ssize_t response_at[R_SLOTS];
static PyObject *str_get_status_code, *str_done, *str_set_result, *str_should_keep_alive,
    *str_release, *str_head, *str_empty, *bytes_empty,
    *str_headers_complete, *str_on_body, *str_message_complete, *str_feed_data, *str_body_attr,
    *str_data_received, *str_parse_failed, *str_send, *str_method, *str_create_future,
    *str_write, *str_time, *str_first_byte_timeout, *str_awaiting_head, *str_abort,
    *str_fields, *str_headers_attr, *str_add, *str_via;

/* ASCII case-insensitive test of a 1-byte str against a lower-case literal of ``n`` chars */
static int name_is(PyObject *name, const char *lower, Py_ssize_t n) {
    if (!PyUnicode_Check(name) || PyUnicode_GET_LENGTH(name) != n
            || PyUnicode_KIND(name) != PyUnicode_1BYTE_KIND)
        return 0;
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(name);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS1 c = s[i];
        if ((c >= 'A' && c <= 'Z' ? c + 32 : c) != (Py_UCS1)lower[i])
            return 0;
    }
    return 1;
}

/* a Transfer-Encoding value that is exactly ``chunked`` (any case, spaces around) */
static int value_is_chunked(PyObject *value) {
    if (!PyUnicode_Check(value) || PyUnicode_KIND(value) != PyUnicode_1BYTE_KIND)
        return 0;
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(value);
    Py_ssize_t a = 0, b = PyUnicode_GET_LENGTH(value);
    while (a < b && (s[a] == ' ' || s[a] == '\t'))
        a++;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
        b--;
    static const char chunked[] = "chunked";
    if (b - a != 7)
        return 0;
    for (Py_ssize_t i = 0; i < 7; i++) {
        Py_UCS1 c = s[a + i];
        if ((c >= 'A' && c <= 'Z' ? c + 32 : c) != (Py_UCS1)chunked[i])
            return 0;
    }
    return 1;
}

/* 1: the head's fields frame the body by Content-Length or chunked alone and carry no
 * Keep-Alive hint other than the pool's last; 0: the Python method decides; -1: error */
static int usual_fields(OriginCore *self) {
    PyObject *fields = self->headers;
    Py_ssize_t n = PyList_GET_SIZE(fields);
    int framed = 0, codings = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(fields, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2)
            return 0;
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        Py_ssize_t len = PyUnicode_Check(name) ? PyUnicode_GET_LENGTH(name) : 0;
        if (len == 14 && name_is(name, "content-length", 14)) {
            framed = 1;
        } else if (len == 17 && name_is(name, "transfer-encoding", 17)) {
            if (codings++ || !value_is_chunked(value))
                return 0;
        } else if (len == 10 && name_is(name, "keep-alive", 10)) {
            PyObject *hint = ((PoolCore *)self->pool)->keep_hint;  /* (``usual_head`` checked) */
            int same = PyUnicode_Check(hint) && PyUnicode_Check(value) ? PyUnicode_Compare(hint, value) : -1;
            if (same == -1 && PyErr_Occurred())
                return -1;
            if (same != 0)
                return 0;
        }
    }
    return framed || codings;
}

/* 1: the head just parsed is a usual response (``status`` its code, a new reference);
 * 0: the Python method takes it; -1: error.  Changes nothing. */
static int usual_head(OriginCore *self, PyObject **status) {
    if (self->fed > self->max_head / 2 || self->head_waiter == NULL || self->head_waiter == Py_None
            || self->parser == NULL || pool_core(self->pool) == NULL || self->headers == NULL
            || !PyList_CheckExact(self->headers) || self->method == NULL || !PyUnicode_Check(self->method)
            || PyUnicode_Compare(self->method, str_head) == 0 || md_class == NULL)
        return 0;
    PyObject *code = PyObject_CallMethodNoArgs(self->parser, str_get_status_code);
    if (code == NULL)
        return -1;
    long value = PyLong_AsLong(code);
    if (value == -1 && PyErr_Occurred()) {
        Py_DECREF(code);
        return -1;
    }
    if (value < 200 || value == 204 || value == 304) {
        Py_DECREF(code);
        return 0;
    }
    PyObject *done = PyObject_CallMethodNoArgs(self->head_waiter, str_done);
    if (done == NULL) {
        Py_DECREF(code);
        return -1;
    }
    int abandoned = PyObject_IsTrue(done);
    Py_DECREF(done);
    int usual = abandoned == 0 ? usual_fields(self) : (abandoned < 0 ? -1 : 0);
    if (usual != 1) {
        Py_DECREF(code);
        return usual;
    }
    *status = code;
    return 1;
}

/* the response's slot at ``at`` */
static inline PyObject **slot(PyObject *response, int at) {
    return (PyObject **)((char *)response + response_at[at]);
}

/* a ``PrebuiltResponse`` with the slots ``made_response`` stores, stored by their offsets
 * (its class call is ``object``'s: the allocation and nothing else) */
static PyObject *made_head(PyObject *status, PyObject *headers, PyObject *pairs) {
    PyObject *version = PyObject_CallOneArg(getversion_fn, headers);
    if (version == NULL)
        return NULL;
    PyObject *fields = PyTuple_Pack(2, version, pairs);
    Py_DECREF(version);
    if (fields == NULL)
        return NULL;
    PyObject *response = response_type->tp_alloc(response_type, 0);
    if (response == NULL) {
        Py_DECREF(fields);
        return NULL;
    }
    *slot(response, R_STATUS) = Py_NewRef(status);
    *slot(response, R_HEADERS) = Py_NewRef(headers);
    *slot(response, R_BODY) = Py_NewRef(bytes_empty);
    *slot(response, R_REASON) = Py_NewRef(str_empty);
    *slot(response, R_WIRE_HEAD) = Py_NewRef(Py_None);
    *slot(response, R_FIELDS) = fields;  /* taken */
    *slot(response, R_TRAILERS) = Py_NewRef(from_body);
    return response;
}

/* ``on_headers_complete``: the usual head made into the response and handed to its waiter,
 * its body to collect in ``parts``; any other to ``_headers_complete`` */
static PyObject *core_headers_complete(PyObject *op, PyObject *unused) {
    OriginCore *self = (OriginCore *)op;
    PyObject *status = NULL;
    int usual = usual_head(self, &status);
    if (usual < 0)
        return NULL;
    if (usual == 0)
        return PyObject_CallMethodNoArgs(op, str_headers_complete);
    self->progress = 1;
    PyObject *fields = self->headers;
    PyObject *pairs = PyList_GetSlice(fields, 0, PyList_GET_SIZE(fields));
    if (pairs == NULL || PyList_SetSlice(fields, 0, PyList_GET_SIZE(fields), NULL) < 0) {
        Py_XDECREF(pairs);
        Py_DECREF(status);
        return NULL;
    }
    Py_SETREF(self->status, status);  /* taken */
    self->eof_delimited = 0;
    PyObject *headers = PyObject_CallOneArg(md_class, pairs);
    PyObject *response = headers == NULL ? NULL : made_head(self->status, headers, pairs);
    Py_XDECREF(headers);
    Py_DECREF(pairs);
    if (response == NULL)
        return NULL;
    Py_XSETREF(self->early, Py_NewRef(response));
    PyObject *waiter = Py_NewRef(self->head_waiter);
    PyObject *rc = PyObject_CallMethodOneArg(waiter, str_set_result, response);
    Py_DECREF(waiter);
    Py_DECREF(response);
    return rc;
}

/* ``on_body``: a part of the early response's body kept; any other to ``_on_body`` */
static PyObject *core_on_body(PyObject *op, PyObject *chunk) {
    OriginCore *self = (OriginCore *)op;
    if (self->early == NULL || self->early == Py_None || self->parts == NULL
            || !PyList_CheckExact(self->parts))
        return PyObject_CallMethodOneArg(op, str_on_body, chunk);
    self->progress = 1;
    if (PyList_Append(self->parts, chunk) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* the early response's body as bytes: its one part, or the (several) parts joined */
static PyObject *early_body(PyObject *parts) {
    if (PyList_GET_SIZE(parts) == 1)
        return Py_NewRef(PyList_GET_ITEM(parts, 0));
    return _PyBytes_Join(bytes_empty, parts);
}

/* ``loop.time()`` as a double into ``now``: 0, or -1 on error */
static int loop_time(PyObject *loop, double *now) {
    PyObject *value = PyObject_CallMethodNoArgs(loop, str_time);
    if (value == NULL)
        return -1;
    *now = PyFloat_AsDouble(value);
    Py_DECREF(value);
    return *now == -1.0 && PyErr_Occurred() ? -1 : 0;
}

/* 1: the pool's ``_release`` would put the reusable connection back idle and no more
 * (an open pool that no request waits for, its idle sweep's timer running); 0: its method
 * decides (it aborts, hands the connection on, or starts the sweep); -1: error */
static int keeps_idle(OriginCore *self, PoolCore *pool, int reusable) {
    if (!reusable || self->closed || pool == NULL || pool->closed || pool->sweeper == Py_None
            || !PyList_CheckExact(pool->idle))
        return 0;
    Py_ssize_t waiting = PyObject_Length(pool->waiters);
    return waiting < 0 ? -1 : waiting == 0;
}

/* the pool's ``_release(conn, reusable)``: the usual case (``keeps_idle``) here, the
 * connection put back idle since now; any other to the pool's method */
static PyObject *release(OriginCore *self, int reusable) {
    PoolCore *pool = pool_core(self->pool);
    int keeps = keeps_idle(self, pool, reusable);
    if (keeps < 0)
        return NULL;
    if (!keeps)
        return PyObject_CallMethodObjArgs(self->pool, str_release, (PyObject *)self,
                                          reusable ? Py_True : Py_False, NULL);
    if (loop_time(pool->loop, &self->idle_since) < 0 || PyList_Append(pool->idle, (PyObject *)self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ``on_message_complete``: the early response's body set from its parts and the
 * connection released, as ``_message_done`` does; trailers, a streamed body, a paused
 * connection or an interim response's end to ``_message_complete`` */
static PyObject *core_message_complete(PyObject *op, PyObject *unused) {
    OriginCore *self = (OriginCore *)op;
    PyObject *early = self->early;
    if (self->status == NULL || !PyLong_CheckExact(self->status) || Py_SIZE(self->status) == 0
            || !self->busy || early == NULL || early == Py_None || self->parts == NULL
            || (self->body != NULL && self->body != Py_None) || self->paused || self->headers == NULL
            || !PyList_CheckExact(self->headers) || PyList_GET_SIZE(self->headers) != 0
            || !PyList_CheckExact(self->parts) || self->pool == NULL || self->parser == NULL)
        return PyObject_CallMethodNoArgs(op, str_message_complete);
    PyObject *flag = PyObject_CallMethodNoArgs(self->parser, str_should_keep_alive);
    if (flag == NULL)
        return NULL;
    int keep_alive = PyObject_IsTrue(flag);
    Py_DECREF(flag);
    if (keep_alive < 0)
        return NULL;
    self->progress = 1;
    if (PyList_GET_SIZE(self->parts)) {
        PyObject *body = early_body(self->parts);
        if (body == NULL)
            return NULL;
        if (Py_IS_TYPE(early, response_type))
            Py_XSETREF(*slot(early, R_BODY), body);
        else if (PyObject_SetAttr(early, str_body_attr, body) < 0) {  /* (made by Python) */
            Py_DECREF(body);
            return NULL;
        } else
            Py_DECREF(body);
        if (PyList_SetSlice(self->parts, 0, PyList_GET_SIZE(self->parts), NULL) < 0)
            return NULL;
    }
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL)
        return NULL;
    Py_SETREF(self->status, zero);
    Py_SETREF(self->early, Py_NewRef(Py_None));
    Py_XSETREF(self->on_interim, Py_NewRef(Py_None));
    Py_XSETREF(self->head_waiter, Py_NewRef(Py_None));  /* done: its owner needs it no more */
    self->busy = 0;
    return release(self, keep_alive && self->upload_done);
}

/* a parse's exception handed to ``_parse_failed`` (which re-raises what is not the parser's) */
static PyObject *parse_failed(PyObject *op) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value == NULL) {  /* (no exception object: nothing to hand on) */
        PyErr_Restore(type, value, tb);
        return NULL;
    }
    if (tb != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    PyObject *rc = PyObject_CallMethodOneArg(op, str_parse_failed, value);
    Py_DECREF(value);
    return rc;
}

/* the protocol's ``data_received``: the read fed to the parser, whose callbacks above
 * answer the usual response; a read without a request out, a parse error, a body going on
 * past the read or a header section left open to the Python methods (``_data_received``,
 * ``_parse_failed``, ``_after_read``) */
static PyObject *core_data_received(PyObject *op, PyObject *data) {
    OriginCore *self = (OriginCore *)op;
    if (!self->busy || !PyBytes_Check(data) || self->parser == NULL || self->headers == NULL
            || !PyList_CheckExact(self->headers))
        return PyObject_CallMethodOneArg(op, str_data_received, data);
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    self->got_bytes = 1;
    self->fed += size;
    Py_ssize_t before = PyList_GET_SIZE(self->headers);
    /* held: a callback may replace the parser (a HEAD answer's) while it runs */
    PyObject *parser = Py_NewRef(self->parser);
    PyObject *rc = PyObject_CallMethodOneArg(parser, str_feed_data, data);
    Py_DECREF(parser);
    if (rc == NULL)
        return PyErr_ExceptionMatches(PyExc_Exception) ? parse_failed(op) : NULL;
    Py_DECREF(rc);
    if (self->progress && (self->early == NULL || self->early == Py_None)
            && PyList_CheckExact(self->headers) && PyList_GET_SIZE(self->headers) == 0) {
        self->progress = 0;
        self->stalled = 0;
        Py_RETURN_NONE;
    }
    return PyObject_CallMethod(op, "_after_read", "nn", before, size);
}

/* the pool's ``_awaiting_head(conn)`` for a connection just sent on: added to the pool's
 * set of connections awaiting a head; the pool's method when its timer is not running */
static int awaiting_head(OriginCore *self, PoolCore *pool) {
    int rc = PySet_Check(pool->heads) ? PySet_Add(pool->heads, (PyObject *)self) : 1;
    if (rc < 0)
        return -1;
    if (rc == 0 && pool->head_timer != Py_None)
        return 0;
    PyObject *done = PyObject_CallMethodOneArg((PyObject *)pool, str_awaiting_head, (PyObject *)self);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

/* ``now + pool.cfg.first_byte_timeout`` into ``head_deadline`` */
static int set_head_deadline(OriginCore *self, PoolCore *pool, double now) {
    PyObject *timeout = PyObject_GetAttr(pool->cfg, str_first_byte_timeout);
    if (timeout == NULL)
        return -1;
    double seconds = PyFloat_AsDouble(timeout);
    Py_DECREF(timeout);
    if (seconds == -1.0 && PyErr_Occurred())
        return -1;
    self->head_deadline = now + seconds;
    return 0;
}

/* ``send``'s work: a request without a body written as its head, its response awaited
 * (the future returned), the deadline from ``now`` (NULL: the loop's time read here); any
 * other request to ``_send`` */
static PyObject *send_request(OriginCore *self, PyObject *req, PyObject *head, PyObject *length,
                              PyObject *on_interim, const double *now) {
    PyObject *op = (PyObject *)self;
    PoolCore *pool = pool_core(self->pool);
    PyObject *body = PyLong_CheckExact(length) && Py_SIZE(length) == 0 && PyBytes_CheckExact(head)
        && self->loop != NULL && self->transport != NULL && self->transport != Py_None
        && pool != NULL && self->headers != NULL && PyList_CheckExact(self->headers)
        ? PyObject_GetAttr(req, str_body_attr) : NULL;
    if (body == NULL && PyErr_Occurred())
        return NULL;
    int usual = body != NULL && PyBytes_CheckExact(body) && PyBytes_GET_SIZE(body) == 0;
    Py_XDECREF(body);
    if (!usual)
        return PyObject_VectorcallMethod(str_send, (PyObject *[]){op, req, head, length, on_interim},
                                         5, NULL);
    PyObject *method = PyObject_GetAttr(req, str_method);
    if (method == NULL)
        return NULL;
    self->uses++;
    Py_XSETREF(self->on_interim, Py_NewRef(on_interim));
    self->busy = 1;
    self->got_bytes = 0;
    Py_XSETREF(self->method, method);  /* taken */
    if (PyList_SetSlice(self->headers, 0, PyList_GET_SIZE(self->headers), NULL) < 0)
        return NULL;
    self->stalled = self->fed = 0;
    PyObject *waiter = PyObject_CallMethodNoArgs(self->loop, str_create_future);
    if (waiter == NULL)
        return NULL;
    Py_XSETREF(self->head_waiter, Py_NewRef(waiter));
    PyObject *written = PyObject_CallMethodOneArg(self->transport, str_write, head);
    Py_XDECREF(written);
    double at = 0.0;
    if (written == NULL || (now == NULL && loop_time(self->loop, &at) < 0)
            || set_head_deadline(self, pool, now == NULL ? at : *now) < 0 || awaiting_head(self, pool) < 0) {
        Py_DECREF(waiter);
        return NULL;
    }
    return waiter;
}

/* ``send(req, head, length, on_interim=None)``: a request without a body written as its
 * head, its response awaited (the future returned); any other to ``_send`` */
static PyObject *core_send(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 3 || nargs > 4) {
        PyErr_SetString(PyExc_TypeError, "send(req, head, length, on_interim=None)");
        return NULL;
    }
    return send_request((OriginCore *)op, args[0], args[1], args[2], nargs == 4 ? args[3] : Py_None, NULL);
}

static PyMethodDef core_methods[] = {
    {"send", (PyCFunction)(void (*)(void))core_send, METH_FASTCALL,
     "send(req, head, length, on_interim=None): the request written, its head's future."},
    {"data_received", core_data_received, METH_O,
     "The protocol's read: parsed, the usual response answered in C."},
    {"on_headers_complete", core_headers_complete, METH_NOARGS,
     "The parser's head end: the usual response made and handed on in C."},
    {"on_body", core_on_body, METH_O, "The parser's body part: kept for the early response."},
    {"on_message_complete", core_message_complete, METH_NOARGS,
     "The parser's message end: the early response's body set, the connection released."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef core_members[] = {
    {"pool", T_OBJECT_EX, offsetof(OriginCore, pool), 0, "the OriginPool"},
    {"parser", T_OBJECT_EX, offsetof(OriginCore, parser), 0, "the response parser"},
    {"_headers", T_OBJECT_EX, offsetof(OriginCore, headers), 0, "the header section being parsed"},
    {"_method", T_OBJECT_EX, offsetof(OriginCore, method), 0, "the request's method"},
    {"_head_waiter", T_OBJECT_EX, offsetof(OriginCore, head_waiter), 0, "the head's future, or None"},
    {"_early", T_OBJECT_EX, offsetof(OriginCore, early), 0, "the response whose body is in _parts"},
    {"_parts", T_OBJECT_EX, offsetof(OriginCore, parts), 0, "the early response's body so far"},
    {"_body", T_OBJECT_EX, offsetof(OriginCore, body), 0, "the streamed body, or None"},
    {"_on_interim", T_OBJECT_EX, offsetof(OriginCore, on_interim), 0, "the interim receiver"},
    {"_status", T_OBJECT_EX, offsetof(OriginCore, status), 0, "the final status, 0 between"},
    {"_fed", T_PYSSIZET, offsetof(OriginCore, fed), 0, "bytes received since the request"},
    {"_max_head", T_PYSSIZET, offsetof(OriginCore, max_head), 0, "max_header_bytes"},
    {"_progress", T_BOOL, offsetof(OriginCore, progress), 0, "the parser made progress"},
    {"_eof_delimited", T_BOOL, offsetof(OriginCore, eof_delimited), 0, "the body ends at close"},
    {"_busy", T_BOOL, offsetof(OriginCore, busy), 0, "a response is awaited or arriving"},
    {"_paused", T_BOOL, offsetof(OriginCore, paused), 0, "reading paused"},
    {"_upload_done", T_BOOL, offsetof(OriginCore, upload_done), 0, "the request body is sent"},
    {"_got_bytes", T_BOOL, offsetof(OriginCore, got_bytes), 0, "a response byte arrived"},
    {"_stalled", T_PYSSIZET, offsetof(OriginCore, stalled), 0, "bytes fed without progress"},
    {"loop", T_OBJECT_EX, offsetof(OriginCore, loop), 0, "the pool's event loop"},
    {"transport", T_OBJECT_EX, offsetof(OriginCore, transport), 0, "the transport, or None"},
    {"head_deadline", T_DOUBLE, offsetof(OriginCore, head_deadline), 0, "the head's deadline"},
    {"uses", T_PYSSIZET, offsetof(OriginCore, uses), 0, "requests sent on this connection"},
    {"closed", T_BOOL, offsetof(OriginCore, closed), 0, "aborted or lost"},
    {"idle_since", T_DOUBLE, offsetof(OriginCore, idle_since), 0, "when it went back idle"},
    {NULL, 0, 0, 0, NULL},
};

static int core_traverse(PyObject *op, visitproc visit, void *arg) {
    OriginCore *self = (OriginCore *)op;
    Py_VISIT(self->pool);
    Py_VISIT(self->parser);
    Py_VISIT(self->headers);
    Py_VISIT(self->method);
    Py_VISIT(self->head_waiter);
    Py_VISIT(self->early);
    Py_VISIT(self->parts);
    Py_VISIT(self->body);
    Py_VISIT(self->on_interim);
    Py_VISIT(self->status);
    Py_VISIT(self->loop);
    Py_VISIT(self->transport);
    return 0;
}

static int core_clear(PyObject *op) {
    OriginCore *self = (OriginCore *)op;
    Py_CLEAR(self->pool);
    Py_CLEAR(self->parser);
    Py_CLEAR(self->headers);
    Py_CLEAR(self->method);
    Py_CLEAR(self->head_waiter);
    Py_CLEAR(self->early);
    Py_CLEAR(self->parts);
    Py_CLEAR(self->body);
    Py_CLEAR(self->on_interim);
    Py_CLEAR(self->status);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->transport);
    return 0;
}

static void core_dealloc(PyObject *op) {
    PyObject_GC_UnTrack(op);
    core_clear(op);
    Py_TYPE(op)->tp_free(op);
}

static PyTypeObject OriginCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.http._origin.OriginCore",
    .tp_basicsize = sizeof(OriginCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = PyDoc_STR("An origin connection's parser callbacks and the state they share."),
    .tp_new = PyType_GenericNew,
    .tp_dealloc = core_dealloc,
    .tp_traverse = core_traverse,
    .tp_clear = core_clear,
    .tp_methods = core_methods,
    .tp_members = core_members,
};

static PyMemberDef pool_members[] = {
    {"loop", T_OBJECT_EX, offsetof(PoolCore, loop), 0, "the event loop, None before the first request"},
    {"cfg", T_OBJECT_EX, offsetof(PoolCore, cfg), 0, "the OriginConfig"},
    {"_idle", T_OBJECT_EX, offsetof(PoolCore, idle), 0, "idle connections, most recent last"},
    {"_waiters", T_OBJECT_EX, offsetof(PoolCore, waiters), 0, "requests waiting for a connection"},
    {"_sweeper", T_OBJECT_EX, offsetof(PoolCore, sweeper), 0, "the idle sweep's timer, or None"},
    {"_heads", T_OBJECT_EX, offsetof(PoolCore, heads), 0, "connections awaiting a response head"},
    {"_head_timer", T_OBJECT_EX, offsetof(PoolCore, head_timer), 0, "the first-byte timer, or None"},
    {"keep_hint", T_OBJECT_EX, offsetof(PoolCore, keep_hint), 0, "the origin's last Keep-Alive field"},
    {"keep_for", T_DOUBLE, offsetof(PoolCore, keep_for), 0, "how long a connection may wait idle"},
    {"requests", T_PYSSIZET, offsetof(PoolCore, requests), 0, "requests sent"},
    {"reused", T_PYSSIZET, offsetof(PoolCore, reused), 0, "requests on a kept connection"},
    {"_closed", T_BOOL, offsetof(PoolCore, closed), 0, "closed: no new requests"},
    {NULL, 0, 0, 0, NULL},
};

static int pool_traverse(PyObject *op, visitproc visit, void *arg) {
    PoolCore *self = (PoolCore *)op;
    Py_VISIT(self->loop);
    Py_VISIT(self->cfg);
    Py_VISIT(self->idle);
    Py_VISIT(self->waiters);
    Py_VISIT(self->sweeper);
    Py_VISIT(self->heads);
    Py_VISIT(self->head_timer);
    Py_VISIT(self->keep_hint);
    return 0;
}

static int pool_clear(PyObject *op) {
    PoolCore *self = (PoolCore *)op;
    Py_CLEAR(self->loop);
    Py_CLEAR(self->cfg);
    Py_CLEAR(self->idle);
    Py_CLEAR(self->waiters);
    Py_CLEAR(self->sweeper);
    Py_CLEAR(self->heads);
    Py_CLEAR(self->head_timer);
    Py_CLEAR(self->keep_hint);
    return 0;
}

static void pool_dealloc(PyObject *op) {
    PyObject_GC_UnTrack(op);
    pool_clear(op);
    Py_TYPE(op)->tp_free(op);
}

static PyTypeObject PoolCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.http._origin.PoolCore",
    .tp_basicsize = sizeof(PoolCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = PyDoc_STR("An origin pool's state that the usual exchange reads and writes."),
    .tp_new = PyType_GenericNew,
    .tp_dealloc = pool_dealloc,
    .tp_traverse = pool_traverse,
    .tp_clear = pool_clear,
    .tp_members = pool_members,
};

/* ``_idle_connection``: the most recently used idle connection still open and idle no
 * longer than ``keep_for`` at ``now`` (LIFO; those passed over are dropped, the expired
 * aborted), counted as reused; NULL with no error: none */
static OriginCore *idle_connection(PoolCore *pool, double now) {
    PyObject *idle = pool->idle;
    while (PyList_GET_SIZE(idle)) {
        Py_ssize_t last = PyList_GET_SIZE(idle) - 1;
        PyObject *conn = Py_NewRef(PyList_GET_ITEM(idle, last));
        if (!PyObject_TypeCheck(conn, &OriginCoreType)) {  /* (not ours: the Python path's) */
            Py_DECREF(conn);
            return NULL;
        }
        if (PyList_SetSlice(idle, last, last + 1, NULL) < 0) {
            Py_DECREF(conn);
            return NULL;
        }
        OriginCore *core = (OriginCore *)conn;
        if (core->closed) {
            Py_DECREF(conn);
            continue;
        }
        if (now - core->idle_since > pool->keep_for) {
            PyObject *done = PyObject_CallMethodNoArgs(conn, str_abort);
            Py_DECREF(conn);
            if (done == NULL)
                return NULL;
            Py_DECREF(done);
            continue;
        }
        pool->reused++;
        return core;
    }
    return NULL;
}

/* ``send_idle(pool, req, head, on_interim=None)``: ``OriginPool._send_idle``, the
 * reference: a request without a body, its head encoded, sent on an idle connection:
 * the connection and the future of the response head; None with nothing sent when the
 * pool has no loop yet, is closed or has no idle connection to use (``request`` then
 * takes the request) */
static PyObject *send_idle(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 3 || nargs > 4) {
        PyErr_SetString(PyExc_TypeError, "send_idle(pool, req, head, on_interim=None)");
        return NULL;
    }
    PyObject *req = args[1], *head = args[2];
    PoolCore *pool = pool_core(args[0]);
    if (pool == NULL || pool->loop == Py_None || pool->closed || !PyBytes_CheckExact(head)
            || !PyList_CheckExact(pool->idle) || PyList_GET_SIZE(pool->idle) == 0)
        Py_RETURN_NONE;
    PyObject *body = PyObject_GetAttr(req, str_body_attr);
    if (body == NULL)
        return NULL;
    int empty = PyBytes_CheckExact(body) && PyBytes_GET_SIZE(body) == 0;
    Py_DECREF(body);
    double now = 0.0;
    if (!empty)
        Py_RETURN_NONE;
    OriginCore *conn = loop_time(pool->loop, &now) < 0 ? NULL : idle_connection(pool, now);
    if (conn == NULL)
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    pool->requests++;
    PyObject *waiter = send_request(conn, req, head, long_zero, nargs == 4 ? args[3] : Py_None, &now);
    if (waiter == NULL) {
        Py_DECREF(conn);
        return NULL;
    }
    PyObject *sent = PyTuple_Pack(2, (PyObject *)conn, waiter);
    Py_DECREF(conn);
    Py_DECREF(waiter);
    return sent;
}

/* 1: no field name of ``pairs`` (str pairs) is, in any case, one of ``names`` (lower-case
 * ASCII str); 0: one is, or a pair or name is not the usual kind */
static int names_absent(PyObject *pairs, PyObject *names) {
    uint64_t lengths = 0;  /* bit n: a name of n characters (under 64) is among ``names`` */
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(names); j++) {
        PyObject *low = PyTuple_GET_ITEM(names, j);
        if (!PyUnicode_Check(low) || PyUnicode_GET_LENGTH(low) >= 64)
            return 0;
        lengths |= (uint64_t)1 << PyUnicode_GET_LENGTH(low);
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
        PyObject *pair = PyList_GET_ITEM(pairs, i);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2)
            return 0;
        PyObject *name = PyTuple_GET_ITEM(pair, 0);
        if (!PyUnicode_Check(name) || PyUnicode_KIND(name) != PyUnicode_1BYTE_KIND)
            return 0;
        Py_ssize_t n = PyUnicode_GET_LENGTH(name);
        if (n >= 64 || !(lengths >> n & 1))
            continue;
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(names); j++) {
            PyObject *low = PyTuple_GET_ITEM(names, j);
            if (!PyUnicode_Check(low) || !PyUnicode_IS_ASCII(low))
                return 0;
            if (PyUnicode_GET_LENGTH(low) == n && name_is(name, (const char *)PyUnicode_1BYTE_DATA(low), n))
                return 0;
        }
    }
    return 1;
}

/* 1: ``resp``'s plain fields (its ``fields``: version, pairs) are current (``getversion``
 * of its headers) and hold none of ``names``: ``pair`` added to its headers and appended
 * to its pairs, their version renewed; 0: nothing changed; -1: error */
static int pair_added(PyObject *resp, PyObject *names, PyObject *pair, PyObject *getversion) {
    PyObject *fields = PyObject_GetAttr(resp, str_fields);
    if (fields == NULL)
        return -1;
    if (!PyTuple_CheckExact(fields) || PyTuple_GET_SIZE(fields) != 2
            || !PyList_CheckExact(PyTuple_GET_ITEM(fields, 1))) {
        Py_DECREF(fields);
        return 0;
    }
    PyObject *pairs = PyTuple_GET_ITEM(fields, 1);
    PyObject *headers = PyObject_GetAttr(resp, str_headers_attr);
    PyObject *version = headers == NULL ? NULL : PyObject_CallOneArg(getversion, headers);
    int rc = version == NULL ? -1 : PyObject_RichCompareBool(PyTuple_GET_ITEM(fields, 0), version, Py_EQ);
    Py_XDECREF(version);
    if (rc == 1 && names_absent(pairs, names)) {
        PyObject *added = PyObject_VectorcallMethod(
            str_add, (PyObject *[]){headers, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1)}, 3, NULL);
        Py_XDECREF(added);
        version = added == NULL || PyList_Append(pairs, pair) < 0 ? NULL
            : PyObject_CallOneArg(getversion, headers);
        PyObject *renewed = version == NULL ? NULL : PyTuple_Pack(2, version, pairs);
        Py_XDECREF(version);
        rc = renewed == NULL || PyObject_SetAttr(resp, str_fields, renewed) < 0 ? -1 : 1;
        Py_XDECREF(renewed);
    } else if (rc == 1) {
        rc = 0;
    }
    Py_XDECREF(headers);
    Py_DECREF(fields);
    return rc;
}

/* ``forward_response(resp, via)`` as ``response_forwarder(reference, names, getversion)``
 * makes it: the usual response (``pair_added``: Via the one change) in C, any other
 * through the reference; ``self`` is (reference, names, getversion) */
static PyObject *forwarded(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "forward_response(resp, via: str)");
        return NULL;
    }
    PyObject *pair = PyTuple_Pack(2, str_via, args[1]);
    if (pair == NULL)
        return NULL;
    int rc = pair_added(args[0], PyTuple_GET_ITEM(self, 1), pair, PyTuple_GET_ITEM(self, 2));
    Py_DECREF(pair);
    if (rc < 0)
        return NULL;
    if (rc == 1)
        return Py_NewRef(args[0]);
    return PyObject_Vectorcall(PyTuple_GET_ITEM(self, 0), args, 2, NULL);
}

static PyMethodDef forwarded_def = {
    "forward_response", (PyCFunction)(void (*)(void))forwarded, METH_FASTCALL,
    "forward_response(resp, via): Via added in place; the reference for an unusual response.",
};

/* ``response_forwarder(reference, names, getversion)``: ``forwarded`` bound to them */
static PyObject *response_forwarder(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyCallable_Check(args[0]) || !PyTuple_CheckExact(args[1])
            || !PyCallable_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "response_forwarder(reference, names: tuple, getversion)");
        return NULL;
    }
    PyObject *bound = PyTuple_Pack(3, args[0], args[1], args[2]);
    if (bound == NULL)
        return NULL;
    PyObject *fn = PyCFunction_NewEx(&forwarded_def, bound, NULL);
    Py_DECREF(bound);
    return fn;
}

/* ``bind(CIMultiDict, PrebuiltResponse, FROM_BODY, getversion)``: what the usual response
 * is made of, given by the Python side once */
static PyObject *bind(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyType_Check(args[0]) || !PyType_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "bind(CIMultiDict, PrebuiltResponse, FROM_BODY, getversion)");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)args[1];
    if (type->tp_new != PyBaseObject_Type.tp_new || type->tp_init != PyBaseObject_Type.tp_init
            || type->tp_alloc != PyType_GenericAlloc) {
        PyErr_SetString(PyExc_TypeError, "bind: the response type must be made without __init__");
        return NULL;
    }
    Py_ssize_t found[R_SLOTS];
    for (int i = 0; i < R_SLOTS; i++) {
        PyObject *name = PyUnicode_InternFromString(response_slots[i]);
        if (name == NULL)
            return NULL;
        PyObject *d = _PyType_Lookup(type, name);  /* borrowed */
        Py_DECREF(name);
        PyMemberDef *m = d != NULL && Py_IS_TYPE(d, &PyMemberDescr_Type)
            ? ((PyMemberDescrObject *)d)->d_member : NULL;
        if (m == NULL || m->type != T_OBJECT_EX || (m->flags & READONLY)) {
            PyErr_Format(PyExc_TypeError, "bind: %s is not a plain slot of the response type",
                         response_slots[i]);
            return NULL;
        }
        found[i] = m->offset;
    }
    memcpy(response_at, found, sizeof(found));
    Py_XSETREF(md_class, Py_NewRef(args[0]));
    Py_XSETREF(response_type, (PyTypeObject *)Py_NewRef(args[1]));
    Py_XSETREF(from_body, Py_NewRef(args[2]));
    Py_XSETREF(getversion_fn, Py_NewRef(args[3]));
    Py_RETURN_NONE;
}

/* ``request_head(method, target, block, tail)``: the origin request's head as one bytes
 * object, ``METHOD TARGET HTTP/1.1`` then ``block`` and ``tail`` (``forward_head``'s
 * parts), or None when the target holds CR or LF or a character past Latin-1 (the
 * general path's encoding decides).  proxy/forwarding.py ``_request_head`` is the
 * reference: a format and two encodes, ~4k instructions where this is one copy. */
static PyObject *request_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])
            || !PyBytes_Check(args[2]) || !PyBytes_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "request_head(method: str, target: str, block: bytes, tail: bytes)");
        return NULL;
    }
    PyObject *method = args[0], *target = args[1];
    if (PyUnicode_READY(method) < 0 || PyUnicode_READY(target) < 0)
        return NULL;
    if (PyUnicode_KIND(method) != PyUnicode_1BYTE_KIND || PyUnicode_KIND(target) != PyUnicode_1BYTE_KIND)
        Py_RETURN_NONE;
    Py_ssize_t nm = PyUnicode_GET_LENGTH(method), nt = PyUnicode_GET_LENGTH(target);
    const Py_UCS1 *t = PyUnicode_1BYTE_DATA(target);
    if (memchr(t, '\r', nt) != NULL || memchr(t, '\n', nt) != NULL)
        Py_RETURN_NONE;
    Py_ssize_t nb = PyBytes_GET_SIZE(args[2]), nl = PyBytes_GET_SIZE(args[3]);
    static const char version[] = " HTTP/1.1";
    PyObject *head = PyBytes_FromStringAndSize(NULL, nm + 1 + nt + 9 + nb + nl);
    if (head == NULL)
        return NULL;
    char *at = PyBytes_AS_STRING(head);
    memcpy(at, PyUnicode_1BYTE_DATA(method), nm);
    at += nm;
    *at++ = ' ';
    memcpy(at, t, nt);
    at += nt;
    memcpy(at, version, 9);
    at += 9;
    memcpy(at, PyBytes_AS_STRING(args[2]), nb);
    memcpy(at + nb, PyBytes_AS_STRING(args[3]), nl);
    return head;
}

static PyMethodDef module_methods[] = {
    {"request_head", (PyCFunction)(void (*)(void))request_head, METH_FASTCALL,
     "request_head(method, target, block, tail): the origin request's head, or None."},
    {"send_idle", (PyCFunction)(void (*)(void))send_idle, METH_FASTCALL,
     "send_idle(pool, req, head, on_interim=None): the request sent on an idle connection, or None."},
    {"response_forwarder", (PyCFunction)(void (*)(void))response_forwarder, METH_FASTCALL,
     "response_forwarder(reference, names, getversion): forward_response, its usual case in C."},
    {"bind", (PyCFunction)(void (*)(void))bind, METH_FASTCALL,
     "bind(CIMultiDict, PrebuiltResponse, FROM_BODY, getversion): the usual response's makers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef origin_module = {
    PyModuleDef_HEAD_INIT, "_origin", "The origin connection's usual response in C.", -1,
    module_methods,
};

static int intern_all(void) {
    static struct { PyObject **slot; const char *text; } names[] = {
        {&str_get_status_code, "get_status_code"}, {&str_done, "done"},
        {&str_set_result, "set_result"}, {&str_should_keep_alive, "should_keep_alive"},
        {&str_release, "_release"}, {&str_head, "HEAD"},
        {&str_empty, ""}, {&str_headers_complete, "_headers_complete"},
        {&str_on_body, "_on_body"}, {&str_message_complete, "_message_complete"},
        {&str_body_attr, "body"}, {&str_feed_data, "feed_data"},
        {&str_data_received, "_data_received"}, {&str_parse_failed, "_parse_failed"},
        {&str_send, "_send"}, {&str_method, "method"}, {&str_create_future, "create_future"},
        {&str_write, "write"}, {&str_time, "time"},
        {&str_first_byte_timeout, "first_byte_timeout"}, {&str_awaiting_head, "_awaiting_head"},
        {&str_abort, "abort"},
        {&str_fields, "fields"}, {&str_headers_attr, "headers"}, {&str_add, "add"}, {&str_via, "Via"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if ((*names[i].slot = PyUnicode_InternFromString(names[i].text)) == NULL)
            return -1;
    }
    if ((long_zero = PyLong_FromLong(0)) == NULL)
        return -1;
    return (bytes_empty = PyBytes_FromStringAndSize(NULL, 0)) == NULL ? -1 : 0;
}

PyMODINIT_FUNC PyInit__origin(void) {
    if (intern_all() < 0 || PyType_Ready(&OriginCoreType) < 0 || PyType_Ready(&PoolCoreType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&origin_module);
    if (module == NULL)
        return NULL;
    Py_INCREF(&OriginCoreType);
    if (PyModule_AddObject(module, "OriginCore", (PyObject *)&OriginCoreType) < 0) {
        Py_DECREF(&OriginCoreType);
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&PoolCoreType);
    if (PyModule_AddObject(module, "PoolCore", (PyObject *)&PoolCoreType) < 0) {
        Py_DECREF(&PoolCoreType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
