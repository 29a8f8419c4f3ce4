/*
 * A target's values and %{macros} (above tx.c and rx.c; below operator.c, which expands
 * its parameter's macros, and exec.c, which evaluates rules over the values): which values
 * `ARGS:foo`, `REQUEST_HEADERS:/re/`, `RULE.msg` or `XML:` name in a transaction, each
 * with its id when the request fixes it; and macros, split when the rules compile and
 * expanded per request (a macro reads its variable's first value, so the two are one unit).
 */
#include <stdio.h>
#include <string.h>

#include "expand.h"

/* ------------------------------------------------------------------ macros */

bool macro_parse(arena *a, macro_str *m, const char *p, size_t n, char *err, size_t err_len) {
    m->raw = (wstr){ar_dup(a, p, n), n};
    m->has_macro = false;
    m->n = 0;
    /* count parts upper bound */
    int cap = 1;
    for (size_t i = 0; i + 1 < n; i++) if (p[i] == '%' && p[i + 1] == '{') cap += 2;
    m->parts = ar_alloc(a, (size_t)cap * sizeof(macro_part));
    size_t lit = 0, i = 0;
    while (i < n) {
        if (p[i] == '%' && i + 1 < n && p[i + 1] == '{') {
            const char *close = memchr(p + i + 2, '}', n - i - 2);
            if (!close) { i++; continue; }
            const char *name = p + i + 2;
            size_t nl = (size_t)(close - name);
            const char *dot = memchr(name, '.', nl);
            const char *colon = memchr(name, ':', nl);
            if (!dot || (colon && colon < dot)) dot = colon;
            size_t vl = dot ? (size_t)(dot - name) : nl;
            int var = var_lookup(name, vl);
            if (!var) {
                snprintf(err, err_len, "unknown variable in macro %%{%.*s}", (int)nl, name);
                return false;
            }
            if (i > lit) m->parts[m->n++] = (macro_part){(wstr){m->raw.p + lit, i - lit}, 0, {0}, 0};
            wstr key = {NULL, 0};
            if (dot) key = (wstr){m->raw.p + (dot + 1 - p), nl - vl - 1};
            m->parts[m->n++] = (macro_part){{0}, var, key, hash_ci(key.p, key.n)};
            m->has_macro = true;
            i = (size_t)(close - p) + 1;
            lit = i;
        } else i++;
    }
    if (lit < n || m->n == 0) m->parts[m->n++] = (macro_part){(wstr){m->raw.p + lit, n - lit}, 0, {0}, 0};
    return true;
}

static wstr var_first(waf_tx *tx, int var, wstr key, uint32_t hash);   /* hash: hash_ci(key) */

wstr macro_expand_parts(waf_tx *tx, const macro_str *m) {
    if (m->n == 1 && m->parts[0].var) return var_first(tx, m->parts[0].var, m->parts[0].key, m->parts[0].key_hash);
    wstr one[16], *vals = m->n <= 16 ? one : ar_alloc(&tx->a, (size_t)m->n * sizeof *vals);
    size_t total = 0;
    for (int i = 0; i < m->n; i++) {
        const macro_part *p = &m->parts[i];
        vals[i] = p->var ? var_first(tx, p->var, p->key, p->key_hash) : p->lit;
        total += vals[i].n;
    }
    char *o = ar_alloc(&tx->a, total + 1);
    size_t k = 0;
    for (int i = 0; i < m->n; i++) {
        copy_bytes(o + k, vals[i].p, vals[i].n);
        k += vals[i].n;
    }
    o[k] = 0;
    return (wstr){o, k};
}

/* ------------------------------------------------------------------ value expansion */

__attribute__((noinline)) void tv_grow(waf_tx *tx, tvals *out) {
    int cap = out->cap ? out->cap * 2 : 32;
    tval *nv = ar_alloc(&tx->a, (size_t)cap * sizeof(tval));
    if (out->n) memcpy(nv, out->v, (size_t)out->n * sizeof(tval));
    out->v = nv;
    out->cap = cap;
}

/* vids (waf.h): request collections are stable for the whole request once the body is
 * parsed; a value's id is (collection, index); names get their own id space. */

/* Whether s holds a '\n', eight bytes a step (the last step overlaps the one before: no
 * byte-by-byte tail after the first eight). */
static bool has_newline(wstr s) {
    if (s.n < 8) return memchr(s.p, '\n', s.n) != NULL;
    uint64_t w;
    for (size_t i = 0; i + 8 < s.n; i += 8) {
        memcpy(&w, s.p + i, 8);
        if (bytes_eq(w, '\n')) return true;
    }
    memcpy(&w, s.p + s.n - 8, 8);
    return bytes_eq(w, '\n') != 0;
}

static bool key_selected(const target *t, wstr key) {
    if (t->key_rx) {
        const regex *re = t->key_rx;
        /* a literal pattern longer than the key cannot match it (922110's 32-byte
         * MULTIPART_HEADERS_CONTENT_TYPES_ tried on every TX key) */
        if (re->lit_mode && key.n < re->lit.n) return false;
        /* `^lit` matches at the start or after a '\n' (multiline): not in a key whose first
         * byte is not lit's (letters caseless) and that holds no '\n' (920450's
         * `^header_name_920450_`, 200005's `^MSC_`, tried on every TX key) */
        if ((re->lit_mode == RX_LIT_PREFIX || re->lit_mode == RX_LIT_EXACT || re->lit_mode == RX_LIT_LEAD) &&
            re->lit.n && (key.p[0] | 0x20) != (re->lit.p[0] | 0x20) && !has_newline(key))
            return false;
        return re->code && pcre2_match_simple(re, key);
    }
    if (t->key.n) return ieq(key.p, key.n, t->key_lc.p, t->key_lc.n);
    return true;
}

