/*
 * image: resizes / re-encodes origin images per request parameters, with the pixel
 * work done by the host's image service (callout to the internal upstream
 * "edgenode-image", see edgenode/images/service.py).
 *
 * One module, two root_ids (docs/filters.md#image):
 *   "image-accept"  before the cache: normalises Accept of format=auto image requests to
 *                   a canonical value so the cache keeps at most a few variants;
 *   "image" (any other root_id) after the cache: parses and checks the parameters,
 *                   strips them from the upstream request (every variant fetches the same
 *                   origin URL), buffers the origin image, calls the service, replaces the
 *                   body and sets Content-Type, Content-Length, ETag and Vary.
 * Parameters apply under path_prefix only ("/img/"; the prefix is not part of the origin
 * URL); every other request passes untouched, query string and all:
 *             query  <path_prefix>photo.jpg?w=400&h=300&fit=cover&f=auto&q=75&dpr=2
 *             path   <path_prefix>w=400,h=300,fit=cover,f=webp/photo.jpg
 * path_prefix "" puts every path in scope, with the query scheme only.
 *
 * Built twice: image.wasm holds both root_ids; image-accept.wasm (-DIMAGE_ACCEPT_ONLY) holds
 * "image-accept" alone and exports only the request headers hook, so a chain that runs it
 * before the cache pays no response-side callbacks (Proxy-Wasm hooks are per module).
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "proxy_wasm.h"
#include "sha256.h"
#include "strutil.h"

enum { FMT_AVIF = 1, FMT_WEBP = 2 };

typedef struct {
    char *path_prefix;      /* the image namespace; "": every path, query scheme only */
    bool query_params;
    uint32_t auto_formats;  /* FMT_* the auto format may pick */
    int default_quality;
    uint32_t max_source_bytes, max_source_pixels, max_width, max_height;
    double max_dpr;
    int *allowed_widths;
    size_t nallowed;
    char *secret;
    bool violation_original; /* limits violated: serve the original instead of a 4xx */
    bool error_original;     /* transform failed: serve the original instead of an error */
    char *upstream;
    uint32_t timeout_ms;
} config;

typedef struct {
    int w, h, q;
    double dpr;
    char fit[16], fmt[8];
    bool any;           /* at least one transform parameter was given */
} params;

typedef enum { ST_NONE, ST_WANTED, ST_CALLING } stage;

typedef struct {
    stage st;
    params p;
    uint32_t accept;    /* FMT_* the client accepts */
    char *source_url;   /* authority + origin path: the service's LRU key (+ ETag) */
    char *source_etag;
    bool etag_weak;
    size_t body_len;
} stream_state;

/* ---- configuration -------------------------------------------------------------------- */

static bool fail(const char *key, const char *why) {
    pw_error("image: bad configuration: %s: %s", key, why);
    return false;
}

static bool uint_opt(const json_value *doc, const char *key, uint32_t dflt, uint32_t lo, uint32_t hi, uint32_t *out) {
    const json_value *v = json_get(doc, key);
    if (!v) {
        *out = dflt;
        return true;
    }
    double d = json_number(v, -1);
    if (d < lo || d > hi || d != (double)(uint32_t)d) {
        char why[80];
        snprintf(why, sizeof why, "expected an integer %u..%u", lo, hi);
        return fail(key, why);
    }
    *out = (uint32_t)d;
    return true;
}

static bool choice(const json_value *doc, const char *key, const char *a, const char *b, bool *is_b) {
    const json_value *v = json_get(doc, key);
    *is_b = false;
    if (!v) return true;
    const char *s = json_string(v, "");
    if (strcmp(s, a) == 0) return true;
    if (strcmp(s, b) == 0) {
        *is_b = true;
        return true;
    }
    char why[80];
    snprintf(why, sizeof why, "expected \"%s\" or \"%s\"", a, b);
    return fail(key, why);
}

static void free_config(config *c) {
    if (!c) return;
    free(c->path_prefix);
    free(c->allowed_widths);
    free(c->secret);
    free(c->upstream);
    free(c);
}

