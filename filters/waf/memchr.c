/*
 * memchr for the filter module.  The wasm32-wasi libc that zig links goes byte
 * by byte; libinjection calls memchr for every character of a word and the
 * transformations' "anything to do?" checks scan whole values, so this one
 * compares 8 bytes at a time.  (libc's definition is weak: this one is used.)
 * Layer: a leaf, below every unit that calls memchr.
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
