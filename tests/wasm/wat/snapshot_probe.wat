;; Snapshot probe: start-up state in memory, grown memory and globals of every numeric
;; type, and whatever a stream leaves behind.
;; * on_configure writes 'c' at 300, sets $cfg = 42 and $ratio = 0.5, grows memory by a
;;   page and writes 'g' at 131080 (in the new page); with a 6-byte plugin config
;;   ("random") it also calls WASI random_get, an effect a snapshot must not hide.
;; * on_request_headers counts streams in $streams and adds the request header x-state,
;;   5 chars: [a previous stream's marker at 400] [$cfg/$ratio set] [byte 300 set]
;;   [byte 131080 set] ['0' + streams]; then leaves its marker 'M' at 400.
(module
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 8192))
  (global $cfg (mut i32) (i32.const 0))
  (global $streams (mut i64) (i64.const 0))
  (global $ratio (mut f64) (f64.const 0))
  (data (i32.const 16) "x-state")
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_configure") (param i32) (param $size i32) (result i32)
    (i32.store8 (i32.const 300) (i32.const 99))
    (global.set $cfg (i32.const 42))
    (global.set $ratio (f64.const 0.5))
    (drop (memory.grow (i32.const 1)))
    (i32.store8 (i32.const 131080) (i32.const 103))
    (if (i32.eq (local.get $size) (i32.const 6))
      (then (drop (call $random (i32.const 600) (i32.const 8)))))
    (i32.const 1))
  (func $flag (param $ok i32) (result i32)
    (select (i32.const 49) (i32.const 48) (local.get $ok)))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (global.set $streams (i64.add (global.get $streams) (i64.const 1)))
    (i32.store8 (i32.const 500) (call $flag (i32.eq (i32.load8_u (i32.const 400)) (i32.const 77))))
    (i32.store8 (i32.const 501) (call $flag (i32.and (i32.eq (global.get $cfg) (i32.const 42))
                                                      (f64.eq (global.get $ratio) (f64.const 0.5)))))
    (i32.store8 (i32.const 502) (call $flag (i32.eq (i32.load8_u (i32.const 300)) (i32.const 99))))
    (i32.store8 (i32.const 503) (call $flag (i32.eq (i32.load8_u (i32.const 131080)) (i32.const 103))))
    (i32.store8 (i32.const 504) (i32.add (i32.const 48) (i32.wrap_i64 (global.get $streams))))
    (i32.store8 (i32.const 400) (i32.const 77))
    (drop (call $add (i32.const 0) (i32.const 16) (i32.const 7) (i32.const 500) (i32.const 5)))
    (i32.const 0))
  (func (export "proxy_abi_version_0_2_1")))
