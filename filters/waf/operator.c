/*
 * SecLang operators (@rx, @pm, @detectSQLi, ...): compiled once per rule,
 * evaluated per value.  @rx runs on PCRE2 (DOTALL|MULTILINE, as ModSecurity),
 * with the ruleset's match limits: a value that hits a limit does not match,
 * and the hit is counted (TX:MSC_PCRE_LIMITS_EXCEEDED, the filter's metric).
 * @pm / @pmFromFile use a case-insensitive Aho-Corasick automaton (ac.c).
 * Layer: above expand.c (macros), tx.c (captures), rx.c, ac.c and inject.c; below
 * exec.c and parse.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libinjection.h"
#include "pcre2.h"
#include "waf.h"
#include "expand.h"

/* ------------------------------------------------------------------ regex */

/* >0: match (number of ovector pairs), 0: no match, <0: error (limit). */
int rx_match(waf_tx *tx, const regex *re, wstr subject, bool want_captures) {
    pcre2_match_data *md = tx->match_data;
    int rc = pcre2_match((pcre2_code *)re->code, (PCRE2_SPTR)(subject.p ? subject.p : ""), subject.n, 0, 0, md,
                         tx->match_ctx);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT) {
            tx->pcre_limit_hits++;
            tx_set_var(tx, V_TX, WSTR("MSC_PCRE_LIMITS_EXCEEDED"), WSTR("1"));
        }
        return -1;
    }
    if (want_captures) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        int n = rc > 10 ? 10 : rc;
        for (int i = 0; i < n; i++) {
            if (ov[2 * i] == PCRE2_UNSET) continue;
            size_t s = ov[2 * i], e = ov[2 * i + 1];
            if (e < s || e > subject.n) continue;
            char k[2] = {(char)('0' + i), 0};
            tx_set_var(tx, V_TX, (wstr){k, 1}, (wstr){ar_dup(&tx->a, subject.p + s, e - s), e - s});
        }
    }
    return rc == 0 ? 1 : rc;
}

/* A phrase into the automaton, and into `rx` (the phrases back to back, each after its
 * length as a uint32_t) for firstpass.c. */
static void pm_phrase(ac_automaton *ac, wbuf *rx, const char *p, size_t n) {
    ac_add(ac, p, n);
    uint32_t len = (uint32_t)n;
    wb_put(rx, (const char *)&len, sizeof len);
    wb_put(rx, p, n);
}

/* Phrases of @pm: whitespace-separated, double quotes removed, |hex| bytes decoded. */
static bool pm_parse(ac_automaton *ac, wbuf *rx, const char *p, size_t n, char *err, size_t err_len) {
    char *buf = malloc(n + 1);
    if (!buf) abort();
    size_t k = 0;
    bool in_hex = false;
    /* strip one pair of enclosing quotes */
    if (n >= 2 && p[0] == '"' && p[n - 1] == '"') { p++; n -= 2; }
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '|') { in_hex = !in_hex; continue; }
        if (in_hex) {
            if (c == ' ') continue;
            if (i + 1 < n) {
                char hx[3] = {c, p[i + 1], 0};
                char *endp;
                long v = strtol(hx, &endp, 16);
                if (*endp) { free(buf); snprintf(err, err_len, "@pm: invalid hex byte '%s'", hx); return false; }
                buf[k++] = (char)v;
                i++;
                continue;
            }
            free(buf);
            snprintf(err, err_len, "@pm: unterminated hex sequence");
            return false;
        }
        if (c == '\\' && i + 1 < n) { buf[k++] = p[++i]; continue; }
        buf[k++] = c;
    }
    size_t s = 0;
    while (s < k) {
        while (s < k && (buf[s] == ' ' || buf[s] == '\t' || buf[s] == '\n' || buf[s] == '\r')) s++;
        size_t e = s;
        while (e < k && !(buf[e] == ' ' || buf[e] == '\t' || buf[e] == '\n' || buf[e] == '\r')) e++;
        if (e > s) pm_phrase(ac, rx, buf + s, e - s);
        s = e;
    }
    free(buf);
    return true;
}

