/* Slot reads by a remembered offset.
 *
 * The stream's steps read ~15 ``__slots__`` attributes of the Exchange, the messages and
 * the stage's settings per stream; each PyObject_GetAttr walks the type's method cache,
 * the member descriptor and PyMember_GetOne (~150-250 instructions).  A call site keeps
 * the slot's offset for the type it last saw, valid while the type's version tag is the
 * one it was found under (any change to the type or a base gives a new tag), and reads
 * the object's slot directly; anything else (a property, a type with its own
 * __getattribute__/__getattr__, an empty slot) takes PyObject_GetAttr, so what a read
 * returns or raises is the same either way.  Writes (a hit's extended ``wire_head``, the
 * exchange's ``wasm_maps``) take the same offset, under the generic setattr only. */
#include "hostcore.h"

#include <structmember.h>

/* Whether ``cache`` holds the offset of ``name``'s plain object slot in ``o``'s type, found
 * now if it does not (``setting``: a writable one, under the generic setattr). */
static int slot_known(PyObject *o, PyObject *name, HcSlot *cache, int setting) {
    PyTypeObject *t = Py_TYPE(o);
    if (t == cache->type && t->tp_version_tag == cache->version && PyType_HasFeature(t, Py_TPFLAGS_VALID_VERSION_TAG))
        return 1;
    cache->type = NULL;
    if (setting ? t->tp_setattro != PyObject_GenericSetAttr : t->tp_getattro != PyObject_GenericGetAttr) return 0;
    PyObject *d = _PyType_Lookup(t, name); /* borrowed; gives the type a version tag */
    if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type) || !PyType_HasFeature(t, Py_TPFLAGS_VALID_VERSION_TAG))
        return 0;
    PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
    if (m->type != T_OBJECT_EX || (m->flags & (setting ? READONLY : READ_RESTRICTED))) return 0;
    cache->type = t;
    cache->version = t->tp_version_tag;
    cache->offset = m->offset;
    return 1;
}

PyObject *hc_slot_get(PyObject *o, PyObject *name, HcSlot *cache) {
    if (!slot_known(o, name, cache, 0)) return PyObject_GetAttr(o, name);
    PyObject *v = *(PyObject **)((char *)o + cache->offset);
    return v != NULL ? Py_NewRef(v) : PyObject_GetAttr(o, name); /* unset: the AttributeError */
}

int hc_slot_set(PyObject *o, PyObject *name, PyObject *v, HcSlot *cache) {
    if (!slot_known(o, name, cache, 1)) return PyObject_SetAttr(o, name, v);
    Py_XSETREF(*(PyObject **)((char *)o + cache->offset), Py_NewRef(v));
    return 0;
}
