/* The edge-function host in C: declarations shared by its source files.
 *
 *   hostcall_values.c  wasmtime C API addresses, the shared exception types, argument and
 *                      result writers
 *   hostcall_table.c   the per-instance resource table and the per-request call state
 *   hostcall_io.c      byte sources and sinks, wasi:io (streams, poll, error), clocks, random
 *   hostcall_http.c    wasi:http/types: fields, requests, bodies, responses, the outparam
 *   _hostcall.c        the module: value conversion and trampolines for host functions
 *                      written in Python, instances, the epoch ticker
 *
 * Each file uses only those listed above it, so the units form no cycle.
 *
 * Every host function runs with the GIL held (inline requests keep it for the whole guest
 * call; threaded ones take it per host call), so host objects are ordinary Python objects
 * and the table holds references to them.  The wasmtime functions are looked up by the
 * Python side in the wheel's shared library and handed over as addresses (configure()),
 * so nothing here links against it.  The value layout mirrors wasmtime's component/val.h:
 * a one-byte kind, then a union at offset 8; 32 bytes per value.
 */
#ifndef EDGENODE_HOSTCALL_H
#define EDGENODE_HOSTCALL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- wasmtime component values ---------------------------------------------------------- */
typedef struct { size_t size; uint8_t *data; } name_t;
typedef struct val val_t;
typedef struct { size_t size; val_t *data; } vallist_t;
typedef struct { size_t size; void *data; } valrecord_t;
struct val {
    uint8_t kind;
    union {
        bool b; int8_t s8; uint8_t u8; int16_t s16; uint16_t u16; int32_t s32; uint32_t u32;
        int64_t s64; uint64_t u64; float f32; double f64;
        name_t string;
        vallist_t list;
        valrecord_t record;
        struct { name_t disc; val_t *val; } variant;
        val_t *option;
        struct { bool is_ok; val_t *val; } result;
        void *resource;
    } of;
};
typedef struct { name_t name; val_t val; } entry_t;

enum { K_BOOL, K_S8, K_U8, K_S16, K_U16, K_S32, K_U32, K_S64, K_U64, K_F32, K_F64, K_CHAR,
       K_STRING, K_LIST, K_RECORD, K_TUPLE, K_VARIANT, K_ENUM, K_OPTION, K_RESULT, K_FLAGS,
       K_RESOURCE };

/* opaque wasmtime structs passed by value (sizes checked against ctypes at configure) */
typedef struct { _Alignas(8) uint8_t raw[64]; } wasm_handle_t;

typedef struct {
    void *(*any_to_host)(void *ctx, void *any, void **host);
    uint32_t (*host_rep)(void *host);
    void (*host_delete)(void *host);
    void *(*host_new)(bool owned, uint32_t rep, uint32_t ty);
    void *(*host_to_any)(void *ctx, void *host, void **any);
    void (*byte_vec_new)(name_t *out, size_t size, const uint8_t *data);
    void (*byte_vec_delete)(name_t *v);
    void (*vallist_new_uninit)(vallist_t *out, size_t size);
    void (*valtuple_new_uninit)(vallist_t *out, size_t size);
    void (*valrecord_new_uninit)(valrecord_t *out, size_t size);
    val_t *(*val_new)(val_t *src);
    void (*val_delete)(val_t *v);
    void *(*error_new)(const char *message);
    void (*error_delete)(void *err);
    void (*error_message)(void *err, name_t *out);
    void *(*func_call)(void *func, void *ctx, val_t *args, size_t nargs, val_t *res, size_t nres);
    void *(*post_return)(void *func, void *ctx);
    void *(*store_new)(void *engine, void *data, void (*finalizer)(void *));
    void *(*store_context)(void *store);
    void (*store_limiter)(void *store, int64_t memory, int64_t table_elements, int64_t instances,
                          int64_t tables, int64_t memories);
    void (*store_delete)(void *store);
    void (*set_epoch_deadline)(void *ctx, uint64_t ticks);
    void *(*instantiate)(void *linker, void *ctx, void *component, wasm_handle_t *instance);
    bool (*get_func)(wasm_handle_t *instance, void *ctx, void *export_index, wasm_handle_t *func);
    void (*increment_epoch)(void *engine);
} api_t;

