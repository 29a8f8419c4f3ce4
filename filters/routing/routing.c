/*
 * routing: picks the origin of each request from a JSON route list (first match wins),
 * rewrites paths, edits headers, answers redirects and fixed responses, and splits
 * traffic between origins by weight (canary), sticky by a cookie or header.
 * Schema and examples: docs/filters.md#routing.
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "proxy_wasm.h"
#include "strutil.h"

#define MAX_CAPTURES 10

typedef enum { HDR_EQUALS, HDR_PRESENT, HDR_ABSENT } hdr_mode;

typedef struct { char *name; char *value; hdr_mode mode; } hdr_match;
typedef struct { char *origin; uint32_t weight; } split_target;
typedef struct { char **items; size_t n; } str_list;

typedef struct {
    char *label; /* route_name as filters read it: "name", or "routes[i]" */
    str_list hosts, methods;
    char *prefix;
    bool has_regex;
    regex_t regex;
    hdr_match *headers;
    size_t nheaders;
    char *origin;
    split_target *split;
    size_t nsplit;
    uint32_t total_weight;
    char *sticky_cookie, *sticky_header;
    char *rewrite;
    pw_headers req_set, resp_set, resp_add;
    str_list req_remove, resp_remove;
    int redirect_status;
    char *redirect_location;
    bool keep_query;
    int respond_status;
    char *respond_body;
    pw_headers respond_headers;
} route;

typedef struct {
    route *routes;
    size_t nroutes;
    char *default_origin;
    bool not_found;  /* no match -> 404 instead of the default origin */
} config;

/* ---- configuration ---------------------------------------------------------------------- */

typedef struct { char msg[256]; } cfg_error;

static bool cfg_fail(cfg_error *e, const char *key, const char *reason) {
    snprintf(e->msg, sizeof e->msg, "%s: %s", key, reason);
    return false;
}

static bool check_keys(const json_value *obj, const char *const *allowed, const char *key, cfg_error *e) {
    if (!json_is(obj, JSON_OBJECT)) return cfg_fail(e, key, "expected an object");
    for (size_t i = 0; i < obj->count; i++) {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++) ok = strcmp(*a, obj->keys[i]) == 0;
        if (!ok) {
            char k[160];
            snprintf(k, sizeof k, "%s.%s", key, obj->keys[i]);
            return cfg_fail(e, k, "unknown key");
        }
    }
    return true;
}

static char *opt_string(const json_value *v, const char *key, cfg_error *e, bool *ok) {
    if (!v) return NULL;
    if (!json_is(v, JSON_STRING)) *ok = cfg_fail(e, key, "expected a string");
    return *ok ? strdup(v->string) : NULL;
}

/* A string or an array of strings. */
static bool str_or_list(const json_value *v, str_list *out, const char *key, cfg_error *e, bool lower) {
    if (!v) return true;
    size_t n = json_is(v, JSON_STRING) ? 1 : json_len(v);
    if (!json_is(v, JSON_STRING) && !json_is(v, JSON_ARRAY)) return cfg_fail(e, key, "expected a string or an array of strings");
    out->items = calloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        const json_value *s = json_is(v, JSON_STRING) ? v : json_at(v, i);
        if (!json_is(s, JSON_STRING)) return cfg_fail(e, key, "expected a string or an array of strings");
        out->items[out->n++] = strdup(s->string);
        if (lower)
            for (char *c = out->items[out->n - 1]; *c; c++) *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    }
    return true;
}

/* {"name": "value", ...} -> header list (names lower-cased). */
static bool header_object(const json_value *v, pw_headers *out, const char *key, cfg_error *e) {
    if (!v) return true;
    if (!json_is(v, JSON_OBJECT)) return cfg_fail(e, key, "expected an object of header: value");
    for (size_t i = 0; i < v->count; i++) {
        if (!json_is(v->items[i], JSON_STRING)) return cfg_fail(e, key, "header values must be strings");
        char *name = strdup(v->keys[i]);
        for (char *c = name; *c; c++) *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
        pw_headers_add(out, name, strlen(name), v->items[i]->string, v->items[i]->string_len);
        free(name);
    }
    return true;
}