static void expand_coll(waf_tx *tx, const target *t, int base, int shown, bool names, tvals *out, bool stable) {
    coll *c = &tx->c[base];
    if (t->key.n && !t->key_rx) {
        uint32_t idx[32];
        int n = coll_find_all(c, t->key_lc, t->key_hash, idx, 32);
        for (int k = 0; k < n; k++) {
            kv *it = &c->items[idx[k]];
            tv_push(tx, out, shown, it->key, names ? it->key : it->val, stable ? VID(base, idx[k], names) : 0);
        }
        if (n >= 0) return;
    }
    for (uint32_t i = 0; i < c->n; i++) {
        kv *it = &c->items[i];
        if (!it->key.p) continue;
        if (!key_selected(t, it->key)) continue;
        tv_push(tx, out, shown, it->key, names ? it->key : it->val, stable ? VID(base, i, names) : 0);
    }
}

void expand(waf_tx *tx, const target *t, tvals *out) {
    int v = t->var;
    switch (v) {
    case V_ARGS:
        expand_coll(tx, t, V_ARGS_GET, V_ARGS, false, out, true);
        expand_coll(tx, t, V_ARGS_POST, V_ARGS, false, out, true);
        return;
    case V_ARGS_NAMES:
        expand_coll(tx, t, V_ARGS_GET, V_ARGS_NAMES, true, out, true);
        expand_coll(tx, t, V_ARGS_POST, V_ARGS_NAMES, true, out, true);
        return;
    case V_ARGS_GET_NAMES: expand_coll(tx, t, V_ARGS_GET, V_ARGS_GET_NAMES, true, out, true); return;
    case V_ARGS_POST_NAMES: expand_coll(tx, t, V_ARGS_POST, V_ARGS_POST_NAMES, true, out, true); return;
    case V_REQUEST_HEADERS_NAMES: expand_coll(tx, t, V_REQUEST_HEADERS, v, true, out, true); return;
    case V_REQUEST_COOKIES_NAMES: expand_coll(tx, t, V_REQUEST_COOKIES, v, true, out, true); return;
    case V_MATCHED_VARS_NAMES: expand_coll(tx, t, V_MATCHED_VARS, v, true, out, false); return;
    case V_RESPONSE_HEADERS_NAMES: expand_coll(tx, t, V_RESPONSE_HEADERS, v, true, out, false); return;
    case V_XML: {
        /* XPath: the root (the document's text) and every attribute value ("//@" "*") */
        if (!tx->sc_set[V_REQBODY_PROCESSOR] || !ieqz(tx->sc[V_REQBODY_PROCESSOR], "XML")) return;
        coll *c = &tx->c[V_XML];
        for (uint32_t i = 0; i < c->n; i++)
            if (c->items[i].key.n == t->key.n && memcmp(c->items[i].key.p, t->key.p, t->key.n) == 0)
                tv_push(tx, out, V_XML, t->key, c->items[i].val, VID(V_XML, i, 0));
        return;
    }
    case V_RULE: {
        const rule *ru = tx->cur_rule;
        if (!ru) return;
        const rule *head = ru->parent ? ru->parent : ru;
        char buf[16];
        if (!t->key.n || ieqz(t->key, "id")) {
            int n = snprintf(buf, sizeof buf, "%u", head->id);
            tv_push(tx, out, V_RULE, WSTR("id"), dupw(tx, buf, (size_t)n), 0);
        } else if (ieqz(t->key, "msg")) {
            tv_push(tx, out, V_RULE, WSTR("msg"), macro_expand(tx, &head->msg), 0);
        } else if (ieqz(t->key, "severity") && head->severity >= 0) {
            int n = snprintf(buf, sizeof buf, "%d", head->severity);
            tv_push(tx, out, V_RULE, WSTR("severity"), dupw(tx, buf, (size_t)n), 0);
        } else if (ieqz(t->key, "logdata")) {
            tv_push(tx, out, V_RULE, WSTR("logdata"), macro_expand(tx, &head->logdata), 0);
        }
        return;
    }
    case V_ENV:
        return;
    default:
        break;
    }
    if (IS_COLLECTION(v)) {
        expand_coll(tx, t, v, v, false, out, v != V_TX && v != V_MATCHED_VARS && v < V_GEO);
        return;
    }
    if (v == V_MATCHED_VAR || v == V_MATCHED_VAR_NAME || v == V_DURATION || v == V_HIGHEST_SEVERITY) {
        if (v == V_HIGHEST_SEVERITY) {
            tv_push(tx, out, v, (wstr){0}, tx_num(tx, tx->highest_severity), 0);
            return;
        }
        if (tx->sc_set[v]) tv_push(tx, out, v, (wstr){0}, tx->sc[v], 0);
        return;
    }
    if (tx->sc_set[v]) tv_push(tx, out, v, (wstr){0}, tx->sc[v], VID(v, 0, 0));
}

static wstr var_first(waf_tx *tx, int var, wstr key, uint32_t hash) {
    target t = {0};
    t.var = var;
    t.key = key;
    t.key_hash = hash;
    t.key_lc = key;   /* any case: only a hint for the comparison */
    if (var == V_TX || (IS_COLLECTION(var) && var >= V_GEO)) {
        if (!key.n) return (wstr){"", 0};
        const kv *it = coll_find_h(named_coll(tx, var, false), key, hash);
        return it ? it->val : (wstr){"", 0};
    }
    tvals vals = {0};
    expand(tx, &t, &vals);
    return vals.n ? vals.v[0].val : (wstr){"", 0};
}
