/*
 * Request body processors: MULTIPART (with ModSecurity's strictness flags),
 * JSON (argument names json.a.b / json.a.array_0, as ModSecurity v3 builds
 * them) and XML (well-formedness, the document's text and its attribute values).
 * URLENCODED lives in intake.c next to the query-string parser it shares.
 * A body that does not parse sets REQBODY_ERROR=1 and REQBODY_ERROR_MSG; the
 * rules (e.g. 200002 of the base configuration) decide what that means.
 * Layer: above tx.c; below intake.c, which hands it the body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "waf.h"

static void flag(waf_tx *tx, int v) { tx_set_sc(tx, v, WSTR("1")); }

/* ------------------------------------------------------------------ multipart */

static const int MP_FLAGS[] = {
    V_MULTIPART_BOUNDARY_QUOTED, V_MULTIPART_BOUNDARY_WHITESPACE, V_MULTIPART_DATA_AFTER,
    V_MULTIPART_DATA_BEFORE, V_MULTIPART_FILE_LIMIT_EXCEEDED, V_MULTIPART_HEADER_FOLDING,
    V_MULTIPART_INVALID_HEADER_FOLDING, V_MULTIPART_INVALID_PART, V_MULTIPART_INVALID_QUOTING,
    V_MULTIPART_LF_LINE, V_MULTIPART_CRLF_LF_LINES, V_MULTIPART_MISSING_SEMICOLON,
    V_MULTIPART_UNMATCHED_BOUNDARY, V_MULTIPART_STRICT_ERROR, V_MULTIPART_BOUNDARY_INVALID,
};

static bool boundary_char_ok(unsigned char c) {
    /* RFC 2046 bchars plus what ModSecurity tolerates */
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           strchr("'()+_,-./:=? ", c) != NULL;
}

static int count_sub(const char *p, size_t n, const char *needle) {
    size_t nl = strlen(needle);
    int c = 0;
    for (size_t i = 0; i + nl <= n; i++)
        if (memcmp(p + i, needle, nl) == 0) c++;
    return c;
}

static bool is_sp(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Content-Type value -> boundary, with ModSecurity's checks: one ';' before the
 * (case-sensitive) "boundary" parameter, the value is the rest of the header,
 * quoted whole or not at all, RFC 2046 characters, no second "boundary". */
static bool mp_boundary(waf_tx *tx, wstr ct, wstr *out) {
    const char *end = ct.p + ct.n;
    const char *b = NULL;
    for (const char *q = ct.p; q + 8 <= end; q++)
        if (memcmp(q, "boundary", 8) == 0) { b = q; break; }
    if (!b || ct.n < 19) return false;
    bool semi = false;
    for (const char *q = ct.p + 19; q < b; q++) {
        if (is_sp(*q)) continue;
        if (*q == ';' && !semi) { semi = true; continue; }
        return false;
    }
    if (!semi) return false;
    const char *eq = memchr(b + 8, '=', (size_t)(end - b - 8));
    if (!eq) return false;
    for (const char *q = b + 8; q < eq; q++) {
        if (!is_sp(*q)) return false;
        flag(tx, V_MULTIPART_BOUNDARY_WHITESPACE);
    }
    const char *v = eq + 1;
    size_t len = (size_t)(end - v);
    if (len && is_sp(*v)) flag(tx, V_MULTIPART_BOUNDARY_WHITESPACE);
    wstr bd;
    if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
        flag(tx, V_MULTIPART_BOUNDARY_QUOTED);
        bd = (wstr){v + 1, len - 2};
    } else {
        if ((len && v[0] == '"') || (len >= 2 && v[len - 1] == '"')) return false;
        bd = (wstr){v, len};
    }
    if (count_sub(bd.p, bd.n, "boundary")) return false;
    if (bd.n == 0 || bd.n > 70 || bd.p[bd.n - 1] == ' ') return false;
    for (size_t i = 0; i < bd.n; i++) if (!boundary_char_ok((unsigned char)bd.p[i])) return false;
    if (count_sub(ct.p, ct.n, "boundary") > 1) return false;
    *out = bd;
    return true;
}

