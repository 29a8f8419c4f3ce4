/* WAF engine: target extraction, request-level rules and anomaly scoring (engine.h). */
#include "engine.h"

#include <stdlib.h>
#include <string.h>

#include "bodyparse.h"
#include "normalize.h"
#include "rules.h"

typedef struct {
    const waf_config *cfg;
    const waf_request *req;
    waf_result *res;
    char host[256];
    size_t host_len;
    const char *path; size_t path_len;
} ctx;

static const char *const FAMILY_NAMES[WAF_FAM_COUNT] = {
    "protocol", "scanner", "lfi", "rfi", "rce", "php", "generic", "xss", "sqli", "session", "java"};

const char *waf_family_name(waf_family f) {
    return (f >= 0 && f < WAF_FAM_COUNT) ? FAMILY_NAMES[f] : "unknown";
}

/* Request-level rules that are not in the per-value table. */
typedef struct { uint32_t id; waf_family family; uint8_t paranoia; uint8_t severity; } meta_rule;
static const meta_rule META_RULES[] = {
    {911100, WAF_FAM_PROTOCOL, 1, SEV_CRITICAL},  /* method not allowed */
    {920160, WAF_FAM_PROTOCOL, 1, SEV_CRITICAL},  /* Content-Length not a number */
    {920181, WAF_FAM_PROTOCOL, 1, SEV_CRITICAL},  /* Content-Length and Transfer-Encoding */
    {920270, WAF_FAM_PROTOCOL, 1, SEV_ERROR},     /* control characters in the request line */
    {920280, WAF_FAM_PROTOCOL, 1, SEV_WARNING},   /* missing Host */
    {921151, WAF_FAM_PROTOCOL, 1, SEV_CRITICAL},  /* CR/LF in a query argument */
    {921180, WAF_FAM_PROTOCOL, 1, SEV_CRITICAL},  /* parameter pollution */
    {921230, WAF_FAM_PROTOCOL, 1, SEV_CRITICAL},  /* malformed Range */
    {921250, WAF_FAM_PROTOCOL, 1, SEV_CRITICAL},  /* legacy $Version cookies */
    {921421, WAF_FAM_PROTOCOL, 1, SEV_CRITICAL},  /* a second media type in Content-Type */
    {913100, WAF_FAM_SCANNER, 1, SEV_CRITICAL},   /* scanner user agent */
    {943110, WAF_FAM_SESSION, 1, SEV_CRITICAL},   /* session id with off-domain Referer */
    {943120, WAF_FAM_SESSION, 1, SEV_CRITICAL},   /* session id without Referer */
    {944300, WAF_FAM_JAVA, 1, SEV_CRITICAL},      /* base64-encoded gadget/payload keywords */
};
#define N_META ((int)(sizeof META_RULES / sizeof META_RULES[0]))

int waf_rule_family(uint32_t id) {
    for (int i = 0; i < WAF_N_RULES; i++) if (WAF_RULES[i].id == id) return (int)WAF_RULES[i].family;
    for (int i = 0; i < N_META; i++) if (META_RULES[i].id == id) return (int)META_RULES[i].family;
    return -1;
}

void waf_config_default(waf_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->threshold = 5;
    cfg->paranoia = 1;
    cfg->max_body_bytes = 128 * 1024;
}

bool waf_config_disable_rule(waf_config *cfg, uint32_t id) {
    if (cfg->n_disabled >= WAF_MAX_DISABLED) return false;
    cfg->disabled[cfg->n_disabled++] = id;
    return true;
}

bool waf_config_add_path(waf_config *cfg, const char *prefix, size_t len, const uint32_t *ids, int n_ids) {
    if (cfg->n_paths >= WAF_MAX_PATH_RULES || len >= WAF_PREFIX_MAX || n_ids > WAF_MAX_PATH_IDS || n_ids < 0)
        return false;
    waf_path_rule *p = &cfg->paths[cfg->n_paths++];
    memcpy(p->prefix, prefix, len);
    p->prefix[len] = 0;
    p->n_rules = n_ids;
    for (int i = 0; i < n_ids; i++) p->rules[i] = ids[i];
    return true;
}

