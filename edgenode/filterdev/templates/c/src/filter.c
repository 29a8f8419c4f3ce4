/*
 * {{name}}: an edgenode Proxy-Wasm filter (C, edgenode SDK in ../sdk).
 *
 *   request:  paths under `deny_prefix` get a local 403 (the origin is never asked);
 *             every other request goes upstream with `x-filter: {{name}}` added.
 *   response: `x-greeting: <greeting>` is added on the way back.
 *
 * Configuration (JSON, all keys optional):
 *   {"greeting": "hello from {{name}}", "deny_prefix": "/private"}
 */
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "proxy_wasm.h"

typedef struct {
    char *greeting;
    char *deny_prefix;
} settings;

static void free_settings(settings *s) {
    if (!s) return;
    free(s->greeting);
    free(s->deny_prefix);
    free(s);
}

static bool on_configure(pw_root *root, const char *text, size_t len) {
    char err[160];
    json_value *doc = json_parse(len ? text : "{}", len ? len : 2, err, sizeof err);
    if (!doc || !json_is(doc, JSON_OBJECT)) {
        pw_error("{{name}}: configuration must be a JSON object%s%s", doc ? "" : ": ", doc ? "" : err);
        json_free(doc);
        return false;
    }
    /* a present key of the wrong type is an error, not a silent fallback to the default */
    static const char *const keys[] = {"greeting", "deny_prefix"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const json_value *v = json_get(doc, keys[i]);
        if (v && !json_is(v, JSON_STRING)) {
            pw_error("{{name}}: configuration key %s: expected a string", keys[i]);
            json_free(doc);
            return false;
        }
    }
    settings *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->greeting = strdup(json_string(json_get(doc, "greeting"), "hello from {{name}}"));
    s->deny_prefix = strdup(json_string(json_get(doc, "deny_prefix"), "/private"));
    json_free(doc);
    if (!s->greeting || !s->deny_prefix) abort();
    free_settings(root->user);
    root->user = s;
    pw_info("{{name}}: configured greeting='%s' deny_prefix='%s'", s->greeting, s->deny_prefix);
    return true;
}

static void on_root_delete(pw_root *root) {
    free_settings(root->user);
    root->user = NULL;
}

static pw_action on_request_headers(pw_stream *st, size_t num_headers, bool end_of_stream) {
    (void)num_headers;
    (void)end_of_stream;
    const settings *s = st->root->user;
    if (!s) return PW_CONTINUE; /* not configured: pass through untouched */
    pw_bytes path = {0};
    pw_get_header(PW_MAP_REQUEST_HEADERS, ":path", &path);
    bool deny = path.data && s->deny_prefix[0] &&
                strncmp(path.data, s->deny_prefix, strlen(s->deny_prefix)) == 0;
    pw_info("{{name}}: %s %s", deny ? "denied" : "allowed", path.data ? path.data : "");
    pw_bytes_free(&path);
    if (deny) {
        pw_headers h = {0};
        pw_headers_add_cstr(&h, "content-type", "text/plain");
        pw_send_local_response(403, "denied\n", 7, &h, "{{ident}}_denied");
        pw_headers_free(&h);
        return PW_STOP_ITERATION;
    }
    pw_set_header_cstr(PW_MAP_REQUEST_HEADERS, "x-filter", "{{name}}");
    return PW_CONTINUE;
}

static pw_action on_response_headers(pw_stream *st, size_t num_headers, bool end_of_stream) {
    (void)num_headers;
    (void)end_of_stream;
    const settings *s = st->root->user;
    if (!s) return PW_CONTINUE;
    pw_set_header_cstr(PW_MAP_RESPONSE_HEADERS, "x-greeting", s->greeting);
    return PW_CONTINUE;
}

static const pw_filter {{ident}} = {
    .root_id = NULL, /* serve any root_id */
    .on_configure = on_configure,
    .on_root_delete = on_root_delete,
    .on_request_headers = on_request_headers,
    .on_response_headers = on_response_headers,
};

const pw_filter *const pw_filters[] = {&{{ident}}, NULL};
