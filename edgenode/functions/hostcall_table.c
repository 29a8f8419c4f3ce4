/* The resource table of one instance and the call state of one request.
 *
 * wasmtime keeps the guest's handle table (own/borrow handles, drops); a handle names a
 * host `rep` here.  Every lookup checks the resource's type, so a guest that passes a
 * stream where a body is expected traps instead of confusing the host.  Parents count
 * their live children (a body's stream, a response's headers): dropping or consuming a
 * parent while a child lives traps, as WASI 0.2 requires.  Reps are never reused within
 * an instance; after each request of a reused instance the reps it created are forgotten
 * (a later use of such a handle traps), so the table never grows with requests.
 */
#include "hostcall.h"

#include <errno.h>
#include <structmember.h>
#include <time.h>

const char *type_names[T_MAX];
_Thread_local CallObject *current_call;

static const char *type_name(uint8_t type) {
    const char *name = type < T_MAX ? type_names[type] : NULL;
    return name ? name : "resource";
}

/* --- slots ------------------------------------------------------------------------------- */
static slot_t *find(TableObject *t, uint32_t rep) {
    if (rep >= t->base && rep - t->base < t->len) {
        slot_t *s = &t->slots[rep - t->base];
        return s->obj ? s : NULL;
    }
    for (uint32_t i = 0; i < t->nold; i++)
        if (t->old[i].rep == rep && t->old[i].obj) return &t->old[i];
    return NULL;
}

uint32_t table_add(TableObject *t, PyObject *obj, uint8_t type, uint32_t parent) {
    slot_t *p = NULL;
    if (parent && !(p = find(t, parent))) {
        PyErr_Format(GuestTrap, "parent resource %u is gone", parent);
        return 0;
    }
    uint32_t rep = t->next;
    uint32_t at = rep - t->base;
    if (at >= t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 32;
        while (cap <= at) cap *= 2;
        slot_t *grown = PyMem_Realloc(t->slots, cap * sizeof(slot_t));
        if (!grown) { PyErr_NoMemory(); return 0; }
        memset(grown + t->cap, 0, (cap - t->cap) * sizeof(slot_t));
        t->slots = grown;
        t->cap = cap;
        if (p && parent >= t->base) p = &t->slots[parent - t->base];  /* moved */
    }
    slot_t *s = &t->slots[at];
    s->obj = Py_NewRef(obj);
    s->rep = rep;
    s->type = type;
    s->parent = parent;
    s->children = 0;
    if (p) p->children++;
    t->next = rep + 1;
    t->len = at + 1;
    return rep;
}

slot_t *table_get(TableObject *t, uint32_t rep, uint8_t type) {
    slot_t *s = find(t, rep);
    if (!s || (type && s->type != type)) {
        PyErr_Format(GuestTrap, "invalid %s handle (rep %u)", type ? type_name(type) : "resource", rep);
        return NULL;
    }
    return s;
}

static void release(TableObject *t, slot_t *s) {
    if (s->parent) {
        slot_t *p = find(t, s->parent);
        if (p) p->children--;
    }
    s->obj = NULL;
}

PyObject *table_take(TableObject *t, uint32_t rep, uint8_t type) {
    slot_t *s = table_get(t, rep, type);
    if (!s) return NULL;
    if (s->children) {
        PyErr_Format(GuestTrap, "%s consumed while a child resource is still alive", type_name(s->type));
        return NULL;
    }
    PyObject *obj = s->obj;
    release(t, s);
    return obj;  /* the table's reference passes to the caller */
}

static bool native_type(uint8_t type) {
    switch (type) {
    case T_POLLABLE: case T_IO_ERROR: case T_INPUT_STREAM: case T_OUTPUT_STREAM: case T_FIELDS:
    case T_INCOMING_REQUEST: case T_RESPONSE_OUTPARAM: case T_INCOMING_BODY: case T_FUTURE_TRAILERS:
    case T_OUTGOING_RESPONSE: case T_OUTGOING_BODY:
        return true;
    }
    return false;
}

