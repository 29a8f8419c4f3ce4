/*
 * SecLang parser and compiler: directives text -> waf_rules.
 *
 * Reads the configuration's directives and the files they Include (all handed
 * over by the host; the filter reads no files), joins continuation lines,
 * splits directives into arguments, and compiles each SecRule / SecAction /
 * SecMarker into a rule with its targets, operator, transformations and
 * actions.  Every error names file, line and reason; nothing is half-loaded.
 * Layer: above operator.c, firstpass.c, expand.c (macros), rx.c, transform.c and
 * vars.c; only filter.c calls it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "waf.h"

typedef struct {
    waf_rules *r;
    const waf_file *files;
    int n_files;
    const char *file;            /* current file name (interned) */
    char dir[256];               /* its directory, for Include / @pmFromFile */
    int line;
    char *err;
    size_t err_len;
    rule *chain_tail;            /* last rule of an open chain */
    int depth;                   /* Include nesting */
    /* SecRuleUpdateTargetById etc. apply to rules defined before them */
} parser;

static bool fail(parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(parser *ps, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(ps->err, ps->err_len, "%s:%d: %s", ps->file, ps->line, msg);
    return false;
}

static wstr sdup(parser *ps, const char *p, size_t n) { return (wstr){ar_dup(&ps->r->mem, p, n), n}; }

/* ------------------------------------------------------------------ tokenising */

typedef struct { char *p; size_t n; } arg;

/* Split one logical line into arguments: "double quoted" (\" escapes a quote,
 * other backslashes stay), 'single quoted', or bare words. */
static int split_args(parser *ps, char *line, arg *out, int max) {
    int n = 0;
    char *s = line;
    for (;;) {
        while (*s == ' ' || *s == '\t') s++;
        if (!*s) break;
        if (n == max) { fail(ps, "too many arguments"); return -1; }
        if (*s == '"' || *s == '\'') {
            char q = *s++;
            char *d = s, *start = s;
            while (*s && *s != q) {
                if (*s == '\\' && s[1] == q) { *d++ = q; s += 2; continue; }
                *d++ = *s++;
            }
            if (!*s) { fail(ps, "unterminated quoted argument"); return -1; }
            s++;
            out[n++] = (arg){start, (size_t)(d - start)};
            if (*s && *s != ' ' && *s != '\t') { fail(ps, "garbage after quoted argument"); return -1; }
        } else {
            char *start = s;
            while (*s && *s != ' ' && *s != '\t') s++;
            out[n++] = (arg){start, (size_t)(s - start)};
        }
        if (*s) *s++ = 0;
        else break;
    }
    for (int i = 0; i < n; i++) out[i].p[out[i].n] = 0;
    return n;
}

/* ------------------------------------------------------------------ targets */

static bool parse_targets(parser *ps, const char *p, size_t n, target **out, int *n_out) {
    int cap = 4, cnt = 0;
    for (size_t i = 0; i < n; i++) if (p[i] == '|') cap++;
    target *t = ar_alloc(&ps->r->mem, (size_t)cap * sizeof(target));
    memset(t, 0, (size_t)cap * sizeof(target));
    size_t i = 0;
    while (i < n) {
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '|')) i++;
        if (i >= n) break;
        size_t start = i;
        target *tg = &t[cnt];
        if (p[i] == '!') { tg->exclude = true; i++; }
        if (p[i] == '&') { tg->count = true; i++; }
        size_t ns = i;
        while (i < n && p[i] != ':' && p[i] != '|' && p[i] != '.') i++;
        tg->var = var_lookup(p + ns, i - ns);
        if (!tg->var) return fail(ps, "unknown variable '%.*s'", (int)(i - ns), p + ns);
        if (i < n && (p[i] == ':' || p[i] == '.')) {
            i++;
            if (tg->var == V_XML) {
                size_t ks = i;
                while (i < n && p[i] != '|') i++;
                tg->key = sdup(ps, p + ks, i - ks);
                if (ieqz(tg->key, "/")) tg->key = WSTR("/*");
                if (!ieqz(tg->key, "/*") && !ieqz(tg->key, "//@*"))
                    return fail(ps, "XML:%.*s: only the XPath expressions /* and //@* are supported",
                                (int)tg->key.n, tg->key.p);
            } else if (i < n && p[i] == '/') {
                size_t ks = ++i;
                while (i < n && !(p[i] == '/' && p[i - 1] != '\\' && (i + 1 == n || p[i + 1] == '|'))) i++;
                if (i >= n) return fail(ps, "unterminated regular expression in variable key");
                tg->key_rx = ar_alloc(&ps->r->mem, sizeof(regex));
                wstr src = sdup(ps, p + ks, i - ks);
                char err[256];
                if (!rx_compile(tg->key_rx, src.p, src.n, true, err, sizeof err)) return fail(ps, "%s", err);
                ps->r->n_regex++;
                tg->key = src;
                i++;
            } else {
                size_t ks = i;
                if (i < n && p[i] == '\'') {
                    ks = ++i;
                    while (i < n && p[i] != '\'') i++;
                    tg->key = sdup(ps, p + ks, i - ks);
                    if (i < n) i++;
                } else {
                    while (i < n && p[i] != '|') i++;
                    tg->key = sdup(ps, p + ks, i - ks);
                }
            }
        }
        tg->full = sdup(ps, p + start + (tg->exclude ? 1 : 0), i - start - (tg->exclude ? 1 : 0));
        if (!IS_COLLECTION(tg->var) && (tg->key.n || tg->key_rx))
            return fail(ps, "variable %s takes no key", var_name(tg->var));
        cnt++;
    }
    if (!cnt) return fail(ps, "no variables");
    *out = t;
    *n_out = cnt;
    return true;
}

/* ------------------------------------------------------------------ actions */

/* Transformation chains are interned with all their prefixes, so the per-request
 * cache can reuse a shared prefix (t:urlDecodeUni then more steps). */
