/* The stream hooks the image filters define: the module exports only these (proxy_wasm.h).
 * image-accept.wasm (IMAGE_ACCEPT_ONLY) holds the request-side filter alone. */
#ifdef IMAGE_ACCEPT_ONLY
#define PW_HOOKS PW_HOOK_REQUEST_HEADERS
#else
#define PW_HOOKS (PW_HOOK_REQUEST_HEADERS | PW_HOOK_RESPONSE_HEADERS | PW_HOOK_RESPONSE_BODY)
#endif
