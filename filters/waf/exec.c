/*
 * Rule execution: a transaction's variables, phases, chains and actions, with
 * ModSecurity v3's semantics where CRS depends on them:
 *  - a rule's setvar actions run once per matching value (and per matching
 *    link of a chain, whether or not later links match);
 *  - msg/logdata, ctl, skipAfter and the disruptive action run once, when the
 *    whole chain matched; `block` takes the phase's SecDefaultAction;
 *  - MATCHED_VAR(S) start empty for each rule; chain links see their parents';
 *  - `!VAR:/regex/` exclusions compare the key of any collection.
 * Transformation results are cached per (value, transformation chain).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcre2.h"
#include "waf.h"

/* ------------------------------------------------------------------ transaction */

void waf_tx_init(waf_tx *tx, const waf_rules *rules) {
    memset(tx, 0, sizeof *tx);
    tx->rules = rules;
    tx->match_data = pcre2_match_data_create(10, NULL);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    pcre2_set_match_limit(mc, (uint32_t)rules->pcre_match_limit);
    pcre2_set_depth_limit(mc, (uint32_t)rules->pcre_match_limit_recursion);
    tx->match_ctx = mc;
    if (!tx->match_data || !mc) abort();
    waf_tx_reset(tx);
}

void waf_tx_reset(waf_tx *tx) {
    const waf_rules *r = tx->rules;
    void *md = tx->match_data, *mc = tx->match_ctx;
    arena a = tx->a;
    ar_reset(&a);
    memset(tx, 0, sizeof *tx);
    tx->a = a;
    tx->rules = r;
    tx->match_data = md;
    tx->match_ctx = mc;
    tx->engine = r->engine;
    tx->body_access = r->body_access;
    tx->highest_severity = 255;
}

void waf_tx_free(waf_tx *tx) {
    pcre2_match_data_free(tx->match_data);
    pcre2_match_context_free(tx->match_ctx);
    ar_free(&tx->a);
}

void tx_set_sc(waf_tx *tx, int v, wstr val) {
    tx->sc[v] = val;
    tx->sc_set[v] = 1;
    source_changed(tx, v);
}

static wstr dupw(waf_tx *tx, const char *p, size_t n) { return (wstr){ar_dup(&tx->a, p, n), n}; }

/* "0" .. "99", NUL-separated: the counts and scores most rules produce need no copy */
static const char SMALL_NUMS[] =
    "0\0" "1\0" "2\0" "3\0" "4\0" "5\0" "6\0" "7\0" "8\0" "9\0"
    "10\0" "11\0" "12\0" "13\0" "14\0" "15\0" "16\0" "17\0" "18\0" "19\0"
    "20\0" "21\0" "22\0" "23\0" "24\0" "25\0" "26\0" "27\0" "28\0" "29\0"
    "30\0" "31\0" "32\0" "33\0" "34\0" "35\0" "36\0" "37\0" "38\0" "39\0"
    "40\0" "41\0" "42\0" "43\0" "44\0" "45\0" "46\0" "47\0" "48\0" "49\0"
    "50\0" "51\0" "52\0" "53\0" "54\0" "55\0" "56\0" "57\0" "58\0" "59\0"
    "60\0" "61\0" "62\0" "63\0" "64\0" "65\0" "66\0" "67\0" "68\0" "69\0"
    "70\0" "71\0" "72\0" "73\0" "74\0" "75\0" "76\0" "77\0" "78\0" "79\0"
    "80\0" "81\0" "82\0" "83\0" "84\0" "85\0" "86\0" "87\0" "88\0" "89\0"
    "90\0" "91\0" "92\0" "93\0" "94\0" "95\0" "96\0" "97\0" "98\0" "99\0";

wstr tx_num(waf_tx *tx, long long v) {
    if (v >= 0 && v < 10) return (wstr){SMALL_NUMS + 2 * v, 1};
    if (v >= 10 && v < 100) return (wstr){SMALL_NUMS + 20 + 3 * (v - 10), 2};
    /* decimal digits by hand: setvar arithmetic and per-argument sizes call this often */
    char b[24], *e = b + sizeof b, *p = e;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do { *--p = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) *--p = '-';
    return dupw(tx, p, (size_t)(e - p));
}

/* ------------------------------------------------------------------ collections in the tx */

static coll *named_coll(waf_tx *tx, int var, bool create) {
    if (var == V_TX || var < V_GEO || var > V_RESOURCE) return &tx->c[var];
    /* IP, SESSION, USER, GLOBAL, RESOURCE, GEO: per-transaction collections */
    return &tx->c[var];
    (void)create;
}

const wstr *tx_get_var(waf_tx *tx, int coll_var, wstr key) {
    kv *it = coll_find(named_coll(tx, coll_var, false), key);
    return it ? &it->val : NULL;
}

/* key's item in the collection, added (empty) when missing; hash: hash_ci(key).  A key
 * that outlives the request (a rule's text, a macro's result in the arena) is kept as it
 * is; `copy` copies any other. */
