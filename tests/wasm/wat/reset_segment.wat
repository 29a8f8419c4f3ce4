;; A filter whose streams drop a passive data segment (per-request isolation, Vm.recycle):
;; on_request_headers copies the segment ("1") into memory with memory.init, which traps
;; once the segment is dropped, adds it as the request header x-state, then drops it.  A
;; reset does not bring dropped segments back, so such a module must get a new instance
;; per stream.
(module
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data $seg "1")
  (data (i32.const 16) "x-state")
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (memory.init $seg (i32.const 500) (i32.const 0) (i32.const 1))
    (drop (call $add (i32.const 0) (i32.const 16) (i32.const 7) (i32.const 500) (i32.const 1)))
    (data.drop $seg)
    (i32.const 0))
  (func (export "proxy_abi_version_0_2_1")))