/* Parse a Content-Disposition value: name / filename with quoting checks. */
static bool mp_disposition(waf_tx *tx, wstr v, wstr *name, wstr *filename, bool *has_filename) {
    size_t i = 0;
    while (i < v.n && (v.p[i] == ' ' || v.p[i] == '\t')) i++;
    if (v.n - i < 9 || !ieq(v.p + i, 9, "form-data", 9)) return false;
    i += 9;
    while (i < v.n) {
        while (i < v.n && (v.p[i] == ' ' || v.p[i] == '\t')) i++;
        if (i >= v.n) break;
        if (v.p[i] != ';') { flag(tx, V_MULTIPART_MISSING_SEMICOLON); } else i++;
        while (i < v.n && (v.p[i] == ' ' || v.p[i] == '\t')) i++;
        if (i >= v.n) break;
        size_t ks = i;
        while (i < v.n && v.p[i] != '=' && v.p[i] != ' ' && v.p[i] != '\t' && v.p[i] != ';') i++;
        wstr key = {v.p + ks, i - ks};
        while (i < v.n && (v.p[i] == ' ' || v.p[i] == '\t')) i++;
        if (i >= v.n || v.p[i] != '=') return false;
        i++;
        while (i < v.n && (v.p[i] == ' ' || v.p[i] == '\t')) i++;
        wstr val;
        if (i < v.n && v.p[i] == '"') {
            i++;
            char *o = ar_alloc(&tx->a, v.n - i + 1);
            size_t k = 0;
            while (i < v.n && v.p[i] != '"') {
                if (v.p[i] == '\\' && i + 1 < v.n && (v.p[i + 1] == '"' || v.p[i + 1] == '\\')) {
                    flag(tx, V_MULTIPART_INVALID_QUOTING);
                    i++;
                }
                o[k++] = v.p[i++];
            }
            if (i >= v.n) return false;
            i++;
            o[k] = 0;
            val = (wstr){o, k};
        } else {
            size_t vs = i;
            while (i < v.n && v.p[i] != ';' && v.p[i] != ' ' && v.p[i] != '\t') i++;
            val = (wstr){v.p + vs, i - vs};
            if (memchr(val.p, '\'', val.n) || memchr(val.p, '\\', val.n)) flag(tx, V_MULTIPART_INVALID_QUOTING);
        }
        if (ieqz(key, "name")) *name = val;
        else if (ieqz(key, "filename")) { *filename = val; *has_filename = true; }
        else if (ieqz(key, "filename*")) { flag(tx, V_MULTIPART_INVALID_QUOTING); }
        else return false;
    }
    return true;
}