static int intern_tchain(waf_rules *r, const uint8_t *t, int n) {
    for (int i = 0; i < r->n_tchains; i++)
        if (r->tchain_def[i][0] == n && memcmp(&r->tchain_def[i][1], t, (size_t)n) == 0) return i;
    int parent = n > 0 ? intern_tchain(r, t, n - 1) : -1;
    if (r->n_tchains == 0 || (r->n_tchains & (r->n_tchains - 1)) == 0) {
        int cap = r->n_tchains ? r->n_tchains * 2 : 64;
        r->tchain_def = realloc(r->tchain_def, (size_t)cap * sizeof *r->tchain_def);
        r->tchain_parent = realloc(r->tchain_parent, (size_t)cap * sizeof *r->tchain_parent);
        r->tchain_steps = realloc(r->tchain_steps, (size_t)cap * sizeof *r->tchain_steps);
        if (!r->tchain_def || !r->tchain_parent || !r->tchain_steps) abort();
    }
    r->tchain_def[r->n_tchains][0] = (uint8_t)n;
    memcpy(&r->tchain_def[r->n_tchains][1], t, (size_t)n);
    r->tchain_parent[r->n_tchains] = (int16_t)parent;
    r->tchain_steps[r->n_tchains] = parent >= 0 ? r->tchain_steps[parent] | 1ull << t[n - 1] : 0;
    return r->n_tchains++;
}

static int severity_of(const char *v, size_t n) {
    static const char *const NAMES[] = {"EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"};
    for (int i = 0; i < 8; i++) if (ieq(v, n, NAMES[i], strlen(NAMES[i]))) return i;
    if (n == 1 && v[0] >= '0' && v[0] <= '7') return v[0] - '0';
    return -1;
}

typedef struct { char *name; size_t nl; char *val; size_t vl; bool has_val; } action_tok;

/* Split "a,b:'x, y',c:v" into actions; single quotes group a value. */
static int split_actions(parser *ps, char *p, size_t n, action_tok *out, int max) {
    int cnt = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == ',' || p[i] == '\n' || p[i] == '\r')) i++;
        if (i >= n) break;
        if (cnt == max) { fail(ps, "too many actions"); return -1; }
        action_tok *a = &out[cnt];
        a->name = p + i;
        while (i < n && p[i] != ':' && p[i] != ',') i++;
        a->nl = (size_t)(p + i - a->name);
        while (a->nl && (a->name[a->nl - 1] == ' ' || a->name[a->nl - 1] == '\t')) a->nl--;
        a->has_val = false;
        a->val = NULL;
        a->vl = 0;
        if (i < n && p[i] == ':') {
            i++;
            while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
            a->has_val = true;
            if (i < n && p[i] == '\'') {
                i++;
                char *d = p + i;
                a->val = d;
                while (i < n && p[i] != '\'') {
                    if (p[i] == '\\' && i + 1 < n && p[i + 1] == '\'') { *d++ = '\''; i += 2; continue; }
                    *d++ = p[i++];
                }
                if (i >= n) { fail(ps, "unterminated quoted value of action '%.*s'", (int)a->nl, a->name); return -1; }
                a->vl = (size_t)(d - a->val);
                i++;
            } else {
                a->val = p + i;
                while (i < n && p[i] != ',') i++;
                a->vl = (size_t)(p + i - a->val);
                while (a->vl && (a->val[a->vl - 1] == ' ' || a->val[a->vl - 1] == '\t')) a->vl--;
            }
        }
        cnt++;
    }
    return cnt;
}

#define AIS(a, s) ieq((a)->name, (a)->nl, s, sizeof(s) - 1)

static bool parse_setvar(parser *ps, rule *ru, const char *v, size_t n) {
    setvar_act sv = {0};
    size_t i = 0;
    if (n && v[0] == '!') { sv.op = SV_DEL; i = 1; }
    const char *dot = memchr(v + i, '.', n - i);
    if (!dot) return fail(ps, "setvar: expected COLLECTION.name, got '%.*s'", (int)n, v);
    sv.coll = var_lookup(v + i, (size_t)(dot - v - i));
    if (!sv.coll || !IS_COLLECTION(sv.coll) || sv.coll < V_TX)
        return fail(ps, "setvar: unknown collection '%.*s'", (int)(dot - v - i), v + i);
    const char *ks = dot + 1;
    const char *eq = memchr(ks, '=', (size_t)(v + n - ks));
    size_t kl = eq ? (size_t)(eq - ks) : (size_t)(v + n - ks);
    char err[200];
    if (!macro_parse(&ps->r->mem, &sv.key, ks, kl, err, sizeof err)) return fail(ps, "setvar: %s", err);
    sv.key_hash = hash_ci(sv.key.raw.p, sv.key.raw.n);
    if (sv.op != SV_DEL) {
        const char *vs = "1";
        size_t vl = 1;
        sv.op = SV_SET;
        if (eq) {
            vs = eq + 1;
            vl = (size_t)(v + n - vs);
            if (vl && vs[0] == '+') { sv.op = SV_ADD; vs++; vl--; }
            else if (vl && vs[0] == '-') { sv.op = SV_SUB; vs++; vl--; }
        }
        if (!macro_parse(&ps->r->mem, &sv.val, vs, vl, err, sizeof err)) return fail(ps, "setvar: %s", err);
    }
    ru->setvars = realloc(ru->setvars, (size_t)(ru->n_setvars + 1) * sizeof(setvar_act));
    if (!ru->setvars) abort();
    ru->setvars[ru->n_setvars++] = sv;
    return true;
}

static bool parse_id_range(const char *p, size_t n, uint32_t *lo, uint32_t *hi) {
    char buf[64];
    if (n == 0 || n >= sizeof buf) return false;
    memcpy(buf, p, n);
    buf[n] = 0;
    char *e;
    unsigned long a = strtoul(buf, &e, 10), b = a;
    if (e == buf) return false;
    if (*e == '-') {
        char *e2;
        b = strtoul(e + 1, &e2, 10);
        if (e2 == e + 1 || *e2) return false;
    } else if (*e) return false;
    *lo = (uint32_t)a;
    *hi = (uint32_t)b;
    return a <= b;
}

