;; Pause semantics probe.  Request header `x-pause: HBET` and `x-resp: HBET` pick what the
;; request/response hooks do: H = headers result digit (0 Continue, 1 StopIteration,
;; 3 StopAllIterationAndBuffer, 4 StopAllIterationAndWatermark); B = body result digit
;; before end of stream; E = at end of stream '0' Continue, '1' Stop (and never resume),
;; 'c' proxy_continue_stream + Stop; T = 't': resume the held headers later, from
;; proxy_on_tick (as after a callout): proxy_set_effective_context(stream), add
;; `x-resumed: 1` to the held headers, proxy_continue_stream.
;; Every body callback tries to add `x-in-body: 1` to its direction's headers (OK only
;; while those headers are held) and logs (body_size, end_of_stream, add status):
;; request at 1024 + 12*i, response at 2048 + 12*i; counts at 1000 / 1004.
;; Root context deletes (per-request instances being discarded) count in metric
;; "root_deletes".
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $inc (param i32 i64) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds" (func $tick_period (param i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $effective (param i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 4096))
  (global $root (mut i32) (i32.const 0))
  (global $req (mut i32) (i32.const 0))  ;; address of the 4 request mode bytes
  (global $resp (mut i32) (i32.const 0))
  (global $stream (mut i32) (i32.const 0))  ;; the current stream's context id
  (global $waiting (mut i32) (i32.const -1))  ;; direction the tick resumes, -1: none
  (data (i32.const 16) "x-pause")
  (data (i32.const 32) "x-in-body")
  (data (i32.const 48) "1")
  (data (i32.const 52) "x-resumed")
  (data (i32.const 64) "x-resp")
  (data (i32.const 80) "root_deletes")
  (data (i32.const 96) "0000")  ;; default modes
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param $ctx i32) (param $parent i32)
    (if (i32.eqz (local.get $parent)) (then (global.set $root (local.get $ctx)))))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $define (i32.const 0) (i32.const 80) (i32.const 12) (i32.const 140)))
    (i32.const 1))
  (func (export "proxy_on_delete") (param $ctx i32)
    (if (i32.eq (local.get $ctx) (global.get $root))
      (then (drop (call $inc (i32.load (i32.const 140)) (i64.const 1))))))
  (func (export "proxy_on_tick") (param i32)
    (if (i32.lt_s (global.get $waiting) (i32.const 0)) (then (return)))
    (drop (call $tick_period (i32.const 0)))
    (drop (call $effective (global.get $stream)))
    (drop (call $add (i32.shl (global.get $waiting) (i32.const 1)) (i32.const 52) (i32.const 9)
                     (i32.const 48) (i32.const 1)))
    (drop (call $continue (global.get $waiting)))
    (global.set $waiting (i32.const -1)))
  ;; the value of header $name (length $len) in map 0, or the defaults
  (func $mode (param $name i32) (param $len i32) (result i32)
    (if (result i32) (i32.eqz (call $get (i32.const 0) (local.get $name) (local.get $len)
                                         (i32.const 128) (i32.const 132)))
      (then (i32.load (i32.const 128)))
      (else (i32.const 96))))
  ;; a headers hook: arm the tick resume if asked (T = 't'), return the H digit
  (func $headers (param $ctx i32) (param $modes i32) (param $dir i32) (result i32)
    (global.set $stream (local.get $ctx))
    (if (i32.eq (i32.load8_u offset=3 (local.get $modes)) (i32.const 116))
      (then (global.set $waiting (local.get $dir))
            (drop (call $tick_period (i32.const 20)))))
    (i32.sub (i32.load8_u (local.get $modes)) (i32.const 48)))
  ;; at end of stream: E = '0' Continue, 'c' continue_stream(dir) then Stop, else Stop
  (func $at_end (param $e i32) (param $dir i32) (result i32)
    (if (i32.eq (local.get $e) (i32.const 48)) (then (return (i32.const 0))))
    (if (i32.eq (local.get $e) (i32.const 99))
      (then (drop (call $continue (local.get $dir)))))
    (i32.const 1))
  (func $body (param $dir i32) (param $log i32) (param $modes i32) (param $size i32) (param $eos i32)
              (result i32) (local $n i32) (local $at i32)
    (local.set $n (i32.load (i32.add (i32.const 1000) (i32.shl (local.get $dir) (i32.const 2)))))
    (local.set $at (i32.add (local.get $log) (i32.mul (local.get $n) (i32.const 12))))
    (i32.store (local.get $at) (local.get $size))
    (i32.store offset=4 (local.get $at) (local.get $eos))
    (i32.store offset=8 (local.get $at)
      (call $add (i32.shl (local.get $dir) (i32.const 1)) (i32.const 32) (i32.const 9)
                 (i32.const 48) (i32.const 1)))
    (i32.store (i32.add (i32.const 1000) (i32.shl (local.get $dir) (i32.const 2)))
               (i32.add (local.get $n) (i32.const 1)))
    (if (i32.eqz (local.get $eos))
      (then (return (i32.sub (i32.load8_u offset=1 (local.get $modes)) (i32.const 48)))))
    (call $at_end (i32.load8_u offset=2 (local.get $modes)) (local.get $dir)))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param i32 i32) (result i32)
    (global.set $heap (i32.const 4096))
    (i32.store (i32.const 1000) (i32.const 0))
    (i32.store (i32.const 1004) (i32.const 0))
    (global.set $req (call $mode (i32.const 16) (i32.const 7)))
    (global.set $resp (call $mode (i32.const 64) (i32.const 6)))
    (call $headers (local.get $ctx) (global.get $req) (i32.const 0)))
  (func (export "proxy_on_request_body") (param i32) (param $size i32) (param $eos i32) (result i32)
    (call $body (i32.const 0) (i32.const 1024) (global.get $req) (local.get $size) (local.get $eos)))
  (func (export "proxy_on_response_headers") (param $ctx i32) (param i32 i32) (result i32)
    (call $headers (local.get $ctx) (global.get $resp) (i32.const 1)))
  (func (export "proxy_on_response_body") (param i32) (param $size i32) (param $eos i32) (result i32)
    (call $body (i32.const 1) (i32.const 2048) (global.get $resp) (local.get $size) (local.get $eos)))
  (func (export "proxy_abi_version_0_2_1"))
)