void body_multipart(waf_tx *tx, wstr body) {
    for (size_t i = 0; i < sizeof MP_FLAGS / sizeof MP_FLAGS[0]; i++) {
        tx_set_sc(tx, MP_FLAGS[i], WSTR("0"));
    }
    kv *ct = coll_find(&tx->c[V_REQUEST_HEADERS], WSTR("content-type"));
    wstr boundary;
    if (!ct || !mp_boundary(tx, ct->val, &boundary)) {
        tx_body_error(tx, "Multipart: Invalid boundary in C-T.");
        flag(tx, V_MULTIPART_STRICT_ERROR);
        return;
    }
    const char *p = body.p, *end = body.p + body.n;
    bool seen_first = false, done = false, lf_only = false, crlf = false;
    long long files_size = 0;
    int parts = 0;
    /* walk lines */
    while (p < end && !done) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        bool has_cr = le > p && le[-1] == '\r';
        const char *content_end = has_cr ? le - 1 : le;
        wstr line = {p, (size_t)(content_end - p)};
        const char *next = nl ? nl + 1 : end;
        if (line.n >= 2 + boundary.n && line.p[0] == '-' && line.p[1] == '-' &&
            memcmp(line.p + 2, boundary.p, boundary.n) == 0) {
            if (nl) { if (has_cr) crlf = true; else lf_only = true; }
            wstr rest = {line.p + 2 + boundary.n, line.n - 2 - boundary.n};
            bool final = rest.n >= 2 && rest.p[0] == '-' && rest.p[1] == '-';
            if (final) { rest.p += 2; rest.n -= 2; }
            for (size_t k = 0; k < rest.n; k++)
                if (rest.p[k] != ' ' && rest.p[k] != '\t') { flag(tx, V_MULTIPART_INVALID_PART); break; }
            seen_first = true;
            if (final) {
                done = true;
                p = next;
                break;
            }
            /* part headers */
            p = next;
            wstr name = {0}, filename = {0};
            bool has_filename = false, has_cd = false;
            const char *hdr_last = NULL;
            while (p < end) {
                const char *hn = memchr(p, '\n', (size_t)(end - p));
                if (!hn) { tx_body_error(tx, "Multipart: Final boundary missing."); flag(tx, V_MULTIPART_STRICT_ERROR); return; }
                bool hcr = hn > p && hn[-1] == '\r';
                if (hcr) crlf = true; else lf_only = true;
                wstr h = {p, (size_t)((hcr ? hn - 1 : hn) - p)};
                p = hn + 1;
                if (h.n == 0) break;
                if (h.p[0] == ' ' || h.p[0] == '\t') {
                    flag(tx, V_MULTIPART_HEADER_FOLDING);
                    if (!hdr_last) flag(tx, V_MULTIPART_INVALID_HEADER_FOLDING);
                    continue;
                }
                const char *colon = memchr(h.p, ':', h.n);
                if (!colon) {
                    tx_body_error(tx, "Multipart: Invalid part header (colon missing).");
                    flag(tx, V_MULTIPART_STRICT_ERROR);
                    return;
                }
                wstr hn_ = {h.p, (size_t)(colon - h.p)};
                wstr hv = {colon + 1, h.n - (size_t)(colon - h.p) - 1};
                while (hv.n && (hv.p[0] == ' ' || hv.p[0] == '\t')) { hv.p++; hv.n--; }
                hdr_last = h.p;
                if (ieqz(hn_, "content-disposition")) {
                    if (has_cd) {
                        tx_body_error(tx, "Multipart: Duplicate Content-Disposition header.");
                        flag(tx, V_MULTIPART_STRICT_ERROR);
                        return;
                    }
                    has_cd = true;
                    if (!mp_disposition(tx, hv, &name, &filename, &has_filename)) {
                        tx_body_error(tx, "Multipart: Invalid Content-Disposition header.");
                        flag(tx, V_MULTIPART_STRICT_ERROR);
                        return;
                    }
                }
                /* every part header is visible to rules, keyed by the part name (set below) */
                coll_add(&tx->a, &tx->c[V_MULTIPART_PART_HEADERS], (wstr){NULL, 0}, dupw(tx, h.p, h.n));
            }
            if (!has_cd) {
                tx_body_error(tx, "Multipart: Part missing Content-Disposition header.");
                flag(tx, V_MULTIPART_STRICT_ERROR);
                return;
            }
            /* name the part's headers */
            coll *ph = &tx->c[V_MULTIPART_PART_HEADERS];
            uint32_t k = ph->n;
            for (; k > 0 && ph->items[k - 1].key.p == NULL; k--) ph->items[k - 1].key = name;
            if (ph->hashed > k) ph->hashed = k;   /* their keys' hashes are computed again */
            ph->indexed = false;
            /* part body: up to the next boundary line */
            const char *data = p, *q = p, *data_end = NULL;
            while (q < end) {
                const char *bn = memchr(q, '\n', (size_t)(end - q));
                if (!bn) break;
                const char *ls = bn + 1;
                if ((size_t)(end - ls) >= 2 + boundary.n && ls[0] == '-' && ls[1] == '-' &&
                    memcmp(ls + 2, boundary.p, boundary.n) == 0) {
                    data_end = bn > data && bn[-1] == '\r' ? bn - 1 : bn;
                    if (!(bn > data && bn[-1] == '\r')) lf_only = true;
                    p = ls;
                    break;
                }
                q = ls;
            }
            if (!data_end) {
                tx_body_error(tx, "Multipart: Final boundary missing.");
                flag(tx, V_MULTIPART_STRICT_ERROR);
                return;
            }
            wstr value = {data, (size_t)(data_end - data)};
            parts++;
            if (has_filename) {
                coll_add(&tx->a, &tx->c[V_FILES], name, filename);
                coll_add(&tx->a, &tx->c[V_FILES_NAMES], name, name);
                coll_add(&tx->a, &tx->c[V_FILES_SIZES], name, tx_num(tx, (long long)value.n));
                coll_add(&tx->a, &tx->c[V_FILES_TMP_CONTENT], name, value);
                files_size += (long long)value.n;
                tx_set_sc(tx, V_MULTIPART_FILENAME, filename);
            } else {
                tx_add_arg(tx, V_ARGS_POST, name, value);
            }
            tx_set_sc(tx, V_MULTIPART_NAME, name);
            continue;
        }
        /* a line that is not a boundary */
        if (!seen_first) {
            if (line.n || nl) flag(tx, V_MULTIPART_DATA_BEFORE);
        } else {
            /* looks like a boundary of another body: "--" + something */
            if (line.n > 2 && line.p[0] == '-' && line.p[1] == '-') flag(tx, V_MULTIPART_UNMATCHED_BOUNDARY);
        }
        p = next;
    }
    if (!done) {
        if (!seen_first) tx_body_error(tx, "Multipart: No boundaries found in payload.");
        else tx_body_error(tx, "Multipart: Final boundary missing.");
        flag(tx, V_MULTIPART_STRICT_ERROR);
        return;
    }
    /* anything after the final boundary */
    for (const char *q = p; q < end; q++)
        if (*q != '\r' && *q != '\n') { flag(tx, V_MULTIPART_DATA_AFTER); break; }
    if (lf_only) {
        flag(tx, V_MULTIPART_LF_LINE);
        if (crlf) flag(tx, V_MULTIPART_CRLF_LF_LINES);
    }
    tx_set_sc(tx, V_FILES_COMBINED_SIZE, tx_num(tx, files_size));
    (void)parts;
    static const int STRICT[] = {
        V_MULTIPART_BOUNDARY_QUOTED, V_MULTIPART_BOUNDARY_WHITESPACE, V_MULTIPART_DATA_BEFORE,
        V_MULTIPART_DATA_AFTER, V_MULTIPART_HEADER_FOLDING, V_MULTIPART_LF_LINE,
        V_MULTIPART_MISSING_SEMICOLON, V_MULTIPART_INVALID_QUOTING, V_MULTIPART_INVALID_PART,
        V_MULTIPART_INVALID_HEADER_FOLDING, V_MULTIPART_FILE_LIMIT_EXCEEDED,
    };
    for (size_t i = 0; i < sizeof STRICT / sizeof STRICT[0]; i++)
        if (tx->sc[STRICT[i]].p[0] == '1') { flag(tx, V_MULTIPART_STRICT_ERROR); break; }
}