static bool parse_config(const json_value *doc, config *c) {
    static const char *const keys[] = {"path_prefix", "query_params", "auto_formats", "default_quality",
                                       "max_source_bytes", "max_source_pixels", "max_width", "max_height",
                                       "max_dpr", "allowed_widths", "signing_secret", "on_violation",
                                       "on_error", "upstream", "timeout_ms", NULL};
    if (!json_is(doc, JSON_OBJECT)) return fail("config", "expected an object");
    for (size_t i = 0; i < doc->count; i++) {
        bool ok = false;
        for (const char *const *k = keys; *k && !ok; k++) ok = strcmp(*k, doc->keys[i]) == 0;
        if (!ok) return fail(doc->keys[i], "unknown key");
    }
    const json_value *v = json_get(doc, "path_prefix");
    if (v && (!json_is(v, JSON_STRING) || (v->string_len && (v->string[0] != '/' || v->string[v->string_len - 1] != '/'))))
        return fail("path_prefix", "expected \"\" or a string like \"/img/\"");
    c->path_prefix = strdup(json_string(v, "/img/"));
    c->query_params = json_bool(json_get(doc, "query_params"), true);
    v = json_get(doc, "auto_formats");
    c->auto_formats = v ? 0 : FMT_AVIF | FMT_WEBP;
    for (size_t i = 0; i < json_len(v); i++) {
        const char *f = json_string(json_at(v, i), "");
        if (strcmp(f, "avif") == 0) c->auto_formats |= FMT_AVIF;
        else if (strcmp(f, "webp") == 0) c->auto_formats |= FMT_WEBP;
        else return fail("auto_formats", "items must be \"avif\" or \"webp\"");
    }
    if (v && !json_is(v, JSON_ARRAY)) return fail("auto_formats", "expected an array");
    uint32_t q;
    if (!uint_opt(doc, "default_quality", 80, 1, 100, &q)) return false;
    c->default_quality = (int)q;
    if (!uint_opt(doc, "max_source_bytes", 16u << 20, 1, 1u << 30, &c->max_source_bytes) ||
        !uint_opt(doc, "max_source_pixels", 50000000, 1, 1000000000, &c->max_source_pixels) ||
        !uint_opt(doc, "max_width", 4096, 1, 16384, &c->max_width) ||
        !uint_opt(doc, "max_height", 4096, 1, 16384, &c->max_height) ||
        !uint_opt(doc, "timeout_ms", 10000, 1, 600000, &c->timeout_ms))
        return false;
    c->max_dpr = json_number(json_get(doc, "max_dpr"), 3);
    if (c->max_dpr < 1 || c->max_dpr > 4) return fail("max_dpr", "expected a number 1..4");
    v = json_get(doc, "allowed_widths");
    if (v && !json_is(v, JSON_ARRAY)) return fail("allowed_widths", "expected an array of integers");
    c->nallowed = json_len(v);
    c->allowed_widths = calloc(c->nallowed ? c->nallowed : 1, sizeof(int));
    for (size_t i = 0; i < c->nallowed; i++) {
        double d = json_number(json_at(v, i), -1);
        if (d < 1 || d > c->max_width || d != (double)(int)d) return fail("allowed_widths", "items must be integers 1..max_width");
        c->allowed_widths[i] = (int)d;
    }
    v = json_get(doc, "signing_secret");
    if (v && !json_is(v, JSON_STRING)) return fail("signing_secret", "expected a string");
    c->secret = v && v->string_len ? strdup(v->string) : NULL;
    if (!choice(doc, "on_violation", "error", "original", &c->violation_original)) return false;
    if (!choice(doc, "on_error", "original", "error", &c->error_original)) return false;
    c->error_original = !c->error_original;
    v = json_get(doc, "upstream");
    if (v && (!json_is(v, JSON_STRING) || !v->string_len)) return fail("upstream", "expected a non-empty string");
    c->upstream = strdup(json_string(v, "edgenode-image"));
    return true;
}

