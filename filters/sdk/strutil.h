/*
 * String helpers for HTTP work in filters: non-owning slices, case-insensitive
 * comparison, query strings, cookies, percent-decoding, hashing and a growable
 * string builder.  No host calls here, so these compile natively too.
 */
#ifndef EDGENODE_STRUTIL_H
#define EDGENODE_STRUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A non-owning slice of bytes. */
typedef struct { const char *p; size_t n; } pw_str;

pw_str pw_str_c(const char *s);
bool pw_str_eq(pw_str a, pw_str b);
bool pw_str_ieq(pw_str a, pw_str b);
bool pw_str_starts_with(pw_str s, pw_str prefix);
bool pw_str_ends_with_i(pw_str s, pw_str suffix);  /* case-insensitive */
pw_str pw_str_trim(pw_str s);                      /* strips spaces and tabs */
/* Split `*rest` at the first `sep`: returns the part before, advances `*rest` past it.
 * When `sep` is absent returns all of `*rest` and leaves it empty. */
pw_str pw_str_split(pw_str *rest, char sep);
/* Index of the first `c`, or -1. */
long pw_str_index(pw_str s, char c);
char *pw_str_dup(pw_str s);                        /* malloc'ed NUL-terminated copy */

/* Value of query parameter `name` in `query` (without '?'); false if absent. */
bool pw_query_get(pw_str query, const char *name, pw_str *value);
/* Value of cookie `name` in a Cookie header value; false if absent. */
bool pw_cookie_get(pw_str cookie_header, const char *name, pw_str *value);
/* Percent-decode (and '+' -> ' ' when `plus_space`) into a malloc'ed string. */
char *pw_url_decode(pw_str s, bool plus_space, size_t *out_len);

/* 32-bit FNV-1a (stable across builds: used for sticky buckets). */
uint32_t pw_fnv1a(const void *data, size_t len);

/* A growable NUL-terminated string. */
typedef struct { char *data; size_t len; size_t cap; } pw_sb;
void pw_sb_append(pw_sb *sb, const char *data, size_t len);
void pw_sb_puts(pw_sb *sb, const char *s);
void pw_sb_printf(pw_sb *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pw_sb_free(pw_sb *sb);

#endif
