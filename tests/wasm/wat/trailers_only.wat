;; Only trailers hooks (no body hooks): the request body is read before the next stage
;; when it may end with trailers; a streamed response runs the hook at its end.  Each
;; hook appends x-seen-by: trailers-only to its map, and logs (code, n) at 2000 (count
;; at 1996): 2 = request trailers, 4 = response trailers.
(module
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "x-seen-by")       ;; 9
  (data (i32.const 120) "trailers-only")   ;; 13
  (func (export "malloc") (param i32) (result i32) (i32.const 8192))
  (func $log (param $code i32) (param $a i32) (local $at i32)
    (local.set $at (i32.add (i32.const 2000) (i32.mul (i32.load (i32.const 1996)) (i32.const 8))))
    (i32.store (local.get $at) (local.get $code))
    (i32.store (i32.add (local.get $at) (i32.const 4)) (local.get $a))
    (i32.store (i32.const 1996) (i32.add (i32.load (i32.const 1996)) (i32.const 1))))
  (func (export "proxy_on_request_trailers") (param $ctx i32) (param $n i32) (result i32)
    (call $log (i32.const 2) (local.get $n))
    (drop (call $add (i32.const 1) (i32.const 100) (i32.const 9) (i32.const 120) (i32.const 13)))
    (i32.const 0))
  (func (export "proxy_on_response_trailers") (param $ctx i32) (param $n i32) (result i32)
    (call $log (i32.const 4) (local.get $n))
    (drop (call $add (i32.const 3) (i32.const 100) (i32.const 9) (i32.const 120) (i32.const 13)))
    (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
)
