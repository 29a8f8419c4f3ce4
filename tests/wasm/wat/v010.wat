;; ABI 0.1.0: proxy_get_configuration, 2-argument header callbacks, continue_request.
;; Echoes its configuration as response header x-config; pauses request headers
;; and resumes at once with proxy_continue_request.
(module
  (import "env" "proxy_get_configuration" (func $get_config (param i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_request" (func $continue_request (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (data (i32.const 100) "x-config")   ;; 8
  (data (i32.const 110) "x-missing")  ;; 9
  (data (i32.const 120) "x-missing-status")  ;; 16
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $get_config (i32.const 200) (i32.const 204)))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32) (result i32)
    ;; 0.1.0: a missing header is OK + empty
    (i32.store8 (i32.const 210) (i32.add (i32.const 48)
      (call $get (i32.const 0) (i32.const 110) (i32.const 9) (i32.const 220) (i32.const 224))))
    (drop (call $continue_request))
    (i32.const 1))
  (func (export "proxy_on_response_headers") (param i32 i32) (result i32)
    (drop (call $add (i32.const 2) (i32.const 100) (i32.const 8) (i32.load (i32.const 200)) (i32.load (i32.const 204))))
    (drop (call $add (i32.const 2) (i32.const 120) (i32.const 16) (i32.const 210) (i32.const 1)))
    (i32.const 0))
  (func (export "proxy_abi_version_0_1_0"))
)