static bool rule_enabled(const ctx *c, uint32_t id) {
    for (int i = 0; i < c->cfg->n_disabled; i++) if (c->cfg->disabled[i] == id) return false;
    for (int i = 0; i < c->cfg->n_paths; i++) {
        const waf_path_rule *p = &c->cfg->paths[i];
        size_t L = strlen(p->prefix);
        if (c->path_len < L || memcmp(c->path, p->prefix, L) != 0) continue;
        if (p->n_rules == 0) return false;
        for (int k = 0; k < p->n_rules; k++) if (p->rules[k] == id) return false;
    }
    return true;
}

static bool already(const waf_result *r, uint32_t id) {
    for (int i = 0; i < r->n_matches; i++) if (r->rules[i] == id) return true;
    return false;
}

static void add_match(ctx *c, uint32_t id, waf_family fam, int severity) {
    if (already(c->res, id) || !rule_enabled(c, id)) return;
    if (c->res->n_matches < WAF_MAX_MATCHES) c->res->rules[c->res->n_matches++] = id;
    c->res->score += severity;
    c->res->family_mask |= 1u << fam;
}

static void meta_match(ctx *c, uint32_t id) {
    for (int i = 0; i < N_META; i++) {
        if (META_RULES[i].id != id) continue;
        if (META_RULES[i].paranoia <= c->cfg->paranoia)
            add_match(c, id, META_RULES[i].family, META_RULES[i].severity);
        return;
    }
}

/* Run every applicable rule over one value. */
static void inspect_value(ctx *c, int kind, const char *s, size_t n) {
    if (n == 0) return;
    waf_norm v;
    if (!waf_normalize(s, n, &v)) return;
    waf_target t = {kind, c->host, c->host_len};
    for (int i = 0; i < WAF_N_RULES; i++) {
        const waf_rule *r = &WAF_RULES[i];
        if (!(r->targets & (uint32_t)kind) || r->paranoia > c->cfg->paranoia) continue;
        if (already(c->res, r->id)) continue;
        if (r->detect(&v, &t)) add_match(c, r->id, r->family, r->severity);
    }
    waf_norm_free(&v);
    if ((kind & (T_ARG | T_ARG_NAME | T_COOKIE | T_COOKIE_NAME | T_HEADER | T_BODY)) &&
        !already(c->res, 944300) && waf_base64_payload(s, n))
        meta_match(c, 944300);
}

/* ---------------------------------------------------------------- helpers */

static bool ieq(const char *a, size_t an, const char *b) {
    size_t bn = strlen(b);
    if (an != bn) return false;
    for (size_t i = 0; i < an; i++) {
        char x = a[i];
        if (x >= 'A' && x <= 'Z') x = (char)(x | 0x20);
        if (x != b[i]) return false;
    }
    return true;
}

static bool istarts(const char *a, size_t an, const char *b) {
    size_t bn = strlen(b);
    return an >= bn && ieq(a, bn, b);
}

static void arg_cb(void *user, int kind, const char *s, size_t n) {
    inspect_value((ctx *)user, kind, s, n);
}

static const char *const SESSION_NAMES[] = {
    "jsessionid", "phpsessid", "aspsessionid", "asp.net_sessionid", "cfid", "cftoken", "sid",
    "_flask_session", "next-auth.session-token", "meteor_login_token", "connect.sid",
    "laravel_session", "ci_session", "rack.session", "_session_id", "sessid",
    "symfony", "express.sid", "koa.sess", NULL};

/* Known session parameter names, plus the generic shapes frameworks use ("*sess*", "*.sid"). */
static bool is_session_name(const char *s, size_t n) {
    for (const char *const *p = SESSION_NAMES; *p; p++) if (ieq(s, n, *p)) return true;
    for (size_t i = 0; i + 4 <= n; i++) if (istarts(s + i, n - i, "sess")) return true;
    return (n > 4 && ieq(s + n - 4, 4, ".sid")) || (n > 12 && ieq(s + n - 12, 12, "_login_token"));
}

