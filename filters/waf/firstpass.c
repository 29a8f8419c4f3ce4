/*
 * First pass: which rules could match a request at all.
 *
 * PCRE2 runs interpreted in Wasm and CRS applies ~250 regexes to every request
 * value; nearly all of that work proves that benign values do not match.  Here
 * the @rx patterns are grouped into sets (rxset.h: Rust's `regex` RegexSet, one
 * lazy DFA per set, linear in the input) and a set runs once per source of
 * request values (ARGS_GET's values, REQUEST_HEADERS' names, REQUEST_URI, ...)
 * over that source's values after the set's transformation chain, joined by
 * '\n'.  A rule whose pattern the set says cannot match anywhere in a source
 * skips that target; otherwise its values are evaluated as usual (PCRE2, with
 * captures and match limits).  The translation is a superset of PCRE2's
 * language, and anchors match at the '\n' between values, so a value PCRE2
 * matches always makes the joined scan match.
 *
 * A set holds the @rx patterns of one transformation chain between two control
 * points of a phase (a marker, skip or skipAfter): CRS's paranoia-level blocks,
 * so the sets of levels above the configured one are never scanned.  @pm rules
 * join the sets too, their phrases written as one caseless alternation.
 *
 * A set first scans all its sources at once: the values of every source its
 * members target (the request headers a rule names, not all of them), after the
 * set's chain, joined.  On an ordinary request that scan finds nothing and one
 * mask test clears every rule of the set; only a set that matched is scanned again
 * per source, to tell which targets may match.
 *
 * Before a set scans, one literal pass decides whether it needs to: every match of
 * most CRS patterns contains one of a few literal strings (`<script`, `union`,
 * `/etc/`: rxset.h, rxset_gated), and one Aho-Corasick automaton holds those of
 * every set.  It runs once per distinct input (a source's joined values after a
 * chain; chains that change nothing share one input, and an input with the same
 * bytes as an earlier one takes its answer) and says which sets' literals occur in
 * it; a set none of whose literals occur in any of its inputs matches nothing
 * there, and neither its join nor its DFA is run.  An @pm set's phrases are
 * in that automaton too, which then answers for the set.  Patterns are grouped so
 * that this works: those with literals, those without, and those that match ordinary
 * values ("common", always checked alone) go to separate sets.
 *
 * On large inputs (a JSON body's joined values) the sets of one phase (of the blocks the
 * warm-up reached) also share unions, DFAs of all their patterns, that scan such an input
 * first, once: where they find nothing, none of those sets scans it.  Sets with literals and
 * sets without have unions apart: a gated set asks its union only about an input holding one
 * of its literals (a JSON body's argument names all hold `json`, which gates three 942
 * sets), and the unions of the others stay as small as before.  A large
 * input of several sources is asked about a source at a time (scan_large), and REQUEST_BODY
 * has a literal automaton of its own.  Smaller inputs, and inputs the union matches, go to
 * the sets as above, so an ordinary GET never runs a union.
 *
 * A rule that may match runs, per value, its pattern's own DFA first and PCRE2
 * only where that matched: PCRE2's cost on a long value that does not match is
 * bounded only by the match limit.
 *
 * Layer: above tcache.c and rx.c; below exec.c, parse.c and warmup.c.
 */
#include <stdlib.h>
#include <string.h>

#include "rxset.h"
#include "tcache.h"

/* patterns per set, and their total length: larger sets scan fewer times, but the states
 * of their DFA grow with the patterns' size (and a DFA that keeps outgrowing its cache
 * falls back to a much slower NFA simulation) */
#define GROUP_MAX 32
#define GROUP_MAX_BYTES 4096
/* each set's lazy DFA cache (bytes); a set that outgrows it keeps working, slower */
#define DFA_LIMIT (1u << 20)
/* A phase's sets are also merged into union DFAs, scanned first over
 * inputs at least this long: where it finds nothing, none of those sets is scanned there.
 * Smaller inputs go straight to the sets (on a GET the union would match joined ordinary
 * values, and each set would be scanned anyway). */
#define UNION_MIN_INPUT 4096
/* the union's lazy DFA cache per byte of its patterns (at least DFA_LIMIT), and its patterns'
 * total length: a phase with more gets several unions */
#define UNION_DFA_PER_BYTE 256
#define UNION_MAX_BYTES 16384

static bool is_pm(const rule *ru) { return ru->op.kind == OP_PM || ru->op.kind == OP_PMFROMFILE; }

/* @rx without macros, or @pm, not negated */
static bool eligible(const rule *ru) {
    if (ru->op.negate) return false;
    if (is_pm(ru)) return ru->op.ac && ru->op.pm_phrases.n;
    /* a pattern that matches every value (920450's `^.*$`) rules nothing out */
    return ru->op.kind == OP_RX && !ru->op.param.has_macro && ru->op.rx.code && !ru->op.rx.match_all;
}

/* Ordinary request values: a pattern that matches one of them would make its set's
 * alternation match on most requests, so it is checked on its own (rxset.h). */
static const char *const ORDINARY[] = {
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "en-US,en;q=0.9", "gzip, deflate, br", "keep-alive", "no-cache",
    "https://www.example.com/products/list.html?page=2", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW", "application/json",
    "session=6f1c2a9e; theme=dark", "/products/list", "www.example.com", "HTTP/1.1", "GET",
    "1", "42", "blue shoes", "An ordinary sentence, with some punctuation.",
    /* the '\n' between joined values: a pattern that matches it ([\n\r]) would make every
     * scan of two values or more match, and any union holding it */
    "an ordinary line\nand the next one",
};

static bool matches_ordinary(const rule *ru) {
    for (size_t i = 0; i < sizeof ORDINARY / sizeof ORDINARY[0]; i++)
        if (pcre2_match_simple(&ru->op.rx, (wstr){ORDINARY[i], strlen(ORDINARY[i])})) return true;
    return false;
}

