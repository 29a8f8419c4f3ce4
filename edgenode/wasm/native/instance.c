/* Instance: one wasmtime Store holding one filter instance, and its guest calls.
 *
 * Every call into the guest goes through call()/open_stream()/respond()/end_stream(): the epoch
 * deadline is set, the instance becomes hc_current (the target of host functions) and
 * ``effective`` the context they act on; the callback's time goes into the phase's
 * Histogram and the stream's Exchange.timings.  A trap raises GuestTrap(message, hook).
 * The GIL stays held: the epoch ticker is a native thread (ticker.c), so a runaway guest
 * is still cut off. */
#include <sys/mman.h>
#include <time.h>

#include "hostcore.h"

#include <structmember.h>


#define MAX_SLOTS 16

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* --- traps and errors ---------------------------------------------------------------- */

static PyObject *message_of(wasm_trap_t *trap, wasmtime_error_t *err) {
    wt_byte_vec vec = {0, NULL};
    PyObject *text;
    if (trap != NULL) {
        WT.trap_message(trap, &vec);
        size_t n = vec.size;
        if (n > 0 && vec.data[n - 1] == '\0') n--;
        text = PyUnicode_DecodeUTF8(vec.data, (Py_ssize_t)n, "replace");
        WT.byte_vec_delete(&vec);
        WT.trap_delete(trap);
    } else {
        WT.error_message(err, &vec);
        text = PyUnicode_DecodeUTF8(vec.data, (Py_ssize_t)vec.size, "replace");
        WT.byte_vec_delete(&vec);
        WT.error_delete(err);
    }
    return text;
}

/* InstantiateError set with ``err``'s message (``err`` deleted). */
void hc_instantiate_failed(wasmtime_error_t *err) {
    PyObject *msg = message_of(NULL, err);
    PyErr_SetObject(hc_instantiate_error, msg);
    Py_XDECREF(msg);
}

wasm_trap_t *hc_trap_from_text(const char *text) { return WT.trap_new(text, strlen(text)); }

/* A trap carrying the pending Python exception's text (cleared). */
wasm_trap_t *hc_trap_from_pyerr(PyObject *fn_name) {
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    PyObject *text = NULL;
    if (exc != NULL && PyErr_GivenExceptionMatches(exc, hc_HostTrap)) {
        text = PyObject_Str(exc);
    } else if (exc != NULL) {
        PyObject *r = PyObject_CallFunctionObjArgs(hc_report, fn_name, exc, NULL);
        Py_XDECREF(r);
        PyErr_Clear();
        text = PyUnicode_FromFormat("host function %S failed: %R", fn_name, exc);
    }
    Py_XDECREF(exc);
    wasm_trap_t *trap;
    Py_ssize_t n = 0;
    const char *data = text ? PyUnicode_AsUTF8AndSize(text, &n) : NULL;
    if (data == NULL) {
        PyErr_Clear();
        trap = hc_trap_from_text("host function failed");
    } else {
        trap = WT.trap_new(data, (size_t)n);
    }
    Py_XDECREF(text);
    return trap;
}

/* --- memory ---------------------------------------------------------------------------- */

/* Guest memory at [ptr, ptr+len), or NULL when it lies outside linear memory.  The size
 * is asked of wasmtime again only for an access beyond the one last seen (the guest may
 * have grown its memory since). */
uint8_t *hc_mem(Instance *inst, uint64_t ptr, uint64_t len) {
    uint64_t end = ptr + len;
    if (end < ptr) return NULL;
    if (end > inst->mem_size) {
        inst->mem_size = WT.memory_data_size(inst->ctx, &inst->memory);
        if (end > inst->mem_size) return NULL;
    }
    return inst->mem_base + ptr;
}

/* Drop the snapshot globals' handles the instance keeps (reset.c finds them). */
void hc_forget_globals(Instance *self) {
    Py_CLEAR(self->global_names);
    PyMem_Free(self->globals);
    self->globals = NULL;
    self->nglobals = 0;
}

static void drop_store(Instance *self) {
    if (self->store != NULL) {
        WT.store_delete(self->store);
        self->store = NULL;
        self->ctx = NULL;
        self->mem_base = NULL;
        self->mem_size = 0;
    }
    self->delete_pending = 0;
}

/* --- guest calls --------------------------------------------------------------------- */

