"""HTTP callouts (gRPC ones answer UNIMPLEMENTED)."""

from __future__ import annotations

from edgenode.wasm.abi import MapDecodeError, decode_map
from edgenode.wasm.hostcalls.registry import (BAD_ARGUMENT, OK, UNIMPLEMENTED, _proxy, _text, _vm,
                                              _vm_effect)

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
