;; A filter with body hooks but no trailers hooks: its last body callback is the end of
;; the stream (eos=1) even when trailers follow, and may read and add trailers there.
;; Request: adds x-req-added: 1 (map 1).  Response: copies x-status (map 3, if any) into
;; a new x-body-saw trailer, adds x-resp-added: 1.  The status of each add and each
;; body call's (size, eos) go to an event log at 2000 (count at 1996): (code, a, b) with
;; 1 = request body, 3 = response body, 7 = request add status, 8 = response add status.
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 65536))
  (data (i32.const 100) "x-req-added")   ;; 11
  (data (i32.const 120) "1")
  (data (i32.const 130) "x-resp-added")  ;; 12
  (data (i32.const 150) "x-status")      ;; 8
  (data (i32.const 160) "x-body-saw")    ;; 10
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func $log (param $code i32) (param $a i32) (param $b i32) (local $at i32)
    (local.set $at (i32.add (i32.const 2000) (i32.mul (i32.load (i32.const 1996)) (i32.const 12))))
    (i32.store (local.get $at) (local.get $code))
    (i32.store (i32.add (local.get $at) (i32.const 4)) (local.get $a))
    (i32.store (i32.add (local.get $at) (i32.const 8)) (local.get $b))
    (i32.store (i32.const 1996) (i32.add (i32.load (i32.const 1996)) (i32.const 1))))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_body") (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (call $log (i32.const 1) (local.get $size) (local.get $eos))
    (if (local.get $eos)
      (then (call $log (i32.const 7)
                       (call $add (i32.const 1) (i32.const 100) (i32.const 11) (i32.const 120) (i32.const 1))
                       (i32.const 0))))
    (i32.const 0))
  (func (export "proxy_on_response_body") (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (call $log (i32.const 3) (local.get $size) (local.get $eos))
    (if (i32.eqz (local.get $eos)) (then (return (i32.const 0))))
    (if (i32.eqz (call $get (i32.const 3) (i32.const 150) (i32.const 8) (i32.const 300) (i32.const 304)))
      (then (drop (call $add (i32.const 3) (i32.const 160) (i32.const 10)
                             (i32.load (i32.const 300)) (i32.load (i32.const 304))))))
    (call $log (i32.const 8)
               (call $add (i32.const 3) (i32.const 130) (i32.const 12) (i32.const 120) (i32.const 1))
               (i32.const 0))
    (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
)
