/*
 * edgenode C SDK: the Proxy-Wasm exports, context bookkeeping and host-call wrappers.
 * See proxy_wasm.h for the API; ABI facts from /work/shared/docs/proxy-wasm-abi.md.
 */
#include "proxy_wasm.h"
#if __has_include("pw_hooks.h")
#include "pw_hooks.h"
#endif
#ifndef PW_HOOKS
#define PW_HOOKS PW_HOOK_ALL
#endif

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__wasm__)
#define PW_IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
#define PW_EXPORT(name) __attribute__((export_name(#name)))
#else
#define PW_IMPORT(name)
#define PW_EXPORT(name)
#endif

/* ---- host imports (all return proxy_status_t) ------------------------------------- */

PW_IMPORT(proxy_log) int32_t proxy_log(int32_t level, const char *msg, size_t len);
PW_IMPORT(proxy_get_buffer_bytes) int32_t proxy_get_buffer_bytes(int32_t type, size_t start, size_t max,
                                                                 char **ret_ptr, size_t *ret_size);
PW_IMPORT(proxy_set_buffer_bytes) int32_t proxy_set_buffer_bytes(int32_t type, size_t start, size_t size,
                                                                 const void *data, size_t data_size);
PW_IMPORT(proxy_get_header_map_pairs) int32_t proxy_get_header_map_pairs(int32_t map, char **ret_ptr,
                                                                         size_t *ret_size);
PW_IMPORT(proxy_set_header_map_pairs) int32_t proxy_set_header_map_pairs(int32_t map, const void *ptr,
                                                                         size_t size);
PW_IMPORT(proxy_get_header_map_value) int32_t proxy_get_header_map_value(int32_t map, const char *key,
                                                                         size_t key_size, char **ret_ptr,
                                                                         size_t *ret_size);
PW_IMPORT(proxy_add_header_map_value) int32_t proxy_add_header_map_value(int32_t map, const char *key,
                                                                         size_t key_size, const char *value,
                                                                         size_t value_size);
PW_IMPORT(proxy_replace_header_map_value) int32_t proxy_replace_header_map_value(int32_t map, const char *key,
                                                                                 size_t key_size,
                                                                                 const char *value,
                                                                                 size_t value_size);
PW_IMPORT(proxy_remove_header_map_value) int32_t proxy_remove_header_map_value(int32_t map, const char *key,
                                                                               size_t key_size);
PW_IMPORT(proxy_continue_stream) int32_t proxy_continue_stream(int32_t type);
PW_IMPORT(proxy_close_stream) int32_t proxy_close_stream(int32_t type);
PW_IMPORT(proxy_send_local_response) int32_t proxy_send_local_response(uint32_t status, const char *details,
                                                                       size_t details_size, const char *body,
                                                                       size_t body_size, const void *headers,
                                                                       size_t headers_size, int32_t grpc);
PW_IMPORT(proxy_call_foreign_function) int32_t proxy_call_foreign_function(const char *name, size_t name_len,
        const void *args, size_t args_len, char **ret_ptr, size_t *ret_size);
PW_IMPORT(proxy_get_property) int32_t proxy_get_property(const char *path, size_t path_size, char **ret_ptr,
                                                         size_t *ret_size);
PW_IMPORT(proxy_set_property) int32_t proxy_set_property(const char *path, size_t path_size, const char *value,
                                                         size_t value_size);
PW_IMPORT(proxy_http_call) int32_t proxy_http_call(const char *up, size_t up_size, const void *hdrs,
                                                   size_t hdrs_size, const void *body, size_t body_size,
                                                   const void *trl, size_t trl_size, uint32_t timeout_ms,
                                                   uint32_t *token);
PW_IMPORT(proxy_set_effective_context) int32_t proxy_set_effective_context(uint32_t ctx);
PW_IMPORT(proxy_define_metric) int32_t proxy_define_metric(int32_t type, const char *name, size_t name_size,
                                                           uint32_t *id);
PW_IMPORT(proxy_increment_metric) int32_t proxy_increment_metric(uint32_t id, int64_t delta);
PW_IMPORT(proxy_record_metric) int32_t proxy_record_metric(uint32_t id, uint64_t value);
PW_IMPORT(proxy_get_shared_data) int32_t proxy_get_shared_data(const char *key, size_t key_size, char **ret_ptr,
                                                               size_t *ret_size, uint32_t *cas);