static bool on_configure(pw_root *root, const char *text, size_t len) {
    char err[200];
    json_value *doc = json_parse(len ? text : "{}", len ? len : 2, err, sizeof err);
    if (!doc) {
        pw_error("image: configuration is not valid JSON: %s", err);
        return false;
    }
    config *c = calloc(1, sizeof *c);
    bool ok = parse_config(doc, c);
    json_free(doc);
    if (!ok) {
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

/* ---- parameters ------------------------------------------------------------------------- */

typedef struct { int status; char reason[120]; } violation;

/* Records the first violation only (parsing goes on so the origin target is complete). */
static bool violate(violation *v, int status, const char *fmt, const char *a) {
    if (v->status == 0) {
        v->status = status;
        snprintf(v->reason, sizeof v->reason, fmt, a);
    }
    return false;
}

static bool parse_int(pw_str s, int *out) {
    if (s.n == 0 || s.n > 6) return false;
    int v = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') return false;
        v = v * 10 + (s.p[i] - '0');
    }
    *out = v;
    return true;
}

static bool parse_dpr(pw_str s, double *out) {
    char buf[16];
    if (s.n == 0 || s.n >= sizeof buf) return false;
    memcpy(buf, s.p, s.n);
    buf[s.n] = 0;
    char *end;
    double d = strtod(buf, &end);
    if (*end || !isfinite(d)) return false; /* "nan" would slip through every range check */
    *out = d;
    return true;
}

static bool key_is(pw_str k, const char *a, const char *b) {
    return pw_str_eq(k, pw_str_c(a)) || (b && pw_str_eq(k, pw_str_c(b)));
}

/* One key=value: false if `k` is not a transform parameter.  A bad value of a known
 * parameter records a violation (and still counts as a transform parameter). */
static bool set_param(params *p, pw_str k, pw_str v, violation *why) {
    char key[16];
    snprintf(key, sizeof key, "%.*s", (int)(k.n < 15 ? k.n : 15), k.p);
    if (key_is(k, "w", "width") || key_is(k, "h", "height")) {
        int n;
        if (parse_int(v, &n)) *(key[0] == 'w' ? &p->w : &p->h) = n;
        else violate(why, 400, "%s: expected a positive integer", key);
    } else if (key_is(k, "q", "quality")) {
        if (!parse_int(v, &p->q) || p->q < 1 || p->q > 100) violate(why, 400, "%s: expected an integer 1..100", key);
    } else if (key_is(k, "dpr", NULL)) {
        if (!parse_dpr(v, &p->dpr)) violate(why, 400, "%s: expected a number", key);
    } else if (key_is(k, "fit", NULL)) {
        static const char *const fits[] = {"scale-down", "contain", "cover", "crop", "pad", NULL};
        bool ok = false;
        for (const char *const *f = fits; *f && !ok; f++) ok = pw_str_eq(v, pw_str_c(*f));
        if (ok) snprintf(p->fit, sizeof p->fit, "%.*s", (int)v.n, v.p);
        else violate(why, 400, "%s: expected scale-down, contain, cover, crop or pad", key);
    } else if (key_is(k, "f", "format")) {
        static const char *const fmts[] = {"auto", "webp", "jpeg", "jpg", "png", "avif", NULL};
        bool ok = false;
        for (const char *const *f = fmts; *f && !ok; f++) ok = pw_str_eq(v, pw_str_c(*f));
        if (!ok) violate(why, 400, "%s: expected auto, webp, jpeg, png or avif", key);
        else if (pw_str_eq(v, pw_str_c("jpg"))) snprintf(p->fmt, sizeof p->fmt, "jpeg");
        else snprintf(p->fmt, sizeof p->fmt, "%.*s", (int)v.n, v.p);
    } else {
        return false;
    }
    p->any = true;
    return true;
}

static void default_params(params *p, const config *c) {
    memset(p, 0, sizeof *p);
    p->q = c->default_quality;
    p->dpr = 1;
    snprintf(p->fit, sizeof p->fit, "scale-down");
    snprintf(p->fmt, sizeof p->fmt, "auto");
}

/* The parsed request: parameters, the origin target without them, and the signed message. */
typedef struct {
    params p;
    bool in_scope;        /* under path_prefix: the filter owns this URL */
    pw_sb origin_target;  /* what the origin is asked for */
    pw_sb signed_msg;     /* target without the sig parameter */
    pw_str sig;
    bool has_sig;
} parsed;

/* Parses either scheme; false with `why` set on a bad parameter (the origin target is
 * complete either way).  in_scope == false: not under path_prefix, nothing to do;
 * p.any == false: in scope but no transform asked for (the original is served). */
static bool parse_request(const config *c, pw_str target, parsed *out, violation *why) {
    pw_str rest = target;
    pw_str path = pw_str_split(&rest, '?');
    pw_str query = rest;
    bool has_query = pw_str_index(target, '?') >= 0;
    default_params(&out->p, c);
    pw_str prefix = pw_str_c(c->path_prefix);
    out->in_scope = !prefix.n || pw_str_starts_with(path, prefix);
    if (!out->in_scope) return true;
    bool path_scheme = false;
    if (prefix.n) {
        /* <prefix>[options/]origin-path: options are a first segment holding "=" */
        pw_str after = {path.p + prefix.n, path.n - prefix.n};
        long slash = pw_str_index(after, '/');
        path_scheme = slash > 0 && pw_str_index((pw_str){after.p, (size_t)slash}, '=') >= 0;
        pw_str opts = path_scheme ? pw_str_split(&after, '/') : (pw_str){after.p, 0};
        while (opts.n) {
            pw_str kv = pw_str_split(&opts, ',');
            pw_str k = pw_str_split(&kv, '=');
            if (!set_param(&out->p, k, kv, why)) {
                char key[32];
                snprintf(key, sizeof key, "%.*s", (int)(k.n < 31 ? k.n : 31), k.p);
                violate(why, 400, "unknown image option %s", key);
            }
        }
        if (path_scheme) out->p.any = true;
        pw_sb_append(&out->origin_target, "/", 1);
        pw_sb_append(&out->origin_target, after.p, after.n);
        pw_sb_append(&out->signed_msg, path.p, path.n);
    } else {
        pw_sb_append(&out->origin_target, path.p, path.n);
        pw_sb_append(&out->signed_msg, path.p, path.n);
    }
    /* query: transform parameters (query scheme) and sig are taken out, the rest kept */
    bool first_kept = true, first_signed = true;
    while (has_query && query.n) {
        pw_str pair = pw_str_split(&query, '&');
        pw_str kv = pair;
        pw_str k = pw_str_split(&kv, '=');
        if (pw_str_eq(k, pw_str_c("sig"))) {
            out->sig = kv;
            out->has_sig = true;
            continue;
        }
        pw_sb_append(&out->signed_msg, first_signed ? "?" : "&", 1);
        pw_sb_append(&out->signed_msg, pair.p, pair.n);
        first_signed = false;
        if (!(c->query_params && !path_scheme && set_param(&out->p, k, kv, why))) {
            pw_sb_append(&out->origin_target, first_kept ? "?" : "&", 1);
            pw_sb_append(&out->origin_target, pair.p, pair.n);
            first_kept = false;
        }
    }
    return why->status == 0;
}

static uint32_t accepted_formats(const config *c) {
    pw_bytes accept;
    uint32_t out = 0;
    if (pw_get_header(PW_MAP_REQUEST_HEADERS, "accept", &accept) && accept.data) {
        if (strstr(accept.data, "image/avif")) out |= FMT_AVIF;
        if (strstr(accept.data, "image/webp")) out |= FMT_WEBP;
    }
    pw_bytes_free(&accept);
    return out & c->auto_formats;
}

/* ---- "image-accept": before the cache ------------------------------------------------------ */

static pw_action accept_on_request_headers(pw_stream *s, size_t n, bool eos) {
    (void)n;
    (void)eos;
    const config *c = s->root->user;
    pw_bytes target;
    if (!c || !pw_get_header(PW_MAP_REQUEST_HEADERS, ":path", &target)) return PW_CONTINUE;
    parsed pr = {0};
    violation why = {0};
    if (parse_request(c, (pw_str){target.data, target.len}, &pr, &why) && pr.p.any &&
        strcmp(pr.p.fmt, "auto") == 0) {
        uint32_t fm = accepted_formats(c);
        const char *canon = fm == (FMT_AVIF | FMT_WEBP) ? "image/avif,image/webp,*/*"
                            : fm == FMT_AVIF            ? "image/avif,*/*"
                            : fm == FMT_WEBP            ? "image/webp,*/*"
                                                        : "*/*";
        pw_set_header_cstr(PW_MAP_REQUEST_HEADERS, "accept", canon);
    }
    pw_sb_free(&pr.origin_target);
    pw_sb_free(&pr.signed_msg);
    pw_bytes_free(&target);
    return PW_CONTINUE;
}

/* ---- "image": after the cache ---------------------------------------------------------------- */
#ifndef IMAGE_ACCEPT_ONLY

static bool check_limits(const params *p, const config *c, violation *why) {
    char buf[64];
    if (p->dpr < 0.5 || p->dpr > c->max_dpr) {
        snprintf(buf, sizeof buf, "%g", c->max_dpr);
        return violate(why, 400, "dpr: must be between 0.5 and %s", buf);
    }
    if ((double)p->w * p->dpr > c->max_width || (double)p->h * p->dpr > c->max_height) {
        snprintf(buf, sizeof buf, "%ux%u", c->max_width, c->max_height);
        return violate(why, 400, "output size exceeds the limit of %s", buf);
    }
    if (p->w && c->nallowed) {
        bool ok = false;
        for (size_t i = 0; i < c->nallowed && !ok; i++) ok = c->allowed_widths[i] == p->w;
        if (!ok) {
            snprintf(buf, sizeof buf, "%d", p->w);
            return violate(why, 400, "width %s is not in the allowed widths", buf);
        }
    }
    return true;
}

static bool signature_ok(const config *c, const parsed *pr) {
    if (!c->secret) return true;
    if (!pr->has_sig || pr->sig.n != 64) return false;
    uint8_t mac[32];
    char hex[65];
    pw_hmac_sha256(c->secret, strlen(c->secret), pr->signed_msg.data, pr->signed_msg.len, mac);
    pw_hex(mac, 32, hex);
    unsigned diff = 0; /* constant time */
    for (size_t i = 0; i < 64; i++) diff |= (unsigned)(hex[i] ^ (pr->sig.p[i] | 0x20));
    return diff == 0;
}


static void free_state(stream_state *st) {
    if (!st) return;
    free(st->source_url);
    free(st->source_etag);
    free(st);
}

static pw_action reply_error(int status, const char *reason) {
    pw_headers h = {0};
    pw_headers_add_cstr(&h, "content-type", "text/plain; charset=utf-8");
    pw_headers_add_cstr(&h, "cache-control", "no-store");
    pw_sb body = {0};
    pw_sb_printf(&body, "image: %s\n", reason);
    pw_send_local_response((uint32_t)status, body.data, body.len, &h, "image_error");
    pw_sb_free(&body);
    pw_headers_free(&h);
    return PW_STOP_ITERATION;
}

static pw_action image_on_request_headers(pw_stream *s, size_t n, bool eos) {
    (void)n;
    (void)eos;
    const config *c = s->root->user;
    pw_bytes target = {0}, method = {0}, authority = {0};
    if (!c || !pw_get_header(PW_MAP_REQUEST_HEADERS, ":path", &target)) return PW_CONTINUE;
    pw_get_header(PW_MAP_REQUEST_HEADERS, ":method", &method);
    pw_get_header(PW_MAP_REQUEST_HEADERS, ":authority", &authority);
    parsed pr = {0};
    violation why = {0};
    pw_action action = PW_CONTINUE;
    bool ok = parse_request(c, (pw_str){target.data, target.len}, &pr, &why);
    if (ok && pr.p.any && !signature_ok(c, &pr)) ok = violate(&why, 403, "%s", "missing or invalid signature");
    if (ok && pr.p.any) ok = check_limits(&pr.p, c, &why);
    if (!ok && !c->violation_original) {
        action = reply_error(why.status, why.reason);
    } else if (pr.p.any || (pr.in_scope && c->path_prefix[0])) {
        /* every variant (and a rejected one served as the original) fetches the same URL,
         * without the prefix, which only names the image namespace */
        pw_set_header(PW_MAP_REQUEST_HEADERS, ":path", pr.origin_target.data, pr.origin_target.len);
        bool get = method.data && (strcmp(method.data, "GET") == 0);
        if (ok && get && pr.p.any) {
            stream_state *st = calloc(1, sizeof *st);
            if (!st) abort();
            st->st = ST_WANTED;
            st->p = pr.p;
            st->accept = accepted_formats(c);
            pw_sb url = {0};
            pw_sb_append(&url, authority.data ? authority.data : "", authority.len);
            pw_sb_append(&url, pr.origin_target.data, pr.origin_target.len);
            st->source_url = url.data;
            s->user = st;
            pw_set_header_cstr(PW_MAP_REQUEST_HEADERS, "accept-encoding", "identity");
        } else if (!ok) {
            pw_warn("image: serving the original: %s", why.reason);
        }
    }
    pw_sb_free(&pr.origin_target);
    pw_sb_free(&pr.signed_msg);
    pw_bytes_free(&target);
    pw_bytes_free(&method);
    pw_bytes_free(&authority);
    return action;
}

static bool is_transformable(const char *ctype) {
    static const char *const types[] = {"image/jpeg", "image/png", "image/webp", "image/gif", "image/avif", NULL};
    for (const char *const *t = types; *t; t++)
        if (strncasecmp(ctype, *t, strlen(*t)) == 0) return true;
    return false;
}

static pw_action image_on_response_headers(pw_stream *s, size_t n, bool eos) {
    (void)n;
    stream_state *st = s->user;
    const config *c = s->root->user;
    if (!st || st->st != ST_WANTED) return PW_CONTINUE;
    pw_bytes status = {0}, ctype = {0}, clen = {0}, etag = {0}, cenc = {0};
    pw_get_header(PW_MAP_RESPONSE_HEADERS, ":status", &status);
    pw_get_header(PW_MAP_RESPONSE_HEADERS, "content-type", &ctype);
    pw_get_header(PW_MAP_RESPONSE_HEADERS, "content-length", &clen);
    pw_get_header(PW_MAP_RESPONSE_HEADERS, "content-encoding", &cenc);
    bool go = !eos && status.data && strcmp(status.data, "200") == 0 && ctype.data && is_transformable(ctype.data) &&
              (!cenc.data || strcasecmp(cenc.data, "identity") == 0);
    pw_action action = PW_CONTINUE;
    if (go && clen.data && strtoull(clen.data, NULL, 10) > c->max_source_bytes) {
        go = false;
        if (!c->violation_original) action = reply_error(413, "source image is over the size limit");
    }
    if (go) {
        if (pw_get_header(PW_MAP_RESPONSE_HEADERS, "etag", &etag) && etag.data) {
            st->etag_weak = strncmp(etag.data, "W/", 2) == 0;
            st->source_etag = strdup(etag.data);
        }
        /* hold the headers (writable) while the body callbacks buffer the body: plain
         * StopIteration, which the stage must allow (allow_on_headers_stop_iteration) */
        action = PW_STOP_ITERATION;
    } else {
        st->st = ST_NONE;
    }
    pw_bytes_free(&status);
    pw_bytes_free(&ctype);
    pw_bytes_free(&clen);
    pw_bytes_free(&etag);
    pw_bytes_free(&cenc);
    return action;
}

static const char *accept_list(uint32_t fm) {
    return fm == (FMT_AVIF | FMT_WEBP) ? "avif,webp" : fm == FMT_AVIF ? "avif" : fm == FMT_WEBP ? "webp" : "";
}

static pw_action image_on_response_body(pw_stream *s, size_t size, bool eos) {
    stream_state *st = s->user;
    const config *c = s->root->user;
    if (!st || st->st != ST_WANTED) return PW_CONTINUE;
    if (!eos) return PW_STOP_ITERATION; /* keep buffering */
    if (size > c->max_source_bytes) {
        st->st = ST_NONE;
        if (!c->violation_original) return reply_error(413, "source image is over the size limit");
        pw_continue_stream(PW_STREAM_RESPONSE);
        return PW_CONTINUE;
    }
    pw_bytes body;
    if (!pw_get_buffer(PW_BUFFER_RESPONSE_BODY, 0, size, &body)) {
        st->st = ST_NONE;
        pw_continue_stream(PW_STREAM_RESPONSE);
        return PW_CONTINUE;
    }
    st->body_len = body.len;
    const params *p = &st->p;
    pw_sb path = {0}, key = {0};
    pw_sb_printf(&path, "/transform?w=%d&h=%d&fit=%s&f=%s&q=%d&dpr=%g&accept=%s&max_px=%u&max_w=%u&max_h=%u", p->w,
                 p->h, p->fit, p->fmt, p->q, p->dpr, accept_list(st->accept), c->max_source_pixels, c->max_width,
                 c->max_height);
    pw_sb_printf(&key, "%s %s", st->source_url, st->source_etag ? st->source_etag : "");
    pw_headers h = {0};
    pw_headers_add_cstr(&h, ":method", "POST");
    pw_headers_add(&h, ":path", 5, path.data, path.len);
    pw_headers_add_cstr(&h, ":authority", c->upstream);
    pw_headers_add(&h, "x-image-source-key", 18, key.data, st->source_etag ? key.len : 0);
    pw_status rc = pw_http_call(s, c->upstream, &h, body.data, body.len, c->timeout_ms, NULL);
    pw_headers_free(&h);
    pw_sb_free(&path);
    pw_sb_free(&key);
    pw_bytes_free(&body);
    if (rc != PW_OK) {
        pw_error("image: callout to %s failed to start (status %d)", c->upstream, rc);
        st->st = ST_NONE;
        if (!c->error_original) return reply_error(502, "image service unavailable");
        pw_continue_stream(PW_STREAM_RESPONSE);
        return PW_CONTINUE;
    }
    st->st = ST_CALLING;
    return PW_STOP_ITERATION;
}

static uint64_t fnv1a64(uint64_t h, const void *data, size_t len) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static bool has_token(pw_str list, const char *token) {
    while (list.n) {
        pw_str t = pw_str_trim(pw_str_split(&list, ','));
        if (pw_str_ieq(t, pw_str_c(token)) || (t.n == 1 && t.p[0] == '*')) return true;
    }
    return false;
}

static void set_vary_accept(void) {
    pw_bytes vary;
    if (pw_get_header(PW_MAP_RESPONSE_HEADERS, "vary", &vary) && vary.len) {
        if (!has_token((pw_str){vary.data, vary.len}, "accept")) {
            pw_sb v = {0};
            pw_sb_append(&v, vary.data, vary.len);
            pw_sb_puts(&v, ", Accept");
            pw_set_header(PW_MAP_RESPONSE_HEADERS, "vary", v.data, v.len);
            pw_sb_free(&v);
        }
    } else {
        pw_set_header_cstr(PW_MAP_RESPONSE_HEADERS, "vary", "Accept");
    }
    pw_bytes_free(&vary);
}

static void image_on_http_call_response(pw_stream *s, uint32_t token, size_t nh, size_t body_size, size_t nt) {
    (void)token;
    (void)nt;
    stream_state *st = s->user;
    const config *c = s->root->user;
    if (!st || st->st != ST_CALLING) return;
    st->st = ST_NONE;
    pw_bytes status = {0}, ctype = {0}, reason = {0}, out = {0};
    if (nh) {
        pw_get_header(PW_MAP_HTTP_CALL_RESPONSE_HEADERS, ":status", &status);
        pw_get_header(PW_MAP_HTTP_CALL_RESPONSE_HEADERS, "content-type", &ctype);
        pw_get_header(PW_MAP_HTTP_CALL_RESPONSE_HEADERS, "x-image-error", &reason);
    }
    int code = status.data ? atoi(status.data) : 0;
    if (code == 200 && ctype.data && pw_get_buffer(PW_BUFFER_HTTP_CALL_RESPONSE_BODY, 0, body_size, &out) && out.len) {
        pw_set_buffer(PW_BUFFER_RESPONSE_BODY, 0, st->body_len, out.data, out.len);
        char num[24], etag[40];
        snprintf(num, sizeof num, "%zu", out.len);
        const params *p = &st->p;
        pw_sb canon = {0};
        pw_sb_printf(&canon, "%d|%d|%s|%d|%g|%s", p->w, p->h, p->fit, p->q, p->dpr, ctype.data);
        uint64_t hsh = 14695981039346656037ull;
        if (st->source_etag) hsh = fnv1a64(hsh, st->source_etag, strlen(st->source_etag));
        else hsh = fnv1a64(hsh, st->source_url, strlen(st->source_url));
        hsh = fnv1a64(hsh, canon.data, canon.len);
        if (!st->source_etag) hsh = fnv1a64(hsh, &st->body_len, sizeof st->body_len);
        snprintf(etag, sizeof etag, "%s\"img-%016llx\"", st->etag_weak || !st->source_etag ? "W/" : "",
                 (unsigned long long)hsh);
        pw_sb_free(&canon);
        pw_set_header_cstr(PW_MAP_RESPONSE_HEADERS, "content-type", ctype.data);
        pw_set_header_cstr(PW_MAP_RESPONSE_HEADERS, "content-length", num);
        pw_set_header_cstr(PW_MAP_RESPONSE_HEADERS, "etag", etag);
        pw_remove_header(PW_MAP_RESPONSE_HEADERS, "content-md5");
        if (strcmp(p->fmt, "auto") == 0) set_vary_accept();
        pw_continue_stream(PW_STREAM_RESPONSE);
    } else {
        const char *why = reason.data ? reason.data : nh ? "image service error" : "image service unreachable";
        bool limit = code == 400 || code == 413;
        bool original = limit ? c->violation_original : c->error_original;
        pw_warn("image: transform of %s failed (%d): %s", st->source_url, code, why);
        if (original) pw_continue_stream(PW_STREAM_RESPONSE);
        else reply_error(limit ? code : 502, why);
    }
    pw_bytes_free(&status);
    pw_bytes_free(&ctype);
    pw_bytes_free(&reason);
    pw_bytes_free(&out);
}

static void image_on_stream_delete(pw_stream *s) {
    free_state(s->user);
    s->user = NULL;
}

#endif /* IMAGE_ACCEPT_ONLY */

static const pw_filter image_accept = {
    .root_id = "image-accept",
    .on_configure = on_configure,
    .on_root_delete = on_root_delete,
    .on_request_headers = accept_on_request_headers,
};

#ifdef IMAGE_ACCEPT_ONLY
const pw_filter *const pw_filters[] = {&image_accept, NULL};
#else
static const pw_filter image = {
    .root_id = NULL,
    .on_configure = on_configure,
    .on_root_delete = on_root_delete,
    .on_request_headers = image_on_request_headers,
    .on_response_headers = image_on_response_headers,
    .on_response_body = image_on_response_body,
    .on_http_call_response = image_on_http_call_response,
    .on_stream_delete = image_on_stream_delete,
};

const pw_filter *const pw_filters[] = {&image_accept, &image, NULL};
#endif
