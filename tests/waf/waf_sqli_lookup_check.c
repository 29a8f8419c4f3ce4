/*
 * Checks filters/waf/inject.c's sqli_detect (libinjection_sqli with its keyword lookups
 * answered from kept answers) against libinjection_sqli itself: the same verdict and the
 * same fingerprint on every generated value.  Values are SQL-ish token sequences drawn from
 * keywords (in every case), barewords, numbers, quotes, comments and operators, so that many
 * are injections and the kept answers are hit, missed and overwritten.
 * Usage: waf_sqli_lookup_check N SEED; prints "checked N sqli S mismatches M", exits 1 on a
 * mismatch.
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
    "select", "SELECT", "Select", "union", "UNION ALL", "from", "where", "or", "OR", "and", "not", "like",
    "sleep", "benchmark", "user", "char", "concat", "version", "into", "outfile", "null", "true", "case",
    "when", "drop", "table", "exec", "xp_cmdshell", "waitfor", "delay", "ascii", "substr", "@@version",
    "sys.stragg", "dbms_lock.sleep", "utl_http.request", "group by", "order by", "having", "limit",
    "Mozilla", "Gecko", "KHTML", "like", "AppleWebKit", "Chrome", "x86_64", "blue", "shoes", "items",
    "a", "b", "n", "x", "0x1f", "1e3", "1.5", "0", "1", "42", "'", "\"", "`", "--", "#", "/*", "*/",
    "(", ")", ",", ";", "=", "<", ">", "!=", "||", "&&", "+", "-", "*", "/", "%", "\\", "[", "]",
    " ", " ", " ", "  ", "\t", "\n",
};
#define N_PIECES (sizeof PIECES / sizeof PIECES[0])
static const char ALNUM[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";

/* how injections start (libinjection's fingerprints begin with a number, string or word) */
static const char *const LEADS[] = {"", "", "1 ", "1' ", "' ", "1\" ", "-1 ", "x' ", "admin'", "1)"};

static size_t gen(char *out, size_t cap) {
    const char *lead = LEADS[rnd(sizeof LEADS / sizeof LEADS[0])];
    size_t n = strlen(lead), pieces = 1 + rnd(6);
    memcpy(out, lead, n);
    for (size_t k = 0; k < pieces && n + 40 < cap; k++) {
        if (rnd(4)) {
            const char *p = PIECES[rnd(N_PIECES)];
            size_t l = strlen(p);
            memcpy(out + n, p, l);
            n += l;
        } else {   /* a random word: new keys for the kept answers (long ones too) */
            size_t l = 1 + rnd(36);
            for (size_t i = 0; i < l; i++) out[n++] = ALNUM[rnd(sizeof ALNUM - 1)];
        }
        if (rnd(2)) out[n++] = ' ';
    }
    return n;
}

int main(int argc, char **argv) {
    long total = argc > 1 ? atol(argv[1]) : 100000;
    rng = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    long sqli = 0, bad = 0;
    char buf[512];
    for (long i = 0; i < total; i++) {
        size_t n = gen(buf, sizeof buf);
        char want[8] = {0}, got[8] = {0};
        int w = libinjection_sqli(buf, n, want);
        int g = sqli_detect(buf, n, got);
        sqli += w != 0;
        if (w != g || strcmp(want, got) != 0) {
            if (bad++ < 10) fprintf(stderr, "%.*s: libinjection %d %s, sqli_detect %d %s\n", (int)n, buf, w, want, g, got);
        }
    }
    printf("checked %ld sqli %ld mismatches %ld\n", total, sqli, bad);
    return bad != 0;
}
