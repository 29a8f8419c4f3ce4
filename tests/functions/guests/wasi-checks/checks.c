/* WASI 0.2 checks of the node's host, run from inside a guest: each route calls host
 * functions against the canonical ABI directly (no bindings generator, no libc) and
 * answers one line per failed check, or "ok".
 *   .../fields        fields: append, get, has, set, delete, clone, entries, from-list, errors
 *   .../body          POST "0123456789abcdefghij": consume, stream, read, skip, subscribe, trailers
 *   .../stream-out    POST "spliced!": check-write, write-zeroes, write, flush, subscribe
 *   .../clock         monotonic timers, block, poll; random bytes
 *   .../status        set-status-code (invalid, then 201), the body taken twice
 *   .../drop-parent   drops the request while its headers live: traps */
#include <stddef.h>
#include <stdint.h>

#define TYPES "wasi:http/types@0.2.0"
#define STREAMS "wasi:io/streams@0.2.0"
#define POLL "wasi:io/poll@0.2.0"
#define CLOCK "wasi:clocks/monotonic-clock@0.2.0"
#define RANDOM "wasi:random/random@0.2.0"
#define IMPORT(module, name) __attribute__((import_module(module), import_name(name)))
typedef int32_t h;  /* a handle */

IMPORT(TYPES, "[constructor]fields") h fields_new(void);
IMPORT(TYPES, "[method]fields.append") void fields_append(h, const char *, size_t, const char *, size_t, uint8_t *);
IMPORT(TYPES, "[method]fields.get") void fields_get(h, const char *, size_t, uint8_t *);
IMPORT(TYPES, "[method]fields.has") int32_t fields_has(h, const char *, size_t);
IMPORT(TYPES, "[method]fields.set") void fields_set(h, const char *, size_t, const void *, size_t, uint8_t *);
IMPORT(TYPES, "[method]fields.delete") void fields_delete(h, const char *, size_t, uint8_t *);
IMPORT(TYPES, "[method]fields.entries") void fields_entries(h, uint8_t *);
IMPORT(TYPES, "[method]fields.clone") h fields_clone(h);
IMPORT(TYPES, "[static]fields.from-list") void fields_from_list(const void *, size_t, uint8_t *);
IMPORT(TYPES, "[resource-drop]fields") void drop_fields(h);
IMPORT(TYPES, "[method]incoming-request.path-with-query") void request_path(h, uint8_t *);
IMPORT(TYPES, "[method]incoming-request.headers") h request_headers(h);
IMPORT(TYPES, "[method]incoming-request.consume") void request_consume(h, uint8_t *);
IMPORT(TYPES, "[resource-drop]incoming-request") void drop_request(h);
IMPORT(TYPES, "[method]incoming-body.stream") void body_stream(h, uint8_t *);
IMPORT(TYPES, "[static]incoming-body.finish") h body_finish(h);
IMPORT(TYPES, "[method]future-trailers.subscribe") h trailers_subscribe(h);
IMPORT(TYPES, "[method]future-trailers.get") void trailers_get(h, uint8_t *);
IMPORT(TYPES, "[resource-drop]future-trailers") void drop_future_trailers(h);
IMPORT(TYPES, "[constructor]outgoing-response") h response_new(h);
IMPORT(TYPES, "[method]outgoing-response.set-status-code") int32_t response_set_status(h, int32_t);
IMPORT(TYPES, "[method]outgoing-response.status-code") int32_t response_status(h);
IMPORT(TYPES, "[method]outgoing-response.headers") h response_headers(h);
IMPORT(TYPES, "[method]outgoing-response.body") void response_body(h, uint8_t *);
IMPORT(TYPES, "[method]outgoing-body.write") void outgoing_write(h, uint8_t *);
IMPORT(TYPES, "[static]outgoing-body.finish") void outgoing_finish(h, int32_t, h, uint8_t *);
IMPORT(TYPES, "[static]response-outparam.set")
void outparam_set(h, int32_t, h, int32_t, int64_t, int32_t, int32_t, int32_t, int32_t);
IMPORT(STREAMS, "[method]input-stream.read") void stream_read(h, int64_t, uint8_t *);
IMPORT(STREAMS, "[method]input-stream.blocking-read") void stream_blocking_read(h, int64_t, uint8_t *);
IMPORT(STREAMS, "[method]input-stream.skip") void stream_skip(h, int64_t, uint8_t *);
IMPORT(STREAMS, "[method]input-stream.subscribe") h input_subscribe(h);
IMPORT(STREAMS, "[resource-drop]input-stream") void drop_input(h);
IMPORT(STREAMS, "[method]output-stream.check-write") void stream_check_write(h, uint8_t *);
IMPORT(STREAMS, "[method]output-stream.blocking-write-and-flush") void stream_write(h, const char *, size_t, uint8_t *);
IMPORT(STREAMS, "[method]output-stream.write-zeroes") void stream_write_zeroes(h, int64_t, uint8_t *);
IMPORT(STREAMS, "[method]output-stream.flush") void stream_flush(h, uint8_t *);
IMPORT(STREAMS, "[method]output-stream.subscribe") h output_subscribe(h);
IMPORT(STREAMS, "[resource-drop]output-stream") void drop_output(h);
IMPORT(POLL, "[method]pollable.ready") int32_t pollable_ready(h);
IMPORT(POLL, "[method]pollable.block") void pollable_block(h);
IMPORT(POLL, "poll") void poll(const h *, size_t, uint8_t *);
IMPORT(POLL, "[resource-drop]pollable") void drop_pollable(h);
IMPORT(CLOCK, "now") int64_t clock_now(void);
IMPORT(CLOCK, "subscribe-duration") h clock_after(int64_t);
IMPORT(RANDOM, "get-random-bytes") void random_bytes(int64_t, uint8_t *);
IMPORT(RANDOM, "get-random-u64") int64_t random_u64(void);

