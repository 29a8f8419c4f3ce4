/*
 * edgenode C SDK for Proxy-Wasm filters (ABI v0.2.1, wasm32-wasi reactor).
 *
 * A filter module defines one or more `pw_filter` tables and lists them in
 *
 *     const pw_filter *const pw_filters[] = { &my_filter, NULL };
 *
 * The SDK owns every proxy_on_* export, the allocator exports and the context
 * bookkeeping; it calls the filter's hooks with a `pw_root` (one per plugin /
 * root context, holding the parsed configuration) or a `pw_stream` (one per
 * HTTP request).  The hook table is chosen by the plugin's root_id, so one
 * module can serve several chain stages (e.g. "image-accept" and "image").
 *
 * Memory returned by the host (header values, bodies, properties) is always
 * NUL-terminated by the SDK's allocator and owned by the caller: release it
 * with pw_bytes_free / pw_headers_free.
 *
 * Build: see filters/Makefile (zig cc --target=wasm32-wasi -mexec-model=reactor).
 */
#ifndef EDGENODE_PROXY_WASM_H
#define EDGENODE_PROXY_WASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- ABI enums (docs: /work/shared/docs/proxy-wasm-abi.md §1) ---------------- */

typedef enum {
    PW_OK = 0, PW_NOT_FOUND = 1, PW_BAD_ARGUMENT = 2, PW_SERIALIZATION_FAILURE = 3,
    PW_PARSE_FAILURE = 4, PW_INVALID_MEMORY_ACCESS = 6, PW_EMPTY = 7, PW_CAS_MISMATCH = 8,
    PW_INTERNAL_FAILURE = 10, PW_BROKEN_CONNECTION = 11, PW_UNIMPLEMENTED = 12
} pw_status;

typedef enum {
    PW_LOG_TRACE = 0, PW_LOG_DEBUG = 1, PW_LOG_INFO = 2, PW_LOG_WARN = 3,
    PW_LOG_ERROR = 4, PW_LOG_CRITICAL = 5
} pw_log_level;

/* Return values of the stream hooks (Envoy's FilterHeadersStatus / FilterDataStatus). */
typedef enum {
    PW_CONTINUE = 0,
    /* headers: pause; as StopAllIterationAndWatermark (no body callbacks until
     * pw_continue_stream) unless the stage sets allow_on_headers_stop_iteration, then the
     * body callbacks go on while the headers are held; body: pause and buffer */
    PW_STOP_ITERATION = 1,
    /* headers: pause; the body is buffered, no body callbacks until pw_continue_stream */
    PW_STOP_ALL_ITERATION_AND_BUFFER = 3
} pw_action;

typedef enum {
    PW_BUFFER_REQUEST_BODY = 0, PW_BUFFER_RESPONSE_BODY = 1,
    PW_BUFFER_HTTP_CALL_RESPONSE_BODY = 4, PW_BUFFER_VM_CONFIGURATION = 6,
    PW_BUFFER_PLUGIN_CONFIGURATION = 7
} pw_buffer_type;

typedef enum {
    PW_MAP_REQUEST_HEADERS = 0, PW_MAP_REQUEST_TRAILERS = 1,
    PW_MAP_RESPONSE_HEADERS = 2, PW_MAP_RESPONSE_TRAILERS = 3,
    PW_MAP_HTTP_CALL_RESPONSE_HEADERS = 6, PW_MAP_HTTP_CALL_RESPONSE_TRAILERS = 7
} pw_map_type;

typedef enum { PW_STREAM_REQUEST = 0, PW_STREAM_RESPONSE = 1 } pw_stream_type;

typedef enum { PW_METRIC_COUNTER = 0, PW_METRIC_GAUGE = 1, PW_METRIC_HISTOGRAM = 2 } pw_metric_type;

/* ---- Owned byte strings and header lists ------------------------------------- */

/* Owned bytes; `data` is NUL-terminated (data[len] == 0) unless NULL (len 0). */
typedef struct { char *data; size_t len; } pw_bytes;

void pw_bytes_free(pw_bytes *b);

typedef struct { char *key; size_t key_len; char *value; size_t value_len; } pw_pair;