static bool parse_ctl(parser *ps, rule *ru, const char *v, size_t n) {
    ctl_act c = {0};
    const char *eq = memchr(v, '=', n);
    if (!eq) return fail(ps, "ctl: expected name=value, got '%.*s'", (int)n, v);
    wstr name = {v, (size_t)(eq - v)}, val = {eq + 1, (size_t)(v + n - eq - 1)};
    if (ieqz(name, "ruleEngine")) {
        c.kind = CTL_RULE_ENGINE;
        if (ieqz(val, "On")) c.ival = ENGINE_ON;
        else if (ieqz(val, "Off")) c.ival = ENGINE_OFF;
        else if (ieqz(val, "DetectionOnly")) c.ival = ENGINE_DETECT;
        else return fail(ps, "ctl:ruleEngine: expected On, Off or DetectionOnly");
    } else if (ieqz(name, "ruleRemoveById")) {
        c.kind = CTL_REMOVE_BY_ID;
        if (!parse_id_range(val.p, val.n, &c.id_lo, &c.id_hi)) return fail(ps, "ctl:ruleRemoveById: bad id '%.*s'", (int)val.n, val.p);
    } else if (ieqz(name, "ruleRemoveByTag")) {
        c.kind = CTL_REMOVE_BY_TAG;        /* tags compare exactly, as in ModSecurity v3 */
        c.str = sdup(ps, val.p, val.n);
    } else if (ieqz(name, "ruleRemoveTargetById") || ieqz(name, "ruleRemoveTargetByTag")) {
        bool by_id = ieqz(name, "ruleRemoveTargetById");
        c.kind = by_id ? CTL_REMOVE_TARGET_BY_ID : CTL_REMOVE_TARGET_BY_TAG;
        const char *semi = memchr(val.p, ';', val.n);
        if (!semi) return fail(ps, "ctl:%.*s: expected ID;TARGET", (int)name.n, name.p);
        size_t first = (size_t)(semi - val.p);
        if (by_id) {
            if (!parse_id_range(val.p, first, &c.id_lo, &c.id_hi)) return fail(ps, "ctl:ruleRemoveTargetById: bad id");
        } else {
            c.tag = sdup(ps, val.p, first);
        }
        c.str = sdup(ps, semi + 1, val.n - first - 1);
    } else if (ieqz(name, "requestBodyProcessor")) {
        c.kind = CTL_BODY_PROCESSOR;
        if (ieqz(val, "URLENCODED")) c.ival = BP_URLENCODED;
        else if (ieqz(val, "MULTIPART")) c.ival = BP_MULTIPART;
        else if (ieqz(val, "JSON")) c.ival = BP_JSON;
        else if (ieqz(val, "XML")) c.ival = BP_XML;
        else return fail(ps, "ctl:requestBodyProcessor: unknown processor '%.*s'", (int)val.n, val.p);
    } else if (ieqz(name, "requestBodyAccess")) {
        c.kind = CTL_BODY_ACCESS;
        c.ival = ieqz(val, "On") || ieqz(val, "true");
    } else if (ieqz(name, "forceRequestBodyVariable")) {
        c.kind = CTL_FORCE_BODY_VAR;
        c.ival = ieqz(val, "On");
    } else if (ieqz(name, "auditEngine") || ieqz(name, "auditLogParts") || ieqz(name, "debugLogLevel") ||
               ieqz(name, "responseBodyAccess") || ieqz(name, "hashEngine") || ieqz(name, "hashEnforcement") ||
               ieqz(name, "parseXmlIntoArgs") || ieqz(name, "ruleRemoveByMsg") || ieqz(name, "requestBodyLimit") ||
               ieqz(name, "responseBodyLimit") || ieqz(name, "responseBodyProcessor")) {
        c.kind = CTL_IGNORED;
    } else {
        return fail(ps, "ctl: unknown option '%.*s'", (int)name.n, name.p);
    }
    ru->ctls = realloc(ru->ctls, (size_t)(ru->n_ctls + 1) * sizeof(ctl_act));
    if (!ru->ctls) abort();
    ru->ctls[ru->n_ctls++] = c;
    return true;
}

