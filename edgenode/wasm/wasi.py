"""WASI preview 1 (``wasi_snapshot_preview1`` and ``wasi_unstable``) as filter runtimes use it.

A filter gets what Envoy gives it (stdout/stderr into the node log, clocks, randomness,
the granted environment) plus what Go's and Rust's WASI runtimes probe at start-up:
``fd_fdstat_get``/``fd_filestat_get`` on fds 0-2 describe character devices, stdin reads
as end of file, ``fd_prestat_get`` answers EBADF past the preopens (the runtimes' loop
end), ``poll_oneoff`` serves clock and fd subscriptions.  Nothing here logs: a probe that
fails returns its errno and the runtime carries on.

Files are reachable only through directories an operator grants (``wasi_dirs``,
read-only, preopened from fd 3): ``path_open``, ``fd_read``/``fd_pread``/``fd_seek``/
``fd_readdir``/``fd_filestat_get`` work inside them, a path that leaves them (``..``,
symlinks) is refused, every write is refused.  With no grant, path calls return
ENOTSUP and fd calls on other fds EBADF.  No call traps except ``proc_exit``.
"""

from __future__ import annotations

import os
import struct
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgenode.wasm.errors import HostTrap
from edgenode.wasm.hostcalls import ALL_VERSIONS, HOST_FUNCTIONS, HostDef, HostVm, _vm


__all__ = ["WasiGrants", "WASI_MODULES", "WASI_FAULT", "MAX_POLL_SLEEP", "forget_fds"]

WASI_MODULES = ("wasi_snapshot_preview1", "wasi_unstable")
#: errno values (wasi_snapshot_preview1 ``errno``)
ESUCCESS, EBADF, EFAULT, EINVAL, EISDIR, ENOENT, ENOTDIR, ENOTSUP = 0, 8, 21, 28, 31, 44, 54, 58
ESPIPE, EROFS, ENOTCAPABLE = 70, 69, 76
WASI_FAULT = EFAULT
#: longest one ``poll_oneoff`` clock wait blocks the worker; a guest that keeps sleeping
#: runs into its callback's CPU deadline (the epoch counts wall time)
MAX_POLL_SLEEP = 0.010
_FILETYPE_CHAR, _FILETYPE_DIR, _FILETYPE_REGULAR = 2, 3, 4
_RIGHTS_READ = (1 << 1) | (1 << 2) | (1 << 5) | (1 << 21)  # fd_read, fd_seek, fd_tell, fd_filestat_get
_RIGHTS_DIR = (1 << 13) | (1 << 14) | (1 << 18) | (1 << 21)  # path_open, fd_readdir, path_filestat_get
_O_CREAT, _O_DIRECTORY, _O_EXCL, _O_TRUNC = 1, 2, 4, 8
_RIGHT_FD_WRITE = 1 << 6
_FILESTAT = struct.Struct("<QQB7xQQQQQ")  # dev ino filetype nlink size atim mtim ctim
_DIRENT = struct.Struct("<QQIB3x")  # d_next d_ino d_namlen d_type
_SUB = struct.Struct("<QB7xIxxxxQQH6x")  # userdata tag | clock: id timeout precision flags
_EVENT = struct.Struct("<QHB5xQH6x")  # userdata error type | nbytes flags


@dataclass(frozen=True)
class WasiGrants:
    """What an operator lets a filter's WASI calls see beyond the granted environment
    (stage options ``args`` and ``wasi_dirs``); the default grants nothing."""

    args: tuple[str, ...] = ()
    #: guest directory name -> host directory, read-only
    dirs: tuple[tuple[str, Path], ...] = ()


@dataclass
class _Open:
    """An fd above 2: a preopened directory, a directory or a file opened under one."""

    host: Path
    root: Path
    is_dir: bool
    guest_name: str = ""
    pos: int = 0
    entries: list[str] | None = None


@dataclass
class _FdTable:
    fds: dict[int, _Open] = field(default_factory=dict)
    next_fd: int = 3


_TABLES: "weakref.WeakKeyDictionary[Vm, _FdTable]" = weakref.WeakKeyDictionary()


def forget_fds(vm: HostVm) -> None:
    """Drop ``vm``'s open files: it starts over from its snapshot (Vm.recycle).  Most
    filters never open one: then the weak dictionary is not asked (a lookup makes a
    weak reference, and even its ``len`` runs Python code)."""
    if vm.files_opened:
        vm.files_opened = False
        _TABLES.pop(vm, None)