/* Call hook ``id`` with ``args``; 0 and *result, or -1 with GuestTrap(message, id) set. */
static int guest_call(Instance *self, int id, const int64_t *args, int nargs, int32_t *result) {
    Hook *h = &self->hooks[id];
    wt_val_raw raw[MAX_SLOTS];
    for (int i = 0; i < nargs; i++) raw[i].i64 = 0, raw[i].i32 = (int32_t)args[i];
    size_t n = (size_t)(h->nparams > h->nresults ? h->nparams : h->nresults);
    if (n == 0) n = 1;
    Instance *prev = hc_current;
    hc_current = self;
    if (self->depth++ == 0) {
        WT.context_set_epoch_deadline(self->ctx, self->deadline);
        hc_serial++;
    }
    wasm_trap_t *trap = NULL;
    wasmtime_error_t *err = WT.func_call_unchecked(self->ctx, &h->func, raw, n, &trap);
    hc_current = prev;
    if (--self->depth == 0 && self->delete_pending) drop_store(self);
    if (err != NULL || trap != NULL) {
        PyObject *msg = message_of(trap, err);
        if (msg != NULL) {
            PyObject *full = PyUnicode_FromFormat("%U: %U", h->name, msg);
            Py_DECREF(msg);
            if (full != NULL) {
                PyObject *exc_args = Py_BuildValue("(Ni)", full, id);
                if (exc_args != NULL) {
                    PyErr_SetObject(hc_GuestTrap, exc_args);
                    Py_DECREF(exc_args);
                }
            }
        }
        return -1;
    }
    *result = h->nresults ? raw[0].i32 : 0;
    return 0;
}

/* The guest allocator, from a host function (keeps the outer call's deadline). */
int64_t hc_guest_alloc(Instance *inst, uint32_t size, wasm_trap_t **trap) {
    if (inst->alloc_hook < 0) {
        *trap = hc_trap_from_text("filter exports no allocator");
        return -1;
    }
    Hook *h = &inst->hooks[inst->alloc_hook];
    wt_val_raw raw[2];
    raw[0].i64 = 0;
    raw[0].i32 = (int32_t)size;
    wasmtime_error_t *err = WT.func_call_unchecked(inst->ctx, &h->func, raw, 1, trap);
    if (err != NULL) {
        PyObject *msg = message_of(NULL, err);
        const char *text = msg ? PyUnicode_AsUTF8(msg) : NULL;
        *trap = hc_trap_from_text(text ? text : "allocator failed");
        Py_XDECREF(msg);
        PyErr_Clear();
        return -1;
    }
    if (*trap != NULL) return -1;
    return (int64_t)(uint32_t)raw[0].i32;
}

static void record(Instance *self, PyObject *stats, PyObject *timings, double dt) {
    if (!Py_IS_TYPE(stats, &HistogramType)) return;
    Histogram *h = (Histogram *)stats;
    hc_observe(h, dt);
    if (timings != Py_None && h->key != Py_None) {
        PyObject *old = _PyDict_GetItem_KnownHash(timings, h->key, h->key_hash);
        double total = dt + (old != NULL ? PyFloat_AsDouble(old) : 0.0);
        PyObject *f = PyFloat_FromDouble(total);
        if (f == NULL || _PyDict_SetItem_KnownHash(timings, h->key, f, h->key_hash) < 0) PyErr_Clear();
        Py_XDECREF(f);
    }
}

/* Set ``effective`` for a call sequence; returns the previous one (a new reference). */
static PyObject *enter(Instance *self, PyObject *ctx) {
    PyObject *prev = self->effective;
    Py_INCREF(ctx);
    self->effective = ctx;
    return prev;
}

static void leave(Instance *self, PyObject *prev) {
    PyObject *cur = self->effective;
    self->effective = prev;
    Py_DECREF(cur);
}

/* One callback: the call, its timing and the result (NULL with GuestTrap set). */
static PyObject *timed_call(Instance *self, int id, PyObject *stats, PyObject *timings, const int64_t *args,
                            int nargs) {
    if (id < 0 || id >= self->nhooks) {
        PyErr_SetString(PyExc_IndexError, "no such hook");
        return NULL;
    }
    if (nargs != self->hooks[id].nparams) {
        PyErr_Format(PyExc_TypeError, "%U takes %d arguments, got %d", self->hooks[id].name,
                     self->hooks[id].nparams, nargs);
        return NULL;
    }
    if (self->store == NULL || self->delete_pending) {
        PyObject *exc_args = Py_BuildValue("(si)", "instance closed", id);
        if (exc_args != NULL) PyErr_SetObject(hc_GuestTrap, exc_args);
        Py_XDECREF(exc_args);
        return NULL;
    }
    int32_t result = 0;
    double t0 = now_seconds();
    int rc = guest_call(self, id, args, nargs, &result);
    record(self, stats, timings, now_seconds() - t0);
    if (rc < 0) return NULL;
    return PyLong_FromLong(result);
}

