"""Logging, clocks, ticks and the 0.1.0 configuration call."""

from __future__ import annotations

from edgenode.wasm.hostcalls.registry import (BAD_ARGUMENT, OK, V010, V021, _proxy, _ret_bytes, _text,
                                              _vm)

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
