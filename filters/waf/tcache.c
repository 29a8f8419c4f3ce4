/*
 * Transformed request values, computed once per request.
 *
 * CRS applies ~40 distinct transformation chains to the same few request
 * values, and rules that share a chain (or a prefix of one: t:none,
 * t:urlDecodeUni is the parent of t:none,t:urlDecodeUni,t:lowercase) need the
 * same result.  A value that stays put for the request (a request collection's
 * value or name, a request scalar) has an id; its result per chain is kept in
 * an array per (source, chain), so a lookup is two indexations and the memory
 * is bounded by the request's values times the chains in use.
 *
 * The first pass (firstpass.c) also needs every value of a source after a
 * chain, joined by '\n': it is built here from the same results.  A value equal
 * to an earlier one of its source is joined once (transformations are functions
 * of the value), and a chain none of whose steps can change the source's values
 * (tfn_keeps: no byte it acts on occurs) is not computed at all.
 * Layer: above transform.c; below firstpass.c and exec.c.
 */
#include <string.h>

#include "tcache.h"

enum { COL_DONE = 1, COL_KEEPS = 2, COL_EMPTY = 4 };

typedef struct src_state {
    uint32_t n;                  /* values when the state was made (a grown collection: rebuilt) */
    uint32_t *first;             /* [n] index of the first value equal to this one (NULL: not yet) */
    uint32_t *uniq, n_uniq;      /* with first: the indices of the distinct values, in order */
    const void **no_match;       /* [n] the last rule whose operator did not match value i */
    bool present_known;          /* present and the transformations are decided */
    uint64_t t_known, t_keeps;   /* transformations (bit T_*) decided for the values, and those
                                  * that keep them */
    tfn_set present;             /* the bytes of the values */
    bool pairs_known;            /* present's TFN_SPACE_PAIR is computed */
    wstr raw_joined;             /* the values themselves, joined (p == NULL: not built) */
    wstr **tv;                   /* [chain] -> [n] results (p == NULL: not computed) */
    uint8_t *col_done;           /* [chain] COL_DONE: tv[chain] holds every distinct value's result
                                  * (value i's at first[i]; maybe another chain's array, the same
                                  * results), with COL_EMPTY when all are empty; COL_KEEPS: the
                                  * chain changes no value */
    wstr *joined;                /* [chain] -> joined results (p == NULL: not built) */
    uint16_t *computed, n_computed; /* the chains whose column column() computed, in order */
    uint32_t *joined_n;          /* [chain] with COL_DONE: the length of its join, plus one */
    uint32_t live, last;         /* the distinct values a column holds, and the last one's index */
    uint64_t *masks;             /* firstpass.c: [group] scan masks, valid where `done` is set */
    uint8_t *done;               /* [group / 8] bitmap */
} src_state;

/* The values of a source: the collection's values (or keys), or the scalar. */
static inline uint32_t source_size(waf_tx *tx, int base) {
    if (IS_COLLECTION(base)) return tx->c[base].n;
    return tx->sc_set[base] ? 1 : 0;
}

static src_state *source_new(waf_tx *tx, int base, bool names, uint32_t n);

/* the source's state (inline: asked per value and per set) */
static inline src_state *source(waf_tx *tx, int base, bool names) {
    src_state *s = tx->src[2 * base + (names ? 1 : 0)];
    uint32_t n = source_size(tx, base);
    if (__builtin_expect(s && s->n == n, 1)) return s;
    return source_new(tx, base, names, n);
}

/* a state for the source as it is now (its collection grew, or it was never asked) */
static __attribute__((noinline)) src_state *source_new(waf_tx *tx, int base, bool names, uint32_t n) {
    src_state **slot = &tx->src[2 * base + (names ? 1 : 0)];
    int chains = tx->rules->n_tchains;
    src_state *s = ar_alloc(&tx->a, sizeof *s);
    s->n = n;
    /* the three per-chain arrays in one piece, cleared by one memset (a libcall in Wasm) */
    size_t tv_n = (size_t)chains * sizeof *s->tv, joined_n = (size_t)chains * sizeof *s->joined;
    char *arrays = ar_alloc(&tx->a, joined_n + tv_n + (size_t)chains);
    memset(arrays, 0, joined_n + tv_n + (size_t)chains);
    s->joined = (wstr *)arrays;
    s->tv = (wstr **)(arrays + joined_n);
    s->col_done = (uint8_t *)(arrays + joined_n + tv_n);
    s->computed = NULL;
    s->joined_n = NULL;
    s->n_computed = 0;
    s->first = NULL;
    s->uniq = NULL;
    s->n_uniq = 0;
    s->no_match = NULL;
    s->present_known = false;
    s->t_known = s->t_keeps = 0;
    s->pairs_known = false;
    s->raw_joined = (wstr){NULL, 0};
    s->masks = NULL;
    s->done = NULL;
    *slot = s;
    return s;
}

