/*
 * WAF Proxy-Wasm filter: glue between the SDK (filters/sdk) and the engine.
 *
 * Configuration (plugin configuration JSON, every key optional):
 *   {"threshold": 5, "paranoia": 1, "mode": "block" | "detect",
 *    "disabled_rules": [942100, ...],
 *    "disabled_paths": [{"prefix": "/api/", "rules": [941110] | "all"}],
 *    "max_body_bytes": 131072}
 * Requests are inspected at their headers, or, when they carry an inspectable
 * body, once the body is complete (buffered up to max_body_bytes).  A blocked
 * request is answered 403 locally, so it never reaches the cache or the origin;
 * in detect mode the request passes and the response carries X-WAF-Score and
 * X-WAF-Rules.  Matches are logged and counted in metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "json.h"
#include "proxy_wasm.h"

typedef struct {
    waf_config cfg;
    uint32_t m_inspected, m_blocked, m_flagged;
    uint32_t m_family[WAF_FAM_COUNT];
} plugin;

typedef struct {
    pw_headers headers;
    bool waiting_body;       /* headers were paused for the body */
    bool done;
    int score;               /* detect mode: reported on the response */
    char rules[256];
} stream_state;

/* ------------------------------------------------------------------ config */

static bool config_error(const char *key, const char *reason) {
    pw_error("waf config: %s: %s", key, reason);
    return false;
}

static bool read_int(const json_value *v, const char *key, long lo, long hi, long *out) {
    if (!v) return true;
    if (!json_is(v, JSON_NUMBER)) return config_error(key, "must be an integer");
    /* range first: converting a double outside long's range (1e30) is undefined */
    if (v->number < (double)lo || v->number > (double)hi) {
        char reason[64];
        snprintf(reason, sizeof reason, "must be between %ld and %ld", lo, hi);
        return config_error(key, reason);
    }
    if (v->number != (double)(long)v->number) return config_error(key, "must be an integer");
    *out = (long)v->number;
    return true;
}

static bool read_rule_ids(const json_value *arr, const char *key, uint32_t *ids, int cap, int *n) {
    if (!json_is(arr, JSON_ARRAY)) return config_error(key, "must be an array of rule ids");
    if ((int)json_len(arr) > cap) return config_error(key, "too many rule ids");
    *n = 0;
    for (size_t i = 0; i < json_len(arr); i++) {
        const json_value *id = json_at(arr, i);
        if (!json_is(id, JSON_NUMBER) || id->number < 1 || id->number > 99999999 ||
            id->number != (double)(uint32_t)id->number)
            return config_error(key, "rule ids must be positive integers");
        ids[(*n)++] = (uint32_t)id->number;
    }
    return true;
}

static bool parse_config(const char *text, size_t len, waf_config *cfg) {
    waf_config_default(cfg);
    if (len == 0) return true;
    char err[128];
    json_value *root = json_parse(text, len, err, sizeof err);
    if (!root) return config_error("(json)", err);
    bool ok = false;
    long v;
    if (!json_is(root, JSON_OBJECT)) { config_error("(root)", "must be a JSON object"); goto out; }
    static const char *const KNOWN[] = {"threshold", "paranoia", "mode", "disabled_rules",
                                        "disabled_paths", "max_body_bytes", NULL};
    for (size_t i = 0; i < root->count; i++) {
        bool known = false;
        for (const char *const *k = KNOWN; *k; k++) if (strcmp(root->keys[i], *k) == 0) known = true;
        if (!known) { config_error(root->keys[i], "unknown key"); goto out; }
    }
    v = cfg->threshold;
    if (!read_int(json_get(root, "threshold"), "threshold", 1, 10000, &v)) goto out;
    cfg->threshold = (int)v;
    v = cfg->paranoia;
    if (!read_int(json_get(root, "paranoia"), "paranoia", 1, 4, &v)) goto out;
    cfg->paranoia = (int)v;
    v = (long)cfg->max_body_bytes;
    if (!read_int(json_get(root, "max_body_bytes"), "max_body_bytes", 0, 64L * 1024 * 1024, &v)) goto out;
    cfg->max_body_bytes = (size_t)v;
    const json_value *mode = json_get(root, "mode");
    if (mode) {
        const char *m = json_string(mode, NULL);
        if (!m || (strcmp(m, "block") != 0 && strcmp(m, "detect") != 0)) {
            config_error("mode", "must be \"block\" or \"detect\"");
            goto out;
        }
        cfg->detect_only = strcmp(m, "detect") == 0;
    }
    const json_value *dis = json_get(root, "disabled_rules");
    if (dis && !read_rule_ids(dis, "disabled_rules", cfg->disabled, WAF_MAX_DISABLED, &cfg->n_disabled)) goto out;
    const json_value *paths = json_get(root, "disabled_paths");
    if (paths) {
        if (!json_is(paths, JSON_ARRAY)) { config_error("disabled_paths", "must be an array"); goto out; }
        for (size_t i = 0; i < json_len(paths); i++) {
            const json_value *p = json_at(paths, i);
            const char *prefix = json_string(json_get(p, "prefix"), NULL);
            if (!json_is(p, JSON_OBJECT) || !prefix || prefix[0] != '/') {
                config_error("disabled_paths", "each entry needs a \"prefix\" starting with /");
                goto out;
            }
            const json_value *rules = json_get(p, "rules");
            uint32_t ids[WAF_MAX_PATH_IDS];
            int n = 0;
            bool all = !rules || (json_is(rules, JSON_STRING) && strcmp(rules->string, "all") == 0);
            if (!all && !read_rule_ids(rules, "disabled_paths.rules", ids, WAF_MAX_PATH_IDS, &n)) goto out;
            if (!waf_config_add_path(cfg, prefix, strlen(prefix), ids, all ? 0 : n)) {
                config_error("disabled_paths", "too many entries or prefix too long");
                goto out;
            }
        }
    }
    ok = true;
out:
    json_free(root);
    return ok;
}

