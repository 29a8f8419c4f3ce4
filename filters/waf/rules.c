/*
 * WAF rule families (see rules.h).  Detectors work on lower-cased, decoded
 * views and use keyword lexicons (hashed word sets), single forward scans and
 * small fixed look-aheads: no regular expressions, no backtracking.
 */
#include "rules.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ helpers */

static bool is_w(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || (c >= 'A' && c <= 'Z');
}
static bool is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static bool is_sp(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
static size_t skip_sp(const char *s, size_t n, size_t i) {
    while (i < n && is_sp((unsigned char)s[i])) i++;
    return i;
}

static long find_from(const char *h, size_t n, size_t from, const char *needle) {
    size_t L = strlen(needle);
    if (L == 0 || n < L) return -1;
    for (size_t i = from; i + L <= n; i++) {
        const char *p = memchr(h + i, needle[0], n - L + 1 - i);
        if (!p) return -1;
        i = (size_t)(p - h);
        if (memcmp(p + 1, needle + 1, L - 1) == 0) return (long)i;
    }
    return -1;
}

bool waf_contains(const char *h, size_t n, const char *needle) { return find_from(h, n, 0, needle) >= 0; }

static bool starts_at(const char *s, size_t n, size_t i, const char *lit) {
    size_t L = strlen(lit);
    return i + L <= n && memcmp(s + i, lit, L) == 0;
}

/* Occurrence of `w` as a whole word (not inside a longer [a-z0-9_] run). */
static long find_word(const char *s, size_t n, size_t from, const char *w) {
    size_t L = strlen(w);
    long i = (long)from;
    while ((i = find_from(s, n, (size_t)i, w)) >= 0) {
        bool left = i == 0 || !is_w((unsigned char)s[i - 1]);
        bool right = (size_t)i + L >= n || !is_w((unsigned char)s[i + L]);
        if (left && right) return i;
        i++;
    }
    return -1;
}

/* ---- keyword lists: one pass over the value per list ----
 * Each NULL-terminated list gets an index on first use (needle lengths and the
 * needles grouped by first byte), cached by the list's address, so a scan costs
 * O(length x needles sharing a first byte) instead of O(length x list size).
 * The cache is filled lazily and never freed (the lists are static); the engine
 * is single-threaded per instance (one Wasm instance, or one ctypes caller). */
typedef struct {
    const char *const *list;
    uint16_t first[257];         /* needles with first byte b: order[first[b] .. first[b + 1]) */
    uint16_t *order;
    uint8_t *lens;
} kwindex;

enum { KW_SUB, KW_WORD, KW_FILE };

#define KW_CACHE 128
static kwindex *kw_cache[KW_CACHE];

static kwindex *kw_build(const char *const *list) {
    size_t count = 0;
    while (list[count]) count++;
    kwindex *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    k->list = list;
    k->order = calloc(count + 1, sizeof *k->order);
    k->lens = calloc(count + 1, 1);
    if (!k->order || !k->lens) { free(k->order); free(k->lens); free(k); return NULL; }
    uint16_t counts[256] = {0};
    for (size_t i = 0; i < count; i++) {
        size_t L = strlen(list[i]);
        k->lens[i] = (uint8_t)(L > 255 ? 255 : L);
        counts[(unsigned char)list[i][0]]++;
    }
    k->first[0] = 0;
    for (int b = 0; b < 256; b++) k->first[b + 1] = (uint16_t)(k->first[b] + counts[b]);
    uint16_t fill[256];
    memcpy(fill, k->first, sizeof fill);
    for (size_t i = 0; i < count; i++) k->order[fill[(unsigned char)list[i][0]]++] = (uint16_t)i;
    return k;
}

static const kwindex *kw_index(const char *const *list) {
    size_t h = ((size_t)(uintptr_t)list >> 3) & (KW_CACHE - 1);
    for (size_t probe = 0; probe < KW_CACHE; probe++, h = (h + 1) & (KW_CACHE - 1)) {
        if (kw_cache[h] && kw_cache[h]->list == list) return kw_cache[h];
        if (!kw_cache[h]) return kw_cache[h] = kw_build(list);
    }
    return NULL;
}

/* Does a needle of `list` occur in s?  KW_WORD: as a whole word; KW_FILE: a dot-file
 * name (".env") must not continue with a word character (".environment"). */
static bool kw_scan(const char *s, size_t n, const char *const *list, int mode) {
    const kwindex *k = kw_index(list);
    if (!k) {   /* allocation failure: plain scan */
        for (; *list; list++) {
            size_t L = strlen(*list);
            for (size_t i = 0; i + L <= n; i++)
                if (memcmp(s + i, *list, L) == 0) return true;
        }
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        for (uint16_t q = k->first[c]; q < k->first[c + 1]; q++) {
            uint16_t w = k->order[q];
            size_t L = k->lens[w];
            if (i + L > n || memcmp(s + i + 1, k->list[w] + 1, L - 1) != 0) continue;
            if (mode == KW_WORD && ((i > 0 && is_w((unsigned char)s[i - 1])) ||
                                    (i + L < n && is_w((unsigned char)s[i + L]))))
                continue;
            if (mode == KW_FILE && k->list[w][0] == '.' && is_w((unsigned char)k->list[w][L - 1]) &&
                i + L < n && is_w((unsigned char)s[i + L]))
                continue;
            return true;
        }
    }
    return false;
}

static bool any_word(const char *s, size_t n, const char *const *words) { return kw_scan(s, n, words, KW_WORD); }
static bool any_sub(const char *s, size_t n, const char *const *subs) { return kw_scan(s, n, subs, KW_SUB); }

/* ---- hashed word sets: O(1) lexicon look-ups for token scans ---- */

typedef struct {
    const char *const *words;
    const char **slots;
    size_t cap;
} wordset;

static uint32_t hash_bytes(const char *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)p[i]; h *= 16777619u; }
    return h;
}

static void ws_init(wordset *ws) {
    size_t count = 0;
    while (ws->words[count]) count++;
    size_t cap = 16;
    while (cap < count * 3) cap <<= 1;
    ws->slots = calloc(cap, sizeof *ws->slots);
    ws->cap = ws->slots ? cap : 0;
    for (size_t i = 0; ws->slots && i < count; i++) {
        size_t h = hash_bytes(ws->words[i], strlen(ws->words[i])) & (cap - 1);
        while (ws->slots[h]) h = (h + 1) & (cap - 1);
        ws->slots[h] = ws->words[i];
    }
}

static bool ws_has(wordset *ws, const char *p, size_t n) {
    if (!ws->slots) ws_init(ws);
    if (!ws->cap || n == 0 || n > 40) return false;
    size_t h = hash_bytes(p, n) & (ws->cap - 1);
    while (ws->slots[h]) {
        if (strlen(ws->slots[h]) == n && memcmp(ws->slots[h], p, n) == 0) return true;
        h = (h + 1) & (ws->cap - 1);
    }
    return false;
}

/* Iterate words ([a-z0-9_] runs) of s: calls fn until it returns true. */
typedef bool (*word_fn)(const char *s, size_t n, size_t start, size_t end, void *arg);
static bool each_word(const char *s, size_t n, word_fn fn, void *arg) {
    size_t i = 0;
    while (i < n) {
        while (i < n && !is_w((unsigned char)s[i])) i++;
        size_t st = i;
        while (i < n && is_w((unsigned char)s[i])) i++;
        if (i > st && fn(s, n, st, i, arg)) return true;
    }
    return false;
}

/* ================================================================ SQL injection */

static const char *const SQL_FUNCS_STRICT[] = {
    "concat", "concat_ws", "group_concat", "ascii", "substring", "substr", "hex", "unhex", "md5",
    "sha1", "sha2", "db_name", "current_user", "system_user", "session_user", "load_file",
    "extractvalue", "updatexml", "name_const", "elt", "ifnull", "nullif", "coalesce", "cast",
    "convert", "benchmark", "sleep", "pg_sleep", "unistr", "starts_with", "sqlite_version",
    "sqlite_compileoption_used", "sqlite_compileoption_get", "randomblob", "instr", "char_length",
    "ord", "make_set", "export_set", "json_extract", "json_keys", "xmltype", "utl_inaddr",
    "ctxsys", "dbms_pipe", "pg_read_file", "pg_ls_dir", "lo_import", "current_database",
    "is_srvrolemember", "has_dbaccess", "object_id", "col_name", "suser_name", "host_name",
    "getdate", "datalength", "quotename", "octet_length", "bit_length", "regexp_substr",
    "regexp_like", "regexp_replace", "to_char", "to_number", "chr", "nchar", "unicode",
    "likelihood", "unlikely", "iif", "printf", "zeroblob", "typeof", "last_insert_rowid",
    "load_extension", "sqlite_source_id", "total_changes", "connection_id", "found_rows",
    "row_count", "uuid", "updatexml", "polygon", "multipoint", "linestring", "geometrycollection",
    "procedure_analyse", "char", "user", "version", "database", "schema", "div", "exp", "floor",
    "rand", "mid", "ltrim", "rtrim", "lpad", "rpad", "locate", "strcmp", "substring_index",
    "inet_aton", "from_base64", "to_base64", "compress", "uncompress", "aes_decrypt",
    "aes_encrypt", "des_decrypt", "encode", "decode", "password", "old_password", "encrypt",
    "ifnull", "isnull", "stddev", "variance", "bin", "oct", "conv", "soundex", "sys_context",
    NULL};
static wordset WS_SQL_FUNCS = {SQL_FUNCS_STRICT, 0, 0};

static const char *const SQL_STMT[] = {
    "select", "insert", "update", "delete", "drop", "declare", "exec", "execute", "shutdown",
    "truncate", "alter", "create", "waitfor", "grant", "revoke", "rename", "replace", "load",
    "handler", "call", "union", "merge", "pragma", "attach", "begin", "commit", "rollback", NULL};
static wordset WS_SQL_STMT = {SQL_STMT, 0, 0};

static bool next_is_paren(const char *s, size_t n, size_t i) {
    i = skip_sp(s, n, i);
    return i < n && s[i] == '(';
}

/* function-call syntax with a known SQL function name: "ascii(", "user(" */
static bool sql_func_call_cb(const char *s, size_t n, size_t st, size_t en, void *arg) {
    (void)arg;
    if (!next_is_paren(s, n, en)) return false;
    if (!ws_has(&WS_SQL_FUNCS, s + st, en - st)) return false;
    /* an English word before a parenthesised aside ("lower (unnamed)") needs no space */
    size_t L = en - st;
    bool adjacent = en < n && s[en] == '(';
    if (!adjacent && L <= 6) return false;
    return true;
}
static bool sqli_func(const waf_norm *v, const waf_target *t) {
    (void)t;
    return each_word(v->c, v->cn, sql_func_call_cb, NULL);
}

static bool sqli_time(const waf_norm *v, const waf_target *t) {
    (void)t;
    static const char *const F[] = {"sleep", "benchmark", "pg_sleep", "dbms_lock", NULL};
    for (const char *const *f = F; *f; f++) {
        long i = -1;
        while ((i = find_word(v->c, v->cn, (size_t)(i + 1), *f)) >= 0)
            if (next_is_paren(v->c, v->cn, (size_t)i + strlen(*f)) || v->c[i + (long)strlen(*f)] == '.') return true;
    }
    long w = find_word(v->c, v->cn, 0, "waitfor");
    if (w >= 0) {
        size_t j = skip_sp(v->c, v->cn, (size_t)w + 7);
        if (starts_at(v->c, v->cn, j, "delay") || starts_at(v->c, v->cn, j, "time")) return true;
    }
    return false;
}

static bool sqli_union(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->c; size_t n = v->cn;
    long i = -1;
    while ((i = find_word(s, n, (size_t)(i + 1), "union")) >= 0) {
        size_t j = skip_sp(s, n, (size_t)i + 5);
        while (j < n && s[j] == '(') j = skip_sp(s, n, j + 1);
        if (starts_at(s, n, j, "all")) j = skip_sp(s, n, j + 3);
        else if (starts_at(s, n, j, "distinct")) j = skip_sp(s, n, j + 8);
        while (j < n && s[j] == '(') j = skip_sp(s, n, j + 1);
        if (starts_at(s, n, j, "select") || starts_at(s, n, j, "values")) return true;
    }
    /* a quote breaking out straight into a SELECT: "'select", "\";select" */
    for (size_t k = 0; k < n; k++) {
        if (s[k] != '\'' && s[k] != '"' && s[k] != '`') continue;
        size_t j = skip_sp(s, n, k + 1);
        if (j < n && s[j] == ';') j = skip_sp(s, n, j + 1);
        if (find_word(s, n, j, "select") == (long)j) return true;
    }
    return false;
}