/* An ordered header list (keys and values are owned, NUL-terminated copies). */
typedef struct { pw_pair *items; size_t count; size_t cap; } pw_headers;

void pw_headers_add(pw_headers *h, const char *key, size_t key_len, const char *value, size_t value_len);
void pw_headers_add_cstr(pw_headers *h, const char *key, const char *value);
/* First pair whose key equals `key` case-insensitively, or NULL. */
const pw_pair *pw_headers_find(const pw_headers *h, const char *key);
void pw_headers_free(pw_headers *h);
/* Serialize to the ABI map encoding; the result is malloc'ed (caller frees). */
uint8_t *pw_headers_serialize(const pw_headers *h, size_t *out_len);
/* Parse the ABI map encoding into `out` (appends). False on malformed input. */
bool pw_headers_deserialize(const uint8_t *data, size_t len, pw_headers *out);

/* The ABI map encoding read in place: each pair's key and value point into the buffer
 * (lengths, not NULs, end them), without a copy or an allocation per pair. */
typedef struct { const uint8_t *data; uint32_t n, i; size_t at; } pw_pairs;
/* Checks the whole encoding first: false on malformed input (nothing to read then). */
bool pw_pairs_open(pw_pairs *it, const uint8_t *data, size_t len);
/* The next pair (pointing into the buffer); false after the last. */
bool pw_pairs_next(pw_pairs *it, pw_pair *out);

/* ---- Contexts and the filter table -------------------------------------------- */

typedef struct pw_root pw_root;
typedef struct pw_stream pw_stream;

struct pw_root {
    uint32_t id;
    const struct pw_filter *filter;
    void *user;           /* filter-owned per-plugin state (e.g. parsed config) */
};

struct pw_stream {
    uint32_t id;
    pw_root *root;
    void *user;           /* filter-owned per-request state */
};

typedef struct pw_filter {
    /* Matched against the plugin_root_id property; NULL matches any root_id. */
    const char *root_id;
    /* Plugin configuration (NUL-terminated, may be empty). Return false to reject it. */
    bool (*on_configure)(pw_root *root, const char *config, size_t config_len);
    void (*on_root_delete)(pw_root *root);
    void (*on_tick)(pw_root *root);
    pw_action (*on_request_headers)(pw_stream *s, size_t num_headers, bool end_of_stream);
    pw_action (*on_request_body)(pw_stream *s, size_t body_size, bool end_of_stream);
    pw_action (*on_response_headers)(pw_stream *s, size_t num_headers, bool end_of_stream);
    pw_action (*on_response_body)(pw_stream *s, size_t body_size, bool end_of_stream);
    /* A callout dispatched with pw_http_call(s, ...) finished; num_headers == 0 means it
     * failed.  The stream is the effective context, so stream headers can be changed
     * and pw_continue_stream / pw_send_local_response used. Not called if the stream
     * is already gone. */
    void (*on_http_call_response)(pw_stream *s, uint32_t token, size_t num_headers,
                                  size_t body_size, size_t num_trailers);
    void (*on_log)(pw_stream *s);
    /* Last call for a stream: free s->user here. */
    void (*on_stream_delete)(pw_stream *s);
} pw_filter;

/* Defined by the filter module: NULL-terminated list of hook tables. */
extern const pw_filter *const pw_filters[];

/* The per-stream hooks the module exports.  A Proxy-Wasm host calls only the hooks a
 * module exports (Envoy: an absent export is not called), and each exported one is a guest
 * call per request even when it does nothing, so a module whose filters leave hooks unset
 * lists the ones they define in a `pw_hooks.h` next to its sources (the build puts the
 * module's directory on the include path):
 *
 *     #define PW_HOOKS (PW_HOOK_REQUEST_HEADERS | PW_HOOK_RESPONSE_HEADERS)
 *
 * Without it every hook is exported.  A filter whose hook is not exported fails its
 * configuration (logged), rather than silently not being called. */
#define PW_HOOK_REQUEST_HEADERS  0x01
#define PW_HOOK_REQUEST_BODY     0x02
#define PW_HOOK_RESPONSE_HEADERS 0x04
#define PW_HOOK_RESPONSE_BODY    0x08
#define PW_HOOK_LOG              0x10
#define PW_HOOK_ALL              0x1f