static bool on_configure(pw_root *root, const char *text, size_t len) {
    plugin *p = calloc(1, sizeof *p);
    if (!p) return false;
    if (!parse_config(text, len, &p->cfg)) { free(p); return false; }
    pw_define_metric(PW_METRIC_COUNTER, "waf_requests_inspected", &p->m_inspected);
    pw_define_metric(PW_METRIC_COUNTER, "waf_requests_blocked", &p->m_blocked);
    pw_define_metric(PW_METRIC_COUNTER, "waf_requests_flagged", &p->m_flagged);
    for (int f = 0; f < WAF_FAM_COUNT; f++) {
        char name[64];
        snprintf(name, sizeof name, "waf_matches_%s", waf_family_name((waf_family)f));
        pw_define_metric(PW_METRIC_COUNTER, name, &p->m_family[f]);
    }
    free(root->user);
    root->user = p;
    return true;
}

static void on_root_delete(pw_root *root) {
    free(root->user);
    root->user = NULL;
}

/* ------------------------------------------------------------------ inspection */

static const char *hdr(const pw_headers *h, const char *name, size_t *len) {
    const pw_pair *p = pw_headers_find(h, name);
    if (!p) { *len = 0; return NULL; }
    *len = p->value_len;
    return p->value;
}

/* Inspect and act. Returns true when a local 403 was sent. */
static bool inspect(pw_stream *s, stream_state *st, const char *body, size_t body_len, bool truncated) {
    const plugin *p = s->root->user;
    size_t ml, pl;
    const char *method = hdr(&st->headers, ":method", &ml);
    const char *path = hdr(&st->headers, ":path", &pl);
    waf_header *hs = calloc(st->headers.count ? st->headers.count : 1, sizeof *hs);
    if (!hs) return false;
    for (size_t i = 0; i < st->headers.count; i++) {
        const pw_pair *q = &st->headers.items[i];
        hs[i] = (waf_header){q->key, q->key_len, q->value, q->value_len};
    }
    waf_request req = {method ? method : "GET", method ? ml : 3, path ? path : "/", path ? pl : 1,
                       hs, st->headers.count, body, body_len, truncated};
    waf_result res;
    waf_inspect(&p->cfg, &req, &res);
    free(hs);
    st->done = true;

    pw_increment_metric(p->m_inspected, 1);
    for (int f = 0; f < WAF_FAM_COUNT; f++)
        if (res.family_mask & (1u << f)) pw_increment_metric(p->m_family[f], 1);
    if (res.n_matches == 0) return false;

    size_t o = 0;
    st->rules[0] = 0;
    for (int i = 0; i < res.n_matches && o + 12 < sizeof st->rules; i++)
        o += (size_t)snprintf(st->rules + o, sizeof st->rules - o, "%s%u", i ? "," : "", res.rules[i]);
    /* request.id is the X-Request-Id header when the client sent one: read it from the
     * headers already fetched, and ask the host (a property look-up) only otherwise */
    pw_bytes rid = {0};
    size_t xl;
    const char *xid = hdr(&st->headers, "x-request-id", &xl);
    if (!xid) pw_get_property("request.id", &rid);
    const char *id = xid ? xid : (rid.data ? rid.data : "-");
    pw_log(res.flagged ? PW_LOG_WARN : PW_LOG_INFO, "waf %s request_id=%s score=%d rules=%s path=%.*s",
           res.blocked ? "blocked" : (res.flagged ? "flagged" : "matched"), id, res.score, st->rules,
           (int)(pl > 200 ? 200 : pl), path ? path : "");
    if (!res.flagged) { pw_bytes_free(&rid); return false; }
    pw_increment_metric(p->m_flagged, 1);
    if (!res.blocked) {
        st->score = res.score;
        pw_bytes_free(&rid);
        return false;
    }
    pw_increment_metric(p->m_blocked, 1);
    char msg[256];
    int n = snprintf(msg, sizeof msg, "403 Forbidden: request blocked by the web application firewall.\n"
                     "Request id: %s\n", id);
    pw_headers h = {0};
    pw_headers_add_cstr(&h, "content-type", "text/plain; charset=utf-8");
    pw_headers_add_cstr(&h, "cache-control", "no-store");
    pw_headers_add_cstr(&h, "x-request-id", id);
    pw_send_local_response(403, msg, (size_t)(n < (int)sizeof msg ? n : (int)sizeof msg - 1), &h, "waf_blocked");
    pw_headers_free(&h);
    pw_bytes_free(&rid);
    return true;
}

