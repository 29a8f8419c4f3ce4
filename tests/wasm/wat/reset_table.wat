;; A filter whose streams change its function table (per-request isolation, Vm.recycle):
;; on_request_headers adds the request header x-state, what table slot 0 returns ('1' in a
;; fresh instance), then points slot 0 at the function returning '2'.  A reset restores
;; memory and globals only, so such a module must get a new instance per stream.
(module
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (type $char (func (result i32)))
  (table 2 funcref)
  (elem (i32.const 0) $one $two)
  (data (i32.const 16) "x-state")
  (func $one (result i32) (i32.const 49))
  (func $two (result i32) (i32.const 50))
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (i32.store8 (i32.const 500) (call_indirect (type $char) (i32.const 0)))
    (drop (call $add (i32.const 0) (i32.const 16) (i32.const 7) (i32.const 500) (i32.const 1)))
    (table.set (i32.const 0) (table.get (i32.const 1)))
    (i32.const 0))
  (func (export "proxy_abi_version_0_2_1")))
