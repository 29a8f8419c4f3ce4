"""Shared data and shared queues (process-wide, keyed by vm_id: shared.py)."""

from __future__ import annotations

from edgenode.wasm.abi import Status
from edgenode.wasm.hostcalls.registry import NOT_FOUND, OK, _proxy, _ret_bytes, _text, _vm_effect, _vm_tie
from edgenode.wasm.shared import shared_data, shared_queues

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
    vm = _vm_tie()  # the queue's notifications come to this instance
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
