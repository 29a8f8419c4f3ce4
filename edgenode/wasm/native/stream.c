/* StreamCore: one filter's stream, context and driver state in one object.
 *
 * The usual stream (no hold, no body callback, no local reply, no failure) takes one
 * native call per side: begin() registers the context and runs context create + request
 * headers (hc_open_stream); in_memory() runs response headers + the stream's end over a
 * response whose body is in memory (hc_respond).  enter()/around() are the chain's steps
 * (pipeline/chain.py StreamSteps) around them.  Whatever needs the event loop or the
 * Python objects of a hold, a body, a reply or a failure goes on in the Python methods of
 * the subclass (stream.StreamDriver), each named where it is called below. */
#include "hostcore.h"

#include <structmember.h>

/* set by stream_setup(): Step.NEXT, Step.ASYNC, the Response type, messages.FROM_BODY */
static PyObject *step_next, *step_async, *response_type, *from_body;
static PyObject *n_tick_ms, *n_tick_handle;
static PyObject *n_observer, *n_request_body_hooks, *n_timings, *n_wasm_maps, *n_body, *n_trailers,
    *n_server_timing, *n_backoff, *n_failures, *n_timing_header, *n_one, *m_begin_slow, *m_opened,
    *m_open_raised, *m_after_begin, *m_around, *m_respond_async, *m_in_memory_slow, *m_responded,
    *m_respond_raised, *m_add_timing, *m_succeeded, *m_resume_response;

static int is_none(PyObject *o) { return o == NULL || o == Py_None; }

/* An attribute of a plain Python object (the Vm's Plugin, the Vm's own less used ones): from its
 * instance dict when there (none of theirs is a descriptor), else looked up as usual.
 * A new reference. */
static PyObject *own_attr(PyObject *o, PyObject *name) {
    PyObject **dictptr = _PyObject_GetDictPtr(o);
    if (dictptr != NULL && *dictptr != NULL) {
        PyObject *v = PyDict_GetItemWithError(*dictptr, name);
        if (v != NULL) return Py_NewRef(v);
        if (PyErr_Occurred()) return NULL;
    }
    return PyObject_GetAttr(o, name);
}

/* 1 / 0 for a new reference's truth (released), -1 for NULL or an error */
static int truth(PyObject *v) {
    if (v == NULL) return -1;
    int r = PyObject_IsTrue(v);
    Py_DECREF(v);
    return r;
}

static int attr_true(PyObject *o, PyObject *name) { return truth(own_attr(o, name)); }

/* 1 / 0 for a borrowed flag's truth (NULL: false), -1 with an error */
static int flag(PyObject *v) {
    return v == Py_True ? 1 : v == Py_False || v == NULL ? 0 : PyObject_IsTrue(v);
}

/* vm.active_streams += delta (the new count in *now): 0, or -1 with an error */
static int add_active(VmCore *vm, Py_ssize_t delta, Py_ssize_t *now) {
    Py_ssize_t n = vm->active_streams == NULL ? 0 : PyLong_AsSsize_t(vm->active_streams);
    if (n == -1 && PyErr_Occurred()) return -1;
    PyObject *nv = PyLong_FromSsize_t(n + delta);
    if (nv == NULL) return -1;
    Py_XSETREF(vm->active_streams, nv);
    *now = n + delta;
    return 0;
}

/* The stream's VM as its native state (vmcore.c; borrowed), NULL with TypeError. */
static VmCore *vm_core(PyObject *vm) {
    if (vm != NULL && PyObject_TypeCheck(vm, &VmCoreType)) return (VmCore *)vm;
    PyErr_SetString(PyExc_TypeError, "a stream's vm must be a Vm");
    return NULL;
}

/* Whether the VM takes the one-call path: not failed, not closed, no developer-tools
 * observer (those go through Vm.start_stream / Vm.respond, one callback at a time). */
static int vm_direct(VmCore *vm) {
    if (!is_none(vm->failed)) return 0;
    int closed = flag(vm->closed);
    if (closed != 0) return closed < 0 ? -1 : 0;
    if (vm->plugin == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the VM has no plugin");
        return -1;
    }
    PyObject *observer = HC_SLOT(vm->plugin, n_observer); /* Plugin's slot, set any time */
    if (observer == NULL) return -1;
    int ok = observer == Py_None;
    Py_DECREF(observer);
    return ok;
}

