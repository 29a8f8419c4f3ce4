;; Holds the response headers (StopIteration; the stage allows it, so the body callbacks
;; go on while held) and buffers the body (Stop) until the stream's last callback: the trailers hook when trailers follow (it adds
;; x-held-resp: yes to map 3 and calls proxy_continue_stream), else the eos body
;; callback (which continues).  Logs (code, a, b) at 2000 (count at 1996): 3 = response
;; body (size, eos), 4 = response trailers (n, 0).
(module
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "x-held-resp")   ;; 11
  (data (i32.const 120) "yes")           ;; 3
  (func (export "malloc") (param i32) (result i32) (i32.const 8192))
  (func $log (param $code i32) (param $a i32) (param $b i32) (local $at i32)
    (local.set $at (i32.add (i32.const 2000) (i32.mul (i32.load (i32.const 1996)) (i32.const 12))))
    (i32.store (local.get $at) (local.get $code))
    (i32.store (i32.add (local.get $at) (i32.const 4)) (local.get $a))
    (i32.store (i32.add (local.get $at) (i32.const 8)) (local.get $b))
    (i32.store (i32.const 1996) (i32.add (i32.load (i32.const 1996)) (i32.const 1))))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_response_body") (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (call $log (i32.const 3) (local.get $size) (local.get $eos))
    (if (local.get $eos) (then (drop (call $continue (i32.const 1))) (return (i32.const 0))))
    (i32.const 1))
  (func (export "proxy_on_response_trailers") (param $ctx i32) (param $n i32) (result i32)
    (call $log (i32.const 4) (local.get $n) (i32.const 0))
    (drop (call $add (i32.const 3) (i32.const 100) (i32.const 11) (i32.const 120) (i32.const 3)))
    (drop (call $continue (i32.const 1)))
    (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
)