/* Apply actions to `ru`.  `link` is true for chained rules after the first. */
static bool parse_actions(parser *ps, rule *ru, char *p, size_t n, bool is_default) {
    action_tok toks[160];
    int cnt = split_actions(ps, p, n, toks, 160);
    if (cnt < 0) return false;
    char err[256];
    for (int k = 0; k < cnt; k++) {
        action_tok *a = &toks[k];
        const char *v = a->val;
        size_t vl = a->vl;
        if (AIS(a, "id")) {
            long long id;
            if (!a->has_val || !parse_num((wstr){v, vl}, &id) || id <= 0 || id > 0xffffffffLL)
                return fail(ps, "id: expected a positive integer");
            ru->id = (uint32_t)id;
        } else if (AIS(a, "phase")) {
            if (!a->has_val) return fail(ps, "phase: missing value");
            if (ieq(v, vl, "request", 7)) ru->phase = 2;
            else if (ieq(v, vl, "response", 8)) ru->phase = 4;
            else if (ieq(v, vl, "logging", 7)) ru->phase = 5;
            else if (vl == 1 && v[0] >= '1' && v[0] <= '5') ru->phase = v[0] - '0';
            else return fail(ps, "phase: expected 1-5, request, response or logging");
        } else if (AIS(a, "t")) {
            int t = tfn_lookup(v, vl);
            if (!t) return fail(ps, "unknown transformation t:%.*s", (int)vl, v);
            if (t == T_NONE) { ru->n_tfns = 0; ru->has_tfn_none = true; continue; }
            if (ru->n_tfns >= (int)sizeof ru->tfns) return fail(ps, "too many transformations");
            ru->tfns[ru->n_tfns++] = (uint8_t)t;
        } else if (AIS(a, "chain")) {
            ru->chain = true;
        } else if (AIS(a, "pass")) {
            ru->disruptive = D_PASS;
        } else if (AIS(a, "deny")) {
            ru->disruptive = D_DENY;
        } else if (AIS(a, "drop")) {
            ru->disruptive = D_DROP;
        } else if (AIS(a, "block")) {
            ru->disruptive = D_BLOCK;
        } else if (AIS(a, "allow")) {
            ru->disruptive = D_ALLOW;
            ru->allow_scope = !a->has_val ? 0 : ieq(v, vl, "phase", 5) ? 1 : ieq(v, vl, "request", 7) ? 2 : -1;
            if (ru->allow_scope < 0) return fail(ps, "allow: expected phase or request");
        } else if (AIS(a, "redirect")) {
            ru->disruptive = D_REDIRECT;
            if (!macro_parse(&ps->r->mem, &ru->redirect_url, v, vl, err, sizeof err)) return fail(ps, "%s", err);
        } else if (AIS(a, "status")) {
            long long s;
            if (!parse_num((wstr){v, vl}, &s) || s < 100 || s > 599) return fail(ps, "status: expected 100-599");
            ru->status = (int)s;
        } else if (AIS(a, "capture")) {
            ru->capture = true;
        } else if (AIS(a, "multiMatch")) {
            ru->multi_match = true;
        } else if (AIS(a, "log")) {
            ru->log = true; ru->nolog = false; ru->log_set = true;
        } else if (AIS(a, "nolog")) {
            ru->nolog = true; ru->log = false; ru->log_set = true;
        } else if (AIS(a, "auditlog")) {
            ru->auditlog = true; ru->noauditlog = false;
        } else if (AIS(a, "noauditlog")) {
            ru->noauditlog = true; ru->auditlog = false;
        } else if (AIS(a, "msg")) {
            if (!macro_parse(&ps->r->mem, &ru->msg, v, vl, err, sizeof err)) return fail(ps, "msg: %s", err);
        } else if (AIS(a, "logdata")) {
            if (!macro_parse(&ps->r->mem, &ru->logdata, v, vl, err, sizeof err)) return fail(ps, "logdata: %s", err);
        } else if (AIS(a, "tag")) {
            ru->tags = realloc(ru->tags, (size_t)(ru->n_tags + 1) * sizeof(wstr));
            if (!ru->tags) abort();
            ru->tags[ru->n_tags++] = sdup(ps, v, vl);
        } else if (AIS(a, "severity")) {
            ru->severity = severity_of(v, vl);
            if (ru->severity < 0) return fail(ps, "severity: unknown value '%.*s'", (int)vl, v);
        } else if (AIS(a, "setvar")) {
            if (!parse_setvar(ps, ru, v, vl)) return false;
        } else if (AIS(a, "ctl")) {
            if (!parse_ctl(ps, ru, v, vl)) return false;
        } else if (AIS(a, "skipAfter")) {
            ru->skip_after = sdup(ps, v, vl);
        } else if (AIS(a, "skip")) {
            long long s;
            if (!parse_num((wstr){v, vl}, &s) || s < 1) return fail(ps, "skip: expected a positive integer");
            ru->skip = (int)s;
        } else if (AIS(a, "ver") || AIS(a, "rev") || AIS(a, "maturity") || AIS(a, "accuracy") ||
                   AIS(a, "initcol") || AIS(a, "setenv") || AIS(a, "expirevar") || AIS(a, "setuid") ||
                   AIS(a, "setsid") || AIS(a, "setrsc") || AIS(a, "xmlns") || AIS(a, "sanitiseArg") ||
                   AIS(a, "sanitiseMatched") || AIS(a, "sanitiseMatchedBytes") || AIS(a, "sanitiseRequestHeader") ||
                   AIS(a, "sanitiseResponseHeader") || AIS(a, "deprecatevar") || AIS(a, "pause") ||
                   AIS(a, "append") || AIS(a, "prepend") || AIS(a, "proxy")) {
            /* metadata, persistent collections and response-side actions: accepted, no effect
             * on request inspection (initcol'd collections live for the transaction) */
        } else if (AIS(a, "exec")) {
            return fail(ps, "exec: running external programs is not supported");
        } else {
            return fail(ps, "unknown action '%.*s'", (int)a->nl, a->name);
        }
    }
    (void)is_default;
    return true;
}

/* ------------------------------------------------------------------ rule storage */

static void add_to_phase(waf_rules *r, int phase, rule *ru) {
    if (r->n_phase[phase] == r->cap_phase[phase]) {
        r->cap_phase[phase] = r->cap_phase[phase] ? r->cap_phase[phase] * 2 : 256;
        r->phase[phase] = realloc(r->phase[phase], (size_t)r->cap_phase[phase] * sizeof(rule *));
        if (!r->phase[phase]) abort();
    }
    r->phase[phase][r->n_phase[phase]++] = ru;
}

static void add_rule(waf_rules *r, rule *ru) {
    if (r->n_all == r->cap_all) {
        r->cap_all = r->cap_all ? r->cap_all * 2 : 512;
        r->all = realloc(r->all, (size_t)r->cap_all * sizeof(rule *));
        if (!r->all) abort();
    }
    r->all[r->n_all++] = ru;
}

static rule *new_rule(parser *ps) {
    rule *ru = calloc(1, sizeof *ru);
    if (!ru) abort();
    ru->severity = -1;
    ru->file = ps->file;
    ru->line = ps->line;
    ru->skip_after_idx = -1;
    return ru;
}

static rule *find_rule(waf_rules *r, uint32_t id) {
    for (int i = 0; i < r->n_all; i++)
        if (r->all[i]->id == id && !r->all[i]->parent) return r->all[i];
    return NULL;
}