/* first[i]: the index of the first value (or name) of the collection equal to value i.  A
 * value repeated in a source (JSON arrays of records, repeated form fields) is joined and
 * scanned once: transformations are functions of the value alone. */
static __attribute__((noinline)) const uint32_t *firsts_build(waf_tx *tx, src_state *s, const coll *c, bool names) {
    uint32_t cap = 16, bits = 4;
    while (cap < 2 * s->n) cap <<= 1, bits++;
    uint32_t *slots = ar_alloc(&tx->a, (size_t)cap * sizeof *slots);   /* index + 1, 0: empty */
    memset(slots, 0, (size_t)cap * sizeof *slots);
    s->first = ar_alloc(&tx->a, (size_t)(s->n ? s->n : 1) * sizeof *s->first);
    s->uniq = ar_alloc(&tx->a, (size_t)(s->n ? s->n : 1) * sizeof *s->uniq);
    s->n_uniq = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        s->first[i] = i;
        if (!c->items[i].key.p) continue;
        wstr v = names ? c->items[i].key : c->items[i].val;
        uint64_t h = v.n;   /* 8 bytes a step: values add up to the whole body */
        size_t k = 0;
        for (; k + 8 <= v.n; k += 8) {
            uint64_t w;
            memcpy(&w, v.p + k, 8);
            h = (h ^ w) * 0x9E3779B97F4A7C15ull;
        }
        if (k < v.n && v.n >= 8) {   /* the last bytes: the value's last eight, once */
            uint64_t w;
            memcpy(&w, v.p + v.n - 8, 8);
            h = (h ^ w) * 0x9E3779B97F4A7C15ull;
        } else {
            for (; k < v.n; k++) h = (h ^ (uint8_t)v.p[k]) * 0x100000001B3ull;
        }
        h *= 0x9E3779B97F4A7C15ull;   /* the product's top bits mix every byte */
        for (uint32_t at = (uint32_t)(h >> (64 - bits));; at = (at + 1) & (cap - 1)) {
            if (!slots[at]) { slots[at] = i + 1; break; }
            const kv *o = &c->items[slots[at] - 1];
            wstr w = names ? o->key : o->val;
            if (w.n == v.n && memcmp(w.p, v.p, v.n) == 0) { s->first[i] = slots[at] - 1; break; }
        }
        if (s->first[i] == i) s->uniq[s->n_uniq++] = i;
    }
    return s->first;
}

/* firsts, built once per source state (inline: asked ~80 times per GET, mostly built) */
static inline const uint32_t *firsts(waf_tx *tx, src_state *s, const coll *c, bool names) {
    return s->first ? s->first : firsts_build(tx, s, c, names);
}

static wstr apply_chain(waf_tx *tx, int chain, wstr in, uint32_t vid);

/* The source's values (or names), one by one: false past the end. */
static bool value_at(waf_tx *tx, int base, bool names, uint32_t i, wstr *v) {
    if (!IS_COLLECTION(base)) { *v = tx->sc[base]; return true; }
    const kv *it = &tx->c[base].items[i];
    if (!it->key.p) return false;
    *v = names ? it->key : it->val;
    return true;
}

/* Whether a distinct value of the source holds two ' ' in a row (only compressWhitespace
 * asks: a scan of its own rather than a cost added to every byte of chain_keeps's). */
static bool space_pair(waf_tx *tx, src_state *s, int base, bool names) {
    uint32_t n = IS_COLLECTION(base) ? s->n_uniq : s->n;
    for (uint32_t u = 0; u < n; u++) {
        wstr v;
        if (!value_at(tx, base, names, IS_COLLECTION(base) ? s->uniq[u] : u, &v)) continue;
        for (const char *p = v.p, *e = v.p + v.n; (p = memchr(p, ' ', (size_t)(e - p))) && p + 1 < e; p++)
            if (p[1] == ' ') return true;
    }
    return false;
}

