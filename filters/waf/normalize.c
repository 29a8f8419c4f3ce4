/* Normalisation views for the WAF engine (see normalize.h). */
#include "normalize.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DECODE_ROUNDS 4

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool is_ws(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Encode a code point as UTF-8, folding the ASCII look-alikes attackers use
 * (fullwidth forms, smart quotes) straight to ASCII. Returns bytes written. */
static size_t put_cp(char *out, uint32_t cp) {
    if (cp >= 0xFF01 && cp <= 0xFF5E) cp -= 0xFEE0;          /* fullwidth ASCII */
    else if (cp == 0x2018 || cp == 0x2019 || cp == 0x02BC) cp = '\'';
    else if (cp == 0x201C || cp == 0x201D) cp = '"';
    else if (cp == 0x00A0 || cp == 0x3000) cp = ' ';
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    if (cp > 0x10FFFF) cp = 0xFFFD;
    out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t waf_url_decode(const char *in, size_t n, char *out, bool plus_space) {
    size_t i = 0, o = 0;
    while (i < n) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%' && i + 2 < n && hexval(in[i + 1]) >= 0 && hexval(in[i + 2]) >= 0) {
            out[o++] = (char)(hexval(in[i + 1]) * 16 + hexval(in[i + 2]));
            i += 3;
        } else if (c == '%' && i + 5 < n && (in[i + 1] == 'u' || in[i + 1] == 'U') &&
                   hexval(in[i + 2]) >= 0 && hexval(in[i + 3]) >= 0 &&
                   hexval(in[i + 4]) >= 0 && hexval(in[i + 5]) >= 0) {
            uint32_t cp = (uint32_t)(hexval(in[i + 2]) << 12 | hexval(in[i + 3]) << 8 |
                                     hexval(in[i + 4]) << 4 | hexval(in[i + 5]));
            o += put_cp(out + o, cp);
            i += 6;
        } else {
            out[o++] = (plus_space && c == '+') ? ' ' : (char)c;
            i++;
        }
    }
    return o;
}

typedef struct { const char *name; unsigned char len; unsigned char ch; } entity;
static const entity ENTITIES[] = {
    {"lt", 2, '<'}, {"gt", 2, '>'}, {"amp", 3, '&'}, {"quot", 4, '"'}, {"apos", 4, '\''},
    {"tab", 3, '\t'}, {"newline", 7, '\n'}, {"colon", 5, ':'}, {"nbsp", 4, ' '},
    {"lpar", 4, '('}, {"rpar", 4, ')'}, {"sol", 3, '/'}, {"bsol", 4, '\\'}, {"semi", 4, ';'},
    {"comma", 5, ','}, {"period", 6, '.'}, {"equals", 6, '='}, {"lsqb", 4, '['},
    {"rsqb", 4, ']'}, {"lbrace", 6, '{'}, {"rbrace", 6, '}'}, {"grave", 5, '`'},
    {"excl", 4, '!'}, {"num", 3, '#'}, {"dollar", 6, '$'}, {"percnt", 6, '%'},
    {"plus", 4, '+'}, {"ast", 3, '*'}, {"vert", 4, '|'}, {"quest", 5, '?'},
};

size_t waf_html_decode(const char *in, size_t n, char *out) {
    size_t i = 0, o = 0;
    while (i < n) {
        if (in[i] != '&' || i + 2 >= n) { out[o++] = in[i++]; continue; }
        size_t j = i + 1;
        if (in[j] == '#') {
            j++;
            bool hex = j < n && (in[j] == 'x' || in[j] == 'X');
            if (hex) j++;
            uint32_t cp = 0; size_t digits = 0;
            while (j < n && digits < 8) {
                int v = hexval((unsigned char)in[j]);
                if (v < 0 || (!hex && v > 9)) break;
                cp = cp * (hex ? 16 : 10) + (uint32_t)v; j++; digits++;
            }
            while (j < n && digits >= 8 && hexval((unsigned char)in[j]) >= 0) j++;
            if (digits == 0) { out[o++] = in[i++]; continue; }
            if (j < n && in[j] == ';') j++;
            o += put_cp(out + o, cp);
            i = j;
            continue;
        }
        bool done = false;
        for (size_t e = 0; e < sizeof ENTITIES / sizeof ENTITIES[0]; e++) {
            size_t L = ENTITIES[e].len;
            if (j + L > n) continue;
            size_t k = 0;
            while (k < L && (in[j + k] | 0x20) == ENTITIES[e].name[k]) k++;
            if (k != L) continue;
            size_t end = j + L;
            bool semi = end < n && in[end] == ';';
            /* without ';' only when the entity is not the prefix of a longer word */
            if (!semi && end < n && ((in[end] | 0x20) >= 'a' && (in[end] | 0x20) <= 'z')) continue;
            out[o++] = (char)ENTITIES[e].ch;
            i = end + (semi ? 1 : 0);
            done = true;
            break;
        }
        if (!done) out[o++] = in[i++];
    }
    return o;
}

