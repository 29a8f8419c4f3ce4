/*
 * Rule table of the WAF engine.  Each rule is a hand-written linear scanner
 * over one normalised value (normalize.h) that detects an attack class; the
 * table records its CRS-like id, family, paranoia level, severity and which
 * request targets it applies to.
 */
#ifndef WAF_RULES_H
#define WAF_RULES_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "normalize.h"

/* Where an inspected value came from. */
enum {
    T_PATH = 1 << 0,        /* decoded request path */
    T_ARG_NAME = 1 << 1,    /* query/body argument names, JSON keys */
    T_ARG = 1 << 2,         /* query/body argument values, XML text and attribute values */
    T_COOKIE_NAME = 1 << 3,
    T_COOKIE = 1 << 4,
    T_HEADER = 1 << 5,      /* other request header values */
    T_UA = 1 << 6,
    T_REFERER = 1 << 7,
    T_BODY = 1 << 8,        /* raw body of a type without a parser */
    T_FILENAME = 1 << 9     /* upload file names (multipart, X-Filename headers) */
};
#define T_ARGS_ALL (T_ARG_NAME | T_ARG | T_COOKIE_NAME | T_COOKIE | T_BODY)
#define T_ARGS_HDR (T_ARGS_ALL | T_HEADER | T_UA | T_REFERER)

enum { SEV_CRITICAL = 5, SEV_ERROR = 4, SEV_WARNING = 3, SEV_NOTICE = 2 };

typedef struct {
    int kind;               /* one T_* bit */
    const char *host;       /* request Host (lower-case, no port), may be "" */
    size_t host_len;
} waf_target;

typedef bool (*waf_detector)(const waf_norm *v, const waf_target *t);

typedef struct {
    uint32_t id;
    waf_family family;
    uint8_t paranoia;
    uint8_t severity;
    uint32_t targets;
    waf_detector detect;
} waf_rule;

extern const waf_rule WAF_RULES[];
extern const int WAF_N_RULES;

/* Helpers shared with the engine's request-level rules. */
bool waf_contains(const char *h, size_t n, const char *needle);
bool waf_is_scanner_ua(const char *ua_lower, size_t n);
/* Base64 text (at any alignment) that decodes to a known payload keyword; raw case-preserved input. */
bool waf_base64_payload(const char *raw, size_t n);

#endif