static const waf_file *find_file(const char *dir, const char *name, size_t n, const waf_file *files, int n_files) {
    char path[512];
    if (n && name[0] == '/') snprintf(path, sizeof path, "%.*s", (int)n, name);
    else snprintf(path, sizeof path, "%s%s%.*s", dir, *dir ? "/" : "", (int)n, name);
    /* resolve "./" and "../" segments */
    char norm[512];
    size_t k = 0;
    const char *s = path;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == 0 || (len == 1 && s[0] == '.')) {
        } else if (len == 2 && s[0] == '.' && s[1] == '.') {
            while (k > 0 && norm[k - 1] != '/') k--;
            if (k > 0) k--;
        } else {
            if (k) norm[k++] = '/';
            memcpy(norm + k, s, len);
            k += len;
        }
        s += len + (e ? 1 : 0);
    }
    norm[k] = 0;
    for (int i = 0; i < n_files; i++)
        if (files[i].name.n == k && memcmp(files[i].name.p, norm, k) == 0) return &files[i];
    return NULL;
}

static bool pm_from_files(ac_automaton *ac, wbuf *rx, const char *p, size_t n, const char *dir,
                          const waf_file *files, int n_files, char *err, size_t err_len) {
    size_t s = 0;
    int count = 0;
    while (s < n) {
        while (s < n && (p[s] == ' ' || p[s] == '\t')) s++;
        size_t e = s;
        while (e < n && p[e] != ' ' && p[e] != '\t') e++;
        if (e == s) break;
        const waf_file *f = find_file(dir, p + s, e - s, files, n_files);
        if (!f) {
            snprintf(err, err_len, "@pmFromFile: file '%.*s' not found (relative to '%s'; the host passes "
                     "the files of the stage's `files` option)", (int)(e - s), p + s, dir);
            return false;
        }
        const char *t = f->text, *end = f->text + f->len;
        while (t < end) {
            const char *nl = memchr(t, '\n', (size_t)(end - t));
            const char *le = nl ? nl : end;
            size_t ll = (size_t)(le - t);
            if (ll && t[ll - 1] == '\r') ll--;
            if (ll && t[0] != '#') pm_phrase(ac, rx, t, ll);
            t = nl ? nl + 1 : end;
        }
        count++;
        s = e;
    }
    if (!count) { snprintf(err, err_len, "@pmFromFile: no file named"); return false; }
    return true;
}

/* ------------------------------------------------------------------ ip match */

