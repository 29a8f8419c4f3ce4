/* The stream hooks the image filters define: the module exports only these (proxy_wasm.h). */
#define PW_HOOKS (PW_HOOK_REQUEST_HEADERS | PW_HOOK_RESPONSE_HEADERS | PW_HOOK_RESPONSE_BODY)