/* A bump allocator for what the host returns; reset per request. */
static uint8_t heap[64 * 1024];
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
static char report[2048];
static size_t report_len;

static size_t len(const char *s) { size_t n = 0; while (s[n]) n++; return n; }
static int same(const void *a, const char *b, size_t n) {
    if (len(b) != n) return 0;
    for (size_t i = 0; i < n; i++) if (((const char *)a)[i] != b[i]) return 0;
    return 1;
}
static void say(const char *s) { for (size_t i = 0; s[i] && report_len < sizeof report; i++) report[report_len++] = s[i]; }
static void check(int ok, const char *what) { if (!ok) { say("FAIL "); say(what); say("\n"); } }
static int32_t at32(size_t off) { return *(int32_t *)(ret + off); }
static int64_t at64(size_t off) { return *(int64_t *)(ret + off); }
static h handle_of(const char *what) { check(ret[0] == 0, what); return at32(4); }

static void append(h f, const char *name, const char *value) {
    fields_append(f, name, len(name), value, len(value), ret);
}

/* the values of `name` joined by ",", compared with `want` */
static int values_are(h f, const char *name, const char *want) {
    fields_get(f, name, len(name), ret);
    const uint32_t *list = (const uint32_t *)(uintptr_t)at32(0);
    uint32_t n = (uint32_t)at32(4);
    char joined[64];
    size_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i && k < sizeof joined) joined[k++] = ',';
        const char *v = (const char *)(uintptr_t)list[2 * i];
        for (uint32_t j = 0; j < list[2 * i + 1] && k < sizeof joined; j++) joined[k++] = v[j];
    }
    return same(joined, want, k);
}