static Instance *vm_instance(VmCore *vm) {
    PyObject *inst = vm->inst;
    if (inst == NULL || !PyObject_TypeCheck(inst, &InstanceType)) {
        PyErr_SetString(PyExc_TypeError, "vm.inst is not an Instance");
        return NULL;
    }
    return (Instance *)Py_NewRef(inst);
}

/* ex.wasm_maps (made on first use): the blocks the filters of one stream share. */
static PyObject *exchange_maps(StreamCore *s) {
    PyObject *maps = HC_SLOT(s->ex, n_wasm_maps);
    if (maps == NULL) return NULL;
    if (maps == Py_None) {
        Py_DECREF(maps);
        maps = PyList_New(2);
        if (maps == NULL) return NULL;
        Py_INCREF(Py_None);
        PyList_SET_ITEM(maps, 0, Py_None);
        Py_INCREF(Py_None);
        PyList_SET_ITEM(maps, 1, Py_None);
        if (HC_SLOT_SET(s->ex, n_wasm_maps, maps) < 0) {
            Py_DECREF(maps);
            return NULL;
        }
    } else if (!PyList_Check(maps) || PyList_GET_SIZE(maps) != 2) {
        Py_DECREF(maps);
        PyErr_SetString(PyExc_TypeError, "Exchange.wasm_maps must be a list of two");
        return NULL;
    }
    return maps;
}

/* maps[i]'s block if it serialises ``message``, else a new one put there (a new reference). */
static PyObject *block_for(PyObject *maps, int i, PyObject *message) {
    PyObject *block = PyList_GET_ITEM(maps, i);
    if (Py_IS_TYPE(block, &HeaderBlockType) && ((HeaderBlock *)block)->message == message) {
        Py_INCREF(block);
        return block;
    }
    block = hc_block_new(message, i == 0);
    if (block == NULL) return NULL;
    Py_INCREF(block);
    PyList_SetItem(maps, i, block);
    return block;
}

/* Map 0's or 2's block (``response`` 0 / 1), made on first use: most filters read a few
 * request fields (answered from the message) and add a response field (written to it), so
 * most streams need neither block, nor the exchange's list that shares them between its
 * filters.  The exchange's block of the same message when another filter made one, else a
 * new one there.  Borrowed; NULL without an error when there is no such message yet. */
HeaderBlock *hc_stream_block(StreamCore *s, int response) {
    PyObject **field = response ? &s->response_block : &s->request_block;
    if (*field != NULL) return (HeaderBlock *)*field;
    PyObject *message = response ? s->response : s->request;
    if (is_none(message) || is_none(s->ex)) return NULL;
    PyObject *maps = exchange_maps(s);
    if (maps == NULL) return NULL;
    *field = block_for(maps, response, message);
    Py_DECREF(maps);
    return (HeaderBlock *)*field;
}

static PyObject *Stream_get_block(StreamCore *s, void *response) {
    HeaderBlock *b = hc_stream_block(s, response != NULL);
    if (b == NULL) return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    return Py_NewRef((PyObject *)b);
}

/* --- the context ------------------------------------------------------------------- */

/* register(): a context id from the VM, the root, and the VM's count of open streams (what
 * the guest hears of in begin(), or in a test's own calls).  Map 0's block is made when a
 * call needs it (hc_stream_block). */
static int stream_register(StreamCore *s) {
    if (is_none(s->vm) || is_none(s->ex) || is_none(s->request)) {
        PyErr_SetString(PyExc_RuntimeError, "a stream needs a VM and an exchange");
        return -1;
    }
    VmCore *vm = vm_core(s->vm);
    if (vm == NULL) return -1;
    Py_XSETREF(s->root, Py_XNewRef(vm->root));
    if (vm->ids == NULL || vm->contexts == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the VM has no context ids");
        return -1;
    }
    PyObject *ids = Py_NewRef(vm->ids);
    PyObject *id = PyIter_Next(ids);
    Py_DECREF(ids);
    if (id == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "context ids exhausted");
        return -1;
    }
    s->id = PyLong_AsLongLong(id);
    int rc = -1;
    if (s->id == -1 && PyErr_Occurred()) goto done;
    Py_XSETREF(s->key, Py_NewRef(id));
    s->request_headers_open = 1;
    PyObject *contexts = Py_NewRef(vm->contexts);
    rc = PyObject_SetItem(contexts, id, (PyObject *)s);
    Py_DECREF(contexts);
    Py_ssize_t now;
    if (rc == 0) rc = add_active(vm, 1, &now);