static bool finish_rule(parser *ps, rule *ru, bool is_link) {
    if (is_link) {
        if (ru->id) return fail(ps, "a chained rule cannot have an id");
        if (ru->phase) return fail(ps, "a chained rule cannot have a phase");
        if (ru->disruptive) return fail(ps, "a chained rule cannot have a disruptive action");
        if (ru->skip_after.n || ru->skip) return fail(ps, "a chained rule cannot skip");
        rule *head = ps->chain_tail->parent ? ps->chain_tail->parent : ps->chain_tail;
        ru->parent = head;
        ru->phase = head->phase;
        ps->chain_tail->next_link = ru;
    } else {
        if (!ru->id) return fail(ps, "rule has no id");
        if (find_rule(ps->r, ru->id)) return fail(ps, "duplicate rule id %u", ru->id);
        if (!ru->phase) ru->phase = 2;
        default_act *d = &ps->r->defaults[ru->phase];
        if (d->set) {
            if (!ru->disruptive) ru->disruptive = D_NONE;
            if (!ru->log_set) { ru->log = d->log; ru->nolog = !d->log; }
            if (!ru->auditlog && !ru->noauditlog) ru->auditlog = d->auditlog;
            /* default transformations come first unless the rule says t:none */
            if (!ru->has_tfn_none && d->n_tfns) {
                if (ru->n_tfns + d->n_tfns > (int)sizeof ru->tfns) return fail(ps, "too many transformations");
                memmove(ru->tfns + d->n_tfns, ru->tfns, (size_t)ru->n_tfns);
                memcpy(ru->tfns, d->tfns, (size_t)d->n_tfns);
                ru->n_tfns += d->n_tfns;
            }
        } else if (!ru->log_set) {
            ru->log = true;
        }
        add_to_phase(ps->r, ru->phase, ru);
    }
    ru->tchain = (uint16_t)intern_tchain(ps->r, ru->tfns, ru->n_tfns);
    add_rule(ps->r, ru);
    ps->chain_tail = ru->chain ? ru : NULL;
    if (!is_link) ps->r->n_rules++;
    return true;
}

/* ------------------------------------------------------------------ directives */

static bool on_off(parser *ps, arg *a, int n, bool *out) {
    if (n != 2) return fail(ps, "%s: expected On or Off", a[0].p);
    if (ieq(a[1].p, a[1].n, "On", 2)) *out = true;
    else if (ieq(a[1].p, a[1].n, "Off", 3)) *out = false;
    else return fail(ps, "%s: expected On or Off, got '%s'", a[0].p, a[1].p);
    return true;
}

static bool size_arg(parser *ps, arg *a, int n, size_t *out) {
    long long v;
    if (n != 2 || !parse_num((wstr){a[1].p, a[1].n}, &v) || v < 0) return fail(ps, "%s: expected a number", a[0].p);
    *out = (size_t)v;
    return true;
}

static bool parse_text(parser *ps, const char *name, const char *text, size_t len);

static bool glob_match(const char *pat, const char *s, size_t sn) {
    size_t si = 0;
    const char *star = NULL;
    size_t star_si = 0;
    while (si < sn) {
        if (*pat == '*') { star = pat++; star_si = si; continue; }
        if (*pat && (*pat == '?' || *pat == s[si])) { pat++; si++; continue; }
        if (star) { pat = star + 1; si = ++star_si; continue; }
        return false;
    }
    while (*pat == '*') pat++;
    return !*pat;
}

static int cmp_file(const void *a, const void *b) {
    const waf_file *x = *(const waf_file *const *)a, *y = *(const waf_file *const *)b;
    size_t n = x->name.n < y->name.n ? x->name.n : y->name.n;
    int c = memcmp(x->name.p, y->name.p, n);
    return c ? c : (int)x->name.n - (int)y->name.n;
}

static bool do_include(parser *ps, const char *pat) {
    char full[512];
    if (pat[0] == '/' || !ps->dir[0]) snprintf(full, sizeof full, "%s", pat[0] == '/' ? pat + 1 : pat);
    else snprintf(full, sizeof full, "%s/%s", ps->dir, pat);
    const waf_file **hits = malloc(((size_t)ps->n_files + 1) * sizeof *hits);
    if (!hits) abort();
    int nh = 0;
    for (int i = 0; i < ps->n_files; i++)
        if (glob_match(full, ps->files[i].name.p, ps->files[i].name.n)) hits[nh++] = &ps->files[i];
    if (!nh) {
        free(hits);
        return fail(ps, "Include: no file matches '%s' (the host passes the files named by the stage's "
                        "`files` option)", full);
    }
    qsort(hits, (size_t)nh, sizeof *hits, cmp_file);
    bool ok = true;
    const char *save_file = ps->file;
    int save_line = ps->line;
    char save_dir[256];
    memcpy(save_dir, ps->dir, sizeof save_dir);
    for (int i = 0; i < nh && ok; i++) {
        if (ps->depth > 8) { ok = fail(ps, "Include: nested too deeply"); break; }
        ps->depth++;
        ok = parse_text(ps, hits[i]->name.p, hits[i]->text, hits[i]->len);
        ps->depth--;
        ps->file = save_file;
        ps->line = save_line;
        memcpy(ps->dir, save_dir, sizeof save_dir);
    }
    free(hits);
    return ok;
}

static bool tag_matches(const rule *ru, const regex *re, waf_tx *tx);

/* SecRuleUpdateTargetById / ByTag: append targets (exclusions included) to rules. */
static bool update_targets(parser *ps, rule *ru, const char *spec, size_t n) {
    target *t;
    int nt;
    if (!parse_targets(ps, spec, n, &t, &nt)) return false;
    target *all = ar_alloc(&ps->r->mem, (size_t)(ru->n_targets + nt) * sizeof(target));
    memcpy(all, ru->targets, (size_t)ru->n_targets * sizeof(target));
    memcpy(all + ru->n_targets, t, (size_t)nt * sizeof(target));
    ru->targets = all;
    ru->n_targets += nt;
    return true;
}

