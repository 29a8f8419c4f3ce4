/*
 * Engine utilities (the bottom layer: util.h, no other unit's symbols): the per-request
 * arena, byte buffers, case-insensitive helpers and ordered collections with an index.
 */
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ------------------------------------------------------------------ arena */

#define ARENA_MIN (64 * 1024)
/* blocks an idle arena keeps for the next request; more is freed (a request's peak is
 * bounded by its body, the next one starts from at most this) */
#define AR_KEEP (8u * 1024 * 1024)

static arena_blk *take_spare(arena *a, size_t n) {
    for (arena_blk **pb = &a->spare; *pb; pb = &(*pb)->next) {
        if ((*pb)->cap < n) continue;
        arena_blk *b = *pb;
        *pb = b->next;
        return b;
    }
    return NULL;
}

void *ar_alloc_block(arena *a, size_t n) {
    arena_blk *b = a->head;
    arena_blk *nb = take_spare(a, n);
    if (!nb) {
        size_t cap = n > ARENA_MIN ? n : ARENA_MIN;
        if (b && b->cap * 2 > cap && b->cap < 16 * ARENA_MIN) cap = b->cap * 2;
        nb = malloc(sizeof *nb + cap);
        if (!nb) abort();
        nb->cap = cap;
    }
    nb->used = 0;
    nb->next = b;
    a->head = b = nb;
    void *p = b->data + b->used;
    b->used += n;
    a->total += n;
    return p;
}

char *ar_dup(arena *a, const char *p, size_t n) {
    char *d = ar_alloc(a, n + 1);
    if (n) memcpy(d, p, n);
    d[n] = 0;
    return d;
}

void ar_reset(arena *a) {
    size_t kept = 0;
    for (arena_blk *b = a->spare; b; b = b->next) kept += b->cap;
    while (a->head) {
        arena_blk *b = a->head;
        a->head = b->next;
        if (kept + b->cap > AR_KEEP) {
            free(b);
            continue;
        }
        kept += b->cap;
        b->next = a->spare;
        a->spare = b;
    }
    a->total = 0;
}

void ar_free(arena *a) {
    ar_reset(a);
    while (a->spare) {
        arena_blk *b = a->spare;
        a->spare = b->next;
        free(b);
    }
}

/* ------------------------------------------------------------------ buffers, strings */

void wb_put(wbuf *b, const char *p, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) abort();
        b->p = np;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;
}

void wb_putc(wbuf *b, char c) { wb_put(b, &c, 1); }
void wb_puts(wbuf *b, const char *s) { wb_put(b, s, strlen(s)); }
void wb_free(wbuf *b) { free(b->p); b->p = NULL; b->n = b->cap = 0; }

