/* The C example function: wasi:http/incoming-handler written against the canonical ABI
 * directly (no bindings generator, no libc), to show what the host costs with a guest
 * that costs next to nothing.
 *   GET  .../hello   "hello from c", cacheable for 60 s
 *   POST .../echo    reads the body, answers {"bytes":N}
 * `edgenode function build` compiles it with zig cc and adds the component type. */
#include <stddef.h>
#include <stdint.h>

#define TYPES "wasi:http/types@0.2.0"
#define STREAMS "wasi:io/streams@0.2.0"
#define IMPORT(module, name) __attribute__((import_module(module), import_name(name)))

IMPORT(TYPES, "[constructor]fields") int32_t fields_new(void);
IMPORT(TYPES, "[method]fields.append")
void fields_append(int32_t self, const char *name, size_t name_len, const char *value, size_t value_len,
                   uint8_t *ret);
IMPORT(TYPES, "[method]incoming-request.path-with-query") void request_path(int32_t self, uint8_t *ret);
IMPORT(TYPES, "[method]incoming-request.consume") void request_consume(int32_t self, uint8_t *ret);
IMPORT(TYPES, "[resource-drop]incoming-request") void drop_request(int32_t self);
IMPORT(TYPES, "[method]incoming-body.stream") void body_stream(int32_t self, uint8_t *ret);
IMPORT(TYPES, "[static]incoming-body.finish") int32_t body_finish(int32_t body);
IMPORT(TYPES, "[resource-drop]future-trailers") void drop_future_trailers(int32_t self);
IMPORT(TYPES, "[constructor]outgoing-response") int32_t response_new(int32_t headers);
IMPORT(TYPES, "[method]outgoing-response.body") void response_body(int32_t self, uint8_t *ret);
IMPORT(TYPES, "[method]outgoing-body.write") void outgoing_write(int32_t self, uint8_t *ret);
IMPORT(TYPES, "[static]outgoing-body.finish")
void outgoing_finish(int32_t body, int32_t has_trailers, int32_t trailers, uint8_t *ret);
/* result<own<outgoing-response>, error-code>, flattened: case, then the joined payloads */
IMPORT(TYPES, "[static]response-outparam.set")
void outparam_set(int32_t param, int32_t is_err, int32_t response, int32_t p1, int64_t p2, int32_t p3,
                  int32_t p4, int32_t p5, int32_t p6);
IMPORT(STREAMS, "[method]input-stream.blocking-read") void stream_read(int32_t self, int64_t len, uint8_t *ret);
IMPORT(STREAMS, "[resource-drop]input-stream") void drop_input(int32_t self);
IMPORT(STREAMS, "[method]output-stream.blocking-write-and-flush")
void stream_write(int32_t self, const char *data, size_t len, uint8_t *ret);
IMPORT(STREAMS, "[resource-drop]output-stream") void drop_output(int32_t self);

/* A bump allocator for what the host returns (strings, lists); reset per request. */
static uint8_t heap[256 * 1024];
static size_t heap_used;

__attribute__((export_name("cabi_realloc")))
void *cabi_realloc(void *old, size_t old_size, size_t align, size_t new_size) {
    size_t at = (heap_used + align - 1) & ~(align - 1);
    if (at + new_size > sizeof heap) __builtin_trap();
    uint8_t *p = heap + at;
    for (size_t i = 0; old && i < old_size && i < new_size; i++) p[i] = ((uint8_t *)old)[i];
    heap_used = at + new_size;
    return p;
}

static _Alignas(8) uint8_t ret[64];

static int32_t handle_of(void) {  /* result<own<T>, _> in ret: ok -> the handle */
    if (ret[0] != 0) __builtin_trap();
    return *(int32_t *)(ret + 4);
}

static size_t body_length(int32_t request) {
    request_consume(request, ret);
    int32_t body = handle_of();
    body_stream(body, ret);
    int32_t stream = handle_of();
    size_t total = 0;
    for (;;) {
        heap_used = 0;
        stream_read(stream, 65536, ret);
        if (ret[0] != 0) break;  /* closed (or failed): the end */
        total += *(uint32_t *)(ret + 8);
    }
    drop_input(stream);
    drop_future_trailers(body_finish(body));
    return total;
}

static size_t utoa(size_t n, char *out) {
    char tmp[24];
    size_t len = 0, i = 0;
    do { tmp[len++] = (char)('0' + n % 10); n /= 10; } while (n);
    while (len) out[i++] = tmp[--len];
    return i;
}

static size_t copy(char *out, const char *s) {
    size_t i = 0;
    while (s[i]) { out[i] = s[i]; i++; }
    return i;
}

__attribute__((export_name("wasi:http/incoming-handler@0.2.0#handle")))
void handle(int32_t request, int32_t outparam) {
    static char reply[64];
    heap_used = 0;
    request_path(request, ret);
    const char *path = ret[0] ? *(const char **)(ret + 4) : "/";
    size_t path_len = ret[0] ? *(uint32_t *)(ret + 8) : 1;
    int echo = path_len >= 4 && path[path_len - 4] == 'e' && path[path_len - 3] == 'c'
               && path[path_len - 2] == 'h' && path[path_len - 1] == 'o';
    size_t len;
    const char *type;
    if (echo) {
        len = copy(reply, "{\"bytes\":");
        len += utoa(body_length(request), reply + len);
        reply[len++] = '}';
        type = "application/json";
    } else {
        len = copy(reply, "hello from c\n");
        type = "text/plain";
    }
    drop_request(request);
    int32_t headers = fields_new();
    fields_append(headers, "content-type", 12, type, echo ? 16 : 10, ret);
    if (!echo) fields_append(headers, "cache-control", 13, "public, max-age=60", 18, ret);
    int32_t response = response_new(headers);
    response_body(response, ret);
    int32_t body = handle_of();
    outparam_set(outparam, 0, response, 0, 0, 0, 0, 0, 0);
    outgoing_write(body, ret);
    int32_t stream = handle_of();
    stream_write(stream, reply, len, ret);
    drop_output(stream);
    outgoing_finish(body, 0, 0, ret);
}
