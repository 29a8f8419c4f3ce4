"""The host functions (``env.proxy_*`` and the WASI subset) and their signatures.

Each function receives its arguments as a tuple of ints (i32 as unsigned, i64 as
signed), unpacked in one step from the unchecked call path's raw array, and acts on ``CURRENT``, the VM whose guest call is in progress (guest calls never
nest across VMs: they are synchronous on the event loop thread).  Pointer/size pairs
outside linear memory return INVALID_MEMORY_ACCESS (EFAULT for WASI) through
``fastcall.host_callback``; bad encodings return BAD_ARGUMENT.  Nothing here can
take the node down.
"""

from __future__ import annotations

import logging
import re
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from edgenode.wasm.abi import (BufferType, MapDecodeError, Status, decode_map, decode_text, encode_map,
                               encode_text)
from edgenode.wasm.contexts import HeaderMap, PairsMap, StreamContext
from edgenode.wasm.fastcall import HostTrap, MemoryFault
from edgenode.wasm.foreign import lookup_foreign_function
from edgenode.wasm.properties import get_property, set_property, split_path
from edgenode.wasm.shared import shared_data, shared_queues

if TYPE_CHECKING:
    from edgenode.wasm.vm import Vm

__all__ = ["HOST_FUNCTIONS", "HostDef", "set_current", "WASI_MODULES"]

CURRENT: "Vm | None" = None
M32 = 0xFFFFFFFF
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
WASI_MODULES = ("wasi_snapshot_preview1", "wasi_unstable")

_log = logging.getLogger("edgenode.wasm")
#: bytes no header name or value may carry (RFC 9110 §5.5: CR, LF and NUL)
_FORBIDDEN = re.compile("[\r\n\0]")
_pack_u32 = struct.Struct("<I").pack_into


def set_current(vm: "Vm | None") -> "Vm | None":
    """Make ``vm`` the target of host calls; returns the previous one."""
    global CURRENT
    prev, CURRENT = CURRENT, vm
    return prev


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
    def deco(fn: Callable) -> Callable:
        HOST_FUNCTIONS[("env", name)] = HostDef("env", name, params, True, fn,
                                                INVALID_MEMORY_ACCESS, versions)
        return fn
    return deco


def _wasi(name: str, params: str, has_result: bool = True) -> Callable[[Callable], Callable]:
    def deco(fn: Callable) -> Callable:
        for module in WASI_MODULES:
            HOST_FUNCTIONS[(module, name)] = HostDef(module, name, params, has_result, fn,
                                                     WASI_FAULT, ALL_VERSIONS)
        return fn
    return deco


def _vm() -> "Vm":
    vm = CURRENT
    if vm is None:  # only possible if a guest calls a host function outside a VM call
        raise HostTrap("host function called outside a filter callback")
    return vm


def _vm_effect() -> "Vm":
    """``_vm()`` for host calls whose effect or answer lies outside the instance
    (callouts, shared state, metrics, randomness): made during start-up, they rule out a
    post-configure snapshot (snapshot.py), which would not repeat them."""
    vm = _vm()
    vm.effects = True
    return vm


def _ret_bytes(vm: "Vm", data: bytes | bytearray, ret_ptr: int, ret_size: int) -> int:
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


def _stream(vm: "Vm") -> StreamContext | None:
    ctx = vm.effective
    return None if ctx is None or ctx.is_root else ctx  # type: ignore[return-value]


_REQ_HDRS, _REQ_TRL, _RESP_HDRS, _RESP_TRL = 0, 1, 2, 3
_CALL_HDRS, _CALL_TRL = 6, 7
_EMPTY_MAP = PairsMap([])