static bool header_edits(const json_value *v, pw_headers *set, pw_headers *add, str_list *remove, const char *key,
                         cfg_error *e) {
    if (!v) return true;
    static const char *const keys[] = {"set", "add", "remove", NULL};
    static const char *const req_keys[] = {"set", "remove", NULL};
    if (!check_keys(v, add ? keys : req_keys, key, e)) return false;
    char k[160];
    snprintf(k, sizeof k, "%s.set", key);
    if (!header_object(json_get(v, "set"), set, k, e)) return false;
    if (add) {
        snprintf(k, sizeof k, "%s.add", key);
        if (!header_object(json_get(v, "add"), add, k, e)) return false;
    }
    snprintf(k, sizeof k, "%s.remove", key);
    return str_or_list(json_get(v, "remove"), remove, k, e, true);
}

static bool parse_match(const json_value *m, route *r, const char *key, cfg_error *e) {
    static const char *const keys[] = {"host", "path_prefix", "path_regex", "method", "headers", NULL};
    char k[160];
    bool ok = true;
    if (!m) return true;
    if (!check_keys(m, keys, key, e)) return false;
    snprintf(k, sizeof k, "%s.host", key);
    if (!str_or_list(json_get(m, "host"), &r->hosts, k, e, true)) return false;
    snprintf(k, sizeof k, "%s.method", key);
    if (!str_or_list(json_get(m, "method"), &r->methods, k, e, false)) return false;
    snprintf(k, sizeof k, "%s.path_prefix", key);
    r->prefix = opt_string(json_get(m, "path_prefix"), k, e, &ok);
    if (!ok) return false;
    snprintf(k, sizeof k, "%s.path_regex", key);
    char *re = opt_string(json_get(m, "path_regex"), k, e, &ok);
    if (!ok) return false;
    if (re) {
        int rc = regcomp(&r->regex, re, REG_EXTENDED);
        free(re);
        if (rc != 0) {
            char why[120], msg[160];
            regerror(rc, &r->regex, why, sizeof why);
            snprintf(msg, sizeof msg, "invalid regular expression: %s", why);
            return cfg_fail(e, k, msg);
        }
        r->has_regex = true;
    }
    const json_value *h = json_get(m, "headers");
    snprintf(k, sizeof k, "%s.headers", key);
    if (h && !json_is(h, JSON_OBJECT)) return cfg_fail(e, k, "expected an object of header: string | true | false");
    r->nheaders = json_len(h);
    r->headers = calloc(r->nheaders ? r->nheaders : 1, sizeof *r->headers);
    for (size_t i = 0; i < r->nheaders; i++) {
        hdr_match *hm = &r->headers[i];
        hm->name = strdup(h->keys[i]);
        for (char *c = hm->name; *c; c++) *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
        if (json_is(h->items[i], JSON_STRING)) {
            hm->mode = HDR_EQUALS;
            hm->value = strdup(h->items[i]->string);
        } else if (json_is(h->items[i], JSON_BOOL)) {
            hm->mode = h->items[i]->boolean ? HDR_PRESENT : HDR_ABSENT;
        } else {
            return cfg_fail(e, k, "values must be a string (equals), true (present) or false (absent)");
        }
    }
    return true;
}