int hc_int_args(PyObject *const *args, Py_ssize_t n, int64_t *out) {
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = PyLong_AsLongLong(args[i]);
        if (out[i] == -1 && PyErr_Occurred()) return -1;
    }
    return 0;
}

/* call(hook, ctx, stats, timings, *args) -> int */
static PyObject *Instance_call(Instance *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 4 || nargs - 4 > MAX_SLOTS) {
        PyErr_SetString(PyExc_TypeError, "call(hook, ctx, stats, timings, *args)");
        return NULL;
    }
    int id = (int)PyLong_AsLong(args[0]);
    if (id == -1 && PyErr_Occurred()) return NULL;
    int64_t a[MAX_SLOTS];
    if (hc_int_args(args + 4, nargs - 4, a) < 0) return NULL;
    PyObject *prev = enter(self, args[1]);
    PyObject *r = timed_call(self, id, args[2], args[3], a, (int)(nargs - 4));
    leave(self, prev);
    return r;
}

/* open_stream(ctx, timings, ctx_id, root_id, n, eos) -> int: proxy_on_context_create(ctx,
 * root) then proxy_on_request_headers(ctx, n[, eos]) in one transition, each if
 * set_stream_hooks() named it (eos < 0: the 0.1.0 two-argument form); the headers result
 * (0 if skipped).  The hooks and histograms are the instance's, so a stream's first
 * transition passes only what is its own. */
PyObject *hc_open_stream(Instance *self, PyObject *ctx, PyObject *timings, const int64_t *v) {
    int create = self->stream_ids[0], headers = self->stream_ids[1];
    PyObject *prev = enter(self, ctx);
    PyObject *r = NULL;
    if (create >= 0) {
        int64_t a[2] = {v[0], v[1]};
        r = timed_call(self, create, self->stream_stats[0], timings, a, 2);
        if (r == NULL) goto done;
        Py_DECREF(r);
        r = NULL;
    }
    if (headers >= 0) {
        int64_t a[3] = {v[0], v[2], v[3]};
        r = timed_call(self, headers, self->stream_stats[1], timings, a, v[3] < 0 ? 2 : 3);
    } else {
        r = PyLong_FromLong(0);
    }
done:
    leave(self, prev);
    return r;
}

static PyObject *Instance_open_stream(Instance *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "open_stream takes 6 arguments");
        return NULL;
    }
    int64_t v[4];
    if (hc_int_args(args + 2, 4, v) < 0) return NULL;
    return hc_open_stream(self, args[0], args[1], v);
}

/* proxy_on_done, proxy_on_log, proxy_on_delete (ids < 0 skipped): 1 done, 0 on_done
 * returned false (log/delete wait for proxy_done), -1 trapped (GuestTrap set). */
static int end_calls(Instance *self, PyObject *timings, const int *ids, PyObject *const *stats, int64_t ctx_id) {
    for (int i = 0; i < 3; i++) {
        int id = ids[i];
        if (id < 0) continue;
        PyObject *r = timed_call(self, id, stats[i], timings, &ctx_id, 1);
        if (r == NULL) return -1;
        int stop = i == 0 && self->hooks[id].nresults && PyLong_AsLong(r) == 0;
        Py_DECREF(r);
        if (stop) return 0;
    }
    return 1;
}

/* end_stream(ctx, timings, done, done_stats, log, log_stats, delete, delete_stats, ctx_id)
 * -> bool: proxy_on_done, proxy_on_log, proxy_on_delete in one transition (hook ids < 0
 * skipped).  False: on_done returned false (log/delete wait for proxy_done). */
