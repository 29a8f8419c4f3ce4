;; A filter whose streams register a shared queue (per-request isolation, Vm.recycle): the
;; queue's notifications would come to the instance after its stream, so it must never be
;; reset for another one.
(module
  (import "env" "proxy_register_shared_queue" (func $register (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "jobs")
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $register (i32.const 16) (i32.const 4) (i32.const 64)))
    (i32.const 0))
  (func (export "proxy_abi_version_0_2_1")))
