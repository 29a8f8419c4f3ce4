/*
 * Regex prefilter: literal "factors" a match must contain.
 *
 * PCRE2 runs interpreted in Wasm (no JIT), and CRS applies ~250 regexes to
 * every value: most of the time goes into proving that benign values do not
 * match.  At compile time each @rx pattern is analysed into a set of literal
 * strings such that every match contains at least one of them (e.g.
 * "(?:union|select)\s+" -> {union, select}).  All factors of all rules go into
 * one case-insensitive Aho-Corasick automaton; a value is scanned once per
 * transformation chain, and a rule whose factors are absent from it cannot
 * match, so PCRE2 is not run.  The analysis is conservative: any construct it
 * does not understand makes the rule "unfiltered" (always run).
 */
#include <stdlib.h>
#include <string.h>

#include "waf.h"

#define MAX_EXACT 64      /* strings in an exact set */
#define MAX_EXACT_LEN 24
#define MAX_FACTORS 256

typedef struct { char *s; int n; } str_t;
typedef struct { str_t *v; int n, cap; } sset;
enum { K_ANY = 0, K_EXACT, K_REQ };
typedef struct { int kind; sset set; } info;

typedef struct {
    const char *p, *end;
    bool fail;                   /* unsupported construct: no prefilter */
} rxp;

static void ss_add(sset *s, const char *p, int n) {
    for (int i = 0; i < s->n; i++)
        if (s->v[i].n == n && memcmp(s->v[i].s, p, (size_t)n) == 0) return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->v = realloc(s->v, (size_t)s->cap * sizeof(str_t));
        if (!s->v) abort();
    }
    char *c = malloc((size_t)n + 1);
    if (!c) abort();
    memcpy(c, p, (size_t)n);
    c[n] = 0;
    s->v[s->n++] = (str_t){c, n};
}

static void ss_free(sset *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i].s);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static void info_free(info *x) { ss_free(&x->set); x->kind = K_ANY; }
static info any(void) { info x = {K_ANY, {0}}; return x; }
static info exact1(const char *p, int n) { info x = {K_EXACT, {0}}; ss_add(&x.set, p, n); return x; }
static info empty(void) { return exact1("", 0); }

static inline char fold(unsigned char c) { return (char)((c >= 'A' && c <= 'Z') ? c + 32 : c); }

static bool has_empty(const sset *s) {
    for (int i = 0; i < s->n; i++) if (s->v[i].n == 0) return true;
    return false;
}

static int min_len(const sset *s) {
    int m = 1 << 30;
    for (int i = 0; i < s->n; i++) if (s->v[i].n < m) m = s->v[i].n;
    return s->n ? m : 0;
}

/* the node's requirement as a factor set (consumes x), or ANY */
static info as_req(info x) {
    if (x.kind == K_EXACT && !has_empty(&x.set) && x.set.n <= MAX_FACTORS) { x.kind = K_REQ; return x; }
    if (x.kind == K_REQ) return x;
    info_free(&x);
    return any();
}

/* a concatenation needs everything its parts need: keep the more selective side */
static info concat(info a, info b) {
    if (a.kind == K_EXACT && b.kind == K_EXACT && a.set.n * b.set.n <= MAX_EXACT) {
        int maxl = 0;
        for (int i = 0; i < a.set.n; i++) for (int j = 0; j < b.set.n; j++)
            if (a.set.v[i].n + b.set.v[j].n > maxl) maxl = a.set.v[i].n + b.set.v[j].n;
        if (maxl <= MAX_EXACT_LEN) {
            info r = {K_EXACT, {0}};
            char buf[2 * MAX_EXACT_LEN + 2];
            for (int i = 0; i < a.set.n; i++)
                for (int j = 0; j < b.set.n; j++) {
                    memcpy(buf, a.set.v[i].s, (size_t)a.set.v[i].n);
                    memcpy(buf + a.set.v[i].n, b.set.v[j].s, (size_t)b.set.v[j].n);
                    ss_add(&r.set, buf, a.set.v[i].n + b.set.v[j].n);
                }
            info_free(&a);
            info_free(&b);
            return r;
        }
    }
    info ra = as_req(a), rb = as_req(b);
    if (ra.kind == K_ANY) return rb;
    if (rb.kind == K_ANY) return ra;
    /* prefer longer shortest factors, then fewer factors */
    int la = min_len(&ra.set), lb = min_len(&rb.set);
    bool pick_a = la > lb || (la == lb && ra.set.n <= rb.set.n);
    if (pick_a) { info_free(&rb); return ra; }
    info_free(&ra);
    return rb;
}

