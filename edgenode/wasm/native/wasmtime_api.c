/* Run-time resolution of the wasmtime C API (see wasmtime_api.h). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>

#include "wasmtime_api.h"

struct wt_api WT;

#define RESOLVE(field, symbol)                                                          \
    do {                                                                                \
        *(void **)(&WT.field) = dlsym(lib, symbol);                                     \
        if (WT.field == NULL) {                                                         \
            PyErr_Format(PyExc_ImportError, "wasmtime library %s lacks %s", path, symbol); \
            return -1;                                                                  \
        }                                                                               \
    } while (0)

int wt_load(const char *path) {
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        PyErr_Format(PyExc_ImportError, "cannot load the wasmtime library %s: %s", path, dlerror());
        return -1;
    }
    RESOLVE(func_call_unchecked, "wasmtime_func_call_unchecked");
    RESOLVE(context_set_epoch_deadline, "wasmtime_context_set_epoch_deadline");
    RESOLVE(memory_data, "wasmtime_memory_data");
    RESOLVE(memory_data_size, "wasmtime_memory_data_size");
    RESOLVE(memory_grow, "wasmtime_memory_grow");
    RESOLVE(trap_new, "wasmtime_trap_new");
    RESOLVE(trap_message, "wasm_trap_message");
    RESOLVE(trap_delete, "wasm_trap_delete");
    RESOLVE(error_message, "wasmtime_error_message");
    RESOLVE(error_delete, "wasmtime_error_delete");
    RESOLVE(byte_vec_delete, "wasm_byte_vec_delete");
    RESOLVE(linker_define_func_unchecked, "wasmtime_linker_define_func_unchecked");
    RESOLVE(instance_export_get, "wasmtime_instance_export_get");
    RESOLVE(store_new, "wasmtime_store_new");
    RESOLVE(store_context, "wasmtime_store_context");
    RESOLVE(store_limiter, "wasmtime_store_limiter");
    RESOLVE(store_delete, "wasmtime_store_delete");
    RESOLVE(instance_pre_instantiate, "wasmtime_instance_pre_instantiate");
    RESOLVE(engine_increment_epoch, "wasmtime_engine_increment_epoch");
    RESOLVE(global_set, "wasmtime_global_set");
    return 0;
}
