/* What the host core's units share: the interned attribute names they look Python objects
 * up by, the Python side's objects setup() hands over (module.c fills them in), and the
 * process-wide call state.  Defined here, below every unit that uses them, so the units
 * depend on each other in layers, not in a circle. */
#include "hostcore.h"

#ifdef HC_MULTIDICT_CAPI
#include "multidict_capi.h" /* from the installed multidict package (setup.py) */
#endif

PyObject *hc_GuestTrap, *hc_HostTrap, *hc_MemoryFault, *hc_getversion, *hc_report, *hc_current_dict;
Instance *hc_current = NULL;
unsigned long long hc_serial = 0;
PyObject *hc_instantiate_error = NULL;
PyObject *s_is_root, *s_request_block, *s_response_block, *s_request_headers_open, *s_response_headers_open,
    *s_in_log, *s_request_body, *s_response_body, *s_headers, *s_method, *s_target, *s_scheme, *s_status,
    *s_items, *s_add, *s_replace, *s_remove, *s_set_pairs, *s_popall, *s_continued, *s_response_trailers, *s_writable, *s_CURRENT, *s_host, *s_get, *s_exchange, *s_wire_head, *s_props,
    *s_request, *s_path, *s_query, *s_version, *s_request_id, *s_x_request_id, *s_id, *s_client, *s_local, *s_empty,
    *s_plugin, *s_metrics, *s_table, *s_effects, *s_raw;

#define INTERN(var, text)                                    \
    do {                                                     \
        if ((var = PyUnicode_InternFromString(text)) == NULL) \
            return -1;                                       \
    } while (0)

int hc_intern_names(void) {
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
    INTERN(s_raw, "raw");
    return 0;
}

/* --- multidict: a field map's version and an added field, without a Python call ------------ */

#ifdef HC_MULTIDICT_CAPI
static MultiDict_CAPI *md_capi; /* NULL: the installed multidict has no (usable) C API */
static PyTypeObject *md_types[2]; /* MultiDict, CIMultiDict: the exact types the C API takes */
#endif

int hc_multidict_setup(void) {
#ifdef HC_MULTIDICT_CAPI
    if (md_capi != NULL) return 1;
    MultiDict_CAPI *capi = MultiDict_GetCAPI();
    if (capi == NULL) { /* no capsule (a pure-Python multidict) or an older API: Python calls */
        PyErr_Clear();
        return 0;
    }
    md_types[0] = MultiDict_GetType(capi);
    md_types[1] = CIMultiDict_GetType(capi);
    if (md_types[0] == NULL || md_types[1] == NULL) {
        Py_CLEAR(md_types[0]);
        Py_CLEAR(md_types[1]);
        PyErr_Clear();
        return 0;
    }
    md_capi = capi;
    return 1;
#else
    return 0;
#endif
}

#ifdef HC_MULTIDICT_CAPI
/* Whether ``headers`` is a MultiDict or CIMultiDict itself (a subclass may override ``add``). */
static int md_exact(PyObject *headers) {
    return md_capi != NULL && (Py_IS_TYPE(headers, md_types[1]) || Py_IS_TYPE(headers, md_types[0]));
}
#endif

int hc_md_version(PyObject *headers, unsigned long long *out) {
#ifdef HC_MULTIDICT_CAPI
    if (md_exact(headers)) {
        *out = MultiDict_GetVersion(md_capi, headers);
        return *out == 0 && PyErr_Occurred() ? -1 : 0;
    }
#endif
    PyObject *v = PyObject_CallOneArg(hc_getversion, headers);
    if (v == NULL) return -1;
    *out = PyLong_AsUnsignedLongLong(v);
    Py_DECREF(v);
    return PyErr_Occurred() ? -1 : 0;
}

int hc_md_add(PyObject *headers, PyObject *key, PyObject *value) {
#ifdef HC_MULTIDICT_CAPI
    if (md_exact(headers)) return MultiDict_Add(md_capi, headers, key, value);
#endif
    PyObject *args[3] = {headers, key, value};
    PyObject *res = PyObject_VectorcallMethod(s_add, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (res == NULL) return -1;
    Py_DECREF(res);
    return 0;
}