done:
    Py_DECREF(id);
    return rc;
}

static PyObject *Stream_register(StreamCore *s, PyObject *unused) {
    if (stream_register(s) < 0) return NULL;
    Py_RETURN_NONE;
}

/* forget(): the stream is over for the VM (its context forgotten, on_idle at the last). */
static int stream_forget(StreamCore *s) {
    VmCore *vm = vm_core(s->vm);
    if (vm == NULL) return -1;
    s->finished = 1;
    if (vm->contexts == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the VM has no contexts");
        return -1;
    }
    PyObject *contexts = Py_NewRef(vm->contexts);
    PyObject *id = s->key != NULL ? Py_NewRef(s->key) : PyLong_FromLongLong(s->id);
    PyObject *gone = id == NULL                   ? NULL
                     : PyDict_CheckExact(contexts) ? _PyDict_Pop(contexts, id, Py_None)
                                                   : PyObject_CallMethod(contexts, "pop", "OO", id, Py_None);
    Py_XDECREF(id);
    Py_DECREF(contexts);
    if (gone == NULL) return -1;
    Py_DECREF(gone);
    Py_ssize_t now;
    if (add_active(vm, -1, &now) < 0) return -1;
    if (now != 0 || is_none(vm->on_idle)) return 0;
    PyObject *on_idle = Py_NewRef(vm->on_idle);
    PyObject *r = PyObject_CallOneArg(on_idle, (PyObject *)vm);
    Py_DECREF(on_idle);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

static PyObject *Stream_forget(StreamCore *s, PyObject *unused) {
    if (stream_forget(s) < 0) return NULL;
    Py_RETURN_NONE;
}

/* set_response(response): map 2 is ``response``'s (its block made when a call needs it). */
static int set_response(StreamCore *s, PyObject *response) {
    Py_INCREF(response);
    Py_XSETREF(s->response, response);
    Py_CLEAR(s->response_block);
    return 0;
}

static PyObject *Stream_set_response(StreamCore *s, PyObject *response) {
    if (set_response(s, response) < 0) return NULL;
    Py_RETURN_NONE;
}

/* --- the driver's usual case ------------------------------------------------------------- */

/* The pending exception as an object (for the Python method that handles it). */
static PyObject *fetch_exception(void) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL && tb != NULL) PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
}

/* begin() -> Step | Response: the request side (StreamDriver's doc). */
static PyObject *Stream_begin(StreamCore *s, PyObject *unused) {
    if (stream_register(s) < 0) return NULL;
    PyObject *body = HC_SLOT(s->request, n_body);
    if (body == NULL) return NULL;
    int has_body = PyBytes_Check(body)       ? PyBytes_GET_SIZE(body) > 0
                   : PyByteArray_Check(body) ? PyByteArray_GET_SIZE(body) > 0
                                             : 1;
    Py_DECREF(body);
    Py_ssize_t n;
    int host;
    PyObject *pairs = hc_raw_pairs(s->request); /* a RawRequest: its fields are not made for this */
    if (pairs != NULL) {
        PyObject *owner;
        const char *v;
        size_t vl;
        n = PyList_GET_SIZE(pairs);
        host = hc_pairs_get(pairs, "host", 4, &owner, &v, &vl);
        Py_DECREF(pairs);
        Py_XDECREF(owner);
    } else {
        PyObject *headers = PyErr_Occurred() ? NULL : PyObject_GetAttr(s->request, s_headers);
        if (headers == NULL) return NULL;
        n = PyObject_Length(headers);
        host = n < 0 ? -1 : PySequence_Contains(headers, s_host);
        Py_DECREF(headers);
    }
    if (host < 0) return NULL;
    n += 4 - host;
    VmCore *vm = vm_core(s->vm);
    if (vm == NULL) return NULL;
    int direct = vm_direct(vm);
    if (direct < 0) return NULL;
    if (!direct) /* failed, closed or observed: Vm.start_stream, one callback at a time */
    {
        PyObject *count = PyLong_FromSsize_t(n);
        if (count == NULL) return NULL;
        PyObject *out = PyObject_CallMethodObjArgs((PyObject *)s, m_begin_slow, count,
                                                   has_body ? Py_True : Py_False, NULL);
        Py_DECREF(count);
        return out;
    }
    long action = 0;
    int opens = flag(vm->opens);
    if (opens < 0) return NULL;
    if (opens) {
        Instance *inst = vm_instance(vm);
        if (inst == NULL) return NULL;
        PyObject *timings = HC_SLOT(s->ex, n_timings);
        PyObject *root_id = timings ? HC_SLOT(s->root, s_id) : NULL;
        PyObject *r = NULL;
        if (root_id != NULL) {
            int64_t v[4] = {s->id, PyLong_AsLongLong(root_id), n, inst->v010 ? -1 : !has_body};
            if (!PyErr_Occurred()) r = hc_open_stream(inst, (PyObject *)s, timings, v);
        }
        Py_DECREF(inst);
        Py_XDECREF(timings);
        Py_XDECREF(root_id);
        if (r == NULL) { /* a trap, or the callbacks' host calls raised */
            PyObject *exc = fetch_exception();
            if (exc == NULL) return NULL;
            PyObject *out = PyObject_CallMethodOneArg((PyObject *)s, m_open_raised, exc);
            Py_DECREF(exc);
            return out;
        }
        action = PyLong_AsLong(r);
        Py_DECREF(r);
        if (action == -1 && PyErr_Occurred()) return NULL;
    }
    if (action != 0 || !is_none(s->local_response) || s->closed) { /* a hold, a reply, a close */
        PyObject *a = PyLong_FromLong(action);
        if (a == NULL) return NULL;
        PyObject *out = PyObject_CallMethodObjArgs((PyObject *)s, m_opened, a, has_body ? Py_True : Py_False, NULL);
        Py_DECREF(a);
        return out;
    }
    s->request_headers_open = 0;
    if (has_body) {
        int hooks = attr_true(s->vm, n_request_body_hooks);
        if (hooks < 0) return NULL;
        if (hooks) return Py_NewRef(step_async);
    }
    return Py_NewRef(step_next);
}

