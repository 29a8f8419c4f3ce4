/*
 * Request intake (above body.c and tx.c; beside exec.c; filter.c and warmup.c call it): the
 * request line, headers, connection and body a host hands over become the transaction's
 * variables and collections (REQUEST_URI, ARGS_GET, REQUEST_COOKIES, ...), and the body goes
 * to the body processor its Content-Type (or a ctl action) chose.
 */
#include <string.h>

#include "waf.h"

/* ------------------------------------------------------------------ request input */

void tx_set_connection(waf_tx *tx, wstr client_ip, int client_port, wstr server_ip, int server_port) {
    tx_set_sc(tx, V_REMOTE_ADDR, dupw(tx, client_ip.p, client_ip.n));
    tx_set_sc(tx, V_REMOTE_HOST, tx->sc[V_REMOTE_ADDR]);
    tx_set_sc(tx, V_REMOTE_PORT, tx_num(tx, client_port));
    tx_set_sc(tx, V_SERVER_ADDR, dupw(tx, server_ip.p, server_ip.n));
    tx_set_sc(tx, V_SERVER_PORT, tx_num(tx, server_port));
}

void tx_set_unique_id(waf_tx *tx, wstr id) { tx_set_sc(tx, V_UNIQUE_ID, dupw(tx, id.p, id.n)); }

