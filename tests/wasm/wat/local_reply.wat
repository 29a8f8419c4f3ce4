;; Local response: denies every request with 403 + a header; its own
;; on_response_headers still runs on the local reply (as in Envoy).
(module
  (import "env" "proxy_send_local_response"
    (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "denied by filter")  ;; 16
  (data (i32.const 120) "policy")            ;; 6
  ;; serialized map {x-deny: yes}: count 1, sizes (6, 3), "x-deny\00yes\00"
  (data (i32.const 200) "\01\00\00\00\06\00\00\00\03\00\00\00x-deny\00yes\00")  ;; 23 bytes
  (data (i32.const 240) "x-saw-response")    ;; 14
  (data (i32.const 260) "1")
  (func (export "malloc") (param i32) (result i32) (i32.const 8192))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $reply (i32.const 403) (i32.const 120) (i32.const 6) (i32.const 100) (i32.const 16)
                       (i32.const 200) (i32.const 23) (i32.const -1)))
    (i32.const 1))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 2) (i32.const 240) (i32.const 14) (i32.const 260) (i32.const 1)))
    (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
)
