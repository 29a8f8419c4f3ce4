;; Misbehaving filter, chosen by the x-misbehave request header:
;; "trap" -> unreachable, "loop" -> infinite loop (cut off by the CPU deadline),
;; "bomb" -> grows memory until refused, then traps; anything else -> adds x-ok.
;; x-misbehave-in picks the callback: absent -> on_request_headers, "response" ->
;; on_response_headers, "log" -> on_log.
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (data (i32.const 100) "x-misbehave")  ;; 11
  (data (i32.const 120) "x-ok")         ;; 4
  (data (i32.const 130) "1")
  (data (i32.const 140) "x-misbehave-in")  ;; 14
  (global $mode (mut i32) (i32.const 0))
  (global $where (mut i32) (i32.const 0))
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  ;; t: trap, l: endless loop, b: grow memory until refused, then trap; else nothing
  (func $misbehave (param $c i32)
    (if (i32.eq (local.get $c) (i32.const 116)) (then unreachable))          ;; 't'
    (if (i32.eq (local.get $c) (i32.const 108)) (then (loop $forever (br $forever)))) ;; 'l'
    (if (i32.eq (local.get $c) (i32.const 98))                               ;; 'b'
      (then
        (loop $grow
          (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
        unreachable)))
  ;; first byte of request header $name (length $len), or 0
  (func $first (param $name i32) (param $len i32) (result i32)
    (if (result i32) (i32.eqz (call $get (i32.const 0) (local.get $name) (local.get $len)
                                         (i32.const 200) (i32.const 204)))
      (then (i32.load8_u (i32.load (i32.const 200))))
      (else (i32.const 0))))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (global.set $mode (call $first (i32.const 100) (i32.const 11)))
    (global.set $where (call $first (i32.const 140) (i32.const 14)))
    (if (i32.eqz (global.get $where)) (then (call $misbehave (global.get $mode))))
    (drop (call $add (i32.const 0) (i32.const 120) (i32.const 4) (i32.const 130) (i32.const 1)))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (if (i32.eq (global.get $where) (i32.const 114)) (then (call $misbehave (global.get $mode)))) ;; 'r'
    (drop (call $add (i32.const 2) (i32.const 120) (i32.const 4) (i32.const 130) (i32.const 1)))
    (i32.const 0))
  (func (export "proxy_on_log") (param i32)
    (if (i32.eq (global.get $where) (i32.const 108)) (then (call $misbehave (global.get $mode))))) ;; 'l'
  (func (export "proxy_abi_version_0_2_1"))
)