def _table(vm: HostVm) -> _FdTable:
    table = _TABLES.get(vm)
    if table is None:
        table = _TABLES[vm] = _FdTable()
        vm.files_opened = True
        for guest, host in vm.plugin.wasi.dirs:
            table.fds[table.next_fd] = _Open(host, host, True, guest)
            table.next_fd += 1
    return table


def _wasi(name: str, params: str, has_result: bool = True) -> Callable[[Callable], Callable]:
    def deco(fn: Callable) -> Callable:
        for module in WASI_MODULES:
            HOST_FUNCTIONS[(module, name)] = HostDef(module, name, params, has_result, fn,
                                                     WASI_FAULT, ALL_VERSIONS)
        return fn
    return deco


# --- stdio, clocks, randomness, args, environment ------------------------------------

def _gather(vm: HostVm, iovs: int, n: int) -> bytes:
    mem = vm.mem
    parts = []
    for i in range(min(n, 1024)):
        ptr = mem.read_u32(iovs + 8 * i)
        parts.append(mem.read(ptr, mem.read_u32(iovs + 8 * i + 4)))
    return b"".join(parts)


@_wasi("fd_write", "iiii")
def fd_write(raw: tuple[int, ...]) -> int:
    """stdout -> INFO, stderr -> ERROR (Envoy's mapping), one record per write."""
    vm = _vm()
    fd = raw[0]
    if fd not in (1, 2):
        return ENOTCAPABLE if fd in _table(vm).fds else EBADF
    data = _gather(vm, raw[1], raw[2])
    vm.mem.write_u32(raw[3], len(data))
    text = data.decode("utf-8", "replace").rstrip("\n")
    if text:
        vm.plugin.log(2 if fd == 1 else 4, text)
    return ESUCCESS


@_wasi("clock_time_get", "iIi")
def clock_time_get(raw: tuple[int, ...]) -> int:
    vm = _vm()
    clock = raw[0]
    if clock == 0:
        now = vm.plugin.host_env.wall_ns()
    elif clock in (1, 2, 3):
        now = vm.plugin.host_env.monotonic_ns()
    else:
        return EINVAL
    vm.mem.write_u64(raw[2], now)
    return ESUCCESS


@_wasi("clock_res_get", "ii")
def clock_res_get(raw: tuple[int, ...]) -> int:
    vm = _vm()
    if not 0 <= raw[0] <= 3:
        return EINVAL
    vm.mem.write_u64(raw[1], 1000)
    return ESUCCESS


@_wasi("random_get", "ii")
def random_get(raw: tuple[int, ...]) -> int:
    vm = _vm()
    vm.random_read = True  # a start-up snapshot would freeze these bytes (snapshot.py)
    size = raw[1]
    if size > 1 << 20:
        return EINVAL
    vm.mem.write(raw[0], vm.plugin.host_env.random_bytes(size))
    return ESUCCESS


def _strings(items: tuple[str, ...]) -> list[bytes]:
    return [s.encode() + b"\0" for s in items]


def _sizes(raw: tuple[int, ...], items: list[bytes]) -> int:
    vm = _vm()
    vm.mem.write_u32(raw[0], len(items))
    vm.mem.write_u32(raw[1], sum(len(e) for e in items))
    return ESUCCESS


def _fill(raw: tuple[int, ...], items: list[bytes]) -> int:
    vm = _vm()
    ptrs, buf = raw[0], raw[1]
    for i, entry in enumerate(items):
        vm.mem.write_u32(ptrs + 4 * i, buf)
        vm.mem.write(buf, entry)
        buf += len(entry)
    return ESUCCESS


def _environ(vm: HostVm) -> list[bytes]:
    return _strings(tuple(f"{k}={v}" for k, v in vm.plugin.env.items()))


@_wasi("environ_sizes_get", "ii")
def environ_sizes_get(raw: tuple[int, ...]) -> int:
    return _sizes(raw, _environ(_vm()))


@_wasi("environ_get", "ii")
def environ_get(raw: tuple[int, ...]) -> int:
    return _fill(raw, _environ(_vm()))


@_wasi("args_sizes_get", "ii")
def args_sizes_get(raw: tuple[int, ...]) -> int:
    return _sizes(raw, _strings(_vm().plugin.wasi.args))


@_wasi("args_get", "ii")
def args_get(raw: tuple[int, ...]) -> int:
    return _fill(raw, _strings(_vm().plugin.wasi.args))


@_wasi("proc_exit", "i", has_result=False)
def proc_exit(raw: tuple[int, ...]) -> None:
    vm = _vm()
    vm.exit_code = raw[0]
    raise HostTrap(f"filter {vm.plugin.name!r} called proc_exit({raw[0]})")