PW_IMPORT(proxy_set_shared_data) int32_t proxy_set_shared_data(const char *key, size_t key_size, const void *value,
                                                               size_t size, uint32_t cas);
PW_IMPORT(proxy_set_tick_period_milliseconds) int32_t proxy_set_tick_period_milliseconds(uint32_t ms);
PW_IMPORT(proxy_get_current_time_nanoseconds) int32_t proxy_get_current_time_nanoseconds(uint64_t *ret);

/* ---- allocator exports ------------------------------------------------------------ */

/* One spare byte so every host-written value is NUL-terminated for C callers
 * (size + 1 must not wrap: a wrapped malloc(0) would be written past its end). */
static void *alloc_for_host(size_t size) {
    if (size == SIZE_MAX) return NULL;
    char *p = malloc(size + 1);
    if (p) p[size] = 0;
    return p;
}

PW_EXPORT(proxy_on_memory_allocate) void *pw_export_memory_allocate(size_t size) { return alloc_for_host(size); }
/* cpp-host looks up `malloc` before proxy_on_memory_allocate; both behave the same. */
PW_EXPORT(malloc) void *pw_export_malloc(size_t size) { return alloc_for_host(size); }

PW_EXPORT(proxy_abi_version_0_2_1) void pw_export_abi_version(void) {}

/* ---- owned bytes and header lists ------------------------------------------------------ */

void pw_bytes_free(pw_bytes *b) {
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

static char *dup_n(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) abort();
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void pw_headers_add(pw_headers *h, const char *key, size_t key_len, const char *value, size_t value_len) {
    if (h->count == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->items = realloc(h->items, h->cap * sizeof *h->items);
        if (!h->items) abort();
    }
    pw_pair *p = &h->items[h->count++];
    p->key = dup_n(key, key_len);
    p->key_len = key_len;
    p->value = dup_n(value, value_len);
    p->value_len = value_len;
}

void pw_headers_add_cstr(pw_headers *h, const char *key, const char *value) {
    pw_headers_add(h, key, strlen(key), value, strlen(value));
}

const pw_pair *pw_headers_find(const pw_headers *h, const char *key) {
    size_t n = strlen(key);
    for (size_t i = 0; i < h->count; i++)
        if (h->items[i].key_len == n && strncasecmp(h->items[i].key, key, n) == 0) return &h->items[i];
    return NULL;
}

void pw_headers_free(pw_headers *h) {
    for (size_t i = 0; i < h->count; i++) {
        free(h->items[i].key);
        free(h->items[i].value);
    }
    free(h->items);
    h->items = NULL;
    h->count = h->cap = 0;
}

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = v & 0xff; p[1] = (v >> 8) & 0xff; p[2] = (v >> 16) & 0xff; p[3] = (v >> 24) & 0xff;
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint8_t *pw_headers_serialize(const pw_headers *h, size_t *out_len) {
    size_t n = h ? h->count : 0;
    size_t len = 4 + 8 * n;
    for (size_t i = 0; i < n; i++) len += h->items[i].key_len + h->items[i].value_len + 2;
    uint8_t *buf = malloc(len), *p = buf;
    if (!buf) abort();
    put_u32(p, (uint32_t)n);
    p += 4;
    for (size_t i = 0; i < n; i++, p += 8) {
        put_u32(p, (uint32_t)h->items[i].key_len);
        put_u32(p + 4, (uint32_t)h->items[i].value_len);
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(p, h->items[i].key, h->items[i].key_len);
        p += h->items[i].key_len;
        *p++ = 0;
        memcpy(p, h->items[i].value, h->items[i].value_len);
        p += h->items[i].value_len;
        *p++ = 0;
    }
    *out_len = len;
    return buf;
}

bool pw_pairs_open(pw_pairs *it, const uint8_t *data, size_t len) {
    *it = (pw_pairs){data, 0, 0, 0};
    if (len == 0) return true;
    if (len < 4) return false;
    uint32_t n = get_u32(data);
    if (n > (len - 4) / 8) return false;
    const uint8_t *sizes = data + 4, *p = data + 4 + 8 * (size_t)n, *end = data + len;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t kl = get_u32(sizes + 8 * i), vl = get_u32(sizes + 8 * i + 4);
        /* each string is followed by a NUL; compare without computing kl + 1, which
         * wraps to 0 for kl == UINT32_MAX where size_t is 32 bits (wasm32) */
        if ((size_t)(end - p) <= kl) return false;
        p += (size_t)kl + 1;
        if ((size_t)(end - p) <= vl) return false;
        p += (size_t)vl + 1;
    }
    it->n = n;
    it->at = 4 + 8 * (size_t)n;
    return true;
}

