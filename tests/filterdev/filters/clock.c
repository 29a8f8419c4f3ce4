/*
 * Test filter for the deterministic harness: reports the guest's clock and randomness.
 * Request: adds `x-now` (proxy_get_current_time_nanoseconds) and `x-rand` (WASI random_get
 * via getentropy) to the upstream request; response: the same values as response headers.
 * `/trap` traps (for failure reporting).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_wasm.h"

typedef struct { char now[24]; char rand[12]; } values;

static pw_action on_request_headers(pw_stream *s, size_t n, bool eos) {
    (void)n;
    (void)eos;
    pw_bytes path = {0};
    pw_get_header(PW_MAP_REQUEST_HEADERS, ":path", &path);
    bool trap = path.data && strcmp(path.data, "/trap") == 0;
    pw_bytes_free(&path);
    if (trap) __builtin_trap();
    values *v = calloc(1, sizeof *v);
    snprintf(v->now, sizeof v->now, "%" PRIu64, pw_now_ns());
    snprintf(v->rand, sizeof v->rand, "%" PRIu32, pw_random_u32());
    s->user = v;
    pw_set_header_cstr(PW_MAP_REQUEST_HEADERS, "x-now", v->now);
    pw_set_header_cstr(PW_MAP_REQUEST_HEADERS, "x-rand", v->rand);
    pw_info("clock: now=%s rand=%s", v->now, v->rand);
    return PW_CONTINUE;
}

static pw_action on_response_headers(pw_stream *s, size_t n, bool eos) {
    (void)n;
    (void)eos;
    values *v = s->user;
    if (v) {
        pw_set_header_cstr(PW_MAP_RESPONSE_HEADERS, "x-now", v->now);
        pw_set_header_cstr(PW_MAP_RESPONSE_HEADERS, "x-rand", v->rand);
    }
    return PW_CONTINUE;
}

static void on_stream_delete(pw_stream *s) {
    free(s->user);
    s->user = NULL;
}

static const pw_filter clock_filter = {
    .on_request_headers = on_request_headers,
    .on_response_headers = on_response_headers,
    .on_stream_delete = on_stream_delete,
};

const pw_filter *const pw_filters[] = {&clock_filter, NULL};
