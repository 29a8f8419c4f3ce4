/*
 * SecLang transformations (t:...), byte for byte as ModSecurity v3 applies them,
 * including its edge cases (e.g. only the low byte of %uHHHH, full-width ASCII
 * folding, 1-6 digit CSS escapes), since CRS regexes are written against that
 * output.  Every function returns the input itself when nothing changes.
 * Layer: above util.c; below tcache.c and parse.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "waf.h"

#define NBSP 0xa0

static inline bool is_hex(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static inline int hexv(unsigned char c) {
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}
static inline unsigned char x2c(const char *p) {
    return (unsigned char)(hexv((unsigned char)p[0]) * 16 + hexv((unsigned char)p[1]));
}
static inline bool is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
static inline bool is_odigit(unsigned char c) { return c >= '0' && c <= '7'; }

static wstr t_lower(arena *a, wstr in) {
    size_t i = 0;
    while (i < in.n && !(in.p[i] >= 'A' && in.p[i] <= 'Z')) i++;
    if (i == in.n) return in;
    char *o = ar_alloc(a, in.n + 1);
    for (size_t k = 0; k < in.n; k++) {
        char c = in.p[k];
        o[k] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
    }
    return (wstr){o, in.n};
}

static wstr t_upper(arena *a, wstr in) {
    char *o = ar_alloc(a, in.n + 1);
    for (size_t k = 0; k < in.n; k++) {
        char c = in.p[k];
        o[k] = (c >= 'a' && c <= 'z') ? c - 32 : c;
    }
    return (wstr){o, in.n};
}

static wstr t_urldecode(arena *a, wstr in, bool uni) {
    if (!memchr(in.p, '%', in.n) && !memchr(in.p, '+', in.n)) return in;
    unsigned char *o = ar_alloc(a, in.n + 1), *d = o;
    const char *s = in.p;
    size_t n = in.n, i = 0;
    while (i < n) {
        /* eight bytes without '%' at once, each '+' made a ' ' (a form body is text with a
         * '+' every few bytes) */
        uint64_t w;
        if (i + 8 <= n && (memcpy(&w, s + i, 8), !bytes_eq(w, '%'))) {
            w ^= (bytes_eq(w, '+') >> 7) * ('+' ^ ' ');
            memcpy(d, &w, 8);
            d += 8;
            i += 8;
            continue;
        }
        if (s[i] == '%' && i + 1 < n) {
            if (uni && (s[i + 1] == 'u' || s[i + 1] == 'U')) {
                if (i + 5 < n && is_hex(s[i + 2]) && is_hex(s[i + 3]) && is_hex(s[i + 4]) && is_hex(s[i + 5])) {
                    unsigned char c = x2c(s + i + 4);
                    if (c > 0 && c < 0x5f && (s[i + 2] == 'f' || s[i + 2] == 'F') && (s[i + 3] == 'f' || s[i + 3] == 'F'))
                        c += 0x20;
                    *d++ = c;
                    i += 6;
                } else {
                    *d++ = s[i++];
                    *d++ = s[i++];
                }
            } else if (i + 2 < n && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
                *d++ = x2c(s + i + 1);
                i += 3;
            } else {
                *d++ = s[i++];
            }
        } else if (s[i] == '+') {
            *d++ = ' ';
            i++;
        } else {
            *d++ = s[i++];
        }
    }
    return (wstr){(char *)o, (size_t)(d - o)};
}