/* enter(rest) -> None | Outcome: begin(), then (unless it continued) _after_begin. */
static PyObject *Stream_enter(StreamCore *s, PyObject *rest) {
    PyObject *step = Stream_begin(s, NULL);
    if (step == NULL || step == step_next) {
        Py_XDECREF(step);
        return step == NULL ? NULL : Py_NewRef(Py_None);
    }
    PyObject *out = PyObject_CallMethodObjArgs((PyObject *)s, m_after_begin, step, rest, NULL);
    Py_DECREF(step);
    return out;
}

/* add_timing(response) unless the stage has timings off or the client did not ask for them
 * (StreamDriver.timed's test). */
static PyObject *maybe_timed(StreamCore *s, PyObject *response) {
    int on = truth(HC_SLOT(s->cfg, n_server_timing));
    if (on <= 0) return on < 0 ? NULL : Py_NewRef(response);
    int asked = truth(HC_SLOT(s->ex, n_server_timing));
    if (asked < 0) return NULL;
    PyObject *pairs = asked ? NULL : hc_raw_pairs(s->request);
    if (pairs != NULL) { /* a RawRequest: from its parsed bytes */
        PyObject *owner;
        const char *v;
        size_t vl;
        asked = hc_pairs_get(pairs, "x-edgenode-timing", 17, &owner, &v, &vl);
        asked = asked > 0 ? vl == 1 && v[0] == '1' : asked; /* read while owner holds it */
        Py_XDECREF(owner);
        Py_DECREF(pairs);
        if (asked < 0) return NULL;
    } else if (PyErr_Occurred()) {
        return NULL;
    } else if (!asked) {
        PyObject *headers = PyObject_GetAttr(s->request, s_headers);
        if (headers == NULL) return NULL;
        PyObject *v = PyObject_CallMethodOneArg(headers, s_get, n_timing_header);
        Py_DECREF(headers);
        if (v == NULL) return NULL;
        asked = PyUnicode_Check(v) && PyUnicode_Compare(v, n_one) == 0;
        Py_DECREF(v);
    }
    if (!asked) return Py_NewRef(response);
    return PyObject_CallMethodOneArg((PyObject *)s, m_add_timing, response);
}

/* in_memory(response, body) -> Response | None: the response side over a body in memory
 * (response_phase.py); None: the stream goes on in response_phase (a hold). */
