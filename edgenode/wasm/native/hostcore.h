/* Shared declarations of the Proxy-Wasm host core (the _hostcore extension).
 *
 * The core runs a whole hook per Python->native transition: it calls the guest through
 * wasmtime's unchecked C API and answers the hot host functions itself (header maps,
 * body buffers, log level), falling back to the Python implementation of every host
 * function for the rest (hostcalls/).  See native.py for the Python side. */
#ifndef EDGENODE_HOSTCORE_H
#define EDGENODE_HOSTCORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "wasmtime_api.h"

/* Proxy-Wasm statuses the core returns */
enum { ST_OK = 0, ST_NOT_FOUND = 1, ST_BAD_ARGUMENT = 2, ST_INVALID_MEMORY_ACCESS = 6 };

/* A host function result meaning "run the Python implementation" */
#define HC_FALLBACK INT64_MIN

typedef struct {
    wt_func func;
    int nparams;
    int nresults;
    PyObject *name; /* str, for trap messages */
} Hook;

/* One filter's stream: the Proxy-Wasm stream context and its driver's state in one object
 * (stream.c; contexts.StreamContext and stream.StreamDriver are its Python subclasses).
 * Object fields NULL read as None. */
typedef struct {
    PyObject_HEAD
    PyObject *dict; /* the rarely set state (holds, trailers), contexts._StreamDefaults */
    /* request_block / response_block: NULL until a call needs them (hc_stream_block) */
    PyObject *vm, *ex, *cfg, *request, *root, *request_block, *response, *response_block;
    PyObject *key; /* the context id as the VM's ``contexts`` holds it (register()), NULL before */
    PyObject *local_response, *paused, *request_body, *response_body;
    long long id;
    char request_headers_open, response_headers_open, response_started, in_log, closed, continued,
        done_pending, finished;
} StreamCore;

/* A filter VM's state every stream reads (vmcore.c; vm.Vm is its Python subclass).
 * NULL: not assigned yet. */
typedef struct {
    PyObject_HEAD
    PyObject *failed, *plugin, *inst, *root, *contexts, *ids, *on_idle, *closed, *opens, *active_streams;
} VmCore;

typedef struct Instance {
    PyObject_HEAD
    wasmtime_store_t *store;
    wasmtime_context_t *ctx;
    wt_instance instance;
    wt_memory memory;
    /* linear memory's base (fixed: engine.CODEGEN_SETTINGS has memory_may_move off) and
     * its size when last read (hc_mem reads it again only for an access beyond it: a
     * linear memory never shrinks) */
    uint8_t *mem_base;
    size_t mem_size;
    Hook *hooks;
    int nhooks;
    int alloc_hook; /* malloc / proxy_on_memory_allocate, -1: none */
    uint64_t deadline;
    int log_level;
    int v010;
    int depth;            /* guest calls in progress on this instance */
    int delete_pending;   /* delete() came during a call: drop the store when it returns */
    PyObject *owner;      /* the Python Vm: hostcalls.CURRENT while Python host functions run */
    PyObject *effective;  /* the context host functions act on, None between calls */
    /* the stream callbacks (engine.STREAM_PHASES order: hook id, -1 not exported) and
     * their histograms, set once by set_stream_hooks() so a stream's calls pass neither */
    int stream_ids[7];
    PyObject *stream_stats[7];
    PyObject *metrics; /* the owner's filter's MetricTable, found at the first metric call */
    /* the snapshot's mutable globals (reset.c): the export names they were found by, and
     * their handles, so a reset writes them without a lookup by name */
    PyObject *global_names;
    wt_extern *globals;
    Py_ssize_t nglobals;
} Instance;

