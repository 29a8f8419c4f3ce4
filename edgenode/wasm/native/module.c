/* The _hostcore extension module: types, setup() and the linker/ticker entry points. */
#include "hostcore.h"
#include "reset.h"

static int ready = 0;

/* setup(library_path, layout, GuestTrap, HostTrap, MemoryFault, InstantiateError,
 *       getversion, report, current_dict)
 * ``layout``: wasmtime-py's sizes of (func, memory, extern, instance, val_raw), checked
 * against the declarations in wasmtime_api.h. */
static PyObject *setup(PyObject *self, PyObject *args) {
    const char *path;
    int sizes[5];
    PyObject *guest_trap, *host_trap, *fault, *inst_err, *getversion, *report, *current;
    if (!PyArg_ParseTuple(args, "s(iiiii)OOOOOOO!", &path, &sizes[0], &sizes[1], &sizes[2], &sizes[3],
                          &sizes[4], &guest_trap, &host_trap, &fault, &inst_err, &getversion, &report,
                          &PyDict_Type, &current))
        return NULL;
    int want[5] = {(int)sizeof(wt_func), (int)sizeof(wt_memory), (int)sizeof(wt_extern), (int)sizeof(wt_instance),
                   (int)sizeof(wt_val_raw)};
    for (int i = 0; i < 5; i++) {
        if (sizes[i] != want[i]) {
            PyErr_Format(PyExc_ImportError, "wasmtime C API layout differs from the host core's (%d: %d != %d)", i,
                         sizes[i], want[i]);
            return NULL;
        }
    }
    if (!ready && wt_load(path) < 0) return NULL;
    ready = 1;
    PyObject **slots[] = {&hc_GuestTrap, &hc_HostTrap, &hc_MemoryFault, &hc_instantiate_error, &hc_getversion,
                          &hc_report, &hc_current_dict};
    PyObject *values[] = {guest_trap, host_trap, fault, inst_err, getversion, report, current};
    for (int i = 0; i < 7; i++) {
        Py_INCREF(values[i]);
        Py_XSETREF(*slots[i], values[i]);
    }
    hc_multidict_setup();
    Py_RETURN_NONE;
}

static PyObject *multidict_capi(PyObject *self, PyObject *unused) { return PyBool_FromLong(hc_multidict_setup()); }

static PyObject *define(PyObject *self, PyObject *args) {
    if (!ready) {
        PyErr_SetString(PyExc_RuntimeError, "_hostcore.setup() first");
        return NULL;
    }
    return hc_define(self, args);
}

static PyObject *ticker_add(PyObject *self, PyObject *args) {
    if (!ready) {
        PyErr_SetString(PyExc_RuntimeError, "_hostcore.setup() first");
        return NULL;
    }
    return hc_ticker_add(self, args);
}

static PyMethodDef methods[] = {
    {"setup", setup, METH_VARARGS, "resolve the wasmtime C API and wire the Python side in"},
    {"define", define, METH_VARARGS,
     "define(linker, module, name, functype, params, has_result, fault, fn, native) -> bool (answered natively)"},
    {"ticker_add", ticker_add, METH_VARARGS, "ticker_add(engine, engine_ptr, interval): advance its epoch"},
    {"ticker_remove", hc_ticker_remove, METH_O, "ticker_remove(engine_ptr): stop advancing it"},
    {"set_property_functions", hc_set_property_functions, METH_VARARGS,
     "set_property_functions(split_path, get(vm, path), set(vm, path, value)): properties' Python side"},
    {"set_view_types", hc_set_view_types, METH_VARARGS,
     "set_view_types(RequestHeaders, ResponseHeaders, RawRequest): the views HeaderBlock writes through, and the request type whose fields it reads as parsed bytes"},
    {"multidict_capi", multidict_capi, METH_NOARGS,
     "whether field maps are versioned and added to through multidict's C API (else Python calls)"},
    {"stream_setup", hc_stream_setup, METH_VARARGS,
     "stream_setup(Step.NEXT, Step.ASYNC, Response, FROM_BODY): what StreamCore's steps return and test"},
    {NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_hostcore",
    "Proxy-Wasm host core: guest calls and hot host functions in C (see edgenode/wasm/native.py)", -1,
    methods,
};

/* Instance's methods, joined from the units that implement them (each unit depends only on
 * those below it; the module, on top, puts the type together). */
static PyMethodDef instance_methods[32];

static int join_instance_methods(void) {
    PyMethodDef *parts[] = {hc_instance_methods, hc_reset_methods, hc_stream_instance_methods};
    size_t n = 0;
    for (size_t p = 0; p < sizeof parts / sizeof parts[0]; p++)
        for (PyMethodDef *d = parts[p]; d->ml_name != NULL; d++) {
            if (n + 1 >= sizeof instance_methods / sizeof instance_methods[0]) {
                PyErr_SetString(PyExc_ImportError, "_hostcore: too many Instance methods");
                return -1;
            }
            instance_methods[n++] = *d;
        }
    InstanceType.tp_methods = instance_methods;
    return 0;
}

PyMODINIT_FUNC PyInit__hostcore(void) {
    if (hc_intern_names() < 0 || join_instance_methods() < 0) return NULL;
    PyTypeObject *types[] = {&InstanceType, &HeaderBlockType, &HistogramType, &MetricTableType, &StreamCoreType,
                             &VmCoreType, &StreamOpenerType};
    for (int i = 0; i < 7; i++)
        if (PyType_Ready(types[i]) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL) return NULL;
    const char *names[] = {"Instance", "HeaderBlock", "Histogram", "MetricTable", "StreamCore", "VmCore",
                           "StreamOpener"};
    for (int i = 0; i < 7; i++) {
        Py_INCREF(types[i]);
        if (PyModule_AddObject(m, names[i], (PyObject *)types[i]) < 0) return NULL;
    }
    if (PyModule_AddObject(m, "NATIVE_PROPERTIES", hc_native_property_names()) < 0) return NULL;
    return m;
}