bool pw_pairs_next(pw_pairs *it, pw_pair *out) {
    if (it->i == it->n) return false;
    const uint8_t *sizes = it->data + 4 + 8 * (size_t)it->i++;
    size_t kl = get_u32(sizes), vl = get_u32(sizes + 4);
    out->key = (char *)it->data + it->at;
    out->key_len = kl;
    out->value = out->key + kl + 1;
    out->value_len = vl;
    it->at += kl + 1 + vl + 1;
    return true;
}

bool pw_headers_deserialize(const uint8_t *data, size_t len, pw_headers *out) {
    pw_pairs it;
    if (!pw_pairs_open(&it, data, len)) return false;
    for (pw_pair p; pw_pairs_next(&it, &p);) pw_headers_add(out, p.key, p.key_len, p.value, p.value_len);
    return true;
}

/* ---- context bookkeeping ----------------------------------------------------------- */

/* Contexts live in a small chained hash table keyed by id (ids are never reused). */
typedef struct ctx_entry {
    uint32_t id;
    bool is_root;
    union { pw_root root; pw_stream stream; } u;
    struct ctx_entry *next;
} ctx_entry;

#define CTX_BUCKETS 256
static ctx_entry *ctx_table[CTX_BUCKETS];

static ctx_entry *ctx_find(uint32_t id) {
    for (ctx_entry *e = ctx_table[id % CTX_BUCKETS]; e; e = e->next)
        if (e->id == id) return e;
    return NULL;
}

static ctx_entry *ctx_insert(uint32_t id, bool is_root) {
    ctx_entry *e = calloc(1, sizeof *e);
    if (!e) abort();
    e->id = id;
    e->is_root = is_root;
    e->next = ctx_table[id % CTX_BUCKETS];
    ctx_table[id % CTX_BUCKETS] = e;
    return e;
}

static void ctx_remove(uint32_t id) {
    for (ctx_entry **pp = &ctx_table[id % CTX_BUCKETS]; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            ctx_entry *e = *pp;
            *pp = e->next;
            free(e);
            return;
        }
    }
}

static pw_root *root_of(uint32_t id) {
    ctx_entry *e = ctx_find(id);
    return e && e->is_root ? &e->u.root : NULL;
}

static pw_stream *stream_of(uint32_t id) {
    ctx_entry *e = ctx_find(id);
    return e && !e->is_root ? &e->u.stream : NULL;
}

static const pw_filter *pick_filter(void) {
    size_t n = 0;
    while (pw_filters[n]) n++;
    if (n == 1) return pw_filters[0];
    pw_bytes rid = {0};
    const pw_filter *fallback = NULL, *found = NULL;
    bool have = pw_get_property("plugin_root_id", &rid);
    for (size_t i = 0; i < n && !found; i++) {
        const char *want = pw_filters[i]->root_id;
        if (!want) {
            if (!fallback) fallback = pw_filters[i];
        } else if (have && strlen(want) == rid.len && memcmp(want, rid.data, rid.len) == 0) {
            found = pw_filters[i];
        }
    }
    if (!found && !fallback)
        pw_error("no filter in this module for root_id '%s'", have ? rid.data : "");
    pw_bytes_free(&rid);
    return found ? found : fallback;
}

/* Whether the module exports every stream hook `f` defines (PW_HOOKS); logs the first
 * one it does not. */
