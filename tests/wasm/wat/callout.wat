;; HTTP callout: on_request_headers calls upstream "auth" (or the one named by the
;; x-upstream request header) and pauses; on_http_call_response (delivered to the
;; ROOT context) switches to the stream, copies :status and the body into request
;; headers, and continues.  A refused call -> local 500; a failed call -> local 502.
(module
  (import "env" "proxy_http_call" (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $replace (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buf (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $set_ctx (param i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (global $root_seen (mut i32) (i32.const 0))
  (data (i32.const 100) "x-upstream")      ;; 10
  (data (i32.const 120) "auth")            ;; 4
  (data (i32.const 130) ":status")         ;; 7
  (data (i32.const 140) "x-auth-status")   ;; 13
  (data (i32.const 160) "x-auth-body")     ;; 11
  (data (i32.const 180) "callout refused") ;; 15
  (data (i32.const 200) "callout failed")  ;; 14
  (data (i32.const 220) "x-callout-root")  ;; 14
  (data (i32.const 400) "\03\00\00\00\07\00\00\00\03\00\00\00\05\00\00\00\05\00\00\00\0a\00\00\00\0a\00\00\00\3a\6d\65\74\68\6f\64\00\47\45\54\00\3a\70\61\74\68\00\2f\61\75\74\68\00\3a\61\75\74\68\6f\72\69\74\79\00\61\75\74\68\2e\6c\6f\63\61\6c\00")
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param i32 i32) (result i32)
    ;; default upstream "auth"; an x-upstream header overrides it
    (i32.store (i32.const 300) (i32.const 120))
    (i32.store (i32.const 304) (i32.const 4))
    (drop (call $get (i32.const 0) (i32.const 100) (i32.const 10) (i32.const 300) (i32.const 304)))
    (if (call $http_call (i32.load (i32.const 300)) (i32.load (i32.const 304))
                         (i32.const 400) (i32.const 74) (i32.const 0) (i32.const 0)
                         (i32.const 0) (i32.const 0) (i32.const 5000) (i32.const 310))
      (then
        (drop (call $reply (i32.const 500) (i32.const 0) (i32.const 0) (i32.const 180) (i32.const 15)
                           (i32.const 0) (i32.const 0) (i32.const -1))))
      (else  ;; remember which stream this token belongs to (token table at 1024)
        (i32.store (i32.add (i32.const 1024) (i32.shl (i32.load (i32.const 310)) (i32.const 2)))
                   (local.get $ctx))))
    (i32.const 1))
  (func (export "proxy_on_http_call_response") (param $root i32) (param $token i32) (param $nh i32) (param $bs i32) (param i32)
    (global.set $root_seen (local.get $root))
    (drop (call $set_ctx (i32.load (i32.add (i32.const 1024) (i32.shl (local.get $token) (i32.const 2))))))
    (if (i32.eqz (local.get $nh))
      (then
        (drop (call $reply (i32.const 502) (i32.const 0) (i32.const 0) (i32.const 200) (i32.const 14)
                           (i32.const 0) (i32.const 0) (i32.const -1)))
        (return)))
    (drop (call $get (i32.const 6) (i32.const 130) (i32.const 7) (i32.const 320) (i32.const 324)))
    (drop (call $replace (i32.const 0) (i32.const 140) (i32.const 13) (i32.load (i32.const 320)) (i32.load (i32.const 324))))
    (drop (call $get_buf (i32.const 4) (i32.const 0) (local.get $bs) (i32.const 330) (i32.const 334)))
    (drop (call $replace (i32.const 0) (i32.const 160) (i32.const 11) (i32.load (i32.const 330)) (i32.load (i32.const 334))))
    (drop (call $continue (i32.const 0))))
  (func (export "root_seen") (param i32) (result i32) (global.get $root_seen))
  (func (export "proxy_abi_version_0_2_1"))
)
