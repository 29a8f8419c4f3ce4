/*
 * Normalisation of inspected values for the WAF engine.
 *
 * Attackers hide payloads behind encodings; rules therefore never see raw
 * input but a set of views of it, each produced by single linear passes:
 *   d   repeated percent / %u / HTML entity / JS-escape decoding until stable
 *       (bounded), Unicode fullwidth and smart-quote folding, NUL removal,
 *       ASCII lower-casing;
 *   c   d with SQL comments removed (MySQL executable comments keep their
 *       content) and whitespace runs compressed to one space (SQL view);
 *   s   d with shell quoting/escaping noise removed (\ ' " ^, $@, ${IFS}) and
 *       whitespace compressed (command-line view);
 *   w   d with all whitespace and comments removed (PHP/JS view).
 * No pass backtracks, so the cost is O(length) per view.
 */
#ifndef WAF_NORMALIZE_H
#define WAF_NORMALIZE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *d; size_t dn;
    char *c; size_t cn;
    char *s; size_t sn;
    char *w; size_t wn;
    bool had_encoding;   /* decoding changed the value (evasion hint) */
    bool had_nul;        /* a NUL byte was present after decoding */
} waf_norm;

/* One percent-decoding pass (also %uHHHH -> UTF-8); '+' -> ' ' when plus_space.
 * Writes at most n bytes to out (out may equal in). Returns the new length. */
size_t waf_url_decode(const char *in, size_t n, char *out, bool plus_space);
/* One HTML entity decoding pass (&#dd; &#xhh; and common named entities, ';' optional). */
size_t waf_html_decode(const char *in, size_t n, char *out);
/* One JavaScript/C escape decoding pass (\uHHHH, \u{H..}, \xHH). */
size_t waf_js_decode(const char *in, size_t n, char *out);

/* Build all views of in[0..n). Returns false only on allocation failure. */
bool waf_normalize(const char *in, size_t n, waf_norm *out);
void waf_norm_free(waf_norm *v);

#endif