/* "select" followed by something only SQL puts there: *, (, a number, @, a quote, null... */
static bool sqli_select(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->c; size_t n = v->cn;
    long i = -1;
    while ((i = find_word(s, n, (size_t)(i + 1), "select")) >= 0) {
        size_t j = skip_sp(s, n, (size_t)i + 6);
        if (j >= n) continue;
        unsigned char c = (unsigned char)s[j];
        if (c == '*' || c == '(' || c == '@' || c == '\'' || c == '"' || c == '`' || is_digit(c)) return true;
        static const char *const NEXT[] = {"null", "distinct", "top", "case", "if", "count", NULL};
        for (const char *const *w = NEXT; *w; w++)
            if (find_word(s, n, j, *w) == (long)j) return true;
        size_t e = j;
        while (e < n && is_w((unsigned char)s[e])) e++;
        if (e > j && next_is_paren(s, n, e) && ws_has(&WS_SQL_FUNCS, s + j, e - j)) return true;
        long f = find_word(s, n, e, "from");
        if (f >= 0 && (size_t)f - e < 64) {
            size_t k = skip_sp(s, n, (size_t)f + 4);
            if (k < n && (s[k] == '`' || s[k] == '(' || starts_at(s, n, k, "information_schema") ||
                          find_word(s, n, k, "dual") == (long)k))
                return true;
            long w = find_word(s, n, k, "where");
            if (w >= 0 && (size_t)w - k < 48) return true;
        }
    }
    /* "x AS `alias` FROM" / "1234 AS \"foobar\" FROM" */
    i = -1;
    while ((i = find_word(s, n, (size_t)(i + 1), "as")) >= 0) {
        size_t j = skip_sp(s, n, (size_t)i + 2);
        if (j < n && (s[j] == '`' || s[j] == '"')) {
            char q = s[j];
            const char *e = memchr(s + j + 1, q, n - j - 1);
            if (e) {
                size_t k = skip_sp(s, n, (size_t)(e - s) + 1);
                if (find_word(s, n, k, "from") == (long)k) return true;
            }
        }
    }
    return false;
}

static bool sqli_statement(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->c; size_t n = v->cn;
    static const char *const PAIRS[][2] = {
        {"insert", "into"}, {"delete", "from"}, {"drop", "table"}, {"drop", "database"},
        {"drop", "function"}, {"drop", "procedure"}, {"alter", "table"}, {"create", "table"},
        {"create", "function"}, {"truncate", "table"}, {"exec", "master"}, {"execute", "immediate"},
        {"exec", "xp_cmdshell"}, {"into", "outfile"}, {"into", "dumpfile"}, {"replace", "into"},
        {"load", "data"}, {"group", "by"}, {"order", "by"}, {"exec", "sp_executesql"},
        {"declare", "@"}, {NULL, NULL}};
    for (int p = 0; PAIRS[p][0]; p++) {
        long i = -1;
        while ((i = find_word(s, n, (size_t)(i + 1), PAIRS[p][0])) >= 0) {
            size_t j = skip_sp(s, n, (size_t)i + strlen(PAIRS[p][0]));
            if (!starts_at(s, n, j, PAIRS[p][1])) continue;
            size_t e = j + strlen(PAIRS[p][1]);
            if (PAIRS[p][1][0] != '@' && e < n && is_w((unsigned char)s[e])) continue;
            if (strcmp(PAIRS[p][1], "by") == 0) {
                /* "order by 1", "group by `x`": only with SQL-looking operands */
                size_t k = skip_sp(s, n, e);
                if (!(k < n && (is_digit((unsigned char)s[k]) || s[k] == '`' || s[k] == '(' ||
                                starts_at(s, n, k, "if(") || k >= n)))
                    continue;
            }
            return true;
        }
    }
    /* stacked query: ';' then a statement keyword */
    for (size_t k = 0; k < n; k++) {
        if (s[k] != ';') continue;
        size_t j = skip_sp(s, n, k + 1);
        size_t e = j;
        while (e < n && is_w((unsigned char)s[e])) e++;
        if (e > j && ws_has(&WS_SQL_STMT, s + j, e - j) && (e >= n || !is_w((unsigned char)s[e]))) {
            size_t a = skip_sp(s, n, e);
            if (a >= n || s[a] == '[' || s[a] == '(' || s[a] == '@' || is_w((unsigned char)s[a]) || s[a] == '*')
                return true;
        }
    }
    return false;
}

static bool is_cmp_start(const char *s, size_t n, size_t j, size_t *len) {
    static const char *const OPS[] = {"<=>", "<>", "!=", ">=", "<=", "=", "<", ">", NULL};
    for (const char *const *o = OPS; *o; o++)
        if (starts_at(s, n, j, *o)) { *len = strlen(*o); return true; }
    return false;
}

/* Read one SQL operand (number, quoted string, identifier, null); returns its end or 0. */
static size_t operand(const char *s, size_t n, size_t j, int *kind) {
    if (j >= n) return 0;
    unsigned char c = (unsigned char)s[j];
    if (c == '(') { *kind = 3; return j + 1; }
    if (c == '-' && j + 1 < n && is_digit((unsigned char)s[j + 1])) j++, c = (unsigned char)s[j];
    if (is_digit(c)) {
        while (j < n && (is_w((unsigned char)s[j]) || s[j] == '.')) j++;
        *kind = 1;
        return j;
    }
    if (c == '\'' || c == '"' || c == '`') {
        const char *e = memchr(s + j + 1, c, n - j - 1);
        *kind = 2;
        return e ? (size_t)(e - s) + 1 : n;
    }
    if (is_w(c) || c == '@' || c == '$') {
        while (j < n && (is_w((unsigned char)s[j]) || s[j] == '.' || s[j] == '@' || s[j] == '$')) j++;
        *kind = 0;
        return j;
    }
    return 0;
}

/* Boolean tautology / contradiction: OR|AND|XOR|HAVING|WHERE <a> <cmp> <b>. */
static bool sqli_tautology(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->c; size_t n = v->cn;
    for (size_t i = 0; i < n; i++) {
        size_t opl = 0;
        if (starts_at(s, n, i, "||") || starts_at(s, n, i, "&&")) opl = 2;
        else if (is_alpha((unsigned char)s[i]) && (i == 0 || !is_w((unsigned char)s[i - 1]))) {
            static const char *const B[] = {"or", "and", "xor", "having", "where", "when", "not", NULL};
            for (const char *const *b = B; *b; b++) {
                size_t L = strlen(*b);
                if (starts_at(s, n, i, *b) && (i + L >= n || !is_w((unsigned char)s[i + L]))) { opl = L; break; }
            }
        }
        if (!opl) continue;
        size_t j = skip_sp(s, n, i + opl);
        int k1 = -1, k2 = -1;
        size_t e1 = operand(s, n, j, &k1);
        if (!e1) continue;
        if (k1 == 3) { /* OR (a=b) */
            size_t e = operand(s, n, skip_sp(s, n, e1), &k1);
            if (!e) continue;
            e1 = e;
        }
        size_t c = skip_sp(s, n, e1), cl = 0;
        bool symbolic = is_cmp_start(s, n, c, &cl);
        if (!symbolic) {
            static const char *const W[] = {"like", "rlike", "regexp", "between", "glob", "sounds", "in", "is", NULL};
            for (const char *const *w = W; *w; w++)
                if (find_word(s, n, c, *w) == (long)c) { cl = strlen(*w); break; }
            if (!cl) continue;
        }
        size_t j2 = skip_sp(s, n, c + cl);
        if (starts_at(s, n, j2, "not ")) j2 += 4;
        if (starts_at(s, n, j2, "like ")) j2 += 5;
        size_t e2 = operand(s, n, j2, &k2);
        if (!e2) continue;
        if (symbolic && (k1 > 0 || k2 > 0)) return true;
        if (symbolic && k1 == 0 && k2 == 0 && opl <= 3) {
            /* ident = ident: only after a quote or digit breaking out of a literal */
            size_t b = i;
            while (b > 0 && is_sp((unsigned char)s[b - 1])) b--;
            if (b > 0 && (s[b - 1] == '\'' || s[b - 1] == '"' || s[b - 1] == ')' || is_digit((unsigned char)s[b - 1])))
                return true;
        }
        if (!symbolic && (k1 == 1 || k1 == 2 || k2 == 1 || k2 == 2)) return true;
    }
    return false;
}

/* A quote that closes the literal early, then SQL syntax: "'--", "' or 1", "');". */
static bool sqli_quote_breakout(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->c; size_t n = v->cn;
    int quotes = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\'' && s[i] != '"' && s[i] != '`') continue;
        quotes++;
        if (quotes != 1) continue;   /* only the first (unbalanced) quote escapes */
        size_t j = skip_sp(s, n, i + 1);
        while (j < n && s[j] == ')') j = skip_sp(s, n, j + 1);
        if (starts_at(s, n, j, "--") || (j < n && s[j] == '#') || starts_at(s, n, j, "/*")) return true;
        if (j < n && s[j] == ';') {
            size_t k = skip_sp(s, n, j + 1);
            /* "';" at the end, or followed by a comment / statement */
            if (k >= n || starts_at(s, n, k, "--") || s[k] == '#') {
                /* only when no other quote follows (not a ';'-separated quoted list) */
                if (!memchr(s + j, '\'', n - j) && !memchr(s + j, '"', n - j)) return true;
            }
        }
        static const char *const B[] = {"or", "and", "xor", "union", "having", "order", "group",
                                        "collate", "into", "like", "rlike", "regexp", "is", "not",
                                        "notnull", "isnull", "waitfor", "glob", "limit", "procedure",
                                        NULL};
        for (const char *const *b = B; *b; b++) {
            size_t L = strlen(*b);
            if (!starts_at(s, n, j, *b) || (j + L < n && is_w((unsigned char)s[j + L]))) continue;
            size_t k = skip_sp(s, n, j + L);
            if (k >= n) return strcmp(*b, "or") != 0 && strcmp(*b, "and") != 0 ? true : false;
            unsigned char c = (unsigned char)s[k];
            if (is_digit(c) || c == '\'' || c == '"' || c == '(' || c == '`' || c == '@' || c == '-' || c == '#')
                return true;
            if (strcmp(*b, "collate") == 0 || strcmp(*b, "notnull") == 0 || strcmp(*b, "isnull") == 0 ||
                strcmp(*b, "union") == 0 || strcmp(*b, "waitfor") == 0 || strcmp(*b, "like") == 0 ||
                strcmp(*b, "glob") == 0 || strcmp(*b, "into") == 0)
                return true;
            /* "' and email ilike email--": a comment terminates the injected clause */
            if (waf_contains(s + k, n - k, "--") || memchr(s + k, '#', n - k)) return true;
            if (memchr(s + k, '=', n - k) && (strcmp(*b, "or") == 0 || strcmp(*b, "and") == 0)) return true;
        }
    }
    return false;
}

static const char *const SQL_OBJECTS[] = {
    "information_schema", "sysobjects", "syscolumns", "sysusers", "sysdatabases", "xp_cmdshell",
    "xp_dirtree", "xp_regread", "xp_reg", "sp_password", "sp_executesql", "sp_makewebtask",
    "sp_oacreate", "openrowset", "opendatasource", "msdasql", "sqloledb", "pg_catalog",
    "pg_shadow", "pg_user", "sqlite_master", "sqlite_temp_master", "mysql.user", "@@version",
    "@@datadir", "@@hostname", "@@basedir", "dbms_pipe", "utl_http", "utl_inaddr",
    "master..", "master.dbo", "msysaccessobjects", "msysobjects", "all_tables", "user_tables", "nvarchar", "varchar(", NULL};

static bool sqli_objects(const waf_norm *v, const waf_target *t) {
    (void)t;
    return any_sub(v->c, v->cn, SQL_OBJECTS) || any_sub(v->w, v->wn, SQL_OBJECTS);
}

/* SQL operators standing alone, word operators and IN-lists. */
static bool sqli_operators(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->c; size_t n = v->cn;
    while (n > 0 && is_sp((unsigned char)s[n - 1])) n--;
    size_t b = skip_sp(s, n, 0);
    static const char *const ALONE[] = {">>", "<<", "||", "&&", "<>", ">=", "<=", "!=", "->", "->>",
                                        "<=>", "xor", "rlike", "regexp", "notnull", "isnull", NULL};
    for (const char *const *a = ALONE; *a; a++)
        if (n - b == strlen(*a) && memcmp(s + b, *a, n - b) == 0) return true;
    static const char *const PH[] = {"is null", "is not null", "like null", "not between", "sounds like",
                                     "not regexp", "not rlike", "not like", NULL};
    for (const char *const *p = PH; *p; p++)
        if (find_word(s, n, 0, *p) >= 0) return true;
    static const char *const W[] = {"rlike", "regexp", "xor", "notnull", "collate", "ilike", NULL};
    for (const char *const *w = W; *w; w++) {
        long i = find_word(s, n, 0, *w);
        if (i < 0) continue;
        size_t k = skip_sp(s, n, (size_t)i + strlen(*w));
        if (i == (long)b || k >= n || s[k] == '\'' || s[k] == '"' || s[k] == '`' || s[k] == '(' ||
            is_digit((unsigned char)s[k]) || s[k] == '-')
            return true;
    }
    long i = -1;
    while ((i = find_word(s, n, (size_t)(i + 1), "in")) >= 0) {
        size_t k = skip_sp(s, n, (size_t)i + 2);
        if (k >= n || s[k] != '(') continue;
        k = skip_sp(s, n, k + 1);
        if (k < n && (is_digit((unsigned char)s[k]) || s[k] == '-' || s[k] == '\'' ||
                      find_word(s, n, k, "select") == (long)k))
            return true;
        /* "in ( a, b, and c)": a comma list closed on the same value */
        const char *close = memchr(s + k, ')', n - k);
        if (close && memchr(s + k, ',', (size_t)(close - (s + k))) && i == (long)b) return true;
    }
    return false;
}