static info alternate(info a, info b) {
    if (a.kind == K_EXACT && b.kind == K_EXACT && a.set.n + b.set.n <= MAX_EXACT) {
        for (int i = 0; i < b.set.n; i++) ss_add(&a.set, b.set.v[i].s, b.set.v[i].n);
        info_free(&b);
        return a;
    }
    info ra = as_req(a), rb = as_req(b);
    if (ra.kind == K_ANY || rb.kind == K_ANY || ra.set.n + rb.set.n > MAX_FACTORS) {
        info_free(&ra);
        info_free(&rb);
        return any();
    }
    for (int i = 0; i < rb.set.n; i++) ss_add(&ra.set, rb.set.v[i].s, rb.set.v[i].n);
    info_free(&rb);
    return ra;
}

static int hexv(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* An escape outside a class: a literal byte (>= 0), or -1 for a class/zero-width we
 * treat as "any" (-2: zero width). */
static int escape(rxp *r) {
    if (r->p >= r->end) { r->fail = true; return -1; }
    char c = *r->p++;
    switch (c) {
    case 'd': case 'D': case 'w': case 'W': case 's': case 'S': case 'h': case 'H': case 'v': case 'V':
    case 'R': case 'N': case 'X': case 'C':
        return -1;
    case 'b': case 'B': case 'A': case 'z': case 'Z': case 'G': case 'K':
        return -2;
    case 'p': case 'P':
        if (r->p < r->end && *r->p == '{') { while (r->p < r->end && *r->p != '}') r->p++; if (r->p < r->end) r->p++; }
        else if (r->p < r->end) r->p++;
        return -1;
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'f': return '\f';
    case 'e': return 0x1b;
    case 'a': return 0x07;
    case 'x':
        if (r->p < r->end && *r->p == '{') { r->fail = true; return -1; }
        if (r->p + 1 < r->end && hexv(r->p[0]) >= 0 && hexv(r->p[1]) >= 0) {
            int v = hexv(r->p[0]) * 16 + hexv(r->p[1]);
            r->p += 2;
            return v;
        }
        r->fail = true;
        return -1;
    case 'c':
        if (r->p < r->end) { char x = *r->p++; return (x >= 'a' && x <= 'z' ? x - 32 : x) ^ 0x40; }
        r->fail = true;
        return -1;
    case 'Q': case 'E': case 'g': case 'k': case 'o':
        r->fail = true;
        return -1;
    default:
        if (c >= '0' && c <= '9') { r->fail = true; return -1; }   /* backreference / octal */
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) { r->fail = true; return -1; }
        return (unsigned char)c;
    }
}

/* [...]: an exact set of (folded) single characters when small, else any */
static info char_class(rxp *r) {
    bool neg = false, big = false;
    uint8_t bits[32] = {0};
    if (r->p < r->end && *r->p == '^') { neg = true; r->p++; }
    bool first = true;
    while (r->p < r->end && (*r->p != ']' || first)) {
        first = false;
        int lo;
        if (*r->p == '[' && r->p + 1 < r->end && r->p[1] == ':') {
            const char *e = strstr(r->p, ":]");
            if (!e || e >= r->end) { r->fail = true; return any(); }
            r->p = e + 2;
            big = true;
            continue;
        }
        if (*r->p == '\\') {
            r->p++;
            if (r->p >= r->end) { r->fail = true; return any(); }
            char c = *r->p;
            if (strchr("dDwWsShHvVpPN", c)) { r->p++; if ((c == 'p' || c == 'P') && r->p < r->end && *r->p == '{') { while (r->p < r->end && *r->p != '}') r->p++; r->p++; } big = true; continue; }
            if (c == 'b') { r->p++; lo = 8; }
            else { lo = escape(r); if (lo < 0) { big = true; continue; } }
        } else {
            lo = (unsigned char)*r->p++;
        }
        int hi = lo;
        if (r->p + 1 < r->end && *r->p == '-' && r->p[1] != ']') {
            r->p++;
            if (*r->p == '\\') { r->p++; hi = escape(r); if (hi < 0) { r->fail = true; return any(); } }
            else hi = (unsigned char)*r->p++;
        }
        if (hi < lo) { r->fail = true; return any(); }
        for (int c = lo; c <= hi; c++) { int f = (unsigned char)fold((unsigned char)c); bits[f >> 3] |= (uint8_t)(1u << (f & 7)); }
    }
    if (r->p >= r->end) { r->fail = true; return any(); }
    r->p++;   /* ] */
    if (neg || big) return any();
    int cnt = 0;
    for (int c = 0; c < 256; c++) if (bits[c >> 3] & (1u << (c & 7))) cnt++;
    if (cnt == 0 || cnt > 8) return any();
    info x = {K_EXACT, {0}};
    for (int c = 0; c < 256; c++)
        if (bits[c >> 3] & (1u << (c & 7))) { char ch = (char)c; ss_add(&x.set, &ch, 1); }
    return x;
}