int table_drop(TableObject *t, uint32_t rep) {
    slot_t *s = find(t, rep);
    if (!s) {
        PyErr_Format(GuestTrap, "drop of unknown resource (rep %u)", rep);
        return -1;
    }
    if (s->children) {
        PyErr_Format(GuestTrap, "%s dropped while a child resource is still alive", type_name(s->type));
        return -1;
    }
    bool native = native_type(s->type);
    PyObject *obj = s->obj;
    release(t, s);
    int rc = 0;
    if (!native) {  /* resources defined in Python may care (Resource.on_drop) */
        PyObject *r = PyObject_CallMethod(obj, "on_drop", NULL);
        rc = r ? 0 : -1;
        Py_XDECREF(r);
    }
    Py_DECREF(obj);
    return rc;
}

/* --- the Table type --------------------------------------------------------------------- */
static PyObject *table_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    TableObject *t = (TableObject *)type->tp_alloc(type, 0);
    if (t) t->next = t->base = 1;
    return (PyObject *)t;
}

static int table_traverse(TableObject *t, visitproc visit, void *arg) {
    for (uint32_t i = 0; i < t->len; i++) Py_VISIT(t->slots[i].obj);
    for (uint32_t i = 0; i < t->nold; i++) Py_VISIT(t->old[i].obj);
    return 0;
}

static int table_clear(TableObject *t) {
    for (uint32_t i = 0; i < t->len; i++) Py_CLEAR(t->slots[i].obj);
    for (uint32_t i = 0; i < t->nold; i++) Py_CLEAR(t->old[i].obj);
    t->len = t->nold = 0;
    return 0;
}

static void table_dealloc(TableObject *t) {
    PyObject_GC_UnTrack(t);
    table_clear(t);
    PyMem_Free(t->slots);
    PyMem_Free(t->old);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static int type_of(PyObject *cls) {
    PyObject *ty = PyObject_GetAttrString(cls, "TYPE");
    if (!ty) return -1;
    long v = PyLong_AsLong(ty);
    Py_DECREF(ty);
    if (v <= 0 || v >= T_MAX) {
        if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "bad resource TYPE %ld", v);
        return -1;
    }
    return (int)v;
}

static PyObject *table_py_add(TableObject *t, PyObject *args) {
    PyObject *obj;
    unsigned int parent = 0;
    if (!PyArg_ParseTuple(args, "O|I", &obj, &parent)) return NULL;
    int type = type_of((PyObject *)Py_TYPE(obj));
    if (type < 0) return NULL;
    uint32_t rep = table_add(t, obj, (uint8_t)type, parent);
    return rep ? PyLong_FromUnsignedLong(rep) : NULL;
}

static PyObject *table_py_get(TableObject *t, PyObject *args) {
    unsigned int rep;
    PyObject *cls;
    if (!PyArg_ParseTuple(args, "IO", &rep, &cls)) return NULL;
    int type = type_of(cls);
    if (type < 0) return NULL;
    slot_t *s = table_get(t, rep, (uint8_t)type);
    return s ? Py_NewRef(s->obj) : NULL;
}

static PyObject *table_py_take(TableObject *t, PyObject *args) {
    unsigned int rep;
    PyObject *cls;
    if (!PyArg_ParseTuple(args, "IO", &rep, &cls)) return NULL;
    int type = type_of(cls);
    return type < 0 ? NULL : table_take(t, rep, (uint8_t)type);
}

static PyObject *table_py_drop(TableObject *t, PyObject *arg) {
    unsigned long rep = PyLong_AsUnsignedLong(arg);
    if (PyErr_Occurred()) return NULL;
    if (table_drop(t, (uint32_t)rep) < 0) return NULL;
    Py_RETURN_NONE;
}

/* forget_from(rep): drop the host side of every resource added since `rep` (what a
 * request created and the guest never dropped); returns how many there were */