/* The bytes the source's values hold (s->present), once per source: a byte store per byte
 * of the values, packed into the set after.  Then every transformation is decided at once
 * (compressWhitespace, whose two-spaces test is a scan of its own, when asked), so that a
 * chain's answer is one mask test. */
static __attribute__((noinline)) void present_bytes(waf_tx *tx, src_state *s, int base, bool names) {
    s->present_known = true;
    uint8_t seen[256];
    memset(seen, 0, sizeof seen);
    tfn_set *set = &s->present;
    memset(set, 0, sizeof *set);
    if (IS_COLLECTION(base)) firsts(tx, s, &tx->c[base], names);
    uint32_t n = IS_COLLECTION(base) ? s->n_uniq : s->n;
    for (uint32_t u = 0; u < n; u++) {
        wstr v;
        if (!value_at(tx, base, names, IS_COLLECTION(base) ? s->uniq[u] : u, &v)) continue;
        const uint8_t *p = (const uint8_t *)v.p, *e = p + v.n;
        for (; p + 4 <= e; p += 4) seen[p[0]] = seen[p[1]] = seen[p[2]] = seen[p[3]] = 1;
        for (; p < e; p++) seen[*p] = 1;
        if (v.n && v.p[v.n - 1] == '.') set->w[TFN_FINAL_DOT >> 6] |= 1ull << (TFN_FINAL_DOT & 63);
    }
    for (int k = 0; k < 32; k++) {   /* eight 0/1 bytes -> eight bits (bit i: byte i) */
        uint64_t x;
        memcpy(&x, seen + 8 * k, 8);
        set->w[k >> 3] |= ((x * 0x0102040810204080ull) >> 56) << (8 * (k & 7));
    }
    s->t_known = ~(1ull << T_COMPRESSWHITESPACE);
    s->t_keeps = tfn_keeps_all(set) & s->t_known;
}

/* Whether `step` leaves every value of the source as it is (s->present is known); decided
 * once per source (t_known, t_keeps: present_bytes decides all but compressWhitespace). */
static bool step_keeps(waf_tx *tx, src_state *s, int base, bool names, int step) {
    uint64_t bit = 1ull << step;
    if (!(s->t_known & bit)) {
        bool space = (s->present.w[0] >> ' ') & 1;
        if (step == T_COMPRESSWHITESPACE && space && !s->pairs_known) {
            if (space_pair(tx, s, base, names)) s->present.w[TFN_SPACE_PAIR >> 6] |= 1ull << (TFN_SPACE_PAIR & 63);
            s->pairs_known = true;
        }
        s->t_known |= bit;
        if (tfn_keeps(step, &s->present)) s->t_keeps |= bit;
    }
    return (s->t_keeps & bit) != 0;
}

/* Whether `chain` leaves every value of the source as it is: each of its steps keeps text
 * made of the bytes the values hold (transform.c, tfn_keeps).  Then its results are the
 * values themselves and its joined values the source's own: nothing is computed per value.
 * (Each step sees the values unchanged, by induction along the chain.)  Each transformation
 * is decided once per source, and a chain by its set of steps. */
static inline bool chain_keeps(waf_tx *tx, src_state *s, int base, bool names, int chain) {
    uint64_t steps = tx->rules->tchain_steps[chain];
    if (!steps) return true;
    if (!s->present_known) present_bytes(tx, s, base, names);
    if ((steps & ~s->t_known) && !(steps & ~s->t_keeps & s->t_known))   /* compressWhitespace */
        step_keeps(tx, s, base, names, T_COMPRESSWHITESPACE);
    if (steps & ~s->t_keeps) return false;
    s->col_done[chain] = COL_KEEPS;
    return true;
}

/* The source's values joined by '\n', repeats left out. */
static const wstr *raw_joined(waf_tx *tx, src_state *s, int base, bool names) {
    if (s->raw_joined.p) return &s->raw_joined;
    if (!IS_COLLECTION(base)) {
        s->raw_joined = tx->sc[base];
    } else {
        firsts(tx, s, &tx->c[base], names);
        size_t total = 0;
        wstr v;
        for (uint32_t u = 0; u < s->n_uniq; u++)
            if (value_at(tx, base, names, s->uniq[u], &v)) total += v.n + 1;
        char *o = ar_alloc(&tx->a, total + 1);
        size_t k = 0;
        for (uint32_t u = 0; u < s->n_uniq; u++) {
            if (!value_at(tx, base, names, s->uniq[u], &v)) continue;
            if (k) o[k++] = '\n';
            copy_bytes(o + k, v.p, v.n);
            k += v.n;
        }
        s->raw_joined = (wstr){o, k};
    }
    if (!s->raw_joined.p) s->raw_joined.p = "";
    return &s->raw_joined;
}