static PyObject *Stream_in_memory(StreamCore *s, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "in_memory(response, body: bytes)");
        return NULL;
    }
    PyObject *response = args[0], *body = args[1];
    Py_ssize_t size = PyBytes_GET_SIZE(body);
    VmCore *vm = vm_core(s->vm);
    if (vm == NULL) return NULL;
    int direct = vm_direct(vm);
    if (direct < 0) return NULL;
    Instance *inst = NULL;
    if (direct) {
        inst = vm_instance(vm);
        if (inst == NULL) return NULL;
        direct = size == 0 || inst->stream_ids[6] < 0;
    }
    if (!direct) { /* a body callback, or a VM off the one-call path */
        Py_XDECREF(inst);
        return PyObject_CallMethodObjArgs((PyObject *)s, m_in_memory_slow, response, body, NULL);
    }
    PyObject *headers = HC_SLOT(response, s_headers);
    Py_ssize_t n = headers ? PyObject_Length(headers) : -1;
    Py_XDECREF(headers);
    PyObject *timings = n < 0 ? NULL : HC_SLOT(s->ex, n_timings);
    if (timings == NULL || set_response(s, response) < 0) {
        Py_DECREF(inst);
        Py_XDECREF(timings);
        return NULL;
    }
    s->continued = 0;
    s->response_headers_open = 1;
    s->response_started = 1;
    int64_t v[4] = {s->id, n + 1, inst->v010 ? -1 : size == 0, 0};
    HcResponded r;
    int rc = hc_respond(inst, s, timings, v, &r);
    Py_DECREF(inst);
    Py_DECREF(timings);
    if (rc < 0) {
        PyObject *exc = fetch_exception();
        if (exc == NULL) return NULL;
        PyObject *out = PyObject_CallMethodObjArgs((PyObject *)s, m_respond_raised, response, body, exc, NULL);
        Py_DECREF(exc);
        return out;
    }
    Py_XDECREF(r.buffer); /* no body callback: nothing to hand on */
    if (r.stage == 2) {
        if (r.ended > 0) {
            if (stream_forget(s) < 0) return NULL;
        } else if (r.ended == 0) {
            s->done_pending = 1;
        }
        if (is_none(s->local_response) && !s->closed) return maybe_timed(s, response);
    }
    PyObject *a = PyLong_FromLong(r.action), *st = PyLong_FromLong(r.stage);
    PyObject *out = NULL;
    if (a != NULL && st != NULL)
        out = PyObject_CallMethodObjArgs((PyObject *)s, m_responded, response, body, a, st, Py_None, NULL);
    Py_XDECREF(a);
    Py_XDECREF(st);
    return out;
}

/* around(outcome) -> Outcome: the response side over what the rest of the chain answered;
 * the usual hit (a Response, bytes body, no trailers) straight to in_memory, the rest in
 * StreamDriver._around. */