static bool parse_ip(const char *s, size_t n, uint8_t out[16], bool *v6) {
    char buf[64];
    if (n >= sizeof buf) return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    memset(out, 0, 16);
    if (!memchr(buf, ':', n)) {
        /* four dot-separated decimals of up to three digits (REMOTE_ADDR): by hand; anything
         * else as sscanf reads it (spaces, signs) */
        unsigned part[4], k = 0, digits = 0, acc = 0;
        size_t i = 0;
        for (; i < n; i++) {
            char ch = buf[i];
            if (ch >= '0' && ch <= '9' && digits < 3) { acc = acc * 10 + (unsigned)(ch - '0'); digits++; continue; }
            if (ch != '.' || !digits || k == 3) break;
            part[k++] = acc;
            acc = digits = 0;
        }
        if (i == n && k == 3 && digits) {
            part[3] = acc;
            if (part[0] > 255 || part[1] > 255 || part[2] > 255 || part[3] > 255) return false;
            for (int j = 0; j < 4; j++) out[j] = (uint8_t)part[j];
            *v6 = false;
            return true;
        }
        unsigned a, b, c, d;
        char tail;
        if (sscanf(buf, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) != 4 || a > 255 || b > 255 || c > 255 || d > 255)
            return false;
        out[0] = (uint8_t)a; out[1] = (uint8_t)b; out[2] = (uint8_t)c; out[3] = (uint8_t)d;
        *v6 = false;
        return true;
    }
    /* IPv6: groups with one optional "::" */
    uint16_t g[8] = {0};
    int ng = 0, gap = -1;
    const char *q = buf;
    if (q[0] == ':' && q[1] == ':') { gap = 0; q += 2; }
    while (*q) {
        char *endp;
        unsigned long v = strtoul(q, &endp, 16);
        if (endp == q || v > 0xffff || ng >= 8) return false;
        g[ng++] = (uint16_t)v;
        q = endp;
        if (*q == ':') {
            if (q[1] == ':') { if (gap >= 0) return false; gap = ng; q += 2; }
            else q++;
        } else if (*q) return false;
    }
    uint16_t full[8] = {0};
    if (gap >= 0) {
        for (int i = 0; i < gap; i++) full[i] = g[i];
        for (int i = gap; i < ng; i++) full[8 - (ng - i)] = g[i];
    } else {
        if (ng != 8) return false;
        memcpy(full, g, sizeof g);
    }
    for (int i = 0; i < 8; i++) { out[2 * i] = (uint8_t)(full[i] >> 8); out[2 * i + 1] = (uint8_t)full[i]; }
    *v6 = true;
    return true;
}

static bool ip_in(const ip_net *net, const uint8_t a[16], bool v6) {
    if (net->v6 != v6) return false;
    int bits = net->bits;
    for (int i = 0; bits > 0; i++, bits -= 8) {
        uint8_t mask = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));
        if ((a[i] & mask) != (net->addr[i] & mask)) return false;
    }
    return true;
}

static bool ip_compile(oper *o, const char *p, size_t n, char *err, size_t err_len) {
    o->nets = calloc(n / 2 + 2, sizeof(ip_net));
    if (!o->nets) abort();
    size_t s = 0;
    while (s < n) {
        while (s < n && (p[s] == ',' || p[s] == ' ')) s++;
        size_t e = s;
        while (e < n && p[e] != ',' && p[e] != ' ') e++;
        if (e == s) break;
        const char *slash = memchr(p + s, '/', e - s);
        size_t al = slash ? (size_t)(slash - (p + s)) : e - s;
        ip_net *net = &o->nets[o->n_nets];
        if (!parse_ip(p + s, al, net->addr, &net->v6)) {
            snprintf(err, err_len, "@ipMatch: invalid address '%.*s'", (int)(e - s), p + s);
            return false;
        }
        net->bits = net->v6 ? 128 : 32;
        if (slash) {
            int b = atoi(slash + 1);
            if (b < 0 || b > net->bits) { snprintf(err, err_len, "@ipMatch: invalid prefix length"); return false; }
            net->bits = b;
        }
        o->n_nets++;
        s = e;
    }
    return true;
}

/* ------------------------------------------------------------------ validators */

static bool byte_range_compile(oper *o, const char *p, size_t n, char *err, size_t err_len) {
    memset(o->byte_ok, 0, sizeof o->byte_ok);
    size_t s = 0;
    while (s < n) {
        while (s < n && (p[s] == ',' || p[s] == ' ')) s++;
        if (s >= n) break;
        char *endp;
        long lo = strtol(p + s, &endp, 10), hi = lo;
        if (endp == p + s) { snprintf(err, err_len, "@validateByteRange: invalid range"); return false; }
        s = (size_t)(endp - p);
        if (s < n && p[s] == '-') {
            hi = strtol(p + s + 1, &endp, 10);
            s = (size_t)(endp - p);
        }
        if (lo < 0 || hi > 255 || lo > hi) { snprintf(err, err_len, "@validateByteRange: invalid range"); return false; }
        for (long b = lo; b <= hi; b++) o->byte_ok[b >> 3] |= (uint8_t)(1u << (b & 7));
    }
    int floor = 256;
    while (floor > 0 && (o->byte_ok[(floor - 1) >> 3] & (1u << ((floor - 1) & 7)))) floor--;
    o->byte_floor = floor >= 1 && floor <= 128 ? (uint8_t)floor : 0;
    return true;
}