typedef struct pf_group {
    RxSet *set;
    uint16_t chain;              /* the set scans values after this chain */
    bool phrases;                /* one @pm rule: its phrase list */
    bool gated;                  /* it matches only input holding one of its literals (r->pf_gate) */
    bool body;                   /* gated, REQUEST_BODY among its sources: in r->pf_gate_body too */
    bool links;                  /* a member is a chained rule's later link */
    int list;                    /* its sources: the union of its members' targets (lists[]) */
    int block;                   /* the control points it sits between, counted per phase */
    int phase;
    int uni;                     /* its phase's union holding it (r->pf_unions), or -1 */
    int n;
    size_t bytes;                /* the members' pattern lengths */
    rule *members[GROUP_MAX];
    uint8_t flags[GROUP_MAX];    /* RXSET_CASELESS */
    uint8_t ok[GROUP_MAX];       /* the member is in the set (it has a translation) */
    uint64_t classes;            /* members that are one class of bytes, tested here (class_*) */
    bool only_classes;           /* every member in the set is such a class: never scanned */
    uint8_t *cls[GROUP_MAX];     /* such a member's bytes: [256], 1 for each */
} pf_group;

/* where a rule's pattern sits: set and bit, for the values after chain `chain` */
typedef struct pf_slot { int16_t group; uint8_t bit; uint16_t chain; } pf_slot;

/* The kinds of pattern that share no set (the literal pass, above): open[] has one open set
 * per (chain, kind). */
enum { PF_LITERALS, PF_NO_LITERALS, PF_COMMON, PF_KINDS };

static int pattern_kind(const rule *ru, bool caseless) {
    if (matches_ordinary(ru)) return PF_COMMON;
    const wstr *p = &ru->op.param.raw;
    return rxset_pattern_has_literals((const uint8_t *)p->p, p->n, caseless) ? PF_LITERALS : PF_NO_LITERALS;
}

/* A slot for rule ru's pattern after `chain`, in the open set of that chain and kind (a new
 * set when there is none).  A chain that ends in t:lowercase is scanned before it, caseless:
 * one set (and one scan) serves both. */
static pf_slot assign(waf_rules *r, int *open, int *cap, rule *ru, int chain, int block, bool link) {
    bool alone = is_pm(ru);
    int len_c = r->tchain_def[chain][0], scan = chain;
    bool caseless = !alone && len_c > 0 && r->tchain_def[chain][len_c] == T_LOWERCASE;
    if (caseless) scan = r->tchain_parent[chain];
    int kind = alone ? 0 : pattern_kind(ru, caseless);
    int *open_at = &open[scan * PF_KINDS + kind];
    int g = alone ? -1 : *open_at;
    size_t len = ru->op.param.raw.n;
    if (g < 0 || r->pf_groups[g].n == GROUP_MAX || r->pf_groups[g].bytes + len > GROUP_MAX_BYTES) {
        if (r->n_pf_groups == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            r->pf_groups = realloc(r->pf_groups, (size_t)*cap * sizeof *r->pf_groups);
            if (!r->pf_groups) abort();
        }
        g = r->n_pf_groups++;
        memset(&r->pf_groups[g], 0, sizeof r->pf_groups[g]);
        r->pf_groups[g].chain = (uint16_t)scan;
        r->pf_groups[g].phrases = alone;
        r->pf_groups[g].block = block;
        r->pf_groups[g].uni = -1;
        if (!alone) *open_at = g;
    }
    pf_group *pg = &r->pf_groups[g];
    pf_slot slot = {(int16_t)g, (uint8_t)pg->n, (uint16_t)chain};
    pg->bytes += len;
    pg->links |= link;
    pg->flags[pg->n] = (caseless ? RXSET_CASELESS : 0) | (kind == PF_COMMON ? RXSET_COMMON : 0);
    pg->members[pg->n++] = ru;
    return slot;
}

/* ru's slots: its chain, or (multiMatch: the operator sees the value after every prefix of
 * the chain) each prefix, the empty one included */
static void assign_rule(waf_rules *r, int *open, int *cap, rule *ru, int block, bool link) {
    int chains[sizeof ru->tfns + 1], n = 0;
    for (int c = ru->tchain; c >= 0; c = ru->multi_match && !is_pm(ru) ? r->tchain_parent[c] : -1) chains[n++] = c;
    ru->pf = ar_alloc(&r->mem, (size_t)n * sizeof *ru->pf);
    for (int k = 0; k < n; k++) ru->pf[k] = assign(r, open, cap, ru, chains[k], block, link);
    ru->n_pf = n;
}

/* an @pm rule's set: its phrase list (operator.c: each phrase after its length) */
static void build_phrases(pf_group *pg) {
    rule *ru = pg->members[0];
    wstr b = ru->op.pm_phrases;
    size_t n = 0;
    for (size_t off = 0; off + 4 <= b.n; n++) {
        uint32_t len;
        memcpy(&len, b.p + off, 4);
        off += 4 + len;
    }
    const uint8_t **ps = malloc((n ? n : 1) * sizeof *ps);
    size_t *ls = malloc((n ? n : 1) * sizeof *ls);
    if (!ps || !ls) abort();
    size_t k = 0;
    for (size_t off = 0; off + 4 <= b.n; k++) {
        uint32_t len;
        memcpy(&len, b.p + off, 4);
        ps[k] = (const uint8_t *)b.p + off + 4;
        ls[k] = len;
        off += 4 + len;
    }
    pg->set = rxset_new_phrases(ps, ls, n);
    free(ps);
    free(ls);
}

/* The stable sources of a target's values: (collection or scalar, names?); 0 when its
 * values change during the request (TX, MATCHED_VARS, ...) and cannot be pre-scanned. */
static int target_sources(const target *t, int base[2], bool names[2]) {
    int v = t->var;
    switch (v) {
    case V_ARGS:
    case V_ARGS_NAMES:
        base[0] = V_ARGS_GET;
        base[1] = V_ARGS_POST;
        names[0] = names[1] = v == V_ARGS_NAMES;
        return 2;
    case V_ARGS_GET_NAMES: base[0] = V_ARGS_GET; names[0] = true; return 1;
    case V_ARGS_POST_NAMES: base[0] = V_ARGS_POST; names[0] = true; return 1;
    case V_REQUEST_HEADERS_NAMES: base[0] = V_REQUEST_HEADERS; names[0] = true; return 1;
    case V_REQUEST_COOKIES_NAMES: base[0] = V_REQUEST_COOKIES; names[0] = true; return 1;
    case V_TX: case V_MATCHED_VARS: case V_MATCHED_VARS_NAMES: case V_RULE: case V_ENV:
    case V_MATCHED_VAR: case V_MATCHED_VAR_NAME: case V_DURATION: case V_HIGHEST_SEVERITY:
        return 0;
    default:
        if (IS_COLLECTION(v) && v >= V_GEO) return 0;
        base[0] = v;
        names[0] = false;
        return 1;
    }
}

