;; Start-up work under the start-up limits: on_configure spins for the number of
;; iterations in the first 4 bytes of the plugin configuration (little-endian), then
;; grows linear memory by the number of 64 KiB pages in the next 4 bytes, touching
;; every new page (a "large dictionary"), and fails (returns 0) if the growth is
;; refused.  on_request_headers spins for the same iteration count.
(module
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_call_foreign_function" (func $foreign (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 200) "memory.grow refused")  ;; 19
  (data (i32.const 240) "get_log_level")  ;; 13
  (global $heap (mut i32) (i32.const 1024))
  (global $spins (mut i32) (i32.const 0))
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func $spin (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (global.get $spins)))))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (local $cfg i32) (local $pages i32) (local $p i32) (local $end i32)
    ;; a pure foreign function during start-up must keep the snapshot possible
    (drop (call $foreign (i32.const 240) (i32.const 13) (i32.const 0) (i32.const 0) (i32.const 32) (i32.const 36)))
    (drop (call $get_buffer (i32.const 7) (i32.const 0) (i32.const 8) (i32.const 16) (i32.const 20)))
    (local.set $cfg (i32.load (i32.const 16)))
    (global.set $spins (i32.load (local.get $cfg)))
    (local.set $pages (i32.load offset=4 (local.get $cfg)))
    (call $spin)
    (if (i32.eqz (local.get $pages)) (then (return (i32.const 1))))
    (local.set $p (memory.grow (local.get $pages)))
    (if (i32.eq (local.get $p) (i32.const -1))
      (then (drop (call $log (i32.const 4) (i32.const 200) (i32.const 19))) (return (i32.const 0))))
    (local.set $p (i32.mul (local.get $p) (i32.const 65536)))
    (local.set $end (i32.add (local.get $p) (i32.mul (local.get $pages) (i32.const 65536))))
    (loop $touch
      (i32.store (local.get $p) (local.get $p))
      (local.set $p (i32.add (local.get $p) (i32.const 4096)))
      (br_if $touch (i32.lt_u (local.get $p) (local.get $end))))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $spin) (i32.const 0))
  (func (export "proxy_abi_version_0_2_100"))
)