static h check_fields(void) {
    h f = fields_new();
    append(f, "x-a", "1");
    check(ret[0] == 0, "append");
    append(f, "X-A", "2");
    check(fields_has(f, "x-a", 3) && !fields_has(f, "x-b", 3), "has");
    check(values_are(f, "X-a", "1,2"), "get is case-insensitive and keeps order");
    append(f, "bad name", "v");
    check(ret[0] == 1 && ret[1] == 0, "a name that is not a token is invalid-syntax");
    append(f, "x-b", "a\nb");
    check(ret[0] == 1 && ret[1] == 0, "a value with LF is invalid-syntax");
    append(f, "Connection", "close");
    check(ret[0] == 1 && ret[1] == 1, "connection is forbidden");
    static const struct { const char *p; size_t n; } three[] = {{"3", 1}};
    fields_set(f, "x-a", 3, three, 1, ret);
    check(ret[0] == 0 && values_are(f, "x-a", "3"), "set replaces");
    h c = fields_clone(f);
    fields_delete(c, "X-A", 3, ret);
    check(ret[0] == 0 && !fields_has(c, "x-a", 3) && fields_has(f, "x-a", 3), "delete in a clone only");
    fields_entries(f, ret);
    const uint32_t *e = (const uint32_t *)(uintptr_t)at32(0);
    check(at32(4) == 1 && same((const char *)(uintptr_t)e[0], "x-a", e[1]) && same((const char *)(uintptr_t)e[2], "3", e[3]),
          "entries");
    static const struct { const char *np; size_t nn; const char *vp; size_t vn; } te[] = {{"transfer-encoding", 17, "chunked", 7}};
    fields_from_list(te, 1, ret);
    check(ret[0] == 1 && ret[4] == 1, "from-list refuses forbidden fields");
    static const struct { const char *np; size_t nn; const char *vp; size_t vn; } ok[] = {{"x-c", 3, "1", 1}};
    fields_from_list(ok, 1, ret);
    h listed = handle_of("from-list");
    check(values_are(listed, "x-c", "1"), "from-list values");
    drop_fields(listed);
    drop_fields(c);
    return f;
}

/* answer with `response`, its body the report */
static void send(h outparam, h response, h body) {
    outparam_set(outparam, 0, response, 0, 0, 0, 0, 0, 0);
    outgoing_write(body, ret);
    h stream = handle_of("body write");
    if (!report_len) say("ok\n");
    stream_write(stream, report, report_len, ret);
    drop_output(stream);
    outgoing_finish(body, 0, 0, ret);
}

static void respond(h outparam, h headers, int32_t status) {
    h response = response_new(headers);
    if (status) response_set_status(response, status);
    response_body(response, ret);
    send(outparam, response, handle_of("response body"));
}

static void route_fields(h outparam) {
    h f = check_fields();
    h response = response_new(f);
    h view = response_headers(response);
    append(view, "x-late", "1");
    check(ret[0] == 1 && ret[1] == 2, "a response's headers are immutable");
    check(values_are(view, "x-a", "3"), "a response's headers are its fields");
    drop_fields(view);
    response_body(response, ret);
    send(outparam, response, handle_of("response body"));
}

static void route_body(h request, h outparam) {
    request_consume(request, ret);
    h body = handle_of("consume");
    request_consume(request, ret);
    check(ret[0] == 1, "a body is taken once");
    body_stream(body, ret);
    h stream = handle_of("stream");
    body_stream(body, ret);
    check(ret[0] == 1, "a body's stream is taken once");
    stream_blocking_read(stream, 4, ret);  /* threaded: the body may still be on its way */
    check(ret[0] == 0 && same((const char *)(uintptr_t)at32(4), "0123", (size_t)at32(8)), "read at most what was asked");
    stream_read(stream, 2, ret);
    check(ret[0] == 0 && same((const char *)(uintptr_t)at32(4), "45", (size_t)at32(8)), "read what is there");
    stream_skip(stream, 4, ret);
    check(ret[0] == 0 && at64(8) == 4, "skip");
    stream_blocking_read(stream, 100, ret);
    check(ret[0] == 0 && same((const char *)(uintptr_t)at32(4), "abcdefghij", (size_t)at32(8)), "blocking-read the rest");
    stream_blocking_read(stream, 100, ret);
    check(ret[0] == 1 && ret[4] == 1, "closed at the end");
    h p = input_subscribe(stream);
    check(pollable_ready(p), "an ended stream is ready");
    drop_pollable(p);
    drop_input(stream);
    h trailers = body_finish(body);
    p = trailers_subscribe(trailers);
    check(pollable_ready(p), "trailers of a complete body are ready");
    drop_pollable(p);
    trailers_get(trailers, ret);
    check(ret[0] == 1 && ret[8] == 0 && ret[16] == 0 && ret[24] == 0, "no trailers");
    trailers_get(trailers, ret);
    check(ret[0] == 1 && ret[8] == 1, "trailers are taken once");
    drop_future_trailers(trailers);
    drop_request(request);
    respond(outparam, fields_new(), 0);
}

