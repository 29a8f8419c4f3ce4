;; A cluster-wide rate limit on one shared Redis (the Higress Redis ABI, marker 0.2.100):
;; every request INCRs the counter "rl:count" in the configured service and waits for the
;; reply (StopIteration); more than LIMIT requests (the one-digit plugin configuration)
;; get 429, a failed call 503, the rest continue.  The cluster name is an Istio/Higress
;; style name with a database option: "outbound|6379||ratelimit.static?db=2".
(module
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_redis_init" (func $redis_init (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_redis_call" (func $redis_call (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $set_effective (param i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $local (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "outbound|6379||ratelimit.static?db=2")  ;; 36
  (data (i32.const 160) "*2\0d\0a$4\0d\0aINCR\0d\0a$8\0d\0arl:count\0d\0a")  ;; 28
  (data (i32.const 200) "rate limited\0a")  ;; 13
  (data (i32.const 220) "redis unavailable\0a")  ;; 18
  (global $heap (mut i32) (i32.const 8192))
  (global $limit (mut i32) (i32.const 0))
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $get_buffer (i32.const 7) (i32.const 0) (i32.const 1) (i32.const 16) (i32.const 20)))
    (global.set $limit (i32.sub (i32.load8_u (i32.load (i32.const 16))) (i32.const 48)))
    ;; empty credentials and timeout 0: the service's configured ones
    (i32.eqz (call $redis_init (i32.const 100) (i32.const 36) (i32.const 0) (i32.const 0)
                               (i32.const 0) (i32.const 0) (i32.const 0))))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param i32 i32) (result i32)
    (if (call $redis_call (i32.const 100) (i32.const 36) (i32.const 160) (i32.const 28) (i32.const 24))
      (then (return (i32.const 0))))
    ;; remember which stream waits for this token
    (i32.store (i32.add (i32.const 1024) (i32.shl (i32.and (i32.load (i32.const 24)) (i32.const 255)) (i32.const 2)))
               (local.get $ctx))
    (i32.const 1))
  (func (export "proxy_on_redis_call_response") (param $root i32) (param $token i32) (param $status i32) (param $size i32)
    (local $p i32) (local $end i32) (local $n i32)
    (drop (call $set_effective (i32.load (i32.add (i32.const 1024)
                                                  (i32.shl (i32.and (local.get $token) (i32.const 255)) (i32.const 2))))))
    (if (local.get $status)
      (then (drop (call $local (i32.const 503) (i32.const 0) (i32.const 0) (i32.const 220) (i32.const 18)
                               (i32.const 0) (i32.const 0) (i32.const -1))) (return)))
    (drop (call $get_buffer (i32.const 9) (i32.const 0) (local.get $size) (i32.const 16) (i32.const 20)))
    ;; the reply is ":<n>\r\n"
    (local.set $p (i32.add (i32.load (i32.const 16)) (i32.const 1)))
    (local.set $end (i32.add (i32.load (i32.const 16)) (i32.sub (i32.load (i32.const 20)) (i32.const 2))))
    (block $done (loop $digits
      (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
      (local.set $n (i32.add (i32.mul (local.get $n) (i32.const 10)) (i32.sub (i32.load8_u (local.get $p)) (i32.const 48))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br $digits)))
    (if (i32.gt_u (local.get $n) (global.get $limit))
      (then (drop (call $local (i32.const 429) (i32.const 0) (i32.const 0) (i32.const 200) (i32.const 13)
                               (i32.const 0) (i32.const 0) (i32.const -1))))
      (else (drop (call $continue (i32.const 0))))))
  (func (export "proxy_abi_version_0_2_100"))
)
