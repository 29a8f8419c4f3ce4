;; on_configure logs why and returns false: the node must refuse to start.
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "config must set \22mode\22")  ;; 22
  (func (export "malloc") (param i32) (result i32) (i32.const 8192))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $log (i32.const 4) (i32.const 100) (i32.const 22)))
    (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
)