static bool sqli_pg_cast(const waf_norm *v, const waf_target *t) {
    (void)t;
    static const char *const TYPES[] = {"int", "integer", "bool", "boolean", "text", "varchar",
                                        "json", "jsonb", "bytea", "numeric", "float", "real",
                                        "date", "regclass", "oid", "bigint", "char", "uuid", NULL};
    const char *s = v->w; size_t n = v->wn;
    long i = -1;
    while ((i = find_from(s, n, (size_t)(i + 1), "::")) >= 0) {
        size_t j = (size_t)i + 2, e = j;
        while (e < n && is_w((unsigned char)s[e])) e++;
        for (const char *const *ty = TYPES; *ty; ty++)
            if (e - j == strlen(*ty) && memcmp(s + j, *ty, e - j) == 0) return true;
    }
    return false;
}

static bool sqli_mongo(const waf_norm *v, const waf_target *t) {
    static const char *const OPS[] = {"ne", "eq", "gt", "gte", "lt", "lte", "in", "nin", "regex",
                                      "where", "nor", "or", "and", "not", "exists", "elemmatch",
                                      "expr", "type", "mod", "all", "size", "jsonschema", NULL};
    const char *s = v->d; size_t n = v->dn;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '$') continue;
        bool ctx = i == 0 || s[i - 1] == '[' || s[i - 1] == '"' || s[i - 1] == '{' || s[i - 1] == '.';
        if (!ctx && !(t->kind & (T_ARG_NAME))) continue;
        size_t e = i + 1;
        while (e < n && is_w((unsigned char)s[e])) e++;
        for (const char *const *o = OPS; *o; o++)
            if (e - i - 1 == strlen(*o) && memcmp(s + i + 1, *o, e - i - 1) == 0 &&
                (i == 0 || s[i - 1] == '['))
                return true;
    }
    return false;
}

static bool sqli_misc(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->c; size_t n = v->cn;
    /* CASE WHEN ... THEN */
    long i = find_word(s, n, 0, "case");
    if (i >= 0) {
        long w = find_word(s, n, (size_t)i, "when");
        if (w >= 0 && find_word(s, n, (size_t)w, "then") >= 0) return true;
    }
    /* ") like (" and friends */
    for (size_t k = 0; k < n; k++) {
        if (s[k] != ')') continue;
        size_t j = skip_sp(s, n, k + 1);
        static const char *const W[] = {"like", "rlike", "regexp", "between", "when", NULL};
        for (const char *const *x = W; *x; x++)
            if (find_word(s, n, j, *x) == (long)j) {
                size_t m = skip_sp(s, n, j + strlen(*x));
                if (m < n && (s[m] == '(' || s[m] == '\'' || is_digit((unsigned char)s[m]))) return true;
            }
    }
    /* HAVING <func>( | <number> */
    i = -1;
    while ((i = find_word(s, n, (size_t)(i + 1), "having")) >= 0) {
        size_t j = skip_sp(s, n, (size_t)i + 6), e = j;
        while (e < n && is_w((unsigned char)s[e])) e++;
        if (j < n && (is_digit((unsigned char)s[j]) || s[j] == '`' || s[j] == '\'')) return true;
        if (e > j && next_is_paren(s, n, e)) return true;
    }
    /* optimizer hints and MySQL executable comments */
    if (waf_contains(v->d, v->dn, "/*!") || waf_contains(v->d, v->dn, "/*+")) return true;
    /* scientific-notation evasion "1.e(" "1.e," */
    for (size_t k = 1; k + 2 < v->dn; k++)
        if (is_digit((unsigned char)v->d[k - 1]) && v->d[k] == '.' && v->d[k + 1] == 'e' &&
            (v->d[k + 2] == '(' || v->d[k + 2] == ',' || v->d[k + 2] == ')'))
            return true;
    return false;
}

static bool sqli_overflow(const waf_norm *v, const waf_target *t) {
    (void)t;
    static const char *const N[] = {"4294967295", "4294967296", "2147483648", "9223372036854775807",
                                    "9223372036854775808", "18446744073709551615",
                                    "2.2250738585072011e-308", "2.2250738585072012e-00308", "1e309",
                                    NULL};
    return any_word(v->d, v->dn, N);
}

/* ================================================================ XSS */

static const char *const XSS_TAGS[] = {
    "script", "iframe", "frame", "frameset", "object", "embed", "applet", "svg", "img", "image",
    "body", "style", "link", "meta", "base", "form", "input", "button", "video", "audio", "source",
    "math", "isindex", "marquee", "xml", "vmlframe", "import", "details", "textarea", "select",
    "keygen", "bgsound", "layer", "ilayer", "blink", "xss", "animate", "set", "handler",
    "listener", "noscript", "template", "html", "title", "a", "div", "x", "table", "td", "portal",
    "plaintext", "xmp", "dialog", "object", "param", "event-source", "eventsource", NULL};
static wordset WS_XSS_TAGS = {XSS_TAGS, 0, 0};

/* "<tag" with a dangerous tag name (namespaced forms such as <x:script> included). */
static bool xss_tag(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->d; size_t n = v->dn;
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '<') continue;
        size_t j = i + 1;
        if (starts_at(s, n, j, "?import")) return true;
        if (j < n && (s[j] == '/' || s[j] == '!')) j++;
        size_t st = j;
        while (j < n && (is_w((unsigned char)s[j]) || s[j] == ':' || s[j] == '-')) j++;
        if (j == st) continue;
        size_t ns = st;
        for (size_t k = st; k < j; k++) if (s[k] == ':') ns = k + 1;
        if (ns >= j) ns = st;
        bool tag_end = j >= n || is_sp((unsigned char)s[j]) || s[j] == '/' || s[j] == '>' || s[j] == '#' ||
                       s[j] == '=' || s[j] == '\'' || s[j] == '"' || s[j] == '\f';
        if (!tag_end) continue;
        if (j - ns == 1 && (s[ns] == 'a' || s[ns] == 'x')) {
            /* <a ...>/<x ...>: only with an attribute */
            size_t k = skip_sp(s, n, j);
            if (k >= n || !is_alpha((unsigned char)s[k])) continue;
        }
        if (ws_has(&WS_XSS_TAGS, s + ns, j - ns)) return true;
    }
    return false;
}

/* on<event>= with an event-like name */
static bool xss_handler(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->d; size_t n = v->dn;
    for (size_t i = 0; i + 2 < n; i++) {
        if (s[i] != 'o' || s[i + 1] != 'n') continue;
        if (i > 0) {
            unsigned char p = (unsigned char)s[i - 1];
            if (!(is_sp(p) || p == '"' || p == '\'' || p == '`' || p == ';' || p == '/' || is_digit(p) ||
                  p == '=' || p == ',' || p == '(' || p == '+'))
                continue;
        }
        size_t j = i + 2;
        while (j < n && is_alpha((unsigned char)s[j])) j++;
        size_t L = j - i - 2;
        if (L < 3 || L > 50) continue;
        j = skip_sp(s, n, j);
        if (j < n && s[j] == '=' && j + 1 < n && s[j + 1] != '=') return true;
    }
    return false;
}

static bool xss_uri(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->w; size_t n = v->wn;   /* whitespace-free: "ja\tvascript:" */
    static const char *const SCHEMES[] = {"javascript:", "vbscript:", "livescript:", "mocha:", NULL};
    for (const char *const *sc = SCHEMES; *sc; sc++) {
        long i = find_from(s, n, 0, *sc);
        if (i >= 0 && ((size_t)i + strlen(*sc) < n || i == 0)) return true;
    }
    long d = find_from(s, n, 0, "data:");
    if (d >= 0) {
        size_t j = (size_t)d + 5;
        if (j < n && (s[j] == ',' || starts_at(s, n, j, "text/html") || starts_at(s, n, j, "image/svg") ||
                      starts_at(s, n, j, "application/x")))
            return true;
    }
    static const char *const CSS[] = {"-moz-binding", "expression(", "behavior:", "@import",
                                      "url(javascript", "-o-link:", NULL};
    return any_sub(s, n, CSS);
}

static bool xss_js(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->w; size_t n = v->wn;
    static const char *const SINKS[] = {
        "document.cookie", "document.write", "document.domain", "document.location",
        "window.location", "location.href", "location.hash", ".innerhtml", ".outerhtml",
        "fromcharcode", "document.body", "document.createelement", "document.queryselector",
        "document.getelementby", ".textcontent=", "top.location", "self.location", "parent.location",
        "settimeout(", "setinterval(", "newfunction(", "execscript(", "document[", "window[",
        "self[", "top[", "parent[", "globalthis[", ".constructor(", "import(", NULL};
    if (any_sub(s, n, SINKS)) return true;
    static const char *const CALLS[] = {"alert", "prompt", "confirm", "eval", "atob", "btoa",
                                        "unescape", "escape", "print", NULL};
    for (const char *const *c = CALLS; *c; c++) {
        long i = -1;
        while ((i = find_word(s, n, (size_t)(i + 1), *c)) >= 0) {
            size_t e = (size_t)i + strlen(*c);
            /* glued to a non-ASCII letter it is text in another script, not a call */
            if (i > 0 && (unsigned char)s[i - 1] >= 0x80) continue;
            if (e < n && (s[e] == '(' || s[e] == '`')) return true;
        }
    }
    /* template-literal calls: [].sort.call`${alert}`, ${eval} */
    if (waf_contains(s, n, ".call`") || waf_contains(s, n, "${alert") || waf_contains(s, n, "${eval") ||
        waf_contains(s, n, ".apply`"))
        return true;
    /* JSFuck: long runs of []()!+ */
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '[' || c == ']' || c == '(' || c == ')' || c == '!' || c == '+') { if (++run >= 24) return true; }
        else run = 0;
    }
    return false;
}

/* Angle brackets that only appear when the top bit is stripped (US-ASCII 7-bit): \xbc tag \xbe */
static bool xss_7bit(const waf_norm *v, const waf_target *t) {
    (void)t;
    const unsigned char *s = (const unsigned char *)v->d; size_t n = v->dn;
    for (size_t i = 0; i + 2 < n; i++) {
        if (s[i] != 0xBC) continue;
        if (i > 0 && s[i - 1] >= 0xC2 && s[i - 1] <= 0xF4) continue;   /* UTF-8 continuation */
        size_t j = i + 1;
        if (j < n && s[j] == '/') j++;
        size_t st = j;
        while (j < n && is_alpha(s[j])) j++;
        if (j > st && j < n && s[j] == 0xBE) return true;
    }
    return false;
}

static bool xss_xmlns(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->d; size_t n = v->dn;
    if (!memchr(s, '<', n)) return false;
    static const char *const X[] = {"w3.org/1999/xhtml", "xlink:href", "<!entity", "schemalocation",
                                    NULL};
    return any_sub(s, n, X);
}

/* ================================================================ LFI / path traversal */

static bool lfi_traversal(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->d; size_t n = v->dn;
    for (size_t i = 0; i + 2 < n; i++) {
        if (s[i] != '.' || s[i + 1] != '.') continue;
        size_t j = i + 2;
        while (j < n && s[j] == '.') j++;
        if (j < n && (s[j] == '/' || s[j] == '\\')) return true;
        if (j + 3 < n && s[j] == '0' && s[j + 1] == 'x' && (starts_at(s, n, j, "0x2f") || starts_at(s, n, j, "0x5c")))
            return true;
    }
    /* hex-spelled dots: "0x2e.", "0x2e0x2e/" */
    if (waf_contains(s, n, "0x2e0x2e") || waf_contains(s, n, "0x2e.") || waf_contains(s, n, ".0x2e") ||
        waf_contains(s, n, "0x5c0x2e"))
        return true;
    return false;
}

static const char *const OS_FILES[] = {
    "etc/passwd", "etc/shadow", "etc/group", "etc/hosts", "etc/issue", "etc/master.passwd",
    "etc/subuid", "etc/subgid", "etc/sudoers", "etc/crontab", "etc/fstab", "etc/mtab",
    "etc/motd", "etc/profile", "etc/bashrc", "etc/security/", "etc/ssh/", "etc/httpd/",
    "etc/apache", "etc/nginx/", "etc/mysql/", "etc/php", "etc/resolv.conf", "etc/hostname",
    "etc/inittab", "etc/pwd.db", "etc/spwd.db", "etc/environment", "etc/ld.so", "etc/os-release",
    "etc/apk/", "etc/init.d/", "etc/machine-id", "etc/netplan", "etc/network/", "etc/kubernetes",
    "proc/self/", "proc/version", "proc/cpuinfo", "proc/meminfo", "proc/net/", "proc/mounts",
    "proc/interrupts", "proc/1/", "sys/class/", "sys/kernel/",
    ".ssh/", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "authorized_keys", "known_hosts",
    ".bash_history", ".bashrc", ".bash_profile", ".zsh_history", ".mysql_history", ".psql_history",
    ".htaccess", ".htpasswd", ".htdigest", "web.config", "win.ini", "system.ini", "boot.ini",
    "windows/system32", "winnt/system32", "system32/drivers", "system32/config", "repair/sam",
    "autoexec.bat", "httpd.conf", "apache2.conf", "php.ini", "my.cnf", "wp-config.php",
    "config.inc.php", "localsettings.php", ".git/", ".svn/", ".hg/", ".env", ".aws/credentials",
    ".docker/config", ".kube/config", ".npmrc", ".pgpass", ".netrc", ".gitconfig",
    "var/log/", "var/run/secrets", "var/lib/", "usr/local/etc", "tmp/curl", "tmp/wget",
    "/.dockerenv", "etc/redhat-release", "etc/debian_version", "etc/lsb-release", NULL};

