/* expand.c's inline part: a target's values as a growing list.  Beside waf.h (not in it)
 * because tv_push calls into expand.c: the units that list values include it. */
#ifndef WAF_EXPAND_H
#define WAF_EXPAND_H

#include "waf.h"

wstr macro_expand_parts(waf_tx *tx, const macro_str *m);   /* macro_expand of a text with macros */
/* A macro text's value.  Inline: most setvar keys and values, messages and log data hold no
 * macro (~135 a GET), and a Wasm call costs more than the test. */
static inline wstr macro_expand(waf_tx *tx, const macro_str *m) {
    return m->has_macro ? macro_expand_parts(tx, m) : m->raw;
}

/* A target's value: the variable it is shown as, its key, value and vid (0: not stable) */
typedef struct { int coll; wstr key; wstr val; uint32_t vid; } tval;
typedef struct { tval *v; int n, cap; } tvals;
void tv_grow(waf_tx *tx, tvals *out);   /* tv_push's slow path */
/* inline: a rule's every target value passes here, and the list seldom grows */
static inline void tv_push(waf_tx *tx, tvals *out, int coll, wstr key, wstr val, uint32_t vid) {
    if (__builtin_expect(out->n == out->cap, 0)) tv_grow(tx, out);
    out->v[out->n++] = (tval){coll, key, val, vid};
}
/* The values target t names, appended to out (a collection's in order; `&VAR` is counted by
 * the caller) */
void expand(waf_tx *tx, const target *t, tvals *out);

#endif