static PyObject *Instance_end_stream(Instance *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "end_stream takes 9 arguments");
        return NULL;
    }
    int64_t ctx_id, v[3];
    int ids[3];
    PyObject *stats[3] = {args[3], args[5], args[7]};
    if (hc_int_args(args + 8, 1, &ctx_id) < 0 || hc_int_args(args + 2, 1, &v[0]) < 0 || hc_int_args(args + 4, 1, &v[1]) < 0 ||
        hc_int_args(args + 6, 1, &v[2]) < 0)
        return NULL;
    for (int i = 0; i < 3; i++) ids[i] = v[i] < 0 ? -1 : (int)v[i];
    PyObject *prev = enter(self, args[0]);
    int rc = end_calls(self, args[1], ids, stats, ctx_id);
    leave(self, prev);
    if (rc < 0) return NULL;
    return PyBool_FromLong(rc);
}

/* respond(ctx, timings, ctx_id, n, eos, body_size) -> (action, stage, ended, body_buffer)
 * The response side of a stream whose body is already in memory, in one transition, with
 * the hooks of set_stream_hooks(): proxy_on_response_headers (eos < 0: the 0.1.0 form);
 * if it continues, body_size > 0 and the body hook is exported,
 * proxy_on_response_body(ctx, body_size, 1) over ctx.response_body; if that continues
 * too, the stream's end (done, log, delete) with the maps and buffers closed as
 * finish_stream closes them.  stage: the callback whose non-zero action stopped it (0
 * headers, 1 body) or 2 when both continued; ended: 1 done, 0 on_done returned false,
 * -1 not ended; body_buffer: ctx.response_body as the body callback left it (at the
 * stream's end ctx.request_body and ctx.response_body are None). */
int hc_respond(Instance *self, StreamCore *ctx, PyObject *timings, const int64_t *v, HcResponded *out) {
    int head = self->stream_ids[2], body = self->stream_ids[6];
    PyObject *prev = enter(self, (PyObject *)ctx);
    PyObject *buffer = NULL;
    int rc = -1;
    long action = 0;
    int stage = 0, ended = -1;
    if (head >= 0) {
        int64_t a[3] = {v[0], v[1], v[2]};
        PyObject *r = timed_call(self, head, self->stream_stats[2], timings, a, v[2] < 0 ? 2 : 3);
        if (r == NULL) goto done;
        action = PyLong_AsLong(r);
        Py_DECREF(r);
    }
    if (action == 0 && body >= 0 && v[3] > 0) {
        stage = 1;
        ctx->response_headers_open = 0;
        ctx->continued = 0;
        int64_t a[3] = {v[0], v[3], 1};
        PyObject *r = timed_call(self, body, self->stream_stats[6], timings, a, 3);
        if (r == NULL) goto done;
        action = PyLong_AsLong(r);
        Py_DECREF(r);
        /* the trailers a filter may add in the last body callback: closed after it */
        PyObject *trailers = PyObject_GetAttr((PyObject *)ctx, s_response_trailers);
        if (trailers == NULL || (trailers != Py_None && PyObject_SetAttr(trailers, s_writable, Py_False) < 0)) {
            Py_XDECREF(trailers);
            goto done;
        }
        Py_DECREF(trailers);
    }
    if (action == 0) {
        stage = 2;
        buffer = ctx->response_body; /* taken from the stream: its maps and buffers close */
        ctx->response_body = NULL;
        ctx->in_log = 1;
        ctx->response_headers_open = 0;
        ctx->request_headers_open = 0;
        ended = end_calls(self, timings, self->stream_ids + 3, self->stream_stats + 3, v[0]);
        if (ended < 0) { /* the body buffer stays with the stream for the caller to use */
            Py_XSETREF(ctx->response_body, buffer);
            buffer = NULL;
            goto done;
        }
        Py_CLEAR(ctx->request_body);
    }
    out->action = action;
    out->stage = stage;
    out->ended = ended;
    out->buffer = buffer;
    buffer = NULL;
    rc = 0;
done:
    Py_XDECREF(buffer);
    leave(self, prev);
    return rc;
}

/* set_stream_hooks(ids, stats): the stream callbacks' hook ids (engine.STREAM_PHASES
 * order, -1 not exported) and histograms (None: not recorded), for open_stream/respond */
