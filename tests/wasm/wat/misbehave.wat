;; Misbehaving filter, chosen by the x-misbehave request header:
;; "trap" -> unreachable, "loop" -> infinite loop (cut off by the CPU deadline),
;; "bomb" -> grows memory until refused, then traps; anything else -> adds x-ok.
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (data (i32.const 100) "x-misbehave")  ;; 11
  (data (i32.const 120) "x-ok")         ;; 4
  (data (i32.const 130) "1")
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (local $c i32)
    (if (i32.eqz (call $get (i32.const 0) (i32.const 100) (i32.const 11) (i32.const 200) (i32.const 204)))
      (then
        (local.set $c (i32.load8_u (i32.load (i32.const 200))))
        (if (i32.eq (local.get $c) (i32.const 116)) (then unreachable))          ;; 't'
        (if (i32.eq (local.get $c) (i32.const 108)) (then (loop $forever (br $forever)))) ;; 'l'
        (if (i32.eq (local.get $c) (i32.const 98))                               ;; 'b'
          (then
            (loop $grow
              (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
            unreachable))))
    (drop (call $add (i32.const 0) (i32.const 120) (i32.const 4) (i32.const 130) (i32.const 1)))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 2) (i32.const 120) (i32.const 4) (i32.const 130) (i32.const 1)))
    (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
)
