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
 * are checked the same way with their own Aho-Corasick automaton.
 *
 * A rule that may match runs, per value, its pattern's own DFA first and PCRE2
 * only where that matched: PCRE2's cost on a long value that does not match is
 * bounded only by the match limit.
 */
#include <stdlib.h>
#include <string.h>

#include "rxset.h"
#include "waf.h"

/* patterns per set, and their total length: larger sets scan fewer times, but the states
 * of their DFA grow with the patterns' size (and a DFA that keeps outgrowing its cache
 * falls back to a much slower NFA simulation) */
#define GROUP_MAX 32
#define GROUP_MAX_BYTES 4096
/* each set's lazy DFA cache (bytes); a set that outgrows it keeps working, slower */
#define DFA_LIMIT (1u << 20)

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
};

static bool matches_ordinary(const rule *ru) {
    for (size_t i = 0; i < sizeof ORDINARY / sizeof ORDINARY[0]; i++)
        if (pcre2_match_simple(&ru->op.rx, (wstr){ORDINARY[i], strlen(ORDINARY[i])})) return true;
    return false;
}

typedef struct pf_group {
    RxSet *set;
    uint16_t chain;
    bool multi;                  /* one multiMatch rule: scanned after every prefix of its chain */
    int n;
    size_t bytes;                /* the members' pattern lengths */
    rule *members[GROUP_MAX];
} pf_group;

static bool rx_eligible(const rule *ru) {
    return ru->op.kind == OP_RX && !ru->op.negate && !ru->op.param.has_macro && ru->op.rx.code;
}

static bool pm_eligible(const rule *ru) {
    return (ru->op.kind == OP_PM || ru->op.kind == OP_PMFROMFILE) && !ru->op.negate && ru->op.ac &&
           !ru->multi_match;
}

static void assign(waf_rules *r, int *open, int *cap, rule *ru) {
    int g = ru->multi_match ? -1 : open[ru->tchain];
    size_t len = ru->op.param.raw.n;
    if (g < 0 || r->pf_groups[g].n == GROUP_MAX || r->pf_groups[g].bytes + len > GROUP_MAX_BYTES) {
        if (r->n_pf_groups == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            r->pf_groups = realloc(r->pf_groups, (size_t)*cap * sizeof *r->pf_groups);
            if (!r->pf_groups) abort();
        }
        g = r->n_pf_groups++;
        memset(&r->pf_groups[g], 0, sizeof r->pf_groups[g]);
        r->pf_groups[g].chain = ru->tchain;
        r->pf_groups[g].multi = ru->multi_match;
        if (!ru->multi_match) open[ru->tchain] = g;
    }
    pf_group *pg = &r->pf_groups[g];
    ru->pf_group = (int16_t)g;
    ru->pf_bit = (uint8_t)pg->n;
    pg->bytes += len;
    pg->members[pg->n++] = ru;
}

void firstpass_build(waf_rules *r) {
    for (int i = 0; i < r->n_all; i++) r->all[i]->pf_group = -1;
    int *open = malloc((size_t)(r->n_tchains ? r->n_tchains : 1) * sizeof *open);
    if (!open) abort();
    int cap = 0;
    for (int ph = 1; ph <= 2; ph++) {   /* the request phases (3-5 are not run) */
        for (int c = 0; c < r->n_tchains; c++) open[c] = -1;
        for (int i = 0; i < r->n_phase[ph]; i++) {
            rule *ru = r->phase[ph][i];
            for (rule *l = ru; l; l = l->next_link)
                if (rx_eligible(l)) assign(r, open, &cap, l);
            if (ru->is_marker || ru->skip_after.n || ru->skip)
                for (int c = 0; c < r->n_tchains; c++) open[c] = -1;
        }
    }
    free(open);
    const uint8_t *pats[GROUP_MAX];
    size_t lens[GROUP_MAX];
    uint8_t common[GROUP_MAX], ok[GROUP_MAX];
    for (int g = 0; g < r->n_pf_groups; g++) {
        pf_group *pg = &r->pf_groups[g];
        for (int k = 0; k < pg->n; k++) {
            pats[k] = (const uint8_t *)pg->members[k]->op.param.raw.p;
            lens[k] = pg->members[k]->op.param.raw.n;
            common[k] = matches_ordinary(pg->members[k]);
        }
        pg->set = rxset_new(pats, lens, common, (size_t)pg->n, ok, DFA_LIMIT);
        for (int k = 0; k < pg->n; k++) {
            if (ok[k]) r->n_pf_rules++;
            else pg->members[k]->pf_group = -1;
        }
    }
}

void firstpass_free(waf_rules *r) {
    for (int g = 0; g < r->n_pf_groups; g++) rxset_free(r->pf_groups[g].set);
    free(r->pf_groups);
    r->pf_groups = NULL;
    r->n_pf_groups = 0;
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

static bool rx_may_match(waf_tx *tx, const rule *ru, int base, bool names) {
    uint64_t *masks = source_masks(tx, base, names);
    const waf_rules *r = tx->rules;
    int g = ru->pf_group, n = r->n_pf_groups;
    const pf_group *pg = &r->pf_groups[g];
    if (!masks[n + g]) {
        masks[g] = 0;
        /* multiMatch: the operator sees the value after every prefix of the chain */
        for (int c = ru->tchain; c >= 0; c = pg->multi ? r->tchain_parent[c] : -1) {
            const wstr *j = source_joined(tx, base, names, c);
            if (j) masks[g] |= rxset_scan(pg->set, (const uint8_t *)j->p, j->n);
        }
        masks[n + g] = 1;
    }
    return (masks[g] >> ru->pf_bit) & 1;
}

static bool pm_may_match(waf_tx *tx, const rule *ru, int base, bool names) {
    const wstr *j = source_joined(tx, base, names, ru->tchain);
    size_t at, len;
    return j && ac_first(ru->op.ac, *j, &at, &len);
}

bool firstpass_may_match(waf_tx *tx, const rule *ru, const target *t) {
    bool rx = ru->pf_group >= 0;
    if ((!rx && !pm_eligible(ru)) || t->count || t->exclude) return true;
    int base[2];
    bool names[2];
    int n = target_sources(t, base, names);
    if (!n) return true;
    for (int k = 0; k < n; k++)
        if (rx ? rx_may_match(tx, ru, base[k], names[k]) : pm_may_match(tx, ru, base[k], names[k])) return true;
    return false;
}

bool firstpass_value_may_match(waf_tx *tx, const rule *ru, wstr v) {
    if (ru->pf_group < 0) return true;
    return rxset_match(tx->rules->pf_groups[ru->pf_group].set, ru->pf_bit, (const uint8_t *)v.p, v.n);
}
