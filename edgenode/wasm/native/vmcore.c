/* VmCore: the state of a filter VM that every stream reads, as C fields.
 *
 * vm.Vm is its Python subclass: ``failed``, ``closed``, ``plugin``, ``inst``, ``root``,
 * ``contexts``, ``_ids``, ``active_streams``, ``on_idle`` and ``_opens`` are member
 * descriptors over these fields, so the Vm's own assignments (a failure, a close, a reload's
 * on_idle) are what the native stream steps read next, with no copy to keep in step, and a
 * stream reads them by offset instead of ~20 instance-dict lookups (stream.c). */
#include "hostcore.h"

#include <structmember.h>

#define FIELDS(X) \
    X(failed) X(plugin) X(inst) X(root) X(contexts) X(ids) X(on_idle) X(closed) X(opens) X(active_streams)

static int VmCore_traverse(VmCore *v, visitproc visit, void *arg) {
#define VISIT(f) Py_VISIT(v->f);
    FIELDS(VISIT)
    return 0;
}

static int VmCore_clear(VmCore *v) {
#define CLEAR(f) Py_CLEAR(v->f);
    FIELDS(CLEAR)
    return 0;
}

static void VmCore_dealloc(VmCore *v) {
    PyObject_GC_UnTrack(v);
    VmCore_clear(v);
    Py_TYPE(v)->tp_free((PyObject *)v);
}

/* T_OBJECT_EX, as a Python attribute: unset until assigned (AttributeError), and the
 * interpreter's specialised slot reads and writes (3.11 has them for no other member type) */
#define OBJ(name, field, doc) {name, T_OBJECT_EX, offsetof(VmCore, field), 0, doc}
static PyMemberDef VmCore_members[] = {
    OBJ("failed", failed, "why the VM failed (None: it has not)"),
    OBJ("plugin", plugin, "the filter's Plugin"),
    OBJ("inst", inst, "the native Instance"),
    OBJ("root", root, "the root context"),
    OBJ("contexts", contexts, "context id -> context"),
    OBJ("_ids", ids, "the next context ids (an iterator)"),
    OBJ("on_idle", on_idle, "called with the VM when its last open stream ends"),
    OBJ("closed", closed, "the instance is closed"),
    OBJ("_opens", opens, "a context create or request headers hook is exported"),
    OBJ("active_streams", active_streams, "streams registered and not forgotten (an int)"),
    {NULL},
};

PyTypeObject VmCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgenode.wasm._hostcore.VmCore",
    .tp_basicsize = sizeof(VmCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A filter VM's state every stream reads (vm.Vm is its subclass)",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)VmCore_dealloc,
    .tp_traverse = (traverseproc)VmCore_traverse,
    .tp_clear = (inquiry)VmCore_clear,
    .tp_members = VmCore_members,
};