/* Source ids in a set's list: 2 * variable + names, or one request header by name
 * (REQUEST_HEADERS:User-Agent: only that header's values are scanned for the set). */
#define HEADER_KEY_ID (2 * (V_COUNT + 1))

static int16_t header_key_id(waf_rules *r, wstr key) {
    for (int i = 0; i < r->n_pf_header_keys; i++)
        if (ieq(r->pf_header_keys[i].p, r->pf_header_keys[i].n, key.p, key.n)) return (int16_t)(HEADER_KEY_ID + i);
    if (r->n_pf_header_keys == 256) return -1;
    r->pf_header_keys = realloc(r->pf_header_keys, (size_t)(r->n_pf_header_keys + 1) * sizeof *r->pf_header_keys);
    r->pf_header_hashes = realloc(r->pf_header_hashes, (size_t)(r->n_pf_header_keys + 1) * sizeof *r->pf_header_hashes);
    if (!r->pf_header_keys || !r->pf_header_hashes) abort();
    r->pf_header_keys[r->n_pf_header_keys] = key;
    r->pf_header_hashes[r->n_pf_header_keys] = hash_ci(key.p, key.n);
    return (int16_t)(HEADER_KEY_ID + r->n_pf_header_keys++);
}

/* A set's sources, sorted and without duplicates, interned in r->pf_sources: [count,
 * ids...] per list, a set's `list` is the offset of its own. */
static int source_list(waf_rules *r, const pf_group *pg, int *n_used, int *cap) {
    int16_t ids[64];
    int n = 0;
    for (int m = 0; m < pg->n; m++) {
        const rule *ru = pg->members[m];
        for (int ti = 0; ti < ru->n_targets; ti++) {
            const target *t = &ru->targets[ti];
            int base[2];
            bool names[2];
            int k = t->exclude || t->count ? 0 : target_sources(t, base, names);
            int16_t keyed = t->var == V_REQUEST_HEADERS && t->key.n && !t->key_rx ? header_key_id(r, t->key) : -1;
            for (int q = 0; q < k; q++) {
                int16_t id = keyed >= 0 ? keyed : (int16_t)(2 * base[q] + names[q]);
                int at = 0;
                while (at < n && ids[at] < id) at++;
                if ((at < n && ids[at] == id) || n == 64) continue;
                memmove(ids + at + 1, ids + at, (size_t)(n - at) * sizeof *ids);
                ids[at] = id;
                n++;
            }
        }
    }
    if (n && ids[0] <= 2 * V_REQUEST_HEADERS && 2 * V_REQUEST_HEADERS <= ids[n - 1]) {
        /* all request headers are scanned: no header needs its own */
        bool whole = false;
        for (int i = 0; i < n; i++) whole |= ids[i] == 2 * V_REQUEST_HEADERS;
        int k = 0;
        for (int i = 0; i < n; i++) if (!whole || ids[i] < HEADER_KEY_ID) ids[k++] = ids[i];
        n = k;
    }
    for (int off = 0; off < *n_used; off += 1 + r->pf_sources[off])
        if (r->pf_sources[off] == n && memcmp(r->pf_sources + off + 1, ids, (size_t)n * sizeof *ids) == 0) return off;
    if (*n_used + n + 1 > *cap) {
        *cap = (*n_used + n + 1) * 2;
        r->pf_sources = realloc(r->pf_sources, (size_t)*cap * sizeof *r->pf_sources);
        if (!r->pf_sources) abort();
    }
    int off = *n_used;
    r->pf_sources[off] = (int16_t)n;
    memcpy(r->pf_sources + off + 1, ids, (size_t)n * sizeof *ids);
    *n_used += n + 1;
    return off;
}

/* a set a union may answer for: patterns, first links only (a chained link's set scans only
 * once its rule's earlier links matched); gated sets share unions only with gated sets */
static bool unionable(const pf_group *pg) { return pg->set && !pg->phrases && !pg->links; }

/* Per phase and kind (gated or not), the unionable sets of the blocks the warm-up requests
 * reached (reached[block]: those of the configured paranoia level) as few unions of two sets
 * or more, each of up to UNION_MAX_BYTES of patterns, sets in order. */
static void build_unions(waf_rules *r, const bool *reached) {
    int n = r->n_pf_groups;
    const uint8_t **pats = malloc((size_t)(n ? n : 1) * GROUP_MAX * sizeof *pats);
    size_t *lens = malloc((size_t)(n ? n : 1) * GROUP_MAX * sizeof *lens);
    uint8_t *flags = malloc((size_t)(n ? n : 1) * GROUP_MAX);
    int *in = malloc((size_t)(n ? n : 1) * sizeof *in);
    if (!pats || !lens || !flags || !in) abort();
    for (int g = 0; g < n; g++) {
        pf_group *pg = &r->pf_groups[g];
        if (!unionable(pg) || pg->uni >= 0 || !reached[pg->block]) continue;
        int sets = 0;
        size_t k = 0, bytes = 0;
        for (int h = g; h < n; h++) {
            const pf_group *ph = &r->pf_groups[h];
            if (ph->phase != pg->phase || ph->gated != pg->gated || !reached[ph->block] || !unionable(ph)
                || ph->uni >= 0)
                continue;
            if (sets && bytes + ph->bytes > UNION_MAX_BYTES) continue;
            in[sets++] = h;
            for (int m = 0; m < ph->n; m++) {
                if (!ph->ok[m]) continue;
                const wstr *p = &ph->members[m]->op.param.raw;
                bool dup = false;
                for (size_t q = 0; q < k && !dup; q++)
                    dup = pats[q] == (const uint8_t *)p->p && lens[q] == p->n && flags[q] == ph->flags[m];
                if (dup) continue;
                pats[k] = (const uint8_t *)p->p;
                lens[k] = p->n;
                flags[k++] = ph->flags[m];
                bytes += p->n;
            }
        }
        if (sets < 2) continue;
        r->pf_unions = realloc(r->pf_unions, (size_t)(r->n_pf_unions + 1) * sizeof *r->pf_unions);
        if (!r->pf_unions) abort();
        size_t limit = bytes * UNION_DFA_PER_BYTE > DFA_LIMIT ? bytes * UNION_DFA_PER_BYTE : DFA_LIMIT;
        r->pf_unions[r->n_pf_unions] = rxset_new_union(pats, lens, flags, k, limit);
        for (int i = 0; i < sets; i++) r->pf_groups[in[i]].uni = r->n_pf_unions;
        r->n_pf_unions++;
    }
    free(pats);
    free(lens);
    free(flags);
    free(in);
}