static wstr t_html(arena *a, wstr in) {
    if (!memchr(in.p, '&', in.n)) return in;
    unsigned char *o = ar_alloc(a, in.n + 1), *d = o;
    const unsigned char *s = (const unsigned char *)in.p;
    size_t n = in.n, i = 0;
    while (i < n) {
        /* text up to the next '&' is copied as it is, in one piece */
        const unsigned char *amp = memchr(s + i, '&', n - i);
        size_t run = amp ? (size_t)(amp - (s + i)) : n - i;
        memcpy(d, s + i, run);
        d += run;
        i += run;
        if (i == n) break;
        size_t copy = 1;
        if (s[i] == '&' && i + 1 < n) {
            size_t j = i + 1, k;
            if (s[j] == '#') {
                copy++;
                if (!(j + 1 < n)) goto out;
                j++;
                bool hex = false;
                if (s[j] == 'x' || s[j] == 'X') {
                    copy++;
                    if (!(j + 1 < n)) goto out;
                    j++;
                    hex = true;
                }
                k = j;
                unsigned long long v = 0;
                bool sat = false;
                while (j < n && (hex ? is_hex(s[j]) : (s[j] >= '0' && s[j] <= '9'))) {
                    if (!sat) {
                        v = v * (hex ? 16 : 10) + (unsigned)(hex ? hexv(s[j]) : s[j] - '0');
                        if (v > 0x7fffffffffffffffULL) sat = true;
                    }
                    j++;
                }
                if (j > k) {
                    *d++ = sat ? 0xff : (unsigned char)v;
                    i = (j < n && s[j] == ';') ? j + 1 : j;
                    continue;
                }
                goto out;
            } else {
                k = j;
                while (j < n && ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z') || (s[j] >= '0' && s[j] <= '9'))) j++;
                if (j > k) {
                    const char *e = (const char *)s + k;
                    size_t el = j - k;
                    int c = -1;
                    if (ieq(e, el, "quot", 4)) c = '"';
                    else if (ieq(e, el, "amp", 3)) c = '&';
                    else if (ieq(e, el, "lt", 2)) c = '<';
                    else if (ieq(e, el, "gt", 2)) c = '>';
                    else if (ieq(e, el, "nbsp", 4)) c = NBSP;
                    if (c < 0) { copy = j - k + 1; goto out; }
                    *d++ = (unsigned char)c;
                    i = (j < n && s[j] == ';') ? j + 1 : j;
                    continue;
                }
            }
        }
    out:
        for (size_t z = 0; z < copy && i < n; z++) *d++ = s[i++];
    }
    return (wstr){(char *)o, (size_t)(d - o)};
}

static wstr t_js(arena *a, wstr in) {
    if (!memchr(in.p, '\\', in.n)) return in;
    unsigned char *o = ar_alloc(a, in.n + 1), *d = o;
    const char *s = in.p;
    size_t n = in.n, i = 0;
    while (i < n) {
        if (s[i] != '\\') { *d++ = s[i++]; continue; }
        if (i + 5 < n && s[i + 1] == 'u' && is_hex(s[i + 2]) && is_hex(s[i + 3]) && is_hex(s[i + 4]) && is_hex(s[i + 5])) {
            unsigned char c = x2c(s + i + 4);
            if (c > 0 && c < 0x5f && (s[i + 2] == 'f' || s[i + 2] == 'F') && (s[i + 3] == 'f' || s[i + 3] == 'F')) c += 0x20;
            *d++ = c;
            i += 6;
        } else if (i + 3 < n && s[i + 1] == 'x' && is_hex(s[i + 2]) && is_hex(s[i + 3])) {
            *d++ = x2c(s + i + 2);
            i += 4;
        } else if (i + 1 < n && is_odigit(s[i + 1])) {
            char buf[4];
            int j = 0;
            while (i + 1 + j < n && j < 3) {
                buf[j] = s[i + 1 + j];
                j++;
                if (!(i + 1 + j < n) || !is_odigit(s[i + 1 + j])) break;
            }
            buf[j] = 0;
            if (j == 3 && buf[0] > '3') { j = 2; buf[j] = 0; }
            *d++ = (unsigned char)strtol(buf, NULL, 8);
            i += 1 + j;
        } else if (i + 1 < n) {
            unsigned char c = s[i + 1];
            switch (c) {
            case 'a': c = '\a'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'v': c = '\v'; break;
            default: break;
            }
            *d++ = c;
            i += 2;
        } else {
            while (i < n) *d++ = s[i++];
        }
    }
    return (wstr){(char *)o, (size_t)(d - o)};
}

static wstr t_css(arena *a, wstr in) {
    if (!memchr(in.p, '\\', in.n)) return in;
    unsigned char *o = ar_alloc(a, in.n + 1), *d = o;
    const char *s = in.p;
    size_t n = in.n, i = 0;
    while (i < n) {
        if (s[i] != '\\') { *d++ = s[i++]; continue; }
        if (!(i + 1 < n)) { i++; continue; }
        i++;
        size_t j = 0;
        while (j < 6 && i + j < n && is_hex(s[i + j])) j++;
        if (j > 0) {
            bool full = false;
            switch (j) {
            case 1: *d++ = (unsigned char)hexv(s[i]); break;
            case 2: case 3: *d++ = x2c(s + i + j - 2); break;
            case 4: *d = x2c(s + i + j - 2); full = true; break;
            case 5:
                *d = x2c(s + i + j - 2);
                if (s[i] == '0') full = true; else d++;
                break;
            case 6:
                *d = x2c(s + i + j - 2);
                if (s[i] == '0' && s[i + 1] == '0') full = true; else d++;
                break;
            }
            if (full) {
                if (*d > 0 && *d < 0x5f && (s[i + j - 3] == 'f' || s[i + j - 3] == 'F') &&
                    (s[i + j - 4] == 'f' || s[i + j - 4] == 'F'))
                    *d += 0x20;
                d++;
            }
            if (i + j < n && is_space((unsigned char)s[i + j])) j++;
            i += j;
        } else if (s[i] == '\n') {
            i++;
        } else {
            *d++ = s[i++];
        }
    }
    return (wstr){(char *)o, (size_t)(d - o)};
}

/* True when t_cmdline would return in as it is: nothing it deletes (`"'\\^`), replaces
 * (`,;\t\r\n`) or lowercases, and no ' ' it would fold (before another space, `/` or `(`). */
static bool cmdline_keeps(wstr in) {
    for (size_t i = 0; i < in.n; i++) {
        switch (in.p[i]) {
        case '"': case '\'': case '\\': case '^': case ',': case ';': case '\t': case '\r': case '\n':
            return false;
        case ' ':
            if (i + 1 < in.n && (in.p[i + 1] == ' ' || in.p[i + 1] == '/' || in.p[i + 1] == '(')) return false;
            break;
        default:
            if (in.p[i] >= 'A' && in.p[i] <= 'Z') return false;
        }
    }
    return true;
}

static wstr t_cmdline(arena *a, wstr in) {
    if (cmdline_keeps(in)) return in;
    char *o = ar_alloc(a, in.n + 1);
    size_t k = 0;
    bool space = false;
    for (size_t i = 0; i < in.n; i++) {
        char c = in.p[i];
        switch (c) {
        case '"': case '\'': case '\\': case '^':
            break;
        case ' ': case ',': case ';': case '\t': case '\r': case '\n':
            if (!space) { o[k++] = ' '; space = true; }
            break;
        case '/': case '(':
            if (space) k--;
            space = false;
            o[k++] = c;
            break;
        default:
            o[k++] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
            space = false;
        }
    }
    return (wstr){o, k};
}

/* True when the function would leave in unchanged: it holds no whitespace (NBSP
 * included), or with single_space_ok (compressWhitespace) only single ' ' characters,
 * which a run fold keeps as they are. */
static bool plain_spaces(wstr in, bool single_space_ok) {
    for (size_t i = 0; i < in.n; i++) {
        unsigned char c = (unsigned char)in.p[i];
        if (c == ' ' && single_space_ok && !(i + 1 < in.n && (is_space((unsigned char)in.p[i + 1]) || (unsigned char)in.p[i + 1] == NBSP)))
            continue;
        if (is_space(c) || c == NBSP) return false;
    }
    return true;
}

static wstr t_compress_ws(arena *a, wstr in) {
    if (plain_spaces(in, true)) return in;
    char *o = ar_alloc(a, in.n + 1);
    size_t k = 0;
    bool ws = false;
    for (size_t i = 0; i < in.n; i++) {
        unsigned char c = (unsigned char)in.p[i];
        if (is_space(c) || c == NBSP) {
            if (!ws) { o[k++] = ' '; ws = true; }
        } else {
            ws = false;
            o[k++] = (char)c;
        }
    }
    return (wstr){o, k};
}

static wstr t_remove_ws(arena *a, wstr in) {
    if (plain_spaces(in, false)) return in;
    char *o = ar_alloc(a, in.n + 1);
    size_t k = 0;
    for (size_t i = 0; i < in.n; i++) {
        unsigned char c = (unsigned char)in.p[i];
        if (!is_space(c) && c != NBSP) o[k++] = (char)c;
    }
    return (wstr){o, k};
}

static wstr t_nulls(arena *a, wstr in, bool replace) {
    if (!memchr(in.p, 0, in.n)) return in;
    char *o = ar_alloc(a, in.n + 1);
    size_t k = 0;
    for (size_t i = 0; i < in.n; i++) {
        if (in.p[i]) o[k++] = in.p[i];
        else if (replace) o[k++] = ' ';
    }
    return (wstr){o, k};
}

/* Whether in holds none of the comment marks the comment transformations act on:
 * "/" "*", "*" "/" (with star_slash), "--" and "#". */
static bool no_comment_marks(wstr in, bool star_slash) {
    for (size_t i = 0; i < in.n; i++) {
        char c = in.p[i], d = i + 1 < in.n ? in.p[i + 1] : 0;
        if (c == '#' || (c == '-' && d == '-') || (c == '/' && d == '*') || (star_slash && c == '*' && d == '/')) return false;
    }
    return true;
}

static wstr t_replace_comments(arena *a, wstr in) {
    if (!memmem(in.p, in.n, "/*", 2)) return in;
    char *o = ar_alloc(a, in.n + 2);
    size_t i = 0, j = 0, n = in.n;
    bool inc = false;
    const char *s = in.p;
    while (i < n) {
        if (!inc) {
            if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') { inc = true; i += 2; }
            else o[j++] = s[i++];
        } else {
            if (s[i] == '*' && i + 1 < n && s[i + 1] == '/') { inc = false; i += 2; o[j++] = ' '; }
            else i++;
        }
    }
    if (inc) o[j++] = ' ';
    return (wstr){o, j};
}

static wstr t_remove_comments(arena *a, wstr in) {
    if (no_comment_marks(in, false)) return in;
    char *o = ar_alloc(a, in.n + 2);
    size_t i = 0, j = 0, n = in.n;
    bool inc = false;
    const char *s = in.p;
    while (i < n) {
        if (!inc) {
            if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') { inc = true; i += 2; }
            else if (s[i] == '<' && i + 3 < n && s[i + 1] == '!' && s[i + 2] == '-' && s[i + 3] == '-') { inc = true; i += 4; }
            else if (s[i] == '-' && i + 1 < n && s[i + 1] == '-') break;
            else if (s[i] == '#') break;
            else o[j++] = s[i++];
        } else {
            if (s[i] == '*' && i + 1 < n && s[i + 1] == '/') {
                inc = false; i += 2;
                if (i < n) o[j++] = s[i++];
            } else if (s[i] == '-' && i + 2 < n && s[i + 1] == '-' && s[i + 2] == '>') {
                inc = false; i += 3;
                if (i < n) o[j++] = s[i++];
            } else i++;
        }
    }
    if (inc) o[j++] = ' ';
    return (wstr){o, j};
}

static wstr t_remove_comments_char(arena *a, wstr in) {
    if (no_comment_marks(in, true)) return in;
    char *o = ar_alloc(a, in.n + 1);
    size_t i = 0, j = 0, n = in.n;
    const char *s = in.p;
    while (i < n) {
        if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') i += 2;
        else if (s[i] == '*' && i + 1 < n && s[i + 1] == '/') i += 2;
        else if (s[i] == '<' && i + 3 < n && s[i + 1] == '!' && s[i + 2] == '-' && s[i + 3] == '-') i += 4;
        else if (s[i] == '-' && i + 2 < n && s[i + 1] == '-' && s[i + 2] == '>') i += 3;
        else if (s[i] == '-' && i + 1 < n && s[i + 1] == '-') i += 2;
        else if (s[i] == '#') i++;
        else o[j++] = s[i++];
    }
    return (wstr){o, j};
}

/* ModSecurity's normalize_path_inplace: resolves ./ ../ and // segments. */
static wstr t_normpath(arena *a, wstr in, bool win) {
    if (in.n == 0) return in;
    /* without a separator the path only changes when it ends in '.' */
    if (!memchr(in.p, '/', in.n) && !(win && memchr(in.p, '\\', in.n)) && in.p[in.n - 1] != '.') return in;
    unsigned char *buf = ar_alloc(a, in.n + 1);
    memcpy(buf, in.p, in.n);
    buf[in.n] = 0;
    unsigned char *src = buf, *dst = buf, *end = buf + in.n - 1, *input = buf;
    int hitroot = 0, done = 0;
    int relative = (*input == '/' || (win && *input == '\\')) ? 0 : 1;
    int trailing = (*end == '/' || (win && *end == '\\')) ? 1 : 0;
    while (!done && src <= end && dst <= end) {
        if (win) {
            if (*src == '\\') *src = '/';
            if (src < end && *(src + 1) == '\\') *(src + 1) = '/';
        }
        if (src == end) done = 1;
        else if (*(src + 1) != '/') goto copy;
        if (src != end && *src == '/') {
            goto copy;
        } else if (*src == '.') {
            if (dst > input && *(dst - 1) == '.') {
                if (relative && (hitroot || (dst - 2) <= input)) {
                    hitroot = 1;
                    goto copy;
                }
                dst -= 3;
                while (dst > input && *dst != '/') dst--;
                if (dst <= input) {
                    hitroot = 1;
                    dst = input;
                    if (!relative && src == end) dst++;
                }
                if (done) continue;
                src++;
            } else if (dst == input) {
                if (done) continue;
                src++;
            } else if (*(dst - 1) == '/') {
                if (done) continue;
                dst--;
                src++;
            }
        } else if (dst > input) {
            hitroot = 0;
        }
    copy:
        if (*src == '/') {
            while (src < end && (*(src + 1) == '/' || (win && *(src + 1) == '\\'))) src++;
            if (relative && dst == input) {
                src++;
                continue;
            }
        }
        *(dst++) = *(src++);
    }
    if (!trailing && dst > input && *(dst - 1) == '/') dst--;
    return (wstr){(char *)buf, (size_t)(dst - input)};
}

static wstr t_utf8_unicode(arena *a, wstr in) {
    size_t i = 0;
    while (i < in.n && !((unsigned char)in.p[i] & 0x80) && in.p[i]) i++;
    if (i == in.n) return in;
    char *o = ar_alloc(a, in.n * 7 + 1);
    size_t k = 0, n = in.n;
    const unsigned char *s = (const unsigned char *)in.p;
    for (i = 0; i < n;) {
        unsigned char c = s[i];
        int ulen = 0;
        unsigned d = 0;
        size_t left = n - i;
        if (!(c & 0x80)) {
            if (c) o[k++] = (char)c;
        } else if ((c & 0xE0) == 0xC0) {
            if (left < 2) ulen = -1;
            else if ((s[i + 1] & 0xC0) != 0x80) ulen = -1;
            else { ulen = 2; d = ((c & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu); }
        } else if ((c & 0xF0) == 0xE0) {
            if (left < 3) ulen = -1;
            else if ((s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) ulen = -1;
            else { ulen = 3; d = ((c & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu); }
        } else if ((c & 0xF8) == 0xF0) {
            if (left < 4) ulen = -1;
            else if ((s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80) ulen = -1;
            else {
                ulen = 4;
                d = ((c & 0x07u) << 18) | ((s[i + 1] & 0x3Fu) << 12) | ((s[i + 2] & 0x3Fu) << 6) | (s[i + 3] & 0x3Fu);
            }
        } else {
            o[k++] = (char)c;
        }
        if (ulen > 0) {
            char hex[16];
            int hl = snprintf(hex, sizeof hex, "%x", d);
            o[k++] = '%';
            o[k++] = 'u';
            for (int z = hl; z < 4; z++) o[k++] = '0';
            memcpy(o + k, hex, (size_t)hl);
            k += (size_t)hl;
        }
        if (d >= 0xD800 && d <= 0xDFFF) o[k++] = (char)c;
        if ((ulen == 4 && d < 0x10000) || (ulen == 3 && d < 0x800) || (ulen == 2 && d < 0x80)) o[k++] = (char)c;
        i += ulen > 0 ? (size_t)ulen : 1;
    }
    return (wstr){o, k};
}

/* base64Decode's byte classes: a digit's value (0-63, '-' and '_' as 62 and 63), or what
 * else the byte is to the decoder */
enum { B64_PAD = 64, B64_SPACE, B64_URLSAFE_62, B64_URLSAFE_63, B64_END, B64_BAD };
static uint8_t B64[256];
static bool b64_built;

static void b64_build(void) {
    memset(B64, B64_BAD, sizeof B64);
    static const char DIGITS[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; i++) B64[(uint8_t)DIGITS[i]] = (uint8_t)i;
    B64['-'] = B64_URLSAFE_62;
    B64['_'] = B64_URLSAFE_63;
    B64['='] = B64_PAD;
    B64[' '] = B64['\r'] = B64['\n'] = B64_SPACE;
    B64[0] = B64_END;   /* the text ends at its first NUL */
    b64_built = true;
}

/* Strict base64 (as mbedtls decodes it: whitespace allowed, anything else but the
 * alphabet and trailing '=' gives an empty result); `ext` is the forgiving variant
 * that skips invalid characters (and reads '-' and '_' as 62 and 63). */
static wstr t_b64dec(arena *a, wstr in, bool ext) {
    if (!b64_built) b64_build();
    char *o = NULL;
    size_t k = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < in.n; i++) {
        unsigned v = B64[(uint8_t)in.p[i]];
        if (v >= 64) {
            if (v == B64_URLSAFE_62 || v == B64_URLSAFE_63) {
                if (!ext) return (wstr){"", 0};
                v = v == B64_URLSAFE_62 ? 62 : 63;
            } else if (v == B64_END || (v == B64_PAD && !ext)) {
                break;
            } else if (v == B64_BAD && !ext) {
                return (wstr){"", 0};
            } else {
                continue;   /* whitespace; ext: '=' and invalid bytes */
            }
        }
        acc = (acc << 6) | v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (!o) o = ar_alloc(a, in.n - i + (size_t)k + 1);
            o[k++] = (char)((acc >> bits) & 0xff);
        }
    }
    return (wstr){o ? o : "", k};
}

static wstr t_b64enc(arena *a, wstr in) {
    static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = ar_alloc(a, (in.n + 2) / 3 * 4 + 1);
    size_t k = 0;
    const unsigned char *s = (const unsigned char *)in.p;
    for (size_t i = 0; i < in.n; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < in.n) v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < in.n) v |= s[i + 2];
        o[k++] = T[(v >> 18) & 63];
        o[k++] = T[(v >> 12) & 63];
        o[k++] = i + 1 < in.n ? T[(v >> 6) & 63] : '=';
        o[k++] = i + 2 < in.n ? T[v & 63] : '=';
    }
    return (wstr){o, k};
}

static wstr t_hexdec(arena *a, wstr in) {
    char *o = ar_alloc(a, in.n / 2 + 1);
    size_t k = 0;
    for (size_t i = 0; i + 1 < in.n; i += 2) o[k++] = (char)x2c(in.p + i);
    return (wstr){o, k};
}

static wstr t_hexenc(arena *a, wstr in) {
    static const char H[] = "0123456789abcdef";
    char *o = ar_alloc(a, in.n * 2 + 1);
    for (size_t i = 0; i < in.n; i++) {
        o[2 * i] = H[(unsigned char)in.p[i] >> 4];
        o[2 * i + 1] = H[(unsigned char)in.p[i] & 15];
    }
    return (wstr){o, in.n * 2};
}

static wstr t_sqlhex(arena *a, wstr in) {
    if (!memmem(in.p, in.n, "0x", 2) && !memmem(in.p, in.n, "0X", 2)) return in;
    char *o = ar_alloc(a, in.n + 1);
    size_t k = 0, i = 0, n = in.n;
    const char *s = in.p;
    while (i < n) {
        if (s[i] == '0' && i + 3 < n && (s[i + 1] == 'x' || s[i + 1] == 'X') && is_hex(s[i + 2]) && is_hex(s[i + 3])) {
            i += 2;
            while (i + 1 < n && is_hex(s[i]) && is_hex(s[i + 1])) { o[k++] = (char)x2c(s + i); i += 2; }
        } else {
            o[k++] = s[i++];
        }
    }
    return (wstr){o, k};
}

static wstr t_escape_seq(arena *a, wstr in) {
    if (!memchr(in.p, '\\', in.n)) return in;
    char *o = ar_alloc(a, in.n + 1);
    size_t k = 0, i = 0, n = in.n;
    const char *s = in.p;
    while (i < n) {
        if (s[i] == '\\' && i + 1 < n) {
            int c = -1;
            switch (s[i + 1]) {
            case 'a': c = '\a'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'v': c = '\v'; break;
            case '\\': c = '\\'; break;
            case '?': c = '?'; break;
            case '\'': c = '\''; break;
            case '"': c = '"'; break;
            default: break;
            }
            if (c != -1) i += 2;
            if (c == -1) {
                if (s[i + 1] == 'x' || s[i + 1] == 'X') {
                    if (i + 3 < n && is_hex(s[i + 2]) && is_hex(s[i + 3])) { c = x2c(s + i + 2); i += 4; }
                } else if (is_odigit(s[i + 1])) {
                    char buf[4];
                    int j = 0;
                    while (i + 1 + j < n && j < 3) {
                        buf[j] = s[i + 1 + j];
                        j++;
                        if (!(i + 1 + j < n) || !is_odigit(s[i + 1 + j])) break;
                    }
                    buf[j] = 0;
                    c = (int)(strtol(buf, NULL, 8) & 0xff);
                    i += 1 + (size_t)j;
                }
            }
            if (c == -1) {
                o[k++] = s[i + 1];
                i += 2;
            } else {
                o[k++] = (char)c;
            }
        } else {
            o[k++] = s[i++];
        }
    }
    return (wstr){o, k};
}

static wstr t_urlenc(arena *a, wstr in) {
    static const char H[] = "0123456789abcdef";
    char *o = ar_alloc(a, in.n * 3 + 1);
    size_t k = 0;
    for (size_t i = 0; i < in.n; i++) {
        unsigned char c = (unsigned char)in.p[i];
        if (c == ' ') o[k++] = '+';
        else if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '*' ||
                 c == '-' || c == '.' || c == '_')
            o[k++] = (char)c;
        else { o[k++] = '%'; o[k++] = H[c >> 4]; o[k++] = H[c & 15]; }
    }
    return (wstr){o, k};
}