@_wasi("sched_yield", "")
def sched_yield(raw: tuple[int, ...]) -> int:
    return ESUCCESS


@_wasi("poll_oneoff", "iiii")
def poll_oneoff(raw: tuple[int, ...]) -> int:
    """fd subscriptions on stdio and open files are ready at once; otherwise the earliest
    clock subscription fires after its timeout (at most ``MAX_POLL_SLEEP`` per call)."""
    vm = _vm()
    subs_ptr, events_ptr, n = raw[0], raw[1], raw[2]
    if n == 0:
        return EINVAL
    mem = vm.mem
    fds = _table(vm).fds
    ready: list[bytes] = []
    clocks: list[tuple[int, int]] = []  # (ns to wait, userdata)
    for i in range(min(n, 1024)):
        userdata, tag, clock_id, timeout, _precision, flags = _SUB.unpack(mem.read(subs_ptr + 48 * i, 48))
        if tag == 0:
            if flags & 1:  # absolute time on that clock
                now = (vm.plugin.host_env.wall_ns() if clock_id == 0
                       else vm.plugin.host_env.monotonic_ns())
                timeout = max(0, timeout - now)
            clocks.append((timeout, userdata))
        else:
            fd = struct.unpack("<I", mem.read(subs_ptr + 48 * i + 16, 4))[0]
            ok = fd in (0, 1, 2) or fd in fds
            ready.append(_EVENT.pack(userdata, ESUCCESS if ok else EBADF, tag, 0, 0))
    if not ready and clocks:
        wait, userdata = min(clocks)
        time.sleep(min(wait / 1e9, MAX_POLL_SLEEP))
        ready.append(_EVENT.pack(userdata, ESUCCESS, 0, 0, 0))
    for i, event in enumerate(ready):
        mem.write(events_ptr + 32 * i, event)
    mem.write_u32(raw[3], len(ready))
    return ESUCCESS


# --- descriptors --------------------------------------------------------------------

def _stat_of(path: Path) -> bytes:
    st = path.stat()
    kind = _FILETYPE_DIR if path.is_dir() else _FILETYPE_REGULAR
    return _FILESTAT.pack(st.st_dev, st.st_ino, kind, st.st_nlink, st.st_size,
                          st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)


@_wasi("fd_fdstat_get", "ii")
def fd_fdstat_get(raw: tuple[int, ...]) -> int:
    vm = _vm()
    fd = raw[0]
    if fd in (0, 1, 2):
        kind, rights = _FILETYPE_CHAR, (1 << 1) if fd == 0 else _RIGHT_FD_WRITE
    else:
        entry = _table(vm).fds.get(fd)
        if entry is None:
            return EBADF
        kind = _FILETYPE_DIR if entry.is_dir else _FILETYPE_REGULAR
        rights = _RIGHTS_DIR | _RIGHTS_READ if entry.is_dir else _RIGHTS_READ
    vm.mem.write(raw[1], struct.pack("<BxHxxxxQQ", kind, 0, rights, rights))
    return ESUCCESS


@_wasi("fd_fdstat_set_flags", "ii")
def fd_fdstat_set_flags(raw: tuple[int, ...]) -> int:
    vm = _vm()
    return ESUCCESS if raw[0] in (0, 1, 2) or raw[0] in _table(vm).fds else EBADF


@_wasi("fd_filestat_get", "ii")
def fd_filestat_get(raw: tuple[int, ...]) -> int:
    vm = _vm()
    fd = raw[0]
    if fd in (0, 1, 2):
        vm.mem.write(raw[1], _FILESTAT.pack(0, 0, _FILETYPE_CHAR, 1, 0, 0, 0, 0))
        return ESUCCESS
    entry = _table(vm).fds.get(fd)
    if entry is None:
        return EBADF
    try:
        vm.mem.write(raw[1], _stat_of(entry.host))
    except OSError:
        return ENOENT
    return ESUCCESS


@_wasi("fd_prestat_get", "ii")
def fd_prestat_get(raw: tuple[int, ...]) -> int:
    vm = _vm()
    entry = _table(vm).fds.get(raw[0])
    if entry is None or not entry.guest_name:
        return EBADF  # the runtimes' preopen scan stops here
    vm.mem.write(raw[1], struct.pack("<BxxxI", 0, len(entry.guest_name.encode())))
    return ESUCCESS


