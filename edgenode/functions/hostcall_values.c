/* Values handed to the guest: the wasmtime API addresses and the exception types every
 * source file uses, and the writers of host-function arguments and results (see
 * hostcall.h for the layout of the sources).  Nothing here knows the resource table or the
 * call state beyond the wasmtime context a handle is made in.
 */
#include "hostcall.h"

#include <string.h>

api_t W;
PyObject *GuestTrap, *MultiDict;

/* --- argument and result helpers ---------------------------------------------------------------------------- */
int arg_rep(CallObject *c, val_t *v, uint32_t *rep) {
    void *host = NULL;
    void *err = v->kind == K_RESOURCE ? W.any_to_host(c->ctx, v->of.resource, &host) : (void *)1;
    if (err) {
        if (v->kind == K_RESOURCE) W.error_delete(err);
        PyErr_SetString(GuestTrap, "a guest-defined resource was passed where a host resource is expected");
        return -1;
    }
    *rep = W.host_rep(host);
    W.host_delete(host);
    return 0;
}

int arg_opt_rep(CallObject *c, val_t *v, uint32_t *rep) {
    *rep = 0;
    return v->of.option ? arg_rep(c, v->of.option, rep) : 0;
}

int put_resource(void *ctx, bool owned, uint32_t rep, uint32_t ty, val_t *out) {
    void *host = W.host_new(owned, rep, ty), *any = NULL;
    void *err = W.host_to_any(ctx, host, &any);
    W.host_delete(host);
    if (err) {
        W.error_delete(err);
        PyErr_SetString(GuestTrap, "cannot hand a resource to the guest");
        return -1;
    }
    out->kind = K_RESOURCE;
    out->of.resource = any;
    return 0;
}

int ret_own(CallObject *c, val_t *out, uint32_t rep, uint8_t type) {
    return put_resource(c->ctx, true, rep, type, out);
}

void ret_bool(val_t *out, bool b) { out->kind = K_BOOL; out->of.b = b; }
void ret_u16(val_t *out, uint16_t x) { out->kind = K_U16; out->of.u16 = x; }
void ret_u32(val_t *out, uint32_t x) { out->kind = K_U32; out->of.u32 = x; }
void ret_u64(val_t *out, uint64_t x) { out->kind = K_U64; out->of.u64 = x; }

void ret_string(val_t *out, const char *s, size_t n) {
    out->kind = K_STRING;
    W.byte_vec_new(&out->of.string, n, (const uint8_t *)s);
}

void ret_bytes(val_t *out, const uint8_t *data, size_t n) {
    out->kind = K_LIST;
    W.vallist_new_uninit(&out->of.list, n);
    val_t *items = out->of.list.data;
    for (size_t i = 0; i < n; i++) {
        items[i].kind = K_U8;
        items[i].of.u8 = data[i];
    }
}

void ret_case(val_t *out, const char *name, val_t *payload) {
    out->kind = K_VARIANT;
    W.byte_vec_new(&out->of.variant.disc, strlen(name), (const uint8_t *)name);
    out->of.variant.val = payload ? W.val_new(payload) : NULL;
}

void ret_result(val_t *out, bool ok, val_t *payload) {
    out->kind = K_RESULT;
    out->of.result.is_ok = ok;
    out->of.result.val = payload ? W.val_new(payload) : NULL;
}

void ret_option(val_t *out, val_t *payload) {
    out->kind = K_OPTION;
    out->of.option = payload ? W.val_new(payload) : NULL;
}

void ret_list(val_t *out, size_t n) {
    out->kind = K_LIST;
    W.vallist_new_uninit(&out->of.list, n);
    memset(out->of.list.data, 0, n * sizeof(val_t));
}

void ret_tuple(val_t *out, size_t n) {
    out->kind = K_TUPLE;
    W.valtuple_new_uninit(&out->of.list, n);
    memset(out->of.list.data, 0, n * sizeof(val_t));
}

void ret_record(val_t *out, size_t n, const char *const *names) {
    out->kind = K_RECORD;
    W.valrecord_new_uninit(&out->of.record, n);
    entry_t *e = out->of.record.data;
    memset(e, 0, n * sizeof(entry_t));
    for (size_t i = 0; i < n; i++) W.byte_vec_new(&e[i].name, strlen(names[i]), (const uint8_t *)names[i]);
}
