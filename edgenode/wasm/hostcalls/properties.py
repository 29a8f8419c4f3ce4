"""Properties (properties.py: what each path means) and foreign functions (foreign.py)."""

from __future__ import annotations

import logging
from typing import Any, Callable

from edgenode.wasm import native
from edgenode.wasm.foreign import is_pure_foreign_function, lookup_foreign_function
from edgenode.wasm.hostcalls.registry import (INTERNAL_FAILURE, NOT_FOUND, OK, V02X, HostVm, _proxy,
                                              _ret_bytes, _stream, _text, _vm)
from edgenode.wasm.properties import exchange_getter, exchange_setter, get_property, set_property, split_path

_log = logging.getLogger("edgenode.wasm")


def property_value(vm: HostVm, path: tuple[str, ...]) -> bytes | None:
    """The encoded value of property ``path`` for the running callback (None: NOT_FOUND)."""
    ctx = _stream(vm)
    return get_property(path, vm.plugin.info, ctx.exchange if ctx else None,
                        ctx.response_view if ctx else None, vm)


def store_property(vm: HostVm, path: tuple[str, ...], value: bytes) -> int:
    ctx = _stream(vm)
    return OK if set_property(path, value, ctx.exchange if ctx else None, vm.plugin.info) else NOT_FOUND


#: the attributes the host core reads from the exchange itself: path -> its id there
_NATIVE_IDS = {split_path(name.encode()): i for i, name in enumerate(native.NATIVE_PROPERTIES, 1)}


def resolve_path(raw: bytes) -> tuple[tuple[str, ...], Callable[[Any], Any] | None,
                                      tuple[bool, str, bool] | None, int]:
    """What the host core keeps per distinct path: its segments, the getter it may call
    with the stream's exchange instead of ``property_value`` (other exchange attributes),
    how it may store a value on the exchange instead of calling ``store_property`` (the
    routing decision), and the id of the attribute it answers itself (0: none)."""
    path = split_path(raw)
    return path, exchange_getter(path), exchange_setter(path), _NATIVE_IDS.get(path, 0)


# the host core answers both host functions itself through these
native.set_property_functions(resolve_path, property_value, store_property)


@_proxy("proxy_get_property", "iiii")
def proxy_get_property(raw: tuple[int, ...]) -> int:
    vm = _vm()
    value = property_value(vm, split_path(vm.mem.read(raw[0], raw[1])))
    if value is None:
        return NOT_FOUND
    return _ret_bytes(vm, value, raw[2], raw[3])


@_proxy("proxy_set_property", "iiii")
def proxy_set_property(raw: tuple[int, ...]) -> int:
    vm = _vm()
    return store_property(vm, split_path(vm.mem.read(raw[0], raw[1])), vm.mem.read(raw[2], raw[3]))


@_proxy("proxy_call_foreign_function", "iiiiii", V02X)
def proxy_call_foreign_function(raw: tuple[int, ...]) -> int:
    vm = _vm()
    name = _text(vm, raw[0], raw[1])
    if not is_pure_foreign_function(name):
        vm.effects = vm.tied = True
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
