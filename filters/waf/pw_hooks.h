/* The stream hooks the WAF defines (request side, plus the detect-only response headers):
 * its module exports only these (proxy_wasm.h), so a stream makes no response-body or log
 * guest call. */
#define PW_HOOKS (PW_HOOK_REQUEST_HEADERS | PW_HOOK_REQUEST_BODY | PW_HOOK_RESPONSE_HEADERS)
