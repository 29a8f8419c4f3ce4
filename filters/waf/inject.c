/*
 * Values libinjection answers "no" for without running it: a JSON body or a form holds
 * hundreds of ids, numbers and dotted argument names, and @detectSQLi / @detectXSS run
 * on each distinct one (CRS 942100 and 941100 target ARGS and ARGS_NAMES).  Each test
 * below follows libinjection's own code paths, so its answer is libinjection's; the unit
 * test checks them against libinjection on generated values.
 */
#include <string.h>

#include "libinjection_sqli.h"
#include "waf.h"

/* libinjection_xss runs the HTML5 tokenizer from five start states and reports a doctype,
 * a start tag, a comment (all of which begin at '<') or a dangerous attribute's value (an
 * attribute value follows its name only after '=').  Without either byte the tokens are
 * text, attribute names, tag closes and a quoted start state's first value, which no
 * attribute name precedes. */
bool xss_impossible(wstr v) {
    for (size_t i = 0; i < v.n; i++)
        if (v.p[i] == '<' || v.p[i] == '=') return false;
    return true;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

#define TOKEN_KEPT (sizeof ((stoken_t *)0)->val - 1)   /* the bytes of a word its token keeps */

/* Whether libinjection's keyword table types the word w (the text before a '.') as anything
 * but a bareword.  The table is a binary search over ~9 000 entries; dotted argument names
 * share their first parts (json.items.…), so the last answers are kept. */
static bool keyword_prefix(const char *w, size_t n) {
    static struct { uint8_t n; char w[TOKEN_KEPT]; bool kw; } memo[64];
    uint32_t h = (uint32_t)n * 2654435761u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)w[i]) * 16777619u;
    __typeof__(memo[0]) *m = &memo[h >> 26];
    if (m->n == n && n && memcmp(m->w, w, n) == 0) return m->kw;
    char t = libinjection_sqli_lookup_word(NULL, LOOKUP_WORD, w, n);
    m->n = (uint8_t)n;
    memcpy(m->w, w, n);
    m->kw = t != '\0' && t != 'n';   /* 'n': a bareword */
    return m->kw;
}

/* libinjection_sqli tokenizes the value; a value that is one token (a number, or a word)
 * has a one-character fingerprint, and the only such fingerprint it reports is 'X' (a value
 * it cannot parse), which neither a number nor a keyword lookup gives.  Only with a quote
 * does it parse again (as if the value began with one), and only after a comment again as
 * MySQL.  One token:
 *  - digits only: parse_number takes them all (no 'x'/'b' after a leading 0, no '.' or
 *    exponent);
 *  - a letter, then letters, digits, '_' and '.': parse_word takes it all (none of these
 *    ends a word; a leading b, e, n, q, u or x parses a string only before a quote or '&'),
 *    unless the text before a '.' is a keyword (`select.1`): each such prefix among the
 *    first 31 bytes (what the token keeps) is looked up as libinjection does. */
bool sqli_impossible(wstr v) {
    if (!v.n) return true;
    const char *s = v.p;
    if (is_digit(s[0])) {
        for (size_t i = 1; i < v.n; i++)
            if (!is_digit(s[i])) return false;
        return true;
    }
    if (!is_alpha(s[0])) return false;
    for (size_t i = 1; i < v.n; i++)
        if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '_' && s[i] != '.') return false;
    for (const char *d = s; (d = memchr(d, '.', v.n - (size_t)(d - s))) && (size_t)(d - s) < TOKEN_KEPT; d++)
        if (keyword_prefix(s, (size_t)(d - s))) return false;
    return true;
}
