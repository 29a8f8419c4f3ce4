;; Call-path benchmark module: an empty export, a loop of host calls answered in Python
;; (proxy_get_current_time_nanoseconds) and one answered by the host core (proxy_get_log_level).
(module
  (import "env" "proxy_get_current_time_nanoseconds" (func $now (param i32) (result i32)))
  (import "env" "proxy_get_log_level" (func $level (param i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "malloc") (param i32) (result i32) (i32.const 2048))
  (func (export "noop") (param i32) (result i32) (local.get 0))
  (func (export "host_calls") (param $n i32) (result i32)
    (block $done
      (loop $again
        (br_if $done (i32.eqz (local.get $n)))
        (drop (call $now (i32.const 64)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $again)))
    (i32.const 0))
  (func (export "native_calls") (param $n i32) (result i32)
    (block $done
      (loop $again
        (br_if $done (i32.eqz (local.get $n)))
        (drop (call $level (i32.const 64)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $again)))
    (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
)