/* ------------------------------------------------------------------ JSON */

typedef struct {
    waf_tx *tx;
    const char *p, *end;
    const char *err;
    int depth, max_depth;
    wbuf path;                   /* current prefix, e.g. "json.a." */
} jparser;

static const bool JSON_WS[256] = {[' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1};

static void jws(jparser *j) {
    while (j->p < j->end && JSON_WS[(uint8_t)*j->p]) j->p++;
}

static bool jerr(jparser *j, const char *msg) {
    if (!j->err) j->err = msg;
    return false;
}

static int utf8_enc(unsigned cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static bool jhex4(const char *p, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (d < 0) return false;
        *v = *v * 16 + (unsigned)d;
    }
    return true;
}

/* The first byte at or after p that is '"', '\\' or a control character (end when none):
 * eight bytes a step, as the body's strings are most of its bytes. */
static const char *plain_run(const char *p, const char *end) {
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    for (; end - p >= 8; p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t quote = w ^ (ones * '"'), slash = w ^ (ones * '\\');
        /* a zero byte of quote or slash, or a byte below 0x20 (high bit clear, below after
         * subtracting 0x20): the usual has-zero-byte tests, whose false positives only
         * follow a true hit, so the lowest flagged byte (little-endian: the first) is one */
        uint64_t hit = (((quote - ones) & ~quote) | ((slash - ones) & ~slash) | ((w - ones * 0x20) & ~w)) & highs;
        if (hit) return p + (__builtin_ctzll(hit) >> 3);
    }
    while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) p++;
    return p;
}

/* A string; `in_place`: one without escapes may be left in the body (an object key, which
 * is only copied into argument names). */
static bool jstring(jparser *j, wstr *out, bool in_place) {
    j->p++;
    /* the decoded string is never longer than its escaped form; one without escapes or
     * control characters (nearly all) is copied as it is */
    const char *q = plain_run(j->p, j->end);
    bool plain = true;
    while (q < j->end && *q != '"') {
        unsigned char c = (unsigned char)*q;
        if (c == '\\' || c < 0x20) {
            plain = false;
            q += (c == '\\' && q + 1 < j->end) ? 2 : 1;
        } else {
            q++;
        }
    }
    if (plain && q < j->end && in_place) {
        *out = (wstr){j->p, (size_t)(q - j->p)};
        j->p = q + 1;
        return true;
    }
    char *o = ar_alloc(&j->tx->a, (size_t)(q - j->p) + 1);
    if (plain && q < j->end) {
        size_t n = (size_t)(q - j->p);
        memcpy(o, j->p, n);
        o[n] = 0;
        j->p = q + 1;
        *out = (wstr){o, n};
        return true;
    }
    size_t k = 0;
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p;
        if (c < 0x20) return jerr(j, "invalid char in json string");
        if (c == '\\') {
            if (j->p + 1 >= j->end) return jerr(j, "premature EOF");
            char e = j->p[1];
            j->p += 2;
            switch (e) {
            case '"': o[k++] = '"'; break;
            case '\\': o[k++] = '\\'; break;
            case '/': o[k++] = '/'; break;
            case 'b': o[k++] = '\b'; break;
            case 'f': o[k++] = '\f'; break;
            case 'n': o[k++] = '\n'; break;
            case 'r': o[k++] = '\r'; break;
            case 't': o[k++] = '\t'; break;
            case 'u': {
                unsigned cp;
                if (j->end - j->p < 4 || !jhex4(j->p, &cp)) return jerr(j, "invalid (non-hex) character occurs after '\\u' inside string.");
                j->p += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF && j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u') {
                    unsigned lo;
                    if (jhex4(j->p + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        j->p += 6;
                    }
                }
                k += (size_t)utf8_enc(cp, o + k);
                break;
            }
            default: return jerr(j, "inside a JSON string, a backslash must be followed by a valid escape");
            }
            continue;
        }
        o[k++] = (char)c;
        j->p++;
    }
    if (j->p >= j->end) return jerr(j, "premature EOF");
    j->p++;
    o[k] = 0;
    *out = (wstr){o, k};
    return true;
}