def _map(vm: "Vm", mtype: int, write: bool) -> HeaderMap | None:
    """The map a call may touch now, or None (BAD_ARGUMENT: not available in this phase)."""
    ctx = vm.effective
    if mtype == _REQ_HDRS:
        if ctx is None or ctx.is_root:
            return None
        if ctx.request_headers_open or (ctx.in_log and not write):  # type: ignore[union-attr]
            return ctx.request_view  # type: ignore[union-attr]
        return None
    if mtype == _RESP_HDRS:
        if ctx is None or ctx.is_root:
            return None
        view = ctx.response_view  # type: ignore[union-attr]
        if view is not None and (ctx.response_headers_open or (ctx.in_log and not write)):  # type: ignore[union-attr]
            return view
        return None
    if mtype == _CALL_HDRS or mtype == _CALL_TRL:
        result = vm.call_result
        if result is None or write:
            return None
        return PairsMap(result.headers if mtype == _CALL_HDRS else result.trailers)
    if (mtype == _REQ_TRL or mtype == _RESP_TRL) and ctx is not None and not ctx.is_root:
        trailers = ctx.request_trailers if mtype == _REQ_TRL else ctx.response_trailers  # type: ignore[union-attr]
        if trailers is None:  # the body has not ended yet: nothing to read, nothing to write
            return None if write else _EMPTY_MAP
        if write and not trailers.writable:
            return None
        return trailers
    return None


def _text(vm: "Vm", ptr: int, size: int) -> str:
    """UTF-8 text from the guest (log messages, names of upstreams, queues, metrics)."""
    mem = vm.mem
    if ptr + size > mem.size and not mem.fits(ptr + size):
        raise MemoryFault(f"read of {size} bytes at {ptr:#x} past memory end {mem.size:#x}")
    return str(mem.view[ptr:ptr + size], "utf-8", "surrogateescape")


def _field(vm: "Vm", ptr: int, size: int) -> str:
    """A header name or value from the guest, as wire text (abi.decode_text)."""
    mem = vm.mem
    if ptr + size > mem.size and not mem.fits(ptr + size):
        raise MemoryFault(f"read of {size} bytes at {ptr:#x} past memory end {mem.size:#x}")
    return decode_text(mem.view[ptr:ptr + size])


# --- logging, time, config ---------------------------------------------------------

@_proxy("proxy_log", "iii")
def proxy_log(raw: tuple[int, ...]) -> int:
    vm = _vm()
    level = raw[0]
    if not 0 <= level <= 5:
        return BAD_ARGUMENT
    vm.plugin.log(level, _text(vm, raw[1], raw[2]))
    return OK


@_proxy("proxy_get_log_level", "i", frozenset({V021}))
def proxy_get_log_level(raw: tuple[int, ...]) -> int:
    vm = _vm()
    vm.mem.write_u32(raw[0], vm.plugin.log_level)
    return OK


@_proxy("proxy_get_current_time_nanoseconds", "i")
def proxy_get_current_time_nanoseconds(raw: tuple[int, ...]) -> int:
    vm = _vm()
    vm.mem.write_u64(raw[0], vm.plugin.host_env.wall_ns())
    return OK


@_proxy("proxy_set_tick_period_milliseconds", "i")
def proxy_set_tick_period_milliseconds(raw: tuple[int, ...]) -> int:
    vm = _vm()
    vm.set_tick_period(raw[0])
    return OK


@_proxy("proxy_get_configuration", "ii", frozenset({V010}))
def proxy_get_configuration(raw: tuple[int, ...]) -> int:
    vm = _vm()
    data = vm.plugin.vm_config if vm.configuring == "vm" else vm.plugin.plugin_config
    return _ret_bytes(vm, data, raw[0], raw[1])


# --- buffers -----------------------------------------------------------------------