typedef struct {
    PyObject_HEAD
    PyObject *view;    /* RequestHeaders / ResponseHeaders: writes go through it (lazy) */
    PyObject *message; /* the Request / Response */
    int is_request;
    PyObject *wire;    /* the map serialised (Proxy-Wasm format); NULL: stale */
    uint32_t *index;   /* per pair: key offset, key length, value offset, value length */
    Py_ssize_t n;
    /* what the serialisation was built from */
    PyObject *headers;
    unsigned long long version;
    PyObject *method, *target, *scheme;
    long status;
    unsigned long long checked; /* hc_serial when last found current */
} HeaderBlock;

typedef struct {
    PyObject_HEAD
    int nb;
    double *bounds;
    unsigned long long *counts; /* nb + 1 */
    double sum;
    unsigned long long count;
    PyObject *key; /* (filter, phase): the Exchange.timings key, or None */
    Py_hash_t key_hash; /* its hash, once: a tuple's is not cached, and every callback updates the entry */
} Histogram;

typedef struct {
    PyObject_HEAD
    Py_ssize_t n, cap;
    struct Metric *items;
} MetricTable;

extern PyTypeObject InstanceType, HeaderBlockType, HistogramType, MetricTableType, StreamCoreType, VmCoreType,
    StreamOpenerType;

/* globals.c: set up by setup() (module.c) */
extern PyObject *hc_GuestTrap, *hc_HostTrap, *hc_MemoryFault, *hc_getversion, *hc_report,
    *hc_current_dict, *hc_instantiate_error;
/* globals.c: interned attribute names, made by hc_intern_names() at import (0, or -1 with a
 * Python error set) */
int hc_intern_names(void);
extern PyObject *s_is_root, *s_request_block, *s_response_block, *s_request_headers_open,
    *s_response_headers_open, *s_in_log, *s_request_body, *s_response_body, *s_headers, *s_method,
    *s_target, *s_scheme, *s_status, *s_items, *s_add, *s_replace, *s_remove, *s_set_pairs, *s_popall, *s_continued, *s_response_trailers, *s_writable,
    *s_CURRENT, *s_host, *s_get, *s_exchange, *s_wire_head, *s_props, *s_request, *s_path, *s_query,
    *s_version, *s_request_id, *s_x_request_id, *s_id, *s_client, *s_local, *s_empty, *s_plugin, *s_metrics,
    *s_table, *s_effects, *s_raw;

/* globals.c: multidict's C API, looked up by setup() (1 found, 0 not: the Python calls) */
int hc_multidict_setup(void);
/* a field map's version (multidict.getversion): 0, or -1 with an exception */
int hc_md_version(PyObject *headers, unsigned long long *out);
/* headers.add(key, value): 0, or -1 with an exception (a subclass's own ``add`` is called) */
int hc_md_add(PyObject *headers, PyObject *key, PyObject *value);
/* globals.c: the instance whose guest call is in progress (calls never nest across instances) */
extern Instance *hc_current;
/* advanced whenever Python code may have run (a call starts, a Python host function
 * ran): a block checked at the current serial is still current */
extern unsigned long long hc_serial;

/* instance.c (the type's methods: hc_instance_methods here, hc_reset_methods in reset.c,
 * hc_stream_instance_methods in stream.c; module.c joins them) */
extern PyMethodDef hc_instance_methods[];
int hc_int_args(PyObject *const *args, Py_ssize_t n, int64_t *out);
void hc_forget_globals(Instance *self); /* the snapshot globals' handles reset.c keeps */
wasm_trap_t *hc_trap_from_text(const char *text);
wasm_trap_t *hc_trap_from_pyerr(PyObject *fn_name);
void hc_instantiate_failed(wasmtime_error_t *err);
int64_t hc_guest_alloc(Instance *inst, uint32_t size, wasm_trap_t **trap);
uint8_t *hc_mem(Instance *inst, uint64_t ptr, uint64_t len);
/* v: ctx_id, root_id, nheaders, eos (< 0: ABI 0.1.0); the headers result, NULL with GuestTrap */
PyObject *hc_open_stream(Instance *self, PyObject *ctx, PyObject *timings, const int64_t *v);
typedef struct {
    long action;
    int stage, ended;
    PyObject *buffer; /* a new reference, or NULL */
} HcResponded;
/* v: ctx_id, nheaders, eos (< 0: ABI 0.1.0), body_size; 0, or -1 with GuestTrap */
int hc_respond(Instance *self, StreamCore *ctx, PyObject *timings, const int64_t *v, HcResponded *out);

