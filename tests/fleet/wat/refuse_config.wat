;; proxy_on_configure returns false: a version with this module must be refused.
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "stamp: bad configuration")
  (func (export "malloc") (param i32) (result i32) (i32.const 8192))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $log (i32.const 4) (i32.const 100) (i32.const 24)))
    (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
)
