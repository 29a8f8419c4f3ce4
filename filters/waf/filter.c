/*
 * WAF Proxy-Wasm filter: runs a SecLang ruleset (e.g. the OWASP CRS) on every
 * request.  Glue between the SDK (filters/sdk) and the engine (waf.h).
 *
 * Plugin configuration (JSON, every key optional):
 *   {"directives": "SecRuleEngine On\n..." | ["Include rules/x.conf", ...],
 *                                     (default: the built-in ruleset, rules/base.conf and
 *                                      rules/edgenode.conf, compiled into the filter)
 *    "files": {"rules/a.conf": "...", "rules/x.data": "..."},   (added by the host
 *                                     from the stage's `files` option)
 *    "mode": "block" | "detect",      (overrides SecRuleEngine On / DetectionOnly)
 *    "score_variable": "tx.blocking_inbound_anomaly_score"}
 * The rules are compiled once here; a rule that does not compile rejects the
 * configuration with "file:line: reason".
 *
 * Per request: phase 1 at the request headers, phase 2 once the body is in
 * (or at the headers when there is none).  A disruptive action answers
 * locally (403 unless the rule says otherwise), so a blocked request never
 * reaches the cache or the origin; an audit line (JSON) is logged with the
 * request id and every matched rule.  In detect mode the response carries
 * X-WAF-Score and X-WAF-Rules.
 * Layer: the top: the engine (waf.h) and the SDK below it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "proxy_wasm.h"
#include "waf.h"

/* the built-in ruleset (generated from filters/waf/rules by embed_rules.py) */
extern const int waf_default_count;
extern const char *const waf_default_names[];
extern const char *const waf_default_texts[];
extern const size_t waf_default_lens[];
static const char DEFAULT_DIRECTIVES[] = "Include rules/base.conf\nInclude rules/edgenode.conf\n";

/* counters per attack class, from the rules' "attack-<class>" tags */
#define MAX_FAMILIES 48
typedef struct { wstr tag; uint32_t metric; } family_metric;

typedef struct pool_tx { waf_tx tx; struct pool_tx *next; } pool_tx;

typedef struct {
    waf_rules *rules;
    bool detect;                 /* mode: detect */
    char score_var[96];
    uint32_t m_inspected, m_blocked, m_flagged, m_limit_hits, m_body_errors;
    uint32_t *rule_metric;       /* per rule index in rules->all, 0 = not defined yet */
    family_metric families[MAX_FAMILIES];
    int n_families;
    pool_tx *free;
} plugin;

typedef struct {
    pool_tx *ptx;
    bool waiting_body;
    bool done;
    bool flagged;
    int score;
    char rules[512];
} stream_state;

/* ------------------------------------------------------------------ transactions */

/* a plugin keeps its finished transactions (and their arenas) for the next streams */
static pool_tx *tx_get(plugin *p) {
    pool_tx *t = p->free;
    if (t) {
        p->free = t->next;
        waf_tx_reset(&t->tx);
        return t;
    }
    t = calloc(1, sizeof *t);
    if (!t) return NULL;
    waf_tx_init(&t->tx, p->rules);
    return t;
}

static void tx_put(plugin *p, pool_tx *t) {
    ar_reset(&t->tx.a);
    t->next = p->free;
    p->free = t;
}

/* ------------------------------------------------------------------ config */

static bool config_error(const char *key, const char *reason) {
    pw_error("waf config: %s: %s", key, reason);
    return false;
}