static info alternation(rxp *r);

/* an atom: literal, class, group, escape; *zero for zero-width atoms */
static info atom(rxp *r) {
    char c = *r->p;
    if (c == '(') {
        r->p++;
        bool lookaround = false;
        if (r->p < r->end && *r->p == '?') {
            r->p++;
            if (r->p >= r->end) { r->fail = true; return any(); }
            char k = *r->p;
            if (k == ':' || k == '>' || k == '|') r->p++;
            else if (k == '=' || k == '!') { r->p++; lookaround = true; }
            else if (k == '<' && r->p + 1 < r->end && (r->p[1] == '=' || r->p[1] == '!')) { r->p += 2; lookaround = true; }
            else if (k == '<' || k == 'P' || k == '\'') {
                if (k == 'P') r->p++;
                char close = *r->p == '\'' ? '\'' : '>';
                while (r->p < r->end && *r->p != close) r->p++;
                if (r->p >= r->end) { r->fail = true; return any(); }
                r->p++;
            } else if (k == '#') {
                while (r->p < r->end && *r->p != ')') r->p++;
                if (r->p < r->end) r->p++;
                return empty();
            } else {
                /* inline flags: (?i) (?s-m) or (?i:...) */
                const char *s = r->p;
                while (r->p < r->end && (*r->p == 'i' || *r->p == 'm' || *r->p == 's' || *r->p == 'U' ||
                                         *r->p == 'J' || *r->p == 'n' || *r->p == '-' || *r->p == '^'))
                    r->p++;
                for (const char *q = s; q < r->p; q++) if (*q == 'x' || *q == 'n') r->fail = true;
                if (r->p < r->end && *r->p == ')') { r->p++; return empty(); }
                if (r->p < r->end && *r->p == ':') r->p++;
                else { r->fail = true; return any(); }
            }
        }
        info x = alternation(r);
        if (r->p >= r->end || *r->p != ')') { r->fail = true; info_free(&x); return any(); }
        r->p++;
        if (lookaround) { info_free(&x); return empty(); }
        return x;
    }
    r->p++;
    switch (c) {
    case '[': return char_class(r);
    case '.': return any();
    case '^': case '$': return empty();
    case '\\': {
        int v = escape(r);
        if (v == -2) return empty();
        if (v < 0) return any();
        char ch = fold((unsigned char)v);
        return exact1(&ch, 1);
    }
    default: {
        char ch = fold((unsigned char)c);
        return exact1(&ch, 1);
    }
    }
}

static bool quantifier(rxp *r, int *mn, int *mx) {
    if (r->p >= r->end) return false;
    char c = *r->p;
    if (c == '*') { *mn = 0; *mx = -1; r->p++; }
    else if (c == '+') { *mn = 1; *mx = -1; r->p++; }
    else if (c == '?') { *mn = 0; *mx = 1; r->p++; }
    else if (c == '{') {
        const char *q = r->p + 1;
        int a = 0, b;
        if (q < r->end && *q == ',') {          /* {,n} is {0,n} in PCRE2 >= 10.43 */
            const char *d = q + 1;
            while (d < r->end && *d >= '0' && *d <= '9') d++;
            if (d > q + 1 && d < r->end && *d == '}') { r->p = d + 1; *mn = 0; *mx = 1 << 30; goto suffix; }
            return false;
        }
        if (q >= r->end || !(*q >= '0' && *q <= '9')) return false;   /* a literal '{' */
        while (q < r->end && *q >= '0' && *q <= '9') a = a * 10 + (*q++ - '0');
        b = a;
        if (q < r->end && *q == ',') {
            q++;
            if (q < r->end && *q >= '0' && *q <= '9') { b = 0; while (q < r->end && *q >= '0' && *q <= '9') b = b * 10 + (*q++ - '0'); }
            else b = -1;
        }
        if (q >= r->end || *q != '}') return false;
        r->p = q + 1;
        *mn = a;
        *mx = b;
    } else return false;
suffix:
    if (r->p < r->end && (*r->p == '?' || *r->p == '+')) r->p++;   /* lazy / possessive */
    return true;
}