static PyObject *Stream_around(StreamCore *s, PyObject *outcome) {
    if (!PyObject_TypeCheck(outcome, (PyTypeObject *)response_type))
        return PyObject_CallMethodOneArg((PyObject *)s, m_resume_response, outcome);
    PyObject *body = HC_SLOT(outcome, n_body);
    if (body == NULL) return NULL;
    PyObject *trailers = PyBytes_CheckExact(body) ? HC_SLOT(outcome, n_trailers) : NULL;
    if (trailers != from_body) {
        Py_DECREF(body);
        if (trailers == NULL && PyErr_Occurred()) return NULL;
        Py_XDECREF(trailers);
        return PyObject_CallMethodOneArg((PyObject *)s, m_around, outcome);
    }
    Py_DECREF(trailers);
    PyObject *args[2] = {outcome, body};
    PyObject *out = Stream_in_memory(s, args, 2);
    Py_DECREF(body);
    if (out == Py_None) {
        Py_DECREF(out);
        return PyObject_CallMethodOneArg((PyObject *)s, m_respond_async, outcome);
    }
    if (out == NULL) return NULL;
    PyObject *backoff = HC_SLOT(s->cfg, n_backoff);
    int failures = backoff == NULL ? -1 : backoff == Py_None ? 0 : truth(HC_SLOT(backoff, n_failures));
    Py_XDECREF(backoff);
    if (failures != 0) {
        PyObject *r = failures < 0 ? NULL : PyObject_CallMethodNoArgs((PyObject *)s, m_succeeded);
        if (r == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(r);
    }
    return out;
}

/* --- the type ---------------------------------------------------------------------- */

/* A stream's objects: its VM, exchange, settings and the exchange's request (0, or -1). */
static int stream_bind(StreamCore *s, PyObject *vm, PyObject *ex, PyObject *cfg) {
    PyObject *request = HC_SLOT(ex, s_request);
    if (request == NULL) return -1;
    Py_XSETREF(s->request, request);
    Py_XSETREF(s->vm, Py_NewRef(vm));
    Py_XSETREF(s->ex, Py_NewRef(ex));
    Py_XSETREF(s->cfg, Py_NewRef(cfg));
    return 0;
}

/* StreamCore(vm, exchange, cfg=None) */
static int Stream_init(StreamCore *s, PyObject *args, PyObject *kwds) {
    PyObject *vm, *ex, *cfg = Py_None;
    if (!_PyArg_NoKeywords("StreamCore", kwds) || !PyArg_UnpackTuple(args, "StreamCore", 2, 3, &vm, &ex, &cfg))
        return -1;
    return stream_bind(s, vm, ex, cfg);
}

static PyObject *Stream_get_ctx(StreamCore *s, void *closure) { return Py_NewRef((PyObject *)s); }

#define FIELDS(X)                                                                                  \
    X(dict) X(vm) X(ex) X(cfg) X(request) X(root) X(key) X(request_block) X(response) X(response_block) \
        X(local_response) X(paused) X(request_body) X(response_body)

static int Stream_traverse(StreamCore *s, visitproc visit, void *arg) {
#define VISIT(f) Py_VISIT(s->f);
    FIELDS(VISIT)
    return 0;
}

static int Stream_clear(StreamCore *s) {
#define CLEAR(f) Py_CLEAR(s->f);
    FIELDS(CLEAR)
    return 0;
}

static void Stream_dealloc(StreamCore *s) {
    PyObject_GC_UnTrack(s);
    Stream_clear(s);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyMethodDef Stream_methods[] = {
    {"register", (PyCFunction)Stream_register, METH_NOARGS, "an id and the root; the VM counts the stream"},
    {"forget", (PyCFunction)Stream_forget, METH_NOARGS, "the VM forgets the stream (on_idle after its last)"},
    {"set_response", (PyCFunction)Stream_set_response, METH_O, "map 2 is this response's"},
    {"begin", (PyCFunction)Stream_begin, METH_NOARGS, "the request side -> Step | Response"},
    {"enter", (PyCFunction)Stream_enter, METH_O, "the chain's request side: None when it continues"},
    {"in_memory", (PyCFunction)(void (*)(void))Stream_in_memory, METH_FASTCALL,
     "the response side over a body in memory -> Response | None"},
    {"around", (PyCFunction)Stream_around, METH_O, "the chain's response side"},
    {NULL},
};

#define OBJ(name, field, doc) {name, T_OBJECT, offsetof(StreamCore, field), 0, doc}
#define FLAG(name, doc) {#name, T_BOOL, offsetof(StreamCore, name), 0, doc}
static PyMemberDef Stream_members[] = {
    OBJ("vm", vm, "the filter's Vm"),
    OBJ("ex", ex, "the Exchange"),
    OBJ("exchange", ex, "the Exchange"),
    OBJ("cfg", cfg, "the stage's StreamSettings"),
    OBJ("request", request, "the exchange's Request"),
    OBJ("root", root, "the root context"),
    OBJ("response", response, "the response the response hooks see"),
    OBJ("local_response", local_response, "the filter's local reply"),
    OBJ("paused", paused, "the phase held by a Stop* result (\"request\"/\"response\")"),
    OBJ("request_body", request_body, "buffer 0 during the request body callbacks"),
    OBJ("response_body", response_body, "buffer 1 during the response body callbacks"),
    {"id", T_LONGLONG, offsetof(StreamCore, id), 0, "the context id"},
    FLAG(request_headers_open, "request headers readable/writable"),
    FLAG(response_headers_open, "response headers readable/writable"),
    FLAG(response_started, "the response headers callback ran"),
    FLAG(in_log, "final phase: every map readable, nothing writable"),
    FLAG(closed, "proxy_close_stream"),
    FLAG(continued, "continue_stream() arrived during the callback that paused"),
    FLAG(done_pending, "on_done returned false: log/delete wait for proxy_done"),
    FLAG(finished, "the VM forgot the stream"),
    {NULL},
};

static PyGetSetDef Stream_getset[] = {
    {"ctx", (getter)Stream_get_ctx, NULL, "the stream's context: the stream itself", NULL},
    {"request_block", (getter)Stream_get_block, NULL, "map 0 serialised (made on first read); writes go through its view", NULL},
    {"response_block", (getter)Stream_get_block, NULL, "map 2 serialised (made on first read), None before a response",
     (void *)1},
    {NULL},
};

PyTypeObject StreamCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgenode.wasm._hostcore.StreamCore",
    .tp_basicsize = sizeof(StreamCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One filter's stream: context and driver state, the usual case of each side in one call",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Stream_init,
    .tp_dealloc = (destructor)Stream_dealloc,
    .tp_traverse = (traverseproc)Stream_traverse,
    .tp_clear = (inquiry)Stream_clear,
    .tp_methods = Stream_methods,
    .tp_members = Stream_members,
    .tp_getset = Stream_getset,
    .tp_dictoffset = offsetof(StreamCore, dict),
};

/* --- the stage's opener ------------------------------------------------------------------ */

/* StreamOpener(driver, general): a filter stage's open_stream.  The usual stream (the shared
 * VM set here, not failed, its tick timer armed if it ticks) is a new ``driver`` made here,
 * as ``driver(vm, exchange, settings)`` would make it; anything else (a failed VM, a tick
 * not armed yet, no VM set) is ``general(exchange)``.  The stage uses it only while its
 * shared VM has stream hooks (stage.py ``_arm_opener``). */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *vm, *settings, *driver, *general;
} StreamOpener;

/* 1: the usual stream opens on o->vm; 0: the general opener decides; -1 with an error. */
static int opener_usual(StreamOpener *o) {
    if (is_none(o->vm) || !PyObject_TypeCheck(o->vm, &VmCoreType)) return 0;
    VmCore *vm = (VmCore *)o->vm;
    if (!is_none(vm->failed) || is_none(vm->root)) return 0;
    int ticks = truth(HC_SLOT(vm->root, n_tick_ms));
    if (ticks <= 0) return ticks < 0 ? -1 : 1;
    PyObject *handle = HC_SLOT(vm->root, n_tick_handle); /* armed: the loop runs its ticks */
    if (handle == NULL) return -1;
    int armed = handle != Py_None;
    Py_DECREF(handle);
    return armed;
}

static PyObject *Opener_vectorcall(StreamOpener *o, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL || o->general == NULL) {
        PyErr_SetString(PyExc_TypeError, o->general == NULL ? "StreamOpener not initialised" : "open_stream(exchange)");
        return NULL;
    }
    int usual = opener_usual(o);
    if (usual <= 0) return usual < 0 ? NULL : PyObject_CallOneArg(o->general, args[0]);
    PyTypeObject *type = (PyTypeObject *)o->driver;
    StreamCore *s = (StreamCore *)type->tp_alloc(type, 0);
    if (s == NULL) return NULL;
    if (stream_bind(s, o->vm, args[0], o->settings == NULL ? Py_None : o->settings) < 0) {
        Py_DECREF(s);
        return NULL;
    }
    return (PyObject *)s;
}