int table_forget_from(TableObject *t, uint32_t first) {
    int forgotten = 0;
    for (uint32_t i = 0; i < t->len; i++) {
        slot_t *s = &t->slots[i];
        if (s->obj && s->rep >= first) { Py_CLEAR(s->obj); forgotten++; }
    }
    for (uint32_t i = 0; i < t->len; i++) {  /* older survivors move aside */
        slot_t *s = &t->slots[i];
        if (!s->obj) continue;
        if (t->nold == t->capold) {
            uint32_t cap = t->capold ? t->capold * 2 : 8;
            slot_t *grown = PyMem_Realloc(t->old, cap * sizeof(slot_t));
            if (!grown) { PyErr_NoMemory(); return -1; }
            t->old = grown;
            t->capold = cap;
        }
        t->old[t->nold++] = *s;
        s->obj = NULL;
    }
    uint32_t kept = 0;  /* children counts of the survivors no longer see the forgotten */
    for (uint32_t i = 0; i < t->nold; i++) {
        if (!t->old[i].obj) continue;
        t->old[kept] = t->old[i];
        t->old[kept].children = 0;
        kept++;
    }
    t->nold = kept;
    for (uint32_t i = 0; i < t->nold; i++) {
        slot_t *p = t->old[i].parent ? find(t, t->old[i].parent) : NULL;
        if (p) p->children++;
    }
    t->base = t->next;
    t->len = 0;
    return forgotten;
}

static PyObject *table_py_forget_from(TableObject *t, PyObject *arg) {
    unsigned long first = PyLong_AsUnsignedLong(arg);
    if (PyErr_Occurred()) return NULL;
    int forgotten = table_forget_from(t, (uint32_t)first);
    return forgotten < 0 ? NULL : PyLong_FromLong(forgotten);
}

static PyObject *table_py_live(TableObject *t, PyObject *unused) {
    PyObject *out = PyDict_New();
    for (int pass = 0; out && pass < 2; pass++) {
        slot_t *slots = pass ? t->old : t->slots;
        uint32_t n = pass ? t->nold : t->len;
        for (uint32_t i = 0; i < n; i++) {
            if (!slots[i].obj) continue;
            PyObject *key = PyUnicode_FromString(type_name(slots[i].type));
            PyObject *was = key ? PyDict_GetItemWithError(out, key) : NULL;
            PyObject *n1 = key && !PyErr_Occurred() ? PyLong_FromLong((was ? PyLong_AsLong(was) : 0) + 1) : NULL;
            int rc = n1 ? PyDict_SetItem(out, key, n1) : -1;
            Py_XDECREF(key);
            Py_XDECREF(n1);
            if (rc < 0) Py_CLEAR(out);
        }
    }
    return out;
}

static PyObject *table_next_rep(TableObject *t, void *unused) {
    return PyLong_FromUnsignedLong(t->next);
}

static Py_ssize_t table_length(TableObject *t) {
    Py_ssize_t n = 0;
    for (uint32_t i = 0; i < t->len; i++) n += t->slots[i].obj != NULL;
    for (uint32_t i = 0; i < t->nold; i++) n += t->old[i].obj != NULL;
    return n;
}

static PyMethodDef table_methods[] = {
    {"add", (PyCFunction)table_py_add, METH_VARARGS, "add(obj, parent_rep=0) -> rep (type: obj.TYPE)"},
    {"get", (PyCFunction)table_py_get, METH_VARARGS, "get(rep, cls) -> obj; traps on a wrong handle"},
    {"take", (PyCFunction)table_py_take, METH_VARARGS, "take(rep, cls) -> obj, removed (an own<> argument)"},
    {"drop", (PyCFunction)table_py_drop, METH_O, "the guest dropped rep"},
    {"forget_from", (PyCFunction)table_py_forget_from, METH_O, "forget reps >= rep; returns how many"},
    {"live", (PyCFunction)table_py_live, METH_NOARGS, "live resources by WIT type name"},
    {NULL},
};
static PyGetSetDef table_getset[] = {{"next_rep", (getter)table_next_rep, NULL, NULL, NULL}, {NULL}};
static PySequenceMethods table_seq = {.sq_length = (lenfunc)table_length};

PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.functions._hostcall.Table",
    .tp_doc = "The host resources of one instance, by rep.",
    .tp_basicsize = sizeof(TableObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = table_tp_new,
    .tp_dealloc = (destructor)table_dealloc,
    .tp_traverse = (traverseproc)table_traverse,
    .tp_clear = (inquiry)table_clear,
    .tp_methods = table_methods,
    .tp_getset = table_getset,
    .tp_as_sequence = &table_seq,
};

/* --- the call state ------------------------------------------------------------------------ */
double now_monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void call_notify(CallObject *c) {
    pthread_mutex_lock(&c->mu);
    c->generation++;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

static int call_check(CallObject *c) {
    if (c->cancelled) { PyErr_SetString(GuestTrap, "request cancelled"); return -1; }
    if (now_monotonic() > c->deadline) {
        char message[64];
        snprintf(message, sizeof message, "wall-clock timeout (%gs)", c->timeout);
        PyErr_SetString(GuestTrap, message);
        return -1;
    }
    return 0;
}

static void sleep_until(double end) {
    double left = end - now_monotonic();
    if (left <= 0) return;
    struct timespec ts = {(time_t)left, (long)((left - (time_t)left) * 1e9)};
    Py_BEGIN_ALLOW_THREADS
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
    Py_END_ALLOW_THREADS
}

int call_wait(CallObject *c, ready_fn ready, void *arg, double until) {
    int r = ready(arg);
    if (r != 0) return r < 0 ? -1 : 0;
    double end = until >= 0 && until < c->deadline ? until : c->deadline;
    if (!c->threaded) {
        /* inline: only time passes, so only a timer can become ready */
        if (until < 0) {
            PyErr_SetString(GuestTrap, "the guest blocked on something that can never become ready "
                                       "(inline execution)");
            return -1;
        }
        sleep_until(end);
        r = ready(arg);
        if (r < 0) return -1;
        return r ? 0 : call_check(c);
    }
    for (;;) {
        uint64_t seen = c->generation;  /* read with the GIL: producers bump it after feeding */
        if ((r = ready(arg)) != 0) return r < 0 ? -1 : 0;
        if (c->cancelled || now_monotonic() >= end) break;
        double at = end;
        struct timespec ts = {(time_t)at, (long)((at - (time_t)at) * 1e9)};
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&c->mu);
        while (c->generation == seen && !c->cancelled) {
            if (pthread_cond_timedwait(&c->cond, &c->mu, &ts) == ETIMEDOUT) break;
        }
        pthread_mutex_unlock(&c->mu);
        Py_END_ALLOW_THREADS
    }
    return call_check(c);
}

static int call_init(CallObject *c, PyObject *args, PyObject *kw) {
    static char *names[] = {"timeout", "threaded", "max_body_bytes", NULL};
    double timeout;
    int threaded;
    long long max_body;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "dpL", names, &timeout, &threaded, &max_body)) return -1;
    c->timeout = timeout;
    c->deadline = now_monotonic() + timeout;
    c->threaded = threaded;
    c->max_body_bytes = max_body;
    Py_XSETREF(c->head, Py_NewRef(Py_None));
    Py_XSETREF(c->on_head, Py_NewRef(Py_None));
    Py_XSETREF(c->body_relay, Py_NewRef(Py_None));
    return 0;
}

static PyObject *call_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    CallObject *c = (CallObject *)type->tp_alloc(type, 0);
    if (!c) return NULL;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &attr);
    pthread_condattr_destroy(&attr);
    c->head = Py_NewRef(Py_None);
    c->on_head = Py_NewRef(Py_None);
    c->body_relay = Py_NewRef(Py_None);
    return (PyObject *)c;
}

static int call_traverse(CallObject *c, visitproc visit, void *arg) {
    Py_VISIT(c->table);
    Py_VISIT(c->head);
    Py_VISIT(c->on_head);
    Py_VISIT(c->body_relay);
    return 0;
}