def _buffer(vm: "Vm", btype: int) -> bytes | bytearray | int:
    """The buffer of ``btype``, or a status (NOT_FOUND / BAD_ARGUMENT)."""
    if btype == BufferType.HTTP_REQUEST_BODY or btype == BufferType.HTTP_RESPONSE_BODY:
        ctx = _stream(vm)
        if ctx is None:
            return NOT_FOUND
        buf = ctx.request_body if btype == BufferType.HTTP_REQUEST_BODY else ctx.response_body
        return NOT_FOUND if buf is None else buf
    if btype == BufferType.HTTP_CALL_RESPONSE_BODY:
        return NOT_FOUND if vm.call_result is None else vm.call_result.body
    if btype in (BufferType.VM_CONFIGURATION, BufferType.PLUGIN_CONFIGURATION,
                 BufferType.FOREIGN_FUNCTION_ARGUMENTS):
        if vm.version == V010:
            return BAD_ARGUMENT
        if btype == BufferType.VM_CONFIGURATION:
            return vm.plugin.vm_config
        if btype == BufferType.PLUGIN_CONFIGURATION:
            return vm.plugin.plugin_config
        return NOT_FOUND if vm.foreign_args is None else vm.foreign_args
    if btype in (BufferType.DOWNSTREAM_DATA, BufferType.UPSTREAM_DATA, BufferType.GRPC_CALL_MESSAGE):
        return NOT_FOUND
    return BAD_ARGUMENT


@_proxy("proxy_get_buffer_bytes", "iiiii")
def proxy_get_buffer_bytes(raw: tuple[int, ...]) -> int:
    vm = _vm()
    buf = _buffer(vm, raw[0])
    if isinstance(buf, int):
        return buf
    start, length = raw[1], raw[2]
    if start > len(buf):
        return BAD_ARGUMENT
    # one copy (a slice), then straight into guest memory; no view that would pin the
    # body buffer against resizing
    return _ret_bytes(vm, buf[start:start + length], raw[3], raw[4])


@_proxy("proxy_set_buffer_bytes", "iiiii")
def proxy_set_buffer_bytes(raw: tuple[int, ...]) -> int:
    vm = _vm()
    buf = _buffer(vm, raw[0])
    if isinstance(buf, int):
        return buf
    if not isinstance(buf, bytearray):
        return BAD_ARGUMENT  # configuration and callout buffers are read-only
    start, size = raw[1], raw[2]
    data = vm.mem.read(raw[3], raw[4])
    if start >= len(buf):
        buf.extend(data)  # append
    else:
        buf[start:start + size] = data  # replace `size` bytes at `start` (prepend: size 0)
    ctx = _stream(vm)
    if ctx is not None:
        ctx.body_modified = True
    return OK


@_proxy("proxy_get_buffer_status", "iii")
def proxy_get_buffer_status(raw: tuple[int, ...]) -> int:
    vm = _vm()
    buf = _buffer(vm, raw[0])
    if isinstance(buf, int):
        return buf
    vm.mem.write_u32(raw[1], len(buf))
    vm.mem.write_u32(raw[2], 0)
    return OK


# --- header maps -------------------------------------------------------------------

@_proxy("proxy_get_header_map_size", "ii")
def proxy_get_header_map_size(raw: tuple[int, ...]) -> int:
    vm = _vm()
    hmap = _map(vm, raw[0], False)
    if hmap is None:
        return BAD_ARGUMENT
    vm.mem.write_u32(raw[1], len(encode_map(hmap.pairs())))
    return OK


@_proxy("proxy_get_header_map_pairs", "iii")
def proxy_get_header_map_pairs(raw: tuple[int, ...]) -> int:
    vm = _vm()
    hmap = _map(vm, raw[0], False)
    if hmap is None:
        return BAD_ARGUMENT
    return _ret_bytes(vm, encode_map(hmap.pairs()), raw[1], raw[2])


@_proxy("proxy_set_header_map_pairs", "iii")
def proxy_set_header_map_pairs(raw: tuple[int, ...]) -> int:
    vm = _vm()
    hmap = _map(vm, raw[0], True)
    if hmap is None:
        return BAD_ARGUMENT
    try:
        pairs = decode_map(vm.mem.read(raw[1], raw[2]))
        if any(_FORBIDDEN.search(k) or _FORBIDDEN.search(v) for k, v in pairs):
            return BAD_ARGUMENT
        hmap.set_pairs(pairs)
    except (MapDecodeError, ValueError):
        return BAD_ARGUMENT
    return OK