/* Query string: values, names, CR/LF and parameter pollution checks. */
static void inspect_query(ctx *c, const char *q, size_t n, const char *referer, size_t referer_len) {
    char names[16][32];
    int counts[16] = {0};
    int nnames = 0;
    size_t i = 0;
    while (i <= n && n > 0) {
        size_t st = i;
        while (i < n && q[i] != '&') i++;
        const char *part = q + st;
        size_t plen = i - st;
        i++;
        if (plen == 0) { if (i > n) break; continue; }
        const char *eq = memchr(part, '=', plen);
        size_t nlen = eq ? (size_t)(eq - part) : plen;
        char *name = malloc(nlen + 1), *val = NULL;
        if (!name) return;
        size_t dn = waf_url_decode(part, nlen, name, true);
        size_t vn = 0;
        if (eq) {
            val = malloc(plen - nlen);
            if (!val) { free(name); return; }
            vn = waf_url_decode(eq + 1, plen - nlen - 1, val, true);
        }
        inspect_value(c, T_ARG_NAME, name, dn);
        if (val) {
            inspect_value(c, T_ARG, val, vn);
            /* a line break that starts a new "name=value" (argument injection) */
            const char *nl = memchr(val, '\n', vn);
            if (!nl) nl = memchr(val, '\r', vn);
            if (nl && memchr(nl, '=', vn - (size_t)(nl - val))) meta_match(c, 921151);
        }
        if (is_session_name(name, dn)) {
            if (!referer) meta_match(c, 943120);
            else {
                /* off-domain Referer: its host differs from the requested Host */
                const char *p = memchr(referer, '/', referer_len);
                const char *hs = (p && p + 1 < referer + referer_len && p[1] == '/') ? p + 2 : referer;
                size_t rest = referer_len - (size_t)(hs - referer), hl = 0;
                while (hl < rest && hs[hl] != '/' && hs[hl] != ':' && hs[hl] != '?') hl++;
                bool same = hl == c->host_len && c->host_len && ieq(hs, hl, c->host);
                if (!same) meta_match(c, 943110);
            }
        }
        if (dn > 0 && dn < 32 && !(dn >= 2 && name[dn - 2] == '[' && name[dn - 1] == ']')) {
            int k = 0;
            while (k < nnames && !(strlen(names[k]) == dn && memcmp(names[k], name, dn) == 0)) k++;
            if (k == nnames && nnames < 16) { memcpy(names[k], name, dn); names[k][dn] = 0; nnames++; }
            if (k < 16 && ++counts[k] >= 3) meta_match(c, 921180);
        }
        free(name);
        free(val);
        if (i > n) break;
    }
}

static void inspect_cookies(ctx *c, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == ';')) i++;
        size_t st = i;
        while (i < n && s[i] != ';') i++;
        if (i == st) continue;
        const char *part = s + st;
        size_t plen = i - st;
        const char *eq = memchr(part, '=', plen);
        size_t nlen = eq ? (size_t)(eq - part) : plen;
        if (nlen > 0 && part[0] == '$' && istarts(part, nlen, "$version")) meta_match(c, 921250);
        inspect_value(c, T_COOKIE_NAME, part, nlen);
        if (eq) inspect_value(c, T_COOKIE, eq + 1, plen - nlen - 1);
    }
}

static bool is_structural_header(const char *name, size_t n) {
    static const char *const H[] = {
        "host", "accept", "accept-encoding", "accept-language", "accept-charset", "connection",
        "content-length", "content-type", "cache-control", "pragma", "keep-alive",
        "proxy-connection", "te", "transfer-encoding", "upgrade", "authorization", "if-none-match",
        "if-modified-since", "if-match", "if-unmodified-since", "if-range", "range", "dnt",
        "upgrade-insecure-requests", "origin", "x-forwarded-for", "x-forwarded-proto",
        "x-forwarded-host", "x-real-ip", "via", "forwarded", "x-request-id", "traceparent",
        "tracestate", "content-encoding", "expect", "date", "max-forwards", NULL};
    for (const char *const *h = H; *h; h++) if (ieq(name, n, *h)) return true;
    return n > 4 && istarts(name, n, "sec-");
}