static wstr t_trim(wstr in, bool left, bool right) {
    size_t s = 0, e = in.n;
    if (left) while (s < e && is_space((unsigned char)in.p[s])) s++;
    if (right) while (e > s && is_space((unsigned char)in.p[e - 1])) e--;
    return (wstr){in.p + s, e - s};
}

/* SHA-1 (FIPS 180-4), for t:sha1 */
static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static wstr t_sha1(arena *a, wstr in) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t total = ((in.n + 8) / 64 + 1) * 64;
    unsigned char *m = ar_alloc(a, total);
    memset(m, 0, total);
    memcpy(m, in.p, in.n);
    m[in.n] = 0x80;
    uint64_t bits = (uint64_t)in.n * 8;
    for (int i = 0; i < 8; i++) m[total - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t off = 0; off < total; off += 64) {
        uint32_t w[80];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)m[off + 4 * i] << 24 | (uint32_t)m[off + 4 * i + 1] << 16 |
                   (uint32_t)m[off + 4 * i + 2] << 8 | m[off + 4 * i + 3];
        for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t A = h[0], B = h[1], C = h[2], D = h[3], E = h[4];
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20) { f = (B & C) | (~B & D); k = 0x5A827999; }
            else if (i < 40) { f = B ^ C ^ D; k = 0x6ED9EBA1; }
            else if (i < 60) { f = (B & C) | (B & D) | (C & D); k = 0x8F1BBCDC; }
            else { f = B ^ C ^ D; k = 0xCA62C1D6; }
            uint32_t t = rol(A, 5) + f + E + k + w[i];
            E = D; D = C; C = rol(B, 30); B = A; A = t;
        }
        h[0] += A; h[1] += B; h[2] += C; h[3] += D; h[4] += E;
    }
    char *o = ar_alloc(a, 21);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++) o[4 * i + j] = (char)(h[i] >> (24 - 8 * j));
    return (wstr){o, 20};
}