static bool lfi_os_files(const waf_norm *v, const waf_target *t) {
    (void)t;
    return kw_scan(v->s, v->sn, OS_FILES, KW_FILE);
}

static const char *const RESTRICTED_PATHS[] = {
    "/.env", "/.git", "/.svn", "/.hg", "/.ht", "/.aws", "/.ssh", "/.docker", "/.kube",
    "/.npmrc", "/.claude/", "/.cursor/", "/.continue/", "/.aider", "/.vscode/", "/.idea/",
    "/.codeium", "/.windsurf", "/.copilot", "/.gemini/", "/.bash_history", "/.ds_store",
    "/proc/", "/sys/class", "/sys/kernel", "/web.config", "/wp-config", "/.well-known/../",
    "/@fs/", "/etc/passwd", "/phpinfo", "/server-status", "/.mcp", "/mcp.json", NULL};
static const char *const BACKUP_EXT[] = {".bak", ".backup", ".old", ".orig", ".sql", ".sql.gz",
                                         ".sql.zip", ".sql.tar", ".swp", ".save", ".dump", "~", NULL};

static bool lfi_restricted_path(const waf_norm *v, const waf_target *t) {
    (void)t;
    if (any_sub(v->d, v->dn, RESTRICTED_PATHS)) return true;
    for (const char *const *e = BACKUP_EXT; *e; e++) {
        size_t L = strlen(*e);
        if (v->dn >= L && memcmp(v->d + v->dn - L, *e, L) == 0) return true;
    }
    return false;
}

/* ================================================================ RFI */

static bool parse_url_host(const char *s, size_t n, size_t i, size_t *hs, size_t *he) {
    /* i points after "://" */
    size_t j = i;
    const char *at = NULL;
    size_t e = j;
    while (e < n && s[e] != '/' && s[e] != '?' && s[e] != '#' && !is_sp((unsigned char)s[e])) {
        if (s[e] == '@') at = s + e;
        e++;
    }
    if (at) j = (size_t)(at - s) + 1;
    *hs = j;
    *he = e;
    return e > j;
}

static bool host_is_ip(const char *h, size_t n) {
    if (n == 0) return false;
    if (h[0] == '[') return true;
    size_t colons = 0, dots = 0, digits = 0;
    for (size_t i = 0; i < n; i++) {
        if (h[i] == ':') colons++;
        else if (h[i] == '.') dots++;
        else if (is_digit((unsigned char)h[i])) digits++;
        else if (!((h[i] >= 'a' && h[i] <= 'f'))) {
            if (colons == 0) return false;
        }
    }
    if (colons >= 2) return true;        /* IPv6 literal */
    if (dots == 3 && digits >= 4) {
        size_t i = 0;
        while (i < n && (is_digit((unsigned char)h[i]) || h[i] == '.')) i++;
        return i == n || h[i] == ':';
    }
    return false;
}


static bool rfi_ip_url(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->d; size_t n = v->dn;
    long i = -1;
    while ((i = find_from(s, n, (size_t)(i + 1), "://")) >= 0) {
        size_t hs, he;
        if (parse_url_host(s, n, (size_t)i + 3, &hs, &he) && host_is_ip(s + hs, he - hs)) return true;
    }
    return false;
}


/* A URL in an argument pointing at another host than the one requested. */
static bool rfi_offsite(const waf_norm *v, const waf_target *t) {
    const char *s = v->d; size_t n = v->dn;
    size_t b = skip_sp(s, n, 0);
    if (starts_at(s, n, b, "url:") || starts_at(s, n, b, "jar:")) b += 4;
    /* any scheme: [a-z][a-z0-9+._-]*:// */
    size_t e = b;
    while (e < n && (is_w((unsigned char)s[e]) || s[e] == '+' || s[e] == '.' || s[e] == '-')) e++;
    if (e == b || !is_alpha((unsigned char)s[b]) || !starts_at(s, n, e, "://")) return false;
    if (e - b == 4 && memcmp(s + b, "data", 4) == 0) return false;   /* inline data, no host */
    size_t after = e + 3;
    /* userinfo tricks ("http://example.com%2f@evil.com/"): the host follows the last '@' */
    size_t lim = after;
    while (lim < n && s[lim] != '?' && s[lim] != '#') lim++;
    for (size_t k = lim; k > after; k--) if (s[k - 1] == '@') { after = k; break; }
    size_t hs, he;
    if (!parse_url_host(s, n, after, &hs, &he)) return false;
    size_t hl = he - hs;
    const char *h = s + hs;
    const char *colon = memchr(h, ':', hl);
    if (colon && h[0] != '[') hl = (size_t)(colon - h);
    if (t->host_len && hl == t->host_len && memcmp(h, t->host, hl) == 0) return false;
    if (t->host_len && hl > t->host_len && h[hl - t->host_len - 1] == '.' &&
        memcmp(h + hl - t->host_len, t->host, t->host_len) == 0)
        return false;
    return true;
}

/* "http?" "ftp?": include with a trailing question mark */
static bool rfi_trailing_q(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->d; size_t n = v->dn;
    if (n == 0 || s[n - 1] != '?') return false;
    size_t b = skip_sp(s, n, 0);
    static const char *const P[] = {"http", "https", "ftp", "ftps", "file", NULL};
    for (const char *const *p = P; *p; p++)
        if (starts_at(s, n, b, *p)) return true;
    return false;
}

/* ================================================================ RCE */

static const char *const UNIX_CMDS[] = {
    "cat", "tac", "nl", "head", "tail", "ls", "dir", "id", "whoami", "uname", "ifconfig", "ip",
    "netstat", "ss", "ps", "top", "htop", "kill", "pkill", "killall", "wget", "curl", "fetch",
    "nc", "ncat", "netcat", "socat", "telnet", "ssh", "scp", "sftp", "ftp", "tftp", "rsync",
    "bash", "sh", "zsh", "ksh", "csh", "tcsh", "dash", "ash", "fish", "busybox", "python",
    "python2", "python3", "perl", "ruby", "php", "node", "nodejs", "lua", "irb", "tclsh",
    "awk", "gawk", "sed", "grep", "egrep", "fgrep", "find", "xargs", "chmod", "chown", "chgrp",
    "chattr", "rm", "mv", "cp", "dd", "mkdir", "rmdir", "touch", "ln", "tar", "bsdtar", "zip",
    "unzip", "gzip", "gunzip", "zcat", "zstd", "zstdcat", "bzip2", "bunzip2", "xz", "unxz",
    "xxd", "od", "hexdump", "strings", "openssl", "gpg", "nmap", "masscan",
    "ping", "traceroute", "nslookup", "dig", "host", "whois", "crontab", "at", "nohup", "sudo",
    "su", "doas", "passwd", "useradd", "adduser", "usermod", "userdel", "groupadd", "visudo",
    "mount", "umount", "env", "printenv", "export", "set", "unset", "echo", "printf", "eval",
    "exec", "source", "history", "alias", "uptime", "w", "who", "last", "lastlog", "finger",
    "hostname", "systemctl", "service", "journalctl", "dmesg", "lsof", "strace", "ltrace",
    "gdb", "lldb", "vi", "vim", "nvim", "nano", "emacs", "less", "more", "man",
    "pico", "tee", "sort", "uniq", "wc", "cut", "tr", "rev", "diff", "file", "stat", "du", "df",
    "free", "lsb_release", "apt", "apt-get", "aptitude", "yum", "dnf", "rpm", "dpkg", "pip",
    "pip3", "npm", "gem", "make", "gcc", "cc", "g++", "c89", "c99", "clang", "java", "javac",
    "jshell", "docker", "kubectl", "podman", "ansible", "ansible-playbook", "ansible-vault",
    "ansible-galaxy", "ansible-doc", "ansible-pull", "ansible-config", "ansible-console",
    "ansible-inventory", "chef-client", "chef-shell", "chef-vault", "chef-run", "cscli",
    "cpulimit", "flock", "timeout", "nice", "ionice", "taskset", "setsid", "script", "expect",
    "rmt", "mknod", "mkfifo", "tmux", "screen", "pwd", "cd", "chroot", "sysctl", "modprobe",
    "insmod", "iptables", "tcpdump", "tshark", "ssh-keygen", "sshpass", "powershell", "pwsh",
    "cmd", "wmic", "certutil", "bitsadmin", "mshta", "rundll32", "regsvr32", "reg", "regedit",
    "net", "netsh", "schtasks", "tasklist", "taskkill", "systeminfo", "ipconfig", "bcdboot",
    "bcdedit", "cscript", "wscript", "msiexec", "icacls", "takeown", "vssadmin", "whoami.exe",
    "sleep", "time", "perf", "jq", "tee", "shred", "wall", "logger", "aa-disable", "aa-exec",
    "busctl", "nsenter", "unshare", "capsh", "setcap", "getcap", "pkexec", "run-parts",
    "ld.so", "bpftrace", "ksshell", "rlwrap", "lwp-download", "lwp-request", "links", "lynx",
    "w3m", "aria2c", NULL};
static wordset WS_UNIX = {UNIX_CMDS, 0, 0};

/* Command words that are also everyday English: need an option, path or end of value. */
static const char *const AMBIGUOUS[] = {"time", "more", "less", "at", "w", "who", "last", "set",
                                        "file", "host", "free", "make", "man", "cut", "sort",
                                        "head", "tail", "find", "top", "kill", "ping", "echo",
                                        "nice", "script", "expect", "timeout", "export", "source",
                                        "history", "links", "print", "dir", "cd", "ip", "ss", "nl",
                                        "ed", "ex", "id", "su", "cc", "net", "reg", "cmd",
                                        "service", "mount", "stat", "diff", NULL};
static wordset WS_AMBIG = {AMBIGUOUS, 0, 0};

/* CRS keeps command words that are prone to false positives out of its paranoia-1 command
 * rules (932230/932250/932260 exclude them; they are matched at PL2 by 932236): short words
 * that are everyday English or common tokens in prose, and, without a shell prefix in front,
 * longer English words (a version suffix makes them a command again: "python3").  Our PL1
 * rules 932230/932250 do the same; 932236 keeps them all. */
static const char *const PL1_SHORT_FP[] = {"cat", "top", "tar", "zip", "dig", "cut", "ftp", "id",
                                           "ip", "ps", "nc", "rm", "mv", "cp", "dd", "ln", "od",
                                           "at", "su", "ss", "nl", "tr", "du", "cd", "cc", "w",
                                           "who", "set", "man", "tee", "rev", "apt", "gem", "pip",
                                           "net", "reg", "cmd", "dir", "ed", "ex", NULL};
static wordset WS_PL1_SHORT_FP = {PL1_SHORT_FP, 0, 0};
static const char *const PL1_LEADING_FP[] = {"bash", "dash", "fish", "curl", "echo", "fetch",
                                             "touch", "finger", "screen", "wall", "sleep",
                                             "flock", "links", "host", "last", "more", "less",
                                             "make", "find", "kill", "ping", "head", "tail",
                                             "sort", "time", "nice", "script", "expect",
                                             "timeout", "export", "source", "history", "alias",
                                             "service", "mount", "diff", "file", "free", "stat",
                                             "printf", "node", "java", "python", "ruby",
                                             "mkdir", "unset", "exec", "eval", NULL};
static wordset WS_PL1_LEADING_FP = {PL1_LEADING_FP, 0, 0};

enum { CMD_STRICT = 1, CMD_PL1 = 2, CMD_PL1_LEADING = 4 };

static size_t cmd_word_end(const char *s, size_t n, size_t j) {
    while (j < n && (is_w((unsigned char)s[j]) || s[j] == '-' || s[j] == '.' || s[j] == '+')) j++;
    return j;
}

