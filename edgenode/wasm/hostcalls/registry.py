"""The table of host functions and what every host function shares.

A host function receives its arguments as a tuple of ints (i32 as unsigned, i64 as
signed) and acts on ``CURRENT``, the VM whose guest call is in progress; the host core
(native/hostfns.c) sets it around each Python host function and answers the hot
functions itself (header maps, body buffers, log level), so these are the reference
implementation and the fallback.  Guest pointer/size pairs outside linear memory raise
``MemoryFault`` (the core turns it into INVALID_MEMORY_ACCESS, EFAULT for WASI); bad
encodings return BAD_ARGUMENT.  Nothing here can take the node down.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol

from edgenode.wasm.abi import Status, decode_text
from edgenode.wasm.errors import HostTrap, MemoryFault

__all__ = ["HOST_FUNCTIONS", "HostDef", "HostVm", "CURRENT", "OK", "NOT_FOUND", "BAD_ARGUMENT",
           "INVALID_MEMORY_ACCESS", "UNIMPLEMENTED", "EMPTY", "INTERNAL_FAILURE", "V010", "V020",
           "V021", "ALL_VERSIONS", "V02X", "FORBIDDEN"]


class HostVm(Protocol):
    """What host functions use of a VM (vm.Vm)."""

    mem: Any  # guestmem.GuestMemory
    plugin: Any  # vm.Plugin
    effective: Any  # the RootContext / StreamContext the call acts on, or None
    contexts: dict[int, Any]
    version: tuple[int, int, int]
    configuring: str | None
    call_result: Any
    foreign_args: bytes | None
    effects: bool
    tied: bool
    exit_code: int | None
    #: WASI random_get ran (wasi.py); the Redis reply being delivered (hostcalls_redis.py)
    random_read: bool
    #: WASI opened a file table for it (wasi.py), which a reset drops
    files_opened: bool
    redis_reply: bytes | None

    def alloc(self, size: int) -> int: ...
    def set_tick_period(self, ms: int) -> None: ...
    def continue_stream(self, stream_type: int, close: bool) -> int: ...
    def send_local_response(self, status: int, details: str, body: bytes,
                            headers: list[tuple[str, str]]) -> int: ...
    def proxy_done(self) -> int: ...
    def http_call(self, upstream: str, headers: list[tuple[str, str]], body: bytes,
                  timeout_ms: int) -> tuple[int, int]: ...
    def queue_notifier(self) -> Callable[[int], None]: ...
    def start_callout(self, work: Callable[[int], Awaitable[None]]) -> int: ...
    def notify_root(self, hook: str, *args: int, phase: str) -> None: ...


#: the VM whose guest call is running a Python host function (set by the host core)
CURRENT: HostVm | None = None

OK = int(Status.OK)
NOT_FOUND = int(Status.NOT_FOUND)
BAD_ARGUMENT = int(Status.BAD_ARGUMENT)
INVALID_MEMORY_ACCESS = int(Status.INVALID_MEMORY_ACCESS)
UNIMPLEMENTED = int(Status.UNIMPLEMENTED)
EMPTY = int(Status.EMPTY)
INTERNAL_FAILURE = int(Status.INTERNAL_FAILURE)

V010, V020, V021 = (0, 1, 0), (0, 2, 0), (0, 2, 1)
ALL_VERSIONS = frozenset({V010, V020, V021})
V02X = frozenset({V020, V021})

#: bytes no header name or value may carry (RFC 9110 §5.5: CR, LF and NUL)
FORBIDDEN = re.compile("[\r\n\0]")
_pack_u32 = struct.Struct("<I").pack_into


@dataclass(frozen=True)
class HostDef:
    module: str
    name: str
    params: str  # one letter per parameter: i = i32, I = i64
    has_result: bool
    fn: Callable
    fault: int
    versions: frozenset


HOST_FUNCTIONS: dict[tuple[str, str], HostDef] = {}


def _proxy(name: str, params: str, versions: frozenset = ALL_VERSIONS) -> Callable[[Callable], Callable]:
    """Register ``env.<name>``."""
    def deco(fn: Callable) -> Callable:
        HOST_FUNCTIONS[("env", name)] = HostDef("env", name, params, True, fn,
                                                INVALID_MEMORY_ACCESS, versions)
        return fn
    return deco


def _vm() -> HostVm:
    vm = CURRENT
    if vm is None:  # only possible if a guest calls a host function outside a VM call
        raise HostTrap("host function called outside a filter callback")
    return vm


def _vm_effect() -> HostVm:
    """``_vm()`` for host calls whose effect or answer lies outside the instance
    (callouts, shared state, metrics, randomness): made during start-up, they rule out a
    post-configure snapshot (snapshot.py), which would not repeat them.  Made by a
    stream, they leave the instance as a fresh one would be after its reset (what they
    changed is the node's or the filter's, not the instance's; a pending callout is the
    VM's and closes it instead), so they do not stop ``Vm.recycle``: ``_vm_tie``."""
    vm = _vm()
    vm.effects = True
    return vm


def _vm_tie() -> HostVm:
    """``_vm_effect()`` for host calls after which something outside the instance refers
    to it (a registered shared queue notifies it, a foreign function's effects are
    unknown): such an instance is never reset for another stream (``Vm.recycle``)."""
    vm = _vm_effect()
    vm.tied = True
    return vm


def _ret_bytes(vm: HostVm, data: bytes | bytearray, ret_ptr: int, ret_size: int) -> int:
    """Copy ``data`` into a guest allocation and write (ptr, size); empty -> 0/0.

    Allocates before validating the return slots (one memory-size check instead of
    two): a bad slot pointer only leaks the guest's own allocation.
    """
    mem = vm.mem
    n = len(data)
    if not n:
        mem.write_u32(ret_ptr, 0)
        mem.write_u32(ret_size, 0)
        return OK
    ptr = vm.alloc(n)
    size = mem.size
    if (ret_ptr + 4 > size or ret_size + 4 > size) and not mem.fits(max(ret_ptr, ret_size) + 4):
        raise MemoryFault("return pointer outside memory")
    if ptr == 0 or (ptr + n > size and not mem.fits(ptr + n)):
        return INVALID_MEMORY_ACCESS
    view = mem.view
    view[ptr:ptr + n] = data
    _pack_u32(view, ret_ptr, ptr)
    _pack_u32(view, ret_size, n)
    return OK


def _stream(vm: HostVm) -> Any:
    """The effective stream context, or None (root context / no context)."""
    ctx = vm.effective
    return None if ctx is None or ctx.is_root else ctx


def _text(vm: HostVm, ptr: int, size: int) -> str:
    """UTF-8 text from the guest (log messages, names of upstreams, queues, metrics)."""
    mem = vm.mem
    if ptr + size > mem.size and not mem.fits(ptr + size):
        raise MemoryFault(f"read of {size} bytes at {ptr:#x} past memory end {mem.size:#x}")
    return str(mem.view[ptr:ptr + size], "utf-8", "surrogateescape")


def _field(vm: HostVm, ptr: int, size: int) -> str:
    """A header name or value from the guest, as wire text (abi.decode_text)."""
    mem = vm.mem
    if ptr + size > mem.size and not mem.fits(ptr + size):
        raise MemoryFault(f"read of {size} bytes at {ptr:#x} past memory end {mem.size:#x}")
    return decode_text(mem.view[ptr:ptr + size])
