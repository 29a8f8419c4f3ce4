"""Process-wide shared data (with CAS) and shared queues, keyed by vm_id as in cpp-host.

Every filter VM in this worker process with the same ``vm_id`` sees the same keys and
queues; different vm_ids are isolated.  Single-threaded (the event loop) by design.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Callable

from edgenode.wasm.abi import Status

__all__ = ["SharedData", "SharedQueues", "shared_data", "shared_queues"]


class SharedData:
    def __init__(self) -> None:
        self._data: dict[str, dict[bytes, tuple[bytes, int]]] = {}
        self._cas = itertools.count(1)

    def get(self, vm_id: str, key: bytes) -> tuple[bytes, int] | None:
        return self._data.get(vm_id, {}).get(key)

    def set(self, vm_id: str, key: bytes, value: bytes, cas: int) -> Status:
        """cas 0 = unconditional; a stale non-zero cas on an existing key -> CAS_MISMATCH."""
        space = self._data.setdefault(vm_id, {})
        current = space.get(key)
        if current is not None and cas != 0 and cas != current[1]:
            return Status.CAS_MISMATCH
        space[key] = (value, next(self._cas))
        return Status.OK


QueueReady = Callable[[int], None]


class _Queue:
    __slots__ = ("id", "items", "notify")

    def __init__(self, queue_id: int, notify: QueueReady) -> None:
        self.id = queue_id
        self.items: deque[bytes] = deque()
        self.notify = notify


class SharedQueues:
    def __init__(self) -> None:
        self._by_name: dict[tuple[str, str], _Queue] = {}
        self._by_id: dict[int, _Queue] = {}
        self._ids = itertools.count(1)

    def register(self, vm_id: str, name: str, notify: QueueReady) -> int:
        """Create or reopen (vm_id, name); the latest registrant receives on_queue_ready."""
        q = self._by_name.get((vm_id, name))
        if q is None:
            q = _Queue(next(self._ids), notify)
            self._by_name[(vm_id, name)] = q
            self._by_id[q.id] = q
        q.notify = notify
        return q.id

    def resolve(self, vm_id: str, name: str) -> int | None:
        q = self._by_name.get((vm_id, name))
        return q.id if q else None

    def enqueue(self, queue_id: int, data: bytes) -> Status:
        q = self._by_id.get(queue_id)
        if q is None:
            return Status.NOT_FOUND
        q.items.append(data)
        q.notify(queue_id)
        return Status.OK

    def dequeue(self, queue_id: int) -> tuple[Status, bytes]:
        q = self._by_id.get(queue_id)
        if q is None:
            return Status.NOT_FOUND, b""
        if not q.items:
            return Status.EMPTY, b""
        return Status.OK, q.items.popleft()


shared_data = SharedData()
shared_queues = SharedQueues()
