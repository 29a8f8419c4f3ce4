;; Instance reset probe (per-request isolation, Vm.recycle): what a stream sees of earlier ones.
;; * on_configure sets $cfg = 7 and writes 'c' at 300 and at 150000 (past the 64 KiB a
;;   pooled instance has prefaulted: a reset must find that page by itself).
;; * on_request_headers adds the request header x-state, 5 chars, '1' where the stream
;;   sees the snapshot: [$cfg is 7] [byte 300 is 'c'] [no earlier marker at 400, 200000
;;   nor 40000] [memory is 4 pages] [byte 150000 is 'c']; then it leaves its traces:
;;   $cfg = 99, 'X' at 300 and 150000, 'M' at 400 and 200000.  The flags come through a
;;   function table (which no instruction changes: a reset may leave it).
;;   With the request header x-action "grow" it grows memory by a page (writing into
;;   it); with "trap" it traps; with "write" it also writes 'M' at 40000, a zero page
;;   inside the prefaulted 64 KiB that earlier streams only read (a first reset unmaps
;;   such pages, a read maps the kernel's zero page there: the write must still be found).
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 4)
  (type $flagfn (func (param i32) (result i32)))
  (table 1 funcref)
  (elem (i32.const 0) $flag)
  (global $heap (mut i32) (i32.const 8192))
  (global $cfg (mut i32) (i32.const 0))
  (data (i32.const 16) "x-state")
  (data (i32.const 32) "x-action")
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (global.set $cfg (i32.const 7))
    (i32.store8 (i32.const 300) (i32.const 99))
    (i32.store8 (i32.const 150000) (i32.const 99))
    (i32.const 1))
  (func $flag (param $ok i32) (result i32)
    (select (i32.const 49) (i32.const 48) (local.get $ok)))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (local $action i32)
    (i32.store8 (i32.const 500) (call_indirect (type $flagfn) (i32.eq (global.get $cfg) (i32.const 7)) (i32.const 0)))
    (i32.store8 (i32.const 501) (call_indirect (type $flagfn) (i32.eq (i32.load8_u (i32.const 300)) (i32.const 99)) (i32.const 0)))
    (i32.store8 (i32.const 502) (call_indirect (type $flagfn)
      (i32.and (i32.and (i32.ne (i32.load8_u (i32.const 400)) (i32.const 77))
                        (i32.ne (i32.load8_u (i32.const 200000)) (i32.const 77)))
               (i32.ne (i32.load8_u (i32.const 40000)) (i32.const 77))) (i32.const 0)))
    (i32.store8 (i32.const 503) (call_indirect (type $flagfn) (i32.eq (memory.size) (i32.const 4)) (i32.const 0)))
    (i32.store8 (i32.const 504) (call_indirect (type $flagfn) (i32.eq (i32.load8_u (i32.const 150000)) (i32.const 99)) (i32.const 0)))
    (drop (call $add (i32.const 0) (i32.const 16) (i32.const 7) (i32.const 500) (i32.const 5)))
    (global.set $cfg (i32.const 99))
    (i32.store8 (i32.const 300) (i32.const 88))
    (i32.store8 (i32.const 400) (i32.const 77))
    (i32.store8 (i32.const 150000) (i32.const 88))
    (i32.store8 (i32.const 200000) (i32.const 77))
    ;; x-action: its first byte picks grow ('g') or trap ('t')
    (if (i32.eqz (call $get (i32.const 0) (i32.const 32) (i32.const 8) (i32.const 128) (i32.const 132)))
      (then (local.set $action (i32.load8_u (i32.load (i32.const 128))))))
    (if (i32.eq (local.get $action) (i32.const 103))
      (then (drop (memory.grow (i32.const 1)))
            (i32.store8 (i32.const 262148) (i32.const 1))))
    (if (i32.eq (local.get $action) (i32.const 116))
      (then unreachable))
    (if (i32.eq (local.get $action) (i32.const 119))
      (then (i32.store8 (i32.const 40000) (i32.const 77))))
    (i32.const 0))
  (func (export "proxy_abi_version_0_2_1")))
