"""Stream control: continue/close, local replies, the effective context, done, status."""

from __future__ import annotations

from edgenode.wasm.abi import MapDecodeError, decode_map
from edgenode.wasm.hostcalls.registry import (BAD_ARGUMENT, NOT_FOUND, OK, V010, V02X, _proxy,
                                              _ret_bytes, _text, _vm)

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