static bool directive(parser *ps, char *line) {
    arg a[8];
    int n = split_args(ps, line, a, 8);
    if (n < 0) return false;
    if (n == 0) return true;
    waf_rules *r = ps->r;
    const char *d = a[0].p;
    size_t dn = a[0].n;
#define DIS(s) ieq(d, dn, s, sizeof(s) - 1)
    if (ps->chain_tail && !DIS("SecRule") && !DIS("SecAction"))
        return fail(ps, "%s after a rule with `chain`: the chain is not finished", d);
    if (DIS("SecRule")) {
        if (n < 3 || n > 4) return fail(ps, "SecRule: expected VARIABLES OPERATOR [ACTIONS]");
        rule *ru = new_rule(ps);
        bool is_link = ps->chain_tail != NULL;
        if (!parse_targets(ps, a[1].p, a[1].n, &ru->targets, &ru->n_targets)) return false;
        /* operator: [!]@name param, or a bare regex */
        const char *op = a[2].p;
        size_t on = a[2].n;
        if (on && op[0] == '!') { ru->op.negate = true; op++; on--; }
        const char *param = op;
        size_t pn = on;
        if (on && op[0] == '@') {
            size_t k = 1;
            while (k < on && op[k] != ' ' && op[k] != '\t') k++;
            ru->op.kind = op_lookup(op + 1, k - 1);
            if (!ru->op.kind) return fail(ps, "unknown operator '%.*s'", (int)k, op);
            param = op + k;
            pn = on - k;
            while (pn && (*param == ' ' || *param == '\t')) { param++; pn--; }
        } else {
            ru->op.kind = OP_RX;
        }
        if (n == 4 && !parse_actions(ps, ru, a[3].p, a[3].n, false)) return false;
        char err[300];
        if (!op_compile(r, ru, param, pn, ps->dir, ps->files, ps->n_files, err, sizeof err))
            return fail(ps, "%s", err);
        return finish_rule(ps, ru, is_link);
    }
    if (DIS("SecAction")) {
        if (n != 2) return fail(ps, "SecAction: expected ACTIONS");
        rule *ru = new_rule(ps);
        bool is_link = ps->chain_tail != NULL;
        ru->is_action = true;
        ru->op.kind = OP_UNCONDITIONAL;
        ru->targets = ar_alloc(&r->mem, sizeof(target));
        memset(ru->targets, 0, sizeof(target));
        ru->n_targets = 0;
        if (!parse_actions(ps, ru, a[1].p, a[1].n, false)) return false;
        ru->op.param.raw = (wstr){"", 0};
        return finish_rule(ps, ru, is_link);
    }
    if (DIS("SecMarker")) {
        if (n != 2) return fail(ps, "SecMarker: expected a name");
        rule *ru = new_rule(ps);
        ru->is_marker = true;
        ru->marker = sdup(ps, a[1].p, a[1].n);
        for (int ph = 1; ph <= 5; ph++) add_to_phase(r, ph, ru);
        add_rule(r, ru);
        return true;
    }
    if (DIS("SecDefaultAction")) {
        if (n != 2) return fail(ps, "SecDefaultAction: expected ACTIONS");
        rule tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.severity = -1;
        if (!parse_actions(ps, &tmp, a[1].p, a[1].n, true)) return false;
        if (!tmp.phase) return fail(ps, "SecDefaultAction: a phase is required");
        if (!tmp.disruptive) return fail(ps, "SecDefaultAction: a disruptive action is required");
        if (tmp.id || tmp.chain || tmp.n_setvars || tmp.n_ctls || tmp.skip_after.n || tmp.msg.raw.n)
            return fail(ps, "SecDefaultAction: only phase, disruptive, status, transformation and log actions are allowed");
        default_act *da = &r->defaults[tmp.phase];
        da->set = true;
        da->disruptive = tmp.disruptive;
        da->status = tmp.status;
        da->log = tmp.log_set ? tmp.log : true;
        da->auditlog = tmp.auditlog;
        da->n_tfns = tmp.n_tfns > 8 ? 8 : tmp.n_tfns;
        memcpy(da->tfns, tmp.tfns, (size_t)da->n_tfns);
        free(tmp.tags);
        return true;
    }
    if (DIS("SecRuleEngine")) {
        if (n != 2) return fail(ps, "SecRuleEngine: expected On, Off or DetectionOnly");
        if (ieq(a[1].p, a[1].n, "On", 2)) r->engine = ENGINE_ON;
        else if (ieq(a[1].p, a[1].n, "Off", 3)) r->engine = ENGINE_OFF;
        else if (ieq(a[1].p, a[1].n, "DetectionOnly", 13)) r->engine = ENGINE_DETECT;
        else return fail(ps, "SecRuleEngine: expected On, Off or DetectionOnly");
        return true;
    }
    if (DIS("SecRequestBodyAccess")) return on_off(ps, a, n, &r->body_access);
    if (DIS("SecRequestBodyLimit")) return size_arg(ps, a, n, &r->body_limit);
    if (DIS("SecRequestBodyNoFilesLimit")) return size_arg(ps, a, n, &r->body_nofiles_limit);
    if (DIS("SecRequestBodyLimitAction")) {
        if (n != 2) return fail(ps, "SecRequestBodyLimitAction: expected Reject or ProcessPartial");
        if (ieq(a[1].p, a[1].n, "Reject", 6)) r->body_limit_reject = true;
        else if (ieq(a[1].p, a[1].n, "ProcessPartial", 14)) r->body_limit_reject = false;
        else return fail(ps, "SecRequestBodyLimitAction: expected Reject or ProcessPartial");
        return true;
    }
    if (DIS("SecArgumentsLimit") || DIS("SecRequestBodyJsonDepthLimit") || DIS("SecPcreMatchLimit") ||
        DIS("SecPcreMatchLimitRecursion") || DIS("SecUploadFileLimit")) {
        size_t v;
        if (!size_arg(ps, a, n, &v)) return false;
        if (DIS("SecArgumentsLimit")) r->args_limit = (int)v;
        else if (DIS("SecRequestBodyJsonDepthLimit")) r->json_depth_limit = (int)v;
        else if (DIS("SecPcreMatchLimit")) r->pcre_match_limit = v;
        else if (DIS("SecPcreMatchLimitRecursion")) r->pcre_match_limit_recursion = v;
        return true;
    }
    if (DIS("SecComponentSignature")) {
        if (n != 2) return fail(ps, "SecComponentSignature: expected a string");
        free(r->component_signature);
        r->component_signature = xstrndup(a[1].p, a[1].n);
        return true;
    }
    if (DIS("Include")) {
        if (n != 2) return fail(ps, "Include: expected a file name or pattern");
        return do_include(ps, a[1].p);
    }
    if (DIS("SecRuleRemoveById")) {
        if (n < 2) return fail(ps, "SecRuleRemoveById: expected ids or ranges");
        for (int i = 1; i < n; i++) {
            char *s = a[i].p;
            while (*s) {
                size_t l = strcspn(s, " ,");
                uint32_t lo, hi;
                if (l) {
                    if (!parse_id_range(s, l, &lo, &hi)) return fail(ps, "SecRuleRemoveById: bad id '%.*s'", (int)l, s);
                    for (int k = 0; k < r->n_all; k++)
                        if (!r->all[k]->parent && r->all[k]->id >= lo && r->all[k]->id <= hi) r->all[k]->removed = true;
                }
                s += l;
                while (*s == ' ' || *s == ',') s++;
            }
        }
        return true;
    }
    if (DIS("SecRuleRemoveByTag") || DIS("SecRuleRemoveByMsg")) {
        if (n != 2) return fail(ps, "%s: expected a regular expression", d);
        regex re;
        char err[200];
        if (!rx_compile(&re, a[1].p, a[1].n, false, err, sizeof err)) return fail(ps, "%s: %s", d, err);
        bool by_tag = DIS("SecRuleRemoveByTag");
        for (int k = 0; k < r->n_all; k++) {
            rule *ru = r->all[k];
            if (ru->parent || ru->is_marker) continue;
            if (by_tag) {
                if (tag_matches(ru, &re, NULL)) ru->removed = true;
            } else if (ru->msg.raw.n && pcre2_match_simple(&re, ru->msg.raw)) {
                ru->removed = true;
            }
        }
        rx_free(&re);
        return true;
    }
    if (DIS("SecRuleUpdateTargetById") || DIS("SecRuleUpdateTargetByTag") || DIS("SecRuleUpdateTargetByMsg")) {
        if (n != 3 && n != 4) return fail(ps, "%s: expected RULE TARGETS [REPLACED]", d);
        if (n == 4) return fail(ps, "%s: target replacement is not supported", d);
        if (DIS("SecRuleUpdateTargetById")) {
            char *s = a[1].p;
            bool any = false;
            while (*s) {
                size_t l = strcspn(s, " ,");
                uint32_t lo, hi;
                if (l) {
                    if (!parse_id_range(s, l, &lo, &hi)) return fail(ps, "%s: bad id '%.*s'", d, (int)l, s);
                    for (int k = 0; k < r->n_all; k++) {
                        rule *ru = r->all[k];
                        if (ru->parent || ru->is_marker || ru->id < lo || ru->id > hi) continue;
                        if (!update_targets(ps, ru, a[2].p, a[2].n)) return false;
                        any = true;
                    }
                }
                s += l;
                while (*s == ' ' || *s == ',') s++;
            }
            (void)any;  /* ModSecurity accepts updates for rules defined later or never: so do we */
            return true;
        }
        regex re;
        char err[200];
        if (!rx_compile(&re, a[1].p, a[1].n, false, err, sizeof err)) return fail(ps, "%s: %s", d, err);
        bool by_tag = DIS("SecRuleUpdateTargetByTag");
        for (int k = 0; k < r->n_all; k++) {
            rule *ru = r->all[k];
            if (ru->parent || ru->is_marker) continue;
            bool hit = by_tag ? tag_matches(ru, &re, NULL) : (ru->msg.raw.n && pcre2_match_simple(&re, ru->msg.raw));
            if (hit && !update_targets(ps, ru, a[2].p, a[2].n)) { rx_free(&re); return false; }
        }
        rx_free(&re);
        return true;
    }
    if (DIS("SecRuleUpdateActionById")) {
        if (n != 3) return fail(ps, "SecRuleUpdateActionById: expected ID ACTIONS");
        long long id;
        if (!parse_num((wstr){a[1].p, a[1].n}, &id)) return fail(ps, "SecRuleUpdateActionById: bad id");
        rule *ru = find_rule(r, (uint32_t)id);
        if (!ru) return fail(ps, "SecRuleUpdateActionById: no rule with id %lld", id);
        uint32_t keep_id = ru->id;
        int keep_phase = ru->phase;
        if (!parse_actions(ps, ru, a[2].p, a[2].n, false)) return false;
        ru->id = keep_id;
        ru->phase = keep_phase;
        ru->tchain = (uint16_t)intern_tchain(r, ru->tfns, ru->n_tfns);
        return true;
    }
    /* accepted, no effect on request-side inspection in this filter */
    static const char *const IGNORED[] = {
        "SecRequestBodyInMemoryLimit", "SecResponseBodyAccess", "SecResponseBodyMimeType",
        "SecResponseBodyMimeTypesClear", "SecResponseBodyLimit", "SecResponseBodyLimitAction",
        "SecAuditEngine", "SecAuditLog", "SecAuditLog2", "SecAuditLogParts", "SecAuditLogRelevantStatus",
        "SecAuditLogType", "SecAuditLogFormat", "SecAuditLogStorageDir", "SecAuditLogDirMode",
        "SecAuditLogFileMode", "SecDebugLog", "SecDebugLogLevel", "SecTmpDir", "SecDataDir",
        "SecUploadDir", "SecUploadKeepFiles", "SecUploadFileMode", "SecCookieFormat",
        "SecArgumentSeparator", "SecUnicodeMapFile", "SecUnicodeCodePage", "SecStatusEngine",
        "SecXmlExternalEntity", "SecHttpBlKey", "SecGeoLookupDb", "SecServerSignature", "SecWebAppId",
        "SecTmpSaveUploadedFiles", "SecCollectionTimeout", "SecConnEngine", "SecSensorId",
        "SecHashEngine", "SecHashKey", "SecHashParam", "SecHashMethodRx", "SecHashMethodPm",
        "SecRemoteRules", "SecRemoteRulesFailAction", "SecParseXmlIntoArgs", "SecInterceptOnError",
        "SecRequestBodyJsonDepthLimit", NULL};
    for (int i = 0; IGNORED[i]; i++)
        if (ieq(d, dn, IGNORED[i], strlen(IGNORED[i]))) return true;
    return fail(ps, "unknown directive '%s'", d);
#undef DIS
}

