/*
 * Test filter for the SDK's pw_call_foreign_function: calls the function named by the
 * request header `x-ff` with the value of `x-ff-args` and answers locally with the
 * result as the body and the call's status in `x-ff-status`.
 */
#include <stdio.h>
#include <string.h>

#include "proxy_wasm.h"

static pw_action on_request_headers(pw_stream *s, size_t n, bool eos) {
    (void)s;
    (void)n;
    (void)eos;
    pw_bytes name = {0}, args = {0}, out = {0};
    if (!pw_get_header(PW_MAP_REQUEST_HEADERS, "x-ff", &name)) return PW_CONTINUE;
    pw_get_header(PW_MAP_REQUEST_HEADERS, "x-ff-args", &args);
    pw_status st = pw_call_foreign_function(name.data, args.data, args.len, &out);
    char status[12];
    snprintf(status, sizeof status, "%d", (int)st);
    pw_headers h = {0};
    pw_headers_add_cstr(&h, "x-ff-status", status);
    pw_send_local_response(200, out.data, out.len, &h, "foreign");
    pw_headers_free(&h);
    pw_bytes_free(&name);
    pw_bytes_free(&args);
    pw_bytes_free(&out);
    return PW_STOP_ITERATION;
}

static const pw_filter foreign_filter = {.on_request_headers = on_request_headers};

const pw_filter *const pw_filters[] = {&foreign_filter, NULL};
