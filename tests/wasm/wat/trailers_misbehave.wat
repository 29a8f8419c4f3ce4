;; Trailers hooks that end the stream: a request trailer x-deny gets a local 403 reply,
;; x-trap traps; the response trailers hook traps when the response has an x-trap
;; trailer.  No body hooks.
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "x-deny")   ;; 6
  (data (i32.const 110) "x-trap")   ;; 6
  (data (i32.const 120) "denied by trailers")  ;; 18
  (func (export "malloc") (param i32) (result i32) (i32.const 8192))
  (func (export "proxy_on_request_trailers") (param $ctx i32) (param $n i32) (result i32)
    (if (i32.eqz (call $get (i32.const 1) (i32.const 110) (i32.const 6) (i32.const 300) (i32.const 304)))
      (then unreachable))
    (if (i32.eqz (call $get (i32.const 1) (i32.const 100) (i32.const 6) (i32.const 300) (i32.const 304)))
      (then (drop (call $reply (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 120) (i32.const 18)
                               (i32.const 0) (i32.const 0) (i32.const -1)))
            (return (i32.const 1))))
    (i32.const 0))
  (func (export "proxy_on_response_trailers") (param $ctx i32) (param $n i32) (result i32)
    (if (i32.eqz (call $get (i32.const 3) (i32.const 110) (i32.const 6) (i32.const 300) (i32.const 304)))
      (then unreachable))
    (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
)