static bool parse_text(parser *ps, const char *name, const char *text, size_t len) {
    ps->file = ar_dup(&ps->r->mem, name, strlen(name));
    const char *slash = strrchr(name, '/');
    size_t dl = slash ? (size_t)(slash - name) : 0;
    if (dl >= sizeof ps->dir) dl = sizeof ps->dir - 1;
    memcpy(ps->dir, name, dl);
    ps->dir[dl] = 0;
    wbuf logical = {0};
    int line = 0, start_line = 0;
    size_t i = 0;
    bool ok = true;
    while (i < len && ok) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - text) : len;
        line++;
        size_t le = e;
        if (le > i && text[le - 1] == '\r') le--;
        const char *l = text + i;
        size_t ll = le - i;
        i = nl ? e + 1 : len;
        if (logical.n == 0) {
            size_t k = 0;
            while (k < ll && (l[k] == ' ' || l[k] == '\t')) k++;
            if (k == ll || l[k] == '#') continue;
            start_line = line;
        }
        bool cont = ll && l[ll - 1] == '\\';
        wb_put(&logical, l, cont ? ll - 1 : ll);
        if (cont && i < len) continue;
        ps->line = start_line;
        ok = directive(ps, logical.p);
        logical.n = 0;
    }
    wb_free(&logical);
    return ok;
}

