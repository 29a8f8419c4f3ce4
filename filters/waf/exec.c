/*
 * The phase runner (the engine's top layer: above operator.c, firstpass.c, tcache.c,
 * expand.c and tx.c; only warmup.c and filter.c call it): a phase's rules, their chains and
 * actions, with ModSecurity v3's semantics where CRS depends on them:
 *  - a rule's setvar actions run once per matching value (and per matching
 *    link of a chain, whether or not later links match);
 *  - msg/logdata, ctl, skipAfter and the disruptive action run once, when the
 *    whole chain matched; `block` takes the phase's SecDefaultAction;
 *  - MATCHED_VAR(S) start empty for each rule; chain links see their parents';
 *  - `!VAR:/regex/` exclusions compare the key of any collection.
 * Transformation results are cached per (value, transformation chain) by tcache.c.
 */
#include <string.h>

#include "waf.h"
#include "expand.h"
#include "tcache.h"

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

/* "ARGS:foo" / "REQUEST_URI" */
static wstr full_name(waf_tx *tx, const tval *v) {
    wstr cn = var_name_w(v->coll);
    size_t cl = cn.n;
    if (!IS_COLLECTION(v->coll) || !v->key.p) return cn;
    char *o = ar_alloc(&tx->a, cl + 1 + v->key.n + 1);
    copy_bytes(o, cn.p, cl);
    o[cl] = ':';
    copy_bytes(o + cl + 1, v->key.p, v->key.n);
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

static bool eval_rule(waf_tx *tx, const rule *ru);

/* A rule's end once its values are read (eval_rule and eval_tx_check): no match clears the
 * matched values; a match runs the chain's links, then the rule's actions. */
static bool conclude_rule(waf_tx *tx, const rule *ru, bool any) {
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
    return conclude_rule(tx, ru, any);
}

/* At most this many TX items per key are read by tx_check; more (never in CRS: TX keys are
 * set, not added) go through eval_rule. */
#define TX_CHECK_ITEMS 4

/* A rule->tx_check rule: its key's items (or their count) read from TX's index, the operator
 * on each, and on a match what eval_rule does (matched values, setvars, the chain's links,
 * actions).  The values are read before the operator runs, as eval_rule lists them first. */
static bool eval_tx_check(waf_tx *tx, const rule *ru) {
    const target *t = &ru->targets[0];
    if (tx->n_rm_targets) return eval_rule(tx, ru);
    uint32_t idx[32];
    int n = coll_find_all(&tx->c[V_TX], t->key_lc, t->key_hash, idx, 32);
    if (n < 0 || (!t->count && n > TX_CHECK_ITEMS)) return eval_rule(tx, ru);
    tx->cur_rule = ru;
    tval vals[TX_CHECK_ITEMS];
    int nv = 0;
    if (t->count) {
        vals[nv++] = (tval){V_TX, t->key, tx_num(tx, n), 0};
    } else {
        for (int k = 0; k < n; k++) {
            const kv *it = &tx->c[V_TX].items[idx[k]];
            vals[nv++] = (tval){V_TX, it->key, it->val, 0};
        }
    }
    bool any = false;
    wstr md;
    for (int k = 0; k < nv; k++) {
        if (!op_exec(tx, ru, vals[k].val, &md)) continue;
        any = true;
        matched(tx, &vals[k], vals[k].val);
        run_setvars(tx, ru);
    }
    return conclude_rule(tx, ru, any);
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
        bool m = ru->tx_check ? eval_tx_check(tx, ru) : eval_rule(tx, ru);
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