static int Opener_init(StreamOpener *o, PyObject *args, PyObject *kwds) {
    PyObject *driver, *general;
    if (!_PyArg_NoKeywords("StreamOpener", kwds) ||
        !PyArg_ParseTuple(args, "O!O:StreamOpener", &PyType_Type, &driver, &general))
        return -1;
    if (n_tick_ms == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "StreamOpener: stream_setup() first");
        return -1;
    }
    if (!PyType_IsSubtype((PyTypeObject *)driver, &StreamCoreType)) {
        PyErr_SetString(PyExc_TypeError, "StreamOpener: the driver must be a StreamCore type");
        return -1;
    }
    Py_XSETREF(o->driver, Py_NewRef(driver));
    Py_XSETREF(o->general, Py_NewRef(general));
    o->vectorcall = (vectorcallfunc)Opener_vectorcall;
    return 0;
}

static int Opener_traverse(StreamOpener *o, visitproc visit, void *arg) {
    Py_VISIT(o->vm);
    Py_VISIT(o->settings);
    Py_VISIT(o->driver);
    Py_VISIT(o->general);
    return 0;
}

static int Opener_clear(StreamOpener *o) {
    Py_CLEAR(o->vm);
    Py_CLEAR(o->settings);
    Py_CLEAR(o->driver);
    Py_CLEAR(o->general);
    return 0;
}

static void Opener_dealloc(StreamOpener *o) {
    PyObject_GC_UnTrack(o);
    Opener_clear(o);
    Py_TYPE(o)->tp_free((PyObject *)o);
}