wstr tfn_apply(arena *a, int t, wstr in) {
    switch (t) {
    case T_NONE: return in;
    case T_LOWERCASE: return t_lower(a, in);
    case T_UPPERCASE: return t_upper(a, in);
    case T_URLDECODE: return t_urldecode(a, in, false);
    case T_URLDECODEUNI: return t_urldecode(a, in, true);
    case T_HTMLENTITYDECODE: return t_html(a, in);
    case T_JSDECODE: return t_js(a, in);
    case T_CSSDECODE: return t_css(a, in);
    case T_CMDLINE: return t_cmdline(a, in);
    case T_COMPRESSWHITESPACE: return t_compress_ws(a, in);
    case T_REMOVEWHITESPACE: return t_remove_ws(a, in);
    case T_REMOVENULLS: return t_nulls(a, in, false);
    case T_REPLACENULLS: return t_nulls(a, in, true);
    case T_REPLACECOMMENTS: return t_replace_comments(a, in);
    case T_REMOVECOMMENTS: return t_remove_comments(a, in);
    case T_REMOVECOMMENTSCHAR: return t_remove_comments_char(a, in);
    case T_NORMALIZEPATH: return t_normpath(a, in, false);
    case T_NORMALIZEPATHWIN: return t_normpath(a, in, true);
    case T_UTF8TOUNICODE: return t_utf8_unicode(a, in);
    case T_BASE64DECODE: return t_b64dec(a, in, false);
    case T_BASE64DECODEEXT: return t_b64dec(a, in, true);
    case T_BASE64ENCODE: return t_b64enc(a, in);
    case T_HEXDECODE: return t_hexdec(a, in);
    case T_HEXENCODE: return t_hexenc(a, in);
    case T_SQLHEXDECODE: return t_sqlhex(a, in);
    case T_LENGTH: {   /* the decimal length, written by hand: snprintf is dear in Wasm */
        char d[24], *o = ar_alloc(a, 24);
        size_t n = 0, v = in.n;
        do d[n++] = (char)('0' + v % 10); while (v /= 10);
        for (size_t i = 0; i < n; i++) o[i] = d[n - 1 - i];
        o[n] = 0;
        return (wstr){o, n};
    }
    case T_TRIM: return t_trim(in, true, true);
    case T_TRIMLEFT: return t_trim(in, true, false);
    case T_TRIMRIGHT: return t_trim(in, false, true);
    case T_ESCAPESEQDECODE: return t_escape_seq(a, in);
    case T_URLENCODE: return t_urlenc(a, in);
    case T_SHA1: return t_sha1(a, in);
    default: return in;
    }
}

