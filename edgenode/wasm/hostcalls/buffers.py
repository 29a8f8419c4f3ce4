"""Buffers: bodies (0/1), the http call response body (4), configurations (6/7) and
foreign function arguments (8)."""

from __future__ import annotations

from edgenode.wasm.abi import BufferType
from edgenode.wasm.hostcalls.registry import (BAD_ARGUMENT, NOT_FOUND, OK, V010, HostVm, _proxy,
                                              _ret_bytes, _stream, _vm)

#: Higress's buffer type of the Redis reply being delivered (hostcalls_redis.py)
REDIS_CALL_RESPONSE = 9


def _buffer(vm: HostVm, btype: int) -> bytes | bytearray | int:
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
    if btype == REDIS_CALL_RESPONSE:
        return NOT_FOUND if vm.redis_reply is None else vm.redis_reply
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
    ctx = _stream(vm)
    btype = raw[0]
    if isinstance(buf, bytes) and ctx is not None and btype <= BufferType.HTTP_RESPONSE_BODY:
        buf = bytearray(buf)  # a body handed over as the message's bytes: copied on first write
        if btype == BufferType.HTTP_REQUEST_BODY:
            ctx.request_body = buf
        else:
            ctx.response_body = buf
    if not isinstance(buf, bytearray):
        return BAD_ARGUMENT  # configuration and callout buffers are read-only
    start, size = raw[1], raw[2]
    data = vm.mem.read(raw[3], raw[4])
    if start >= len(buf):
        buf.extend(data)  # append
    else:
        buf[start:start + size] = data  # replace `size` bytes at `start` (prepend: size 0)
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
