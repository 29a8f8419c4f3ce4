/*
 * The first pass's warm-up (above exec.c and intake.c, which it drives, and firstpass.c;
 * only filter.c calls it): once the rules are compiled, a page view, a form post and a JSON
 * post run through every phase in detect mode, so that the regex sets an ordinary request
 * reaches are compiled and their DFAs warm before the first real request, and the unions of
 * the blocks they reached (the configured paranoia level) are built.
 */
#include <stdlib.h>
#include <string.h>

#include "waf.h"

/* Ordinary requests for firstpass_warm_up: a page view, a form post and a JSON post. */
static const char *const WARM_HEADERS[][2] = {
    {"Host", "www.example.com"},
    {"User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"},
    {"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
    {"Accept-Language", "en-US,en;q=0.9"}, {"Accept-Encoding", "gzip, deflate, br"},
    {"Cookie", "session=6f1c2a9e; theme=dark"}, {"Referer", "https://www.example.com/home"},
};

static void warm_one(waf_tx *tx, const char *method, const char *uri, const char *ctype, const char *body,
                     bool *reached) {
    waf_tx_reset(tx);
    tx->engine = ENGINE_DETECT;   /* run every rule, intercept nothing */
    tx_set_request_line(tx, (wstr){method, strlen(method)}, (wstr){uri, strlen(uri)}, WSTR("HTTP/1.1"));
    for (size_t i = 0; i < sizeof WARM_HEADERS / sizeof WARM_HEADERS[0]; i++)
        tx_add_header(tx, (wstr){WARM_HEADERS[i][0], strlen(WARM_HEADERS[i][0])},
                      (wstr){WARM_HEADERS[i][1], strlen(WARM_HEADERS[i][1])});
    if (ctype) tx_add_header(tx, WSTR("Content-Type"), (wstr){ctype, strlen(ctype)});
    tx_set_unique_id(tx, WSTR("warm-up"));
    tx_set_connection(tx, WSTR("127.0.0.1"), 40000, WSTR("127.0.0.1"), 80);
    tx_headers_done(tx);
    waf_run_phase(tx, 1);
    tx_process_body(tx, body, body ? strlen(body) : 0, false);
    waf_run_phase(tx, 2);
    firstpass_mark_reached(tx, reached);
}

void firstpass_warm_up(waf_rules *r, waf_tx *tx) {
    bool *reached = calloc((size_t)r->n_pf_blocks + 1, sizeof *reached);
    if (!reached) abort();
    warm_one(tx, "GET", "/products/list?page=2&sort=price&q=blue+shoes", NULL, NULL, reached);
    warm_one(tx, "POST", "/account/profile", "application/x-www-form-urlencoded",
             "name=Jane+Doe&email=jane%40example.com&comment=An+ordinary+sentence%2C+with+punctuation.", reached);
    warm_one(tx, "POST", "/api/cart", "application/json",
             "{\"items\":[{\"id\":1,\"name\":\"blue shoes\",\"note\":\"an ordinary product\"}]}", reached);
    /* the unions of the sets of the blocks that ran (the configured paranoia level), compiled
     * now: inputs as small as these never reach them */
    firstpass_build_unions(r, reached);
    free(reached);
}
