/*
 * Compiled patterns (above util.c; below every unit that compiles or matches one): PCRE2
 * compiles an @rx, a target's `/regex/` key or a ctl tag pattern with the engine's options
 * (DOTALL|MULTILINE, as ModSecurity), the literal patterns are recognised for a fast path,
 * and pcre2_match_simple matches without a transaction (keys, tags, the first pass's checks).
 * Matching with captures and match limits needs the transaction: rx_match, operator.c.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcre2.h"
#include "waf.h"

/* Unanchored ASCII text (escaped punctuation allowed) whose last character may carry `*`,
 * `?` or `+`: a subject matches exactly when it contains the text without that optional
 * character (CRS 922110's key regex `MULTIPART_HEADERS_CONTENT_TYPES_*`, tried on
 * every TX key of every request). */
static void rx_literal_any(regex *re, const char *pat, size_t n) {
    char *o = malloc(n + 1);
    if (!o) abort();
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = pat[i];
        if (c == '\\' && i + 1 < n && !isalnum((unsigned char)pat[i + 1])) {
            c = pat[++i];
        } else if (strchr("\\^$.|?*+()[]{}", c)) {
            if (i + 1 != n || !strchr("*?+", c) || !k) { free(o); return; }
            if (c != '+') k--;
            break;
        }
        if ((unsigned char)c >= 0x80) { free(o); return; }
        o[k++] = c;
    }
    if (!k) { free(o); return; }
    o[k] = 0;
    re->lit = (wstr){o, k};
    re->lit_mode = RX_LIT_ANY;
}

/* ^lit or ^lit$ where lit has no metacharacters (escaped punctuation allowed); else ^lit
 * followed by more pattern (no alternation anywhere): lit is what every match starts with */
static void rx_literal(regex *re, const char *pat, size_t n) {
    re->lit_mode = RX_LIT_NONE;
    if (n && pat[0] != '^') { rx_literal_any(re, pat, n); return; }
    if (n < 2) return;
    bool exact = pat[n - 1] == '$' && !(n >= 3 && pat[n - 2] == '\\');
    size_t end = exact ? n - 1 : n;
    char *o = malloc(end + 1);
    if (!o) abort();
    size_t k = 0;
    for (size_t i = 1; i < end; i++) {
        char c = pat[i];
        if (c == '\\' && i + 1 < end && !isalnum((unsigned char)pat[i + 1])) {
            c = pat[++i];
        } else if (strchr("\\^$.|?*+()[]{}", c)) {
            /* a quantifier applies to the literal's last character */
            if (k && strchr("?*{", c)) k--;
            if (k && !memchr(pat, '|', n)) {
                o[k] = 0;
                re->lit = (wstr){o, k};
                re->lit_mode = RX_LIT_LEAD;
                return;
            }
            free(o);
            return;
        }
        o[k++] = c;
    }
    o[k] = 0;
    re->lit = (wstr){o, k};
    re->lit_mode = exact ? RX_LIT_EXACT : RX_LIT_PREFIX;
}

bool rx_compile(regex *out, const char *pat, size_t n, bool caseless, char *err, size_t err_len) {
    int code;
    PCRE2_SIZE off;
    uint32_t opts = PCRE2_DOTALL | PCRE2_MULTILINE | (caseless ? PCRE2_CASELESS : 0);
    out->code = (rx_code *)pcre2_compile((PCRE2_SPTR)pat, n, opts, &code, &off, NULL);
    out->src = (wstr){pat, n};
    out->lit_mode = RX_LIT_NONE;
    out->match_all = n == 4 && memcmp(pat, "^.*$", 4) == 0;
    if (caseless && out->code) rx_literal(out, pat, n);
    if (!out->code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        snprintf(err, err_len, "invalid regular expression at offset %zu: %s", (size_t)off, (char *)msg);
        return false;
    }
    return true;
}

void rx_free(regex *re) {
    if (re->code) pcre2_code_free((pcre2_code *)re->code);
    re->code = NULL;
    if (re->lit_mode) free((void *)re->lit.p);
    re->lit_mode = RX_LIT_NONE;
}


/* One-off match without a transaction (configure time: tags, messages). */
bool pcre2_match_simple(const regex *re, wstr s) {
    if (re->lit_mode == RX_LIT_ANY) {   /* caseless: ASCII letters fold, as PCRE2's default tables */
        wstr l = re->lit;
        for (size_t i = 0; i + l.n <= s.n; i++)
            if ((s.p[i] | 0x20) == (l.p[0] | 0x20) && ieq(s.p + i, l.n, l.p, l.n)) return true;
        return false;
    }
    /* a literal pattern (caseless, multiline: only for subjects without a newline) */
    if (re->lit_mode && !(s.n && memchr(s.p, '\n', s.n))) {
        if (s.n < re->lit.n || (re->lit_mode == RX_LIT_EXACT && s.n != re->lit.n)) return false;
        bool lead = ieq(s.p, re->lit.n, re->lit.p, re->lit.n);
        if (re->lit_mode != RX_LIT_LEAD || !lead) return lead;
    }
    static pcre2_match_data *md;   /* one engine per Wasm instance: never used concurrently */
    if (!md && !(md = pcre2_match_data_create(1, NULL))) return false;
    int rc = pcre2_match((pcre2_code *)re->code, (PCRE2_SPTR)(s.p ? s.p : ""), s.n, 0, 0, md, NULL);
    return rc >= 0;
}