static void jarg(jparser *j, wstr name_tail, wstr val) {
    size_t n = j->path.n + name_tail.n;
    char *k = ar_alloc(&j->tx->a, n + 1);
    memcpy(k, j->path.p, j->path.n);
    memcpy(k + j->path.n, name_tail.p, name_tail.n);
    k[n] = 0;
    tx_add_arg(j->tx, V_ARGS_POST, (wstr){k, n}, val);
}

static bool jvalue(jparser *j, wstr name, bool in_array);

/* Containers: the prefix grows by "<name>." for objects and "<name>.array_<i>" for arrays. */
static bool jcontainer(jparser *j, wstr name, bool is_array) {
    if (++j->depth > j->max_depth) return jerr(j, "JSON depth limit exceeded");
    size_t saved = j->path.n;
    wb_put(&j->path, name.p, name.n);
    if (!is_array) wb_putc(&j->path, '.');
    size_t base = j->path.n;
    j->p++;
    jws(j);
    char close = is_array ? ']' : '}';
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->path.n = saved;
        j->depth--;
        return true;
    }
    int idx = 0;
    for (;;) {
        jws(j);
        if (j->p >= j->end) return jerr(j, "premature EOF");
        if (is_array) {
            char b[24] = ".array_", d[12];
            int nd = 0, bl = 7;
            for (unsigned v = (unsigned)idx; nd == 0 || v; v /= 10) d[nd++] = (char)('0' + v % 10);
            while (nd) b[bl++] = d[--nd];
            j->path.n = base;
            wb_put(&j->path, b, (size_t)bl);
            if (!jvalue(j, (wstr){"", 0}, true)) return false;
            j->path.n = base;
            idx++;
        } else {
            if (*j->p != '"') return jerr(j, "invalid object key (must be a string)");
            wstr key;
            if (!jstring(j, &key, true)) return false;
            if (!key.n) key = WSTR("empty-key");
            jws(j);
            if (j->p >= j->end || *j->p != ':') return jerr(j, "object key and value must be separated by a colon (':')");
            j->p++;
            jws(j);
            if (!jvalue(j, key, false)) return false;
            j->path.n = base;
        }
        jws(j);
        if (j->p >= j->end) return jerr(j, "premature EOF");
        if (*j->p == ',') { j->p++; continue; }
        if (*j->p == close) { j->p++; break; }
        return jerr(j, is_array ? "after array element, I expect ',' or ']'" : "after key and value, inside map, I expect ',' or '}'");
    }
    j->path.n = saved;
    j->depth--;
    return true;
}