@_wasi("fd_prestat_dir_name", "iii")
def fd_prestat_dir_name(raw: tuple[int, ...]) -> int:
    vm = _vm()
    entry = _table(vm).fds.get(raw[0])
    if entry is None or not entry.guest_name:
        return EBADF
    name = entry.guest_name.encode()
    if raw[2] < len(name):
        return EINVAL
    vm.mem.write(raw[1], name)
    return ESUCCESS


def _file(vm: HostVm, fd: int) -> _Open | int:
    entry = _table(vm).fds.get(fd)
    if entry is None:
        return EBADF
    if entry.is_dir:
        return EISDIR
    return entry


def _scatter(vm: HostVm, iovs: int, n: int, data: bytes) -> int:
    """Copy ``data`` into the guest's iovecs; returns the bytes placed."""
    mem = vm.mem
    placed = 0
    for i in range(min(n, 1024)):
        if placed >= len(data):
            break
        ptr, size = mem.read_u32(iovs + 8 * i), mem.read_u32(iovs + 8 * i + 4)
        chunk = data[placed:placed + size]
        mem.write(ptr, chunk)
        placed += len(chunk)
    return placed


def _iov_total(vm: HostVm, iovs: int, n: int) -> int:
    return sum(vm.mem.read_u32(iovs + 8 * i + 4) for i in range(min(n, 1024)))


def _read_at(entry: _Open, offset: int, size: int) -> bytes:
    with open(entry.host, "rb") as f:
        f.seek(offset)
        return f.read(size)


def _read_into(vm: HostVm, entry: _Open, offset: int, iovs: int, n: int) -> int:
    """Read from ``offset`` into the guest's iovecs: bytes placed, or -1 on an OS error."""
    try:
        data = _read_at(entry, offset, min(_iov_total(vm, iovs, n), 16 << 20))
    except OSError:
        return -1
    return _scatter(vm, iovs, n, data)


@_wasi("fd_read", "iiii")
def fd_read(raw: tuple[int, ...]) -> int:
    vm = _vm()
    if raw[0] == 0:  # stdin: end of file
        vm.mem.write_u32(raw[3], 0)
        return ESUCCESS
    entry = _file(vm, raw[0])
    if isinstance(entry, int):
        return entry
    placed = _read_into(vm, entry, entry.pos, raw[1], raw[2])
    if placed < 0:
        return EBADF
    entry.pos += placed
    vm.mem.write_u32(raw[3], placed)
    return ESUCCESS


@_wasi("fd_pread", "iiiIi")
def fd_pread(raw: tuple[int, ...]) -> int:
    vm = _vm()
    entry = _file(vm, raw[0])
    if isinstance(entry, int):
        return entry
    if raw[3] < 0:
        return EINVAL
    placed = _read_into(vm, entry, raw[3], raw[1], raw[2])
    if placed < 0:
        return EBADF
    vm.mem.write_u32(raw[4], placed)
    return ESUCCESS


def _seekable(vm: HostVm, fd: int) -> _Open | int:
    return ESPIPE if fd in (0, 1, 2) else _file(vm, fd)


@_wasi("fd_seek", "iIii")
def fd_seek(raw: tuple[int, ...]) -> int:
    vm = _vm()
    entry = _seekable(vm, raw[0])
    if isinstance(entry, int):
        return entry
    offset, whence = raw[1], raw[2]
    try:
        base = (0, entry.pos, entry.host.stat().st_size)[whence] if 0 <= whence <= 2 else None
    except OSError:
        return EBADF
    if base is None or base + offset < 0:
        return EINVAL
    entry.pos = base + offset
    vm.mem.write_u64(raw[3], entry.pos)
    return ESUCCESS


@_wasi("fd_tell", "ii")
def fd_tell(raw: tuple[int, ...]) -> int:
    vm = _vm()
    entry = _seekable(vm, raw[0])
    if isinstance(entry, int):
        return entry
    vm.mem.write_u64(raw[1], entry.pos)
    return ESUCCESS


@_wasi("fd_close", "i")
def fd_close(raw: tuple[int, ...]) -> int:
    vm = _vm()
    table = _table(vm)
    entry = table.fds.get(raw[0])
    if entry is None:
        return ESUCCESS if raw[0] in (0, 1, 2) else EBADF
    del table.fds[raw[0]]
    return ESUCCESS


