;; Shared data, metrics, ticks and per-VM state in one filter:
;; * on_configure keeps the plugin configuration (echoed as x-config), defines the
;;   counter "requests" and sets a 10 ms tick;
;; * each request appends "x" to shared key "hits" (CAS loop) and echoes it as x-hits,
;;   increments "requests", and bumps a per-VM global echoed as x-count ('0'+n);
;; * on_tick increments counter "ticks".
(module
  (import "env" "proxy_get_buffer_bytes" (func $get_buf (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $inc (param i32 i64) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds" (func $tick (param i32) (result i32)))
  (import "env" "proxy_get_shared_data" (func $sget (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $sset (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (global $count (mut i32) (i32.const 0))
  (global $req_metric (mut i32) (i32.const 0))
  (global $tick_metric (mut i32) (i32.const 0))
  (global $hits_ptr (mut i32) (i32.const 0))
  (global $hits_len (mut i32) (i32.const 0))
  (data (i32.const 100) "requests")  ;; 8
  (data (i32.const 110) "ticks")     ;; 5
  (data (i32.const 120) "hits")      ;; 4
  (data (i32.const 130) "x-hits")    ;; 6
  (data (i32.const 140) "x-count")   ;; 7
  (data (i32.const 150) "x-config")  ;; 8
  (func $malloc (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_configure") (param i32) (param $size i32) (result i32)
    (i32.store (i32.const 200) (i32.const 0))
    (i32.store (i32.const 204) (i32.const 0))
    (drop (call $get_buf (i32.const 7) (i32.const 0) (local.get $size) (i32.const 200) (i32.const 204)))
    (drop (call $define (i32.const 0) (i32.const 100) (i32.const 8) (i32.const 210)))
    (global.set $req_metric (i32.load (i32.const 210)))
    (drop (call $define (i32.const 0) (i32.const 110) (i32.const 5) (i32.const 214)))
    (global.set $tick_metric (i32.load (i32.const 214)))
    (drop (call $tick (i32.const 10)))
    (i32.const 1))
  (func (export "proxy_on_tick") (param i32)
    (drop (call $inc (global.get $tick_metric) (i64.const 1))))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (local $status i32) (local $new i32) (local $len i32)
    (global.set $count (i32.add (global.get $count) (i32.const 1)))
    (drop (call $inc (global.get $req_metric) (i64.const 1)))
    (loop $retry
      (i32.store (i32.const 220) (i32.const 0))
      (i32.store (i32.const 224) (i32.const 0))
      (i32.store (i32.const 228) (i32.const 0))
      (local.set $status (call $sget (i32.const 120) (i32.const 4) (i32.const 220) (i32.const 224) (i32.const 228)))
      (local.set $len (i32.load (i32.const 224)))
      (local.set $new (call $malloc (i32.add (local.get $len) (i32.const 1))))
      (memory.copy (local.get $new) (i32.load (i32.const 220)) (local.get $len))
      (i32.store8 (i32.add (local.get $new) (local.get $len)) (i32.const 120)) ;; 'x'
      (br_if $retry (i32.eq (i32.const 8)  ;; CAS_MISMATCH -> retry
        (call $sset (i32.const 120) (i32.const 4) (local.get $new) (i32.add (local.get $len) (i32.const 1))
                    (i32.load (i32.const 228))))))
    (global.set $hits_ptr (local.get $new))
    (global.set $hits_len (i32.add (local.get $len) (i32.const 1)))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (i32.store8 (i32.const 230) (i32.add (i32.const 48) (global.get $count)))
    (drop (call $add (i32.const 2) (i32.const 130) (i32.const 6) (global.get $hits_ptr) (global.get $hits_len)))
    (drop (call $add (i32.const 2) (i32.const 140) (i32.const 7) (i32.const 230) (i32.const 1)))
    (drop (call $add (i32.const 2) (i32.const 150) (i32.const 8) (i32.load (i32.const 200)) (i32.load (i32.const 204))))
    (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
)