static inline unsigned char lc(unsigned char c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* 8 bytes ASCII-lowercased at once: 0x20 added to each byte in 'A'..'Z' (bytes >= 0x80 kept). */
#define ONES8 0x0101010101010101ull
#define HIGHS8 0x8080808080808080ull
static inline uint64_t lc8(uint64_t w) {
    uint64_t low7 = w & ~HIGHS8;
    uint64_t ge_a = low7 + (0x80 - 'A') * ONES8;       /* high bit: byte >= 'A' */
    uint64_t gt_z = low7 + (0x80 - 'Z' - 1) * ONES8;   /* high bit: byte > 'Z' */
    uint64_t upper = ge_a & ~gt_z & ~w & HIGHS8;
    return w | (upper >> 2);
}

static inline uint64_t load8(const char *p) {
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* Words equal as they are (keys are mostly written in one case) are not folded; the last
 * word of a key of 8 bytes or more overlaps the one before instead of a byte loop. */
static inline bool ieq8(uint64_t x, uint64_t y) { return x == y || lc8(x) == lc8(y); }

bool ieq(const char *a, size_t an, const char *b, size_t bn) {
    if (an != bn) return false;
    if (an < 8) {
        for (size_t i = 0; i < an; i++)
            if (a[i] != b[i] && lc((unsigned char)a[i]) != lc((unsigned char)b[i])) return false;
        return true;
    }
    for (size_t i = 0; i + 8 < an; i += 8)
        if (!ieq8(load8(a + i), load8(b + i))) return false;
    return ieq8(load8(a + an - 8), load8(b + an - 8));
}

bool ieqz(wstr a, const char *z) { return ieq(a.p, a.n, z, strlen(z)); }

char *xstrndup(const char *p, size_t n) {
    char *d = malloc(n + 1);
    if (!d) abort();
    memcpy(d, p, n);
    d[n] = 0;
    return d;
}

/* A word at a time, the last one overlapping the one before (a key shorter than a word is
 * packed into one): one multiply per word, none per byte. */
uint32_t hash_ci(const char *p, size_t n) {
    uint64_t h = n;
    if (n < 8) {
        uint64_t w = 0;
        for (size_t i = 0; i < n; i++) w |= (uint64_t)(unsigned char)p[i] << (8 * i);
        h ^= lc8(w);
    } else {
        for (size_t i = 0; i + 8 < n; i += 8) h = (h ^ lc8(load8(p + i))) * 0x9E3779B97F4A7C15ull;
        h ^= lc8(load8(p + n - 8));
    }
    h *= 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    h *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32);
}

bool parse_num_text(wstr s, long long *out) {
    size_t i = 0;
    while (i < s.n && (s.p[i] == ' ' || s.p[i] == '\t')) i++;
    bool neg = false;
    if (i < s.n && (s.p[i] == '-' || s.p[i] == '+')) { neg = s.p[i] == '-'; i++; }
    size_t start = i;
    long long v = 0;
    while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9') {
        if (v < 100000000000000000LL) v = v * 10 + (s.p[i] - '0');
        i++;
    }
    *out = neg ? -v : v;
    return i > start;
}

/* ------------------------------------------------------------------ collections */

#define INDEX_FROM 16   /* collections with more items get a hash index */

/* the hashes of the items added without one */
static void coll_hash_rest(coll *c) {
    for (; c->hashed < c->n; c->hashed++) {
        const kv *it = &c->items[c->hashed];
        c->hashes[c->hashed] = it->key.p ? hash_ci(it->key.p, it->key.n) : 0;
    }
}

/* Out of line: the lookups' inline test (coll_indexed) stays small, and a Wasm call to it
 * would pay an entry, an epoch check and the spills of the rebuild's loop. */
static __attribute__((noinline)) void coll_reindex(coll *c) {
    uint32_t cap = 64;
    while (cap < c->n * 2) cap *= 2;
    if (cap > c->index_cap) {
        c->index = ar_alloc(c->a, cap * sizeof(int32_t));
        c->index_cap = cap;
    }
    memset(c->index, 0xff, c->index_cap * sizeof(int32_t));
    c->indexed = true;
    coll_hash_rest(c);
    for (uint32_t i = 0; i < c->n; i++) {
        if (!c->items[i].key.p) continue;
        uint32_t h = c->hashes[i] & (c->index_cap - 1);
        while (c->index[h] >= 0) {
            /* keep the first occurrence of a key findable: later equal keys go after */
            h = (h + 1) & (c->index_cap - 1);
        }
        c->index[h] = (int32_t)i;
    }
}

/* Whether lookups go through the index (built now if it is out of date). */
static inline bool coll_indexed(coll *c) {
    if (c->n < INDEX_FROM) return false;
    if (!c->indexed) coll_reindex(c);
    return true;
}

void coll_add(arena *a, coll *c, wstr key, wstr val) { coll_add_h(a, c, key, val, hash_ci(key.p, key.n)); }