@_wasi("fd_readdir", "iiiIi")
def fd_readdir(raw: tuple[int, ...]) -> int:
    vm = _vm()
    entry = _table(vm).fds.get(raw[0])
    if entry is None:
        return EBADF
    if not entry.is_dir:
        return ENOTDIR
    if entry.entries is None:
        try:
            entry.entries = [".", ".."] + sorted(os.listdir(entry.host))
        except OSError:
            return EBADF
    buf, size, cookie = raw[1], raw[2], raw[3]
    out = bytearray()
    for index in range(max(cookie, 0), len(entry.entries)):
        name = entry.entries[index]
        path = entry.host / name
        try:
            kind = _FILETYPE_DIR if path.is_dir() else _FILETYPE_REGULAR
            ino = path.stat().st_ino
        except OSError:
            continue
        encoded = name.encode()
        out += _DIRENT.pack(index + 1, ino, len(encoded), kind) + encoded
        if len(out) >= size:
            break
    data = bytes(out[:size])  # a truncated last entry tells the guest to grow its buffer
    vm.mem.write(buf, data)
    vm.mem.write_u32(raw[4], len(data))
    return ESUCCESS


# --- paths --------------------------------------------------------------------------

def _resolve(vm: HostVm, dirfd: int, ptr: int, size: int) -> tuple[_Open, Path] | int:
    """The host path of a guest path under an open directory, never outside its root."""
    table = _table(vm)
    if not vm.plugin.wasi.dirs:
        return ENOTSUP  # no filesystem granted at all
    base = table.fds.get(dirfd)
    if base is None:
        return EBADF
    if not base.is_dir:
        return ENOTDIR
    rel = vm.mem.read(ptr, size).decode("utf-8", "surrogateescape")
    if rel.startswith("/") or "\0" in rel:
        return ENOTCAPABLE
    target = (base.host / rel).resolve()
    root = base.root.resolve()
    if target != root and root not in target.parents:
        return ENOTCAPABLE
    return base, target


@_wasi("path_open", "iiiiiIIii")
def path_open(raw: tuple[int, ...]) -> int:
    vm = _vm()
    found = _resolve(vm, raw[0], raw[2], raw[3])
    if isinstance(found, int):
        return found
    base, target = found
    oflags, rights, fdflags = raw[4], raw[5], raw[7]
    if oflags & (_O_CREAT | _O_TRUNC | _O_EXCL) or rights & _RIGHT_FD_WRITE or fdflags & 1:
        return EROFS  # read-only grant: no create, truncate, write or append
    if not target.exists():
        return ENOENT
    is_dir = target.is_dir()
    if oflags & _O_DIRECTORY and not is_dir:
        return ENOTDIR
    table = _table(vm)
    fd = table.next_fd
    table.next_fd += 1
    table.fds[fd] = _Open(target, base.root, is_dir)
    vm.mem.write_u32(raw[8], fd)
    return ESUCCESS


@_wasi("path_filestat_get", "iiiii")
def path_filestat_get(raw: tuple[int, ...]) -> int:
    vm = _vm()
    found = _resolve(vm, raw[0], raw[2], raw[3])
    if isinstance(found, int):
        return found
    try:
        vm.mem.write(raw[4], _stat_of(found[1]))
    except OSError:
        return ENOENT
    return ESUCCESS


def _refuse(errno: int) -> Callable[[tuple[int, ...]], int]:
    def refuse(raw: tuple[int, ...]) -> int:
        return errno
    return refuse


# Writes and mutations: refused (granted directories are read-only); sockets: none.
for _name, _params, _errno in (
    ("fd_pwrite", "iiiIi", ENOTCAPABLE), ("fd_sync", "i", ESUCCESS), ("fd_datasync", "i", ESUCCESS),
    ("fd_fdstat_set_rights", "iII", ENOTSUP), ("fd_filestat_set_size", "iI", EROFS),
    ("fd_filestat_set_times", "iIIi", EROFS), ("fd_renumber", "ii", ENOTSUP),
    ("fd_advise", "iIIi", ESUCCESS), ("fd_allocate", "iII", EROFS),
    ("path_filestat_set_times", "iiiiIIi", EROFS), ("path_create_directory", "iii", EROFS),
    ("path_link", "iiiiiii", EROFS), ("path_readlink", "iiiiii", EINVAL),
    ("path_remove_directory", "iii", EROFS), ("path_rename", "iiiiii", EROFS),
    ("path_symlink", "iiiii", EROFS), ("path_unlink_file", "iii", EROFS),
    ("proc_raise", "i", ENOTSUP), ("sock_accept", "iii", ENOTSUP),
    ("sock_recv", "iiiiii", ENOTSUP), ("sock_send", "iiiii", ENOTSUP),
    ("sock_shutdown", "ii", ENOTSUP),
):
    _wasi(_name, _params)(_refuse(_errno))
