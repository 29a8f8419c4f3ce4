/* An entry's freshness facts as C values: what cache/_dates.c computes
 * (``compute_facts``, the C side of ``freshness_facts``) and hands to cache/_entry.c
 * through the capsule ``edgenode.cache._dates._compute_facts``, so the facts have one
 * owner in C as ``policy._facts`` is their one owner in Python. */
#ifndef EDGENODE_CACHE_FACTS_H
#define EDGENODE_CACHE_FACTS_H

#include <Python.h>

#define FACTS_CAPSULE "edgenode.cache._dates._compute_facts"

typedef struct {
    double date, age0, lifetime, fresh_until, swr, sie, last_ts;
    int no_stale, no_cache, auth_ok, has_last, dated;
    PyObject *etag, *last_modified;  /* borrowed from the fields, NULL when absent */
} Facts;

/* (fields, cc, targeted, heuristic, age or Py_None, request_time, response_time,
 *  heuristic_fraction, heuristic_max, default_ttl, out): 0, or -1 with an exception */
typedef int (*compute_facts_fn)(PyObject *, PyObject *, int, int, PyObject *, double, double,
                                double, double, double, Facts *);

#endif
