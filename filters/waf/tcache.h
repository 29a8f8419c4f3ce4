/* tcache.c's inline part: a value after a transformation chain.  Beside waf.h (not in it)
 * because transform calls into tcache.c: the units that transform values include it. */
#ifndef WAF_TCACHE_H
#define WAF_TCACHE_H

#include "waf.h"

/* tcache.c: a value after a transformation chain, computed once per request */
wstr transform_chain(waf_tx *tx, int chain, wstr in, uint32_t vid);
/* inline: most rules that reach a value have no transformation (t:none) */
static inline wstr transform(waf_tx *tx, int chain, wstr in, uint32_t vid) {
    return tx->rules->tchain_def[chain][0] ? transform_chain(tx, chain, in, vid) : in;
}

#endif