static info sequence(rxp *r) {
    info acc = empty();
    while (r->p < r->end && *r->p != '|' && *r->p != ')' && !r->fail) {
        info x = atom(r);
        int mn, mx;
        while (quantifier(r, &mn, &mx)) {
            if (mn == 0) {
                if (mx == 1 && x.kind == K_EXACT && x.set.n < MAX_EXACT) ss_add(&x.set, "", 0);
                else { info_free(&x); x = any(); }
            } else if (!(mn == 1 && mx == 1)) {
                x = as_req(x);
            }
        }
        acc = concat(acc, x);
    }
    return acc;
}

static info alternation(rxp *r) {
    info acc = sequence(r);
    while (r->p < r->end && *r->p == '|' && !r->fail) {
        r->p++;
        acc = alternate(acc, sequence(r));
    }
    return acc;
}

/* Factors of a pattern (case-folded), or false when it cannot be prefiltered. */
static bool factors_of(const char *pat, size_t n, sset *out) {
    rxp r = {pat, pat + n, false};
    /* (*VERB) options and \Q: leave such patterns alone */
    if (n >= 2 && pat[0] == '(' && pat[1] == '*') return false;
    info x = alternation(&r);
    if (r.fail || r.p != r.end) { info_free(&x); return false; }
    x = as_req(x);
    if (x.kind != K_REQ) return false;
    *out = x.set;
    return true;
}

/* ------------------------------------------------------------------ ruleset wiring */

void prefilter_build(waf_rules *r) {
    r->pf_ac = ac_create();
    /* first pass: which rules are prefiltered, and their factors */
    sset *fs = calloc((size_t)r->n_all + 1, sizeof(sset));
    if (!fs) abort();
    for (int i = 0; i < r->n_all; i++) {
        rule *ru = r->all[i];
        ru->pf_idx = -1;
        if (ru->op.kind != OP_RX || ru->op.param.has_macro || !ru->op.rx.code || ru->multi_match) continue;
        if (!factors_of(ru->op.param.raw.p, ru->op.param.raw.n, &fs[i])) continue;
        ru->pf_idx = r->n_pf++;
    }
    r->pf_words = (r->n_pf + 63) / 64;
    int cap = 0;
    for (int i = 0; i < r->n_all; i++) {
        rule *ru = r->all[i];
        for (int k = 0; ru->pf_idx >= 0 && k < fs[i].n; k++) {
            int id = ac_add(r->pf_ac, fs[i].v[k].s, (size_t)fs[i].v[k].n);
            if (id >= cap) {
                int nc = cap ? cap * 2 : 256;
                while (nc <= id) nc *= 2;
                r->pf_factor_bits = realloc(r->pf_factor_bits, (size_t)nc * (size_t)r->pf_words * sizeof(uint64_t));
                if (!r->pf_factor_bits) abort();
                memset(r->pf_factor_bits + (size_t)cap * (size_t)r->pf_words, 0,
                       (size_t)(nc - cap) * (size_t)r->pf_words * sizeof(uint64_t));
                cap = nc;
            }
            r->pf_factor_bits[(size_t)id * (size_t)r->pf_words + (size_t)(ru->pf_idx >> 6)] |= 1ull << (ru->pf_idx & 63);
        }
        ss_free(&fs[i]);
    }
    free(fs);
    r->n_pf_factors = cap;
    ac_finalize(r->pf_ac);
}

void prefilter_free(waf_rules *r) {
    free(r->pf_factor_bits);
    ac_destroy(r->pf_ac);
}

typedef struct { const waf_rules *r; uint64_t *bits; } pf_ctx;

static void mark(void *ctx, int id) {
    pf_ctx *c = ctx;
    const uint64_t *f = c->r->pf_factor_bits + (size_t)id * (size_t)c->r->pf_words;
    for (int w = 0; w < c->r->pf_words; w++) c->bits[w] |= f[w];
}

/* Bitset of the prefiltered rules that may match `v`. */
uint8_t *prefilter_scan(waf_tx *tx, wstr v) {
    const waf_rules *r = tx->rules;
    uint64_t *bits = ar_alloc(&tx->a, (size_t)(r->pf_words ? r->pf_words : 1) * sizeof(uint64_t));
    memset(bits, 0, (size_t)r->pf_words * sizeof(uint64_t));
    pf_ctx c = {r, bits};
    ac_all(r->pf_ac, v, mark, &c);
    return (uint8_t *)bits;
}