static bool parse_split(const json_value *s, route *r, const char *key, cfg_error *e) {
    static const char *const keys[] = {"origins", "sticky_cookie", "sticky_header", NULL};
    static const char *const tkeys[] = {"origin", "weight", NULL};
    char k[160];
    bool ok = true;
    if (!check_keys(s, keys, key, e)) return false;
    const json_value *targets = json_get(s, "origins");
    snprintf(k, sizeof k, "%s.origins", key);
    if (!json_is(targets, JSON_ARRAY) || targets->count == 0) return cfg_fail(e, k, "expected a non-empty array");
    r->nsplit = targets->count;
    r->split = calloc(r->nsplit, sizeof *r->split);
    for (size_t i = 0; i < r->nsplit; i++) {
        const json_value *t = targets->items[i];
        snprintf(k, sizeof k, "%s.origins[%zu]", key, i);
        if (!check_keys(t, tkeys, k, e)) return false;
        const char *origin = json_string(json_get(t, "origin"), NULL);
        double w = json_number(json_get(t, "weight"), -1);
        if (!origin || !*origin) return cfg_fail(e, k, "origin: expected a non-empty string");
        if (w < 0 || w > 1000000 || w != (double)(uint32_t)w) return cfg_fail(e, k, "weight: expected an integer 0..1000000");
        if (r->total_weight > UINT32_MAX - (uint32_t)w) return cfg_fail(e, k, "weight: the weights add up to more than 2^32-1");
        r->split[i].origin = strdup(origin);
        r->split[i].weight = (uint32_t)w;
        r->total_weight += (uint32_t)w;
    }
    snprintf(k, sizeof k, "%s.origins", key);
    if (r->total_weight == 0) return cfg_fail(e, k, "the weights add up to 0");
    snprintf(k, sizeof k, "%s.sticky_cookie", key);
    r->sticky_cookie = opt_string(json_get(s, "sticky_cookie"), k, e, &ok);
    snprintf(k, sizeof k, "%s.sticky_header", key);
    if (ok) r->sticky_header = opt_string(json_get(s, "sticky_header"), k, e, &ok);
    if (ok && r->sticky_header)
        for (char *c = r->sticky_header; *c; c++) *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    return ok;
}

static bool parse_status(const json_value *v, int lo, int hi, int *out, const char *key, cfg_error *e) {
    double d = json_number(v, -1);
    if (d < lo || d > hi || d != (double)(int)d) {
        char msg[80];
        snprintf(msg, sizeof msg, "expected an integer status %d..%d", lo, hi);
        return cfg_fail(e, key, msg);
    }
    *out = (int)d;
    return true;
}

