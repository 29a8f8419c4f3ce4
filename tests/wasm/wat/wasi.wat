;; WASI reactor: _initialize writes to stdout (-> INFO log); on_configure reads the
;; environment (only granted variables are visible), writes it to stderr (-> ERROR
;; log) and tries to open a file (must fail with ENOTSUP without trapping).
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $env_get (param i32 i32) (result i32)))
  (import "wasi_unstable" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_unstable" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "hello from _initialize\n")  ;; 23
  (func (export "malloc") (param i32) (result i32) (i32.const 8192))
  (func (export "_initialize")
    (i32.store (i32.const 16) (i32.const 100))
    (i32.store (i32.const 20) (i32.const 23))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24))))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $env_sizes (i32.const 32) (i32.const 36)))
    (drop (call $env_get (i32.const 512) (i32.const 1024)))
    ;; stderr <- the environment block (NULs included), size from environ_sizes_get
    (i32.store (i32.const 16) (i32.const 1024))
    (i32.store (i32.const 20) (i32.load (i32.const 36)))
    (drop (call $fd_write (i32.const 2) (i32.const 16) (i32.const 1) (i32.const 24)))
    ;; no filesystem: path_open must return ENOTSUP (58)
    (i32.eq (i32.const 58) (call $path_open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 4)
                                            (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 40))))
  (func (export "exit_now") (param i32) (result i32) (call $proc_exit (local.get 0)) (i32.const 0))
  (func (export "proxy_abi_version_0_2_0"))
)
