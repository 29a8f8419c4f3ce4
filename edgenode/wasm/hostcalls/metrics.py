"""Filter-defined metrics (metrics.FilterMetrics)."""

from __future__ import annotations

from edgenode.wasm.abi import Status
from edgenode.wasm.hostcalls.registry import BAD_ARGUMENT, _proxy, _text, _vm, _vm_effect

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