static bool is_filename_header(const char *name, size_t n) {
    return ieq(name, n, "x-filename") || ieq(name, n, "x_filename") || ieq(name, n, "x.filename") ||
           ieq(name, n, "x-file-name");
}

static bool all_digits(const char *s, size_t n) {
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

bool waf_body_inspectable(const char *ct, size_t n) {
    return waf_body_kind(ct, n) != WAF_BODY_NONE;
}

void waf_inspect(const waf_config *cfg, const waf_request *req, waf_result *res) {
    memset(res, 0, sizeof *res);
    ctx c = {cfg, req, res, {0}, 0, NULL, 0};
    const char *uri = req->uri ? req->uri : "";
    size_t un = req->uri ? req->uri_len : 0;
    const char *qm = memchr(uri, '?', un);
    c.path = uri;
    c.path_len = qm ? (size_t)(qm - uri) : un;

    /* headers first: Host, Content-Type, Referer and the header-borne rules */
    const char *ctype = NULL, *referer = NULL, *cl = NULL;
    size_t ctype_len = 0, referer_len = 0, cl_len = 0;
    bool has_host = false, has_te = false;
    for (size_t i = 0; i < req->n_headers; i++) {
        const waf_header *h = &req->headers[i];
        if (ieq(h->name, h->name_len, "host") || ieq(h->name, h->name_len, ":authority")) {
            has_host = h->value_len > 0;
            size_t L = 0;
            while (L < h->value_len && L + 1 < sizeof c.host && h->value[L] != ':') {
                char x = h->value[L];
                c.host[L++] = (char)((x >= 'A' && x <= 'Z') ? x | 0x20 : x);
            }
            c.host_len = L;
            if (L > 4 && memcmp(c.host, "www.", 4) == 0) { memmove(c.host, c.host + 4, L - 4); c.host_len = L - 4; }
        } else if (ieq(h->name, h->name_len, "content-type")) { ctype = h->value; ctype_len = h->value_len; }
        else if (ieq(h->name, h->name_len, "referer")) { referer = h->value; referer_len = h->value_len; }
        else if (ieq(h->name, h->name_len, "content-length")) { cl = h->value; cl_len = h->value_len; }
        else if (ieq(h->name, h->name_len, "transfer-encoding")) has_te = true;
    }

    /* method */
    static const char *const METHODS[] = {"GET", "HEAD", "POST", "OPTIONS", "PUT", "PATCH", "DELETE", NULL};
    bool method_ok = false;
    for (const char *const *m = METHODS; *m; m++)
        if (req->method_len == strlen(*m) && memcmp(req->method, *m, req->method_len) == 0) method_ok = true;
    if (!method_ok) meta_match(&c, 911100);
    if (!has_host) meta_match(&c, 920280);
    if (cl && !all_digits(cl, cl_len)) meta_match(&c, 920160);
    if (cl && has_te) meta_match(&c, 920181);
    for (size_t i = 0; i < un; i++) {
        unsigned char x = (unsigned char)uri[i];
        if (x < 0x20 || x == 0x7f) { meta_match(&c, 920270); break; }
    }

    for (size_t i = 0; i < req->n_headers; i++) {
        const waf_header *h = &req->headers[i];
        const char *nm = h->name; size_t nl = h->name_len;
        if (nl && nm[0] == ':') continue;   /* pseudo-headers: method/path/authority handled above */
        if (ieq(nm, nl, "cookie")) { inspect_cookies(&c, h->value, h->value_len); continue; }
        if (ieq(nm, nl, "user-agent")) {
            char ua[512];
            size_t L = h->value_len < sizeof ua ? h->value_len : sizeof ua;
            for (size_t k = 0; k < L; k++) {
                char x = h->value[k];
                ua[k] = (char)((x >= 'A' && x <= 'Z') ? x | 0x20 : x);
            }
            if (waf_is_scanner_ua(ua, L)) meta_match(&c, 913100);
            inspect_value(&c, T_UA, h->value, h->value_len);
            continue;
        }
        if (ieq(nm, nl, "referer")) { inspect_value(&c, T_REFERER, h->value, h->value_len); continue; }
        if (ieq(nm, nl, "range")) {
            if (!istarts(h->value, h->value_len, "bytes=")) meta_match(&c, 921230);
            continue;
        }
        if (ieq(nm, nl, "content-type")) {
            /* a media type inside the parameters: "application/x-www-form-urlencoded;boundary=\"text/xml\"" */
            const char *semi = memchr(h->value, ';', h->value_len);
            if (semi && memchr(semi, '/', h->value_len - (size_t)(semi - h->value))) {
                size_t rest = h->value_len - (size_t)(semi - h->value);
                bool multipart = istarts(h->value, h->value_len, "multipart/");
                const char *eq = memchr(semi, '=', rest);
                if (!multipart && eq) {
                    const char *v = eq + 1;
                    size_t vl = rest - (size_t)(v - semi);
                    if (vl && *v == '"') { v++; vl--; }
                    size_t k = 0;
                    while (k < vl && ((v[k] | 0x20) >= 'a' && (v[k] | 0x20) <= 'z')) k++;
                    if (k > 0 && k < vl && v[k] == '/') meta_match(&c, 921421);
                }
            }
            continue;
        }
        if (is_filename_header(nm, nl)) inspect_value(&c, T_FILENAME, h->value, h->value_len);
        if (is_structural_header(nm, nl)) continue;
        inspect_value(&c, T_HEADER, h->value, h->value_len);
    }

    inspect_value(&c, T_PATH, c.path, c.path_len);
    if (qm) inspect_query(&c, qm + 1, un - c.path_len - 1, referer, referer_len);

    if (req->body && req->body_len) {
        size_t bl = req->body_len < cfg->max_body_bytes ? req->body_len : cfg->max_body_bytes;
        waf_parse_body(ctype, ctype_len, req->body, bl, arg_cb, &c);
    }

    res->flagged = res->score >= cfg->threshold;
    res->blocked = res->flagged && !cfg->detect_only;
}

int waf_inspect_flat(int paranoia, int threshold, const char *method, const char *uri,
                     const char *headers, size_t headers_len, const char *body, size_t body_len,
                     uint32_t *rules_out, int rules_cap, int *n_rules_out) {
    waf_config cfg;
    waf_config_default(&cfg);
    cfg.paranoia = paranoia;
    cfg.threshold = threshold;
    cfg.max_body_bytes = 1 << 20;
    waf_header hs[64];
    size_t nh = 0, i = 0;
    while (i < headers_len && nh < 64) {
        size_t st = i;
        while (i < headers_len && headers[i] != '\n') i++;
        const char *line = headers + st;
        size_t L = i - st;
        i++;
        const char *colon = memchr(line, ':', L);
        if (!colon || colon == line) continue;
        const char *v = colon + 1;
        size_t vl = L - (size_t)(v - line);
        while (vl && (*v == ' ' || *v == '\t')) { v++; vl--; }
        hs[nh++] = (waf_header){line, (size_t)(colon - line), v, vl};
    }
    waf_request req = {method, strlen(method), uri, strlen(uri), hs, nh, body, body_len, false};
    waf_result res;
    waf_inspect(&cfg, &req, &res);
    int n = res.n_matches < rules_cap ? res.n_matches : rules_cap;
    for (int k = 0; k < n; k++) rules_out[k] = res.rules[k];
    *n_rules_out = n;
    return res.score;
}
