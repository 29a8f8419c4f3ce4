;; Header rewrite: request gets x-rewritten and a new :path; response gets
;; x-served-by and loses Server.
(module
  (import "env" "proxy_replace_header_map_value" (func $replace (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value" (func $remove (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 100) "x-rewritten")   ;; 11
  (data (i32.const 120) "1")
  (data (i32.const 130) ":path")         ;; 5
  (data (i32.const 140) "/rewritten")    ;; 10
  (data (i32.const 160) "x-served-by")   ;; 11
  (data (i32.const 180) "wasm")          ;; 4
  (data (i32.const 190) "server")        ;; 6
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $replace (i32.const 0) (i32.const 100) (i32.const 11) (i32.const 120) (i32.const 1)))
    (drop (call $replace (i32.const 0) (i32.const 130) (i32.const 5) (i32.const 140) (i32.const 10)))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 2) (i32.const 160) (i32.const 11) (i32.const 180) (i32.const 4)))
    (drop (call $remove (i32.const 2) (i32.const 190) (i32.const 6)))
    (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
)