static kv *var_slot(waf_tx *tx, int coll_var, wstr key, uint32_t hash, bool copy) {
    coll *c = named_coll(tx, coll_var, true);
    kv *it = coll_find_h(c, key, hash);
    if (it) return it;
    coll_add_h(&tx->a, c, copy ? dupw(tx, key.p, key.n) : key, (wstr){"", 0}, hash);
    return &c->items[c->n - 1];
}

void tx_set_var(waf_tx *tx, int coll_var, wstr key, wstr val) {
    var_slot(tx, coll_var, key, hash_ci(key.p, key.n), true)->val = val;
}

/* ------------------------------------------------------------------ macros */

static wstr var_first(waf_tx *tx, int var, wstr key, uint32_t hash);   /* hash: hash_ci(key) */

wstr macro_expand(waf_tx *tx, const macro_str *m) {
    if (!m->has_macro) return m->raw;
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
        if (vals[i].n) memcpy(o + k, vals[i].p, vals[i].n);
        k += vals[i].n;
    }
    o[k] = 0;
    return (wstr){o, k};
}

/* ------------------------------------------------------------------ value expansion */

typedef struct { int coll; wstr key; wstr val; uint32_t vid; } tval;
typedef struct { tval *v; int n, cap; } tvals;

static __attribute__((noinline)) void tv_grow(waf_tx *tx, tvals *out) {
    int cap = out->cap ? out->cap * 2 : 32;
    tval *nv = ar_alloc(&tx->a, (size_t)cap * sizeof(tval));
    if (out->n) memcpy(nv, out->v, (size_t)out->n * sizeof(tval));
    out->v = nv;
    out->cap = cap;
}

/* inline: a rule's every target value passes here, and the list seldom grows */
static inline void tv_push(waf_tx *tx, tvals *out, int coll, wstr key, wstr val, uint32_t vid) {
    if (__builtin_expect(out->n == out->cap, 0)) tv_grow(tx, out);
    out->v[out->n++] = (tval){coll, key, val, vid};
}

/* vids (waf.h): request collections are stable for the whole request once the body is
 * parsed; a value's id is (collection, index); names get their own id space. */

/* 0x80 in each byte of w equal to b, exactly (no borrow from one byte into the next) */
static inline uint64_t bytes_eq(uint64_t w, uint8_t b) {
    uint64_t x = w ^ (0x0101010101010101ull * b);
    return ~(((x & 0x7F7F7F7F7F7F7F7Full) + 0x7F7F7F7F7F7F7F7Full) | x | 0x7F7F7F7F7F7F7F7Full);
}

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