@_proxy("proxy_get_header_map_value", "iiiii")
def proxy_get_header_map_value(raw: tuple[int, ...]) -> int:
    vm = CURRENT or _vm()  # the commonest host call: _vm() only to raise
    mtype, kptr, klen, ret_ptr, ret_size = raw
    hmap = _map(vm, mtype, False)
    if hmap is None:
        return BAD_ARGUMENT
    mem = vm.mem
    end = kptr + klen
    if end > mem.size and not mem.fits(end):
        raise MemoryFault(f"read of {klen} bytes at {kptr:#x} past memory end {mem.size:#x}")
    value = hmap.get(decode_text(mem.view[kptr:end]))
    if value is None:
        if vm.version != V010:
            return NOT_FOUND
        value = ""  # v0.1.0 answered OK with an empty value
    return _ret_bytes(vm, encode_text(value), ret_ptr, ret_size)


def _set_value(raw: tuple[int, ...], op: str) -> int:
    vm = _vm()
    hmap = _map(vm, raw[0], True)
    if hmap is None:
        return BAD_ARGUMENT
    key = _field(vm, raw[1], raw[2])
    value = _field(vm, raw[3], raw[4])
    if not key or _FORBIDDEN.search(key) or _FORBIDDEN.search(value):
        return BAD_ARGUMENT
    try:
        (hmap.add if op == "add" else hmap.replace)(key, value)
    except ValueError:
        return BAD_ARGUMENT
    return OK


@_proxy("proxy_add_header_map_value", "iiiii")
def proxy_add_header_map_value(raw: tuple[int, ...]) -> int:
    return _set_value(raw, "add")


@_proxy("proxy_replace_header_map_value", "iiiii")
def proxy_replace_header_map_value(raw: tuple[int, ...]) -> int:
    return _set_value(raw, "replace")


@_proxy("proxy_remove_header_map_value", "iii")
def proxy_remove_header_map_value(raw: tuple[int, ...]) -> int:
    vm = _vm()
    hmap = _map(vm, raw[0], True)
    if hmap is None:
        return BAD_ARGUMENT
    hmap.remove(_field(vm, raw[1], raw[2]))
    return OK


# --- stream control ----------------------------------------------------------------

@_proxy("proxy_continue_stream", "i", V02X)
def proxy_continue_stream(raw: tuple[int, ...]) -> int:
    return _vm().continue_stream(raw[0], close=False)


@_proxy("proxy_close_stream", "i", V02X)
def proxy_close_stream(raw: tuple[int, ...]) -> int:
    return _vm().continue_stream(raw[0], close=True)


@_proxy("proxy_continue_request", "", frozenset({V010}))
def proxy_continue_request(raw: tuple[int, ...]) -> int:
    return _vm().continue_stream(0, close=False)


@_proxy("proxy_continue_response", "", frozenset({V010}))
def proxy_continue_response(raw: tuple[int, ...]) -> int:
    return _vm().continue_stream(1, close=False)


@_proxy("proxy_clear_route_cache", "", frozenset({V010}))
def proxy_clear_route_cache(raw: tuple[int, ...]) -> int:
    _vm()
    return OK  # routes are picked after the chain ran; nothing is cached per stream


@_proxy("proxy_send_local_response", "iiiiiiii")
def proxy_send_local_response(raw: tuple[int, ...]) -> int:
    vm = _vm()
    status = raw[0]
    details = _text(vm, raw[1], raw[2])
    body = vm.mem.read(raw[3], raw[4])
    try:
        headers = decode_map(vm.mem.read(raw[5], raw[6]))
    except MapDecodeError:
        return BAD_ARGUMENT
    if not 200 <= status <= 599:
        return BAD_ARGUMENT
    return vm.send_local_response(status, details, body, headers)


