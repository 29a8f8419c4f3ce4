/*
 * The transaction layer (above util.c; below every unit that reads or fills a
 * request): a transaction's life (init, reset between requests, free), its scalar
 * variables, its collections by name (TX, and the per-transaction IP, SESSION, ...), and the
 * numbers and request arguments the layers above store in them.  Nothing here runs rules,
 * operators or body parsers: body.c, intake.c, expand.c, operator.c and exec.c all write
 * through it.
 */
#include <stdlib.h>
#include <string.h>

#include "pcre2.h"
#include "waf.h"

/* ------------------------------------------------------------------ transaction */

void waf_tx_init(waf_tx *tx, const waf_rules *rules) {
    memset(tx, 0, sizeof *tx);
    tx->rules = rules;
    tx->match_data = pcre2_match_data_create(10, NULL);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    pcre2_set_match_limit(mc, (uint32_t)rules->pcre_match_limit);
    pcre2_set_depth_limit(mc, (uint32_t)rules->pcre_match_limit_recursion);
    tx->match_ctx = mc;
    if (!tx->match_data || !mc) abort();
    waf_tx_reset(tx);
}

void waf_tx_reset(waf_tx *tx) {
    const waf_rules *r = tx->rules;
    void *md = tx->match_data, *mc = tx->match_ctx;
    arena a = tx->a;
    ar_reset(&a);
    memset(tx, 0, sizeof *tx);
    tx->a = a;
    tx->rules = r;
    tx->match_data = md;
    tx->match_ctx = mc;
    tx->engine = r->engine;
    tx->body_access = r->body_access;
    tx->highest_severity = 255;
}

void waf_tx_free(waf_tx *tx) {
    pcre2_match_data_free(tx->match_data);
    pcre2_match_context_free(tx->match_ctx);
    ar_free(&tx->a);
}

/* "0" .. "99", NUL-separated: the counts and scores most rules produce need no copy */
static const char SMALL_NUMS[] =
    "0\0" "1\0" "2\0" "3\0" "4\0" "5\0" "6\0" "7\0" "8\0" "9\0"
    "10\0" "11\0" "12\0" "13\0" "14\0" "15\0" "16\0" "17\0" "18\0" "19\0"
    "20\0" "21\0" "22\0" "23\0" "24\0" "25\0" "26\0" "27\0" "28\0" "29\0"
    "30\0" "31\0" "32\0" "33\0" "34\0" "35\0" "36\0" "37\0" "38\0" "39\0"
    "40\0" "41\0" "42\0" "43\0" "44\0" "45\0" "46\0" "47\0" "48\0" "49\0"
    "50\0" "51\0" "52\0" "53\0" "54\0" "55\0" "56\0" "57\0" "58\0" "59\0"
    "60\0" "61\0" "62\0" "63\0" "64\0" "65\0" "66\0" "67\0" "68\0" "69\0"
    "70\0" "71\0" "72\0" "73\0" "74\0" "75\0" "76\0" "77\0" "78\0" "79\0"
    "80\0" "81\0" "82\0" "83\0" "84\0" "85\0" "86\0" "87\0" "88\0" "89\0"
    "90\0" "91\0" "92\0" "93\0" "94\0" "95\0" "96\0" "97\0" "98\0" "99\0";

wstr tx_num(waf_tx *tx, long long v) {
    if (v >= 0 && v < 10) return (wstr){SMALL_NUMS + 2 * v, 1};
    if (v >= 10 && v < 100) return (wstr){SMALL_NUMS + 20 + 3 * (v - 10), 2};
    /* decimal digits by hand: setvar arithmetic and per-argument sizes call this often */
    char b[24], *e = b + sizeof b, *p = e;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do { *--p = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) *--p = '-';
    return dupw(tx, p, (size_t)(e - p));
}

/* ------------------------------------------------------------------ collections in the tx */

const wstr *tx_get_var(waf_tx *tx, int coll_var, wstr key) {
    kv *it = coll_find(named_coll(tx, coll_var, false), key);
    return it ? &it->val : NULL;
}

/* key's item in the collection, added (empty) when missing; hash: hash_ci(key).  A key
 * that outlives the request (a rule's text, a macro's result in the arena) is kept as it
 * is; `copy` copies any other. */
kv *var_slot(waf_tx *tx, int coll_var, wstr key, uint32_t hash, bool copy) {
    coll *c = named_coll(tx, coll_var, true);
    kv *it = coll_find_h(c, key, hash);
    if (it) return it;
    coll_add_h(&tx->a, c, copy ? dupw(tx, key.p, key.n) : key, (wstr){"", 0}, hash);
    return &c->items[c->n - 1];
}

void tx_set_var(waf_tx *tx, int coll_var, wstr key, wstr val) {
    var_slot(tx, coll_var, key, hash_ci(key.p, key.n), true)->val = val;
}

void tx_add_arg(waf_tx *tx, int coll_var, wstr key, wstr val) {
    if (tx->rules->args_limit && (int)(tx->c[V_ARGS_GET].n + tx->c[V_ARGS_POST].n) >= tx->rules->args_limit) return;
    coll_add_unhashed(&tx->a, &tx->c[coll_var], key, val);   /* hashed if a lookup asks */
    tx->args_size += (long long)key.n + (long long)val.n;   /* ARGS_COMBINED_SIZE: set once the args are in */
}

void tx_body_error(waf_tx *tx, const char *msg) {
    tx_set_sc(tx, V_REQBODY_ERROR, WSTR("1"));
    tx_set_sc(tx, V_REQBODY_PROCESSOR_ERROR, WSTR("1"));
    wstr m = dupw(tx, msg, strlen(msg));
    tx_set_sc(tx, V_REQBODY_ERROR_MSG, m);
    tx_set_sc(tx, V_REQBODY_PROCESSOR_ERROR_MSG, m);
}