static PyObject *Instance_set_stream_hooks(Instance *self, PyObject *args) {
    PyObject *ids, *stats;
    if (!PyArg_ParseTuple(args, "O!O!", &PyTuple_Type, &ids, &PyTuple_Type, &stats)) return NULL;
    if (PyTuple_GET_SIZE(ids) != 7 || PyTuple_GET_SIZE(stats) != 7) {
        PyErr_SetString(PyExc_ValueError, "set_stream_hooks takes 7 ids and 7 histograms");
        return NULL;
    }
    int v[7];
    for (int i = 0; i < 7; i++) {
        long id = PyLong_AsLong(PyTuple_GET_ITEM(ids, i));
        if (id == -1 && PyErr_Occurred()) return NULL;
        if (id >= self->nhooks) {
            PyErr_SetString(PyExc_IndexError, "no such hook");
            return NULL;
        }
        v[i] = id < 0 ? -1 : (int)id;
    }
    for (int i = 0; i < 7; i++) {
        self->stream_ids[i] = v[i];
        PyObject *h = PyTuple_GET_ITEM(stats, i);
        Py_INCREF(h);
        Py_XSETREF(self->stream_stats[i], h);
    }
    Py_RETURN_NONE;
}

/* alloc(size) -> guest pointer, from Python host functions (HostTrap if it traps) */
static PyObject *Instance_alloc(Instance *self, PyObject *arg) {
    long size = PyLong_AsLong(arg);
    if (size == -1 && PyErr_Occurred()) return NULL;
    Instance *prev = hc_current;
    hc_current = self;
    if (self->depth++ == 0) WT.context_set_epoch_deadline(self->ctx, self->deadline); /* not nested */
    wasm_trap_t *trap = NULL;
    int64_t ptr = hc_guest_alloc(self, (uint32_t)size, &trap);
    self->depth--;
    hc_current = prev;
    if (ptr < 0) {
        PyObject *msg = trap ? message_of(trap, NULL) : NULL;
        PyErr_SetObject(hc_HostTrap, msg ? msg : Py_None);
        Py_XDECREF(msg);
        return NULL;
    }
    return PyLong_FromLongLong(ptr);
}

