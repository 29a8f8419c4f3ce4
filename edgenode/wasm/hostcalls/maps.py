"""Header maps: request/response headers (0/2, views of the node's messages), trailers
(1/3) and the http call response's headers and trailers (6/7).  Names and values are the
wire bytes (abi.encode_text / decode_text)."""

from __future__ import annotations

from edgenode.wasm.abi import MapDecodeError, decode_map, decode_text, encode_map, encode_text
from edgenode.wasm.contexts import HeaderMap, PairsMap
from edgenode.wasm.errors import MemoryFault
from edgenode.wasm.hostcalls.registry import (BAD_ARGUMENT, FORBIDDEN, NOT_FOUND, OK, V010, HostVm,
                                              _field, _proxy, _ret_bytes, _vm)


_REQ_HDRS, _REQ_TRL, _RESP_HDRS, _RESP_TRL = 0, 1, 2, 3
_CALL_HDRS, _CALL_TRL = 6, 7
_EMPTY_MAP = PairsMap([])


def _map(vm: HostVm, mtype: int, write: bool) -> HeaderMap | None:
    """The map a call may touch now, or None (BAD_ARGUMENT: not available in this phase)."""
    ctx = vm.effective
    if mtype == _REQ_HDRS:
        if ctx is None or ctx.is_root:
            return None
        if ctx.request_headers_open or (ctx.in_log and not write):
            return ctx.request_view
        return None
    if mtype == _RESP_HDRS:
        if ctx is None or ctx.is_root:
            return None
        view = ctx.response_view
        if view is not None and (ctx.response_headers_open or (ctx.in_log and not write)):
            return view
        return None
    if mtype == _CALL_HDRS or mtype == _CALL_TRL:
        result = vm.call_result
        if result is None or write:
            return None
        return PairsMap(result.headers if mtype == _CALL_HDRS else result.trailers)
    if (mtype == _REQ_TRL or mtype == _RESP_TRL) and ctx is not None and not ctx.is_root:
        trailers = ctx.request_trailers if mtype == _REQ_TRL else ctx.response_trailers
        if trailers is None:  # the body has not ended yet: nothing to read, nothing to write
            return None if write else _EMPTY_MAP
        if write and not trailers.writable:
            return None
        return trailers
    return None


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
        if any(FORBIDDEN.search(k) or FORBIDDEN.search(v) for k, v in pairs):
            return BAD_ARGUMENT
        hmap.set_pairs(pairs)
    except (MapDecodeError, ValueError):
        return BAD_ARGUMENT
    return OK


@_proxy("proxy_get_header_map_value", "iiiii")
def proxy_get_header_map_value(raw: tuple[int, ...]) -> int:
    vm = _vm()
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
    if not key or FORBIDDEN.search(key) or FORBIDDEN.search(value):
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