@_proxy("proxy_set_effective_context", "i")
def proxy_set_effective_context(raw: tuple[int, ...]) -> int:
    vm = _vm()
    ctx = vm.contexts.get(raw[0])
    if ctx is None:
        return BAD_ARGUMENT
    vm.effective = ctx
    return OK


@_proxy("proxy_done", "")
def proxy_done(raw: tuple[int, ...]) -> int:
    return _vm().proxy_done()


@_proxy("proxy_get_status", "iii")
def proxy_get_status(raw: tuple[int, ...]) -> int:
    vm = _vm()
    result = vm.call_result
    if result is None:
        return NOT_FOUND
    vm.mem.write_u32(raw[0], result.status_code)
    return _ret_bytes(vm, result.status_message.encode(), raw[1], raw[2])


# --- callouts ----------------------------------------------------------------------

@_proxy("proxy_http_call", "iiiiiiiiii")
def proxy_http_call(raw: tuple[int, ...]) -> int:
    vm = _vm_effect()
    mem = vm.mem
    upstream = _text(vm, raw[0], raw[1])
    try:
        headers = decode_map(mem.read(raw[2], raw[3]))
        decode_map(mem.read(raw[6], raw[7]))  # trailers: validated, not sent
    except MapDecodeError:
        return BAD_ARGUMENT
    body = mem.read(raw[4], raw[5])
    ret_token = raw[9]
    mem.write_u32(ret_token, 0)
    status, token = vm.http_call(upstream, headers, body, raw[8])
    if status == OK:
        mem.write_u32(ret_token, token)
    return status


def _grpc_unimplemented(raw: tuple[int, ...]) -> int:
    _vm()
    return UNIMPLEMENTED


for _name, _params in (("proxy_grpc_call", "i" * 12), ("proxy_grpc_stream", "i" * 9),
                       ("proxy_grpc_send", "iiii"), ("proxy_grpc_cancel", "i"),
                       ("proxy_grpc_close", "i")):
    _proxy(_name, _params)(_grpc_unimplemented)


# --- shared data and queues --------------------------------------------------------

@_proxy("proxy_get_shared_data", "iiiii")
def proxy_get_shared_data(raw: tuple[int, ...]) -> int:
    vm = _vm_effect()
    key = vm.mem.read(raw[0], raw[1])
    found = shared_data.get(vm.plugin.vm_id, key)
    if found is None:
        return NOT_FOUND
    value, cas = found
    vm.mem.write_u32(raw[4], cas)
    return _ret_bytes(vm, value, raw[2], raw[3])


@_proxy("proxy_set_shared_data", "iiiii")
def proxy_set_shared_data(raw: tuple[int, ...]) -> int:
    vm = _vm_effect()
    key = vm.mem.read(raw[0], raw[1])
    value = vm.mem.read(raw[2], raw[3])
    return int(shared_data.set(vm.plugin.vm_id, key, value, raw[4]))


@_proxy("proxy_register_shared_queue", "iii")
def proxy_register_shared_queue(raw: tuple[int, ...]) -> int:
    vm = _vm_effect()
    name = _text(vm, raw[0], raw[1])
    qid = shared_queues.register(vm.plugin.vm_id, name, vm.queue_notifier())
    vm.mem.write_u32(raw[2], qid)
    return OK


@_proxy("proxy_resolve_shared_queue", "iiiii")
def proxy_resolve_shared_queue(raw: tuple[int, ...]) -> int:
    vm = _vm_effect()
    vm_id = _text(vm, raw[0], raw[1])
    name = _text(vm, raw[2], raw[3])
    qid = shared_queues.resolve(vm_id, name)
    if qid is None:
        return NOT_FOUND
    vm.mem.write_u32(raw[4], qid)
    return OK