static bool parse_config(plugin *p, const char *text, size_t len) {
    char err[512];
    json_value *root = NULL;
    if (len) {
        root = json_parse(text, len, err, sizeof err);
        if (!root) return config_error("(json)", err);
        if (!json_is(root, JSON_OBJECT)) { json_free(root); return config_error("(root)", "must be a JSON object"); }
    }
    bool ok = false;
    wbuf dir = {0};
    waf_file *files = NULL;
    int n_files = 0;
    static const char *const KNOWN[] = {"directives", "files", "mode", "score_variable", NULL};
    for (size_t i = 0; root && i < root->count; i++) {
        bool known = false;
        for (const char *const *k = KNOWN; *k; k++) if (strcmp(root->keys[i], *k) == 0) known = true;
        if (!known) { config_error(root->keys[i], "unknown key"); goto out; }
    }
    const json_value *d = json_get(root, "directives");
    const json_value *f = json_get(root, "files");
    if (!d && f) { config_error("directives", "required with files: which of them to Include"); goto out; }
    if (!d) {
        wb_puts(&dir, DEFAULT_DIRECTIVES);
        files = calloc((size_t)waf_default_count, sizeof *files);
        if (!files) goto out;
        for (int i = 0; i < waf_default_count; i++)
            files[n_files++] = (waf_file){{waf_default_names[i], strlen(waf_default_names[i])},
                                          (char *)waf_default_texts[i], waf_default_lens[i]};
    } else if (json_is(d, JSON_STRING)) {
        wb_put(&dir, d->string, d->string_len);
    } else if (json_is(d, JSON_ARRAY)) {
        for (size_t i = 0; i < json_len(d); i++) {
            const json_value *l = json_at(d, i);
            if (!json_is(l, JSON_STRING)) { config_error("directives", "list items must be strings"); goto out; }
            wb_put(&dir, l->string, l->string_len);
            wb_putc(&dir, '\n');
        }
    } else { config_error("directives", "must be a string or a list of strings"); goto out; }
    if (f) {
        if (!json_is(f, JSON_OBJECT)) { config_error("files", "must be an object {name: text}"); goto out; }
        files = calloc(f->count ? f->count : 1, sizeof *files);
        if (!files) goto out;
        for (size_t i = 0; i < f->count; i++) {
            if (!json_is(f->items[i], JSON_STRING)) { config_error("files", "values must be strings"); goto out; }
            files[n_files].name = (wstr){f->keys[i], strlen(f->keys[i])};
            files[n_files].text = f->items[i]->string;
            files[n_files].len = f->items[i]->string_len;
            n_files++;
        }
    }
    const json_value *mode = json_get(root, "mode");
    if (mode) {
        const char *m = json_string(mode, NULL);
        if (!m || (strcmp(m, "block") != 0 && strcmp(m, "detect") != 0)) {
            config_error("mode", "must be \"block\" or \"detect\"");
            goto out;
        }
        p->detect = strcmp(m, "detect") == 0;
    }
    const char *sv = json_string(json_get(root, "score_variable"), NULL);
    if (sv && (strncmp(sv, "tx.", 3) != 0 || strlen(sv) >= sizeof p->score_var)) {
        config_error("score_variable", "must name a TX variable, e.g. \"tx.blocking_inbound_anomaly_score\"");
        goto out;
    }
    snprintf(p->score_var, sizeof p->score_var, "%s", sv ? sv + 3 : "");
    uint64_t t0 = pw_now_ns();
    p->rules = waf_compile(dir.p ? dir.p : "", dir.n, files, n_files, err, sizeof err);
    if (!p->rules) { pw_error("waf: rules rejected: %s", err); goto out; }
    p->rules->compile_ms = (double)(pw_now_ns() - t0) / 1e6;
    t0 = pw_now_ns();
    pool_tx *warm = tx_get(p);
    if (!warm) { pw_error("waf: out of memory"); goto out; }
    firstpass_warm_up(p->rules, &warm->tx);
    tx_put(p, warm);
    p->rules->warm_up_ms = (double)(pw_now_ns() - t0) / 1e6;
    if (p->detect) p->rules->engine = ENGINE_DETECT;
    ok = true;
out:
    free(files);
    wb_free(&dir);
    json_free(root);
    return ok;
}

static void plugin_free(plugin *p) {
    if (!p) return;
    while (p->free) {
        pool_tx *n = p->free->next;
        waf_tx_free(&p->free->tx);
        free(p->free);
        p->free = n;
    }
    waf_rules_free(p->rules);
    free(p->rule_metric);
    free(p);
}

static bool on_configure(pw_root *root, const char *text, size_t len) {
    plugin *p = calloc(1, sizeof *p);
    if (!p) return false;
    if (!parse_config(p, text, len)) { plugin_free(p); return false; }
    p->rule_metric = calloc((size_t)p->rules->n_all + 1, sizeof(uint32_t));
    pw_define_metric(PW_METRIC_COUNTER, "waf_requests_inspected", &p->m_inspected);
    pw_define_metric(PW_METRIC_COUNTER, "waf_requests_blocked", &p->m_blocked);
    pw_define_metric(PW_METRIC_COUNTER, "waf_requests_flagged", &p->m_flagged);
    pw_define_metric(PW_METRIC_COUNTER, "waf_regex_match_limit_hits", &p->m_limit_hits);
    pw_define_metric(PW_METRIC_COUNTER, "waf_request_body_errors", &p->m_body_errors);
    for (int i = 0; i < p->rules->n_all; i++) p->rules->all[i]->hits = (uint32_t)i;
    pw_info("waf: %d rules compiled in %.1f ms (%u regular expressions; regex sets warmed up in %.1f ms), engine %s",
            p->rules->n_rules, p->rules->compile_ms, p->rules->n_regex, p->rules->warm_up_ms,
            p->rules->engine == ENGINE_ON ? "On" : p->rules->engine == ENGINE_DETECT ? "DetectionOnly" : "Off");
    plugin_free(root->user);
    root->user = p;
    return true;
}