/* Is there a command at s[j..]? Handles /bin/, /usr/bin/ prefixes and versions ("python3.10"). */
static bool command_at(const char *s, size_t n, size_t j, int mode) {
    j = skip_sp(s, n, j);
    /* prefixes that run another command */
    while (j < n && (s[j] == '{' || s[j] == '(' || s[j] == '`' || s[j] == '$' || s[j] == '!')) j++;
    size_t p = j;
    while (p < n && s[p] == '/') {
        size_t q = p + 1;
        while (q < n && s[q] != '/' && !is_sp((unsigned char)s[q])) q++;
        if (q < n && s[q] == '/') p = q; else break;
    }
    if (p > j && s[p] == '/') j = p + 1;
    size_t e = cmd_word_end(s, n, j);
    if (e == j) return false;
    size_t L = e - j;
    /* strip a trailing version ("python3.10", "php7") or ".exe" */
    size_t base = L;
    while (base > 0 && (is_digit((unsigned char)s[j + base - 1]) || s[j + base - 1] == '.')) base--;
    bool known = ws_has(&WS_UNIX, s + j, L) || (base > 1 && ws_has(&WS_UNIX, s + j, base));
    if (!known && L > 4 && memcmp(s + e - 4, ".exe", 4) == 0) known = ws_has(&WS_UNIX, s + j, L - 4);
    if (!known) return false;
    size_t k = skip_sp(s, n, e);
    /* a false-positive-prone word still counts at PL1 as a bare command closing the value
     * after a shell prefix (";ps"), like CRS 932340; with arguments it is left to 932236 */
    bool bare = k >= n && !(mode & CMD_STRICT);
    if ((mode & (CMD_PL1 | CMD_PL1_LEADING)) && !bare && ws_has(&WS_PL1_SHORT_FP, s + j, L)) return false;
    if ((mode & CMD_PL1_LEADING) && ws_has(&WS_PL1_LEADING_FP, s + j, L)) return false;
    bool strict = mode & CMD_STRICT;
    bool ambiguous = ws_has(&WS_AMBIG, s + j, L);
    bool end = k >= n || s[k] == ';' || s[k] == '|' || s[k] == '&' || s[k] == '`' || s[k] == ')' ||
               s[k] == '<' || s[k] == '>' || s[k] == '\n';
    bool opt = k < n && k > e && (s[k] == '-' || s[k] == '/' || s[k] == '$' || s[k] == '~' || s[k] == '.');
    bool attached_path = e < n && (s[e] == '/' || s[e] == '<' || s[e] == '>');
    if (!strict) return opt || attached_path || (!ambiguous && (end || k < n));
    return opt || attached_path;
}

static bool time_prefix_then_cmd(const char *s, size_t n, size_t j, bool pl1) {
    j = skip_sp(s, n, j);
    if (!starts_at(s, n, j, "time")) return false;
    size_t k = j + 4;
    if (k < n && is_w((unsigned char)s[k])) return false;
    k = skip_sp(s, n, k);
    if (k < n && s[k] == ';') k++;
    k = skip_sp(s, n, k);
    size_t e = cmd_word_end(s, n, k);
    return e > k && ws_has(&WS_UNIX, s + k, e - k) && !ws_has(&WS_AMBIG, s + k, e - k) &&
           !(pl1 && ws_has(&WS_PL1_SHORT_FP, s + k, e - k));
}

/* A command after a shell separator: "; id", "| nc", "&& curl", "`whoami`", "$(id)", "<<<". */
static bool separator_cmd(const char *s, size_t n, bool pl1) {
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        size_t j;
        if (c == ';' || c == '|' || c == '&' || c == '`' || c == '\n') j = i + 1;
        else if (c == '$' && i + 1 < n && s[i + 1] == '(') j = i + 2;
        else if (c == '<' && starts_at(s, n, i, "<<<")) j = i + 3;
        else continue;
        while (j < n && (s[j] == '|' || s[j] == '&' || s[j] == '`' || s[j] == '(' || s[j] == ';')) j++;
        if (command_at(s, n, j, pl1 ? CMD_PL1 : 0)) return true;
        if (time_prefix_then_cmd(s, n, j, pl1)) return true;
    }
    return false;
}

/* A command at the very start of the value, with an argument that looks like one. */
static bool leading_cmd(const char *s, size_t n, bool pl1) {
    size_t j = skip_sp(s, n, 0);
    if (time_prefix_then_cmd(s, n, j, pl1)) return true;
    size_t e = cmd_word_end(s, n, j);
    if (e == j) return false;
    if (!command_at(s, n, j, CMD_STRICT | (pl1 ? CMD_PL1_LEADING : 0))) return false;
    /* "word word" prose: need an option/path argument somewhere */
    for (size_t k = e; k < n; k++)
        if ((s[k] == '-' && k > 0 && s[k - 1] == ' ') || s[k] == '/' || s[k] == '|' || s[k] == '>' ||
            s[k] == '<' || s[k] == ';' || s[k] == '$')
            return true;
    return e >= n;
}

static bool rce_separator_cmd(const waf_norm *v, const waf_target *t) {
    (void)t;
    return separator_cmd(v->s, v->sn, true);
}

static bool rce_leading_cmd(const waf_norm *v, const waf_target *t) {
    (void)t;
    return leading_cmd(v->s, v->sn, true);
}

/* PL2 sibling (CRS 932236/932207): any known command word after a shell prefix, and in
 * argument-like values also at the start without one (never in headers: "curl/8.0" UAs). */
static bool rce_any_cmd(const waf_norm *v, const waf_target *t) {
    if (separator_cmd(v->s, v->sn, false)) return true;
    return (t->kind & (T_ARG | T_BODY | T_COOKIE)) && leading_cmd(v->s, v->sn, false);
}

static bool rce_expansion(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->d; size_t n = v->dn;
    for (size_t i = 0; i + 1 < n; i++) {
        char c = s[i], d = s[i + 1];
        if ((c == '$' && d == '(') || ((c == '<' || c == '>') && d == '(')) {
            if (memchr(s + i + 2, ')', n - i - 2)) return true;
        }
        if (c == '$' && d == '{') {
            const char *e = memchr(s + i + 2, '}', n - i - 2);
            if (e && e > s + i + 2) return true;
        }
    }
    /* glob evasion in paths: /e?c/, /[e]tc, /bi[n]/.  A bracket expression right after a
     * path separator ("/etc/[p]asswd", "/a[b//]c") is one whatever follows it, as in CRS 932130;
     * ? and * need the segment to end in another '/'. */
    for (size_t i = 0; i + 2 < n; i++) {
        if (s[i] != '/') continue;
        size_t b = i + 1;
        while (b < n && is_w((unsigned char)s[b])) b++;
        if (b + 2 < n && s[b] == '[' && s[b + 1] != ']') {
            const char *e = memchr(s + b + 2, ']', n - b - 2);
            /* part of a path name: more of the name or the next '/' follows ("/[a-z]{1,5}/" is a regex) */
            if (e && (size_t)(e - s) + 1 < n && (is_w((unsigned char)e[1]) || e[1] == '/')) return true;
        }
        size_t j = i + 1, wild = 0;
        while (j < n && s[j] != '/' && !is_sp((unsigned char)s[j])) {
            if (s[j] == '?' || s[j] == '*') wild++;
            else if (s[j] == '[') {
                const char *e = memchr(s + j, ']', n - j);
                if (!e) break;
                wild++;
                j = (size_t)(e - s);
            } else if (is_w((unsigned char)s[j])) { /* literal */ }
            else break;
            j++;
        }
        if (wild && j < n && s[j] == '/' && j - i > 1) return true;
    }
    return false;
}

static bool rce_unix_paths(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->s; size_t n = v->sn;
    static const char *const P[] = {"/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/local/bin/",
                                    "bin/sh", "bin/bash", "$shell", "${shell}", "/dev/tcp/",
                                    "/dev/udp/", "/dev/null", "/tmp/", NULL};
    for (const char *const *p = P; *p; p++) {
        long i = -1;
        while ((i = find_from(s, n, (size_t)(i + 1), *p)) >= 0) {
            size_t e = (size_t)i + strlen(*p);
            if ((*p)[strlen(*p) - 1] != '/') return true;
            if (strcmp(*p, "/tmp/") == 0) continue;
            size_t k = cmd_word_end(s, n, e);
            if (k > e) return true;
        }
    }
    /* "bin/<command>" */
    long i = -1;
    while ((i = find_from(s, n, (size_t)(i + 1), "bin/")) >= 0) {
        size_t e = (size_t)i + 4, k = cmd_word_end(s, n, e);
        if (k > e && ws_has(&WS_UNIX, s + e, k - e)) return true;
    }
    return false;
}

static bool rce_shellshock(const waf_norm *v, const waf_target *t) {
    (void)t;
    return waf_contains(v->w, v->wn, "(){");
}

static bool rce_windows(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->c; size_t n = v->cn;
    /* for /f %x in (...) do */
    long f = find_word(s, n, 0, "for");
    if (f >= 0) {
        long in = find_word(s, n, (size_t)f, "in");
        long d = in >= 0 ? find_word(s, n, (size_t)in, "do") : -1;
        if (d >= 0 && memchr(s + f, '%', (size_t)(in - f)) && memchr(s + in, '(', (size_t)(d - in))) return true;
    }
    /* cmd.exe conditionals: IF [NOT] EXIST|DEFINED|ERRORLEVEL ..., IF a==b cmd, IF a EQU b cmd */
    long f2 = find_word(s, n, 0, "if");
    if (f2 >= 0) {
        size_t j = skip_sp(s, n, (size_t)f2 + 2);
        bool switched = false;        /* "/i": case-insensitive compare, cmd.exe-only syntax */
        for (int round = 0; round < 2; round++) {
            if (starts_at(s, n, j, "/i ")) { j = skip_sp(s, n, j + 3); switched = true; }
            if (starts_at(s, n, j, "not ")) j = skip_sp(s, n, j + 4);
        }
        if (starts_at(s, n, j, "exist ") || starts_at(s, n, j, "defined ") || starts_at(s, n, j, "errorlevel ") ||
            (j < n && s[j] == '%') || (j + 1 < n && (s[j] == '"' || s[j] == '[') && s[j + 1] == '%'))
            return true;
        /* the whole value is a conditional: "IF a==b ...", "if "x" == "y" (" */
        bool leading = skip_sp(s, n, 0) == (size_t)f2;
        static const char *const CMP[] = {" equ ", " neq ", " lss ", " leq ", " gtr ", " geq ", "==", NULL};
        for (const char *const *c = CMP; *c; c++) {
            long k = find_from(s, n, j, *c);
            if (k >= 0 && k - (long)j < 40 && (leading || switched) && k > (long)j) {
                size_t a = skip_sp(s, n, (size_t)k + strlen(*c));
                if (a < n) return true;   /* a right-hand operand follows */
            }
            if (k >= 0 && k - (long)j < 40) {
                size_t a = skip_sp(s, n, (size_t)k + strlen(*c));
                while (a < n && !is_sp((unsigned char)s[a])) a++;
                a = skip_sp(s, n, a);
                size_t e = a;
                while (e < n && (is_w((unsigned char)s[e]) || s[e] == '@')) e++;
                if (e > a && (ws_has(&WS_UNIX, s + a + (s[a] == '@'), e - a - (s[a] == '@')) ||
                              starts_at(s, n, a, "goto") || starts_at(s, n, a, "@echo")))
                    return true;
            }
        }
    }
    static const char *const PS[] = {"invoke-webrequest", "invoke-expression", "invoke-command",
                                     "invoke-restmethod", "new-object", "downloadstring",
                                     "downloadfile", "start-process", "-encodedcommand",
                                     "set-mppreference", "iex(", "iex (", "iwr ", "win32_process",
                                     "get-wmiobject", "-executionpolicy", "frombase64string",
                                     "system.net.webclient", "%systemroot%", "%comspec%",
                                     "cmd.exe", "cmd /c", "powershell.exe", "hkey_", NULL};
    return any_sub(s, n, PS);
}

static bool rce_misc(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->s; size_t n = v->sn;
    /* alias x=cmd */
    long a = find_word(s, n, 0, "alias");
    if (a >= 0) {
        size_t e = (size_t)a + 5;
        const char *eq = memchr(s + e, '=', n - e);
        if (eq && eq - (s + e) < 32) return true;
    }
    const char *d = v->d; size_t dn = v->dn;
    /* tilde expansion "~+" "~-" */
    for (size_t i = 0; i + 1 < dn; i++)
        if (d[i] == '~' && (d[i + 1] == '+' || d[i + 1] == '-') && (i + 2 >= dn || is_digit((unsigned char)d[i + 2])) &&
            (i == 0 || is_sp((unsigned char)d[i - 1])))
            return true;
    /* brace expansion "{ls,-la}" "{,ip,a}" */
    for (size_t i = 0; i < dn; i++) {
        if (d[i] != '{') continue;
        size_t j = i + 1, commas = 0;
        bool clean = true;
        while (j < dn && d[j] != '}') {
            if (d[j] == ',') commas++;
            else if (is_sp((unsigned char)d[j]) || d[j] == '"' || d[j] == ':' || d[j] == '{' || d[j] == '[') { clean = false; break; }
            j++;
        }
        if (clean && j < dn && commas >= 1 && j > i + 2) {
            /* one of the items must be a command */
            size_t k = i + 1;
            while (k < j) {
                while (k < j && d[k] == ',') k++;
                size_t e = k;
                while (e < j && d[e] != ',') e++;
                if (e > k && (ws_has(&WS_UNIX, d + k, e - k) || d[k] == '/')) return true;
                k = e;
            }
        }
    }
    /* history expansion "!-1" "!!" */
    if (waf_contains(d, dn, "!-") ) {
        long i = find_from(d, dn, 0, "!-");
        if ((size_t)i + 2 < dn && is_digit((unsigned char)d[i + 2])) return true;
    }
    return false;
}