static int call_clear(CallObject *c) {
    Py_CLEAR(c->table);
    Py_CLEAR(c->head);
    Py_CLEAR(c->on_head);
    Py_CLEAR(c->body_relay);
    return 0;
}

/* a Python subclass's dealloc (subtype_dealloc) clears its __dict__, calls this, then
 * releases the heap type itself */
static void call_dealloc(CallObject *c) {
    PyObject_GC_UnTrack(c);
    call_clear(c);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cond);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static PyObject *call_py_notify(CallObject *c, PyObject *unused) {
    call_notify(c);
    Py_RETURN_NONE;
}

static PyObject *call_py_cancel(CallObject *c, PyObject *unused) {
    c->cancelled = 1;
    call_notify(c);
    Py_RETURN_NONE;
}

static PyObject *call_py_check(CallObject *c, PyObject *unused) {
    if (call_check(c) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *call_get_table(CallObject *c, void *unused) {
    return c->table ? Py_NewRef(c->table) : Py_NewRef(Py_None);
}

static PyMethodDef call_methods[] = {
    {"notify", (PyCFunction)call_py_notify, METH_NOARGS, "wake the guest if it waits on something"},
    {"cancel", (PyCFunction)call_py_cancel, METH_NOARGS, "end the request: the guest traps at its next wait"},
    {"check", (PyCFunction)call_py_check, METH_NOARGS, "raise GuestTrap if cancelled or past the deadline"},
    {NULL},
};

static PyMemberDef call_members[] = {
    {"timeout", T_DOUBLE, offsetof(CallObject, timeout), READONLY, "wall-clock limit (s)"},
    {"deadline", T_DOUBLE, offsetof(CallObject, deadline), 0, "when it passes (monotonic s)"},
    {"cancelled", T_INT, offsetof(CallObject, cancelled), READONLY, NULL},
    {"threaded", T_INT, offsetof(CallObject, threaded), READONLY, NULL},
    {"max_body_bytes", T_LONGLONG, offsetof(CallObject, max_body_bytes), READONLY, NULL},
    {"head", T_OBJECT, offsetof(CallObject, head), READONLY,
     "(status, headers, body sink | None, error | None) once response-outparam.set ran"},
    {"on_head", T_OBJECT, offsetof(CallObject, on_head), 0, "called with the head once set"},
    {"body_relay", T_OBJECT, offsetof(CallObject, body_relay), 0,
     "response body chunks are passed here (None at the end) instead of collected"},
    {"host_s", T_DOUBLE, offsetof(CallObject, host_s), READONLY, "seconds in host functions"},
    {"guest_s", T_DOUBLE, offsetof(CallObject, guest_s), READONLY, "seconds in guest code"},
    {"host_calls", T_LONG, offsetof(CallObject, host_calls), READONLY, NULL},
    {"python_calls", T_LONG, offsetof(CallObject, python_calls), READONLY,
     "host calls that ran Python code"},
    {NULL},
};
static PyGetSetDef call_getset[] = {{"table", (getter)call_get_table, NULL, NULL, NULL}, {NULL}};

PyTypeObject CallType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edgenode.functions._hostcall.Call",
    .tp_doc = "Call(timeout, threaded, max_body_bytes): the host side of one request.",
    .tp_basicsize = sizeof(CallObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = call_tp_new,
    .tp_init = (initproc)call_init,
    .tp_dealloc = (destructor)call_dealloc,
    .tp_traverse = (traverseproc)call_traverse,
    .tp_clear = (inquiry)call_clear,
    .tp_methods = call_methods,
    .tp_members = call_members,
    .tp_getset = call_getset,
};

/* --- a new resource handed to the guest ---------------------------------------------------- */
int ret_own_new(CallObject *c, val_t *out, PyObject *obj, uint8_t type, uint32_t parent) {
    if (!obj) return -1;
    uint32_t rep = table_add(c->table, obj, type, parent);
    Py_DECREF(obj);
    return rep ? ret_own(c, out, rep, type) : -1;
}
