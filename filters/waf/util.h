/*
 * Engine utilities (the bottom layer, util.c): the per-request arena, byte buffers,
 * case-insensitive comparison and hashing, numbers, and ordered key/value collections with
 * an index.  Nothing here knows SecLang, rules or transactions, so every other unit can use
 * it and it uses none of them.
 */
#ifndef WAF_UTIL_H
#define WAF_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ strings, arena */

typedef struct { const char *p; size_t n; } wstr;
#define WSTR(lit) ((wstr){(lit), sizeof(lit) - 1})

typedef struct arena_blk { struct arena_blk *next; size_t cap, used; char data[]; } arena_blk;
typedef struct { arena_blk *head, *spare; size_t total; } arena;

void *ar_alloc_block(arena *a, size_t n);      /* ar_alloc's slow path: a new block */
/* 8-aligned, never NULL (aborts on OOM); inline: most allocations fit the current block */
static inline void *ar_alloc(arena *a, size_t n) {
    n = (n + 7) & ~(size_t)7;
    arena_blk *b = a->head;
    if (__builtin_expect(!b || b->used + n > b->cap, 0)) return ar_alloc_block(a, n);
    void *p = b->data + b->used;
    b->used += n;
    a->total += n;
    return p;
}
char *ar_dup(arena *a, const char *p, size_t n); /* NUL-terminated copy */
void ar_reset(arena *a);                       /* keeps blocks for reuse, up to AR_KEEP bytes */
void ar_free(arena *a);

/* A growable byte buffer (malloc) */
typedef struct { char *p; size_t n, cap; } wbuf;
void wb_put(wbuf *b, const char *p, size_t n);
void wb_putc(wbuf *b, char c);
void wb_puts(wbuf *b, const char *s);
void wb_free(wbuf *b);

bool ieq(const char *a, size_t an, const char *b, size_t bn);
bool ieqz(wstr a, const char *z);
char *xstrndup(const char *p, size_t n);
uint32_t hash_ci(const char *p, size_t n);
bool parse_num_text(wstr s, long long *out);   /* ModSecurity-style atoi: leading digits */
/* parse_num_text, a single digit inline: most TX values CRS compares and adds to (levels,
 * flags, scores), ~130 per GET, each a call in Wasm otherwise */
static inline bool parse_num(wstr s, long long *out) {
    if (s.n == 1 && (unsigned char)(s.p[0] - '0') < 10) {
        *out = s.p[0] - '0';
        return true;
    }
    return parse_num_text(s, out);
}

/* 0x80 in each byte of w equal to b, exactly (no borrow from one byte into the next) */
static inline uint64_t bytes_eq(uint64_t w, uint8_t b) {
    uint64_t x = w ^ (0x0101010101010101ull * b);
    return ~(((x & 0x7F7F7F7F7F7F7F7Full) + 0x7F7F7F7F7F7F7F7Full) | x | 0x7F7F7F7F7F7F7F7Full);
}

/* memcpy for the short keys and values joined and named per request: in Wasm a memcpy of
 * unknown length is a memory.copy libcall into the host (~55 instructions with its memcpy);
 * up to 32 bytes this is a few overlapping loads and stores.  The regions do not overlap. */
static inline void copy_bytes(char *restrict d, const char *restrict s, size_t n) {
    if (n > 32) { memcpy(d, s, n); return; }
    if (n >= 16) {   /* the first sixteen bytes and the last sixteen */
        uint64_t a, b, c, e;
        memcpy(&a, s, 8); memcpy(&b, s + 8, 8); memcpy(&c, s + n - 16, 8); memcpy(&e, s + n - 8, 8);
        memcpy(d, &a, 8); memcpy(d + 8, &b, 8); memcpy(d + n - 16, &c, 8); memcpy(d + n - 8, &e, 8);
    } else if (n >= 8) {
        uint64_t a, b;
        memcpy(&a, s, 8); memcpy(&b, s + n - 8, 8);
        memcpy(d, &a, 8); memcpy(d + n - 8, &b, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4); memcpy(&b, s + n - 4, 4);
        memcpy(d, &a, 4); memcpy(d + n - 4, &b, 4);
    } else if (n) {
        d[0] = s[0]; d[n / 2] = s[n / 2]; d[n - 1] = s[n - 1];
    }
}

/* ------------------------------------------------------------------ collections */

/* An ordered key/value list (request collections, TX) with a case-insensitive index, built
 * by the first lookup that needs it and kept up to date by later additions while it has room
 * (a body's hundreds of arguments are not indexed as they arrive, nor at all if no rule looks
 * one up by name). */
typedef struct { wstr key, val; } kv;
typedef struct {
    kv *items;
    uint32_t n, cap;
    int32_t *index;              /* open addressing over items (NULL: linear scan) */
    uint32_t index_cap;
    bool indexed;                /* index holds every item (false: built again when needed) */
    arena *a;                    /* the arena of the items, for the index */
    uint32_t *hashes;            /* [cap] hash_ci of each item's key: probes compare it first */
    uint32_t hashed;             /* items whose hash is set (the rest were added without one) */
} coll;

void coll_add(arena *a, coll *c, wstr key, wstr val);
void coll_add_h(arena *a, coll *c, wstr key, wstr val, uint32_t hash);   /* hash: hash_ci(key) */
/* Added without its hash, computed when the collection is first searched (MATCHED_VARS, added
 * to per match, is seldom searched by key). */
void coll_add_unhashed(arena *a, coll *c, wstr key, wstr val);
kv *coll_find(coll *c, wstr key);
kv *coll_find_h(coll *c, wstr key, uint32_t hash);   /* hash: hash_ci(key) */
/* Indices of every item with this key (case-insensitive), in order; -1 when more than max
 * match (then scan it). */
int coll_find_all(coll *c, wstr key, uint32_t hash, uint32_t *out, int max);   /* hash: hash_ci(key) */
void coll_del(coll *c, wstr key);

#endif
