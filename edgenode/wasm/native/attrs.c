/* Slot reads by a remembered offset.
 *
 * The stream's steps read ~15 ``__slots__`` attributes of the Exchange, the messages and
 * the stage's settings per stream; each PyObject_GetAttr walks the type's method cache,
 * the member descriptor and PyMember_GetOne (~150-250 instructions).  A call site keeps
 * the slot's offset for the type it last saw, valid while the type's version tag is the
 * one it was found under (any change to the type or a base gives a new tag), and reads
 * the object's slot directly; anything else (a property, a type with its own
 * __getattribute__/__getattr__, an empty slot) takes PyObject_GetAttr, so what a read
 * returns or raises is the same either way. */
#include "hostcore.h"

#include <structmember.h>

PyObject *hc_slot_get(PyObject *o, PyObject *name, HcSlot *cache) {
    PyTypeObject *t = Py_TYPE(o);
    if (t != cache->type || t->tp_version_tag != cache->version ||
        !PyType_HasFeature(t, Py_TPFLAGS_VALID_VERSION_TAG)) {
        cache->type = NULL;
        if (t->tp_getattro != PyObject_GenericGetAttr) return PyObject_GetAttr(o, name);
        PyObject *d = _PyType_Lookup(t, name); /* borrowed; gives the type a version tag */
        if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type) || !PyType_HasFeature(t, Py_TPFLAGS_VALID_VERSION_TAG))
            return PyObject_GetAttr(o, name);
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type != T_OBJECT_EX || (m->flags & READ_RESTRICTED)) return PyObject_GetAttr(o, name);
        cache->type = t;
        cache->version = t->tp_version_tag;
        cache->offset = m->offset;
    }
    PyObject *v = *(PyObject **)((char *)o + cache->offset);
    return v != NULL ? Py_NewRef(v) : PyObject_GetAttr(o, name); /* unset: the AttributeError */
}