/* The cached result of `chain` for value `idx` of a source. */
static wstr cached(waf_tx *tx, src_state *s, int chain, uint32_t idx, wstr in, uint32_t vid) {
    wstr *tv = s->tv[chain];
    if (tv && tv[idx].p) return tv[idx];
    if (!tv) {
        tv = s->tv[chain] = ar_alloc(&tx->a, (size_t)(s->n ? s->n : 1) * sizeof *tv);
        memset(tv, 0, (size_t)(s->n ? s->n : 1) * sizeof *tv);
    }
    wstr out = apply_chain(tx, chain, in, vid);
    if (!out.p) out.p = "";
    tv[idx] = out;
    return out;
}

static wstr apply_chain(waf_tx *tx, int chain, wstr in, uint32_t vid) {
    const waf_rules *r = tx->rules;
    int len = r->tchain_def[chain][0];
    if (len == 0) return in;
    int parent = r->tchain_parent[chain];
    wstr base = parent >= 0 ? transform(tx, parent, in, vid) : in;
    return tfn_apply(&tx->a, r->tchain_def[chain][len], base);
}

wstr transform_chain(waf_tx *tx, int chain, wstr in, uint32_t vid) {
    if (vid) {
        int base = (int)(vid >> 24);
        uint32_t idx = (vid & 0xffffffu) >> 1;
        src_state *s = source(tx, base, vid & 1);
        if (idx < s->n) {
            /* the chain's column is complete, or known to change nothing */
            if (s->col_done[chain] & COL_KEEPS) return in;
            if (s->col_done[chain] & COL_DONE) return s->tv[chain][s->first[idx]];
            /* a scalar's chain is applied (each step returns its input when it changes
             * nothing): a scan of its bytes would cost more than the few steps on it */
            if (IS_COLLECTION(base)) {
                if (chain_keeps(tx, s, base, vid & 1, chain)) return in;
                /* a value repeated in its source shares the first one's result */
                uint32_t f = firsts(tx, s, &tx->c[base], vid & 1)[idx];
                if (f != idx) { idx = f; vid = VID(base, f, vid & 1); }
            }
            return cached(tx, s, chain, idx, in, vid);
        }
    }
    return apply_chain(tx, chain, in, vid);
}

/* Whether a step whose byte table is `acts` (transform.c, tfn_acts) may change v. */
static inline bool acts_on(const uint8_t *acts, wstr v) {
    const uint8_t *p = (const uint8_t *)v.p, *e = p + v.n;
    uint8_t any = 0;
    for (; p + 4 <= e && !(any & TFN_ACTS_ANY); p += 4) any |= acts[p[0]] | acts[p[1]] | acts[p[2]] | acts[p[3]];
    for (; p < e; p++) any |= acts[*p];
    return (any & TFN_ACTS_ANY) || (v.n && (acts[(uint8_t)v.p[v.n - 1]] & TFN_ACTS_LAST));
}

/* The results a chain's parent gives a column: NULL for the values themselves. */
static const wstr *parent_results(const waf_rules *r, const src_state *s, int chain) {
    int p = r->tchain_parent[chain];
    return p < 0 || r->tchain_def[p][0] == 0 || (s->col_done[p] & COL_KEEPS) ? NULL : s->tv[p];
}

/* The results of `chain` for every distinct value of a collection source, computed a
 * column at a time: the parent chain's column, then the last step on each of its results
 * (no per-value walk up the chain).  NULL: the chain changes no value of the source.
 * A column is shared rather than computed when it is known to be another's: a step that
 * changed no result leaves its parent's column (urlDecodeUni after base64Decode of text
 * without '%' or '+'), a step that keeps the empty text leaves a column of empty results
 * (every step after a strict base64Decode of dotted argument names), and two chains that
 * end in the same step over the same column (t:urlDecodeUni,t:jsDecode,t:base64Decode and
 * t:urlDecodeUni,t:jsDecode,t:removeWhitespace,t:base64Decode where removeWhitespace keeps
 * the values) have the same results. */