void firstpass_build(waf_rules *r) {
    for (int i = 0; i < r->n_all; i++) r->all[i]->n_pf = 0;
    int n_open = (r->n_tchains ? r->n_tchains : 1) * PF_KINDS;
    int *open = malloc((size_t)n_open * sizeof *open);
    if (!open) abort();
    int cap = 0, block = 0, phase2 = 0;
    for (int ph = 1; ph <= 2; ph++) {   /* the request phases (3-5 are not run) */
        if (ph == 2) phase2 = r->n_pf_groups;
        for (int c = 0; c < n_open; c++) open[c] = -1;
        block++;
        for (int i = 0; i < r->n_phase[ph]; i++) {
            rule *ru = r->phase[ph][i];
            for (rule *l = ru; l; l = l->next_link)
                if (eligible(l)) assign_rule(r, open, &cap, l, block, l != ru);
            if (ru->is_marker || ru->skip_after.n || ru->skip) {
                for (int c = 0; c < n_open; c++) open[c] = -1;
                block++;
            }
        }
    }
    free(open);
    for (int g = 0; g < r->n_pf_groups; g++) r->pf_groups[g].phase = g >= phase2 ? 2 : 1;
    r->n_pf_blocks = block + 1;
    const uint8_t *pats[GROUP_MAX];
    size_t lens[GROUP_MAX];
    uint8_t ok[GROUP_MAX];
    int used = 0, lcap = 0;
    for (int g = 0; g < r->n_pf_groups; g++) {
        pf_group *pg = &r->pf_groups[g];
        pg->list = source_list(r, pg, &used, &lcap);
        if (pg->phrases) {
            build_phrases(pg);
            pg->gated = rxset_gated(pg->set);
            continue;
        }
        bool common = false;
        for (int k = 0; k < pg->n; k++) {
            pats[k] = (const uint8_t *)pg->members[k]->op.param.raw.p;
            lens[k] = pg->members[k]->op.param.raw.n;
            common |= pg->flags[k] & RXSET_COMMON;
        }
        pg->set = rxset_new(pats, lens, pg->flags, (size_t)pg->n, ok, DFA_LIMIT);
        for (int k = 0; k < pg->n; k++) {
            uint8_t cls[256];
            if (!ok[k] || !rxset_take_class(pg->set, (size_t)k, cls)) continue;
            pg->cls[k] = malloc(sizeof cls);
            if (!pg->cls[k]) abort();
            memcpy(pg->cls[k], cls, sizeof cls);
            pg->classes |= 1ull << k;
        }
        uint64_t in_set = 0;
        for (int k = 0; k < pg->n; k++) in_set |= (uint64_t)(ok[k] != 0) << k;
        pg->only_classes = pg->classes && pg->classes == in_set;
        pg->gated = !common && rxset_gated(pg->set);
        pg->links |= common;   /* a set with common members always scans: no union */
        for (int k = 0; k < pg->n; k++) {
            pg->ok[k] = ok[k];
            if (!ok[k]) pg->members[k]->n_pf = 0;   /* no translation: always evaluated */
        }
    }
    RxSet **gated = malloc((size_t)(r->n_pf_groups ? r->n_pf_groups : 1) * sizeof *gated);
    if (!gated) abort();
    for (int g = 0; g < r->n_pf_groups; g++) gated[g] = r->pf_groups[g].gated ? r->pf_groups[g].set : NULL;
    r->pf_gate = rxgate_new(gated, (size_t)r->n_pf_groups);
    /* REQUEST_BODY, the largest input (the whole body, beside its parsed arguments), is only
     * asked about by the sets that target it: a small automaton of their literals only,
     * whose rare hits keep its search at prefilter speed */
    bool any_body = false;
    for (int g = 0; g < r->n_pf_groups; g++) {
        pf_group *pg = &r->pf_groups[g];
        const int16_t *ids = r->pf_sources + pg->list + 1;
        for (int k = 0; k < r->pf_sources[pg->list]; k++) pg->body |= pg->gated && ids[k] == 2 * V_REQUEST_BODY;
        if (!pg->body) gated[g] = NULL;
        any_body |= pg->body;
    }
    r->pf_gate_body = any_body ? rxgate_new(gated, (size_t)r->n_pf_groups) : NULL;
    free(gated);
    for (int i = 0; i < r->n_all; i++) {
        rule *ru = r->all[i];
        r->n_pf_rules += ru->n_pf > 0;
        ru->pf_all = ru->n_pf > 0;
        for (int ti = 0; ti < ru->n_targets && ru->pf_all; ti++) {
            const target *t = &ru->targets[ti];
            int base[2];
            bool names[2];
            if (!t->exclude && (t->count || !target_sources(t, base, names))) ru->pf_all = false;
        }
    }
}

void firstpass_free(waf_rules *r) {
    for (int g = 0; g < r->n_pf_groups; g++) {
        rxset_free(r->pf_groups[g].set);
        for (int k = 0; k < r->pf_groups[g].n; k++) free(r->pf_groups[g].cls[k]);
    }
    for (int u = 0; u < r->n_pf_unions; u++) rxset_free(r->pf_unions[u]);
    free(r->pf_unions);
    r->pf_unions = NULL;
    r->n_pf_unions = 0;
    rxgate_free(r->pf_gate);
    r->pf_gate = NULL;
    rxgate_free(r->pf_gate_body);
    r->pf_gate_body = NULL;
    free(r->pf_groups);
    free(r->pf_sources);
    r->pf_sources = NULL;
    free(r->pf_header_keys);
    r->pf_header_keys = NULL;
    free(r->pf_header_hashes);
    r->pf_header_hashes = NULL;
    r->n_pf_header_keys = 0;
    r->pf_groups = NULL;
    r->n_pf_groups = 0;
}

