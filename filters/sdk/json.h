/*
 * A small strict JSON (RFC 8259) parser for filter configuration.
 *
 * json_parse builds a tree of malloc'ed nodes; strings are decoded (escapes,
 * \uXXXX with surrogate pairs -> UTF-8) and NUL-terminated.  Nesting depth is
 * limited to 64.  On error it returns NULL and writes "offset N: reason" to err.
 * The accessors accept NULL nodes and fall back to the given default, so a
 * config reader can write json_string(json_get(cfg, "origin"), "default").
 */
#ifndef EDGENODE_JSON_H
#define EDGENODE_JSON_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value {
    json_type type;
    bool boolean;
    double number;
    char *string;               /* JSON_STRING: decoded, NUL-terminated */
    size_t string_len;
    size_t count;               /* JSON_ARRAY / JSON_OBJECT: number of items */
    struct json_value **items;
    char **keys;                /* JSON_OBJECT only, parallel to items */
} json_value;

json_value *json_parse(const char *text, size_t len, char *err, size_t err_len);
void json_free(json_value *v);

/* Member `key` of an object (last one wins on duplicates), or NULL. */
const json_value *json_get(const json_value *obj, const char *key);
/* Item i of an array, or NULL. */
const json_value *json_at(const json_value *arr, size_t i);
/* Number of items of an array/object (0 for anything else, including NULL). */
size_t json_len(const json_value *v);

const char *json_string(const json_value *v, const char *dflt);
double json_number(const json_value *v, double dflt);
bool json_bool(const json_value *v, bool dflt);
bool json_is(const json_value *v, json_type type);

#endif