/* ================================================================ PHP */

static const char *const PHP_HIGH[] = {
    "base64_decode", "call_user_func", "call_user_func_array", "bzdecompress", "gzinflate",
    "gzuncompress", "gzdecode", "str_rot13", "file_put_contents", "file_get_contents",
    "create_function", "preg_replace", "assert_options", "passthru", "shell_exec", "proc_open",
    "pcntl_exec", "phpinfo", "fsockopen", "pfsockopen", "move_uploaded_file", "get_defined_vars",
    "get_defined_functions", "ini_set", "ini_get_all", "posix_getpwuid", "posix_uname",
    "register_shutdown_function", "register_tick_function", "array_walk", "array_filter",
    "array_map", "usort", "uasort", "uksort", "iterator_apply", "forward_static_call",
    "func_get_args", "convert_uudecode", "hex2bin", "highlight_file", "show_source",
    "php_uname", "getenv", "putenv", "set_error_handler", "set_exception_handler",
    "stream_get_contents", "stream_socket_client", "curl_exec", "curl_init", "mb_ereg_replace",
    "ereg_replace", "eregi_replace", "readfile", "fpassthru", "parse_str", "extract",
    "gethostbyname", "date_add", "ldap_get_entries", "odbc_connect", "sodium_crypto",
    "openssl_decrypt", "mcrypt_decrypt", "escapeshellcmd", "escapeshellarg", "dl", NULL};
static wordset WS_PHP_HIGH = {PHP_HIGH, 0, 0};
static const char *const PHP_FUNCS[] = {
    "exec", "system", "eval", "assert", "chr", "popen", "include", "include_once", "require",
    "require_once", "symlink", "chroot", "chmod", "chown", "unlink", "rmdir", "mkdir", "fopen",
    "fwrite", "fputs", "file", "copy", "rename", "touch", "unserialize", "serialize", "pack",
    "unpack", "ord", "range", "mail", "header", "glob", "scandir", "opendir", "readdir", "link",
    "tempnam", "tmpfile", "dir", "phpversion", "sprintf", "implode", "explode", "strrev",
    "str_replace", "substr", "strtolower", "strtoupper", "urldecode", "rawurldecode",
    "htmlspecialchars_decode", "stripslashes", "var_dump", "print_r", "var_export", "die", "exit",
    "proc_nice", "proc_terminate", "posix_kill", "posix_setuid", NULL};
static wordset WS_PHP_FUNCS = {PHP_FUNCS, 0, 0};

static bool php_open_tag(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->d; size_t n = v->dn;
    long i = -1;
    while ((i = find_from(s, n, (size_t)(i + 1), "<?")) >= 0) {
        size_t j = (size_t)i + 2;
        if (j >= n) return false;
        if (starts_at(s, n, j, "php") || s[j] == '=') return true;
        if (is_sp((unsigned char)s[j])) {
            /* short open tag: only with code-looking content after it */
            for (size_t k = j; k < n; k++)
                if (s[k] == ';' || s[k] == '(' || s[k] == '$' || s[k] == '`') return true;
        }
        if (starts_at(s, n, j, "xml")) {
            size_t k = skip_sp(s, n, j + 3);
            if (k > j + 3 && !starts_at(s, n, k, "version") && !starts_at(s, n, k, "encoding")) return true;
            if (k < n && (s[k] == ':' || s[k] == '(' || s[k] == ';')) return true;
        }
    }
    if (waf_contains(s, n, "[php]") || waf_contains(s, n, "[\\php]") || waf_contains(s, n, "[/php]")) return true;
    return false;
}

static bool php_wrappers(const waf_norm *v, const waf_target *t) {
    (void)t;
    static const char *const W[] = {"php://", "phar://", "zip://", "compress.zlib://",
                                    "compress.bzip2://", "ssh2.shell://", "ssh2.exec://",
                                    "ssh2.tunnel://", "ssh2.sftp://", "ssh2.scp://", "expect://",
                                    "glob://", "ogg://", "rar://", "zlib://", "bzip2://", NULL};
    return any_sub(v->w, v->wn, W);
}

static bool php_superglobals(const waf_norm *v, const waf_target *t) {
    (void)t;
    static const char *const G[] = {"$_server", "$_get", "$_post", "$_cookie", "$_request",
                                    "$_files", "$_env", "$_session", "$globals",
                                    "$http_raw_post_data", "$http_get_vars", "$http_post_vars",
                                    "$http_server_vars", "$http_cookie_vars", "$http_env_vars",
                                    "$http_session_vars", "$http_post_files", NULL};
    return any_sub(v->d, v->dn, G);
}

static bool php_call_cb(const char *s, size_t n, size_t st, size_t en, void *arg) {
    (void)arg;
    bool high = ws_has(&WS_PHP_HIGH, s + st, en - st);
    bool mid = !high && ws_has(&WS_PHP_FUNCS, s + st, en - st);
    if (!high && !mid) {
        /* distinctive names also match as a suffix: "foocall_user_func(" */
        for (size_t k = st + 1; k + 6 <= en; k++)
            if (ws_has(&WS_PHP_HIGH, s + k, en - k) && en - k >= 8) { high = true; break; }
        if (!high) return false;
    }
    size_t j = skip_sp(s, n, en);
    /* block, "//" and "#" comments between the name and "(", as CRS 933160 allows */
    for (int round = 0; round < 4 && j < n; round++) {
        if (s[j] == '/' && j + 1 < n && s[j + 1] == '*') {
            long e = find_from(s, n, j + 2, "*/");
            if (e < 0) break;
            j = skip_sp(s, n, (size_t)e + 2);
        } else if ((s[j] == '/' && j + 1 < n && s[j + 1] == '/') || s[j] == '#') {
            const char *e = memchr(s + j, '\n', n - j);
            if (!e) break;
            j = skip_sp(s, n, (size_t)(e - s) + 1);
        } else {
            break;
        }
    }
    if (j >= n || s[j] != '(') return false;
    if (high) return true;
    /* common functions need an argument-looking continuation: "exec (blah)", "chr(123)" */
    size_t k = skip_sp(s, n, j + 1);
    return k < n && (s[k] != ')' || (st > 0 && s[st - 1] == '@'));
}

static bool php_functions(const waf_norm *v, const waf_target *t) {
    (void)t;
    return each_word(v->d, v->dn, php_call_cb, NULL);
}

static bool php_ini(const waf_norm *v, const waf_target *t) {
    (void)t;
    static const char *const DIRECTIVES[] = {
        "allow_url_include", "allow_url_fopen", "auto_prepend_file", "auto_append_file",
        "disable_functions", "open_basedir", "safe_mode", "engine", "unserialize_max_depth",
        "register_globals", "display_errors", "error_log", "include_path", "short_open_tag",
        "sendmail_path", "extension_dir", "file_uploads", "upload_tmp_dir", "session.save_path",
        "expose_php", "magic_quotes_gpc", "suhosin.", NULL};
    const char *s = v->w; size_t n = v->wn;
    for (const char *const *d = DIRECTIVES; *d; d++) {
        long i = find_from(s, n, 0, *d);
        if (i < 0) continue;
        size_t e = (size_t)i + strlen(*d);
        if ((i == 0 || !is_w((unsigned char)s[i - 1])) && e < n && s[e] == '=') return true;
    }
    return false;
}

static bool php_serialized(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->d; size_t n = v->dn;
    for (size_t i = 0; i + 4 < n; i++) {
        char c = s[i];
        if ((c != 'o' && c != 'c' && c != 'a') || s[i + 1] != ':' || (i > 0 && is_w((unsigned char)s[i - 1]))) continue;
        size_t j = i + 2;
        size_t st = j;
        while (j < n && is_digit((unsigned char)s[j])) j++;
        if (j == st || j >= n || s[j] != ':') continue;
        j++;
        if (c == 'a' && j < n && s[j] == '{') return true;
        if ((c == 'o' || c == 'c') && j < n && s[j] == '"') return true;
    }
    return false;
}

/* Variable functions and variable variables: $$x(, $__[o](, ${'a'.'b'} */
static bool php_variable_call(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->w; size_t n = v->wn;
    for (size_t i = 0; i + 2 < n; i++) {
        if (s[i] != '$') continue;
        size_t j = i + 1;
        if (s[j] == '{') {
            const char *e = memchr(s + j, '}', n - j);
            if (e && e > s + j + 1) return true;
            continue;
        }
        while (j < n && s[j] == '$') j++;
        size_t st = j;
        while (j < n && is_w((unsigned char)s[j])) j++;
        if (j == st) continue;
        bool indexed = false;
        while (j < n && s[j] == '[') {
            const char *e = memchr(s + j, ']', n - j);
            if (!e || e == s + j + 1) { indexed = false; j = n; break; }
            indexed = true;
            j = (size_t)(e - s) + 1;
        }
        if (j < n && s[j] == '(' && (indexed || st > i + 1)) return true;
    }
    return false;
}

/* Callable expressions: (system)('id'), [system][0](ls), (string)"sys"."tem"(...) */
static bool php_callable_expr(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->w; size_t n = v->wn;
    for (size_t i = 0; i + 2 < n; i++) {
        if (s[i] != '(' && s[i] != '[') continue;
        char close = s[i] == '(' ? ')' : ']';
        size_t j = i + 1, st = j;
        while (j < n && is_w((unsigned char)s[j])) j++;
        if (j == st || j >= n || s[j] != close) continue;
        size_t k = j + 1;
        while (k + 2 < n && s[k] == '[' && is_digit((unsigned char)s[k + 1]) && s[k + 2] == ']') k += 3;
        if (k < n && s[k] == '(' && (ws_has(&WS_PHP_FUNCS, s + st, j - st) || ws_has(&WS_PHP_HIGH, s + st, j - st)))
            return true;
        if (k < n && (s[k] == '{' || s[k] == '"' || s[k] == '\'') &&
            (memcmp(s + st, "string", j - st) == 0 && j - st == 6))
            return true;
    }
    /* string concatenation building a function name then called: 'sys'.'tem' */
    if (waf_contains(s, n, "'.'") || waf_contains(s, n, "\".\"")) {
        if (waf_contains(s, n, "('") || waf_contains(s, n, "(\"")) return true;
    }
    return false;
}

/* ================================================================ Java */

static bool java_classes(const waf_norm *v, const waf_target *t) {
    (void)t;
    static const char *const PKG[] = {"java.lang.", "java.io.", "java.util.", "java.net.", "java.nio.",
                                      "java.beans.", "java.rmi.", "java.security.", "javax.",
                                      "com.sun.", "sun.misc.", "sun.reflect.", "jdk.internal.",
                                      "org.apache.commons.collections", "org.apache.xalan",
                                      "org.apache.tomcat", "org.apache.catalina", "org.omg.",
                                      "com.opensymphony.", "ognl.", "org.springframework.",
                                      "org.codehaus.groovy", "bsh.", "com.mchange", "org.hibernate",
                                      "org.mozilla.javascript", NULL};
    const char *s = v->w; size_t n = v->wn;
    for (const char *const *p = PKG; *p; p++) {
        long i = -1;
        while ((i = find_from(s, n, (size_t)(i + 1), *p)) >= 0) {
            if (i > 0 && (is_w((unsigned char)s[i - 1]) || s[i - 1] == '.')) continue;
            size_t e = (size_t)i + strlen(*p);
            if ((*p)[strlen(*p) - 1] != '.' || (e < n && is_alpha((unsigned char)s[e]))) return true;
        }
    }
    static const char *const K[] = {"runtime.getruntime", "processbuilder", "java.runtime",
                                    "java.processbuilder", ".getclass(", "classloader",
                                    "class.module", "getdeclaredmethod", "getdeclaredfield",
                                    "xmldecoder", "@java.", "new java.", "javax.script",
                                    "scriptenginemanager", "#_memberaccess", "#context[",
                                    "@ognl", "#application", "#request", "invokertransformer",
                                    "clonetransformer", "instantiatetransformer",
                                    "instantiatefactory", "prototypeclonefactory",
                                    "prototypeserializationfactory", "whileclosure", "forclosure",
                                    "chainedtransformer", "constanttransformer",
                                    "templatesimpl", "jndi:", ".exec(", NULL};
    if (any_sub(s, n, K)) return true;
    /* "java" and "runtime" tokens together */
    if (find_word(v->d, v->dn, 0, "java") >= 0 && find_from(s, n, 0, "runtime") >= 0) return true;
    return false;
}