static void expand(waf_tx *tx, const target *t, tvals *out) {
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

/* &VAR:key of a collection expand() lists as it is (TX, REQUEST_HEADERS, ...: CRS's
 * initialisation rules count a TX key each): the number of items with that key, told by the
 * index without listing them; -1 when expand must list them. */
static int count_keyed(waf_tx *tx, const target *t) {
    int v = t->var;
    if (!IS_COLLECTION(v) || !t->key.n || t->key_rx) return -1;
    switch (v) {
    case V_ARGS: case V_ARGS_NAMES: case V_ARGS_GET_NAMES: case V_ARGS_POST_NAMES:
    case V_REQUEST_HEADERS_NAMES: case V_REQUEST_COOKIES_NAMES: case V_MATCHED_VARS_NAMES:
    case V_RESPONSE_HEADERS_NAMES: case V_XML: case V_RULE: case V_ENV:
        return -1;
    default: {
        uint32_t idx[32];
        return coll_find_all(&tx->c[v], t->key_lc, t->key_hash, idx, 32);
    }
    }
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

/* "ARGS:foo" / "REQUEST_URI" */
static wstr full_name(waf_tx *tx, const tval *v) {
    const char *cn = var_name(v->coll);
    size_t cl = strlen(cn);
    if (!IS_COLLECTION(v->coll) || !v->key.p) return (wstr){cn, cl};
    char *o = ar_alloc(&tx->a, cl + 1 + v->key.n + 1);
    memcpy(o, cn, cl);
    o[cl] = ':';
    memcpy(o + cl + 1, v->key.p, v->key.n);
    o[cl + 1 + v->key.n] = 0;
    return (wstr){o, cl + 1 + v->key.n};
}

/* ------------------------------------------------------------------ actions */

static void run_setvars(waf_tx *tx, const rule *ru) {
    for (int i = 0; i < ru->n_setvars; i++) {
        const setvar_act *sv = &ru->setvars[i];
        wstr key = macro_expand(tx, &sv->key);
        if (sv->op == SV_DEL) { coll_del(named_coll(tx, sv->coll, true), key); continue; }
        wstr val = macro_expand(tx, &sv->val);
        kv *it = var_slot(tx, sv->coll, key, sv->key.has_macro ? hash_ci(key.p, key.n) : sv->key_hash, false);
        if (sv->op == SV_SET) {
            it->val = val.p == sv->val.raw.p ? val : dupw(tx, val.p, val.n);
            continue;
        }
        long long cur = 0, d = 0;
        parse_num(it->val, &cur);
        parse_num(val, &d);
        it->val = tx_num(tx, sv->op == SV_ADD ? cur + d : cur - d);
    }
}

static bool has_tag(const rule *ru, wstr tag) {
    const rule *head = ru->parent ? ru->parent : ru;
    for (int i = 0; i < head->n_tags; i++)
        if (head->tags[i].n == tag.n && memcmp(head->tags[i].p, tag.p, tag.n) == 0) return true;
    return false;
}

static void run_ctls(waf_tx *tx, const rule *ru) {
    for (int i = 0; i < ru->n_ctls; i++) {
        const ctl_act *c = &ru->ctls[i];
        switch (c->kind) {
        case CTL_RULE_ENGINE: tx->engine = c->ival; break;
        case CTL_REMOVE_BY_ID:
            if (tx->n_rm_ids == tx->cap_rm_ids) {
                int cap = tx->cap_rm_ids ? tx->cap_rm_ids * 2 : 16;
                uint32_t (*n)[2] = ar_alloc(&tx->a, (size_t)cap * sizeof *n);
                if (tx->n_rm_ids) memcpy(n, tx->rm_ids, (size_t)tx->n_rm_ids * sizeof *n);
                tx->rm_ids = n;
                tx->cap_rm_ids = cap;
            }
            tx->rm_ids[tx->n_rm_ids][0] = c->id_lo;
            tx->rm_ids[tx->n_rm_ids++][1] = c->id_hi;
            break;
        case CTL_REMOVE_BY_TAG:
            if (tx->n_rm_tags == tx->cap_rm_tags) {
                int cap = tx->cap_rm_tags ? tx->cap_rm_tags * 2 : 8;
                wstr *n = ar_alloc(&tx->a, (size_t)cap * sizeof *n);
                if (tx->n_rm_tags) memcpy(n, tx->rm_tags, (size_t)tx->n_rm_tags * sizeof *n);
                tx->rm_tags = n;
                tx->cap_rm_tags = cap;
            }
            tx->rm_tags[tx->n_rm_tags++] = c->str;
            break;
        case CTL_REMOVE_TARGET_BY_ID:
        case CTL_REMOVE_TARGET_BY_TAG:
            if (tx->n_rm_targets == tx->cap_rm_targets) {
                int cap = tx->cap_rm_targets ? tx->cap_rm_targets * 2 : 16;
                void *n = ar_alloc(&tx->a, (size_t)cap * sizeof *tx->rm_targets);
                if (tx->n_rm_targets) memcpy(n, tx->rm_targets, (size_t)tx->n_rm_targets * sizeof *tx->rm_targets);
                tx->rm_targets = n;
                tx->cap_rm_targets = cap;
            }
            tx->rm_targets[tx->n_rm_targets].id = c->kind == CTL_REMOVE_TARGET_BY_ID ? c->id_lo : 0;
            tx->rm_targets[tx->n_rm_targets].tag = c->kind == CTL_REMOVE_TARGET_BY_TAG ? c->tag : (wstr){0};
            tx->rm_targets[tx->n_rm_targets++].target = c->str;
            break;
        case CTL_BODY_PROCESSOR: {
            static const char *const NAMES[] = {"", "URLENCODED", "MULTIPART", "JSON", "XML"};
            tx->body_processor = c->ival;
            tx_set_sc(tx, V_REQBODY_PROCESSOR, (wstr){NAMES[c->ival], strlen(NAMES[c->ival])});
            break;
        }
        case CTL_BODY_ACCESS: tx->body_access = c->ival; break;
        case CTL_FORCE_BODY_VAR: tx->force_body_var = c->ival; break;
        default: break;
        }
    }
}

static bool rule_removed_at_runtime(waf_tx *tx, const rule *ru) {
    for (int i = 0; i < tx->n_rm_ids; i++)
        if (ru->id >= tx->rm_ids[i][0] && ru->id <= tx->rm_ids[i][1]) return true;
    for (int i = 0; i < tx->n_rm_tags; i++)
        if (has_tag(ru, tx->rm_tags[i])) return true;
    return false;
}

/* ctl:ruleRemoveTarget*: "ARGS:foo" (exact, as ModSecurity compares) or a whole "ARGS" */
static bool target_removed(waf_tx *tx, const rule *ru, wstr name) {
    const rule *head = ru->parent ? ru->parent : ru;
    for (int i = 0; i < tx->n_rm_targets; i++) {
        bool applies = tx->rm_targets[i].id ? tx->rm_targets[i].id == head->id : has_tag(ru, tx->rm_targets[i].tag);
        if (!applies) continue;
        wstr t = tx->rm_targets[i].target;
        if (t.n == name.n && memcmp(t.p, name.p, t.n) == 0) return true;
    }
    return false;
}

/* Does any ctl:ruleRemoveTarget* of this request apply to the rule? (checked once per rule) */
static bool rm_targets_apply(waf_tx *tx, const rule *ru) {
    const rule *head = ru->parent ? ru->parent : ru;
    for (int i = 0; i < tx->n_rm_targets; i++)
        if (tx->rm_targets[i].id ? tx->rm_targets[i].id == head->id : has_tag(ru, tx->rm_targets[i].tag)) return true;
    return false;
}

/* Whether a ctl target ("ARGS:foo", "REQUEST_URI") names value v, without building its name. */
static bool names_value(wstr t, const tval *v) {
    const char *cn = var_name(v->coll);
    size_t cl = strlen(cn);
    if (!IS_COLLECTION(v->coll) || !v->key.p) return t.n == cl && memcmp(t.p, cn, cl) == 0;
    return t.n == cl + 1 + v->key.n && memcmp(t.p, cn, cl) == 0 && t.p[cl] == ':' &&
           memcmp(t.p + cl + 1, v->key.p, v->key.n) == 0;
}

static bool value_removed(waf_tx *tx, const rule *ru, const tval *v) {
    const rule *head = ru->parent ? ru->parent : ru;
    for (int i = 0; i < tx->n_rm_targets; i++) {
        if (!names_value(tx->rm_targets[i].target, v)) continue;
        if (tx->rm_targets[i].id ? tx->rm_targets[i].id == head->id : has_tag(ru, tx->rm_targets[i].tag)) return true;
    }
    return false;
}

static bool excluded(waf_tx *tx, const rule *ru, const tval *v, bool rm_apply) {
    for (int i = 0; i < ru->n_targets; i++) {
        const target *e = &ru->targets[i];
        if (!e->exclude) continue;
        if (e->key_rx) {
            if (v->key.p && pcre2_match_simple(e->key_rx, v->key)) return true;
        } else if (e->key.n) {
            if (e->var == v->coll && v->key.p && ieq(v->key.p, v->key.n, e->key_lc.p, e->key_lc.n)) return true;
        }
    }
    return rm_apply && value_removed(tx, ru, v);
}

static bool target_excluded_whole(waf_tx *tx, const rule *ru, const target *t, bool rm_apply) {
    for (int i = 0; i < ru->n_targets; i++) {
        const target *e = &ru->targets[i];
        if (e->exclude && !e->key.n && !e->key_rx && e->var == t->var && !t->key.n && !t->key_rx) return true;
    }
    return rm_apply && target_removed(tx, ru, t->full);
}

static void record_match(waf_tx *tx, const rule *head, bool disruptive) {
    if (tx->n_matches == tx->cap_matches) {
        int cap = tx->cap_matches ? tx->cap_matches * 2 : 32;
        waf_match *n = ar_alloc(&tx->a, (size_t)cap * sizeof *n);
        if (tx->n_matches) memcpy(n, tx->matches, (size_t)tx->n_matches * sizeof *n);
        tx->matches = n;
        tx->cap_matches = cap;
    }
    waf_match *m = &tx->matches[tx->n_matches++];
    m->r = head;
    m->var_name = tx->sc_set[V_MATCHED_VAR_NAME] ? tx->sc[V_MATCHED_VAR_NAME] : (wstr){"", 0};
    m->var_val = tx->sc_set[V_MATCHED_VAR] ? tx->sc[V_MATCHED_VAR] : (wstr){"", 0};
    m->msg = macro_expand(tx, &head->msg);
    m->logdata = macro_expand(tx, &head->logdata);
    m->severity = head->severity;
    m->disruptive = disruptive;
    if (head->severity >= 0 && head->severity < tx->highest_severity) tx->highest_severity = head->severity;
}

/* actions once the whole chain (from this link on) matched */
static void after_full_match(waf_tx *tx, const rule *ru) {
    run_ctls(tx, ru);
    if (ru->parent) return;
    int d = ru->disruptive;
    int status = ru->status;
    if (d == D_BLOCK) {
        const default_act *da = &tx->rules->defaults[ru->phase];
        d = da->set ? da->disruptive : D_NONE;
        if (!status) status = da->status;
    }
    bool disruptive = d == D_DENY || d == D_DROP || d == D_REDIRECT;
    if (!ru->is_action || ru->log || disruptive) {
        if (ru->id && (ru->log || disruptive || ru->msg.raw.n)) record_match(tx, ru, disruptive && tx->engine != ENGINE_OFF);
    }
    if (tx->engine == ENGINE_OFF) return;
    if (disruptive && !tx->intercepted) {
        tx->intercepted = true;
        tx->disruptive_rule = ru;
        tx->status = status ? status : (d == D_REDIRECT ? 302 : 403);
        if (d == D_REDIRECT) tx->redirect = macro_expand(tx, &ru->redirect_url);
    } else if (d == D_ALLOW && tx->engine == ENGINE_ON) {
        if (ru->allow_scope == 1) tx->allow_phase = true;
        else if (ru->allow_scope == 2) tx->allow_request = true;
        else tx->allow_all = true;
    }
}

static void clear_matched(waf_tx *tx) {
    tx->sc_set[V_MATCHED_VAR] = tx->sc_set[V_MATCHED_VAR_NAME] = 0;
    tx->c[V_MATCHED_VARS].n = tx->c[V_MATCHED_VARS].hashed = 0;
    tx->c[V_MATCHED_VARS].indexed = false;
}

static void matched(waf_tx *tx, const tval *v, wstr val) {
    wstr name = full_name(tx, v);
    tx_set_sc(tx, V_MATCHED_VAR, val);
    tx_set_sc(tx, V_MATCHED_VAR_NAME, name);
    coll_add_unhashed(&tx->a, &tx->c[V_MATCHED_VARS], name, val);
}

/* The operator's result depends on the value alone (no macros, no side effects) and costs
 * enough to be worth remembering a miss (exec.c: repeated values). */
static bool pure_operator(const oper *op) {
    switch (op->kind) {
    case OP_DETECTSQLI: case OP_DETECTXSS: case OP_VALIDATEBYTERANGE: case OP_VALIDATEURLENCODING:
    case OP_VALIDATEUTF8ENCODING:
        return !op->param.has_macro;
    default:
        return false;
    }
}

/* firstpass_value_may_match without a call for the rules outside the regex sets (most that
 * reach a value: TX checks, counts, @within) */
static inline bool value_may_match(waf_tx *tx, const rule *ru, int chain, wstr v) {
    return !ru->n_pf || firstpass_value_may_match(tx, ru, chain, v);
}

/* The request collections whose values a whole-collection target lists (expand's order):
 * their count, 0 when the target is keyed, counted or not such a collection. */
static int whole_sources(const target *t, int base[2], bool *names) {
    if (t->key.n || t->key_rx || t->count || t->exclude) return 0;
    *names = false;
    switch (t->var) {
    case V_ARGS_NAMES: *names = true; /* fall through */
    case V_ARGS: base[0] = V_ARGS_GET; base[1] = V_ARGS_POST; return 2;
    case V_ARGS_GET_NAMES: *names = true; /* fall through */
    case V_ARGS_GET: base[0] = V_ARGS_GET; return 1;
    case V_ARGS_POST_NAMES: *names = true; /* fall through */
    case V_ARGS_POST: base[0] = V_ARGS_POST; return 1;
    case V_REQUEST_HEADERS_NAMES: *names = true; /* fall through */
    case V_REQUEST_HEADERS: base[0] = V_REQUEST_HEADERS; return 1;
    case V_REQUEST_COOKIES_NAMES: *names = true; /* fall through */
    case V_REQUEST_COOKIES: base[0] = V_REQUEST_COOKIES; return 1;
    default: return 0;
    }
}

/* Whether a rule misses every value of a whole-collection target, told over the distinct
 * values and their columns of results without listing the values: a pure operator (`run`)
 * is a function of the (transformed) value, so it misses all of them when it misses each
 * distinct one; an @rx rule's pattern DFA (firstpass_value_may_match, no side effects)
 * rules out a value PCRE2 would not match.  On the first value neither rules out, the
 * caller lists and evaluates them as usual (matches, setvars, order).  Exclusions only take
 * values away, so they need not be applied here. */
static bool distinct_all_miss(waf_tx *tx, const rule *ru, const target *t, bool run) {
    int base[2];
    bool names;
    int n = whole_sources(t, base, &names);
    if (!n) return false;
    int pre[sizeof ru->tfns + 1], np = 0;
    for (int c = ru->tchain; c >= 0; c = ru->multi_match ? tx->rules->tchain_parent[c] : -1) pre[np++] = c;
    wstr md;
    for (int k = 0; k < n; k++) {
        const uint32_t *idx;
        uint32_t nu = source_distinct(tx, base[k], names, &idx);
        if (!nu) continue;
        const kv *items = tx->c[base[k]].items;
        const wstr *prev = NULL;   /* multiMatch: the previous prefix's results (NULL: the values) */
        for (int q = np - 1; q >= 0; q--) {
            const wstr *col = source_column(tx, base[k], names, pre[q]);
            if (q < np - 1 && col == prev) continue;   /* the same results as the previous prefix */
            /* the values themselves, none of whose bytes the operator could match on */
            if (!col && run && op_misses_bytes(&ru->op, source_present(tx, base[k], names))) {
                prev = col;
                continue;
            }
            for (uint32_t u = 0; u < nu; u++) {
                uint32_t i = idx[u];
                if (!items[i].key.p) continue;
                wstr cur = col ? col[i] : (names ? items[i].key : items[i].val);
                if (q < np - 1) {
                    wstr was = prev ? prev[i] : (names ? items[i].key : items[i].val);
                    if (cur.n == was.n && (cur.p == was.p || memcmp(cur.p, was.p, cur.n) == 0)) continue;
                }
                if (value_may_match(tx, ru, pre[q], cur) && (!run || op_exec(tx, ru, cur, &md))) return false;
            }
            prev = col;
        }
    }
    return true;
}

static bool eval_rule(waf_tx *tx, const rule *ru) {
    tx->cur_rule = ru;
    if (ru->is_action) {
        run_setvars(tx, ru);
        if (ru->chain && ru->next_link && !eval_rule(tx, ru->next_link)) return false;
        tx->cur_rule = ru;
        after_full_match(tx, ru);
        return true;
    }
    /* (a chain's first rule was screened by waf_run_phase) */
    if (ru->pf_all && ru->parent && !firstpass_rule_may_match(tx, ru)) {
        clear_matched(tx);
        return false;
    }
    bool any = false;
    /* the value list is reused across rules (a chain link runs after its parent's loop) */
    tvals vals = {tx->scratch, 0, tx->scratch_cap};
    bool rm_apply = tx->n_rm_targets && rm_targets_apply(tx, ru);
    bool pure = pure_operator(&ru->op);
    bool screened = ru->op.kind == OP_RX && ru->n_pf;   /* each value is screened by its DFA */
    for (int ti = 0; ti < ru->n_targets; ti++) {
        const target *t = &ru->targets[ti];
        if (t->exclude) continue;
        if ((ru->has_exclusions || rm_apply) && target_excluded_whole(tx, ru, t, rm_apply)) continue;
        if (ru->n_pf && !firstpass_may_match(tx, ru, t)) continue;
        if ((pure || screened) && distinct_all_miss(tx, ru, t, pure)) continue;
        vals.n = 0;
        if (t->count) {
            int n = count_keyed(tx, t);
            if (n < 0) {
                tval few[32];   /* counted on the stack: most counts are a key's one or two items */
                tvals tmp = {few, 0, 32};
                target whole = *t;
                whole.count = false;
                expand(tx, &whole, &tmp);
                n = tmp.n;
            }
            tv_push(tx, &vals, t->var, t->key, tx_num(tx, n), 0);
            tx->scratch = vals.v;
            tx->scratch_cap = vals.cap;
        } else {
            expand(tx, t, &vals);
            tx->scratch = vals.v;
            tx->scratch_cap = vals.cap;
        }
        for (int vi = 0; vi < vals.n; vi++) {
            const tval *v = &vals.v[vi];
            if (!t->count && (ru->has_exclusions || rm_apply) && excluded(tx, ru, v, rm_apply)) continue;
            wstr md;
            bool memo = pure && v->vid;
            if (memo && value_known_no_match(tx, ru, v->vid)) continue;
            if (ru->multi_match) {
                /* the operator sees the value before and after every transformation that changed
                 * it; a miss at every step is a miss of the value (remembered like one step's) */
                int pre[sizeof ru->tfns + 1], np = 0;
                for (int c = ru->tchain; c >= 0; c = tx->rules->tchain_parent[c]) pre[np++] = c;
                wstr prev = {0};
                bool hit = false;
                for (int k = np - 1; k >= 0; k--) {
                    wstr cur = transform(tx, pre[k], v->val, v->vid);
                    if (k < np - 1 && cur.n == prev.n && (cur.p == prev.p || memcmp(cur.p, prev.p, cur.n) == 0)) continue;
                    prev = cur;
                    if (value_may_match(tx, ru, pre[k], cur) && op_exec(tx, ru, cur, &md)) {
                        any = hit = true;
                        matched(tx, v, cur);
                        run_setvars(tx, ru);
                    }
                }
                if (memo && !hit) value_no_match(tx, ru, v->vid);
                continue;
            }
            wstr tv = transform(tx, ru->tchain, v->val, v->vid);
            if (value_may_match(tx, ru, ru->tchain, tv) && op_exec(tx, ru, tv, &md)) {
                any = true;
                matched(tx, v, tv);
                run_setvars(tx, ru);
            } else if (memo) {
                value_no_match(tx, ru, v->vid);
            }
        }
    }
    if (!any) {
        clear_matched(tx);
        return false;
    }
    if (ru->chain) {
        if (!ru->next_link || !eval_rule(tx, ru->next_link)) return false;
        tx->cur_rule = ru;
    }
    after_full_match(tx, ru);
    return true;
}

bool waf_run_phase(waf_tx *tx, int phase) {
    const waf_rules *r = tx->rules;
    tx->phase = phase;
    tx->src_epoch++;   /* the body's values arrived, or a previous phase changed some */
    if (tx->engine == ENGINE_OFF || tx->allow_all || (tx->allow_request && phase <= 2)) return false;
    if (tx->intercepted && tx->engine == ENGINE_ON) return true;
    int n = r->n_phase[phase];
    rule *const *list = r->phase[phase];
    for (int i = 0; i < n;) {
        const rule *ru = list[i];
        if (ru->is_marker || ru->removed || (tx->n_rm_ids + tx->n_rm_tags && rule_removed_at_runtime(tx, ru))) {
            i++;
            continue;
        }
        /* most rules of an ordinary request: the first pass rules out every target, and a rule
         * that does not match has no effect (one mask test, without eval_rule's set-up) */
        if (ru->pf_all && !firstpass_rule_may_match(tx, ru)) {
            i++;
            continue;
        }
        clear_matched(tx);   /* MATCHED_VAR(S) start empty for every rule (not for chain links) */
        bool m = eval_rule(tx, ru);
        if (tx->intercepted && tx->engine == ENGINE_ON) return true;
        if (tx->engine == ENGINE_OFF) return false;
        if (tx->allow_phase) { tx->allow_phase = false; return false; }
        if (tx->allow_all || (tx->allow_request && phase <= 2)) return false;
        if (m && ru->skip_after.n) {
            i = ru->skip_after_idx + 1;
            continue;
        }
        i++;
        if (m && ru->skip) {
            int left = ru->skip;
            while (i < n && left > 0) {
                if (!list[i]->is_marker) left--;
                i++;
            }
        }
    }
    return tx->intercepted && tx->engine == ENGINE_ON;
}

/* ------------------------------------------------------------------ request input */

void tx_set_connection(waf_tx *tx, wstr client_ip, int client_port, wstr server_ip, int server_port) {
    tx_set_sc(tx, V_REMOTE_ADDR, dupw(tx, client_ip.p, client_ip.n));
    tx_set_sc(tx, V_REMOTE_HOST, tx->sc[V_REMOTE_ADDR]);
    tx_set_sc(tx, V_REMOTE_PORT, tx_num(tx, client_port));
    tx_set_sc(tx, V_SERVER_ADDR, dupw(tx, server_ip.p, server_ip.n));
    tx_set_sc(tx, V_SERVER_PORT, tx_num(tx, server_port));
}

void tx_set_unique_id(waf_tx *tx, wstr id) { tx_set_sc(tx, V_UNIQUE_ID, dupw(tx, id.p, id.n)); }

void tx_add_arg(waf_tx *tx, int coll_var, wstr key, wstr val) {
    if (tx->rules->args_limit && (int)(tx->c[V_ARGS_GET].n + tx->c[V_ARGS_POST].n) >= tx->rules->args_limit) return;
    coll_add_unhashed(&tx->a, &tx->c[coll_var], key, val);   /* hashed if a lookup asks */
    tx->args_size += (long long)key.n + (long long)val.n;   /* ARGS_COMBINED_SIZE: set once the args are in */
}

static inline bool hexc(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static inline int hv(char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

/* %XX decoding (invalid sequences kept), '+' -> space when `plus`; sets *invalid.  Eight bytes
 * a step up to each '%' (a form body's '+' every few bytes leaves no long plain runs), the
 * escape itself byte by byte; words load little-endian (wasm32, x86). */
static wstr url_decode(waf_tx *tx, wstr s, bool plus, bool *invalid) {
    char *o = ar_alloc(&tx->a, s.n + 1);
    size_t i = 0, k = 0;
    while (i < s.n) {
        if (i + 8 <= s.n) {   /* o has room: k <= i */
            uint64_t w;
            memcpy(&w, s.p + i, 8);
            uint64_t pct = bytes_eq(w, '%');
            if (plus) w ^= (bytes_eq(w, '+') >> 7) * ('+' ^ ' ');
            memcpy(o + k, &w, 8);
            size_t run = pct ? (size_t)__builtin_ctzll(pct) / 8 : 8;
            i += run;
            k += run;
            if (run == 8) continue;
        }
        char c = s.p[i];
        if (c == '%') {
            if (i + 2 < s.n && hexc(s.p[i + 1]) && hexc(s.p[i + 2])) {
                o[k++] = (char)(hv(s.p[i + 1]) * 16 + hv(s.p[i + 2]));
                i += 3;
                continue;
            }
            if (invalid) *invalid = true;
            o[k++] = c;
        } else {
            o[k++] = c == '+' && plus ? ' ' : c;
        }
        i++;
    }
    o[k] = 0;
    return (wstr){o, k};
}

void body_urlencoded(waf_tx *tx, wstr body, int target_coll) {
    size_t i = 0;
    while (i < body.n) {
        const char *amp = memchr(body.p + i, '&', body.n - i);
        size_t e = amp ? (size_t)(amp - body.p) : body.n;
        wstr part = {body.p + i, e - i};
        const char *eq = memchr(part.p, '=', part.n);
        wstr k = eq ? (wstr){part.p, (size_t)(eq - part.p)} : part;
        wstr v = eq ? (wstr){eq + 1, part.n - (size_t)(eq - part.p) - 1} : (wstr){"", 0};
        bool invalid = false;
        wstr dk = url_decode(tx, k, true, &invalid), dv = url_decode(tx, v, true, &invalid);
        if (invalid) tx_set_sc(tx, V_URLENCODED_ERROR, WSTR("1"));
        tx_add_arg(tx, target_coll, dk, dv);
        i = e + 1;
    }
}

void tx_set_request_line(waf_tx *tx, wstr method, wstr uri, wstr protocol) {
    method = dupw(tx, method.p, method.n);
    uri = dupw(tx, uri.p, uri.n);
    protocol = dupw(tx, protocol.p, protocol.n);
    tx_set_sc(tx, V_REQUEST_METHOD, method);
    tx_set_sc(tx, V_REQUEST_PROTOCOL, protocol);
    tx_set_sc(tx, V_REQUEST_URI_RAW, uri);
    size_t ln = method.n + 1 + uri.n + 1 + protocol.n;
    char *line = ar_alloc(&tx->a, ln + 1);
    snprintf(line, ln + 1, "%.*s %.*s %.*s", (int)method.n, method.p, (int)uri.n, uri.p, (int)protocol.n, protocol.p);
    tx_set_sc(tx, V_REQUEST_LINE, (wstr){line, ln});
    const char *q = memchr(uri.p, '?', uri.n);
    if (q) tx_set_sc(tx, V_QUERY_STRING, (wstr){q + 1, uri.n - (size_t)(q - uri.p) - 1});
    else tx_set_sc(tx, V_QUERY_STRING, (wstr){"", 0});
    wstr dec = url_decode(tx, uri, false, NULL);
    const char *dq = memchr(dec.p, '?', dec.n);
    wstr path = dq ? (wstr){dec.p, (size_t)(dq - dec.p)} : dec;
    tx_set_sc(tx, V_REQUEST_FILENAME, path);
    tx_set_sc(tx, V_PATH_INFO, path);
    for (size_t i = path.n; i-- > 0;) {
        if (path.p[i] == '/' || path.p[i] == '\\') {
            if (i + 1 < path.n) tx_set_sc(tx, V_REQUEST_BASENAME, (wstr){path.p + i + 1, path.n - i - 1});
            break;
        }
    }
    if (!tx->sc_set[V_REQUEST_BASENAME] && path.n && !memchr(path.p, '/', path.n)) tx_set_sc(tx, V_REQUEST_BASENAME, path);
    /* absolute-form: REQUEST_URI keeps only the path and query */
    wstr parsed = dec;
    if (dec.n && dec.p[0] != '/') {
        const char *colon = memchr(dec.p, ':', dec.n);
        if (colon && (size_t)(colon - dec.p) + 3 <= dec.n && colon[1] == '/' && colon[2] == '/') {
            const char *host = colon + 3;
            const char *slash = memchr(host, '/', (size_t)(dec.p + dec.n - host));
            if (slash) parsed = (wstr){slash, (size_t)(dec.p + dec.n - slash)};
        }
    }
    tx_set_sc(tx, V_REQUEST_URI, parsed);
    if (q) body_urlencoded(tx, tx->sc[V_QUERY_STRING], V_ARGS_GET);
}

void tx_add_header(waf_tx *tx, wstr name, wstr value) {
    name = dupw(tx, name.p, name.n);
    value = dupw(tx, value.p, value.n);
    coll_add(&tx->a, &tx->c[V_REQUEST_HEADERS], name, value);
    if (ieqz(name, "cookie")) {
        /* split on ';', key up to the first '=', leading spaces of the key dropped */
        size_t end = value.n;
        size_t i = 0;
        /* the last pair loses trailing whitespace */
        while (end > 0 && (value.p[end - 1] == ' ' || value.p[end - 1] == '\t')) end--;
        while (i < end) {
            const char *semi = memchr(value.p + i, ';', end - i);
            size_t e = semi ? (size_t)(semi - value.p) : end;
            wstr c = {value.p + i, e - i};
            i = e + 1;
            if (!c.n) continue;
            const char *eq = memchr(c.p, '=', c.n);
            wstr k = eq ? (wstr){c.p, (size_t)(eq - c.p)} : c;
            wstr v = eq ? (wstr){eq + 1, c.n - (size_t)(eq - c.p) - 1} : (wstr){"", 0};
            while (k.n && (k.p[0] == ' ' || k.p[0] == '\t' || k.p[0] == '\n' || k.p[0] == '\r')) { k.p++; k.n--; }
            if (!k.n) continue;
            coll_add(&tx->a, &tx->c[V_REQUEST_COOKIES], k, v);
        }
    } else if (ieqz(name, "content-type")) {
        if (value.n >= 19 && ieq(value.p, 19, "multipart/form-data", 19)) {
            tx->body_processor = BP_MULTIPART;
            tx_set_sc(tx, V_REQBODY_PROCESSOR, WSTR("MULTIPART"));
        }
        if (value.n >= 33 && ieq(value.p, 33, "application/x-www-form-urlencoded", 33)) {
            tx->body_processor = BP_URLENCODED;
            tx_set_sc(tx, V_REQBODY_PROCESSOR, WSTR("URLENCODED"));
        }
    }
}

void tx_headers_done(waf_tx *tx) {
    tx_set_sc(tx, V_ARGS_COMBINED_SIZE, tx->args_size ? tx_num(tx, tx->args_size) : WSTR("0"));
    tx_set_sc(tx, V_DURATION, WSTR("0"));
}

void tx_body_error(waf_tx *tx, const char *msg) {
    tx_set_sc(tx, V_REQBODY_ERROR, WSTR("1"));
    tx_set_sc(tx, V_REQBODY_PROCESSOR_ERROR, WSTR("1"));
    wstr m = dupw(tx, msg, strlen(msg));
    tx_set_sc(tx, V_REQBODY_ERROR_MSG, m);
    tx_set_sc(tx, V_REQBODY_PROCESSOR_ERROR_MSG, m);
}

void tx_process_body(waf_tx *tx, const char *body, size_t len, bool truncated) {
    (void)truncated;
    tx->body_processed = true;
    wstr b = {body ? body : "", len};
    tx_set_sc(tx, V_REQBODY_ERROR, WSTR("0"));
    tx_set_sc(tx, V_REQBODY_PROCESSOR_ERROR, WSTR("0"));
    if (!tx->body_access) return;
    wstr copy = dupw(tx, b.p, b.n);
    long long args_before = tx->args_size;
    switch (tx->body_processor) {
    case BP_URLENCODED: body_urlencoded(tx, copy, V_ARGS_POST); break;
    case BP_MULTIPART: body_multipart(tx, copy); break;
    case BP_JSON: body_json(tx, copy); break;
    case BP_XML: body_xml(tx, copy); break;
    default: break;
    }
    if (tx->args_size != args_before) tx_set_sc(tx, V_ARGS_COMBINED_SIZE, tx_num(tx, tx->args_size));
    if (len) {
        tx_set_sc(tx, V_REQUEST_BODY, copy);
        tx_set_sc(tx, V_REQUEST_BODY_LENGTH, tx_num(tx, (long long)len));
    }
}