extern api_t W;
extern PyObject *GuestTrap;   /* edgenode.functions.capi.GuestTrap */
extern PyObject *MultiDict;   /* multidict.CIMultiDict */

/* --- resource types (wasmtime host resource type ids) ----------------------------------- */
enum {
    T_POLLABLE = 1, T_IO_ERROR = 2, T_INPUT_STREAM = 3, T_OUTPUT_STREAM = 4,
    T_FIELDS = 10, T_INCOMING_REQUEST = 11, T_RESPONSE_OUTPARAM = 14, T_INCOMING_BODY = 16,
    T_FUTURE_TRAILERS = 17, T_OUTGOING_RESPONSE = 18, T_OUTGOING_BODY = 19,
    T_MAX = 64
};
/* WIT names by type id, for error messages (Python-defined types register theirs) */
extern const char *type_names[T_MAX];

/* --- the resource table (hostcall_table.c) ----------------------------------------------- */
typedef struct {
    PyObject *obj;      /* NULL: free */
    uint32_t rep, parent;
    uint8_t type;
    int32_t children;
} slot_t;

typedef struct {
    PyObject_HEAD
    slot_t *slots;      /* reps [base, base + len) */
    uint32_t base, len, cap;
    slot_t *old;        /* live reps below base (kept across reuse-mode requests) */
    uint32_t nold, capold;
    uint32_t next;
} TableObject;

extern PyTypeObject TableType;
/* add obj (a new reference is taken) as type `type` under `parent` (0: none); 0 on error */
uint32_t table_add(TableObject *t, PyObject *obj, uint8_t type, uint32_t parent);
/* the slot of `rep` with type `type` (any type: 0), else NULL with GuestTrap set */
slot_t *table_get(TableObject *t, uint32_t rep, uint8_t type);
/* remove a resource whose ownership passes to the host; returns a new reference */
PyObject *table_take(TableObject *t, uint32_t rep, uint8_t type);
/* the guest dropped its handle */
int table_drop(TableObject *t, uint32_t rep);
/* forget reps >= first (what a request created and the guest kept): their count, or -1 */
int table_forget_from(TableObject *t, uint32_t first);

/* --- the per-request call state (hostcall_table.c) --------------------------------------- */
typedef struct {
    PyObject_HEAD
    TableObject *table;        /* of the instance the request runs on */
    void *ctx;                 /* its wasmtime context while the guest runs */
    double timeout, deadline;  /* wall-clock limit, and when it passes (monotonic s) */
    int cancelled, threaded;
    int64_t max_body_bytes;
    PyObject *head;            /* (status, CIMultiDict, sink | None, error | None), or None */
    PyObject *on_head;         /* called with head once set (threaded requests) */
    PyObject *body_relay;      /* response body chunks go here instead of a buffer, or None */
    double host_s, guest_s;    /* time in host functions, in guest code */
    long host_calls, python_calls;
    pthread_mutex_t mu;        /* waking a guest blocked in poll/blocking-read */
    pthread_cond_t cond;
    uint64_t generation;
} CallObject;

extern PyTypeObject CallType;
/* the request whose guest runs on this thread */
extern _Thread_local CallObject *current_call;
double now_monotonic(void);
void call_notify(CallObject *c);
/* wait until ready(arg) (evaluated with the GIL), a timer `until` (<0: none), the wall
 * clock deadline or cancellation; -1 with GuestTrap set when it can never be ready or
 * the request ended */
typedef int (*ready_fn)(void *arg);
int call_wait(CallObject *c, ready_fn ready, void *arg, double until);