static bool java_log4j(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->w; size_t n = v->wn;
    long i = find_from(s, n, 0, "${");
    if (i < 0) return false;
    /* strip lookups that evaluate to their default: ${::-j} ${env:x:-j} ${lower:j} */
    char buf[256];
    size_t o = 0;
    for (size_t k = (size_t)i; k < n && o + 1 < sizeof buf; k++) {
        char c = s[k];
        if (c == '$' || c == '{' || c == '}') continue;
        if (c == ':' && k + 1 < n && s[k + 1] == '-') {      /* ":-x" default: keep x */
            /* drop the lookup name collected since the last '{' */
            size_t back = o;
            while (back > 0 && buf[back - 1] != '\x01') back--;
            o = back;
            k++;
            continue;
        }
        if (k > 0 && s[k - 1] == '{') buf[o++] = '\x01';
        buf[o++] = c;
    }
    size_t w = 0;
    for (size_t k = 0; k < o; k++) if (buf[k] != '\x01') buf[w++] = buf[k];
    static const char *const L[] = {"jndi:", "jndi", "ldap:", "rmi:", "dns:", "iiop:", "corba:", "nds:", "nis:", NULL};
    for (const char *const *l = L; *l; l++)
        if (waf_contains(buf, w, *l)) return true;
    static const char *const LOOKUPS[] = {"${ctx:", "${env:", "${sys:", "${java:", "${lower:", "${upper:",
                                          "${main:", "${date:", "${base64:", "${bundle:", "${spring:",
                                          "${docker:", "${k8s:", "${log4j:", "${web:", "${sd:", NULL};
    return any_sub(s, n, LOOKUPS);
}

static const char *const B64_KEYWORDS[] = {
    "runtime", "processbuilder", "clonetransformer", "forclosure", "instantiatefactory",
    "instantiatetransformer", "invokertransformer", "prototypeclonefactory",
    "prototypeserializationfactory", "whileclosure", "getruntime", "child_process", "require(",
    "java.lang", "<script", "<?php", "/bin/sh", "cmd.exe", "eval(", "system(", "jndi:", NULL};

static int b64val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* Decode base64 text (lower-casing the output for keyword matching). */
static size_t b64_decode_shift(const char *s, size_t n, char *out, size_t cap) {
    uint32_t acc = 0; int bits = 0; size_t o = 0;
    for (size_t i = 0; i < n && o < cap; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0) break;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            char c = (char)((acc >> bits) & 0xFF);
            out[o++] = (char)((c >= 'A' && c <= 'Z') ? c | 0x20 : c);
        }
    }
    return o;
}

/* Base64-encoded payload keywords at any alignment.  Works on the raw value (case matters). */
static bool base64_payload_raw(const char *s, size_t n) {
    char buf[512];
    size_t i = 0;
    while (i < n) {
        while (i < n && b64val((unsigned char)s[i]) < 0) i++;
        size_t st = i;
        while (i < n && b64val((unsigned char)s[i]) >= 0) i++;
        size_t L = i - st;
        if (L < 8 || L > 4096) continue;
        /* a fragment cut from a longer base64 text: restore the 4-char alignment by
         * prepending 0..3 filler sextets ('A'), then look for keywords */
        for (size_t pad = 0; pad < 4; pad++) {
            char tmp[600];
            size_t tl = L < sizeof tmp - 4 ? L : sizeof tmp - 4;
            memset(tmp, 'A', pad);
            memcpy(tmp + pad, s + st, tl);
            size_t o = b64_decode_shift(tmp, tl + pad, buf, sizeof buf);
            for (const char *const *k = B64_KEYWORDS; *k; k++)
                if (waf_contains(buf, o, *k)) return true;
        }
    }
    return false;
}

/* ================================================================ generic / Node / SSRF / SSTI */

static bool gen_node(const waf_norm *v, const waf_target *t) {
    (void)t;
    static const char *const N[] = {"child_process", "process.env", "process.mainmodule",
                                    "process.binding", "__js_function", "require.main",
                                    "global.process", "constructor._load", "process.kill",
                                    "process.exit", "fs.readfile", "fs.writefile", "vm.runin",
                                    "new function(", "eval(string.fromcharcode",
                                    "module.constructor", NULL};
    if (any_sub(v->w, v->wn, N)) return true;
    static const char *const CON[] = {"console.log(", "console.info(", "console.error(",
                                      "console.warn(", "console.dir(", "console.debug(", NULL};
    if (any_sub(v->w, v->wn, CON)) return true;
    long i = find_from(v->w, v->wn, 0, "require(");
    if (i >= 0 && (i == 0 || !is_w((unsigned char)v->w[i - 1]))) return true;
    return false;
}

static bool gen_ruby(const waf_norm *v, const waf_target *t) {
    (void)t;
    static const char *const R[] = {"process.spawn(", "kernel.exec", "kernel.system", "kernel.spawn",
                                    "io.popen", "kernel.open", "open3.", "%x(", "%x{",
                                    "instance_eval", "class_eval", "module_eval", ".send(:", NULL};
    return any_sub(v->w, v->wn, R);
}

static bool gen_proto_pollution(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->w; size_t n = v->wn;
    if (waf_contains(s, n, "__proto__")) return true;
    long i = find_from(s, n, 0, "constructor");
    if (i >= 0) {
        size_t e = (size_t)i + 11;
        if (starts_at(s, n, e, "[prototype]") || starts_at(s, n, e, ".prototype") ||
            starts_at(s, n, e, "['prototype']") || starts_at(s, n, e, "[\"prototype\"]"))
            return true;
    }
    return false;
}

static bool gen_ssrf(const waf_norm *v, const waf_target *t) {
    (void)t;
    static const char *const H[] = {"169.254.169.254/openstack", "169.254.169.254/computemetadata",
                                    "169.254.169.254/metadata", "169.254.169.254/latest/meta-data",
                                    "169.254.169.254/latest/user-data", "/computemetadata/v1",
                                    "metadata.google.internal/computemetadata",
                                    "100.100.100.200/latest", "[fd00:ec2::254]",
                                    "localhost4", "localhost6", "gateway.docker.internal",
                                    "host.docker.internal", "host.containers.internal",
                                    "kubernetes.default", ".svc.cluster.local",
                                    "metadata.azure.com", "instance-data/", NULL};
    return any_sub(v->w, v->wn, H);
}

static bool gen_data_uri(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->w; size_t n = v->wn;
    long i = -1;
    while ((i = find_from(s, n, (size_t)(i + 1), "data:")) >= 0) {
        if (i > 0 && is_w((unsigned char)s[i - 1])) continue;
        size_t j = (size_t)i + 5;
        if (j < n && is_alpha((unsigned char)s[j])) {
            size_t e = j;
            while (e < n && is_w((unsigned char)s[e])) e++;
            if (e < n && s[e] == '/') return true;
        }
    }
    return false;
}

static bool gen_ssti(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->w; size_t n = v->wn;
    static const char *const OPEN[] = {"{{", "{%", "#{", "<%", "${{", "*{", "@{", NULL};
    for (const char *const *o = OPEN; *o; o++) {
        long i = -1;
        while ((i = find_from(s, n, (size_t)(i + 1), *o)) >= 0) {
            size_t j = (size_t)i + strlen(*o);
            size_t lim = j + 200 < n ? j + 200 : n;
            for (size_t k = j; k < lim; k++) {
                char c = s[k];
                if (c == '}' || (c == '%' && k + 1 < n && (s[k + 1] == '>' || s[k + 1] == '}'))) break;
                if (c == '(' || c == '*' || c == '[' || (c == '_' && k + 1 < n && s[k + 1] == '_') ||
                    starts_at(s, n, k, "if") || starts_at(s, n, k, "for") || starts_at(s, n, k, "import"))
                    return true;
            }
        }
    }
    return false;
}

static bool gen_dos_loop(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->w; size_t n = v->wn;
    long i = -1;
    while ((i = find_from(s, n, (size_t)(i + 1), "while(")) >= 0) {
        size_t j = (size_t)i + 6;
        if (j < n && s[j] == '!') j++;
        if (j < n && (s[j] == '+' || s[j] == '-')) j++;
        if (j < n && is_digit((unsigned char)s[j])) return true;
        if (starts_at(s, n, j, "this")) return true;
        /* constant conditions spelled with negation: while(!![]), while(!null), while(!!"") */
        size_t b = (size_t)i + 6, e = b;
        while (e < n && s[e] == '!') e++;
        size_t bangs = e - b;
        if (bangs == 0) continue;
        static const char *const FALSY[] = {"false)", "null)", "undefined)", "nan)", "0)", "\"\")", "'')",
                                            "``)", NULL};
        static const char *const OBJ[] = {"[])", "{})", "true)", "1)", NULL};
        for (const char *const *w = (bangs % 2) ? FALSY : OBJ; *w; w++)
            if (starts_at(s, n, e, *w)) return true;
    }
    return false;
}

/* ORM filter injection: a Django-style field lookup ("username__startswith",
 * "password__isnull") in a parameter name or JSON key lets a client query fields it
 * should not (leaking hashes and secrets a character at a time). */
static bool gen_orm_lookup(const waf_norm *v, const waf_target *t) {
    static const char *const LOOKUPS[] = {
        "exact", "iexact", "contains", "icontains", "in", "gt", "gte", "lt", "lte", "startswith",
        "istartswith", "endswith", "iendswith", "range", "isnull", "regex", "iregex", "contained_by",
        "overlap", "has_key", "has_keys", "has_any_keys", "search", "trigram_similar", "unaccent", NULL};
    static wordset WS_LOOKUPS = {LOOKUPS, 0, 0};
    const char *s = v->d; size_t n = v->dn;
    long i = -1;
    while ((i = find_from(s, n, (size_t)(i + 1), "__")) >= 0) {
        if (i == 0 || !is_alpha((unsigned char)s[i - 1])) continue;
        size_t a = (size_t)i + 2, e = a;
        while (e < n && (is_alpha((unsigned char)s[e]) || s[e] == '_')) e++;
        if (e < n && is_w((unsigned char)s[e])) continue;
        /* a name ends with it; in a raw body only a JSON key does ("a__gte": ...), not prose */
        if (t->kind == T_BODY) {
            if (e >= n || s[e] != '"' || skip_sp(s, n, e + 1) >= n || s[skip_sp(s, n, e + 1)] != ':') continue;
        } else if (e != n) {
            continue;
        }
        /* the last lookup of a chain: "a__b__startswith" */
        size_t last = a;
        for (size_t k = a; k + 1 < e; k++) if (s[k] == '_' && s[k + 1] == '_') last = k + 2;
        if (e > last && ws_has(&WS_LOOKUPS, s + last, e - last)) return true;
    }
    return false;
}

/* ================================================================ protocol (per value) */

static bool proto_smuggling(const waf_norm *v, const waf_target *t) {
    (void)t;
    static const char *const M[] = {"get", "post", "head", "options", "connect", "put", "delete",
                                    "trace", "track", "patch", "propfind", "proppatch", "mkcol",
                                    "copy", "move", "lock", "unlock", NULL};
    const char *s = v->d; size_t n = v->dn;
    for (const char *const *m = M; *m; m++) {
        long i = -1;
        while ((i = find_word(s, n, (size_t)(i + 1), *m)) >= 0) {
            size_t j = (size_t)i + strlen(*m);
            if (j >= n || !is_sp((unsigned char)s[j])) continue;
            j = skip_sp(s, n, j);
            size_t e = j;
            while (e < n && !is_sp((unsigned char)s[e])) e++;
            if (e == j) continue;
            size_t k = skip_sp(s, n, e);
            if (starts_at(s, n, k, "http/") && k + 5 < n && is_digit((unsigned char)s[k + 5])) return true;
        }
    }
    return false;
}

static bool proto_response_splitting(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->d; size_t n = v->dn;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\r' && s[i] != '\n') continue;
        size_t j = i + 1;
        while (j < n && !is_w((unsigned char)s[j]) && j - i < 8) j++;
        size_t e = j;
        while (e < n && (is_w((unsigned char)s[e]) || s[e] == '-')) e++;
        if (e == j || e >= n) continue;
        size_t k = e;
        while (k < n && (s[k] == '\r' || s[k] == '\n' || s[k] == ' ')) k++;
        if (k >= n || s[k] != ':') continue;
        size_t a = skip_sp(s, n, k + 1);
        if (a < n && (is_w((unsigned char)s[a]) || s[a] == '<' || s[a] == '/')) return true;
    }
    if (waf_contains(s, n, "<html") || waf_contains(s, n, "<meta")) {
        for (size_t i = 0; i < n; i++) if (s[i] == '\r' || s[i] == '\n') return true;
    }
    return false;
}

static bool proto_http_version_in_arg(const waf_norm *v, const waf_target *t) {
    (void)t;
    long i = find_word(v->d, v->dn, 0, "http");
    while (i >= 0) {
        size_t j = (size_t)i + 4;
        if (j + 1 < v->dn && v->d[j] == '/' && is_digit((unsigned char)v->d[j + 1])) return true;
        i = find_word(v->d, v->dn, (size_t)i + 1, "http");
    }
    return false;
}

static bool proto_crlf(const waf_norm *v, const waf_target *t) {
    (void)t;
    return memchr(v->d, '\n', v->dn) || memchr(v->d, '\r', v->dn);
}

static bool proto_ldap(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->w; size_t n = v->wn;
    for (size_t i = 0; i + 2 < n; i++) {
        if (s[i] != ')') continue;
        size_t j = i + 1;
        if (j < n && (s[j] == '!' || s[j] == '&' || s[j] == '|')) {
            if (j + 1 < n && s[j + 1] == '(') return true;
            continue;
        }
        if (s[j] != '(') continue;
        j++;
        if (j < n && (s[j] == '&' || s[j] == '|' || s[j] == '!' || s[j] == ')')) return true;
        size_t st = j;
        while (j < n && (is_w((unsigned char)s[j]) || s[j] == '-')) j++;
        if (j > st && j < n && (s[j] == '=' || ((s[j] == '>' || s[j] == '<' || s[j] == '~') && j + 1 < n && s[j + 1] == '=')))
            return true;
    }
    return false;
}