static bool hooks_exported(const pw_filter *f) {
    static const struct { unsigned bit; const char *name; } hooks[] = {
        {PW_HOOK_REQUEST_HEADERS, "request_headers"}, {PW_HOOK_REQUEST_BODY, "request_body"},
        {PW_HOOK_RESPONSE_HEADERS, "response_headers"}, {PW_HOOK_RESPONSE_BODY, "response_body"},
        {PW_HOOK_LOG, "log"},
    };
    const bool defined[] = {f->on_request_headers, f->on_request_body, f->on_response_headers,
                            f->on_response_body, f->on_log};
    for (size_t i = 0; i < sizeof hooks / sizeof hooks[0]; i++) {
        if (defined[i] && !(PW_HOOKS & hooks[i].bit)) {
            pw_error("filter defines on_%s but its module does not export it (PW_HOOKS in pw_hooks.h)",
                     hooks[i].name);
            return false;
        }
    }
    return true;
}

/* Pending callouts: token -> stream id. */
typedef struct call_entry { uint32_t token, stream; struct call_entry *next; } call_entry;
static call_entry *calls;

/* ---- callback exports ----------------------------------------------------------------- */

PW_EXPORT(proxy_on_context_create) void pw_on_context_create(uint32_t id, uint32_t parent) {
    if (parent == 0) {
        ctx_entry *e = ctx_insert(id, true);
        e->u.root.id = id;
        e->u.root.filter = pick_filter();
        if (e->u.root.filter && !hooks_exported(e->u.root.filter)) e->u.root.filter = NULL;
        return;
    }
    pw_root *root = root_of(parent);
    ctx_entry *e = ctx_insert(id, false);
    e->u.stream.id = id;
    e->u.stream.root = root;
}

PW_EXPORT(proxy_on_vm_start) uint32_t pw_on_vm_start(uint32_t root, size_t size) {
    (void)root; (void)size;
    return 1;
}

PW_EXPORT(proxy_on_configure) uint32_t pw_on_configure(uint32_t id, size_t size) {
    pw_root *root = root_of(id);
    if (!root || !root->filter) return 0;
    if (!root->filter->on_configure) return 1;
    pw_bytes cfg = {0};
    if (size > 0 && !pw_get_buffer(PW_BUFFER_PLUGIN_CONFIGURATION, 0, size, &cfg)) {
        pw_error("cannot read the plugin configuration");
        return 0;
    }
    bool ok = root->filter->on_configure(root, cfg.data ? cfg.data : "", cfg.len);
    pw_bytes_free(&cfg);
    return ok;
}

PW_EXPORT(proxy_on_tick) void pw_on_tick(uint32_t id) {
    pw_root *root = root_of(id);
    if (root && root->filter && root->filter->on_tick) root->filter->on_tick(root);
}

static const pw_filter *filter_of(pw_stream *s) {
    return s && s->root ? s->root->filter : NULL;
}

#define STREAM_HOOK(export, hook)                                                     \
    PW_EXPORT(export) uint32_t pw_##export(uint32_t id, size_t n, uint32_t eos) {     \
        pw_stream *s = stream_of(id);                                                 \
        const pw_filter *f = filter_of(s);                                            \
        return f && f->hook ? (uint32_t)f->hook(s, n, eos != 0) : PW_CONTINUE;        \
    }

#if PW_HOOKS & PW_HOOK_REQUEST_HEADERS
STREAM_HOOK(proxy_on_request_headers, on_request_headers)
#endif
#if PW_HOOKS & PW_HOOK_REQUEST_BODY
STREAM_HOOK(proxy_on_request_body, on_request_body)
#endif
#if PW_HOOKS & PW_HOOK_RESPONSE_HEADERS
STREAM_HOOK(proxy_on_response_headers, on_response_headers)
#endif
#if PW_HOOKS & PW_HOOK_RESPONSE_BODY
STREAM_HOOK(proxy_on_response_body, on_response_body)
#endif

PW_EXPORT(proxy_on_http_call_response) void pw_on_http_call_response(uint32_t root_id, uint32_t token,
                                                                      size_t nh, size_t body, size_t nt) {
    (void)root_id;
    for (call_entry **pp = &calls; *pp; pp = &(*pp)->next) {
        if ((*pp)->token != token) continue;
        call_entry *c = *pp;
        *pp = c->next;
        pw_stream *s = stream_of(c->stream);
        free(c);
        const pw_filter *f = filter_of(s);
        if (f && f->on_http_call_response) {
            proxy_set_effective_context(s->id);
            f->on_http_call_response(s, token, nh, body, nt);
        }
        return;
    }
}