/* The literal pass's answer per distinct input: the sets whose literals occur in it.  An
 * input is a buffer of the request's arena (its values, their transformations, their joins),
 * never written again nor freed before the request ends: its address and length name it for
 * the whole request (phase 2 takes phase 1's answers for the inputs both search), and one not
 * found that way is compared by bytes with the inputs already searched. */
#define LIT_MEMO 256   /* distinct inputs remembered (an ordinary request has ~30 per phase) */
typedef struct lit_entry { const char *p; size_t n; uint64_t *bits; } lit_entry;   /* bits NULL: free */
/* by address (open addressing), and the entries listed by their length's low bits: an input
 * missed by address may hold the same bytes as one of the same length */
#define LIT_LENS 64
struct lit_memo {
    lit_entry table[LIT_MEMO];
    uint16_t by_len[LIT_LENS], next[LIT_MEMO];   /* slot + 1 of the last kept, of the one before; 0: none */
    lit_entry body[8]; int n_body;   /* REQUEST_BODY after the chains asked, r->pf_gate_body's answers */
};

/* an input's first slot in the table */
static inline uint32_t lit_slot(wstr in) {
    return (uint32_t)(((uintptr_t)in.p >> 3) * 2654435761u ^ (uint32_t)in.n * 40503u) % LIT_MEMO;
}

/* A set that targets REQUEST_BODY asking about it (after the set's chain): the small automaton
 * of only such sets' literals answers, at prefilter speed on the whole body (its few hits). */
static __attribute__((noinline)) bool body_literal_occurs(waf_tx *tx, struct lit_memo *lm, wstr in, int g) {
    const waf_rules *r = tx->rules;
    for (int k = 0; k < lm->n_body; k++)
        if (lm->body[k].n == in.n && (lm->body[k].p == in.p || memcmp(lm->body[k].p, in.p, in.n) == 0))
            return (lm->body[k].bits[g / 64] >> (g % 64)) & 1;
    size_t words = ((size_t)r->n_pf_groups + 63) / 64;
    uint64_t *bits = ar_alloc(&tx->a, words * sizeof *bits);
    memset(bits, 0, words * sizeof *bits);
    rxgate_scan(r->pf_gate_body, (const uint8_t *)in.p, in.n, bits, words);
    if (lm->n_body < 8) lm->body[lm->n_body++] = (lit_entry){in.p, in.n, bits};
    return (bits[g / 64] >> (g % 64)) & 1;
}

/* The answer past the first slot: probed, found by bytes, or searched (then kept). */
static __attribute__((noinline)) bool literal_search(waf_tx *tx, wstr in, int g) {
    const waf_rules *r = tx->rules;
    size_t words = ((size_t)r->n_pf_groups + 63) / 64;
    struct lit_memo *lm = tx->lit_memo;
    if (!lm) {
        lm = tx->lit_memo = ar_alloc(&tx->a, sizeof *lm);
        memset(lm, 0, sizeof *lm);
    }
    if (r->pf_groups[g].body && tx->sc_set[V_REQUEST_BODY]) {
        const wstr *b = source_joined(tx, V_REQUEST_BODY, false, r->pf_groups[g].chain);
        if (b && b->p == in.p && b->n == in.n) return body_literal_occurs(tx, lm, in, g);
    }
    uint32_t h = lit_slot(in);
    lit_entry *e = NULL;
    for (int probe = 0; probe < 8; probe++) {
        lit_entry *m = &lm->table[(h + (uint32_t)probe) % LIT_MEMO];
        if (!m->bits) { e = m; break; }
        if (m->p == in.p && m->n == in.n) return (m->bits[g / 64] >> (g % 64)) & 1;
    }
    /* the same bytes at another address (chains whose results are equal but were built
     * anew, e.g. ARGS_NAMES of a JSON body): the same answer */
    uint64_t *bits = NULL;
    for (uint16_t k = lm->by_len[in.n % LIT_LENS]; k && !bits; k = lm->next[k - 1]) {
        const lit_entry *m = &lm->table[k - 1];
        if (m->n == in.n && memcmp(m->p, in.p, in.n) == 0) bits = m->bits;
    }
    if (!bits) {
        bits = ar_alloc(&tx->a, words * sizeof *bits);
        memset(bits, 0, words * sizeof *bits);
        rxgate_scan(r->pf_gate, (const uint8_t *)in.p, in.n, bits, words);
    }
    if (e) {   /* else: full, not kept */
        *e = (lit_entry){in.p, in.n, bits};
        uint16_t *head = &lm->by_len[in.n % LIT_LENS];
        lm->next[e - lm->table] = *head;
        *head = (uint16_t)(e - lm->table + 1);
    }
    return (bits[g / 64] >> (g % 64)) & 1;
}

/* Whether one of set g's literals occurs in the input: the answer kept at the input's first
 * slot by address (inline: ~530 questions per GET, most answered there), or literal_search. */
static inline bool literal_occurs(waf_tx *tx, wstr in, int g) {
    const struct lit_memo *lm = tx->lit_memo;
    if (lm && !(tx->rules->pf_groups[g].body && tx->sc_set[V_REQUEST_BODY])) {
        const lit_entry *m = &lm->table[lit_slot(in)];
        if (m->p == in.p && m->n == in.n && m->bits) return (m->bits[(unsigned)g / 64] >> ((unsigned)g % 64)) & 1;
    }
    return literal_search(tx, in, g);
}

/* The unions' answers per large input (valid while tx->src_epoch stays put), by address or
 * by bytes: a union scans each distinct input once for all its sets.  Beside them, the shapes
 * of the large sources the unions are asked about instead (below). */
#define UNION_MEMO 64
#define SHAPE_MEMO 16
typedef struct union_shapes { int from; const wstr *col; wstr text; } union_shapes;
struct union_memo {
    uint32_t epoch;
    int n, n_shapes;
    struct { int uni; const char *p; size_t n; bool any; } e[UNION_MEMO];
    union_shapes shapes[SHAPE_MEMO];   /* by source and column (col as source_column's) */
};

static struct union_memo *union_memo(waf_tx *tx) {
    struct union_memo *um = tx->union_memo;
    if (!um) {
        um = tx->union_memo = ar_alloc(&tx->a, sizeof *um);
        memset(um, 0, sizeof *um);
    }
    if (um->epoch != tx->src_epoch + 1) {
        um->epoch = tx->src_epoch + 1;
        um->n = um->n_shapes = 0;
    }
    return um;
}