/* ------------------------------------------------------------------ helpers used above */

static bool tag_matches(const rule *ru, const regex *re, waf_tx *tx) {
    (void)tx;
    for (int i = 0; i < ru->n_tags; i++)
        if (pcre2_match_simple(re, ru->tags[i])) return true;
    return false;
}

static void resolve_skips(waf_rules *r) {
    for (int ph = 1; ph <= 5; ph++) {
        for (int i = 0; i < r->n_phase[ph]; i++) {
            rule *ru = r->phase[ph][i];
            if (!ru->skip_after.n) continue;
            ru->skip_after_idx = r->n_phase[ph];
            for (int j = i + 1; j < r->n_phase[ph]; j++) {
                rule *m = r->phase[ph][j];
                if (m->is_marker && m->marker.n == ru->skip_after.n &&
                    memcmp(m->marker.p, ru->skip_after.p, m->marker.n) == 0) {
                    ru->skip_after_idx = j;
                    break;
                }
                /* skipAfter may also name a rule id: skip past that rule */
                if (!m->is_marker && m->id) {
                    char idb[16];
                    int il = snprintf(idb, sizeof idb, "%u", m->id);
                    if ((size_t)il == ru->skip_after.n && memcmp(idb, ru->skip_after.p, (size_t)il) == 0) {
                        ru->skip_after_idx = j;
                        break;
                    }
                }
            }
        }
    }
}

/* A rule whose one target is a TX key or its count, with no transformation and outside the
 * regex sets (CRS's paranoia-level checks and 901xxx's initialisation: ~90 of the ~160 rules a
 * GET evaluates): exec.c reads the key's items in place of listing them. */
static bool is_tx_check(const waf_rules *r, const rule *ru) {
    if (ru->is_marker || ru->is_action || ru->parent || ru->n_targets != 1 || ru->n_pf || ru->multi_match) return false;
    const target *t = &ru->targets[0];
    return t->var == V_TX && t->key.n && !t->key_rx && !t->exclude && !r->tchain_def[ru->tchain][0];
}

waf_rules *waf_compile(const char *directives, size_t len, const waf_file *files, int n_files, char *err,
                       size_t err_len) {
    waf_rules *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->engine = ENGINE_ON;
    r->body_access = true;
    r->body_limit = 13107200;
    r->body_nofiles_limit = 131072;
    r->body_limit_reject = true;
    r->args_limit = 1000;
    r->json_depth_limit = 512;
    r->pcre_match_limit = 1000000;
    r->pcre_match_limit_recursion = 1000000;
    parser ps = {.r = r, .files = files, .n_files = n_files, .err = err, .err_len = err_len};
    bool ok = parse_text(&ps, "directives", directives, len);
    if (ok && ps.chain_tail) {
        ps.line = ps.chain_tail->line;
        ps.file = ps.chain_tail->file;
        ok = fail(&ps, "the last rule has `chain` but no rule follows");
    }
    if (!ok) {
        waf_rules_free(r);
        return NULL;
    }
    resolve_skips(r);
    for (int i = 0; i < r->n_all; i++)
        for (rule *ru = r->all[i]; ru; ru = ru->next_link)
            for (int t = 0; t < ru->n_targets; t++) {
                target *tg = &ru->targets[t];
                if (tg->exclude) ru->has_exclusions = true;
                tg->key_hash = hash_ci(tg->key.p, tg->key.n);
                char *lc = ar_dup(&r->mem, tg->key.p, tg->key.n);
                for (size_t k = 0; k < tg->key.n; k++) if (lc[k] >= 'A' && lc[k] <= 'Z') lc[k] += 32;
                tg->key_lc = (wstr){lc, tg->key.n};
            }
    firstpass_build(r);
    for (int i = 0; i < r->n_all; i++) r->all[i]->tx_check = is_tx_check(r, r->all[i]);
    return r;
}

void waf_rules_free(waf_rules *r) {
    if (!r) return;
    for (int i = 0; i < r->n_all; i++) {
        rule *ru = r->all[i];
        op_free(&ru->op);
        for (int t = 0; t < ru->n_targets; t++)
            if (ru->targets[t].key_rx) rx_free(ru->targets[t].key_rx);
        for (int c = 0; c < ru->n_ctls; c++)
            if (ru->ctls[c].tag_rx) rx_free(ru->ctls[c].tag_rx);
        free(ru->tags);
        free(ru->setvars);
        free(ru->ctls);
        free(ru);
    }
    firstpass_free(r);
    for (int ph = 0; ph < 6; ph++) free(r->phase[ph]);
    free(r->all);
    free(r->tchain_def);
    free(r->tchain_parent);
    free(r->tchain_steps);
    free(r->component_signature);
    ar_free(&r->mem);
    free(r);
}