/* The bytes (and TFN_SPACE_PAIR, TFN_FINAL_DOT) each transformation acts on: it returns
 * every text holding none of them unchanged (see each function's early return above).
 * Built once; `never` for the transformations not listed (no such promise). */
static tfn_set ACTS[T_COUNT];
static bool NEVER[T_COUNT], acts_built;
/* the same as byte tables (TFN_ACTS_ANY, TFN_ACTS_LAST), for a test per value */
static uint8_t ACTS_BYTES[T_COUNT][256];

static void acts_add(tfn_set *s, unsigned b) { s->w[b >> 6] |= 1ull << (b & 63); }
static void acts_add_all(tfn_set *s, const char *bytes) {
    for (const char *c = bytes; *c; c++) acts_add(s, (uint8_t)*c);
}
static void acts_add_range(tfn_set *s, unsigned lo, unsigned hi) {
    for (unsigned b = lo; b <= hi; b++) acts_add(s, b);
}

static void acts_build(void) {
    static const char SPACES[] = " \t\n\v\f\r";
    for (int t = 0; t < T_COUNT; t++) {
        tfn_set *a = &ACTS[t];
        switch (t) {
        case T_NONE: break;
        case T_LOWERCASE: acts_add_range(a, 'A', 'Z'); break;
        case T_URLDECODE: case T_URLDECODEUNI: acts_add_all(a, "%+"); break;
        case T_HTMLENTITYDECODE: acts_add(a, '&'); break;
        case T_JSDECODE: case T_CSSDECODE: case T_ESCAPESEQDECODE: acts_add(a, '\\'); break;
        case T_REMOVENULLS: case T_REPLACENULLS: acts_add(a, 0); break;
        case T_UTF8TOUNICODE: acts_add_range(a, 0x80, 0xff); acts_add(a, 0); break;
        case T_REMOVEWHITESPACE: case T_TRIM: case T_TRIMLEFT: case T_TRIMRIGHT:
            acts_add_all(a, SPACES);
            acts_add(a, NBSP);
            break;
        case T_COMPRESSWHITESPACE:   /* plain_spaces(in, true): single ' ' only */
            acts_add_all(a, SPACES + 1);
            acts_add(a, NBSP);
            acts_add(a, TFN_SPACE_PAIR);
            break;
        case T_NORMALIZEPATH:   /* t_normpath: no separator, no final '.' */
            acts_add(a, '/');
            acts_add(a, TFN_FINAL_DOT);
            break;
        case T_NORMALIZEPATHWIN: acts_add_all(a, "/\\"); acts_add(a, TFN_FINAL_DOT); break;
        case T_REPLACECOMMENTS: acts_add(a, '*'); break;
        case T_REMOVECOMMENTS: case T_REMOVECOMMENTSCHAR: acts_add_all(a, "#-*"); break;
        case T_SQLHEXDECODE: acts_add_all(a, "xX"); break;
        case T_CMDLINE:   /* cmdline_keeps: no byte it deletes, replaces or lowercases, no ' ' */
            acts_add_all(a, "\"'\\^,; \t\r\n");
            acts_add_range(a, 'A', 'Z');
            break;
        default: NEVER[t] = true;
        }
        for (unsigned b = 0; b < 256; b++)
            if ((a->w[b >> 6] >> (b & 63)) & 1) ACTS_BYTES[t][b] = TFN_ACTS_ANY;
        /* compressWhitespace acts on a ' ' only before another: its table says any ' ' */
        if ((a->w[TFN_SPACE_PAIR >> 6] >> (TFN_SPACE_PAIR & 63)) & 1) ACTS_BYTES[t][' '] = TFN_ACTS_ANY;
        if ((a->w[TFN_FINAL_DOT >> 6] >> (TFN_FINAL_DOT & 63)) & 1) ACTS_BYTES[t]['.'] |= TFN_ACTS_LAST;
    }
    acts_built = true;
}