/* headers.c */
PyObject *hc_block_new(PyObject *message, int is_request);
int hc_block_fresh(HeaderBlock *b);
PyObject *hc_block_view(HeaderBlock *b); /* borrowed; NULL with an exception */
PyObject *hc_set_view_types(PyObject *self, PyObject *args);
const char *hc_block_lookup(HeaderBlock *b, const char *key, size_t klen, size_t *vlen);
int hc_block_value(HeaderBlock *b, const char *key, size_t klen, PyObject **owner, const char **value,
                   size_t *vlen);
/* The parsed (name, value) bytes pairs of a request whose fields multidict is not made yet
 * (messages.RawRequest): a new reference; NULL when it is not one (an exception set when
 * reading them failed). */
PyObject *hc_raw_pairs(PyObject *request);
/* hc_block_value's answer from the request itself, for a request no call serialised
 * (``key`` lower-case ASCII) */
int hc_request_value(PyObject *request, const char *key, size_t klen, PyObject **owner, const char **value,
                     size_t *vlen);
/* The first value of lower-case ``key`` among such pairs: 1 and *value (held by *owner, a
 * new reference), 0 not found, -1 with an exception set. */
int hc_pairs_get(PyObject *pairs, const char *key, size_t klen, PyObject **owner, const char **value,
                 size_t *vlen);

/* attrs.c: a ``__slots__`` attribute read by the offset a call site remembered for the type
 * it last saw (PyObject_GetAttr for anything else; the same result either way). */
typedef struct {
    PyTypeObject *type;
    unsigned int version; /* the type's tp_version_tag when the offset was found */
    Py_ssize_t offset;
} HcSlot;
PyObject *hc_slot_get(PyObject *o, PyObject *name, HcSlot *cache);
/* o.name through a cache of this call site's own (a new reference, NULL with an exception) */
#define HC_SLOT(o, name)                      \
    ({                                        \
        static HcSlot hc_slot_site_;          \
        hc_slot_get((o), (name), &hc_slot_site_); \
    })
/* o.name = v the same way (0, or -1 with an exception) */
int hc_slot_set(PyObject *o, PyObject *name, PyObject *v, HcSlot *cache);
#define HC_SLOT_SET(o, name, v)                       \
    ({                                                \
        static HcSlot hc_slot_site_;                  \
        hc_slot_set((o), (name), (v), &hc_slot_site_); \
    })

/* hostfns.c */
int64_t hc_native(int id, Instance *inst, wt_val_raw *raw, wasm_trap_t **trap, PyObject *fn_name);
PyObject *hc_define(PyObject *self, PyObject *args);
PyObject *hc_set_property_functions(PyObject *self, PyObject *args);
int hc_native_id(const char *name);
PyObject *hc_native_property_names(void);

/* histogram.c */
void hc_observe(Histogram *h, double value);

/* metrics.c: statuses */
int hc_metric_increment(MetricTable *t, uint32_t mid, int64_t delta);
int hc_metric_record(MetricTable *t, uint32_t mid, uint64_t value);
int hc_metric_get(MetricTable *t, uint32_t mid, uint64_t *out);

/* stream.c */
PyObject *hc_stream_setup(PyObject *self, PyObject *args);
/* map 0's / 2's block of a stream, made on first use (borrowed; NULL without an error: no
 * such message yet) */
HeaderBlock *hc_stream_block(StreamCore *s, int response);
extern PyMethodDef hc_stream_instance_methods[];

/* ticker.c */
PyObject *hc_ticker_add(PyObject *self, PyObject *args);
PyObject *hc_ticker_remove(PyObject *self, PyObject *arg);

#endif
