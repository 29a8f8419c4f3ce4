/*
 * memchr, memcmp and strlen for the filter module, eight bytes a step.  The wasm32-wasi libc
 * and compiler-rt that zig links go byte by byte, and each byte's loop iteration also pays
 * the engine's epoch check: libinjection calls memchr for every character of a word, the
 * transformations' "anything to do?" checks scan whole values, the literal pass compares
 * whole inputs by bytes, and every match's variable name is measured.  (Their definitions
 * are weak: these are used.)
 * Layer: a leaf, below every unit that calls them.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

void *memchr(const void *s, int c, size_t n) {
    const unsigned char *p = s;
    const unsigned char ch = (unsigned char)c;
    const uint64_t rep = ONES * ch;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= rep;                                   /* a zero byte where p[i] == ch */
        if ((w - ONES) & ~w & HIGHS) break;
    }
    for (; n; p++, n--)
        if (*p == ch) return (void *)p;
    return NULL;
}

int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *p = a, *q = b;
    for (; n >= 8; p += 8, q += 8, n -= 8) {
        uint64_t x, y;
        memcpy(&x, p, 8);
        memcpy(&y, q, 8);
        if (x != y) {   /* words load little-endian (wasm32): the lowest differing bit's byte */
            size_t k = (size_t)__builtin_ctzll(x ^ y) / 8;
            return p[k] - q[k];
        }
    }
    for (; n; p++, q++, n--)
        if (*p != *q) return *p - *q;
    return 0;
}

/* Aligned words past the first bytes: a word never crosses the end of linear memory (its
 * size is a multiple of 64 KiB). */
size_t strlen(const char *s) {
    const char *p = s;
    for (; (uintptr_t)p & 7; p++)
        if (!*p) return (size_t)(p - s);
    for (;; p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t zero = (w - ONES) & ~w & HIGHS;   /* its lowest set bit: the first NUL */
        if (zero) return (size_t)(p - s) + (size_t)__builtin_ctzll(zero) / 8;
    }
}
