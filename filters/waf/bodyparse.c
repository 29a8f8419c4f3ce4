/* Request body parsers (bodyparse.h). */
#include "bodyparse.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "normalize.h"
#include "rules.h"

static bool istarts(const char *a, size_t an, const char *b) {
    size_t bn = strlen(b);
    if (an < bn) return false;
    for (size_t i = 0; i < bn; i++) {
        char x = a[i];
        if (x >= 'A' && x <= 'Z') x = (char)(x | 0x20);
        if (x != b[i]) return false;
    }
    return true;
}

static bool icontains(const char *a, size_t an, const char *b) {
    size_t bn = strlen(b);
    for (size_t i = 0; i + bn <= an; i++) if (istarts(a + i, an - i, b)) return true;
    return false;
}

waf_body_kind_t waf_body_kind(const char *ct, size_t n) {
    while (n && (*ct == ' ' || *ct == '\t')) { ct++; n--; }
    if (!ct || n == 0) return WAF_BODY_FORM;
    const char *semi = memchr(ct, ';', n);
    size_t base = semi ? (size_t)(semi - ct) : n;
    if (istarts(ct, base, "application/x-www-form-urlencoded")) return WAF_BODY_FORM;
    if (istarts(ct, base, "multipart/form-data")) return WAF_BODY_MULTIPART;
    if (icontains(ct, base, "json")) return WAF_BODY_JSON;
    if (icontains(ct, base, "xml")) return WAF_BODY_XML;
    if (istarts(ct, base, "image/") || istarts(ct, base, "video/") || istarts(ct, base, "audio/") ||
        istarts(ct, base, "font/") || istarts(ct, base, "application/octet-stream") ||
        istarts(ct, base, "application/zip") || istarts(ct, base, "application/pdf") ||
        istarts(ct, base, "application/gzip") || istarts(ct, base, "application/grpc"))
        return WAF_BODY_NONE;
    return WAF_BODY_TEXT;
}

static void parse_form(const char *s, size_t n, waf_value_cb cb, void *user) {
    size_t i = 0;
    while (i < n) {
        size_t st = i;
        while (i < n && s[i] != '&') i++;
        size_t plen = i - st;
        const char *part = s + st;
        i++;
        if (plen == 0) continue;
        const char *eq = memchr(part, '=', plen);
        size_t nlen = eq ? (size_t)(eq - part) : plen;
        char *buf = malloc(plen + 1);
        if (!buf) return;
        size_t dn = waf_url_decode(part, nlen, buf, true);
        cb(user, T_ARG_NAME, buf, dn);
        if (eq) {
            size_t vn = waf_url_decode(eq + 1, plen - nlen - 1, buf, true);
            cb(user, T_ARG, buf, vn);
        }
        free(buf);
    }
}

/* JSON: a tolerant scanner; strings that are object keys go out as names. */
static void parse_json(const char *s, size_t n, waf_value_cb cb, void *user) {
    char stack[64];
    int depth = 0;
    bool expect_key = false;
    char *buf = malloc(n + 1);
    if (!buf) return;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '{' || c == '[') {
            if (depth < 64) stack[depth] = c;
            depth++;
            expect_key = c == '{';
        } else if (c == '}' || c == ']') {
            if (depth > 0) depth--;
            expect_key = false;
        } else if (c == ',') {
            expect_key = depth > 0 && depth <= 64 && stack[depth - 1] == '{';
        } else if (c == ':') {
            expect_key = false;
        } else if (c == '"') {
            size_t o = 0, j = i + 1;
            while (j < n && s[j] != '"') {
                if (s[j] == '\\' && j + 1 < n) {
                    char e = s[j + 1];
                    if (e == 'n') buf[o++] = '\n';
                    else if (e == 't') buf[o++] = '\t';
                    else if (e == 'r') buf[o++] = '\r';
                    else if (e == 'u') { buf[o++] = '\\'; buf[o++] = 'u'; }  /* decoded by the normaliser */
                    else buf[o++] = e;
                    j += 2;
                    continue;
                }
                buf[o++] = s[j++];
            }
            cb(user, expect_key ? T_ARG_NAME : T_ARG, buf, o);
            i = j;
        }
    }
    free(buf);
}