/* not initialised: a call is a TypeError */
static PyObject *Opener_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    StreamOpener *o = (StreamOpener *)type->tp_alloc(type, 0);
    if (o != NULL) o->vectorcall = (vectorcallfunc)Opener_vectorcall;
    return (PyObject *)o;
}

static PyMemberDef Opener_members[] = {
    {"vm", T_OBJECT, offsetof(StreamOpener, vm), 0, "the shared VM the usual stream opens on (None: none)"},
    {"settings", T_OBJECT, offsetof(StreamOpener, settings), 0, "the usual stream's StreamSettings"},
    {NULL},
};

PyTypeObject StreamOpenerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgenode.wasm._hostcore.StreamOpener",
    .tp_basicsize = sizeof(StreamOpener),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "A filter stage's open_stream: the usual stream made in C, anything else by the stage",
    .tp_new = Opener_new,
    .tp_init = (initproc)Opener_init,
    .tp_dealloc = (destructor)Opener_dealloc,
    .tp_traverse = (traverseproc)Opener_traverse,
    .tp_clear = (inquiry)Opener_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(StreamOpener, vectorcall),
    .tp_members = Opener_members,
};

#define NAME(var, text)                                        \
    do {                                                       \
        if ((var = PyUnicode_InternFromString(text)) == NULL) \
            return NULL;                                       \
    } while (0)

/* stream_setup(NEXT, ASYNC, Response, FROM_BODY): what stream.py defines */
PyObject *hc_stream_setup(PyObject *self, PyObject *args) {
    PyObject *next, *async_, *rtype, *fb;
    if (!PyArg_ParseTuple(args, "OOO!O", &next, &async_, &PyType_Type, &rtype, &fb)) return NULL;
    Py_XSETREF(step_next, Py_NewRef(next));
    Py_XSETREF(step_async, Py_NewRef(async_));
    Py_XSETREF(response_type, Py_NewRef(rtype));
    Py_XSETREF(from_body, Py_NewRef(fb));
    NAME(n_tick_ms, "tick_ms");
    NAME(n_tick_handle, "tick_handle");
    NAME(n_observer, "observer");
    NAME(n_request_body_hooks, "request_body_hooks");
    NAME(n_timings, "timings");
    NAME(n_wasm_maps, "wasm_maps");
    NAME(n_body, "body");
    NAME(n_trailers, "_trailers");
    NAME(n_server_timing, "server_timing");
    NAME(n_backoff, "backoff");
    NAME(n_failures, "failures");
    NAME(n_timing_header, "x-edgenode-timing");
    NAME(n_one, "1");
    NAME(m_begin_slow, "_begin_slow");
    NAME(m_opened, "_opened");
    NAME(m_open_raised, "_open_raised");
    NAME(m_after_begin, "_after_begin");
    NAME(m_around, "_around");
    NAME(m_respond_async, "respond_async");
    NAME(m_in_memory_slow, "_in_memory_slow");
    NAME(m_responded, "_responded");
    NAME(m_respond_raised, "_respond_raised");
    NAME(m_add_timing, "add_timing");
    NAME(m_succeeded, "_succeeded");
    NAME(m_resume_response, "_resume_response");
    Py_RETURN_NONE;
}

/* Instance.respond(ctx, timings, *4 ints): hc_respond for a stream context the Python driver
 * steps itself (a VM under observation, or after a pause). */
static PyObject *Instance_respond(Instance *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "respond takes 6 arguments");
        return NULL;
    }
    int64_t v[4];
    if (hc_int_args(args + 2, 4, v) < 0) return NULL;
    if (!PyObject_TypeCheck(args[0], &StreamCoreType)) {
        PyErr_SetString(PyExc_TypeError, "respond: ctx must be a stream context");
        return NULL;
    }
    HcResponded r;
    if (hc_respond(self, (StreamCore *)args[0], args[1], v, &r) < 0) return NULL;
    PyObject *out = Py_BuildValue("(liiO)", r.action, r.stage, r.ended, r.buffer ? r.buffer : Py_None);
    Py_XDECREF(r.buffer);
    return out;
}

PyMethodDef hc_stream_instance_methods[] = {
    {"respond", (PyCFunction)(void (*)(void))Instance_respond, METH_FASTCALL,
     "response headers, the body callback of a bytes body, and the stream's end in one call"},
    {NULL},
};
