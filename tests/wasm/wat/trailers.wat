;; Trailers in both directions (maps 1 and 3) and map 7 of a callout.  Every stream
;; callback appends (code, a, b) to an event log at 2000 (count at 1996) so tests can
;; check the order and the arguments: 1 = request body (size, eos), 2 = request
;; trailers (n, 0), 3 = response body (size, eos), 4 = response trailers (n, 0),
;; 5 = http call response (num_trailers, num_headers), 6 = status of a map-1 add tried
;; from a request body callback with eos=0 (must be refused: trailers are not open yet).
;; Request trailers: copies x-checksum into a new x-filter-saw, replaces x-other with
;; "edited"; with an x-hold trailer it calls upstream "cb" and returns StopIteration;
;; the call response copies map 7's x-call-trailer into the request trailers (still
;; writable while held), adds x-held: released and continues.  Response trailers:
;; copies x-status into x-resp-saw, replaces x-status with "filtered", removes x-digest.
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $replace (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value" (func $remove (param i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call" (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $set_ctx (param i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 65536))
  (data (i32.const 100) "x-checksum")      ;; 10
  (data (i32.const 120) "x-filter-saw")    ;; 12
  (data (i32.const 140) "x-other")         ;; 7
  (data (i32.const 150) "edited")          ;; 6
  (data (i32.const 160) "x-status")        ;; 8
  (data (i32.const 170) "x-resp-saw")      ;; 10
  (data (i32.const 190) "filtered")        ;; 8
  (data (i32.const 200) "x-hold")          ;; 6
  (data (i32.const 210) "cb")              ;; 2
  (data (i32.const 220) "x-held")          ;; 6
  (data (i32.const 230) "released")        ;; 8
  (data (i32.const 240) "x-call-trailer")  ;; 14
  (data (i32.const 260) "x-digest")        ;; 8
  (data (i32.const 270) "x-early")         ;; 7
  ;; callout headers: :method GET, :path /trl, :authority cb.local (71 bytes)
  (data (i32.const 400) "\03\00\00\00\07\00\00\00\03\00\00\00\05\00\00\00\04\00\00\00\0a\00\00\00\08\00\00\00\3a\6d\65\74\68\6f\64\00\47\45\54\00\3a\70\61\74\68\00\2f\74\72\6c\00\3a\61\75\74\68\6f\72\69\74\79\00\63\62\2e\6c\6f\63\61\6c\00")
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
    (if (i32.eqz (local.get $eos))
      (then (call $log (i32.const 6)
                       (call $add (i32.const 1) (i32.const 270) (i32.const 7) (i32.const 150) (i32.const 6))
                       (i32.const 0))))
    (i32.const 0))
  (func (export "proxy_on_request_trailers") (param $ctx i32) (param $n i32) (result i32)
    (call $log (i32.const 2) (local.get $n) (i32.const 0))
    (if (i32.eqz (call $get (i32.const 1) (i32.const 100) (i32.const 10) (i32.const 300) (i32.const 304)))
      (then (drop (call $add (i32.const 1) (i32.const 120) (i32.const 12)
                             (i32.load (i32.const 300)) (i32.load (i32.const 304))))))
    (drop (call $replace (i32.const 1) (i32.const 140) (i32.const 7) (i32.const 150) (i32.const 6)))
    (if (i32.eqz (call $get (i32.const 1) (i32.const 200) (i32.const 6) (i32.const 300) (i32.const 304)))
      (then
        (if (i32.eqz (call $http_call (i32.const 210) (i32.const 2) (i32.const 400) (i32.const 71)
                                      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                                      (i32.const 5000) (i32.const 310)))
          (then
            (i32.store (i32.add (i32.const 1024) (i32.shl (i32.load (i32.const 310)) (i32.const 2)))
                       (local.get $ctx))
            (return (i32.const 1))))))
    (i32.const 0))
  (func (export "proxy_on_http_call_response") (param $root i32) (param $token i32) (param $nh i32) (param $bs i32) (param $nt i32)
    (call $log (i32.const 5) (local.get $nt) (local.get $nh))
    (drop (call $set_ctx (i32.load (i32.add (i32.const 1024) (i32.shl (local.get $token) (i32.const 2))))))
    (if (i32.eqz (call $get (i32.const 7) (i32.const 240) (i32.const 14) (i32.const 320) (i32.const 324)))
      (then (drop (call $add (i32.const 1) (i32.const 240) (i32.const 14)
                             (i32.load (i32.const 320)) (i32.load (i32.const 324))))))
    (drop (call $add (i32.const 1) (i32.const 220) (i32.const 6) (i32.const 230) (i32.const 8)))
    (drop (call $continue (i32.const 0))))
  (func (export "proxy_on_response_body") (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
    (call $log (i32.const 3) (local.get $size) (local.get $eos))
    (i32.const 0))
  (func (export "proxy_on_response_trailers") (param $ctx i32) (param $n i32) (result i32)
    (call $log (i32.const 4) (local.get $n) (i32.const 0))
    (if (i32.eqz (call $get (i32.const 3) (i32.const 160) (i32.const 8) (i32.const 300) (i32.const 304)))
      (then (drop (call $add (i32.const 3) (i32.const 170) (i32.const 10)
                             (i32.load (i32.const 300)) (i32.load (i32.const 304))))))
    (drop (call $replace (i32.const 3) (i32.const 160) (i32.const 8) (i32.const 190) (i32.const 8)))
    (drop (call $remove (i32.const 3) (i32.const 260) (i32.const 8)))
    (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
)
