/*
 * Checks filters/waf/wordlibc.c (built with its functions renamed word_*) against the host
 * libc on generated buffers: every alignment of both operands, lengths 0..80, differences
 * at every position, NULs placed anywhere and bytes >= 0x80 (memcmp compares unsigned).
 * Usage: waf_wordlibc_check; prints "checked N mismatches M" and exits 1 on a mismatch.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *word_memchr(const void *s, int c, size_t n);
int word_memcmp(const void *a, const void *b, size_t n);
size_t word_strlen(const char *s);

static int sign(int v) { return (v > 0) - (v < 0); }

int main(void) {
    static _Alignas(8) unsigned char a[256], b[256];
    unsigned long long rng = 7, checked = 0, bad = 0;
    for (int round = 0; round < 20000; round++) {
        for (size_t i = 0; i < sizeof a; i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            a[i] = b[i] = (unsigned char)("ab\0\x80\xff\n"[(rng >> 33) % 6]);
        }
        size_t oa = (size_t)round % 8, ob = (size_t)(round / 8) % 8, n = (size_t)(round / 64) % 81;
        if (n && round % 3) b[ob + (size_t)(rng >> 40) % n] ^= (unsigned char)(1u << ((rng >> 20) % 8));
        checked++;
        if (sign(word_memcmp(a + oa, b + ob, n)) != sign(memcmp(a + oa, b + ob, n))) bad++;
        if (word_memchr(a + oa, a[oa + n / 2], n) != memchr(a + oa, a[oa + n / 2], n)) bad++;
        a[sizeof a - 1] = 0;
        if (word_strlen((const char *)a + oa + n) != strlen((const char *)a + oa + n)) bad++;
    }
    printf("checked %llu mismatches %llu\n", checked, bad);
    return bad != 0;
}