static stream_state *state(pw_stream *s) {
    if (!s->user) s->user = calloc(1, sizeof(stream_state));
    return s->user;
}

static pw_action on_request_headers(pw_stream *s, size_t num_headers, bool end_of_stream) {
    (void)num_headers;
    const plugin *p = s->root->user;
    stream_state *st = state(s);
    if (!p || !st || !pw_get_headers(PW_MAP_REQUEST_HEADERS, &st->headers)) return PW_CONTINUE;
    size_t cl;
    const char *ct = hdr(&st->headers, "content-type", &cl);
    if (!end_of_stream && p->cfg.max_body_bytes > 0 && waf_body_inspectable(ct, ct ? cl : 0)) {
        /* Decide at the end of the body: the body callbacks return StopIterationAndBuffer
         * until end_of_stream, so nothing reaches the origin before the verdict (in Envoy
         * and in edgenode, which also reads bodies first for filters with a body hook). */
        st->waiting_body = true;
        return PW_CONTINUE;
    }
    inspect(s, st, NULL, 0, false);
    return PW_CONTINUE;
}

static pw_action on_request_body(pw_stream *s, size_t body_size, bool end_of_stream) {
    const plugin *p = s->root->user;
    stream_state *st = s->user;
    if (!p || !st || !st->waiting_body || st->done) return PW_CONTINUE;
    bool full = body_size >= p->cfg.max_body_bytes;
    if (!end_of_stream && !full) return PW_STOP_ITERATION;   /* keep buffering */
    size_t take = full ? p->cfg.max_body_bytes : body_size;
    pw_bytes body = {0};
    if (take) pw_get_buffer(PW_BUFFER_REQUEST_BODY, 0, take, &body);
    inspect(s, st, body.data, body.len, full && body_size > take);
    pw_bytes_free(&body);
    return PW_CONTINUE;
}

static pw_action on_response_headers(pw_stream *s, size_t num_headers, bool end_of_stream) {
    (void)num_headers; (void)end_of_stream;
    stream_state *st = s->user;
    if (st && st->score > 0) {
        char num[16];
        snprintf(num, sizeof num, "%d", st->score);
        pw_set_header_cstr(PW_MAP_RESPONSE_HEADERS, "x-waf-score", num);
        pw_set_header_cstr(PW_MAP_RESPONSE_HEADERS, "x-waf-rules", st->rules);
    }
    return PW_CONTINUE;
}

static void on_stream_delete(pw_stream *s) {
    stream_state *st = s->user;
    if (st) pw_headers_free(&st->headers);
    free(st);
    s->user = NULL;
}

static const pw_filter waf = {
    .root_id = NULL,
    .on_configure = on_configure,
    .on_root_delete = on_root_delete,
    .on_request_headers = on_request_headers,
    .on_request_body = on_request_body,
    .on_response_headers = on_response_headers,
    .on_stream_delete = on_stream_delete,
};

const pw_filter *const pw_filters[] = {&waf, NULL};