#if PW_HOOKS & PW_HOOK_LOG
PW_EXPORT(proxy_on_log) void pw_on_log(uint32_t id) {
    pw_stream *s = stream_of(id);
    const pw_filter *f = filter_of(s);
    if (f && f->on_log) f->on_log(s);
}
#endif

/* No proxy_on_done: a host treats an absent one as "done" (Envoy's cpp-host, this node),
 * which is all the SDK's would answer, and it is a guest call per stream. */

PW_EXPORT(proxy_on_delete) void pw_on_delete(uint32_t id) {
    ctx_entry *e = ctx_find(id);
    if (!e) return;
    if (e->is_root) {
        if (e->u.root.filter && e->u.root.filter->on_root_delete) e->u.root.filter->on_root_delete(&e->u.root);
    } else {
        const pw_filter *f = filter_of(&e->u.stream);
        if (f && f->on_stream_delete) f->on_stream_delete(&e->u.stream);
        for (call_entry **pp = &calls; *pp;) {
            if ((*pp)->stream == id) {
                call_entry *c = *pp;
                *pp = c->next;
                free(c);
            } else {
                pp = &(*pp)->next;
            }
        }
    }
    ctx_remove(id);
}

/* ---- logging ------------------------------------------------------------------------ */

void pw_log(pw_log_level level, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        proxy_log(level, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) return;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    proxy_log(level, big, (size_t)n);
    free(big);
}

/* ---- headers ------------------------------------------------------------------------ */

static void take(char *ptr, size_t size, pw_bytes *out) {
    out->data = ptr;
    out->len = ptr ? size : 0;
}

bool pw_get_header(pw_map_type map, const char *name, pw_bytes *out) {
    char *ptr = NULL;
    size_t size = 0;
    out->data = NULL;
    out->len = 0;
    if (proxy_get_header_map_value(map, name, strlen(name), &ptr, &size) != PW_OK) return false;
    take(ptr, size, out);
    return true;
}

pw_status pw_set_header(pw_map_type map, const char *name, const char *value, size_t value_len) {
    return proxy_replace_header_map_value(map, name, strlen(name), value, value_len);
}

pw_status pw_set_header_cstr(pw_map_type map, const char *name, const char *value) {
    return pw_set_header(map, name, value, strlen(value));
}

pw_status pw_add_header(pw_map_type map, const char *name, const char *value, size_t value_len) {
    return proxy_add_header_map_value(map, name, strlen(name), value, value_len);
}

pw_status pw_remove_header(pw_map_type map, const char *name) {
    return proxy_remove_header_map_value(map, name, strlen(name));
}

bool pw_get_headers(pw_map_type map, pw_headers *out) {
    pw_bytes raw;
    if (!pw_get_header_pairs(map, &raw)) return false;
    bool ok = pw_headers_deserialize((const uint8_t *)raw.data, raw.len, out);
    pw_bytes_free(&raw);
    return ok;
}

bool pw_get_header_pairs(pw_map_type map, pw_bytes *out) {
    char *ptr = NULL;
    size_t size = 0;
    out->data = NULL;
    out->len = 0;
    if (proxy_get_header_map_pairs(map, &ptr, &size) != PW_OK) return false;
    take(ptr, size, out);
    return true;
}

pw_status pw_set_headers(pw_map_type map, const pw_headers *h) {
    size_t len;
    uint8_t *buf = pw_headers_serialize(h, &len);
    pw_status st = proxy_set_header_map_pairs(map, buf, len);
    free(buf);
    return st;
}

/* ---- buffers -------------------------------------------------------------------------- */

bool pw_get_buffer(pw_buffer_type type, size_t start, size_t max, pw_bytes *out) {
    char *ptr = NULL;
    size_t size = 0;
    out->data = NULL;
    out->len = 0;
    if (max == 0) return true;
    if (proxy_get_buffer_bytes(type, start, max, &ptr, &size) != PW_OK) return false;
    take(ptr, size, out);
    return true;
}

pw_status pw_set_buffer(pw_buffer_type type, size_t start, size_t size, const void *data, size_t data_len) {
    return proxy_set_buffer_bytes(type, start, size, data, data_len);
}

/* ---- stream control --------------------------------------------------------------------- */

pw_status pw_continue_stream(pw_stream_type type) { return proxy_continue_stream(type); }
pw_status pw_close_stream(pw_stream_type type) { return proxy_close_stream(type); }