static void route_stream_out(h request, h outparam) {
    h response = response_new(fields_new());
    response_body(response, ret);
    h body = handle_of("response body");
    outparam_set(outparam, 0, response, 0, 0, 0, 0, 0, 0);
    outgoing_write(body, ret);
    h out = handle_of("body write");
    stream_check_write(out, ret);
    check(ret[0] == 0 && at64(8) > 0, "check-write");
    stream_write_zeroes(out, 3, ret);
    check(ret[0] == 0, "write-zeroes");
    request_consume(request, ret);
    h in_body = handle_of("consume");
    body_stream(in_body, ret);
    h in = handle_of("stream");
    /* no splice: wasmtime 50 fails to lift two borrowed handles in one call */
    stream_blocking_read(in, 100, ret);
    check(ret[0] == 0 && at32(8) == 8, "read the request body");
    stream_write(out, (const char *)(uintptr_t)at32(4), (size_t)at32(8), ret);
    stream_write(out, "|end", 4, ret);
    stream_flush(out, ret);
    check(ret[0] == 0, "flush");
    h p = output_subscribe(out);
    check(pollable_ready(p), "an output stream is ready");
    drop_pollable(p);
    if (report_len) stream_write(out, report, report_len, ret);
    drop_input(in);
    drop_future_trailers(body_finish(in_body));
    drop_request(request);
    drop_output(out);
    outgoing_finish(body, 0, 0, ret);
}

static void route_clock(h request, h outparam) {
    int64_t t0 = clock_now();
    h timer = clock_after(2000000);
    pollable_block(timer);
    check(clock_now() - t0 >= 2000000, "block waits for a timer");
    check(pollable_ready(timer), "a passed timer is ready");
    drop_pollable(timer);
    /* one pollable: wasmtime 50 fails to lift a list of two or more borrowed handles */
    h soon = clock_after(1000000);
    poll(&soon, 1, ret);
    const uint32_t *ready = (const uint32_t *)(uintptr_t)at32(0);
    check(at32(4) == 1 && ready[0] == 0, "poll waits for the timer");
    drop_pollable(soon);
    random_bytes(16, ret);
    check(at32(4) == 16, "random bytes");
    check(random_u64() != random_u64(), "random u64");
    drop_request(request);
    respond(outparam, fields_new(), 0);
}

static void route_status(h request, h outparam) {
    h response = response_new(fields_new());
    check(response_set_status(response, 42) == 1, "status 42 is refused");
    check(response_set_status(response, 201) == 0 && response_status(response) == 201, "status 201");
    response_body(response, ret);
    h body = handle_of("response body");
    response_body(response, ret);
    check(ret[0] == 1, "a response's body is taken once");
    drop_request(request);
    send(outparam, response, body);
}

static int ends_with(const char *path, size_t n, const char *tail) {
    size_t t = len(tail);
    return n >= t && same(path + n - t, tail, t);
}

__attribute__((export_name("wasi:http/incoming-handler@0.2.0#handle")))
void handle(h request, h outparam) {
    heap_used = 0;
    report_len = 0;
    request_path(request, ret);
    const char *path = ret[0] ? (const char *)(uintptr_t)at32(4) : "/";
    size_t n = ret[0] ? (size_t)at32(8) : 1;
    if (ends_with(path, n, "/fields")) { drop_request(request); route_fields(outparam); }
    else if (ends_with(path, n, "/body")) route_body(request, outparam);
    else if (ends_with(path, n, "/stream-out")) route_stream_out(request, outparam);
    else if (ends_with(path, n, "/clock")) route_clock(request, outparam);
    else if (ends_with(path, n, "/status")) route_status(request, outparam);
    else if (ends_with(path, n, "/drop-parent")) {
        h headers = request_headers(request);
        drop_request(request);  /* traps: its headers are still alive */
        drop_fields(headers);
    } else {
        say("no such check\n");
        drop_request(request);
        respond(outparam, fields_new(), 404);
    }
}