static void on_root_delete(pw_root *root) {
    plugin_free(root->user);
    root->user = NULL;
}

/* ------------------------------------------------------------------ per request */

static stream_state *state(pw_stream *s) {
    if (!s->user) s->user = calloc(1, sizeof(stream_state));
    return s->user;
}

static void json_str(wbuf *b, wstr s, size_t max) {
    wb_putc(b, '"');
    size_t n = s.n < max ? s.n : max;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c == '"' || c == '\\') { wb_putc(b, '\\'); wb_putc(b, (char)c); }
        else if (c < 0x20 || c >= 0x7f) { char e[8]; snprintf(e, sizeof e, "\\u%04x", c); wb_puts(b, e); }
        else wb_putc(b, (char)c);
    }
    if (s.n > max) wb_puts(b, "...");
    wb_putc(b, '"');
}

static int score_of(plugin *p, waf_tx *tx) {
    static const char *const DEFAULTS[] = {"blocking_inbound_anomaly_score", "inbound_anomaly_score", "anomaly_score", NULL};
    long long v = 0;
    if (p->score_var[0]) {
        const wstr *s = tx_get_var(tx, V_TX, (wstr){p->score_var, strlen(p->score_var)});
        if (s) parse_num(*s, &v);
        return (int)v;
    }
    for (const char *const *k = DEFAULTS; *k; k++) {
        const wstr *s = tx_get_var(tx, V_TX, (wstr){*k, strlen(*k)});
        if (s) { parse_num(*s, &v); return (int)v; }
    }
    return 0;
}

/* waf_matches_<class> for every "attack-<class>" tag of a matched rule */
static void count_families(plugin *p, const rule *ru) {
    for (int t = 0; t < ru->n_tags; t++) {
        wstr tag = ru->tags[t];
        if (tag.n <= 7 || memcmp(tag.p, "attack-", 7) != 0) continue;
        family_metric *fm = NULL;
        for (int i = 0; i < p->n_families; i++)
            if (p->families[i].tag.n == tag.n && memcmp(p->families[i].tag.p, tag.p, tag.n) == 0) fm = &p->families[i];
        if (!fm) {
            if (p->n_families == MAX_FAMILIES) continue;
            char name[80];
            snprintf(name, sizeof name, "waf_matches_%.*s", (int)(tag.n - 7), tag.p + 7);
            for (char *c = name; *c; c++) if (*c == '-') *c = '_';
            fm = &p->families[p->n_families];
            if (pw_define_metric(PW_METRIC_COUNTER, name, &fm->metric) != PW_OK) continue;
            fm->tag = tag;
            p->n_families++;
        }
        pw_increment_metric(fm->metric, 1);
    }
}