static bool jvalue(jparser *j, wstr name, bool in_array) {
    jws(j);
    if (j->p >= j->end) return jerr(j, "premature EOF");
    char c = *j->p;
    if (c == '{' || c == '[') {
        /* a container inside an array has an empty name: the prefix already ends in array_<i> */
        return jcontainer(j, in_array ? (wstr){"", 0} : name, c == '[');
    }
    wstr val;
    if (c == '"') {
        if (!jstring(j, &val, false)) return false;
    } else if (c == 't' && j->end - j->p >= 4 && memcmp(j->p, "true", 4) == 0) {
        val = WSTR("true"); j->p += 4;
    } else if (c == 'f' && j->end - j->p >= 5 && memcmp(j->p, "false", 5) == 0) {
        val = WSTR("false"); j->p += 5;
    } else if (c == 'n' && j->end - j->p >= 4 && memcmp(j->p, "null", 4) == 0) {
        val = (wstr){"", 0}; j->p += 4;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        const char *s = j->p;
        if (*j->p == '-') j->p++;
        if (j->p >= j->end || !(*j->p >= '0' && *j->p <= '9')) return jerr(j, "malformed number, a digit is required after the minus sign.");
        if (*j->p == '0') j->p++;
        else while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
        if (j->p < j->end && *j->p == '.') {
            j->p++;
            if (j->p >= j->end || !(*j->p >= '0' && *j->p <= '9')) return jerr(j, "malformed number, a digit is required after the decimal point.");
            while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
        }
        if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
            j->p++;
            if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
            if (j->p >= j->end || !(*j->p >= '0' && *j->p <= '9')) return jerr(j, "malformed number, a digit is required after the exponent.");
            while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
        }
        val = dupw(j->tx, s, (size_t)(j->p - s));
    } else {
        return jerr(j, "lexical error: invalid char in json text.");
    }
    jarg(j, name, val);
    return true;
}

void body_json(waf_tx *tx, wstr body) {
    jparser j = {tx, body.p, body.p + body.n, NULL, 0, tx->rules->json_depth_limit ? tx->rules->json_depth_limit : 512, {0}};
    jws(&j);
    bool ok;
    if (j.p >= j.end) ok = true;      /* an empty body is not an error */
    else if (*j.p == '{' || *j.p == '[') ok = jcontainer(&j, WSTR("json"), *j.p == '[');
    else ok = jvalue(&j, WSTR("json"), false);
    if (ok) {
        jws(&j);
        if (j.p < j.end) ok = jerr(&j, "trailing garbage");
    }
    wb_free(&j.path);
    if (!ok) {
        char msg[200];
        snprintf(msg, sizeof msg, "JSON parsing error: parse error: %s", j.err ? j.err : "invalid JSON");
        tx_body_error(tx, msg);
    }
}

/* ------------------------------------------------------------------ XML */

typedef struct {
    waf_tx *tx;
    const char *p, *end;
    const char *err;
    wbuf text;
    int depth;
    /* entities declared in the internal DTD subset: names only (not expanded) */
    wstr ents[32]; int n_ents;
    wstr *attrs; int n_attrs, cap_attrs;   /* attribute values in document order (XML://@*) */
} xparser;

static bool xerr(xparser *x, const char *m) {
    if (!x->err) x->err = m;
    return false;
}

static bool xname_start(unsigned char c) { return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80; }
static bool xname_char(unsigned char c) { return xname_start(c) || c == '-' || c == '.' || (c >= '0' && c <= '9'); }

static void xws(xparser *x) {
    while (x->p < x->end && (*x->p == ' ' || *x->p == '\t' || *x->p == '\n' || *x->p == '\r')) x->p++;
}

static bool xname(xparser *x, wstr *out) {
    const char *s = x->p;
    if (x->p >= x->end || !xname_start((unsigned char)*x->p)) return xerr(x, "StartTag: invalid element name");
    while (x->p < x->end && xname_char((unsigned char)*x->p)) x->p++;
    *out = (wstr){s, (size_t)(x->p - s)};
    return true;
}

