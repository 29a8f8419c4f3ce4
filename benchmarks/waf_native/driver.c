/* Native driver for the WAF engine: compiles CRS at a paranoia level as the benchmark's
 * configuration does, then runs requests through the same calls filter.c makes, so that
 * callgrind counts the engine's instructions per request exactly, whatever the load.
 *
 *   waf-native REQFILE [ITERS [PL]]   one request ITERS times; `measured()` holds iterations 3..
 *   waf-native -c CORPUSFILE [PL]     every corpus request in detect mode: "id blocked status: rule ids"
 *
 * BASE_RULES and CRS_DIR (directories) are set by the Makefile. */
#define _GNU_SOURCE
#include "waf.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_FILES 256

typedef struct {
    wstr id, method, uri, body;
    int n_headers;
    wstr *names, *values;
} request;

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)len + 1);
    if (!p || fread(p, 1, (size_t)len, f) != (size_t)len) { perror(path); exit(1); }
    p[len] = 0;
    fclose(f);
    *n = (size_t)len;
    return p;
}

static waf_file files[MAX_FILES];
static int n_files;

/* every file of `dir` under the name `prefix/file`, as the host hands them to the filter */
static void add_dir(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    if (!d) { perror(dir); exit(1); }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_type != DT_REG || n_files == MAX_FILES) continue;
        char path[4096], name[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int nn = snprintf(name, sizeof name, "%s/%s", prefix, e->d_name);
        size_t n;
        char *text = slurp(path, &n);
        files[n_files++] = (waf_file){{strdup(name), (size_t)nn}, text, n};
    }
    closedir(d);
}

/* one "<length> <bytes>\n" field (requests.py) */
static wstr field(char **p) {
    char *q;
    size_t n = strtoul(*p, &q, 10);
    wstr s = {q + 1, n};
    *p = q + 1 + n + 1;
    return s;
}

static bool read_request(char **p, char *end, request *r) {
    if (*p >= end) return false;
    r->id = field(p);
    r->method = field(p);
    r->uri = field(p);
    r->n_headers = atoi(field(p).p);
    r->names = malloc(sizeof(wstr) * (size_t)(r->n_headers + 1));
    r->values = malloc(sizeof(wstr) * (size_t)(r->n_headers + 1));
    for (int i = 0; i < r->n_headers; i++) {
        r->names[i] = field(p);
        r->values[i] = field(p);
    }
    r->body = field(p);
    return true;
}

/* filter.c's on_request_headers / on_request_body, without the host */
static bool run(waf_tx *tx, const request *r) {
    tx_set_request_line(tx, r->method, r->uri, WSTR("HTTP/1.1"));
    wstr rid = {NULL, 0};
    for (int i = 0; i < r->n_headers; i++) {
        tx_add_header(tx, r->names[i], r->values[i]);
        if (r->names[i].n == 12 && memcmp(r->names[i].p, "x-request-id", 12) == 0) rid = r->values[i];
    }
    tx_set_unique_id(tx, rid.p ? rid : WSTR("native-1"));
    tx_set_connection(tx, WSTR("127.0.0.1"), 40000, WSTR("127.0.0.1"), 0);
    tx_headers_done(tx);
    if (waf_run_phase(tx, 1)) return true;
    tx_process_body(tx, r->body.n ? r->body.p : NULL, r->body.n, false);
    waf_run_phase(tx, 2);
    return tx->intercepted;
}

/* callgrind's --toggle-collect=measured counts these calls only */
__attribute__((noinline)) bool measured(waf_tx *tx, const request *r) {
    bool b = run(tx, r);
    __asm__ volatile("");
    return b;
}

static void print_matches(const waf_tx *tx) {
    for (int k = 0; k < tx->n_matches; k++) printf(" %u", tx->matches[k].r->id);
    printf("\n");
}

static waf_rules *compile(int paranoia) {
    add_dir(BASE_RULES, "base");
    add_dir(CRS_DIR, "crs");
    add_dir(CRS_DIR "/rules", "crs/rules");
    char dir[1024];
    int n = snprintf(dir, sizeof dir,
        "Include base/base.conf\nInclude crs/crs-setup.conf.example\n"
        "SecAction \"id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level=%d\"\n"
        "SecAction \"id:900110,phase:1,pass,t:none,nolog,setvar:tx.inbound_anomaly_score_threshold=5,"
        "setvar:tx.outbound_anomaly_score_threshold=4\"\n"
        "Include crs/rules/REQUEST-*.conf\n", paranoia);
    char err[512];
    waf_rules *rules = waf_compile(dir, (size_t)n, files, n_files, err, sizeof err);
    if (!rules) { fprintf(stderr, "rules rejected: %s\n", err); exit(1); }
    waf_tx warm;
    waf_tx_init(&warm, rules);
    firstpass_warm_up(rules, &warm);
    waf_tx_free(&warm);
    return rules;
}

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int corpus(const char *path, int paranoia) {
    waf_rules *rules = compile(paranoia);
    rules->engine = ENGINE_DETECT;
    size_t n;
    char *text = slurp(path, &n), *p = text;
    waf_tx tx;
    waf_tx_init(&tx, rules);
    request r;
    for (int k = 0; read_request(&p, text + n, &r); k++) {
        if (k) waf_tx_reset(&tx);
        bool blocked = run(&tx, &r);
        printf("%.*s %d %d:", (int)r.id.n, r.id.p, blocked, tx.status);
        print_matches(&tx);
        ar_reset(&tx.a);
        free(r.names);
        free(r.values);
    }
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s REQFILE [ITERS [PL]] | -c CORPUSFILE [PL]\n", argv[0]);
        return 2;
    }
    if (strcmp(argv[1], "-c") == 0) return corpus(argv[2], argc > 3 ? atoi(argv[3]) : 1);
    int iters = argc > 2 ? atoi(argv[2]) : 6, paranoia = argc > 3 ? atoi(argv[3]) : 1;
    if (iters < 1) iters = 1;
    waf_rules *rules = compile(paranoia);
    size_t n;
    char *text = slurp(argv[1], &n), *p = text;
    request r;
    if (!read_request(&p, text + n, &r)) return 1;
    waf_tx tx;
    waf_tx_init(&tx, rules);
    double *t = malloc(sizeof(double) * (size_t)iters);
    bool blocked = false;
    for (int i = 0; i < iters; i++) {
        if (i) waf_tx_reset(&tx);
        double t0 = now_us();
        blocked = i < 2 ? run(&tx, &r) : measured(&tx, &r);   /* two warm-up requests */
        t[i] = now_us() - t0;
        if (i == 0) { printf("%.*s matches:", (int)r.id.n, r.id.p); print_matches(&tx); }
        ar_reset(&tx.a);
    }
    qsort(t, (size_t)iters, sizeof *t, cmp_double);
    printf("%.*s blocked %d, p50 %.1f us, min %.1f us (%d runs)\n", (int)r.id.n, r.id.p, blocked,
           t[iters / 2], t[0], iters);
    return 0;
}