static const wstr *column(waf_tx *tx, src_state *s, int base, bool names, int chain) {
    const waf_rules *r = tx->rules;
    if (s->col_done[chain] & COL_KEEPS) return NULL;
    if (s->col_done[chain] & COL_DONE) return s->tv[chain];
    if (chain_keeps(tx, s, base, names, chain)) return NULL;
    int parent = r->tchain_parent[chain];
    const wstr *ptv = parent >= 0 ? column(tx, s, base, names, parent) : NULL;
    int step = r->tchain_def[chain][r->tchain_def[chain][0]];
    /* a parent that kept every value (by its results, where its bytes said it might not),
     * then a step that keeps them by the values' bytes: the values themselves */
    if (!ptv && parent >= 0 && step_keeps(tx, s, base, names, step)) {
        s->col_done[chain] = COL_KEEPS;
        return NULL;
    }
    static const tfn_set NO_BYTES;
    if (ptv && (s->col_done[parent] & COL_EMPTY) && tfn_keeps(step, &NO_BYTES)) {
        s->tv[chain] = (wstr *)ptv;
        s->col_done[chain] = s->col_done[parent];
        s->joined_n[chain] = s->joined_n[parent];
        return ptv;
    }
    for (int k = 0; k < s->n_computed; k++) {
        int o = s->computed[k];
        if (r->tchain_def[o][r->tchain_def[o][0]] != step || parent_results(r, s, o) != ptv) continue;
        s->tv[chain] = s->tv[o];
        s->col_done[chain] = s->col_done[o];
        s->joined_n[chain] = s->joined_n[o];
        return s->col_done[chain] & COL_KEEPS ? NULL : s->tv[chain];
    }
    const coll *c = &tx->c[base];
    firsts(tx, s, c, names);
    /* only the distinct values' entries are ever read (value i's result is at first[i]): a
     * column begun here needs no clearing, one that transform() began keeps its results */
    wstr *tv = s->tv[chain];
    bool fresh = !tv, same = true, empty = true;
    if (fresh) tv = s->tv[chain] = ar_alloc(&tx->a, (size_t)(s->n ? s->n : 1) * sizeof *tv);
    /* a value holding no byte the step acts on is its own result: told by a table lookup
     * per byte, without a call (the short results of base64Decode, which the steps after it
     * keep, are most of a JSON body's steps) */
    const uint8_t *acts = tfn_acts(step);
    size_t total = 0;   /* the join's length, for source_joined */
    uint32_t live = 0, last = 0;
    for (uint32_t u = 0; u < s->n_uniq; u++) {
        uint32_t i = s->uniq[u];
        const kv *it = &c->items[i];
        if (!it->key.p) continue;
        wstr in = ptv ? ptv[i] : (names ? it->key : it->val);
        if (fresh || !tv[i].p) {
            wstr out = in;
            if (!acts || acts_on(acts, in)) out = tfn_apply(&tx->a, step, in);
            if (!out.p) out.p = "";
            tv[i] = out;
        }
        same = same && tv[i].p == in.p && tv[i].n == in.n;
        empty = empty && !tv[i].n;
        total += tv[i].n + 1;
        live++;
        last = i;
    }
    if (!s->computed) {
        s->computed = ar_alloc(&tx->a, (size_t)r->n_tchains * sizeof *s->computed);
        s->joined_n = ar_alloc(&tx->a, (size_t)r->n_tchains * sizeof *s->joined_n);
    }
    s->computed[s->n_computed++] = (uint16_t)chain;
    s->joined_n[chain] = (uint32_t)total;
    s->live = live;
    s->last = last;
    if (same && !ptv) {   /* the values themselves */
        s->col_done[chain] = COL_KEEPS;
        return NULL;
    }
    if (same) tv = s->tv[chain] = (wstr *)ptv;
    s->col_done[chain] = COL_DONE | (empty ? COL_EMPTY : 0) | (same ? s->col_done[parent] & COL_EMPTY : 0);
    return tv;
}

uint32_t source_distinct(waf_tx *tx, int base, bool names, const uint32_t **idx) {
    src_state *s = source(tx, base, names);
    firsts(tx, s, &tx->c[base], names);
    *idx = s->uniq;
    return s->n_uniq;
}