/* bind(name, nparams, nresults) -> hook id of another exported function */
static int bind_hook(Instance *self, PyObject *name, int nparams, int nresults) {
    Py_ssize_t len;
    const char *text = PyUnicode_AsUTF8AndSize(name, &len);
    if (text == NULL) return -1;
    if (nparams > MAX_SLOTS || nresults > MAX_SLOTS) {
        PyErr_Format(PyExc_ValueError, "export %U has too many parameters", name);
        return -1;
    }
    wt_extern ext;
    if (!WT.instance_export_get(self->ctx, &self->instance, text, (size_t)len, &ext) ||
        ext.kind != WT_EXTERN_FUNC) {
        PyErr_SetObject(PyExc_KeyError, name);
        return -1;
    }
    Hook *hooks = PyMem_Realloc(self->hooks, sizeof(Hook) * (size_t)(self->nhooks + 1));
    if (hooks == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->hooks = hooks;
    Hook *h = &hooks[self->nhooks];
    h->func = ext.of.func;
    h->nparams = nparams;
    h->nresults = nresults;
    Py_INCREF(name);
    h->name = name;
    return self->nhooks++;
}

static PyObject *Instance_bind(Instance *self, PyObject *args) {
    PyObject *name;
    int nparams, nresults;
    if (!PyArg_ParseTuple(args, "Uii", &name, &nparams, &nresults)) return NULL;
    int id = bind_hook(self, name, nparams, nresults);
    return id < 0 ? NULL : PyLong_FromLong(id);
}

static PyObject *Instance_memory_size(Instance *self, PyObject *unused) {
    if (self->store == NULL) return PyLong_FromLong(0);
    return PyLong_FromSize_t(WT.memory_data_size(self->ctx, &self->memory));
}

static PyObject *Instance_memory_base(Instance *self, PyObject *unused) {
    if (self->store == NULL) return PyLong_FromLong(0);
    return PyLong_FromVoidPtr(WT.memory_data(self->ctx, &self->memory));
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* prefault(limit): make the first ``limit`` bytes of linear memory resident and writable
 * without changing them, so the stream does not take the page faults (Linux 5.14+;
 * elsewhere a no-op).  For instances started ahead of their stream, in idle time. */
static PyObject *Instance_prefault(Instance *self, PyObject *arg) {
    size_t limit = PyLong_AsSize_t(arg);
    if (PyErr_Occurred()) return NULL;
    if (self->store != NULL) {
        size_t size = WT.memory_data_size(self->ctx, &self->memory);
        if (size > 0) madvise(WT.memory_data(self->ctx, &self->memory), size < limit ? size : limit,
                              MADV_POPULATE_WRITE);
    }
    Py_RETURN_NONE;
}

static PyObject *Instance_memory_grow(Instance *self, PyObject *arg) {
    unsigned long long pages = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred()) return NULL;
    uint64_t prev = 0;
    wasmtime_error_t *err = WT.memory_grow(self->ctx, &self->memory, pages, &prev);
    if (err != NULL) {
        PyObject *msg = message_of(NULL, err);
        PyErr_SetObject(hc_instantiate_error, msg);
        Py_XDECREF(msg);
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(prev);
}

static PyObject *Instance_delete(Instance *self, PyObject *unused) {
    if (self->depth > 0) {
        self->delete_pending = 1;
        Py_RETURN_NONE;
    }
    drop_store(self);
    Py_CLEAR(self->owner);
    Py_RETURN_NONE;
}

static PyObject *Instance_get_ctx_ptr(Instance *self, void *closure) { return PyLong_FromVoidPtr(self->ctx); }

static PyObject *Instance_get_instance_ptr(Instance *self, void *closure) {
    return PyLong_FromVoidPtr(&self->instance);
}

static PyObject *Instance_get_alive(Instance *self, void *closure) { return PyBool_FromLong(self->store != NULL); }

/* Instance(engine_ptr, pre_ptr, memory_limit, deadline, hooks, memory_name, alloc_name,
 *          owner, v010, log_level); hooks: sequence of (name, nparams, nresults). */
static int Instance_init(Instance *self, PyObject *args, PyObject *kwds) {
    unsigned long long engine_ptr, pre_ptr, deadline;
    long long memory_limit;
    PyObject *hooks, *memory_name, *alloc_name, *owner;
    int v010, log_level;
    if (!PyArg_ParseTuple(args, "KKLKOUOOpi", &engine_ptr, &pre_ptr, &memory_limit, &deadline, &hooks,
                          &memory_name, &alloc_name, &owner, &v010, &log_level))
        return -1;
    if (self->store != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Instance already initialised");
        return -1;
    }
    self->deadline = deadline;
    self->v010 = v010;
    self->log_level = log_level;
    self->alloc_hook = -1;
    Py_INCREF(owner);
    Py_XSETREF(self->owner, owner);
    Py_CLEAR(self->metrics);
    self->store = WT.store_new((wasm_engine_t *)(uintptr_t)engine_ptr, NULL, NULL);
    self->ctx = WT.store_context(self->store);
    WT.store_limiter(self->store, memory_limit, -1, -1, -1, -1);
    WT.context_set_epoch_deadline(self->ctx, deadline);
    wasm_trap_t *trap = NULL;
    wasmtime_error_t *err = WT.instance_pre_instantiate(
        (const wasmtime_instance_pre_t *)(uintptr_t)pre_ptr, self->ctx, &self->instance, &trap);
    if (err != NULL || trap != NULL) {
        PyObject *msg = message_of(trap, err);
        drop_store(self);
        if (msg != NULL) {
            PyErr_SetObject(hc_instantiate_error, msg);
            Py_DECREF(msg);
        }
        return -1;
    }
    PyObject *seq = PySequence_Fast(hooks, "hooks must be a sequence");
    if (seq == NULL) goto fail;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *name;
        int np, nr;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "Uii", &name, &np, &nr) ||
            bind_hook(self, name, np, nr) < 0) {
            Py_DECREF(seq);
            goto fail;
        }
        if (alloc_name != Py_None && PyUnicode_Compare(name, alloc_name) == 0) self->alloc_hook = (int)i;
    }
    Py_DECREF(seq);
    Py_ssize_t mlen;
    const char *mname = PyUnicode_AsUTF8AndSize(memory_name, &mlen);
    wt_extern ext;
    if (mname == NULL) goto fail;
    if (!WT.instance_export_get(self->ctx, &self->instance, mname, (size_t)mlen, &ext) ||
        ext.kind != WT_EXTERN_MEMORY) {
        PyErr_Format(hc_instantiate_error, "memory export %U not found", memory_name);
        goto fail;
    }
    self->memory = ext.of.memory;
    self->mem_base = WT.memory_data(self->ctx, &self->memory);
    self->mem_size = WT.memory_data_size(self->ctx, &self->memory);
    return 0;
fail:
    drop_store(self);
    return -1;
}