/* Whether union `uni` may match in `in` (a text, or shapes below). */
static bool union_any(waf_tx *tx, int uni, wstr in) {
    struct union_memo *um = union_memo(tx);
    for (int k = 0; k < um->n; k++)
        if (um->e[k].uni == uni && um->e[k].n == in.n && (um->e[k].p == in.p || memcmp(um->e[k].p, in.p, in.n) == 0))
            return um->e[k].any;
    bool any = rxset_any(tx->rules->pf_unions[uni], (const uint8_t *)in.p, in.n);
    if (um->n < UNION_MEMO) {
        um->e[um->n].uni = uni;
        um->e[um->n].p = in.p;
        um->e[um->n].n = in.n;
        um->e[um->n++].any = any;
    }
    return any;
}

/* A source's part of a large input is worth reducing to its shapes from this size on (the
 * shapes cost one pass over it, a union's scan several). */
#define SHAPE_MIN_PART 1024

/* The shapes of a collection source's distinct values (`col`: their results after a chain,
 * as source_column's; the values' join is `part`): each value with its digits written as
 * `0`, each shape once, joined by '\n'.  A union matches a value's shape wherever it matches
 * the value (its patterns' digits are folded, rxset_new_union), so it is asked about the
 * shapes instead of the join: a JSON array's argument names, `json.items.array_N.field`, are a
 * few shapes per field.  The part itself when the shapes are more than half the values read
 * (from a kilobyte read on). */
static wstr shapes_of(waf_tx *tx, int base, bool names, const wstr *col, wstr part) {
    const uint32_t *idx;
    uint32_t nu = source_distinct(tx, base, names, &idx);
    const kv *items = tx->c[base].items;
    size_t cap = 16, k = 0, read = 0;
    while (cap < 2 * (size_t)nu) cap *= 2;
    struct { uint32_t at, n; } *seen = ar_alloc(&tx->a, cap * sizeof *seen);
    memset(seen, 0xff, cap * sizeof *seen);
    char *o = ar_alloc(&tx->a, part.n / 2 + 1 + part.n);   /* a value is no longer than the join */
    for (uint32_t u = 0; u < nu; u++) {
        uint32_t i = idx[u];
        if (!items[i].key.p) continue;
        wstr v = col ? col[i] : names ? items[i].key : items[i].val;
        size_t at = k ? k + 1 : 0;
        char *d = o + at;
        for (size_t b = 0; b < v.n; b++) {
            uint8_t c = (uint8_t)v.p[b];
            d[b] = (char)((uint8_t)(c - '0') < 10 ? '0' : c);
        }
        uint64_t h = v.n, w;
        size_t q = 0;
        for (; q + 8 <= v.n; q += 8) {
            memcpy(&w, d + q, 8);
            h = (h ^ w) * 0x9E3779B97F4A7C15ull;
        }
        for (w = 0; q < v.n; q++) w = w << 8 | (uint8_t)d[q];
        h = (h ^ w) * 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
        size_t sl = (size_t)(h >> 40) & (cap - 1);
        while (seen[sl].at != UINT32_MAX && (seen[sl].n != v.n || memcmp(o + seen[sl].at, d, v.n) != 0))
            sl = (sl + 1) & (cap - 1);
        read += v.n + 1;
        if (seen[sl].at != UINT32_MAX) continue;   /* a repeated shape */
        seen[sl].at = (uint32_t)at;
        seen[sl].n = (uint32_t)v.n;
        if (k) o[k] = '\n';
        k = at + v.n;
        /* more than half of what was read, once a part's worth of it: not worth it */
        if (k > read / 2 && (read >= SHAPE_MIN_PART || k > part.n / 2)) return part;
    }
    return (wstr){o, k};
}

/* Whether union `uni` may match in an input (`from`: its source, 2 * variable + names, or -1
 * when it is not one collection source's values after `chain`): asked about the source's
 * shapes where they are less than half the input (kept per source and column: chains whose
 * results are the same values share them). */
static bool union_any_part(waf_tx *tx, int uni, int from, int chain, wstr part) {
    if (from < 0 || part.n < SHAPE_MIN_PART || !IS_COLLECTION(from >> 1)) return union_any(tx, uni, part);
    const wstr *col = source_column(tx, from >> 1, from & 1, chain);
    struct union_memo *um = union_memo(tx);
    for (int k = 0; k < um->n_shapes; k++)
        if (um->shapes[k].from == from && um->shapes[k].col == col) return union_any(tx, uni, um->shapes[k].text);
    wstr text = shapes_of(tx, from >> 1, from & 1, col, part);
    if (um->n_shapes < SHAPE_MEMO) um->shapes[um->n_shapes++] = (union_shapes){from, col, text};
    return union_any(tx, uni, text);
}

/* A set's DFA over one input (`from`: its source, as union_any_part): nothing where its union
 * found nothing.  A set of byte classes only (921140/921190's `[\n\r]`) is not scanned: its
 * members are all possible, and the callers tell them by the values' bytes (class_mask). */
static uint64_t group_scan(waf_tx *tx, const pf_group *pg, wstr in, int from) {
    if (pg->uni >= 0 && in.n >= UNION_MIN_INPUT && !union_any_part(tx, pg->uni, from, pg->chain, in)) return 0;
    if (pg->only_classes) return pg->classes;
    return rxset_scan(pg->set, (const uint8_t *)in.p, in.n);
}

/* Whether v holds one of a class's bytes. */
static bool class_in(const uint8_t *cls, wstr v) {
    const uint8_t *p = (const uint8_t *)v.p, *e = p + v.n;
    for (; p + 8 <= e; p += 8)
        if (cls[p[0]] | cls[p[1]] | cls[p[2]] | cls[p[3]] | cls[p[4]] | cls[p[5]] | cls[p[6]] | cls[p[7]])
            return true;
    uint8_t any = 0;
    for (; p < e; p++) any |= cls[*p];
    return any;
}

/* A scan's mask with its class members (reported by the set without looking: a class holding
 * '\n' would match every join of two values) told by the source's values after the set's
 * chain, each value apart (921140/921150's `[\n\r]` on the header and argument names). */