static void coll_grow(arena *a, coll *c) {
    uint32_t cap = c->cap ? c->cap * 2 : 16;
    kv *items = ar_alloc(a, cap * sizeof(kv));
    uint32_t *hashes = ar_alloc(a, cap * sizeof(uint32_t));
    if (c->n) {
        memcpy(items, c->items, c->n * sizeof(kv));
        memcpy(hashes, c->hashes, c->n * sizeof(uint32_t));
    }
    c->items = items;
    c->hashes = hashes;
    c->cap = cap;
}

void coll_add_h(arena *a, coll *c, wstr key, wstr val, uint32_t hk) {
    if (c->n == c->cap) coll_grow(a, c);
    c->a = a;
    c->hashes[c->n] = hk;
    c->items[c->n++] = (kv){key, val};
    if (c->hashed == c->n - 1) c->hashed = c->n;
    if (!c->indexed) return;
    if (c->n * 2 > c->index_cap) { c->indexed = false; return; }
    uint32_t h = hk & (c->index_cap - 1);
    while (c->index[h] >= 0) h = (h + 1) & (c->index_cap - 1);
    c->index[h] = (int32_t)(c->n - 1);
}

void coll_add_unhashed(arena *a, coll *c, wstr key, wstr val) {
    if (c->indexed) {   /* a live index needs the hash now */
        coll_add(a, c, key, val);
        return;
    }
    if (c->n == c->cap) coll_grow(a, c);
    c->a = a;
    c->items[c->n++] = (kv){key, val};
}

kv *coll_find_h(coll *c, wstr key, uint32_t hash) {
    if (c->hashed < c->n) coll_hash_rest(c);
    if (coll_indexed(c)) {
        kv *best = NULL;
        for (uint32_t h = hash & (c->index_cap - 1); c->index[h] >= 0; h = (h + 1) & (c->index_cap - 1)) {
            int32_t i = c->index[h];
            kv *it = &c->items[i];
            if (c->hashes[i] == hash && it->key.p && ieq(it->key.p, it->key.n, key.p, key.n) && (!best || it < best)) best = it;
        }
        return best;
    }
    for (uint32_t i = 0; i < c->n; i++)
        if (c->hashes[i] == hash && c->items[i].key.p && ieq(c->items[i].key.p, c->items[i].key.n, key.p, key.n))
            return &c->items[i];
    return NULL;
}

kv *coll_find(coll *c, wstr key) {
    if (!c->n) return NULL;
    return coll_find_h(c, key, hash_ci(key.p, key.n));
}

int coll_find_all(coll *c, wstr key, uint32_t hash, uint32_t *out, int max) {
    int n = 0;
    if (c->hashed < c->n) coll_hash_rest(c);
    if (!coll_indexed(c)) {   /* in order already */
        for (uint32_t i = 0; i < c->n; i++) {
            const kv *it = &c->items[i];
            if (c->hashes[i] != hash || !it->key.p || !ieq(it->key.p, it->key.n, key.p, key.n)) continue;
            if (n == max) return -1;
            out[n++] = i;
        }
        return n;
    }
    for (uint32_t h = hash & (c->index_cap - 1); c->index[h] >= 0; h = (h + 1) & (c->index_cap - 1)) {
        uint32_t idx = (uint32_t)c->index[h];
        const kv *it = &c->items[idx];
        if (c->hashes[idx] != hash || !it->key.p || !ieq(it->key.p, it->key.n, key.p, key.n)) continue;
        if (n == max) return -1;
        int k = n++;
        while (k > 0 && out[k - 1] > idx) { out[k] = out[k - 1]; k--; }   /* keep them in order */
        out[k] = idx;
    }
    return n;
}

void coll_del(coll *c, wstr key) {
    /* tombstone: the key pointer is cleared; iteration skips it */
    for (uint32_t i = 0; i < c->n; i++)
        if (c->items[i].key.p && ieq(c->items[i].key.p, c->items[i].key.n, key.p, key.n))
            c->items[i].key.p = NULL;
}
