/*
 * C ABI of the Rust static library in rxset/ (Rust's `regex` and `aho-corasick`
 * crates): a set of up to 64 PCRE2 patterns, translated to a superset in Rust's
 * syntax and run as lazy DFAs, linear in the subject's length; or one list of
 * phrases (@pm).
 */
#ifndef WAF_RXSET_H
#define WAF_RXSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct RxSet RxSet;
typedef struct RxGate RxGate;

#define RXSET_MAX 64

/* pattern flags */
#define RXSET_COMMON 1    /* it matches ordinary values: always checked on its own */
#define RXSET_CASELESS 2  /* match it in any case (subjects are scanned before a t:lowercase) */

/* Compile n (<= RXSET_MAX) patterns with their flags.  ok[i] = 1 when pattern i is in the
 * set (0: it has no translation, the caller must always run it).  dfa_limit bounds the lazy
 * DFA cache of the set's alternation, in bytes. */
RxSet *rxset_new(const uint8_t *const *pats, const size_t *lens, const uint8_t *flags, size_t n, uint8_t *ok,
                 size_t dfa_limit);
/* One member (bit 0): any of n phrases, ASCII case-insensitive (@pm). */
RxSet *rxset_new_phrases(const uint8_t *const *phrases, const size_t *lens, size_t n);
/* Bit i set: pattern i may match somewhere in hay (never clear when PCRE2 would match). */
uint64_t rxset_scan(RxSet *s, const uint8_t *hay, size_t len);
/* Pattern i alone on one subject: false only when PCRE2 would not match it either. */
bool rxset_match(RxSet *s, size_t i, const uint8_t *hay, size_t len);
/* When pattern i is one class of bytes (one byte each match, e.g. `[\n\r]`): out[b] = 1 for
 * each of its bytes, and from then on the set reports it as possible without looking (scans
 * and rxset_match): the caller tests those bytes itself, over values rather than their join,
 * whose '\n' separators such a class may hold. */
bool rxset_take_class(RxSet *s, size_t i, uint8_t out[256]);
/* n patterns (any number) as one alternation, only asked whether any of them matches, each
 * with its digits folded: every ASCII digit a literal or class holds also takes `0`
 * (rxset/src/fold.rs), so that it may also be asked about a text with its digits written as `0`. */
RxSet *rxset_new_union(const uint8_t *const *pats, const size_t *lens, const uint8_t *flags, size_t n,
                       size_t dfa_limit);
/* From rxset_new_union: false only when no member can match anywhere in hay, nor in any text
 * that reads as hay once its digits are written as `0`. */
bool rxset_any(RxSet *s, const uint8_t *hay, size_t len);
void rxset_free(RxSet *s);

/* The literal pass.  Whether every match of the pattern (as rxset_new translates it) contains
 * one of a few literal strings (3 bytes or more, or two punctuation bytes). */
bool rxset_pattern_has_literals(const uint8_t *pat, size_t len, bool caseless);
/* Whether the set's members that are not common all have such literals: then an input none
 * of them occurs in (ASCII case-insensitively) cannot match the set's alternation.  A phrase
 * list: whether its phrases are in the literal pass, whose answer is then exactly its own. */
bool rxset_gated(const RxSet *s);
/* One automaton for the literals of the n sets (sets[i] NULL or not gated: none). */
RxGate *rxgate_new(RxSet *const *sets, size_t n);
/* ORs bit i (64 per word) into bits for each set i one of whose literals occurs in hay. */
void rxgate_scan(const RxGate *g, const uint8_t *hay, size_t len, uint64_t *bits, size_t words);
void rxgate_free(RxGate *g);

#endif