/* ---- Logging ------------------------------------------------------------------ */

void pw_log(pw_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define pw_debug(...) pw_log(PW_LOG_DEBUG, __VA_ARGS__)
#define pw_info(...)  pw_log(PW_LOG_INFO, __VA_ARGS__)
#define pw_warn(...)  pw_log(PW_LOG_WARN, __VA_ARGS__)
#define pw_error(...) pw_log(PW_LOG_ERROR, __VA_ARGS__)

/* ---- Headers (maps) ------------------------------------------------------------ */

/* Value of `name` (lower-case) in `map`; false if absent. `out` must be freed. */
bool pw_get_header(pw_map_type map, const char *name, pw_bytes *out);
pw_status pw_set_header(pw_map_type map, const char *name, const char *value, size_t value_len);
pw_status pw_set_header_cstr(pw_map_type map, const char *name, const char *value);
pw_status pw_add_header(pw_map_type map, const char *name, const char *value, size_t value_len);
pw_status pw_remove_header(pw_map_type map, const char *name);
/* All pairs of `map` (appended to `out`); false if the map is unavailable. */
bool pw_get_headers(pw_map_type map, pw_headers *out);
/* `map` in the ABI map encoding, the host's one copy (read it with pw_pairs_open, free it
 * with pw_bytes_free); false if the map is unavailable. */
bool pw_get_header_pairs(pw_map_type map, pw_bytes *out);
pw_status pw_set_headers(pw_map_type map, const pw_headers *h);

/* ---- Buffers (bodies, configuration) -------------------------------------------- */

/* Up to `max` bytes from `start`; an empty buffer gives true with len 0. */
bool pw_get_buffer(pw_buffer_type type, size_t start, size_t max, pw_bytes *out);
/* Replace `size` bytes at `start` with data (replace all: start 0, size = current length). */
pw_status pw_set_buffer(pw_buffer_type type, size_t start, size_t size, const void *data, size_t data_len);

/* ---- Stream control --------------------------------------------------------------- */

pw_status pw_continue_stream(pw_stream_type type);
pw_status pw_close_stream(pw_stream_type type);
/* Answer the request locally. `headers` may be NULL; `details` is a log-only reason. */
pw_status pw_send_local_response(uint32_t status, const char *body, size_t body_len,
                                 const pw_headers *headers, const char *details);

/* ---- Properties ------------------------------------------------------------------ */

/* `path` is dotted ("request.path", "edgenode.origin"); the SDK encodes the segments
 * NUL-separated as the ABI requires.  Values are raw bytes. */
bool pw_get_property(const char *path, pw_bytes *out);
pw_status pw_set_property(const char *path, const char *value, size_t value_len);

/* ---- Foreign functions ----------------------------------------------------------- */

/* Call a host function by name (docs/filters-abi.md lists the node's: compress,
 * uncompress, edgenode.image_info, edgenode.purge).  On PW_OK `out` holds the result
 * (free it with pw_bytes_free); PW_NOT_FOUND means the host has no such function. */
pw_status pw_call_foreign_function(const char *name, const void *args, size_t args_len,
                                   pw_bytes *out);

/* ---- HTTP callouts ---------------------------------------------------------------- */

/* Call the named upstream; `headers` must contain :method, :path and :authority.
 * The response is delivered to the filter's on_http_call_response for stream `s`. */
pw_status pw_http_call(pw_stream *s, const char *upstream, const pw_headers *headers,
                       const void *body, size_t body_len, uint32_t timeout_ms, uint32_t *token);

/* ---- Metrics, shared data, time, randomness ---------------------------------------- */

pw_status pw_define_metric(pw_metric_type type, const char *name, uint32_t *id);
pw_status pw_increment_metric(uint32_t id, int64_t delta);
pw_status pw_record_metric(uint32_t id, uint64_t value);
bool pw_get_shared_data(const char *key, pw_bytes *out, uint32_t *cas);
pw_status pw_set_shared_data(const char *key, const void *value, size_t len, uint32_t cas);
pw_status pw_set_tick_period_ms(uint32_t ms);
uint64_t pw_now_ns(void);
uint32_t pw_random_u32(void);

#ifdef __cplusplus
}
#endif
#endif
