/* The stream hooks the routing filter defines: its module exports only these (proxy_wasm.h). */
#define PW_HOOKS (PW_HOOK_REQUEST_HEADERS | PW_HOOK_RESPONSE_HEADERS)