static bool url_encoding_invalid(wstr v) {
    for (size_t i = 0; i < v.n;) {
        if (v.p[i] == '%') {
            if (i + 2 >= v.n) return true;
            unsigned char a = (unsigned char)v.p[i + 1], b = (unsigned char)v.p[i + 2];
            bool ha = (a >= '0' && a <= '9') || (a >= 'a' && a <= 'f') || (a >= 'A' && a <= 'F');
            bool hb = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F');
            if (!ha || !hb) return true;
            i += 3;
        } else i++;
    }
    return false;
}

static bool utf8_invalid(wstr v) {
    const unsigned char *s = (const unsigned char *)v.p;
    for (size_t i = 0; i < v.n;) {
        /* ASCII eight bytes a step (CRS 920250 sees every argument, mostly ASCII) */
        uint64_t x;
        if (i + 8 <= v.n && (memcpy(&x, s + i, 8), !(x & 0x8080808080808080ull))) { i += 8; continue; }
        unsigned char c = s[i];
        size_t left = v.n - i;
        unsigned d;
        int len;
        if (!(c & 0x80)) { i++; continue; }
        if ((c & 0xE0) == 0xC0) {
            if (left < 2 || (s[i + 1] & 0xC0) != 0x80) return true;
            len = 2; d = ((c & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu);
            if (d < 0x80) return true;
        } else if ((c & 0xF0) == 0xE0) {
            if (left < 3 || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return true;
            len = 3; d = ((c & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu);
            if (d < 0x800) return true;
        } else if ((c & 0xF8) == 0xF0) {
            if (left < 4 || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80) return true;
            len = 4;
            d = ((c & 0x07u) << 18) | ((s[i + 1] & 0x3Fu) << 12) | ((s[i + 2] & 0x3Fu) << 6) | (s[i + 3] & 0x3Fu);
            if (d < 0x10000 || d > 0x10FFFF) return true;
        } else return true;
        if (d >= 0xD800 && d <= 0xDFFF) return true;
        i += (size_t)len;
    }
    return false;
}

static bool luhn(wstr v) {
    int sum[2] = {0, 0}, odd = 0, digits = 0;
    static const int dbl[10] = {0, 2, 4, 6, 8, 1, 3, 5, 7, 9};
    for (size_t i = v.n; i-- > 0;) {
        char c = v.p[i];
        if (c < '0' || c > '9') continue;
        sum[0] += odd ? dbl[c - '0'] : c - '0';
        sum[1] += odd ? c - '0' : dbl[c - '0'];
        odd = 1 - odd;
        digits++;
    }
    return digits && sum[0] % 10 == 0;
}

/* ------------------------------------------------------------------ table, compile */

static const struct { const char *name; int id; } OPS[] = {
    {"rx", OP_RX}, {"pm", OP_PM}, {"pmf", OP_PMFROMFILE}, {"pmFromFile", OP_PMFROMFILE},
    {"streq", OP_STREQ}, {"contains", OP_CONTAINS}, {"containsWord", OP_CONTAINSWORD},
    {"beginsWith", OP_BEGINSWITH}, {"endsWith", OP_ENDSWITH}, {"within", OP_WITHIN},
    {"eq", OP_EQ}, {"ge", OP_GE}, {"gt", OP_GT}, {"le", OP_LE}, {"lt", OP_LT},
    {"ipMatch", OP_IPMATCH}, {"ipMatchF", OP_IPMATCHFROMFILE}, {"ipMatchFromFile", OP_IPMATCHFROMFILE},
    {"validateByteRange", OP_VALIDATEBYTERANGE}, {"validateUrlEncoding", OP_VALIDATEURLENCODING},
    {"validateUtf8Encoding", OP_VALIDATEUTF8ENCODING}, {"unconditionalMatch", OP_UNCONDITIONAL},
    {"noMatch", OP_NOMATCH}, {"detectSQLi", OP_DETECTSQLI}, {"detectXSS", OP_DETECTXSS},
    {"strmatch", OP_STRMATCH}, {"rbl", OP_RBL}, {"geoLookup", OP_GEOLOOKUP},
    {"verifyCC", OP_VERIFYCC},
};

int op_lookup(const char *name, size_t n) {
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
        if (ieq(name, n, OPS[i].name, strlen(OPS[i].name))) return OPS[i].id;
    return 0;
}

bool op_compile(waf_rules *r, rule *ru, const char *param, size_t n, const char *dir, const waf_file *files,
                int n_files, char *err, size_t err_len) {
    oper *o = &ru->op;
    if (!macro_parse(&r->mem, &o->param, param, n, err, err_len)) return false;
    switch (o->kind) {
    case OP_RX:
    case OP_VERIFYCC:
        if (!o->param.has_macro) {
            if (!rx_compile(&o->rx, param, n, false, err, err_len)) return false;
            r->n_regex++;
        }
        return true;
    case OP_PM:
    case OP_PMFROMFILE:
    case OP_IPMATCHFROMFILE: {
        if (o->kind == OP_IPMATCHFROMFILE) {
            const waf_file *f = find_file(dir, param, n, files, n_files);
            if (!f) { snprintf(err, err_len, "@ipMatchFromFile: file '%.*s' not found", (int)n, param); return false; }
            wbuf b = {0};
            for (size_t i = 0; i < f->len; i++) {
                char c = f->text[i];
                wb_putc(&b, (c == '\n' || c == '\r') ? ',' : c);
            }
            bool ok = ip_compile(o, b.p ? b.p : "", b.n, err, err_len);
            wb_free(&b);
            o->kind = OP_IPMATCH;
            return ok;
        }
        ac_automaton *ac = ac_create();
        wbuf rx = {0};
        bool ok = o->kind == OP_PM ? pm_parse(ac, &rx, param, n, err, err_len)
                                   : pm_from_files(ac, &rx, param, n, dir, files, n_files, err, err_len);
        if (!ok) { ac_destroy(ac); wb_free(&rx); return false; }
        ac_finalize(ac);
        o->ac = ac;
        o->pm_phrases = (wstr){rx.p, rx.n};
        return true;
    }
    case OP_IPMATCH:
        return ip_compile(o, param, n, err, err_len);
    case OP_VALIDATEBYTERANGE:
        return byte_range_compile(o, param, n, err, err_len);
    case OP_EQ: case OP_GE: case OP_GT: case OP_LE: case OP_LT:
        if (!o->param.has_macro) {
            parse_num((wstr){param, n}, &o->num);
            o->num_static = true;
        }
        return true;
    case OP_RBL: case OP_GEOLOOKUP:
    default:
        return true;
    }
}

void op_free(oper *o) {
    rx_free(&o->rx);
    free((void *)o->pm_phrases.p);
    o->pm_phrases = (wstr){0};
    ac_destroy(o->ac);
    o->ac = NULL;
    free(o->nets);
    o->nets = NULL;
}

/* ------------------------------------------------------------------ evaluation */

/* The first occurrence of needle in hay.  Candidates are found by the needle's second byte:
 * @within lists separate their words by a delimiter that also starts the needle (CRS
 * 920450's `/%{tx.0}/` in `/content-encoding/ /proxy/ ...`), so its first byte is
 * everywhere in the list. */
static bool find_sub(wstr hay, wstr needle, size_t *at) {
    if (needle.n == 0) { *at = 0; return true; }
    if (needle.n > hay.n) return false;
    size_t k = needle.n >= 2, last = hay.n - needle.n;   /* candidate starts: 0..last */
    for (size_t i = 0; i <= last; i++) {
        const char *p = memchr(hay.p + i + k, needle.p[k], last + 1 - i);
        if (!p) return false;
        i = (size_t)(p - hay.p) - k;
        if (memcmp(hay.p + i, needle.p, needle.n) == 0) { *at = i; return true; }
    }
    return false;
}

static bool is_word(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

/* Evaluate the operator (without negation); *md gets the matched data (for logging). */
static bool op_eval(waf_tx *tx, const rule *ru, wstr v, wstr *md) {
    const oper *o = &ru->op;
    wstr p = macro_expand(tx, &o->param);
    size_t at = 0, len = 0;
    switch (o->kind) {
    case OP_RX: {
        if (o->param.has_macro) {
            regex re;
            char err[200];
            if (!rx_compile(&re, p.p, p.n, false, err, sizeof err)) return false;
            int rc = rx_match(tx, &re, v, ru->capture);
            rx_free(&re);
            if (rc > 0) *md = v;
            return rc > 0;
        }
        if (o->rx.match_all) {   /* what PCRE2 would answer: all of v, as TX.0 when capturing */
            if (ru->capture) tx_set_var(tx, V_TX, WSTR("0"), (wstr){ar_dup(&tx->a, v.p, v.n), v.n});
            *md = v;
            return true;
        }
        int rc = rx_match(tx, &o->rx, v, ru->capture);
        if (rc > 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(tx->match_data);
            if (ov[0] <= ov[1] && ov[1] <= v.n) *md = (wstr){v.p + ov[0], ov[1] - ov[0]};
        }
        return rc > 0;
    }
    case OP_PM:
    case OP_PMFROMFILE:
        if (!ac_first(o->ac, v, &at, &len)) return false;
        *md = (wstr){v.p + at, len};
        if (ru->capture) tx_set_var(tx, V_TX, WSTR("0"), (wstr){ar_dup(&tx->a, md->p, md->n), md->n});
        return true;
    case OP_STREQ:
        *md = v;
        return v.n == p.n && memcmp(v.p, p.p, p.n) == 0;
    case OP_CONTAINS:
    case OP_STRMATCH:
        if (!find_sub(v, p, &at)) return false;
        *md = (wstr){v.p + at, p.n};
        return true;
    case OP_CONTAINSWORD: {
        if (p.n == 0) return true;
        size_t off = 0;
        while (off < v.n) {
            wstr rest = {v.p + off, v.n - off};
            if (!find_sub(rest, p, &at)) return false;
            size_t s = off + at, e = s + p.n;
            if ((s == 0 || !is_word((unsigned char)v.p[s - 1])) && (e == v.n || !is_word((unsigned char)v.p[e]))) {
                *md = (wstr){v.p + s, p.n};
                return true;
            }
            off = s + 1;
        }
        return false;
    }
    case OP_BEGINSWITH:
        *md = p;
        return v.n >= p.n && memcmp(v.p, p.p, p.n) == 0;
    case OP_ENDSWITH:
        *md = p;
        return v.n >= p.n && memcmp(v.p + v.n - p.n, p.p, p.n) == 0;
    case OP_WITHIN:
        *md = v;
        if (v.n == 0) return true;
        return find_sub(p, v, &at);
    case OP_EQ: case OP_GE: case OP_GT: case OP_LE: case OP_LT: {
        long long a, b;
        parse_num(v, &a);
        if (o->num_static) b = o->num; else parse_num(p, &b);
        *md = v;
        switch (o->kind) {
        case OP_EQ: return a == b;
        case OP_GE: return a >= b;
        case OP_GT: return a > b;
        case OP_LE: return a <= b;
        default: return a < b;
        }
    }
    case OP_IPMATCH: {
        uint8_t addr[16];
        bool v6;
        if (!parse_ip(v.p, v.n, addr, &v6)) return false;
        for (int i = 0; i < o->n_nets; i++)
            if (ip_in(&o->nets[i], addr, v6)) { *md = v; return true; }
        return false;
    }
    case OP_VALIDATEBYTERANGE: {
        size_t i = 0;
        if (o->byte_floor) {
            /* eight bytes a step while none is below the floor (CRS 920270: 1-255) */
            const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
            for (uint64_t x; i + 8 <= v.n; i += 8) {
                memcpy(&x, v.p + i, 8);
                if ((x - ones * o->byte_floor) & ~x & highs) break;
            }
        }
        for (; i < v.n; i++) {
            unsigned char c = (unsigned char)v.p[i];
            if (!(o->byte_ok[c >> 3] & (1u << (c & 7)))) { *md = (wstr){v.p + i, 1}; return true; }
        }
        return false;
    }
    case OP_VALIDATEURLENCODING:
        *md = v;
        return url_encoding_invalid(v);
    case OP_VALIDATEUTF8ENCODING:
        *md = v;
        return utf8_invalid(v);
    case OP_UNCONDITIONAL:
        *md = v;
        return true;
    case OP_NOMATCH:
        return false;
    case OP_DETECTSQLI: {
        char fp[8] = {0};
        if (sqli_impossible(v) || !sqli_detect(v.p ? v.p : "", v.n, fp)) return false;
        size_t fl = strlen(fp);
        *md = (wstr){ar_dup(&tx->a, fp, fl), fl};
        if (ru->capture) tx_set_var(tx, V_TX, WSTR("0"), *md);
        return true;
    }
    case OP_DETECTXSS:
        *md = v;
        return !xss_impossible(v) && libinjection_xss(v.p ? v.p : "", v.n) != 0;
    case OP_VERIFYCC: {
        if (!o->rx.code) return false;
        size_t off = 0;
        while (off < v.n) {
            wstr sub = {v.p + off, v.n - off};
            int rc = rx_match(tx, &o->rx, sub, false);
            if (rc <= 0) return false;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(tx->match_data);
            wstr m = {sub.p + ov[0], ov[1] - ov[0]};
            if (m.n && luhn(m)) { *md = m; return true; }
            off += ov[1] > ov[0] ? ov[1] : ov[0] + 1;
        }
        return false;
    }
    default:
        return false;
    }
}


static inline bool has_byte(const tfn_set *s, unsigned b) { return (s->w[b >> 6] >> (b & 63)) & 1; }

/* Each answer is the operator's own test on any value of those bytes: libinjection's XSS
 * parse reports nothing without '<' or '=' (xss_impossible), ASCII is valid UTF-8, there is
 * no invalid %-encoding without '%', and a byte range misses text of allowed bytes only. */
bool op_misses_bytes(const oper *o, const tfn_set *present) {
    if (o->negate || o->param.has_macro) return false;
    switch (o->kind) {
    case OP_DETECTXSS: return !has_byte(present, '<') && !has_byte(present, '=');
    case OP_VALIDATEUTF8ENCODING: return !(present->w[2] | present->w[3]);
    case OP_VALIDATEURLENCODING: return !has_byte(present, '%');
    case OP_VALIDATEBYTERANGE:
        for (int k = 0; k < 4; k++)
            for (uint64_t w = present->w[k]; w; w &= w - 1) {
                unsigned b = (unsigned)(64 * k + __builtin_ctzll(w));
                if (!(o->byte_ok[b >> 3] & (1u << (b & 7)))) return false;
            }
        return true;
    default: return false;
    }
}

bool op_exec(waf_tx *tx, const rule *ru, wstr val, wstr *matched_data) {
    wstr md = {"", 0};
    bool m = op_eval(tx, ru, val, &md);
    *matched_data = md;
    return ru->op.negate ? !m : m;
}