static bool parse_route(const json_value *v, route *r, size_t idx, cfg_error *e) {
    static const char *const keys[] = {"name", "match", "origin", "split", "rewrite", "request_headers",
                                       "response_headers", "redirect", "respond", NULL};
    char key[64], k[160];
    bool ok = true;
    snprintf(key, sizeof key, "routes[%zu]", idx);
    if (!check_keys(v, keys, key, e)) return false;
    snprintf(k, sizeof k, "%s.match", key);
    if (!parse_match(json_get(v, "match"), r, k, e)) return false;
    snprintf(k, sizeof k, "%s.name", key);
    r->label = opt_string(json_get(v, "name"), k, e, &ok);
    if (!ok) return false;
    if (!r->label) r->label = strdup(key);
    snprintf(k, sizeof k, "%s.origin", key);
    r->origin = opt_string(json_get(v, "origin"), k, e, &ok);
    snprintf(k, sizeof k, "%s.rewrite", key);
    if (ok) r->rewrite = opt_string(json_get(v, "rewrite"), k, e, &ok);
    if (!ok) return false;
    if (r->rewrite && r->rewrite[0] != '/') return cfg_fail(e, k, "must start with '/'");
    const json_value *split = json_get(v, "split");
    snprintf(k, sizeof k, "%s.split", key);
    if (split && !parse_split(split, r, k, e)) return false;
    if (split && r->origin) return cfg_fail(e, k, "use either origin or split, not both");
    snprintf(k, sizeof k, "%s.request_headers", key);
    if (!header_edits(json_get(v, "request_headers"), &r->req_set, NULL, &r->req_remove, k, e)) return false;
    snprintf(k, sizeof k, "%s.response_headers", key);
    if (!header_edits(json_get(v, "response_headers"), &r->resp_set, &r->resp_add, &r->resp_remove, k, e))
        return false;
    const json_value *redirect = json_get(v, "redirect");
    if (redirect) {
        static const char *const rkeys[] = {"status", "location", "keep_query", NULL};
        snprintf(k, sizeof k, "%s.redirect", key);
        if (!check_keys(redirect, rkeys, k, e)) return false;
        r->redirect_status = 301;
        const json_value *st = json_get(redirect, "status");
        snprintf(k, sizeof k, "%s.redirect.status", key);
        if (st && !parse_status(st, 301, 308, &r->redirect_status, k, e)) return false;
        if (r->redirect_status != 301 && r->redirect_status != 302 && r->redirect_status != 307 &&
            r->redirect_status != 308)
            return cfg_fail(e, k, "expected 301, 302, 307 or 308");
        snprintf(k, sizeof k, "%s.redirect.location", key);
        r->redirect_location = opt_string(json_get(redirect, "location"), k, e, &ok);
        if (!ok) return false;
        if (!r->redirect_location) return cfg_fail(e, k, "required");
        r->keep_query = json_bool(json_get(redirect, "keep_query"), true);
    }
    const json_value *respond = json_get(v, "respond");
    if (respond) {
        static const char *const fkeys[] = {"status", "body", "headers", NULL};
        snprintf(k, sizeof k, "%s.respond", key);
        if (!check_keys(respond, fkeys, k, e)) return false;
        snprintf(k, sizeof k, "%s.respond.status", key);
        r->respond_status = 200;
        const json_value *st = json_get(respond, "status");
        if (st && !parse_status(st, 200, 599, &r->respond_status, k, e)) return false;
        snprintf(k, sizeof k, "%s.respond.body", key);
        r->respond_body = opt_string(json_get(respond, "body"), k, e, &ok);
        if (!ok) return false;
        snprintf(k, sizeof k, "%s.respond.headers", key);
        if (!header_object(json_get(respond, "headers"), &r->respond_headers, k, e)) return false;
    }
    if (redirect && respond) return cfg_fail(e, key, "use either redirect or respond, not both");
    return true;
}

static void free_list(str_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
}

static void free_config(config *c) {
    if (!c) return;
    for (size_t i = 0; i < c->nroutes; i++) {
        route *r = &c->routes[i];
        free(r->label);
        free_list(&r->hosts);
        free_list(&r->methods);
        free_list(&r->req_remove);
        free_list(&r->resp_remove);
        free(r->prefix);
        if (r->has_regex) regfree(&r->regex);
        for (size_t j = 0; j < r->nheaders; j++) {
            free(r->headers[j].name);
            free(r->headers[j].value);
        }
        free(r->headers);
        for (size_t j = 0; j < r->nsplit; j++) free(r->split[j].origin);
        free(r->split);
        free(r->origin);
        free(r->sticky_cookie);
        free(r->sticky_header);
        free(r->rewrite);
        free(r->redirect_location);
        free(r->respond_body);
        pw_headers_free(&r->req_set);
        pw_headers_free(&r->resp_set);
        pw_headers_free(&r->resp_add);
        pw_headers_free(&r->respond_headers);
    }
    free(c->routes);
    free(c->default_origin);
    free(c);
}

static bool parse_config(const json_value *root, config *c, cfg_error *e) {
    static const char *const keys[] = {"routes", "default_origin", "no_match", NULL};
    bool ok = true;
    if (!check_keys(root, keys, "config", e)) return false;
    c->default_origin = opt_string(json_get(root, "default_origin"), "default_origin", e, &ok);
    if (!ok) return false;
    const char *no_match = json_string(json_get(root, "no_match"), "default");
    if (json_get(root, "no_match") && !json_is(json_get(root, "no_match"), JSON_STRING))
        return cfg_fail(e, "no_match", "expected \"default\" or \"404\"");
    if (strcmp(no_match, "404") == 0) c->not_found = true;
    else if (strcmp(no_match, "default") != 0) return cfg_fail(e, "no_match", "expected \"default\" or \"404\"");
    const json_value *routes = json_get(root, "routes");
    if (routes && !json_is(routes, JSON_ARRAY)) return cfg_fail(e, "routes", "expected an array");
    c->nroutes = json_len(routes);
    c->routes = calloc(c->nroutes ? c->nroutes : 1, sizeof *c->routes);
    for (size_t i = 0; i < c->nroutes; i++)
        if (!parse_route(routes->items[i], &c->routes[i], i, e)) return false;
    return true;
}

