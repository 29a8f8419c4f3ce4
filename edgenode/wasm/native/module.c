/* The _hostcore extension module: types, setup() and the linker/ticker entry points. */
#include "hostcore.h"

PyObject *hc_GuestTrap, *hc_HostTrap, *hc_MemoryFault, *hc_getversion, *hc_report, *hc_current_dict;
extern PyObject *hc_instantiate_error;
PyObject *s_is_root, *s_request_block, *s_response_block, *s_request_headers_open, *s_response_headers_open,
    *s_in_log, *s_request_body, *s_response_body, *s_headers, *s_method, *s_target, *s_scheme, *s_status,
    *s_items, *s_add, *s_replace, *s_remove, *s_set_pairs, *s_popall, *s_continued, *s_response_trailers, *s_writable, *s_CURRENT, *s_host, *s_get, *s_exchange, *s_wire_head, *s_props,
    *s_request, *s_path, *s_query, *s_version, *s_request_id, *s_x_request_id, *s_id, *s_client, *s_local, *s_empty,
    *s_plugin, *s_metrics, *s_table, *s_effects;

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
    Py_RETURN_NONE;
}

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
     "set_view_types(RequestHeaders, ResponseHeaders): the views HeaderBlock writes through"},
    {"stream_setup", hc_stream_setup, METH_VARARGS,
     "stream_setup(Step.NEXT, Step.ASYNC, Response, FROM_BODY): what StreamCore's steps return and test"},
    {NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_hostcore",
    "Proxy-Wasm host core: guest calls and hot host functions in C (see edgenode/wasm/native.py)", -1,
    methods,
};

#define INTERN(var, text)                                    \
    do {                                                     \
        if ((var = PyUnicode_InternFromString(text)) == NULL) \
            return NULL;                                     \
    } while (0)

PyMODINIT_FUNC PyInit__hostcore(void) {
    INTERN(s_is_root, "is_root");
    INTERN(s_request_block, "request_block");
    INTERN(s_response_block, "response_block");
    INTERN(s_request_headers_open, "request_headers_open");
    INTERN(s_response_headers_open, "response_headers_open");
    INTERN(s_in_log, "in_log");
    INTERN(s_request_body, "request_body");
    INTERN(s_response_body, "response_body");
    INTERN(s_headers, "headers");
    INTERN(s_method, "method");
    INTERN(s_target, "target");
    INTERN(s_scheme, "scheme");
    INTERN(s_status, "status");
    INTERN(s_items, "items");
    INTERN(s_add, "add");
    INTERN(s_replace, "replace");
    INTERN(s_remove, "remove");
    INTERN(s_set_pairs, "set_pairs");
    INTERN(s_popall, "popall");
    INTERN(s_continued, "continued");
    INTERN(s_response_trailers, "response_trailers");
    INTERN(s_writable, "writable");
    INTERN(s_CURRENT, "CURRENT");
    INTERN(s_host, "host");
    INTERN(s_get, "get");
    INTERN(s_exchange, "exchange");
    INTERN(s_wire_head, "wire_head");
    INTERN(s_props, "props");
    INTERN(s_request, "request");
    INTERN(s_path, "path");
    INTERN(s_query, "query");
    INTERN(s_version, "version");
    INTERN(s_request_id, "request_id");
    INTERN(s_x_request_id, "x-request-id");
    INTERN(s_id, "id");
    INTERN(s_client, "client");
    INTERN(s_local, "local");
    INTERN(s_empty, "");
    INTERN(s_plugin, "plugin");
    INTERN(s_metrics, "metrics");
    INTERN(s_table, "table");
    INTERN(s_effects, "effects");
    PyTypeObject *types[] = {&InstanceType, &HeaderBlockType, &HistogramType, &MetricTableType, &StreamCoreType};
    for (int i = 0; i < 5; i++)
        if (PyType_Ready(types[i]) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL) return NULL;
    const char *names[] = {"Instance", "HeaderBlock", "Histogram", "MetricTable", "StreamCore"};
    for (int i = 0; i < 5; i++) {
        Py_INCREF(types[i]);
        if (PyModule_AddObject(m, names[i], (PyObject *)types[i]) < 0) return NULL;
    }
    if (PyModule_AddObject(m, "NATIVE_PROPERTIES", hc_native_property_names()) < 0) return NULL;
    return m;
}