/* After a phase: metrics, audit line, local reply.  True when the request was answered. */
static bool conclude(pw_stream *s, stream_state *st, bool final) {
    plugin *p = s->root->user;
    waf_tx *tx = &st->ptx->tx;
    bool would_block = tx->intercepted;
    bool blocked = would_block && tx->engine == ENGINE_ON;
    if (!blocked && !final) return false;
    st->done = true;
    pw_increment_metric(p->m_inspected, 1);
    if (tx->pcre_limit_hits) pw_increment_metric(p->m_limit_hits, tx->pcre_limit_hits);
    if (tx->sc_set[V_REQBODY_ERROR] && tx->sc[V_REQBODY_ERROR].p[0] == '1') pw_increment_metric(p->m_body_errors, 1);
    for (int i = 0; i < tx->n_matches; i++) {
        const rule *ru = tx->matches[i].r;
        uint32_t *mid = &p->rule_metric[ru->hits];
        if (!*mid) {
            char name[48];
            snprintf(name, sizeof name, "waf_rule_hits_%u", ru->id);
            if (pw_define_metric(PW_METRIC_COUNTER, name, mid) != PW_OK) continue;
            *mid |= 0x80000000u;   /* defined (ids may be 0) */
        }
        pw_increment_metric(*mid & 0x7fffffffu, 1);
        count_families(p, ru);
    }
    if (!tx->n_matches && !would_block) return false;
    st->score = score_of(p, tx);
    size_t o = 0;
    st->rules[0] = 0;
    for (int i = 0; i < tx->n_matches && o + 12 < sizeof st->rules; i++)
        o += (size_t)snprintf(st->rules + o, sizeof st->rules - o, "%s%u", i ? "," : "", tx->matches[i].r->id);
    wstr rid = tx->sc_set[V_UNIQUE_ID] ? tx->sc[V_UNIQUE_ID] : WSTR("-");
    if (would_block) {
        /* the audit line: one per blocked (or, in detect mode, flagged) request */
        wbuf b = {0};
        wb_puts(&b, "waf audit {\"request_id\":");
        json_str(&b, rid, 128);
        char head[160];
        snprintf(head, sizeof head, ",\"action\":\"%s\",\"status\":%d,\"score\":%d,\"phase\":%d,\"uri\":",
                 blocked ? "blocked" : "flagged", tx->status, st->score, tx->phase);
        wb_puts(&b, head);
        json_str(&b, tx->sc[V_REQUEST_URI_RAW], 256);
        wb_puts(&b, ",\"matches\":[");
        for (int i = 0; i < tx->n_matches; i++) {
            const waf_match *m = &tx->matches[i];
            char idb[40];
            snprintf(idb, sizeof idb, "%s{\"id\":%u,\"msg\":", i ? "," : "", m->r->id);
            wb_puts(&b, idb);
            json_str(&b, m->msg, 200);
            wb_puts(&b, ",\"var\":");
            json_str(&b, m->var_name, 100);
            wb_puts(&b, ",\"data\":");
            json_str(&b, m->logdata, 200);
            wb_puts(&b, "}");
        }
        wb_puts(&b, "]}");
        pw_log(PW_LOG_WARN, "%s", b.p);
        wb_free(&b);
        pw_increment_metric(p->m_flagged, 1);
    } else {
        pw_log(PW_LOG_INFO, "waf matched request_id=%.*s score=%d rules=%s", (int)rid.n, rid.p, st->score, st->rules);
    }
    if (!blocked) {
        st->flagged = p->detect || tx->engine == ENGINE_DETECT;
        return false;
    }
    pw_increment_metric(p->m_blocked, 1);
    int status = tx->status ? tx->status : 403;
    pw_headers h = {0};
    pw_headers_add_cstr(&h, "content-type", "text/plain; charset=utf-8");
    pw_headers_add_cstr(&h, "cache-control", "no-store");
    char idz[160];
    snprintf(idz, sizeof idz, "%.*s", (int)(rid.n < 150 ? rid.n : 150), rid.p);
    pw_headers_add_cstr(&h, "x-request-id", idz);
    char msg[256];
    int n;
    if (tx->redirect.n && status >= 300 && status < 400) {
        char loc[1024];
        snprintf(loc, sizeof loc, "%.*s", (int)(tx->redirect.n < 1000 ? tx->redirect.n : 1000), tx->redirect.p);
        pw_headers_add_cstr(&h, "location", loc);
        n = 0;
    } else {
        n = snprintf(msg, sizeof msg, "%d: request blocked by the web application firewall.\nRequest id: %s\n", status, idz);
    }
    pw_send_local_response((uint32_t)status, msg, (size_t)(n < (int)sizeof msg ? n : (int)sizeof msg - 1), &h,
                           "waf_blocked");
    pw_headers_free(&h);
    return true;
}

static wstr prop(waf_tx *tx, const char *path) {
    pw_bytes b = {0};
    if (!pw_get_property(path, &b) || !b.data) return (wstr){"", 0};
    wstr out = {ar_dup(&tx->a, b.data, b.len), b.len};
    pw_bytes_free(&b);
    return out;
}

static void connection_info(wstr addr, wstr *ip, int *port) {
    /* "1.2.3.4:5678" or "[::1]:5678" */
    *ip = addr;
    *port = 0;
    const char *colon = NULL;
    for (size_t i = addr.n; i-- > 0;) if (addr.p[i] == ':') { colon = addr.p + i; break; }
    if (!colon) return;
    *port = atoi(colon + 1);
    ip->n = (size_t)(colon - addr.p);
    if (ip->n >= 2 && ip->p[0] == '[') { ip->p++; ip->n -= 2; }
}

static bool key_is(const pw_pair *h, const char *name, size_t n) {
    return h->key_len == n && memcmp(h->key, name, n) == 0;
}

