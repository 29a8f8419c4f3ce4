/*
 * Checks filters/waf/inject.c against libinjection itself: every generated value the
 * shortcuts call impossible must be one libinjection_sqli / libinjection_xss reject.
 * Values are drawn from the pieces libinjection's parsers react to (keywords, quotes,
 * comments, operators, tag and attribute names, whitespace), so that many of them land
 * in the shortcuts' domain near its edges.  Usage: waf_inject_check N SEED; prints
 * "checked S X sqli_short S' xss_short X' mismatches M" and exits 1 on a mismatch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libinjection.h"
#include "libinjection_sqli.h"
#include "waf.h"

static unsigned long long rng;
static unsigned rnd(unsigned n) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)((rng >> 33) % n);
}

static const char *const PIECES[] = {
    "select", "union", "SELECT", "Union", "from", "where", "or", "and", "not", "NOT", "like",
    "sleep", "benchmark", "json", "items", "array_", "id", "name", "user", "char", "concat",
    "version", "sp_password", "into", "outfile", "null", "true", "case", "when", "drop",
    "table", "exec", "xp_cmdshell", "waitfor", "delay", "ascii", "substr", "sha1", "md5",
    "onerror", "onload", "onclick", "style", "href", "src", "xmlns", "xlink", "javascript:",
    "data:", "vbscript:", "script", "svg", "iframe", "import", "entity", "doctype", "[if",
    "e", "b", "n", "q", "u", "x", "N", "Q", "X", "0x", "0b", "1e", "1.", ".5", "1f", "1d",
    "0", "1", "7", "42", "123", "9999", "_", "__", ".", "..", "$", "@", "@@", "`", "'", "\"",
    "--", "#", "/*", "*/", "/", "\\", "(", ")", ",", ";", ":", "=", "<", ">", "!", "?", "%",
    "&", "&#", "|", "^", "~", "+", "-", "*", "[", "]", "{", "}", " ", "  ", "\t", "\n", "\r",
    "\v", "\f", "\xa0", "\x80", "\xff",
};
#define N_PIECES (sizeof PIECES / sizeof PIECES[0])

/* the keyword table's dotted entries, their first parts and tails in any case */
static const char *const DOTTED[] = {
    "sys", "SYS", "Sys", "sys.", "SYS.STRAGG", "sys.database_name", "dbms_lock", "DBMS_PIPE", "dbms_utility",
    "ctxsys", "CtxSys.drithsx", "user_lock", "utl_http", "UTL_INADDR", "utl_inaddr.get_host_name", "stragg",
    "database_name", "sleep", "request", "get_host_address", "drithsx", "sn", "receive_message",
    "fn_my_permissions", "sqlid_to_sqlhash", "sysx", "sy",
};
#define N_DOTTED (sizeof DOTTED / sizeof DOTTED[0])

static const char ALNUM[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.";

/* A word of pieces and word bytes, dotted, up to len bytes */
static size_t gen_word(char *out, size_t cap, size_t len) {
    size_t n = 0;
    while (n < len && n + 16 < cap) {
        if (rnd(3) == 0) {
            const char *p = rnd(4) ? PIECES[rnd(30)] : DOTTED[rnd(N_DOTTED)];
            size_t l = strlen(p);
            memcpy(out + n, p, l);
            n += l;
        } else {
            out[n++] = ALNUM[rnd(sizeof ALNUM - 1)];
        }
    }
    return n;
}

/* One value: pieces, or (often) letters, digits, '_' and '.' only, of every length up to ~40,
 * or such a word followed by whitespace and a number */
static size_t gen(char *out, size_t cap) {
    size_t n = 0;
    switch (rnd(5)) {
    case 0: {   /* digits */
        size_t len = 1 + rnd(20);
        for (size_t i = 0; i < len; i++) out[n++] = (char)('0' + rnd(10));
        break;
    }
    case 1: {   /* a word: pieces and word bytes, dotted; often the previous one's text up to
                 * one of its dots and a new tail (the fields of one JSON object) */
        static char prev[64];
        static size_t prev_n;
        const char *dot = prev_n && rnd(2) ? memchr(prev, '.', prev_n) : NULL;
        while (dot && rnd(2)) {
            const char *next = memchr(dot + 1, '.', prev_n - (size_t)(dot + 1 - prev));
            if (!next) break;
            dot = next;
        }
        if (dot) {
            n = (size_t)(dot - prev) + 1;
            memcpy(out, prev, n);
        }
        n += gen_word(out + n, cap - n, 1 + rnd(40 - (unsigned)(n < 40 ? n : 39)));
        prev_n = n < sizeof prev ? n : sizeof prev;
        memcpy(prev, out, prev_n);
        break;
    }
    case 2: {   /* a word, whitespace (mostly spaces), then a number (mostly digits) */
        static const char *const GAP[] = {" ", " ", " ", "  ", "\t", " \n", ""};
        static const char *const NUM[] = {"7", "42", "0", "123456", "0x1f", "1.5", "1e3", "-1", "7a", "7 ", ""};
        n = gen_word(out, cap, 1 + rnd(34));
        const char *g = GAP[rnd(sizeof GAP / sizeof GAP[0])], *d = NUM[rnd(sizeof NUM / sizeof NUM[0])];
        memcpy(out + n, g, strlen(g));
        n += strlen(g);
        memcpy(out + n, d, strlen(d));
        n += strlen(d);
        break;
    }
    default: {  /* anything */
        size_t k = 1 + rnd(8);
        for (size_t i = 0; i < k; i++) {
            const char *p = PIECES[rnd(N_PIECES)];
            size_t l = strlen(p);
            if (n + l >= cap) break;
            memcpy(out + n, p, l);
            n += l;
        }
    }
    }
    return n;
}

int main(int argc, char **argv) {
    long count = argc > 1 ? atol(argv[1]) : 1000000;
    rng = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    long sqli_short = 0, xss_short = 0, bad = 0;
    char buf[512];
    for (long k = 0; k < count; k++) {
        size_t n = gen(buf, sizeof buf);
        wstr v = {buf, n};
        if (sqli_impossible(v)) {
            sqli_short++;
            char fp[8];
            if (libinjection_sqli(buf, n, fp)) {
                bad++;
                fprintf(stderr, "sqli: %.*s (%s)\n", (int)n, buf, fp);
            }
        }
        if (xss_impossible(v)) {
            xss_short++;
            if (libinjection_xss(buf, n)) {
                bad++;
                fprintf(stderr, "xss: %.*s\n", (int)n, buf);
            }
        }
    }
    printf("checked %ld sqli_short %ld xss_short %ld mismatches %ld\n", count, sqli_short, xss_short, bad);
    return bad ? 1 : 0;
}