static bool on_configure(pw_root *root, const char *text, size_t len) {
    char err[200];
    cfg_error e = {{0}};
    json_value *doc = json_parse(len ? text : "{}", len ? len : 2, err, sizeof err);
    if (!doc) {
        pw_error("routing: configuration is not valid JSON: %s", err);
        return false;
    }
    config *c = calloc(1, sizeof *c);
    bool ok = parse_config(doc, c, &e);
    json_free(doc);
    if (!ok) {
        pw_error("routing: bad configuration: %s", e.msg);
        free_config(c);
        return false;
    }
    free_config(root->user);
    root->user = c;
    return true;
}

static void on_root_delete(pw_root *root) {
    free_config(root->user);
    root->user = NULL;
}

/* ---- matching ------------------------------------------------------------------------------ */

typedef struct {
    pw_str host, method, path, query;  /* path without the query; host without the port */
    pw_str caps[MAX_CAPTURES];
    size_t ncaps;
} request_view;

static bool host_matches(const str_list *hosts, pw_str host) {
    if (hosts->n == 0) return true;
    for (size_t i = 0; i < hosts->n; i++) {
        pw_str pat = pw_str_c(hosts->items[i]);
        if (pat.n == 1 && pat.p[0] == '*') return true;
        if (pat.n > 2 && pat.p[0] == '*' && pat.p[1] == '.') {
            pw_str suffix = {pat.p + 1, pat.n - 1}; /* ".example.com" */
            if (host.n > suffix.n && pw_str_ends_with_i(host, suffix)) return true;
        } else if (pw_str_ieq(pat, host)) {
            return true;
        }
    }
    return false;
}

static bool method_matches(const str_list *methods, pw_str method) {
    if (methods->n == 0) return true;
    for (size_t i = 0; i < methods->n; i++)
        if (pw_str_ieq(pw_str_c(methods->items[i]), method)) return true;
    return false;
}

static bool headers_match(const route *r) {
    for (size_t i = 0; i < r->nheaders; i++) {
        pw_bytes v;
        bool present = pw_get_header(PW_MAP_REQUEST_HEADERS, r->headers[i].name, &v);
        bool ok = r->headers[i].mode == HDR_PRESENT   ? present
                  : r->headers[i].mode == HDR_ABSENT  ? !present
                                                      : present && strcmp(v.data ? v.data : "", r->headers[i].value) == 0;
        pw_bytes_free(&v);
        if (!ok) return false;
    }
    return true;
}

/* Fills rv->caps: regex groups, or for a prefix match $0 = path and $1 = the rest. */
static bool route_matches(const route *r, request_view *rv, const char *path_z) {
    if (!host_matches(&r->hosts, rv->host) || !method_matches(&r->methods, rv->method)) return false;
    if (r->prefix && !pw_str_starts_with(rv->path, pw_str_c(r->prefix))) return false;
    rv->ncaps = 2;
    rv->caps[0] = rv->path;
    size_t plen = r->prefix ? strlen(r->prefix) : 0;
    rv->caps[1] = (pw_str){rv->path.p + plen, rv->path.n - plen};
    if (r->has_regex) {
        regmatch_t m[MAX_CAPTURES];
        if (regexec(&r->regex, path_z, MAX_CAPTURES, m, 0) != 0) return false;
        rv->ncaps = 0;
        for (size_t i = 0; i < MAX_CAPTURES; i++) {
            rv->caps[i] = m[i].rm_so < 0 ? (pw_str){"", 0} : (pw_str){path_z + m[i].rm_so, (size_t)(m[i].rm_eo - m[i].rm_so)};
            if (m[i].rm_so >= 0) rv->ncaps = i + 1;
        }
    }
    return headers_match(r);
}

