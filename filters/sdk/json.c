/* Strict recursive-descent JSON parser; see json.h. */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

typedef struct {
    const char *s;
    size_t len, pos;
    char *err;
    size_t err_len;
    bool failed;
} parser;

static void fail(parser *p, const char *msg) {
    if (!p->failed && p->err && p->err_len) snprintf(p->err, p->err_len, "offset %zu: %s", p->pos, msg);
    p->failed = true;
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static json_value *new_value(json_type t) {
    json_value *v = calloc(1, sizeof *v);
    if (!v) abort();
    v->type = t;
    return v;
}

static bool literal(parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos >= n && memcmp(p->s + p->pos, word, n) == 0) {
        p->pos += n;
        return true;
    }
    return false;
}

static int hex4(parser *p) {
    if (p->len - p->pos < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos + i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    p->pos += 4;
    return v;
}

static void put_utf8(char *out, size_t *n, unsigned cp) {
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*n)++] = (char)(0xC0 | cp >> 6);
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xE0 | cp >> 12);
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        out[(*n)++] = (char)(0xF0 | cp >> 18);
        out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

/* Parses a string starting at the opening quote; the decoded text is never longer than the
 * source token, so the buffer is sized by the token (sizing it by the rest of the document
 * made memory quadratic in the number of strings). */
static char *parse_string_raw(parser *p, size_t *out_len) {
    p->pos++; /* opening quote */
    size_t start = p->pos, end = start;
    while (end < p->len && p->s[end] != '"') end += (p->s[end] == '\\') ? 2 : 1;
    if (end > p->len) end = p->len;
    char *out = malloc(end - start + 1);
    if (!out) abort();
    size_t n = 0;
    while (p->pos < p->len) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            out[n] = 0;
            *out_len = n;
            return out;
        }
        if (c < 0x20) {
            fail(p, "control character in string");
            break;
        }
        if (c != '\\') {
            out[n++] = (char)c;
            p->pos++;
            continue;
        }
        p->pos++;
        if (p->pos >= p->len) break;
        char e = p->s[p->pos++];
        switch (e) {
        case '"': out[n++] = '"'; break;
        case '\\': out[n++] = '\\'; break;
        case '/': out[n++] = '/'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            int cp = hex4(p);
            if (cp < 0) {
                fail(p, "bad \\u escape");
                free(out);
                return NULL;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                int lo = -1;
                if (p->len - p->pos >= 2 && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u') {
                    p->pos += 2;
                    lo = hex4(p);
                }
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    fail(p, "unpaired surrogate in \\u escape");
                    free(out);
                    return NULL;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                fail(p, "unpaired surrogate in \\u escape");
                free(out);
                return NULL;
            }
            put_utf8(out, &n, (unsigned)cp);
            break;
        }
        default:
            fail(p, "bad escape in string");
            free(out);
            return NULL;
        }
    }
    fail(p, "unterminated string");
    free(out);
    return NULL;
}

static json_value *parse_value(parser *p, int depth);

static void push(json_value *v, json_value *item, char *key) {
    if ((v->count & (v->count - 1)) == 0) { /* grow at powers of two */
        size_t cap = v->count ? v->count * 2 : 1;
        v->items = realloc(v->items, cap * sizeof *v->items);
        if (!v->items) abort();
        if (v->type == JSON_OBJECT) {
            v->keys = realloc(v->keys, cap * sizeof *v->keys);
            if (!v->keys) abort();
        }
    }
    v->items[v->count] = item;
    if (v->type == JSON_OBJECT) v->keys[v->count] = key;
    v->count++;
}

static json_value *parse_container(parser *p, int depth, bool object) {
    json_value *v = new_value(object ? JSON_OBJECT : JSON_ARRAY);
    char close = object ? '}' : ']';
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return v;
    }
    for (;;) {
        char *key = NULL;
        if (object) {
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != '"') {
                fail(p, "expected a string key");
                break;
            }
            size_t kl;
            key = parse_string_raw(p, &kl);
            if (!key) break;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                fail(p, "expected ':'");
                free(key);
                break;
            }
            p->pos++;
        }
        json_value *item = parse_value(p, depth + 1);
        if (!item) {
            free(key);
            break;
        }
        push(v, item, key);
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            return v;
        }
        fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
        break;
    }
    json_free(v);
    return NULL;
}

static json_value *parse_number(parser *p) {
    size_t start = p->pos;
    if (p->s[p->pos] == '-') p->pos++;
    if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9') {
        fail(p, "bad number");
        return NULL;
    }
    if (p->s[p->pos] == '0') {
        p->pos++;
    } else {
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        size_t d = p->pos;
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
        if (d == p->pos) {
            fail(p, "bad number");
            return NULL;
        }
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        size_t d = p->pos;
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
        if (d == p->pos) {
            fail(p, "bad number");
            return NULL;
        }
    }
    char buf[64];
    size_t n = p->pos - start;
    if (n >= sizeof buf) {
        fail(p, "number too long");
        return NULL;
    }
    memcpy(buf, p->s + start, n);
    buf[n] = 0;
    json_value *v = new_value(JSON_NUMBER);
    v->number = strtod(buf, NULL);
    return v;
}

static json_value *parse_value(parser *p, int depth) {
    if (depth > JSON_MAX_DEPTH) {
        fail(p, "nesting too deep");
        return NULL;
    }
    skip_ws(p);
    if (p->pos >= p->len) {
        fail(p, "unexpected end of input");
        return NULL;
    }
    char c = p->s[p->pos];
    if (c == '{' || c == '[') return parse_container(p, depth, c == '{');
    if (c == '"') {
        size_t n;
        char *s = parse_string_raw(p, &n);
        if (!s) return NULL;
        json_value *v = new_value(JSON_STRING);
        v->string = s;
        v->string_len = n;
        return v;
    }
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p);
    if (literal(p, "true") || literal(p, "false")) {
        json_value *v = new_value(JSON_BOOL);
        v->boolean = c == 't';
        return v;
    }
    if (literal(p, "null")) return new_value(JSON_NULL);
    fail(p, "unexpected character");
    return NULL;
}

json_value *json_parse(const char *text, size_t len, char *err, size_t err_len) {
    parser p = {text, len, 0, err, err_len, false};
    json_value *v = parse_value(&p, 0);
    if (!v) return NULL;
    skip_ws(&p);
    if (p.pos != p.len) {
        fail(&p, "trailing characters after the value");
        json_free(v);
        return NULL;
    }
    return v;
}

void json_free(json_value *v) {
    if (!v) return;
    for (size_t i = 0; i < v->count; i++) {
        json_free(v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->string);
    free(v);
}

const json_value *json_get(const json_value *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT) return NULL;
    for (size_t i = obj->count; i-- > 0;)
        if (strcmp(obj->keys[i], key) == 0) return obj->items[i];
    return NULL;
}

const json_value *json_at(const json_value *arr, size_t i) {
    if (!arr || arr->type != JSON_ARRAY || i >= arr->count) return NULL;
    return arr->items[i];
}

size_t json_len(const json_value *v) {
    return v && (v->type == JSON_ARRAY || v->type == JSON_OBJECT) ? v->count : 0;
}

const char *json_string(const json_value *v, const char *dflt) {
    return v && v->type == JSON_STRING ? v->string : dflt;
}

double json_number(const json_value *v, double dflt) {
    return v && v->type == JSON_NUMBER ? v->number : dflt;
}

bool json_bool(const json_value *v, bool dflt) {
    return v && v->type == JSON_BOOL ? v->boolean : dflt;
}

bool json_is(const json_value *v, json_type type) {
    return v && v->type == type;
}