bool tfn_keeps(int t, const tfn_set *present) {
    if (!acts_built) acts_build();
    if (t <= 0 || t >= T_COUNT || NEVER[t]) return false;
    const tfn_set *a = &ACTS[t];
    return !((a->w[0] & present->w[0]) | (a->w[1] & present->w[1]) | (a->w[2] & present->w[2]) |
             (a->w[3] & present->w[3]) | (a->w[4] & present->w[4]));
}

uint64_t tfn_keeps_all(const tfn_set *present) {
    if (!acts_built) acts_build();
    uint64_t keeps = 0;
    for (int t = 1; t < T_COUNT; t++) {
        const tfn_set *a = &ACTS[t];
        if (!NEVER[t] && !((a->w[0] & present->w[0]) | (a->w[1] & present->w[1]) | (a->w[2] & present->w[2]) |
                           (a->w[3] & present->w[3]) | (a->w[4] & present->w[4])))
            keeps |= 1ull << t;
    }
    return keeps;
}

const uint8_t *tfn_acts(int t) {
    if (!acts_built) acts_build();
    return t <= 0 || t >= T_COUNT || NEVER[t] ? NULL : ACTS_BYTES[t];
}

static const struct { const char *name; int id; } TFNS[] = {
    {"none", T_NONE}, {"lowercase", T_LOWERCASE}, {"uppercase", T_UPPERCASE},
    {"urlDecode", T_URLDECODE}, {"urlDecodeUni", T_URLDECODEUNI},
    {"htmlEntityDecode", T_HTMLENTITYDECODE}, {"jsDecode", T_JSDECODE}, {"cssDecode", T_CSSDECODE},
    {"cmdLine", T_CMDLINE}, {"compressWhitespace", T_COMPRESSWHITESPACE},
    {"removeWhitespace", T_REMOVEWHITESPACE}, {"removeNulls", T_REMOVENULLS},
    {"replaceNulls", T_REPLACENULLS}, {"replaceComments", T_REPLACECOMMENTS},
    {"removeComments", T_REMOVECOMMENTS}, {"removeCommentsChar", T_REMOVECOMMENTSCHAR},
    {"normalizePath", T_NORMALIZEPATH}, {"normalisePath", T_NORMALIZEPATH},
    {"normalizePathWin", T_NORMALIZEPATHWIN}, {"normalisePathWin", T_NORMALIZEPATHWIN},
    {"utf8toUnicode", T_UTF8TOUNICODE}, {"base64Decode", T_BASE64DECODE},
    {"base64DecodeExt", T_BASE64DECODEEXT}, {"base64Encode", T_BASE64ENCODE},
    {"hexDecode", T_HEXDECODE}, {"hexEncode", T_HEXENCODE}, {"sqlHexDecode", T_SQLHEXDECODE},
    {"length", T_LENGTH}, {"trim", T_TRIM}, {"trimLeft", T_TRIMLEFT}, {"trimRight", T_TRIMRIGHT},
    {"escapeSeqDecode", T_ESCAPESEQDECODE}, {"urlEncode", T_URLENCODE}, {"sha1", T_SHA1},
};

int tfn_lookup(const char *name, size_t n) {
    for (size_t i = 0; i < sizeof TFNS / sizeof TFNS[0]; i++)
        if (ieq(name, n, TFNS[i].name, strlen(TFNS[i].name))) return TFNS[i].id;
    return 0;
}

const char *tfn_name(int t) {
    for (size_t i = 0; i < sizeof TFNS / sizeof TFNS[0]; i++)
        if (TFNS[i].id == t) return TFNS[i].name;
    return "?";
}
