/*
 * Request body parsers for the WAF engine: urlencoded forms, JSON (keys and
 * string values), multipart/form-data (field names, values, file names) and
 * XML (text nodes and attribute values; element and attribute names are not
 * data).  Each parser is a single forward scan that hands every extracted
 * value to a callback with its target kind (T_* in rules.h).
 */
#ifndef WAF_BODYPARSE_H
#define WAF_BODYPARSE_H

#include <stddef.h>

typedef enum { WAF_BODY_NONE, WAF_BODY_FORM, WAF_BODY_JSON, WAF_BODY_MULTIPART, WAF_BODY_XML, WAF_BODY_TEXT } waf_body_kind_t;

typedef void (*waf_value_cb)(void *user, int kind, const char *s, size_t n);

/* Body kind for a Content-Type value (NULL/empty: a form, as PHP and CRS treat it). */
waf_body_kind_t waf_body_kind(const char *ct, size_t n);
void waf_parse_body(const char *ct, size_t ct_len, const char *body, size_t n, waf_value_cb cb, void *user);

#endif
