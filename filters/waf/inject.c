/*
 * Values libinjection answers "no" for without running it: a JSON body or a form holds
 * hundreds of ids, numbers and dotted argument names, and @detectSQLi / @detectXSS run
 * on each distinct one (CRS 942100 and 941100 target ARGS and ARGS_NAMES).  Each test
 * below follows libinjection's own code paths, so its answer is libinjection's; the unit
 * test checks them against libinjection on generated values.  Where libinjection does run,
 * its keyword lookups are answered from the same kept answers (sqli_detect).
 * Layer: a leaf beside libinjection (operator.c asks it first).
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
    /* eight bytes a step: a byte equal to '<' or '=' leaves a zero byte in x ^ that byte */
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    size_t i = 0;
    for (; i + 8 <= v.n; i += 8) {
        uint64_t x, a, b;
        memcpy(&x, v.p + i, 8);
        a = x ^ (ones * '<');
        b = x ^ (ones * '=');
        if (((a - ones) & ~a & highs) | ((b - ones) & ~b & highs)) return false;
    }
    for (; i < v.n; i++)
        if (v.p[i] == '<' || v.p[i] == '=') return false;
    return true;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* the bytes of a one-token word: letters, digits, '_' (1) and '.' (2) */
static const uint8_t WORD_BYTE[256] = {
    ['.'] = 2, ['_'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1,
    ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1,
    ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1,
    ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1,
    ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

#define TOKEN_KEPT (sizeof ((stoken_t *)0)->val - 1)   /* the bytes of a word its token keeps */

/* libinjection's keyword table's type for the word w (0: not in it).  The table is a binary
 * search over ~9 000 entries (~1 100 Wasm instructions a lookup); the same words come back
 * in every request (a User-Agent's `Mozilla`, `Gecko`) and in every dotted argument name's
 * first parts (json.items.…), so the last answers are kept, found by a hash of the word's
 * length and its first and last four bytes.  The answer is a function of the word's bytes
 * alone (a static table), so it is kept across requests.  Longer words are looked up. */
static char keyword_type(const char *w, size_t n) {
    static struct { uint8_t n; char w[TOKEN_KEPT]; char type; } memo[256];
    if (!n || n > TOKEN_KEPT) return libinjection_sqli_lookup_word(NULL, LOOKUP_WORD, w, n);
    uint64_t x = n;
    if (n >= 4) {
        uint32_t first, last;
        memcpy(&first, w, 4);
        memcpy(&last, w + n - 4, 4);
        x ^= (uint64_t)first << 32 | last;
    } else {
        for (size_t k = 0; k < n; k++) x = x << 8 | (uint8_t)w[k];
    }
    __typeof__(memo[0]) *m = &memo[(x * 0x9E3779B97F4A7C15ull) >> 56];
    if (m->n == n && memcmp(m->w, w, n) == 0) return m->type;
    m->type = libinjection_sqli_lookup_word(NULL, LOOKUP_WORD, w, n);
    m->n = (uint8_t)n;
    memcpy(m->w, w, n);
    return m->type;
}

/* Whether the keyword table types w (the text before a '.', or a whole word) as anything
 * but a bareword ('n'). */
static bool keyword_prefix(const char *w, size_t n) {
    char t = keyword_type(w, n);
    return t != '\0' && t != 'n';
}

/* libinjection's lookup callback: words and operators from keyword_type's kept answers,
 * fingerprints by libinjection's own check (its lookup does no more). */
static char sqli_lookup(struct libinjection_sqli_state *sf, int type, const char *w, size_t n) {
    return type == LOOKUP_FINGERPRINT ? libinjection_sqli_lookup_word(sf, type, w, n) : keyword_type(w, n);
}

int sqli_detect(const char *s, size_t n, char fp[8]) {
    struct libinjection_sqli_state st;
    libinjection_sqli_init(&st, s, n, 0);
    libinjection_sqli_callback(&st, sqli_lookup, NULL);
    int is = libinjection_is_sqli(&st);
    if (is) strcpy(fp, st.fingerprint);
    else fp[0] = '\0';
    return is;
}

/* Whether w (the text before a word's first '.') begins one of the keyword table's dotted
 * entries (CTXSYS.DRITHSX.SN, DBMS_LOCK.SLEEP, SYS.STRAGG, …, thirteen in all): no other
 * dotted text is in the table, so after any other first part the lookups of the longer
 * dotted prefixes (json.items, json.items.7) are known to find nothing. */
static bool dotted_keyword_head(const char *w, size_t n) {
    static const char *const HEADS[] = {"CTXSYS", "DBMS_LOCK", "DBMS_PIPE", "DBMS_UTILITY", "SYS",
                                        "USER_LOCK", "UTL_HTTP", "UTL_INADDR"};
    for (size_t h = 0; h < sizeof HEADS / sizeof HEADS[0]; h++) {
        size_t k = 0;
        for (; k < n && HEADS[h][k] && (w[k] & ~0x20) == HEADS[h][k]; k++) {}   /* word bytes: caseless */
        if (k == n && !HEADS[h][k]) return true;
    }
    return false;
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
 *    first 31 bytes (what the token keeps) is looked up as libinjection does.
 * Two tokens: such a word that is a bareword (a word shorter than the token's 32 bytes is
 * looked up whole: `item`, not `select`), then spaces and digits only (`item 7`): the
 * fingerprint is "n1", which no fold rule changes and the fingerprint table does not hold.
 * One pass over the bytes, a table lookup each. */
bool sqli_impossible(wstr v) {
    if (!v.n) return true;
    const char *s = v.p;
    if (is_digit(s[0])) {
        for (size_t i = 1; i < v.n; i++)
            if (!is_digit(s[i])) return false;
        return true;
    }
    if (!is_alpha(s[0])) return false;
    /* the last value's text up to its last checked '.' (word bytes; no dotted prefix of it, nor
     * itself, a keyword): a value that starts with it and a '.' (the next field of the same
     * JSON object) is checked from there */
    static char known[TOKEN_KEPT];
    static size_t known_n;
    static bool known_plain;   /* known's first part begins no dotted keyword */
    size_t i = 0, kept = v.n < TOKEN_KEPT ? v.n : TOKEN_KEPT, dot = 0;
    bool plain = false;        /* the prefixes past the first '.' need no lookup */
    bool first = true;         /* the next '.' is the word's first */
    if (known_n && known_n < kept && s[known_n] == '.' && memcmp(s, known, known_n) == 0) {
        i = known_n + 1;
        plain = known_plain;
        first = false;
    }
    for (uint8_t t; i < kept && (t = WORD_BYTE[(uint8_t)s[i]]); i++) {
        if (t != 2) continue;
        if (!plain) {
            if (keyword_prefix(s, i)) return false;
            if (first) plain = !dotted_keyword_head(s, i);
        }
        first = false;
        dot = i;
    }
    if (dot) {
        memcpy(known, s, dot);
        known_n = dot;
        known_plain = plain;
    }
    if (i == kept)
        while (i < v.n && WORD_BYTE[(uint8_t)s[i]]) i++;
    if (i == v.n) return true;
    /* the word, then spaces and digits to the end */
    size_t j = i;
    while (j < v.n && s[j] == ' ') j++;
    if (j == i || j == v.n) return false;
    for (size_t k = j; k < v.n; k++)
        if (!is_digit(s[k])) return false;
    return i > TOKEN_KEPT || !keyword_prefix(s, i);
}