static uint64_t class_mask(waf_tx *tx, const pf_group *pg, int base, bool names, uint64_t mask) {
    uint64_t want = mask & pg->classes, found = 0;
    if (!want) return mask;
    if (!IS_COLLECTION(base)) {
        const wstr *j = source_joined(tx, base, names, pg->chain);
        for (uint64_t w = want; w && j; w &= w - 1)
            if (class_in(pg->cls[__builtin_ctzll(w)], *j)) found |= w & -w;
        return (mask & ~pg->classes) | found;
    }
    const uint32_t *idx;
    uint32_t nu = source_distinct(tx, base, names, &idx);
    const wstr *col = source_column(tx, base, names, pg->chain);
    const kv *items = tx->c[base].items;
    for (uint32_t u = 0; u < nu && found != want; u++) {
        uint32_t i = idx[u];
        if (!items[i].key.p) continue;
        wstr v = col ? col[i] : names ? items[i].key : items[i].val;
        for (uint64_t w = want & ~found; w; w &= w - 1)
            if (class_in(pg->cls[__builtin_ctzll(w)], v)) found |= w & -w;
    }
    return (mask & ~pg->classes) | found;
}

/* A set's sources joined by '\n', kept with its inputs (set_inputs). */
static wstr join_parts(waf_tx *tx, set_input *u) {
    if (!u->joined.p) {
        char *o = ar_alloc(&tx->a, u->total);
        size_t at = 0;
        for (int k = 0; k < u->live; k++) {
            if (at) o[at++] = '\n';
            copy_bytes(o + at, u->parts[k].p, u->parts[k].n);
            at += u->parts[k].n;
        }
        u->joined = (wstr){o, at};
    }
    return u->joined;
}

/* The source of one of a set's parts (2 * variable + names, the values' join after the set's
 * chain), or -1 (one header's value). */
static int part_source(waf_tx *tx, const pf_group *pg, wstr part) {
    const int16_t *ids = tx->rules->pf_sources + pg->list + 1;
    for (int k = 0; k < tx->rules->pf_sources[pg->list]; k++) {
        if (ids[k] >= HEADER_KEY_ID || source_empty(tx, ids[k] >> 1)) continue;
        const wstr *j = source_joined(tx, ids[k] >> 1, ids[k] & 1, pg->chain);
        if (j && j->p == part.p && j->n == part.n) return ids[k];
    }
    return -1;
}

/* A set's inputs: its sources' values after its chain, one part per source (per header for a
 * header by name).  Kept per source list and chain while tx->src_epoch stays put: the sets
 * of one block mostly share both, and gathering the parts costs a call per source. */
static set_input *set_inputs(waf_tx *tx, const pf_group *pg) {
    const waf_rules *r = tx->rules;
    set_input *u = &tx->inputs[(pg->list * 31u + pg->chain) % INPUTS_CACHE];
    if (u->epoch == tx->src_epoch + 1 && u->list == pg->list && u->chain == pg->chain) return u;
    const int16_t *ids = r->pf_sources + pg->list + 1;
    int n_ids = r->pf_sources[pg->list];
    wstr parts[64];
    int live = 0, only = -1;
    size_t total = 0;
    for (int k = 0; k < n_ids; k++) {
        if (ids[k] >= HEADER_KEY_ID) {   /* one header by name: its values after the chain */
            const coll *c = &tx->c[V_REQUEST_HEADERS];
            wstr key = r->pf_header_keys[ids[k] - HEADER_KEY_ID];
            uint32_t hash = r->pf_header_hashes[ids[k] - HEADER_KEY_ID];
            for (uint32_t i = 0; i < c->n && live < 64; i++) {
                if (c->hashes[i] != hash || !c->items[i].key.p || !ieq(c->items[i].key.p, c->items[i].key.n, key.p, key.n)) continue;
                parts[live] = transform(tx, pg->chain, c->items[i].val, VID(V_REQUEST_HEADERS, i, 0));
                total += parts[live++].n + 1;
                only = -1;
            }
            continue;
        }
        if (source_empty(tx, ids[k] >> 1) || live == 64) continue;
        const wstr *j = source_joined(tx, ids[k] >> 1, ids[k] & 1, pg->chain);
        if (!j) continue;
        parts[live++] = *j;
        total += j->n + 1;
        only = ids[k];
    }
    wstr *kept = ar_alloc(&tx->a, (size_t)(live ? live : 1) * sizeof *kept);
    copy_bytes((char *)kept, (const char *)parts, (size_t)live * sizeof *kept);   /* mostly 1-4 parts */
    *u = (set_input){tx->src_epoch + 1, pg->list, pg->chain, live, only, total, kept, {NULL, 0}};
    return u;
}

/* A set over several sources of UNION_MIN_INPUT bytes or more (a JSON body's argument values
 * and names).  A value lies within one source's part, so a match of a value is a match in
 * its part: each part is asked apart, which a part that is the same bytes under several
 * chains or source lists (the argument names, which most chains keep) answers once.
 *  - gated: only the parts holding one of the set's literals can match;
 *  - in a union: only the parts where the union (a superset) matches can match;
 *  - the set scans the parts left, or all of them joined. */
static __attribute__((noinline)) uint64_t scan_large(waf_tx *tx, int g, set_input *u) {
    const pf_group *pg = &tx->rules->pf_groups[g];
    const wstr *parts = u->parts;
    int live = u->live;
    uint64_t lit = 0, all = live == 64 ? ~0ull : (1ull << live) - 1;
    for (int k = 0; k < live && pg->gated; k++)
        if (literal_occurs(tx, parts[k], g)) lit |= 1ull << k;
    if (pg->gated && pg->phrases) return lit != 0;   /* the literal pass found a phrase, or none */
    if (pg->gated && !lit) return 0;
    uint64_t need = pg->gated ? lit : all;   /* the parts where the set may match */
    if (pg->uni >= 0) {
        uint64_t any = 0;
        for (int k = 0; k < live; k++)
            if (((need >> k) & 1)
                && union_any_part(tx, pg->uni, parts[k].n >= SHAPE_MIN_PART ? part_source(tx, pg, parts[k]) : -1,
                                  pg->chain, parts[k]))
                any |= 1ull << k;
        need = any;
    }
    if (!need) return 0;
    if (need == all) {
        wstr in = join_parts(tx, u);
        return rxset_scan(pg->set, (const uint8_t *)in.p, in.n);
    }
    uint64_t mask = 0;
    for (int k = 0; k < live; k++)
        if ((need >> k) & 1) mask |= rxset_scan(pg->set, (const uint8_t *)parts[k].p, parts[k].n);
    return mask;
}