static bool proto_mod_proxy(const waf_norm *v, const waf_target *t) {
    (void)t;
    return waf_contains(v->d, v->dn, "unix:") && memchr(v->d, '|', v->dn);
}

/* ================================================================ upload names */

static bool ends_with_ext(const char *s, size_t n, const char *const *exts) {
    while (n > 0 && (s[n - 1] == '.' || is_sp((unsigned char)s[n - 1]))) n--;   /* "a.php...." */
    for (const char *const *e = exts; *e; e++) {
        size_t L = strlen(*e);
        if (n >= L && memcmp(s + n - L, *e, L) == 0) return true;
    }
    return false;
}

static bool upload_php(const waf_norm *v, const waf_target *t) {
    (void)t;
    static const char *const E[] = {".php", ".php3", ".php4", ".php5", ".php7", ".php8", ".phtml",
                                    ".phar", ".pht", ".phps", ".pgif", ".inc", NULL};
    return ends_with_ext(v->w, v->wn, E);
}

static bool upload_jsp(const waf_norm *v, const waf_target *t) {
    (void)t;
    static const char *const E[] = {".jsp", ".jspx", ".jspf", ".jsw", ".jsv", NULL};
    return ends_with_ext(v->w, v->wn, E);
}

static bool upload_restricted(const waf_norm *v, const waf_target *t) {
    (void)t;
    static const char *const F[] = {".htaccess", ".htpasswd", "web.config", "settings.php",
                                    "wp-config.php", ".user.ini", "php.ini", ".env", ".bashrc",
                                    "authorized_keys", NULL};
    return ends_with_ext(v->w, v->wn, F);
}

static bool upload_php_session(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->w; size_t n = v->wn;
    long i = -1;
    while ((i = find_from(s, n, (size_t)(i + 1), "sess_")) >= 0) {
        if (i > 0 && s[i - 1] != '/') continue;
        size_t j = (size_t)i + 5, e = j;
        while (e < n && (is_w((unsigned char)s[e]) || s[e] == '-')) e++;
        if (e - j >= 20 && e == n) return true;
    }
    return false;
}

/* ================================================================ session fixation */

static bool session_cookie_set(const waf_norm *v, const waf_target *t) {
    (void)t;
    const char *s = v->w; size_t n = v->wn;
    long i = find_from(s, n, 0, ".cookie=");
    if (i >= 0) return true;
    return waf_contains(s, n, "http-equiv=set-cookie") || waf_contains(s, n, "http-equiv=\"set-cookie") ||
           waf_contains(s, n, "http-equiv='set-cookie");
}

/* ================================================================ rule table */

#define R(id, fam, pl, sev, tg, fn) {id, fam, pl, sev, tg, fn}
const waf_rule WAF_RULES[] = {
    /* protocol attacks (921) */
    R(921110, WAF_FAM_PROTOCOL, 1, SEV_CRITICAL, T_ARGS_ALL, proto_smuggling),
    R(921120, WAF_FAM_PROTOCOL, 1, SEV_CRITICAL, T_ARGS_ALL, proto_response_splitting),
    R(921130, WAF_FAM_PROTOCOL, 1, SEV_CRITICAL, T_ARG | T_BODY, proto_http_version_in_arg),
    R(921150, WAF_FAM_PROTOCOL, 1, SEV_CRITICAL, T_ARG_NAME | T_COOKIE_NAME, proto_crlf),
    R(921190, WAF_FAM_PROTOCOL, 1, SEV_CRITICAL, T_PATH, proto_crlf),
    R(921200, WAF_FAM_PROTOCOL, 1, SEV_CRITICAL, T_ARGS_ALL, proto_ldap),
    R(921240, WAF_FAM_PROTOCOL, 1, SEV_CRITICAL, T_PATH | T_ARG_NAME | T_ARG, proto_mod_proxy),
    /* LFI (930) */
    R(930100, WAF_FAM_LFI, 1, SEV_CRITICAL, T_ARGS_HDR | T_PATH, lfi_traversal),
    R(930120, WAF_FAM_LFI, 1, SEV_CRITICAL, T_ARGS_ALL | T_HEADER | T_UA | T_REFERER | T_FILENAME, lfi_os_files),
    R(930130, WAF_FAM_LFI, 1, SEV_CRITICAL, T_PATH, lfi_restricted_path),
    /* RFI (931) */
    R(931100, WAF_FAM_RFI, 1, SEV_CRITICAL, T_ARG | T_BODY, rfi_ip_url),
    R(931120, WAF_FAM_RFI, 1, SEV_CRITICAL, T_ARG, rfi_trailing_q),
    R(931130, WAF_FAM_RFI, 1, SEV_CRITICAL, T_ARG, rfi_offsite),
    /* RCE (932) */
    R(932230, WAF_FAM_RCE, 1, SEV_CRITICAL, T_ARGS_ALL | T_UA | T_REFERER | T_HEADER, rce_separator_cmd),
    R(932250, WAF_FAM_RCE, 1, SEV_CRITICAL, T_ARG | T_BODY | T_COOKIE, rce_leading_cmd),
    R(932236, WAF_FAM_RCE, 2, SEV_CRITICAL, T_ARGS_HDR, rce_any_cmd),
    R(932130, WAF_FAM_RCE, 1, SEV_CRITICAL, T_ARGS_ALL | T_UA | T_REFERER, rce_expansion),
    R(932160, WAF_FAM_RCE, 1, SEV_CRITICAL, T_ARGS_ALL | T_UA | T_REFERER, rce_unix_paths),
    R(932170, WAF_FAM_RCE, 1, SEV_CRITICAL, T_ARGS_HDR, rce_shellshock),
    R(932120, WAF_FAM_RCE, 1, SEV_CRITICAL, T_ARGS_ALL, rce_windows),
    R(932175, WAF_FAM_RCE, 1, SEV_CRITICAL, T_ARGS_ALL, rce_misc),
    R(932180, WAF_FAM_RCE, 1, SEV_CRITICAL, T_FILENAME, upload_restricted),
    /* PHP (933) */
    R(933100, WAF_FAM_PHP, 1, SEV_CRITICAL, T_ARGS_ALL, php_open_tag),
    R(933110, WAF_FAM_PHP, 1, SEV_CRITICAL, T_FILENAME, upload_php),
    R(933120, WAF_FAM_PHP, 1, SEV_CRITICAL, T_ARGS_ALL, php_ini),
    R(933130, WAF_FAM_PHP, 1, SEV_CRITICAL, T_ARGS_ALL, php_superglobals),
    R(933140, WAF_FAM_PHP, 1, SEV_CRITICAL, T_ARGS_ALL, php_wrappers),
    R(933150, WAF_FAM_PHP, 1, SEV_CRITICAL, T_ARGS_ALL, php_functions),
    R(933170, WAF_FAM_PHP, 1, SEV_CRITICAL, T_ARGS_ALL, php_serialized),
    R(933180, WAF_FAM_PHP, 1, SEV_CRITICAL, T_ARGS_ALL, php_variable_call),
    R(933210, WAF_FAM_PHP, 1, SEV_CRITICAL, T_ARGS_ALL, php_callable_expr),
    R(933220, WAF_FAM_PHP, 1, SEV_CRITICAL, T_FILENAME, upload_php_session),
    /* generic (934) */
    R(934100, WAF_FAM_GENERIC, 1, SEV_CRITICAL, T_ARGS_ALL, gen_node),
    R(934130, WAF_FAM_GENERIC, 1, SEV_CRITICAL, T_ARGS_ALL, gen_proto_pollution),
    R(934150, WAF_FAM_GENERIC, 1, SEV_CRITICAL, T_ARGS_ALL, gen_ruby),
    R(934160, WAF_FAM_GENERIC, 1, SEV_CRITICAL, T_ARGS_ALL, gen_dos_loop),
    R(934170, WAF_FAM_GENERIC, 1, SEV_CRITICAL, T_ARG | T_BODY, gen_data_uri),
    R(934190, WAF_FAM_GENERIC, 1, SEV_CRITICAL, T_ARG | T_BODY, gen_ssrf),
    R(934200, WAF_FAM_GENERIC, 1, SEV_CRITICAL, T_ARGS_ALL, gen_ssti),
    R(934210, WAF_FAM_GENERIC, 1, SEV_CRITICAL, T_ARG_NAME | T_COOKIE_NAME | T_BODY, gen_orm_lookup),
    /* XSS (941) */
    R(941110, WAF_FAM_XSS, 1, SEV_CRITICAL, T_ARGS_HDR | T_PATH, xss_tag),
    R(941120, WAF_FAM_XSS, 1, SEV_CRITICAL, T_ARGS_HDR | T_PATH, xss_handler),
    R(941170, WAF_FAM_XSS, 1, SEV_CRITICAL, T_ARGS_ALL, xss_uri),
    R(941180, WAF_FAM_XSS, 1, SEV_CRITICAL, T_ARGS_ALL, xss_js),
    R(941130, WAF_FAM_XSS, 1, SEV_CRITICAL, T_ARGS_ALL, xss_xmlns),
    R(941310, WAF_FAM_XSS, 1, SEV_CRITICAL, T_ARGS_ALL, xss_7bit),
    /* SQLi (942) */
    R(942190, WAF_FAM_SQLI, 1, SEV_CRITICAL, T_ARGS_ALL | T_PATH | T_REFERER, sqli_union),
    R(942160, WAF_FAM_SQLI, 1, SEV_CRITICAL, T_ARGS_ALL | T_PATH, sqli_time),
    R(942151, WAF_FAM_SQLI, 1, SEV_CRITICAL, T_ARGS_ALL, sqli_func),
    R(942360, WAF_FAM_SQLI, 1, SEV_CRITICAL, T_ARGS_ALL, sqli_select),
    R(942350, WAF_FAM_SQLI, 1, SEV_CRITICAL, T_ARGS_ALL, sqli_statement),
    R(942100, WAF_FAM_SQLI, 1, SEV_CRITICAL, T_ARGS_ALL | T_PATH, sqli_tautology),
    R(942540, WAF_FAM_SQLI, 1, SEV_CRITICAL, T_ARGS_ALL | T_REFERER, sqli_quote_breakout),
    R(942140, WAF_FAM_SQLI, 1, SEV_CRITICAL, T_ARGS_ALL, sqli_objects),
    R(942120, WAF_FAM_SQLI, 1, SEV_CRITICAL, T_ARGS_ALL | T_PATH, sqli_operators),
    R(942320, WAF_FAM_SQLI, 1, SEV_CRITICAL, T_ARGS_ALL | T_PATH, sqli_pg_cast),
    R(942290, WAF_FAM_SQLI, 1, SEV_CRITICAL, T_ARGS_ALL, sqli_mongo),
    R(942230, WAF_FAM_SQLI, 1, SEV_CRITICAL, T_ARGS_ALL, sqli_misc),
    R(942220, WAF_FAM_SQLI, 1, SEV_CRITICAL, T_ARGS_ALL, sqli_overflow),
    /* session fixation (943) */
    R(943100, WAF_FAM_SESSION, 1, SEV_CRITICAL, T_ARGS_ALL, session_cookie_set),
    /* Java (944) */
    R(944130, WAF_FAM_JAVA, 1, SEV_CRITICAL, T_ARGS_HDR, java_classes),
    R(944150, WAF_FAM_JAVA, 1, SEV_CRITICAL, T_ARGS_HDR | T_PATH, java_log4j),
    R(944140, WAF_FAM_JAVA, 1, SEV_CRITICAL, T_FILENAME, upload_jsp),
};
const int WAF_N_RULES = (int)(sizeof WAF_RULES / sizeof WAF_RULES[0]);

bool waf_base64_payload(const char *raw, size_t n) { return base64_payload_raw(raw, n); }

bool waf_is_scanner_ua(const char *ua, size_t n) {
    static const char *const S[] = {"nikto", "sqlmap", "nessus", "arachni", "zgrab", "masscan", "nmap",
                                    "acunetix", "w3af", "dirbuster", "gobuster", "wpscan", "nuclei",
                                    "havij", "openvas", "netsparker", "jaeles", "ffuf", "wfuzz",
                                    "whatweb", "zmeu", "morfeus", "paros", "webinspect",
                                    "appscan", "burpcollaborator", "commix", "nsauditor",
                                    "pangolin", "qualys", "skipfish", "sqlninja", "fimap",
                                    "dirb/", "brutus", "bsqlbf", "httrack", "feroxbuster",
                                    "xsstrike", "vega/", "zaproxy", "owasp zap", "metis",
                                    "mysqloit", "n-stealth", "teh forest lobster", "webshag",
                                    "whcc/", "absinthe", "black widow", "blackwidow", "cgichk",
                                    "crimscanner", "datacha0s", "floodgate", "harvest",
                                    "internet ninja", "sf/", "wordpress hash grabber", NULL};
    return any_sub(ua, n, S);
}