const wstr *source_column(waf_tx *tx, int base, bool names, int chain) {
    return column(tx, source(tx, base, names), base, names, chain);
}

const tfn_set *source_present(waf_tx *tx, int base, bool names) {
    src_state *s = source(tx, base, names);
    if (!s->present_known) present_bytes(tx, s, base, names);
    return &s->present;
}

const wstr *source_joined(waf_tx *tx, int base, bool names, int chain) {
    src_state *s = source(tx, base, names);
    if (!s->n) return NULL;
    wstr *j = &s->joined[chain];
    if (j->p) return j;
    if (!IS_COLLECTION(base)) {
        *j = transform(tx, chain, tx->sc[base], VID(base, 0, 0));
        if (!j->p) j->p = "";
        return j;
    }
    const wstr *tv = IS_COLLECTION(base) ? column(tx, s, base, names, chain) : NULL;
    if (!tv) {   /* the chain changes no value: the values themselves */
        const wstr *raw = raw_joined(tx, s, base, names);
        if (!raw->n && IS_COLLECTION(base)) {
            /* no live value (every item deleted): as below */
            uint32_t live = 0;
            for (uint32_t i = 0; i < s->n; i++) live += tx->c[base].items[i].key.p != NULL;
            if (!live) return NULL;
        }
        *j = *raw;
        return j;
    }
    /* a column shared with another chain (the same results): its join */
    const waf_rules *r = tx->rules;
    for (int k = 0; k < s->n_computed; k++)
        if (s->joined[s->computed[k]].p && s->tv[s->computed[k]] == tv) {
            *j = s->joined[s->computed[k]];
            return j;
        }
    coll *c = &tx->c[base];
    /* the column's loop counted its values and the join's length */
    size_t total = s->joined_n[chain];
    if (!s->live) return NULL;
    if (s->live == 1) {
        *j = tv[s->last];
        return j;
    }
    /* the last step changed no value (urlDecode of text without '%', ...): the parent's
     * joined values serve (no copy) */
    int parent = r->tchain_parent[chain];
    if (parent >= 0 && tv == parent_results(r, s, chain)) {
        *j = *source_joined(tx, base, names, parent);
        return j;
    }
    char *o = ar_alloc(&tx->a, total);
    size_t k = 0;
    for (uint32_t u = 0; u < s->n_uniq; u++) {
        uint32_t i = s->uniq[u];
        if (!c->items[i].key.p) continue;
        if (k) o[k++] = '\n';
        copy_bytes(o + k, tv[i].p, tv[i].n);
        k += tv[i].n;
    }
    *j = (wstr){o, k};
    return j;
}

uint64_t *source_masks(waf_tx *tx, int base, bool names, uint8_t **done) {
    src_state *s = source(tx, base, names);
    if (!s->masks) {
        size_t n = (size_t)(tx->rules->n_pf_groups ? tx->rules->n_pf_groups : 1);
        s->masks = ar_alloc(&tx->a, n * sizeof *s->masks);
        s->done = ar_alloc(&tx->a, (n + 7) / 8);
        memset(s->done, 0, (n + 7) / 8);
    }
    *done = s->done;
    return s->masks;
}

/* The value's source state and index, when vid names a value of a request collection. */
static src_state *value_source(waf_tx *tx, uint32_t vid, uint32_t *idx) {
    int base = (int)(vid >> 24);
    if (!vid || !IS_COLLECTION(base)) return NULL;
    src_state *s = source(tx, base, vid & 1);
    *idx = (vid & 0xffffffu) >> 1;
    return *idx < s->n ? s : NULL;
}

bool value_known_no_match(waf_tx *tx, const void *op_owner, uint32_t vid) {
    uint32_t idx;
    src_state *s = value_source(tx, vid, &idx);
    if (!s || !s->no_match) return false;
    uint32_t f = firsts(tx, s, &tx->c[vid >> 24], vid & 1)[idx];
    return f != idx && s->no_match[f] == op_owner;
}

void value_no_match(waf_tx *tx, const void *op_owner, uint32_t vid) {
    uint32_t idx;
    src_state *s = value_source(tx, vid, &idx);
    if (!s) return;
    if (!s->no_match) {
        s->no_match = ar_alloc(&tx->a, (size_t)s->n * sizeof *s->no_match);
        memset(s->no_match, 0, (size_t)s->n * sizeof *s->no_match);
    }
    s->no_match[idx] = op_owner;
}
