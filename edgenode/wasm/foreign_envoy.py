"""Foreign functions Envoy and Higress provide that SDK wrappers call on every filter.

Registered at import (engine.py imports this module) as *pure* functions: they read or
record only the calling filter's own settings, so calling them during start-up keeps a
start-up snapshot possible.  Unknown names stay NOT_FOUND (foreign.py), never a trap.

* ``get_log_level`` (Higress's Go wrapper, before every log line): the filter's
  ``log_level`` as a little-endian u32 (0 trace .. 5 critical).
* ``clear_route_cache`` (Envoy 1.33+): accepted; the node picks the route and origin
  after the chain from the final request headers, so there is no cached route.
* ``declare_property`` (Envoy; argument ``DeclarePropertyArguments`` protobuf): records
  the name and ``readonly``; a read-only declared property can then be set once per
  request (a second ``proxy_set_property`` returns NOT_FOUND).
* ``set_global_max_requests_per_io_cycle`` (Higress; u64 argument): accepted, no effect:
  the worker's event loop interleaves callout replies with requests on its own.
"""

from __future__ import annotations

import struct
from typing import Any

from edgenode.wasm.foreign import register_foreign_function
from edgenode.wasm.hostcalls import registry

__all__ = ["parse_declare_property"]


def _caller_info() -> Any:
    """The calling filter's Plugin (vm.Plugin)."""
    vm = registry.CURRENT
    if vm is None:
        raise LookupError("foreign function called outside a filter callback")
    return vm.plugin


def get_log_level(args: bytes) -> bytes:
    return struct.pack("<I", _caller_info().log_level)


def clear_route_cache(args: bytes) -> bytes:
    return b""


def set_global_max_requests_per_io_cycle(args: bytes) -> bytes:
    return b""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        b = data[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        shift += 7
        if b < 0x80:
            return value, pos


def parse_declare_property(data: bytes) -> tuple[str, bool]:
    """(name, readonly) of an ``envoy.source.extensions.common.wasm.DeclarePropertyArguments``."""
    name, readonly, pos = "", False, 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        field_no, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            if field_no == 2:
                readonly = bool(value)
        elif wire == 2:
            size, pos = _varint(data, pos)
            if field_no == 1:
                name = data[pos:pos + size].decode("utf-8", "replace")
            pos += size
        else:
            raise ValueError(f"unexpected wire type {wire}")
    if not name or pos > len(data):
        raise ValueError("declare_property without a name")
    return name, readonly


def declare_property(args: bytes) -> bytes:
    try:
        name, readonly = parse_declare_property(args)
    except ValueError:
        return b""  # as a no-op: nothing declared
    _caller_info().info.declared[name] = readonly
    return b""


for _name, _fn in (("get_log_level", get_log_level), ("clear_route_cache", clear_route_cache),
                   ("declare_property", declare_property),
                   ("set_global_max_requests_per_io_cycle", set_global_max_requests_per_io_cycle)):
    register_foreign_function(_name, _fn, pure=True)
