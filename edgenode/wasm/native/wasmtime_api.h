/* The part of the wasmtime C API (wasmtime 50) the host core uses, declared here from
 * the API's documentation and resolved at run time from the shared library that ships
 * inside the wasmtime wheel (wt_load), so building needs no wasmtime headers.
 *
 * Struct layouts are checked against wasmtime-py's ctypes definitions when the module is
 * set up (native.py passes their sizes to setup()). */
#ifndef EDGENODE_WASMTIME_API_H
#define EDGENODE_WASMTIME_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wasmtime_context wasmtime_context_t;
typedef struct wasmtime_store wasmtime_store_t;
typedef struct wasmtime_caller wasmtime_caller_t;
typedef struct wasmtime_error wasmtime_error_t;
typedef struct wasm_trap_t wasm_trap_t;
typedef struct wasm_engine_t wasm_engine_t;
typedef struct wasmtime_linker wasmtime_linker_t;
typedef struct wasm_functype_t wasm_functype_t;
typedef struct wasmtime_instance_pre wasmtime_instance_pre_t;

typedef struct { uint64_t store_id; void *private_; } wt_func;
typedef struct { struct { uint64_t store_id; uint32_t p1; } a; uint32_t p2; } wt_memory;
typedef struct { uint64_t store_id; size_t private_; } wt_instance;
typedef union { int32_t i32; int64_t i64; float f32; double f64; uint8_t v128[16]; void *funcref; } wt_val_raw;
typedef struct {
    uint8_t kind;
    union { wt_func func; wt_memory memory; uint64_t align_; uint8_t bytes[24]; } of;
} wt_extern;
typedef struct { size_t size; char *data; } wt_byte_vec;

enum { WT_EXTERN_FUNC = 0, WT_EXTERN_GLOBAL = 1, WT_EXTERN_MEMORY = 3 };

typedef wasm_trap_t *(*wt_callback)(void *env, wasmtime_caller_t *caller, wt_val_raw *args, size_t n);

struct wt_api {
    wasmtime_error_t *(*func_call_unchecked)(wasmtime_context_t *, const wt_func *, wt_val_raw *, size_t,
                                             wasm_trap_t **);
    void (*context_set_epoch_deadline)(wasmtime_context_t *, uint64_t);
    uint8_t *(*memory_data)(const wasmtime_context_t *, const wt_memory *);
    size_t (*memory_data_size)(const wasmtime_context_t *, const wt_memory *);
    wasmtime_error_t *(*memory_grow)(wasmtime_context_t *, const wt_memory *, uint64_t, uint64_t *);
    wasm_trap_t *(*trap_new)(const char *, size_t);
    void (*trap_message)(const wasm_trap_t *, wt_byte_vec *);
    void (*trap_delete)(wasm_trap_t *);
    void (*error_message)(const wasmtime_error_t *, wt_byte_vec *);
    void (*error_delete)(wasmtime_error_t *);
    void (*byte_vec_delete)(wt_byte_vec *);
    wasmtime_error_t *(*linker_define_func_unchecked)(wasmtime_linker_t *, const char *, size_t, const char *,
                                                      size_t, const wasm_functype_t *, wt_callback, void *,
                                                      void (*)(void *));
    bool (*instance_export_get)(wasmtime_context_t *, const wt_instance *, const char *, size_t, wt_extern *);
    wasmtime_store_t *(*store_new)(wasm_engine_t *, void *, void (*)(void *));
    wasmtime_context_t *(*store_context)(wasmtime_store_t *);
    void (*store_limiter)(wasmtime_store_t *, int64_t, int64_t, int64_t, int64_t, int64_t);
    void (*store_delete)(wasmtime_store_t *);
    wasmtime_error_t *(*instance_pre_instantiate)(const wasmtime_instance_pre_t *, wasmtime_context_t *,
                                                  wt_instance *, wasm_trap_t **);
    void (*engine_increment_epoch)(wasm_engine_t *);
    /* the value is a wasmtime_val_t, passed through from wasmtime-py's ctypes array */
    wasmtime_error_t *(*global_set)(wasmtime_context_t *, const void *global, const void *val);
};

extern struct wt_api WT;

/* Resolve every function from the library at ``path``; 0 on success, else -1 with a
 * Python exception set. */
int wt_load(const char *path);

#endif