static pw_action on_request_headers(pw_stream *s, size_t num_headers, bool end_of_stream) {
    (void)num_headers;
    plugin *p = s->root->user;
    stream_state *st = state(s);
    if (!p || !st) return PW_CONTINUE;
    /* the host's copy of the map, read in place: the transaction copies what it keeps */
    pw_bytes raw;
    pw_pairs pairs;
    if (!pw_get_header_pairs(PW_MAP_REQUEST_HEADERS, &raw)) return PW_CONTINUE;
    if (!pw_pairs_open(&pairs, (const uint8_t *)raw.data, raw.len) || !(st->ptx = tx_get(p))) {
        pw_bytes_free(&raw);
        return PW_CONTINUE;
    }
    waf_tx *tx = &st->ptx->tx;
    wstr method = {"GET", 3}, path = {"/", 1}, authority = {NULL, 0};
    wstr rid = {NULL, 0};
    pw_pairs it = pairs;
    for (pw_pair h; pw_pairs_next(&it, &h);) {
        if (!h.key_len || h.key[0] != ':') continue;
        if (key_is(&h, ":method", 7)) method = (wstr){h.value, h.value_len};
        else if (key_is(&h, ":path", 5)) path = (wstr){h.value, h.value_len};
        else if (key_is(&h, ":authority", 10)) authority = (wstr){h.value, h.value_len};
    }
    wstr proto = prop(tx, "request.protocol");
    tx_set_request_line(tx, method, path, proto.n ? proto : WSTR("HTTP/1.1"));
    if (authority.p && authority.n) tx_add_header(tx, WSTR("host"), authority);
    for (pw_pair h; pw_pairs_next(&pairs, &h);) {
        if (h.key_len && h.key[0] == ':') continue;
        tx_add_header(tx, (wstr){h.key, h.key_len}, (wstr){h.value, h.value_len});
        if (key_is(&h, "x-request-id", 12)) rid = (wstr){h.value, h.value_len};
    }
    tx_set_unique_id(tx, rid.p ? rid : prop(tx, "request.id"));
    pw_bytes_free(&raw);
    wstr ip;
    int port;
    connection_info(prop(tx, "source.address"), &ip, &port);
    tx_set_connection(tx, ip, port, WSTR("127.0.0.1"), 0);
    tx_headers_done(tx);
    if (waf_run_phase(tx, 1) && conclude(s, st, true)) return PW_CONTINUE;
    if (end_of_stream || !tx->body_access) {
        tx_process_body(tx, NULL, 0, false);
        waf_run_phase(tx, 2);
        conclude(s, st, true);
        return PW_CONTINUE;
    }
    /* decide at the end of the body: body callbacks buffer until then */
    st->waiting_body = true;
    return PW_CONTINUE;
}

static pw_action on_request_body(pw_stream *s, size_t body_size, bool end_of_stream) {
    plugin *p = s->root->user;
    stream_state *st = s->user;
    if (!p || !st || !st->waiting_body || st->done || !st->ptx) return PW_CONTINUE;
    waf_tx *tx = &st->ptx->tx;
    const waf_rules *r = p->rules;
    size_t limit = r->body_limit;
    if (tx->body_processor != BP_MULTIPART && r->body_nofiles_limit && r->body_nofiles_limit < limit)
        limit = r->body_nofiles_limit;
    bool over = limit && body_size > limit;
    if (!end_of_stream && !over) return PW_STOP_ITERATION;   /* keep buffering */
    if (over && r->body_limit_reject && tx->engine != ENGINE_OFF) {
        tx->intercepted = true;
        tx->status = 413;
        if (conclude(s, st, true)) return PW_CONTINUE;
    }
    size_t take = over ? limit : body_size;
    pw_bytes body = {0};
    if (take) pw_get_buffer(PW_BUFFER_REQUEST_BODY, 0, take, &body);
    tx_process_body(tx, body.data, body.len, over);
    pw_bytes_free(&body);
    waf_run_phase(tx, 2);
    conclude(s, st, true);
    return PW_CONTINUE;
}

static pw_action on_response_headers(pw_stream *s, size_t num_headers, bool end_of_stream) {
    (void)num_headers; (void)end_of_stream;
    stream_state *st = s->user;
    if (st && st->flagged) {
        char num[16];
        snprintf(num, sizeof num, "%d", st->score);
        pw_set_header_cstr(PW_MAP_RESPONSE_HEADERS, "x-waf-score", num);
        pw_set_header_cstr(PW_MAP_RESPONSE_HEADERS, "x-waf-rules", st->rules);
    }
    return PW_CONTINUE;
}

static void on_stream_delete(pw_stream *s) {
    stream_state *st = s->user;
    plugin *p = s->root->user;
    if (st && st->ptx) {
        if (p && st->ptx->tx.rules == p->rules) tx_put(p, st->ptx);
        else { waf_tx_free(&st->ptx->tx); free(st->ptx); }
    }
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