static void xml_text(const char *s, size_t n, waf_value_cb cb, void *user) {
    while (n && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')) { s++; n--; }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == '\t')) n--;
    if (n) cb(user, T_ARG, s, n);
}

static void parse_xml(const char *s, size_t n, waf_value_cb cb, void *user) {
    size_t i = 0;
    while (i < n) {
        const char *lt = memchr(s + i, '<', n - i);
        size_t end = lt ? (size_t)(lt - s) : n;
        xml_text(s + i, end - i, cb, user);
        if (!lt) return;
        i = end;
        if (i + 9 <= n && memcmp(s + i, "<![CDATA[", 9) == 0) {
            size_t j = i + 9;
            while (j + 2 < n && !(s[j] == ']' && s[j + 1] == ']' && s[j + 2] == '>')) j++;
            xml_text(s + i + 9, (j < n ? j : n) - i - 9, cb, user);
            i = j + 3;
            continue;
        }
        if (i + 1 < n && (s[i + 1] == '!' || s[i + 1] == '?')) {
            /* declarations: DOCTYPE/ENTITY are inspected whole (XXE), <?xml ...?> is not data */
            size_t j = i + 1;
            int nest = 0;
            while (j < n && !(s[j] == '>' && nest == 0)) {
                if (s[j] == '[') nest++;
                else if (s[j] == ']') nest--;
                j++;
            }
            if (s[i + 1] == '!') cb(user, T_ARG, s + i, (j < n ? j + 1 : n) - i);
            else if (!(i + 5 <= n && istarts(s + i + 2, n - i - 2, "xml")))
                cb(user, T_ARG, s + i, (j < n ? j + 1 : n) - i);
            i = j + 1;
            continue;
        }
        /* element tag: emit attribute values */
        size_t j = i + 1;
        while (j < n && s[j] != '>') {
            if (s[j] == '"' || s[j] == '\'') {
                char q = s[j];
                const char *e = memchr(s + j + 1, q, n - j - 1);
                size_t ve = e ? (size_t)(e - s) : n;
                cb(user, T_ARG, s + j + 1, ve - j - 1);
                j = ve + 1;
                continue;
            }
            j++;
        }
        i = j + 1;
    }
}

static bool param_value(const char *ct, size_t n, const char *key, const char **v, size_t *vl) {
    size_t kl = strlen(key);
    for (size_t i = 0; i + kl < n; i++) {
        if (!istarts(ct + i, n - i, key) || ct[i + kl] != '=') continue;
        if (i > 0 && ct[i - 1] != ';' && ct[i - 1] != ' ') continue;
        const char *p = ct + i + kl + 1;
        size_t rest = n - i - kl - 1, L = 0;
        if (rest && *p == '"') {
            p++; rest--;
            while (L < rest && p[L] != '"') L++;
        } else {
            while (L < rest && p[L] != ';' && p[L] != ' ') L++;
        }
        *v = p; *vl = L;
        return L > 0;
    }
    return false;
}

static void parse_multipart(const char *ct, size_t ct_len, const char *s, size_t n, waf_value_cb cb, void *user) {
    const char *b; size_t bl;
    if (!param_value(ct, ct_len, "boundary", &b, &bl) || bl > 200) { cb(user, T_BODY, s, n); return; }
    char delim[208];
    delim[0] = '-'; delim[1] = '-';
    memcpy(delim + 2, b, bl);
    size_t dl = bl + 2;
    size_t i = 0;
    /* find each delimiter; the part runs to the next one */
    while (i < n) {
        size_t st = i;
        while (st + dl <= n && memcmp(s + st, delim, dl) != 0) st++;
        if (st + dl > n) return;
        size_t p = st + dl;
        if (p + 1 < n && s[p] == '-' && s[p + 1] == '-') return;
        while (p < n && (s[p] == '\r' || s[p] == '\n')) { p++; if (s[p - 1] == '\n') break; }
        size_t next = p;
        while (next + dl <= n && memcmp(s + next, delim, dl) != 0) next++;
        if (next + dl > n) next = n;
        /* headers end at the first blank line */
        size_t h = p, body = next;
        while (h < next) {
            size_t le = h;
            while (le < next && s[le] != '\n') le++;
            size_t line_len = le - h;
            if (line_len && s[h + line_len - 1] == '\r') line_len--;
            if (line_len == 0) { body = le + 1; break; }
            if (istarts(s + h, line_len, "content-disposition:")) {
                const char *v; size_t vl;
                if (param_value(s + h, line_len, "name", &v, &vl)) cb(user, T_ARG_NAME, v, vl);
                if (param_value(s + h, line_len, "filename", &v, &vl)) cb(user, T_FILENAME, v, vl);
            }
            h = le + 1;
        }
        size_t be = next;
        if (be > body && s[be - 1] == '\n') be--;
        if (be > body && s[be - 1] == '\r') be--;
        if (body < be) cb(user, T_ARG, s + body, be - body);
        i = next;
    }
}

void waf_parse_body(const char *ct, size_t ct_len, const char *body, size_t n, waf_value_cb cb, void *user) {
    switch (waf_body_kind(ct, ct ? ct_len : 0)) {
    case WAF_BODY_NONE: return;
    case WAF_BODY_FORM: parse_form(body, n, cb, user); return;
    case WAF_BODY_JSON: parse_json(body, n, cb, user); return;
    case WAF_BODY_MULTIPART: parse_multipart(ct, ct_len, body, n, cb, user); return;
    case WAF_BODY_XML: parse_xml(body, n, cb, user); return;
    case WAF_BODY_TEXT: {
        size_t k = 0;
        while (k < n && (body[k] == ' ' || body[k] == '\n' || body[k] == '\r' || body[k] == '\t')) k++;
        if (k < n && (body[k] == '{' || body[k] == '[')) parse_json(body, n, cb, user);
        cb(user, T_BODY, body, n);
        return;
    }
    }
}
