;; Imports a host function that does not exist: loading must name it.
(module
  (import "env" "proxy_foo" (func $foo (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "malloc") (param i32) (result i32) (i32.const 8192))
  (func (export "proxy_abi_version_0_2_1"))
)