/* &...; -> appended to `out` (when not NULL) */
static bool xentity(xparser *x, wbuf *out) {
    const char *s = ++x->p;
    while (x->p < x->end && *x->p != ';' && x->p - s < 32) x->p++;
    if (x->p >= x->end || *x->p != ';') return xerr(x, "EntityRef: expecting ';'");
    wstr e = {s, (size_t)(x->p - s)};
    x->p++;
    char buf[4];
    if (e.n > 1 && e.p[0] == '#') {
        unsigned long v;
        char *endp;
        char tmp[40];
        snprintf(tmp, sizeof tmp, "%.*s", (int)e.n - 1, e.p + 1);
        if (tmp[0] == 'x') v = strtoul(tmp + 1, &endp, 16);
        else v = strtoul(tmp, &endp, 10);
        if (*endp || v == 0 || v > 0x10FFFF) return xerr(x, "xmlParseCharRef: invalid xmlChar value");
        if (out) wb_put(out, buf, (size_t)utf8_enc((unsigned)v, buf));
        return true;
    }
    const char *rep = NULL;
    if (e.n == 2 && memcmp(e.p, "lt", 2) == 0) rep = "<";
    else if (e.n == 2 && memcmp(e.p, "gt", 2) == 0) rep = ">";
    else if (e.n == 3 && memcmp(e.p, "amp", 3) == 0) rep = "&";
    else if (e.n == 4 && memcmp(e.p, "quot", 4) == 0) rep = "\"";
    else if (e.n == 4 && memcmp(e.p, "apos", 4) == 0) rep = "'";
    if (rep) { if (out) wb_puts(out, rep); return true; }
    for (int i = 0; i < x->n_ents; i++)
        if (x->ents[i].n == e.n && memcmp(x->ents[i].p, e.p, e.n) == 0) return true;
    return xerr(x, "Entity not defined");
}

static bool xskip_until(xparser *x, const char *term) {
    size_t tl = strlen(term);
    while (x->p + tl <= x->end) {
        if (memcmp(x->p, term, tl) == 0) { x->p += tl; return true; }
        x->p++;
    }
    return xerr(x, "premature end of data");
}