/* --- bytes in and out, and the native resources (hostcall_io.c) ---------------------------- */
typedef struct {
    PyObject_HEAD
    PyObject *chunks;          /* list of bytes; chunks[head] is read from `offset` */
    Py_ssize_t head, offset;
    int eof;
    PyObject *error;           /* str or None */
    PyObject *trailers;        /* CIMultiDict or None */
    CallObject *call;          /* woken when data arrives, or NULL */
} SourceObject;

typedef struct {
    PyObject_HEAD
    char *buf;
    Py_ssize_t len, cap;
    int64_t size, limit;
    int closed;
    PyObject *relay;           /* called with each chunk (and None at the end), or None */
    PyObject *on_close;        /* called with the sink when its body is finished, or None */
    PyObject *trailers;        /* list of (name, bytes) or None */
} SinkObject;

/* every native resource but fields: what `a` and `b` hold depends on the resource type */
typedef struct {
    PyObject_HEAD
    PyObject *a, *b;
    double until;              /* a timer pollable's instant */
    int kind;                  /* a pollable's kind (P_*) */
    int flags;                 /* consumed / streamed / written / taken */
    int status;                /* an outgoing response's status */
} NativeObject;
enum { P_ALWAYS, P_TIMER, P_SOURCE, P_SOURCE_EOF, P_PYTHON };

extern PyTypeObject SourceType, SinkType, NativeType, FieldsType;
NativeObject *native_new(PyObject *a, PyObject *b);
int source_ready(void *source);
int source_eof(void *source);
/* n bytes, `stride` apart (1, or sizeof(val_t) for the u8 values of a list<u8>) */
int sink_write(SinkObject *s, const uint8_t *data, size_t n, size_t stride);
int sink_close(SinkObject *s);
PyObject *sink_new(int64_t limit, PyObject *relay);
PyObject *source_new(PyObject *data, CallObject *call);

/* --- native host functions ------------------------------------------------------------------ */
/* 0, or -1 with a Python error set (a GuestTrap traps with its message) */
typedef int (*native_fn)(CallObject *c, val_t *args, val_t *results);
typedef struct { const char *iface, *name; native_fn fn; } native_t;
extern const native_t io_natives[], http_natives[];

/* argument and result helpers (hostcall_values.c; ret_own_new in hostcall_table.c); those
 * returning int give -1 with a Python error set.  A result written with a payload moves the
 * payload (wasmtime frees it). */
int arg_rep(CallObject *c, val_t *v, uint32_t *rep);
int arg_opt_rep(CallObject *c, val_t *v, uint32_t *rep);   /* none: 0 */
int ret_own(CallObject *c, val_t *out, uint32_t rep, uint8_t type);
/* the host resource `rep` of type `ty` as a guest handle in `ctx` (owned or borrowed) */
int put_resource(void *ctx, bool owned, uint32_t rep, uint32_t ty, val_t *out);
/* add obj (a new reference, stolen) to the table and return it as own<type> */
int ret_own_new(CallObject *c, val_t *out, PyObject *obj, uint8_t type, uint32_t parent);
void ret_bool(val_t *out, bool b);
void ret_u16(val_t *out, uint16_t x);
void ret_u32(val_t *out, uint32_t x);
void ret_u64(val_t *out, uint64_t x);
void ret_string(val_t *out, const char *s, size_t n);
void ret_bytes(val_t *out, const uint8_t *data, size_t n);
void ret_case(val_t *out, const char *name, val_t *payload);  /* variant case, payload or NULL */
void ret_result(val_t *out, bool ok, val_t *payload);
void ret_option(val_t *out, val_t *payload);                  /* NULL: none */
void ret_list(val_t *out, size_t n);                          /* n zeroed items to fill */
void ret_tuple(val_t *out, size_t n);
void ret_record(val_t *out, size_t n, const char *const *names);

#endif