pw_status pw_send_local_response(uint32_t status, const char *body, size_t body_len, const pw_headers *headers,
                                 const char *details) {
    size_t hlen;
    uint8_t *h = pw_headers_serialize(headers, &hlen);
    const char *d = details ? details : "";
    pw_status st = proxy_send_local_response(status, d, strlen(d), body ? body : "", body ? body_len : 0, h, hlen, -1);
    free(h);
    return st;
}

/* ---- properties ------------------------------------------------------------------------- */

static char *encode_path(const char *path, size_t *len) {
    *len = strlen(path);
    char *p = dup_n(path, *len);
    for (size_t i = 0; i < *len; i++)
        if (p[i] == '.') p[i] = 0;
    return p;
}

pw_status pw_call_foreign_function(const char *name, const void *args, size_t args_len,
                                   pw_bytes *out) {
    char *ptr = NULL;
    size_t size = 0;
    int32_t st = proxy_call_foreign_function(name, strlen(name), args, args_len, &ptr, &size);
    out->data = NULL;
    out->len = 0;
    if (st == PW_OK) take(ptr, size, out);
    return (pw_status)st;
}

bool pw_get_property(const char *path, pw_bytes *out) {
    size_t plen;
    char *p = encode_path(path, &plen);
    char *ptr = NULL;
    size_t size = 0;
    int32_t st = proxy_get_property(p, plen, &ptr, &size);
    free(p);
    out->data = NULL;
    out->len = 0;
    if (st != PW_OK) return false;
    take(ptr, size, out);
    return true;
}

pw_status pw_set_property(const char *path, const char *value, size_t value_len) {
    size_t plen;
    char *p = encode_path(path, &plen);
    pw_status st = proxy_set_property(p, plen, value, value_len);
    free(p);
    return st;
}

/* ---- callouts ------------------------------------------------------------------------------ */

pw_status pw_http_call(pw_stream *s, const char *upstream, const pw_headers *headers, const void *body,
                       size_t body_len, uint32_t timeout_ms, uint32_t *token) {
    size_t hlen, tlen;
    uint8_t *h = pw_headers_serialize(headers, &hlen);
    uint8_t *t = pw_headers_serialize(NULL, &tlen);
    uint32_t tok = 0;
    pw_status st = proxy_http_call(upstream, strlen(upstream), h, hlen, body, body_len, t, tlen, timeout_ms, &tok);
    free(h);
    free(t);
    if (st == PW_OK) {
        call_entry *c = malloc(sizeof *c);
        if (!c) abort();
        c->token = tok;
        c->stream = s->id;
        c->next = calls;
        calls = c;
        if (token) *token = tok;
    }
    return st;
}

/* ---- metrics, shared data, time, randomness ---------------------------------------------- */

pw_status pw_define_metric(pw_metric_type type, const char *name, uint32_t *id) {
    return proxy_define_metric(type, name, strlen(name), id);
}

pw_status pw_increment_metric(uint32_t id, int64_t delta) { return proxy_increment_metric(id, delta); }
pw_status pw_record_metric(uint32_t id, uint64_t value) { return proxy_record_metric(id, value); }

bool pw_get_shared_data(const char *key, pw_bytes *out, uint32_t *cas) {
    char *ptr = NULL;
    size_t size = 0;
    uint32_t c = 0;
    out->data = NULL;
    out->len = 0;
    if (proxy_get_shared_data(key, strlen(key), &ptr, &size, &c) != PW_OK) return false;
    take(ptr, size, out);
    if (cas) *cas = c;
    return true;
}

pw_status pw_set_shared_data(const char *key, const void *value, size_t len, uint32_t cas) {
    return proxy_set_shared_data(key, strlen(key), value, len, cas);
}

pw_status pw_set_tick_period_ms(uint32_t ms) { return proxy_set_tick_period_milliseconds(ms); }

uint64_t pw_now_ns(void) {
    uint64_t t = 0;
    proxy_get_current_time_nanoseconds(&t);
    return t;
}

uint32_t pw_random_u32(void) {
    uint32_t v = 0;
    /* WASI random_get under wasi-libc. */
    if (getentropy(&v, sizeof v) != 0) v = (uint32_t)pw_now_ns() * 2654435761u;
    return v;
}