/* Expands $0..$9, ${host}, ${path}, ${query} and $$ in a template. */
static void expand(pw_sb *out, const char *tpl, const request_view *rv) {
    for (const char *p = tpl; *p; p++) {
        if (*p != '$') {
            pw_sb_append(out, p, 1);
            continue;
        }
        if (p[1] >= '0' && p[1] <= '9') {
            size_t i = (size_t)(p[1] - '0');
            if (i < rv->ncaps) pw_sb_append(out, rv->caps[i].p, rv->caps[i].n);
            p++;
        } else if (p[1] == '$') {
            pw_sb_append(out, "$", 1);
            p++;
        } else if (strncmp(p + 1, "{host}", 6) == 0) {
            pw_sb_append(out, rv->host.p, rv->host.n);
            p += 6;
        } else if (strncmp(p + 1, "{path}", 6) == 0) {
            pw_sb_append(out, rv->path.p, rv->path.n);
            p += 6;
        } else if (strncmp(p + 1, "{query}", 7) == 0) {
            pw_sb_append(out, rv->query.p, rv->query.n);
            p += 7;
        } else {
            pw_sb_append(out, p, 1);
        }
    }
}

static void append_query(pw_sb *out, const request_view *rv) {
    if (rv->query.n && !memchr(out->data, '?', out->len)) {
        pw_sb_append(out, "?", 1);
        pw_sb_append(out, rv->query.p, rv->query.n);
    }
}

static const char *pick_split(const route *r) {
    pw_bytes key = {0};
    bool have = false;
    if (r->sticky_header) have = pw_get_header(PW_MAP_REQUEST_HEADERS, r->sticky_header, &key) && key.len;
    if (!have && r->sticky_cookie) {
        pw_bytes cookie;
        pw_str v;
        if (pw_get_header(PW_MAP_REQUEST_HEADERS, "cookie", &cookie) &&
            pw_cookie_get((pw_str){cookie.data, cookie.len}, r->sticky_cookie, &v) && v.n) {
            pw_bytes_free(&key);
            key.data = pw_str_dup(v);
            key.len = v.n;
            have = true;
        }
        pw_bytes_free(&cookie);
    }
    uint32_t h = have ? pw_fnv1a(key.data, key.len) : pw_random_u32();
    pw_bytes_free(&key);
    uint32_t bucket = h % r->total_weight;
    for (size_t i = 0; i < r->nsplit; i++) {
        if (bucket < r->split[i].weight) return r->split[i].origin;
        bucket -= r->split[i].weight;
    }
    return r->split[r->nsplit - 1].origin;
}

static void set_origin(const char *origin) {
    if (origin && pw_set_property("edgenode.origin", origin, strlen(origin)) != PW_OK)
        pw_warn("routing: cannot set edgenode.origin to %s", origin);
}

static pw_action local_reply(int status, const char *body, const pw_headers *headers, const char *details) {
    pw_send_local_response((uint32_t)status, body, body ? strlen(body) : 0, headers, details);
    return PW_STOP_ITERATION;
}