static inline bool hexc(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static inline int hv(char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

/* %XX decoding (invalid sequences kept), '+' -> space when `plus`; sets *invalid.  Eight bytes
 * a step up to each '%' (a form body's '+' every few bytes leaves no long plain runs), the
 * escape itself byte by byte; words load little-endian (wasm32, x86). */
static wstr url_decode(waf_tx *tx, wstr s, bool plus, bool *invalid) {
    char *o = ar_alloc(&tx->a, s.n + 1);
    size_t i = 0, k = 0;
    while (i < s.n) {
        if (i + 8 <= s.n) {   /* o has room: k <= i */
            uint64_t w;
            memcpy(&w, s.p + i, 8);
            uint64_t pct = bytes_eq(w, '%');
            if (plus) w ^= (bytes_eq(w, '+') >> 7) * ('+' ^ ' ');
            memcpy(o + k, &w, 8);
            size_t run = pct ? (size_t)__builtin_ctzll(pct) / 8 : 8;
            i += run;
            k += run;
            if (run == 8) continue;
        }
        char c = s.p[i];
        if (c == '%') {
            if (i + 2 < s.n && hexc(s.p[i + 1]) && hexc(s.p[i + 2])) {
                o[k++] = (char)(hv(s.p[i + 1]) * 16 + hv(s.p[i + 2]));
                i += 3;
                continue;
            }
            if (invalid) *invalid = true;
            o[k++] = c;
        } else {
            o[k++] = c == '+' && plus ? ' ' : c;
        }
        i++;
    }
    o[k] = 0;
    return (wstr){o, k};
}

void body_urlencoded(waf_tx *tx, wstr body, int target_coll) {
    size_t i = 0;
    while (i < body.n) {
        const char *amp = memchr(body.p + i, '&', body.n - i);
        size_t e = amp ? (size_t)(amp - body.p) : body.n;
        wstr part = {body.p + i, e - i};
        const char *eq = memchr(part.p, '=', part.n);
        wstr k = eq ? (wstr){part.p, (size_t)(eq - part.p)} : part;
        wstr v = eq ? (wstr){eq + 1, part.n - (size_t)(eq - part.p) - 1} : (wstr){"", 0};
        bool invalid = false;
        wstr dk = url_decode(tx, k, true, &invalid), dv = url_decode(tx, v, true, &invalid);
        if (invalid) tx_set_sc(tx, V_URLENCODED_ERROR, WSTR("1"));
        tx_add_arg(tx, target_coll, dk, dv);
        i = e + 1;
    }
}

void tx_set_request_line(waf_tx *tx, wstr method, wstr uri, wstr protocol) {
    method = dupw(tx, method.p, method.n);
    uri = dupw(tx, uri.p, uri.n);
    protocol = dupw(tx, protocol.p, protocol.n);
    tx_set_sc(tx, V_REQUEST_METHOD, method);
    tx_set_sc(tx, V_REQUEST_PROTOCOL, protocol);
    tx_set_sc(tx, V_REQUEST_URI_RAW, uri);
    size_t ln = method.n + 1 + uri.n + 1 + protocol.n;
    char *line = ar_alloc(&tx->a, ln + 1);
    /* copied, not printed: snprintf costs ~4k Wasm instructions a request */
    memcpy(line, method.p, method.n);
    line[method.n] = ' ';
    memcpy(line + method.n + 1, uri.p, uri.n);
    line[method.n + 1 + uri.n] = ' ';
    memcpy(line + method.n + 1 + uri.n + 1, protocol.p, protocol.n);
    line[ln] = 0;
    tx_set_sc(tx, V_REQUEST_LINE, (wstr){line, ln});
    const char *q = memchr(uri.p, '?', uri.n);
    if (q) tx_set_sc(tx, V_QUERY_STRING, (wstr){q + 1, uri.n - (size_t)(q - uri.p) - 1});
    else tx_set_sc(tx, V_QUERY_STRING, (wstr){"", 0});
    wstr dec = url_decode(tx, uri, false, NULL);
    const char *dq = memchr(dec.p, '?', dec.n);
    wstr path = dq ? (wstr){dec.p, (size_t)(dq - dec.p)} : dec;
    tx_set_sc(tx, V_REQUEST_FILENAME, path);
    tx_set_sc(tx, V_PATH_INFO, path);
    for (size_t i = path.n; i-- > 0;) {
        if (path.p[i] == '/' || path.p[i] == '\\') {
            if (i + 1 < path.n) tx_set_sc(tx, V_REQUEST_BASENAME, (wstr){path.p + i + 1, path.n - i - 1});
            break;
        }
    }
    if (!tx->sc_set[V_REQUEST_BASENAME] && path.n && !memchr(path.p, '/', path.n)) tx_set_sc(tx, V_REQUEST_BASENAME, path);
    /* absolute-form: REQUEST_URI keeps only the path and query */
    wstr parsed = dec;
    if (dec.n && dec.p[0] != '/') {
        const char *colon = memchr(dec.p, ':', dec.n);
        if (colon && (size_t)(colon - dec.p) + 3 <= dec.n && colon[1] == '/' && colon[2] == '/') {
            const char *host = colon + 3;
            const char *slash = memchr(host, '/', (size_t)(dec.p + dec.n - host));
            if (slash) parsed = (wstr){slash, (size_t)(dec.p + dec.n - slash)};
        }
    }
    tx_set_sc(tx, V_REQUEST_URI, parsed);
    if (q) body_urlencoded(tx, tx->sc[V_QUERY_STRING], V_ARGS_GET);
}

void tx_add_header(waf_tx *tx, wstr name, wstr value) {
    name = dupw(tx, name.p, name.n);
    value = dupw(tx, value.p, value.n);
    coll_add(&tx->a, &tx->c[V_REQUEST_HEADERS], name, value);
    if (ieqz(name, "cookie")) {
        /* split on ';', key up to the first '=', leading spaces of the key dropped */
        size_t end = value.n;
        size_t i = 0;
        /* the last pair loses trailing whitespace */
        while (end > 0 && (value.p[end - 1] == ' ' || value.p[end - 1] == '\t')) end--;
        while (i < end) {
            const char *semi = memchr(value.p + i, ';', end - i);
            size_t e = semi ? (size_t)(semi - value.p) : end;
            wstr c = {value.p + i, e - i};
            i = e + 1;
            if (!c.n) continue;
            const char *eq = memchr(c.p, '=', c.n);
            wstr k = eq ? (wstr){c.p, (size_t)(eq - c.p)} : c;
            wstr v = eq ? (wstr){eq + 1, c.n - (size_t)(eq - c.p) - 1} : (wstr){"", 0};
            while (k.n && (k.p[0] == ' ' || k.p[0] == '\t' || k.p[0] == '\n' || k.p[0] == '\r')) { k.p++; k.n--; }
            if (!k.n) continue;
            coll_add(&tx->a, &tx->c[V_REQUEST_COOKIES], k, v);
        }
    } else if (ieqz(name, "content-type")) {
        if (value.n >= 19 && ieq(value.p, 19, "multipart/form-data", 19)) {
            tx->body_processor = BP_MULTIPART;
            tx_set_sc(tx, V_REQBODY_PROCESSOR, WSTR("MULTIPART"));
        }
        if (value.n >= 33 && ieq(value.p, 33, "application/x-www-form-urlencoded", 33)) {
            tx->body_processor = BP_URLENCODED;
            tx_set_sc(tx, V_REQBODY_PROCESSOR, WSTR("URLENCODED"));
        }
    }
}

void tx_headers_done(waf_tx *tx) {
    tx_set_sc(tx, V_ARGS_COMBINED_SIZE, tx->args_size ? tx_num(tx, tx->args_size) : WSTR("0"));
    tx_set_sc(tx, V_DURATION, WSTR("0"));
}

void tx_process_body(waf_tx *tx, const char *body, size_t len, bool truncated) {
    (void)truncated;
    tx->body_processed = true;
    wstr b = {body ? body : "", len};
    tx_set_sc(tx, V_REQBODY_ERROR, WSTR("0"));
    tx_set_sc(tx, V_REQBODY_PROCESSOR_ERROR, WSTR("0"));
    if (!tx->body_access) return;
    wstr copy = dupw(tx, b.p, b.n);
    long long args_before = tx->args_size;
    switch (tx->body_processor) {
    case BP_URLENCODED: body_urlencoded(tx, copy, V_ARGS_POST); break;
    case BP_MULTIPART: body_multipart(tx, copy); break;
    case BP_JSON: body_json(tx, copy); break;
    case BP_XML: body_xml(tx, copy); break;
    default: break;
    }
    if (tx->args_size != args_before) tx_set_sc(tx, V_ARGS_COMBINED_SIZE, tx_num(tx, tx->args_size));
    if (len) {
        tx_set_sc(tx, V_REQUEST_BODY, copy);
        tx_set_sc(tx, V_REQUEST_BODY_LENGTH, tx_num(tx, (long long)len));
    }
}
