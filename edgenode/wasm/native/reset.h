/* Instance methods that put an instance into a snapshot's state (reset.c). */
#ifndef EDGENODE_RESET_H
#define EDGENODE_RESET_H

#include "hostcore.h"

/* Instance.restore(memory_size, pages, globals, values_addr, value_size) */
PyObject *hc_instance_restore(Instance *self, PyObject *args);
/* Instance.reset(size, index, pages, names, values_addr, value_size, trim) -> bool */
PyObject *hc_instance_reset(Instance *self, PyObject *const *args, Py_ssize_t nargs);

/* Instance.restore and Instance.reset (module.c adds them to the type) */
extern PyMethodDef hc_reset_methods[];

#endif