/* A set's scan over all its sources at once (valid while tx->src_epoch stays put): the
 * values of every source its members target, after its chain, joined by '\n'.  On an
 * ordinary request nothing matches and one scan clears the set for every rule and target;
 * a set that did match is scanned again per source, to know where. */
typedef struct pf_scan { uint32_t epoch; uint64_t mask; } pf_scan;

static __attribute__((noinline)) uint64_t set_scan(waf_tx *tx, int g) {
    const waf_rules *r = tx->rules;
    if (!tx->pf_scans) {
        tx->pf_scans = ar_alloc(&tx->a, (size_t)r->n_pf_groups * sizeof *tx->pf_scans);
        memset(tx->pf_scans, 0, (size_t)r->n_pf_groups * sizeof *tx->pf_scans);
    }
    pf_scan *sc = &tx->pf_scans[g];
    if (sc->epoch == tx->src_epoch + 1) return sc->mask;
    const pf_group *pg = &r->pf_groups[g];
    set_input *u = set_inputs(tx, pg);
    if (u->live > 1 && u->total >= UNION_MIN_INPUT) {
        sc->mask = scan_large(tx, g, u);
        sc->epoch = tx->src_epoch + 1;
        return sc->mask;
    }
    const wstr *parts = u->parts;
    int live = u->live, only = u->only;
    /* none of the set's literals in any input: nothing can match, nothing to join or scan */
    bool possible = !pg->gated;
    for (int k = 0; k < live && !possible; k++) possible = literal_occurs(tx, parts[k], g);
    bool answered = pg->gated && pg->phrases;   /* the literal pass found a phrase, or none */
    uint64_t mask = answered ? possible : 0;
    if (live == 1 && possible && !answered) {
        mask = group_scan(tx, pg, parts[0], only);
        if (only >= 0) mask = class_mask(tx, pg, only >> 1, only & 1, mask);
        else for (uint64_t w = mask & pg->classes; w; w &= w - 1)   /* one header's value */
            if (!class_in(pg->cls[__builtin_ctzll(w)], parts[0])) mask &= ~(w & -w);
    }
    if (live == 1 && only >= 0) {
        uint8_t *done;
        uint64_t *masks = source_masks(tx, only >> 1, only & 1, &done);
        masks[g] = mask;
        done[g >> 3] |= (uint8_t)(1u << (g & 7));
    } else if (live > 1 && possible && !answered) {
        mask = group_scan(tx, pg, join_parts(tx, u), -1);
    }
    sc->mask = mask;
    sc->epoch = tx->src_epoch + 1;
    return mask;
}

/* A set's scan mask: the one already made (asked ~4 times per set per GET, inline), or set_scan. */
static inline uint64_t set_mask(waf_tx *tx, int g) {
    const pf_scan *sc = tx->pf_scans ? &tx->pf_scans[g] : NULL;
    return sc && sc->epoch == tx->src_epoch + 1 ? sc->mask : set_scan(tx, g);
}

static bool slot_may_match(waf_tx *tx, const pf_slot *sl, int base, bool names) {
    int g = sl->group;
    if (!((set_mask(tx, g) >> sl->bit) & 1)) return false;
    uint8_t *done;
    uint64_t *masks = source_masks(tx, base, names, &done);
    if (!(done[g >> 3] & (1u << (g & 7)))) {
        const pf_group *pg = &tx->rules->pf_groups[g];
        const wstr *j = source_joined(tx, base, names, pg->chain);
        bool possible = j && (!pg->gated || literal_occurs(tx, *j, g));
        masks[g] = possible && !(pg->gated && pg->phrases) ? class_mask(tx, pg, base, names, group_scan(tx, pg, *j, 2 * base + names))
                                                           : possible;
        done[g >> 3] |= (uint8_t)(1u << (g & 7));
    }
    return (masks[g] >> sl->bit) & 1;
}

bool firstpass_rule_may_match(waf_tx *tx, const rule *ru) {
    for (int i = 0; i < ru->n_pf; i++)
        if ((set_mask(tx, ru->pf[i].group) >> ru->pf[i].bit) & 1) return true;
    return false;
}

bool firstpass_may_match(waf_tx *tx, const rule *ru, const target *t) {
    /* one key's values (REQUEST_HEADERS:Content-Type): each is checked by the pattern's DFA
     * as it is listed, which costs less than a scan of its whole collection's values (and an
     * absent key lists none).  Not XML's XPath targets, which list the whole document. */
    if (!ru->n_pf || t->count || t->exclude || (t->key.n && !t->key_rx && t->var != V_XML)) return true;
    int base[2];
    bool names[2];
    int n = target_sources(t, base, names);
    if (!n) return true;
    for (int k = 0; k < n; k++) {
        if (source_empty(tx, base[k])) continue;
        for (int i = 0; i < ru->n_pf; i++)
            if (slot_may_match(tx, &ru->pf[i], base[k], names[k])) return true;
    }
    return false;
}

bool firstpass_value_may_match(waf_tx *tx, const rule *ru, int chain, wstr v) {
    if (!ru->n_pf || is_pm(ru)) return true;   /* @pm's own automaton is as fast */
    for (int i = 0; i < ru->n_pf; i++) {
        if (ru->pf[i].chain != chain) continue;
        const pf_group *pg = &tx->rules->pf_groups[ru->pf[i].group];
        if ((pg->classes >> ru->pf[i].bit) & 1) return class_in(pg->cls[ru->pf[i].bit], v);
        return rxset_match(pg->set, ru->pf[i].bit, (const uint8_t *)v.p, v.n);
    }
    return true;
}

/* ------------------------------------------------------------------ after the warm-up (warmup.c) */

void firstpass_mark_reached(const waf_tx *tx, bool *reached) {
    const waf_rules *r = tx->rules;
    for (int g = 0; g < r->n_pf_groups && tx->pf_scans; g++)
        if (tx->pf_scans[g].epoch) reached[r->pf_groups[g].block] = true;
}

void firstpass_build_unions(waf_rules *r, const bool *reached) {
    build_unions(r, reached);
    for (int u = 0; u < r->n_pf_unions; u++) rxset_any(r->pf_unions[u], (const uint8_t *)"", 0);
}