static bool xdoctype(xparser *x) {
    /* <!DOCTYPE name [ internal subset ]> : remember declared entity names */
    x->p += 9;
    int depth = 0;
    while (x->p < x->end) {
        char c = *x->p;
        if (c == '[') depth++;
        else if (c == ']') depth--;
        else if (c == '"' || c == '\'') {
            const char *q = memchr(x->p + 1, c, (size_t)(x->end - x->p - 1));
            if (!q) return xerr(x, "DOCTYPE: unterminated literal");
            x->p = q;
        } else if (c == '<' && x->end - x->p >= 8 && memcmp(x->p, "<!ENTITY", 8) == 0) {
            const char *q = x->p + 8;
            while (q < x->end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r' || *q == '%')) q++;
            const char *ns = q;
            while (q < x->end && xname_char((unsigned char)*q)) q++;
            if (x->n_ents < 32) x->ents[x->n_ents++] = (wstr){ns, (size_t)(q - ns)};
        } else if (c == '>' && depth == 0) {
            x->p++;
            return true;
        }
        x->p++;
    }
    return xerr(x, "DOCTYPE improperly terminated");
}

static bool xmisc(xparser *x, bool allow_doctype) {
    for (;;) {
        xws(x);
        if (x->end - x->p >= 4 && memcmp(x->p, "<!--", 4) == 0) { x->p += 4; if (!xskip_until(x, "-->")) return false; continue; }
        if (x->end - x->p >= 2 && memcmp(x->p, "<?", 2) == 0) { x->p += 2; if (!xskip_until(x, "?>")) return false; continue; }
        if (allow_doctype && x->end - x->p >= 9 && memcmp(x->p, "<!DOCTYPE", 9) == 0) {
            if (!xdoctype(x)) return false;
            allow_doctype = false;
            continue;
        }
        return true;
    }
}

static bool xelement(xparser *x) {
    if (++x->depth > 256) return xerr(x, "Excessive depth in document");
    x->p++;
    wstr name;
    if (!xname(x, &name)) return false;
    /* attributes */
    for (;;) {
        const char *before = x->p;
        xws(x);
        if (x->p >= x->end) return xerr(x, "Couldn't find end of Start Tag");
        if (*x->p == '/') {
            if (x->p + 1 >= x->end || x->p[1] != '>') return xerr(x, "Couldn't find end of Start Tag");
            x->p += 2;
            x->depth--;
            return true;
        }
        if (*x->p == '>') { x->p++; break; }
        if (x->p == before) return xerr(x, "attributes construct error");
        wstr an;
        if (!xname(x, &an)) return xerr(x, "attributes construct error");
        xws(x);
        if (x->p >= x->end || *x->p != '=') return xerr(x, "Specification mandates value for attribute");
        x->p++;
        xws(x);
        if (x->p >= x->end || (*x->p != '"' && *x->p != '\'')) return xerr(x, "AttValue: \" or ' expected");
        char q = *x->p++;
        wbuf av = {0};
        while (x->p < x->end && *x->p != q) {
            if (*x->p == '<') { wb_free(&av); return xerr(x, "Unescaped '<' not allowed in attributes values"); }
            if (*x->p == '&') { if (!xentity(x, &av)) { wb_free(&av); return false; } continue; }
            /* attribute-value normalisation: literal whitespace becomes a space */
            char c = *x->p++;
            wb_putc(&av, (c == '\t' || c == '\n' || c == '\r') ? ' ' : c);
        }
        if (x->p >= x->end) { wb_free(&av); return xerr(x, "AttValue: ' expected"); }
        x->p++;
        if (x->n_attrs == x->cap_attrs) {
            int cap = x->cap_attrs ? x->cap_attrs * 2 : 16;
            wstr *na = ar_alloc(&x->tx->a, (size_t)cap * sizeof(wstr));
            if (x->n_attrs) memcpy(na, x->attrs, (size_t)x->n_attrs * sizeof(wstr));
            x->attrs = na;
            x->cap_attrs = cap;
        }
        x->attrs[x->n_attrs++] = dupw(x->tx, av.p ? av.p : "", av.n);
        wb_free(&av);
    }
    /* content */
    for (;;) {
        if (x->p >= x->end) return xerr(x, "Premature end of data in tag");
        char c = *x->p;
        if (c == '<') {
            if (x->end - x->p >= 2 && x->p[1] == '/') {
                x->p += 2;
                wstr close;
                if (!xname(x, &close)) return false;
                if (close.n != name.n || memcmp(close.p, name.p, name.n) != 0)
                    return xerr(x, "Opening and ending tag mismatch");
                xws(x);
                if (x->p >= x->end || *x->p != '>') return xerr(x, "expected '>'");
                x->p++;
                x->depth--;
                return true;
            }
            if (x->end - x->p >= 4 && memcmp(x->p, "<!--", 4) == 0) { x->p += 4; if (!xskip_until(x, "-->")) return false; continue; }
            if (x->end - x->p >= 9 && memcmp(x->p, "<![CDATA[", 9) == 0) {
                x->p += 9;
                const char *s = x->p;
                if (!xskip_until(x, "]]>")) return false;
                wb_put(&x->text, s, (size_t)(x->p - 3 - s));
                continue;
            }
            if (x->end - x->p >= 2 && x->p[1] == '?') { x->p += 2; if (!xskip_until(x, "?>")) return false; continue; }
            if (!xelement(x)) return false;
            continue;
        }
        if (c == '&') { if (!xentity(x, &x->text)) return false; continue; }
        wb_putc(&x->text, c);
        x->p++;
    }
}

void body_xml(waf_tx *tx, wstr body) {
    xparser x = {0};
    x.tx = tx;
    x.p = body.p;
    x.end = body.p + body.n;
    bool ok = xmisc(&x, true);
    if (ok) {
        if (x.p >= x.end || *x.p != '<') ok = xerr(&x, "Document is empty");
        else ok = xelement(&x);
    }
    if (ok) ok = xmisc(&x, false);
    if (ok && x.p < x.end) ok = xerr(&x, "Extra content at the end of the document");
    if (!ok) {
        char msg[200];
        snprintf(msg, sizeof msg, "XML parsing error: %s", x.err ? x.err : "not well-formed");
        tx_body_error(tx, msg);
    } else {
        coll_add(&tx->a, &tx->c[V_XML], WSTR("/*"), dupw(tx, x.text.p ? x.text.p : "", x.text.n));
        for (int i = 0; i < x.n_attrs; i++) coll_add(&tx->a, &tx->c[V_XML], WSTR("//@*"), x.attrs[i]);
    }
    wb_free(&x.text);
}
