;; Body rewrite with buffering: request and response bodies are buffered until
;; end_of_stream (StopIterationAndBuffer), then the request body gets a "REQ:"
;; prefix and the response body a "|filtered" suffix.  Each call records the
;; body_size/eos it saw in memory at 1000.. so tests can check honest sizes.
(module
  (import "env" "proxy_set_buffer_bytes" (func $set (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  (data (i32.const 100) "REQ:")       ;; 4
  (data (i32.const 110) "|filtered")  ;; 9
  (func (export "malloc") (param i32) (result i32) (i32.const 8192))
  (func $record (param $size i32) (param $eos i32)
    (i32.store (i32.add (i32.const 1000) (i32.mul (global.get $calls) (i32.const 8))) (local.get $size))
    (i32.store (i32.add (i32.const 1004) (i32.mul (global.get $calls) (i32.const 8))) (local.get $eos))
    (global.set $calls (i32.add (global.get $calls) (i32.const 1))))
  (func (export "proxy_on_request_body") (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (call $record (local.get $size) (local.get $eos))
    (if (i32.eqz (local.get $eos)) (then (return (i32.const 1))))
    (drop (call $set (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 100) (i32.const 4)))
    (i32.const 0))
  (func (export "proxy_on_response_body") (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (if (i32.eqz (local.get $eos)) (then (return (i32.const 1))))
    (drop (call $set (i32.const 1) (local.get $size) (i32.const 0) (i32.const 110) (i32.const 9)))
    (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
)