static int Instance_traverse(Instance *self, visitproc visit, void *arg) {
    Py_VISIT(self->owner);
    Py_VISIT(self->effective);
    Py_VISIT(self->metrics);
    for (int i = 0; i < 7; i++) Py_VISIT(self->stream_stats[i]);
    return 0;
}

static int Instance_clear(Instance *self) {
    Py_CLEAR(self->owner);
    Py_CLEAR(self->effective);
    Py_CLEAR(self->metrics);
    for (int i = 0; i < 7; i++) Py_CLEAR(self->stream_stats[i]);
    return 0;
}

static void Instance_dealloc(Instance *self) {
    PyObject_GC_UnTrack(self);
    drop_store(self);
    hc_forget_globals(self);
    for (int i = 0; i < self->nhooks; i++) Py_XDECREF(self->hooks[i].name);
    PyMem_Free(self->hooks);
    Instance_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Instance_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    Instance *self = (Instance *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->alloc_hook = -1;
        Py_INCREF(Py_None);
        self->effective = Py_None;
        for (int i = 0; i < 7; i++) {
            self->stream_ids[i] = -1;
            Py_INCREF(Py_None);
            self->stream_stats[i] = Py_None;
        }
    }
    return (PyObject *)self;
}

/* the methods instance.c implements; module.c adds reset.c's and stream.c's to the type */
PyMethodDef hc_instance_methods[] = {
    {"call", (PyCFunction)(void (*)(void))Instance_call, METH_FASTCALL,
     "call(hook, ctx, stats, timings, *args) -> int: one callback with ctx effective"},
    {"end_stream", (PyCFunction)(void (*)(void))Instance_end_stream, METH_FASTCALL,
     "proxy_on_done + proxy_on_log + proxy_on_delete in one call"},
    {"open_stream", (PyCFunction)(void (*)(void))Instance_open_stream, METH_FASTCALL,
     "proxy_on_context_create + proxy_on_request_headers in one call"},
    {"set_stream_hooks", (PyCFunction)Instance_set_stream_hooks, METH_VARARGS,
     "set_stream_hooks(ids, stats): the stream callbacks open_stream/respond call"},
    {"alloc", (PyCFunction)Instance_alloc, METH_O, "the guest allocator (nested call)"},
    {"bind", (PyCFunction)Instance_bind, METH_VARARGS, "bind(name, nparams, nresults) -> hook id"},
    {"memory_size", (PyCFunction)Instance_memory_size, METH_NOARGS, "linear memory size in bytes"},
    {"memory_base", (PyCFunction)Instance_memory_base, METH_NOARGS, "linear memory base address"},
    {"memory_grow", (PyCFunction)Instance_memory_grow, METH_O, "grow by pages; returns the old size"},
    {"prefault", (PyCFunction)Instance_prefault, METH_O, "make the first bytes of memory resident"},
    {"delete", (PyCFunction)Instance_delete, METH_NOARGS, "drop the store (returns a pool slot)"},
    {NULL},
};

static PyMemberDef Instance_members[] = {
    {"effective", T_OBJECT_EX, offsetof(Instance, effective), 0, "the context host functions act on"},
    {"log_level", T_INT, offsetof(Instance, log_level), 0, "the filter's Proxy-Wasm log level"},
    {"deadline", T_ULONGLONG, offsetof(Instance, deadline), 0, "epoch ticks per top-level call"},
    {NULL},
};

static PyGetSetDef Instance_getset[] = {
    {"ctx_ptr", (getter)Instance_get_ctx_ptr, NULL, "wasmtime_context_t address", NULL},
    {"instance_ptr", (getter)Instance_get_instance_ptr, NULL, "wasmtime_instance_t address", NULL},
    {"alive", (getter)Instance_get_alive, NULL, "whether the store still exists", NULL},
    {NULL},
};

PyTypeObject InstanceType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgenode.wasm._hostcore.Instance",
    .tp_basicsize = sizeof(Instance),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A wasmtime store with one filter instance, called through the unchecked C API",
    .tp_new = Instance_new,
    .tp_init = (initproc)Instance_init,
    .tp_dealloc = (destructor)Instance_dealloc,
    .tp_traverse = (traverseproc)Instance_traverse,
    .tp_clear = (inquiry)Instance_clear,
    .tp_members = Instance_members,
    .tp_getset = Instance_getset,
};