@_proxy("proxy_enqueue_shared_queue", "iii")
def proxy_enqueue_shared_queue(raw: tuple[int, ...]) -> int:
    vm = _vm_effect()
    data = vm.mem.read(raw[1], raw[2])
    return int(shared_queues.enqueue(raw[0], data))


@_proxy("proxy_dequeue_shared_queue", "iii")
def proxy_dequeue_shared_queue(raw: tuple[int, ...]) -> int:
    vm = _vm_effect()
    vm.mem.write_u32(raw[1], 0)
    vm.mem.write_u32(raw[2], 0)
    status, data = shared_queues.dequeue(raw[0])
    if status != Status.OK:
        return int(status)
    return _ret_bytes(vm, data, raw[1], raw[2])


# --- metrics -----------------------------------------------------------------------

@_proxy("proxy_define_metric", "iiii")
def proxy_define_metric(raw: tuple[int, ...]) -> int:
    vm = _vm()
    name = _text(vm, raw[1], raw[2])
    if not name:
        return BAD_ARGUMENT
    status, mid = vm.plugin.metrics.define(raw[0], name)
    if status == Status.OK:
        vm.mem.write_u32(raw[3], mid)
    return int(status)


@_proxy("proxy_increment_metric", "iI")
def proxy_increment_metric(raw: tuple[int, ...]) -> int:
    return int(_vm_effect().plugin.metrics.increment(raw[0], raw[1]))


@_proxy("proxy_record_metric", "iI")
def proxy_record_metric(raw: tuple[int, ...]) -> int:
    return int(_vm_effect().plugin.metrics.record(raw[0], raw[1] & 0xFFFFFFFFFFFFFFFF))


@_proxy("proxy_get_metric", "ii")
def proxy_get_metric(raw: tuple[int, ...]) -> int:
    vm = _vm_effect()
    status, value = vm.plugin.metrics.get(raw[0])
    if status == Status.OK:
        vm.mem.write_u64(raw[1], value)
    return int(status)


# --- properties and foreign functions ----------------------------------------------

@_proxy("proxy_get_property", "iiii")
def proxy_get_property(raw: tuple[int, ...]) -> int:
    vm = _vm()
    path = split_path(vm.mem.read(raw[0], raw[1]))
    ctx = _stream(vm)
    value = get_property(path, vm.plugin.info, ctx.exchange if ctx else None,
                         ctx.response_view if ctx else None)
    if value is None:
        return NOT_FOUND
    return _ret_bytes(vm, value, raw[2], raw[3])


@_proxy("proxy_set_property", "iiii")
def proxy_set_property(raw: tuple[int, ...]) -> int:
    vm = _vm()
    path = split_path(vm.mem.read(raw[0], raw[1]))
    value = vm.mem.read(raw[2], raw[3])
    ctx = _stream(vm)
    return OK if set_property(path, value, ctx.exchange if ctx else None) else NOT_FOUND


@_proxy("proxy_call_foreign_function", "iiiiii", V02X)
def proxy_call_foreign_function(raw: tuple[int, ...]) -> int:
    vm = _vm_effect()
    name = _text(vm, raw[0], raw[1])
    args = vm.mem.read(raw[2], raw[3])
    fn = lookup_foreign_function(name)
    if fn is None:
        return NOT_FOUND
    try:
        result = bytes(fn(args))
    except Exception:  # noqa: BLE001 - a broken host helper must not trap the filter
        _log.exception("foreign function %r failed (filter %s)", name, vm.plugin.name)
        return INTERNAL_FAILURE
    ret_ptr, ret_size = raw[4], raw[5]
    if ret_ptr == 0:
        return OK
    return _ret_bytes(vm, result, ret_ptr, ret_size)


# --- WASI subset -------------------------------------------------------------------

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


def _environ(vm: "Vm") -> list[bytes]:
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
