/* String helpers; see strutil.h. */
#include "strutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

pw_str pw_str_c(const char *s) {
    pw_str r = {s, s ? strlen(s) : 0};
    return r;
}

bool pw_str_eq(pw_str a, pw_str b) {
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

bool pw_str_ieq(pw_str a, pw_str b) {
    return a.n == b.n && (a.n == 0 || strncasecmp(a.p, b.p, a.n) == 0);
}

bool pw_str_starts_with(pw_str s, pw_str prefix) {
    return s.n >= prefix.n && (prefix.n == 0 || memcmp(s.p, prefix.p, prefix.n) == 0);
}

bool pw_str_ends_with_i(pw_str s, pw_str suffix) {
    return s.n >= suffix.n && (suffix.n == 0 || strncasecmp(s.p + s.n - suffix.n, suffix.p, suffix.n) == 0);
}

pw_str pw_str_trim(pw_str s) {
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.n--;
    }
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t')) s.n--;
    return s;
}

long pw_str_index(pw_str s, char c) {
    const char *hit = s.n ? memchr(s.p, c, s.n) : NULL;
    return hit ? (long)(hit - s.p) : -1;
}

pw_str pw_str_split(pw_str *rest, char sep) {
    long i = pw_str_index(*rest, sep);
    pw_str head = *rest;
    if (i < 0) {
        rest->p += rest->n;
        rest->n = 0;
        return head;
    }
    head.n = (size_t)i;
    rest->p += i + 1;
    rest->n -= (size_t)i + 1;
    return head;
}

char *pw_str_dup(pw_str s) {
    char *p = malloc(s.n + 1);
    if (!p) abort();
    if (s.n) memcpy(p, s.p, s.n);
    p[s.n] = 0;
    return p;
}

bool pw_query_get(pw_str query, const char *name, pw_str *value) {
    pw_str want = pw_str_c(name);
    while (query.n) {
        pw_str pair = pw_str_split(&query, '&');
        pw_str key = pw_str_split(&pair, '=');
        if (pw_str_eq(key, want)) {
            *value = pair;
            return true;
        }
    }
    return false;
}

bool pw_cookie_get(pw_str header, const char *name, pw_str *value) {
    pw_str want = pw_str_c(name);
    while (header.n) {
        pw_str pair = pw_str_trim(pw_str_split(&header, ';'));
        pw_str key = pw_str_trim(pw_str_split(&pair, '='));
        if (pw_str_eq(key, want)) {
            pw_str v = pw_str_trim(pair);
            if (v.n >= 2 && v.p[0] == '"' && v.p[v.n - 1] == '"') {
                v.p++;
                v.n -= 2;
            }
            *value = v;
            return true;
        }
    }
    return false;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

char *pw_url_decode(pw_str s, bool plus_space, size_t *out_len) {
    char *out = malloc(s.n + 1);
    if (!out) abort();
    size_t n = 0;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (c == '%' && i + 2 < s.n) {
            int hi = hexval(s.p[i + 1]), lo = hexval(s.p[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out[n++] = (char)(hi << 4 | lo);
                i += 2;
                continue;
            }
        }
        out[n++] = (plus_space && c == '+') ? ' ' : c;
    }
    out[n] = 0;
    if (out_len) *out_len = n;
    return out;
}

uint32_t pw_fnv1a(const void *data, size_t len) {
    const unsigned char *p = data;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

void pw_sb_append(pw_sb *sb, const char *data, size_t len) {
    if (sb->len + len + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 64;
        while (cap < sb->len + len + 1) cap *= 2;
        sb->data = realloc(sb->data, cap);
        if (!sb->data) abort();
        sb->cap = cap;
    }
    if (len) memcpy(sb->data + sb->len, data, len);
    sb->len += len;
    sb->data[sb->len] = 0;
}

void pw_sb_puts(pw_sb *sb, const char *s) { pw_sb_append(sb, s, strlen(s)); }

void pw_sb_printf(pw_sb *sb, const char *fmt, ...) {
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        pw_sb_append(sb, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) abort();
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    pw_sb_append(sb, big, (size_t)n);
    free(big);
}

void pw_sb_free(pw_sb *sb) {
    free(sb->data);
    sb->data = NULL;
    sb->len = sb->cap = 0;
}