size_t waf_js_decode(const char *in, size_t n, char *out) {
    size_t i = 0, o = 0;
    while (i < n) {
        if (in[i] == '\\' && i + 1 < n) {
            char t = in[i + 1];
            if ((t == 'u' || t == 'U') && i + 5 < n && hexval(in[i + 2]) >= 0 && hexval(in[i + 3]) >= 0 &&
                hexval(in[i + 4]) >= 0 && hexval(in[i + 5]) >= 0) {
                uint32_t cp = (uint32_t)(hexval(in[i + 2]) << 12 | hexval(in[i + 3]) << 8 |
                                         hexval(in[i + 4]) << 4 | hexval(in[i + 5]));
                o += put_cp(out + o, cp);
                i += 6;
                continue;
            }
            if (t == 'u' && i + 3 < n && in[i + 2] == '{') {
                size_t j = i + 3; uint32_t cp = 0; size_t digits = 0;
                while (j < n && digits < 6 && hexval(in[j]) >= 0) { cp = cp * 16 + (uint32_t)hexval(in[j]); j++; digits++; }
                if (digits && j < n && in[j] == '}') { o += put_cp(out + o, cp); i = j + 1; continue; }
            }
            if ((t == 'x' || t == 'X') && i + 3 < n && hexval(in[i + 2]) >= 0 && hexval(in[i + 3]) >= 0) {
                out[o++] = (char)(hexval(in[i + 2]) * 16 + hexval(in[i + 3]));
                i += 4;
                continue;
            }
        }
        out[o++] = in[i++];
    }
    return o;
}

/* Decode UTF-8 look-alikes to ASCII, drop NULs, lower-case ASCII. */
static size_t fold(const char *in, size_t n, char *out, bool *had_nul) {
    size_t i = 0, o = 0;
    while (i < n) {
        unsigned char c = (unsigned char)in[i];
        if (c == 0) { *had_nul = true; i++; continue; }
        if (c >= 0xC2 && c <= 0xEF && i + 1 < n) {
            uint32_t cp; size_t len;
            if (c < 0xE0) { cp = (uint32_t)(c & 0x1F) << 6 | ((unsigned char)in[i + 1] & 0x3F); len = 2; }
            else if (i + 2 < n) {
                cp = (uint32_t)(c & 0x0F) << 12 | (uint32_t)((unsigned char)in[i + 1] & 0x3F) << 6 |
                     ((unsigned char)in[i + 2] & 0x3F);
                len = 3;
            } else { out[o++] = (char)c; i++; continue; }
            bool cont = ((unsigned char)in[i + 1] & 0xC0) == 0x80 &&
                        (len == 2 || ((unsigned char)in[i + 2] & 0xC0) == 0x80);
            if (cont) {
                char tmp[4];
                size_t w = put_cp(tmp, cp);
                if (w == 1) { out[o++] = (char)((tmp[0] >= 'A' && tmp[0] <= 'Z') ? tmp[0] | 0x20 : tmp[0]); i += len; continue; }
                memmove(out + o, in + i, len); o += len; i += len; /* in-place: may overlap */
                continue;
            }
        }
        out[o++] = (char)((c >= 'A' && c <= 'Z') ? c | 0x20 : c);
        i++;
    }
    return o;
}