static pw_action on_request_headers(pw_stream *s, size_t n, bool eos) {
    (void)n;
    (void)eos;
    const config *c = s->root->user;
    if (!c) return PW_CONTINUE;
    pw_bytes authority = {0}, method = {0}, path = {0};
    if (!pw_get_header(PW_MAP_REQUEST_HEADERS, ":authority", &authority))
        pw_get_header(PW_MAP_REQUEST_HEADERS, "host", &authority);
    pw_get_header(PW_MAP_REQUEST_HEADERS, ":method", &method);
    pw_get_header(PW_MAP_REQUEST_HEADERS, ":path", &path);

    request_view rv = {0};
    rv.host = (pw_str){authority.data ? authority.data : "", authority.len};
    if (rv.host.n && rv.host.p[0] != '[') { /* strip :port (IPv6 literals keep theirs) */
        long colon = pw_str_index(rv.host, ':');
        if (colon >= 0) rv.host.n = (size_t)colon;
    }
    rv.method = (pw_str){method.data ? method.data : "", method.len};
    pw_str target = {path.data ? path.data : "/", path.data ? path.len : 1};
    rv.path = pw_str_split(&target, '?');
    rv.query = target;
    char *path_z = pw_str_dup(rv.path);

    pw_action action = PW_CONTINUE;
    const route *hit = NULL;
    for (size_t i = 0; i < c->nroutes && !hit; i++)
        if (route_matches(&c->routes[i], &rv, path_z)) hit = &c->routes[i];

    if (!hit) {
        if (c->not_found) action = local_reply(404, "no route for this request\n", NULL, "routing_no_match");
        else set_origin(c->default_origin);
    } else if (hit->respond_status) {
        action = local_reply(hit->respond_status, hit->respond_body, &hit->respond_headers, "routing_respond");
    } else if (hit->redirect_status) {
        pw_sb loc = {0};
        expand(&loc, hit->redirect_location, &rv);
        if (hit->keep_query) append_query(&loc, &rv);
        pw_headers h = {0};
        pw_headers_add(&h, "location", 8, loc.data, loc.len);
        action = local_reply(hit->redirect_status, NULL, &h, "routing_redirect");
        pw_headers_free(&h);
        pw_sb_free(&loc);
    } else {
        if (pw_set_property("edgenode.route_name", hit->label, strlen(hit->label)) != PW_OK)
            pw_warn("routing: cannot set edgenode.route_name");
        set_origin(hit->nsplit ? pick_split(hit) : hit->origin ? hit->origin : c->default_origin);
        if (hit->rewrite) {
            pw_sb np = {0};
            expand(&np, hit->rewrite, &rv);
            append_query(&np, &rv);
            pw_set_header(PW_MAP_REQUEST_HEADERS, ":path", np.data, np.len);
            pw_sb_free(&np);
        }
        for (size_t i = 0; i < hit->req_remove.n; i++) pw_remove_header(PW_MAP_REQUEST_HEADERS, hit->req_remove.items[i]);
        for (size_t i = 0; i < hit->req_set.count; i++)
            pw_set_header(PW_MAP_REQUEST_HEADERS, hit->req_set.items[i].key, hit->req_set.items[i].value,
                          hit->req_set.items[i].value_len);
        /* the route lives as long as the configuration, which the host sets once per
         * root context (a new configuration means a new VM), so it outlives the stream */
        s->user = (void *)hit;
    }
    free(path_z);
    pw_bytes_free(&authority);
    pw_bytes_free(&method);
    pw_bytes_free(&path);
    return action;
}

static pw_action on_response_headers(pw_stream *s, size_t n, bool eos) {
    (void)n;
    (void)eos;
    const route *r = s->user;
    if (!r) return PW_CONTINUE;
    for (size_t i = 0; i < r->resp_remove.n; i++) pw_remove_header(PW_MAP_RESPONSE_HEADERS, r->resp_remove.items[i]);
    for (size_t i = 0; i < r->resp_set.count; i++)
        pw_set_header(PW_MAP_RESPONSE_HEADERS, r->resp_set.items[i].key, r->resp_set.items[i].value,
                      r->resp_set.items[i].value_len);
    for (size_t i = 0; i < r->resp_add.count; i++)
        pw_add_header(PW_MAP_RESPONSE_HEADERS, r->resp_add.items[i].key, r->resp_add.items[i].value,
                      r->resp_add.items[i].value_len);
    return PW_CONTINUE;
}

static const pw_filter routing = {
    .root_id = NULL,
    .on_configure = on_configure,
    .on_root_delete = on_root_delete,
    .on_request_headers = on_request_headers,
    .on_response_headers = on_response_headers,
};

const pw_filter *const pw_filters[] = {&routing, NULL};
