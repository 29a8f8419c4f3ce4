"""The WASI subset (``wasi_snapshot_preview1`` and ``wasi_unstable``): stdout/stderr into
the node log, clocks, randomness, the granted environment, ``proc_exit``; every other
fd/path/poll/sock function returns EBADF/ENOTSUP: no filesystem or network access."""

from __future__ import annotations

from typing import Callable

from edgenode.wasm.errors import HostTrap
from edgenode.wasm.hostcalls.registry import ALL_VERSIONS, HOST_FUNCTIONS, HostDef, HostVm, _vm, _vm_effect

__all__ = ["WASI_MODULES", "WASI_FAULT"]

WASI_MODULES = ("wasi_snapshot_preview1", "wasi_unstable")


def _wasi(name: str, params: str, has_result: bool = True) -> Callable[[Callable], Callable]:
    def deco(fn: Callable) -> Callable:
        for module in WASI_MODULES:
            HOST_FUNCTIONS[(module, name)] = HostDef(module, name, params, has_result, fn,
                                                     WASI_FAULT, ALL_VERSIONS)
        return fn
    return deco


WASI_FAULT = 21
_ESUCCESS, _EBADF, _EINVAL, _ENOTSUP = 0, 8, 28, 58


@_wasi("fd_write", "iiii")
def fd_write(raw: tuple[int, ...]) -> int:
    vm = _vm()
    fd, iovs, n = raw[0], raw[1], raw[2]
    if fd not in (1, 2):
        return _EBADF
    mem = vm.mem
    parts = []
    for i in range(min(n, 1024)):
        ptr = mem.read_u32(iovs + 8 * i)
        size = mem.read_u32(iovs + 8 * i + 4)
        parts.append(mem.read(ptr, size))
    data = b"".join(parts)
    mem.write_u32(raw[3], len(data))
    text = data.decode("utf-8", "replace").rstrip("\n")
    if text:
        vm.plugin.log(2 if fd == 1 else 4, text)
    return _ESUCCESS


@_wasi("clock_time_get", "iIi")
def clock_time_get(raw: tuple[int, ...]) -> int:
    vm = _vm()
    clock = raw[0]
    if clock == 0:
        now = vm.plugin.host_env.wall_ns()
    elif clock in (1, 2, 3):
        now = vm.plugin.host_env.monotonic_ns()
    else:
        return _EINVAL
    vm.mem.write_u64(raw[2], now)
    return _ESUCCESS


@_wasi("clock_res_get", "ii")
def clock_res_get(raw: tuple[int, ...]) -> int:
    vm = _vm()
    if not 0 <= raw[0] <= 3:
        return _EINVAL
    vm.mem.write_u64(raw[1], 1000)
    return _ESUCCESS


@_wasi("random_get", "ii")
def random_get(raw: tuple[int, ...]) -> int:
    vm = _vm_effect()
    size = raw[1]
    if size > 1 << 20:
        return _EINVAL
    vm.mem.write(raw[0], vm.plugin.host_env.random_bytes(size))
    return _ESUCCESS


def _environ(vm: HostVm) -> list[bytes]:
    return [f"{k}={v}".encode() for k, v in vm.plugin.env.items()]


@_wasi("environ_sizes_get", "ii")
def environ_sizes_get(raw: tuple[int, ...]) -> int:
    vm = _vm()
    env = _environ(vm)
    vm.mem.write_u32(raw[0], len(env))
    vm.mem.write_u32(raw[1], sum(len(e) + 1 for e in env))
    return _ESUCCESS


@_wasi("environ_get", "ii")
def environ_get(raw: tuple[int, ...]) -> int:
    vm = _vm()
    ptrs, buf = raw[0], raw[1]
    for i, entry in enumerate(_environ(vm)):
        vm.mem.write_u32(ptrs + 4 * i, buf)
        vm.mem.write(buf, entry + b"\0")
        buf += len(entry) + 1
    return _ESUCCESS


@_wasi("args_sizes_get", "ii")
def args_sizes_get(raw: tuple[int, ...]) -> int:
    vm = _vm()
    vm.mem.write_u32(raw[0], 0)
    vm.mem.write_u32(raw[1], 0)
    return _ESUCCESS


@_wasi("args_get", "ii")
def args_get(raw: tuple[int, ...]) -> int:
    _vm()
    return _ESUCCESS


@_wasi("proc_exit", "i", has_result=False)
def proc_exit(raw: tuple[int, ...]) -> None:
    vm = _vm()
    vm.exit_code = raw[0]
    raise HostTrap(f"filter {vm.plugin.name!r} called proc_exit({raw[0]})")


@_wasi("sched_yield", "")
def sched_yield(raw: tuple[int, ...]) -> int:
    return _ESUCCESS


@_wasi("fd_fdstat_get", "ii")
def fd_fdstat_get(raw: tuple[int, ...]) -> int:
    vm = _vm()
    fd = raw[0]
    if fd not in (0, 1, 2):
        return _EBADF
    out = raw[1]
    vm.mem.write(out, bytes(24))
    vm.mem.write(out, b"\x02")  # filetype CHARACTER_DEVICE, no flags, no rights beyond write
    vm.mem.write_u64(out + 8, 1 << 6)  # rights: fd_write
    return _ESUCCESS


def _stub(errno: int) -> Callable:
    def stub(raw: tuple[int, ...]) -> int:
        return errno
    return stub


# No filesystem, sockets or polling: every such call fails cleanly.
for _name, _params, _errno in (
    ("fd_read", "iiii", _EBADF), ("fd_close", "i", _EBADF), ("fd_seek", "iIii", _EBADF),
    ("fd_tell", "ii", _EBADF), ("fd_sync", "i", _EBADF), ("fd_datasync", "i", _EBADF),
    ("fd_prestat_get", "ii", _EBADF), ("fd_prestat_dir_name", "iii", _EBADF),
    ("fd_fdstat_set_flags", "ii", _ENOTSUP), ("fd_fdstat_set_rights", "iII", _ENOTSUP),
    ("fd_filestat_get", "ii", _EBADF), ("fd_filestat_set_size", "iI", _ENOTSUP),
    ("fd_filestat_set_times", "iIIi", _ENOTSUP), ("fd_pread", "iiiIi", _EBADF),
    ("fd_pwrite", "iiiIi", _EBADF), ("fd_readdir", "iiiIi", _EBADF), ("fd_renumber", "ii", _EBADF),
    ("fd_advise", "iIIi", _ENOTSUP), ("fd_allocate", "iII", _ENOTSUP),
    ("path_open", "iiiiiIIii", _ENOTSUP), ("path_filestat_get", "iiiii", _ENOTSUP),
    ("path_filestat_set_times", "iiiiIIi", _ENOTSUP), ("path_create_directory", "iii", _ENOTSUP),
    ("path_link", "iiiiiii", _ENOTSUP), ("path_readlink", "iiiiii", _ENOTSUP),
    ("path_remove_directory", "iii", _ENOTSUP), ("path_rename", "iiiiii", _ENOTSUP),
    ("path_symlink", "iiiii", _ENOTSUP), ("path_unlink_file", "iii", _ENOTSUP),
    ("poll_oneoff", "iiii", _ENOTSUP), ("proc_raise", "i", _ENOTSUP),
    ("sock_accept", "iii", _ENOTSUP), ("sock_recv", "iiiiii", _ENOTSUP),
    ("sock_send", "iiiii", _ENOTSUP), ("sock_shutdown", "ii", _ENOTSUP),
):
    _wasi(_name, _params)(_stub(_errno))