/* SQL view: comments removed (MySQL "/\*!50000 ..." keeps its content), whitespace compressed. */
static size_t sql_compact(const char *in, size_t n, char *out) {
    size_t i = 0, o = 0;
    bool space = false;
    while (i < n) {
        if (in[i] == '/' && i + 1 < n && in[i + 1] == '*') {
            if (i + 2 < n && in[i + 2] == '!') {          /* executable comment */
                i += 3;
                while (i < n && in[i] >= '0' && in[i] <= '9') i++;
                space = true;
                continue;
            }
            size_t j = i + 2;
            while (j + 1 < n && !(in[j] == '*' && in[j + 1] == '/')) j++;
            i = (j + 1 < n) ? j + 2 : n;
            space = true;
            continue;
        }
        if (in[i] == '*' && i + 1 < n && in[i + 1] == '/') { i += 2; space = true; continue; }
        if (is_ws((unsigned char)in[i])) { space = true; i++; continue; }
        if (space && o > 0) out[o++] = ' ';
        space = false;
        out[o++] = in[i++];
    }
    return o;
}

static bool starts(const char *p, size_t n, const char *lit) {
    size_t L = strlen(lit);
    return n >= L && memcmp(p, lit, L) == 0;
}

/* Command-line view: drop shell quoting/escaping noise so "c''a\t" reads "cat". */
static size_t shell_view(const char *in, size_t n, char *out) {
    size_t i = 0, o = 0;
    bool space = false;
    while (i < n) {
        unsigned char c = (unsigned char)in[i];
        if (c == '\\' || c == '\'' || c == '"' || c == '^') { i++; continue; }
        if (c == '$' && i + 1 < n && (in[i + 1] == '@' || in[i + 1] == '*')) { i += 2; continue; }
        if (c == '$' && starts(in + i, n - i, "${ifs}")) { i += 6; space = true; continue; }
        if (c == '$' && starts(in + i, n - i, "$ifs")) { i += 4; space = true; continue; }
        if (is_ws(c) || c == ',') { space = true; i++; continue; }
        if (space && o > 0) out[o++] = ' ';
        space = false;
        out[o++] = (char)c;
        i++;
    }
    return o;
}

/* Whitespace- and comment-free view. */
static size_t squeeze(const char *in, size_t n, char *out) {
    size_t i = 0, o = 0;
    while (i < n) {
        if (in[i] == '/' && i + 1 < n && in[i + 1] == '*') {
            size_t j = i + 2;
            while (j + 1 < n && !(in[j] == '*' && in[j + 1] == '/')) j++;
            i = (j + 1 < n) ? j + 2 : n;
            continue;
        }
        if (is_ws((unsigned char)in[i])) { i++; continue; }
        out[o++] = in[i++];
    }
    return o;
}

bool waf_normalize(const char *in, size_t n, waf_norm *v) {
    memset(v, 0, sizeof *v);
    size_t cap = n + 8;
    char *a = malloc(cap), *b = malloc(cap);
    v->c = malloc(cap); v->s = malloc(cap); v->w = malloc(cap);
    if (!a || !b || !v->c || !v->s || !v->w) {
        free(a); free(b); waf_norm_free(v); return false;
    }
    memcpy(a, in, n);
    size_t len = n;
    /* every decoding step strictly shrinks what it decodes, so equal lengths mean stable */
    for (int round = 0; round < MAX_DECODE_ROUNDS; round++) {
        size_t l1 = waf_url_decode(a, len, b, false);
        size_t l2 = waf_html_decode(b, l1, a);
        size_t l3 = waf_js_decode(a, l2, b);
        char *tmp = a; a = b; b = tmp;
        bool stable = l3 == len;
        len = l3;
        if (stable) break;
        v->had_encoding = true;
    }
    free(b);
    v->d = a;
    v->dn = fold(a, len, a, &v->had_nul);
    v->d[v->dn] = 0;
    v->cn = sql_compact(v->d, v->dn, v->c); v->c[v->cn] = 0;
    v->sn = shell_view(v->d, v->dn, v->s); v->s[v->sn] = 0;
    v->wn = squeeze(v->d, v->dn, v->w); v->w[v->wn] = 0;
    return true;
}

void waf_norm_free(waf_norm *v) {
    free(v->d); free(v->c); free(v->s); free(v->w);
    memset(v, 0, sizeof *v);
}
