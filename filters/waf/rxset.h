/*
 * C ABI of the Rust static library in rxset/ (Rust's `regex` crate): a set of
 * up to 64 PCRE2 patterns, translated to a superset in Rust's syntax and run
 * as one lazy DFA, linear in the subject's length.
 */
#ifndef WAF_RXSET_H
#define WAF_RXSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct RxSet RxSet;

#define RXSET_MAX 64

/* Compile n (<= RXSET_MAX) patterns; common[i] = 1 when pattern i matches ordinary values
 * (it is then always checked on its own).  ok[i] = 1 when pattern i is in the set (0: it
 * has no translation, the caller must always run it).  dfa_limit bounds the lazy DFA cache
 * of the set's alternation, in bytes. */
RxSet *rxset_new(const uint8_t *const *pats, const size_t *lens, const uint8_t *common, size_t n, uint8_t *ok,
                 size_t dfa_limit);
/* Bit i set: pattern i may match somewhere in hay (never clear when PCRE2 would match). */
uint64_t rxset_scan(RxSet *s, const uint8_t *hay, size_t len);
/* Pattern i alone on one subject: false only when PCRE2 would not match it either. */
bool rxset_match(RxSet *s, size_t i, const uint8_t *hay, size_t len);
void rxset_free(RxSet *s);

#endif
