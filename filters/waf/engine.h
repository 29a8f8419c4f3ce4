/*
 * WAF engine: request inspection with CRS-style anomaly scoring.
 *
 * Pure C, no Proxy-Wasm calls: it compiles natively (unit tests, ctypes
 * benchmarks) and to wasm32-wasi (filters/waf/filter.c wraps it).  The caller
 * hands over one request (method, raw URI, headers, body); the engine extracts
 * the inspected targets (path, query and body arguments and their names,
 * cookies, selected headers), normalises each one (normalize.h) and runs the
 * rule families over it (rules.h).  Every matched rule adds its severity once;
 * the request is blocked when the total reaches the inbound threshold.
 */
#ifndef WAF_ENGINE_H
#define WAF_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WAF_MAX_MATCHES 48
#define WAF_MAX_DISABLED 64
#define WAF_MAX_PATH_RULES 16
#define WAF_MAX_PATH_IDS 16
#define WAF_PREFIX_MAX 128

typedef enum {
    WAF_FAM_PROTOCOL = 0, WAF_FAM_SCANNER, WAF_FAM_LFI, WAF_FAM_RFI, WAF_FAM_RCE, WAF_FAM_PHP,
    WAF_FAM_GENERIC, WAF_FAM_XSS, WAF_FAM_SQLI, WAF_FAM_SESSION, WAF_FAM_JAVA, WAF_FAM_COUNT
} waf_family;

typedef struct {
    char prefix[WAF_PREFIX_MAX];
    uint32_t rules[WAF_MAX_PATH_IDS];
    int n_rules;                 /* 0: every rule is disabled under the prefix */
} waf_path_rule;

typedef struct {
    int threshold;               /* inbound anomaly threshold (default 5) */
    int paranoia;                /* 1..4 (default 1) */
    bool detect_only;            /* log and tag, never block */
    size_t max_body_bytes;       /* body bytes inspected (default 131072) */
    uint32_t disabled[WAF_MAX_DISABLED];
    int n_disabled;
    waf_path_rule paths[WAF_MAX_PATH_RULES];
    int n_paths;
} waf_config;

typedef struct {
    int score;
    bool blocked;                /* score >= threshold and not detect_only */
    bool flagged;                /* score >= threshold */
    int n_matches;
    uint32_t rules[WAF_MAX_MATCHES];
    uint32_t family_mask;        /* bit per waf_family that matched */
} waf_result;

typedef struct { const char *name; size_t name_len; const char *value; size_t value_len; } waf_header;

typedef struct {
    const char *method; size_t method_len;
    const char *uri; size_t uri_len;          /* origin-form path + raw query */
    const waf_header *headers; size_t n_headers;
    const char *body; size_t body_len;        /* may be NULL; truncated to max_body_bytes */
    bool body_truncated;                      /* the body was longer than what is given */
} waf_request;

void waf_config_default(waf_config *cfg);
/* Add a disabled rule id / a disabled-path entry; false when the table is full. */
bool waf_config_disable_rule(waf_config *cfg, uint32_t id);
bool waf_config_add_path(waf_config *cfg, const char *prefix, size_t prefix_len,
                         const uint32_t *ids, int n_ids);

/* Inspect one request. */
void waf_inspect(const waf_config *cfg, const waf_request *req, waf_result *res);

/* Is the body of this Content-Type inspected (form, JSON, multipart, XML, text)? */
bool waf_body_inspectable(const char *content_type, size_t len);

const char *waf_family_name(waf_family f);
/* Family of a rule id, or -1 when unknown. */
int waf_rule_family(uint32_t id);

/* Flat entry point for ctypes: headers as "Name: value\n" lines. Returns the score. */
int waf_inspect_flat(int paranoia, int threshold, const char *method, const char *uri,
                     const char *headers, size_t headers_len, const char *body, size_t body_len,
                     uint32_t *rules_out, int rules_cap, int *n_rules_out);

#endif
