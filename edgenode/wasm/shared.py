"""Proxy-Wasm shared data (with CAS) and shared queues, keyed by vm_id as in cpp-host.

Every filter VM of the node with the same ``vm_id`` sees the same keys and queues;
different vm_ids are isolated.  A single-process node keeps them in this process's
memory.  A node with several workers keeps them node-wide, as Envoy shares them across
its worker threads: in an LMDB environment under ``server.state_dir`` that every
worker opens (:class:`NodeState`), so a CAS set by one worker is seen (and can be
contended) by all, and a queue registered by one worker gets ``on_queue_ready`` in
that worker, whichever worker enqueued (a datagram to the registrant's socket).  The
state starts empty with each start of the node unless ``server.persist_shared_data``
keeps it across restarts (then a single-process node uses the environment too).
"""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import logging
import marshal
import os
import socket
import struct
from collections import deque
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Protocol

from edgenode.wasm.abi import Status

if TYPE_CHECKING:
    from edgenode.config import Config

__all__ = ["SharedData", "SharedQueues", "shared_data", "shared_queues", "NodeState"]

log = logging.getLogger("edgenode.wasm.shared")

QueueReady = Callable[[int], None]
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
#: CAS values travel as u32 (proxy_get_shared_data); 0 means "unconditional"
_CAS_MOD = 1 << 32


class _DataBackend(Protocol):
    def get(self, vm_id: str, key: bytes) -> tuple[bytes, int] | None: ...

    def set(self, vm_id: str, key: bytes, value: bytes, cas: int) -> Status: ...


class _QueueBackend(Protocol):
    def register(self, vm_id: str, name: str, notify: QueueReady) -> int: ...

    def resolve(self, vm_id: str, name: str) -> int | None: ...

    def enqueue(self, queue_id: int, data: bytes) -> Status: ...

    def dequeue(self, queue_id: int) -> tuple[Status, bytes]: ...


# -- this process only ------------------------------------------------------------------
class _LocalData:
    def __init__(self) -> None:
        self._data: dict[str, dict[bytes, tuple[bytes, int]]] = {}
        self._cas = itertools.count(1)

    def get(self, vm_id: str, key: bytes) -> tuple[bytes, int] | None:
        return self._data.get(vm_id, {}).get(key)

    def set(self, vm_id: str, key: bytes, value: bytes, cas: int) -> Status:
        space = self._data.setdefault(vm_id, {})
        current = space.get(key)
        if current is not None and cas != 0 and cas != current[1]:
            return Status.CAS_MISMATCH
        space[key] = (value, next(self._cas))
        return Status.OK


class _Queue:
    __slots__ = ("id", "items", "notify")

    def __init__(self, queue_id: int, notify: QueueReady) -> None:
        self.id = queue_id
        self.items: deque[bytes] = deque()
        self.notify = notify


class _LocalQueues:
    def __init__(self) -> None:
        self._by_name: dict[tuple[str, str], _Queue] = {}
        self._by_id: dict[int, _Queue] = {}
        self._ids = itertools.count(1)

    def register(self, vm_id: str, name: str, notify: QueueReady) -> int:
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


# -- the whole node ----------------------------------------------------------------------
def _space(vm_id: str, name: bytes) -> bytes:
    return vm_id.encode() + b"\0" + name


class _NodeData:
    """Shared data in the node's LMDB environment: ``data`` maps vm_id\\0key -> cas + value."""

    def __init__(self, env: Any, dbs: dict[str, Any]) -> None:
        self.env = env
        self.db = dbs["data"]
        self.meta = dbs["meta"]

    def get(self, vm_id: str, key: bytes) -> tuple[bytes, int] | None:
        with self.env.begin() as txn:
            raw = txn.get(_space(vm_id, key), db=self.db)
        if raw is None:
            return None
        return bytes(raw[4:]), _U32.unpack_from(raw)[0]

    def set(self, vm_id: str, key: bytes, value: bytes, cas: int) -> Status:
        k = _space(vm_id, key)
        with self.env.begin(write=True) as txn:
            raw = txn.get(k, db=self.db)
            if raw is not None and cas != 0 and cas != _U32.unpack_from(raw)[0]:
                return Status.CAS_MISMATCH
            counter = txn.get(b"cas", db=self.meta)
            n = (_U32.unpack(counter)[0] if counter is not None else 0) % (_CAS_MOD - 1) + 1
            txn.put(b"cas", _U32.pack(n), db=self.meta)
            txn.put(k, _U32.pack(n) + value, db=self.db)
        return Status.OK


class _NodeQueues:
    """Shared queues in the node's LMDB environment.

    ``qname`` maps vm_id\\0name -> queue id; ``qinfo`` the id -> (vm_id, name, the
    registrant's notification address); ``qitem`` id + sequence -> item.  Every process
    binds one datagram socket (abstract namespace) on which it hears "queue N has items"
    for the queues it registered last.
    """

    def __init__(self, env: Any, dbs: dict[str, Any]) -> None:
        self.env = env
        self.db = dbs
        self._notify: dict[int, QueueReady] = {}
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(b"\0edgenode-queues-" + os.urandom(8).hex().encode())
        self._sock.setblocking(False)
        self.address: bytes = self._sock.getsockname()
        self._loop: asyncio.AbstractEventLoop | None = None

    def _listen(self) -> None:
        """Hear notifications on this process's event loop (once one runs)."""
        if self._loop is not None:
            return
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._loop.add_reader(self._sock.fileno(), self._readable)

    def _readable(self) -> None:
        while True:
            try:
                msg = self._sock.recv(16)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if len(msg) == 4:
                self._deliver(_U32.unpack(msg)[0])

    def _deliver(self, queue_id: int) -> None:
        notify = self._notify.get(queue_id)
        if notify is not None:
            notify(queue_id)

    def register(self, vm_id: str, name: str, notify: QueueReady) -> int:
        self._listen()
        k = _space(vm_id, name.encode())
        with self.env.begin(write=True) as txn:
            raw = txn.get(k, db=self.db["qname"])
            if raw is None:
                last = txn.get(b"qid", db=self.db["meta"])
                qid = (_U32.unpack(last)[0] if last is not None else 0) + 1
                txn.put(b"qid", _U32.pack(qid), db=self.db["meta"])
                txn.put(k, _U32.pack(qid), db=self.db["qname"])
            else:
                qid = _U32.unpack(raw)[0]
            # the latest registrant (in any worker) receives on_queue_ready, as in Envoy
            txn.put(_U32.pack(qid), marshal.dumps((vm_id, name, self.address)), db=self.db["qinfo"])
        self._notify[qid] = notify
        return qid

    def resolve(self, vm_id: str, name: str) -> int | None:
        with self.env.begin() as txn:
            raw = txn.get(_space(vm_id, name.encode()), db=self.db["qname"])
        return _U32.unpack(raw)[0] if raw is not None else None

    def enqueue(self, queue_id: int, data: bytes) -> Status:
        self._listen()
        qk = _U32.pack(queue_id)
        with self.env.begin(write=True) as txn:
            info = txn.get(qk, db=self.db["qinfo"])
            if info is None:
                return Status.NOT_FOUND
            cur = txn.cursor(db=self.db["qitem"])  # find the queue's last item
            on_item = cur.prev() if cur.set_range(_U32.pack(queue_id + 1)) else cur.last()
            seq = _U64.unpack(cur.key()[4:])[0] + 1 if on_item and cur.key()[:4] == qk else 0
            txn.put(qk + _U64.pack(seq), data, db=self.db["qitem"])
            owner = marshal.loads(info)[2]
        if owner == self.address:
            self._deliver(queue_id)
        else:
            try:
                self._sock.sendto(qk, owner)
            except OSError:
                pass  # the registrant is gone; the items wait for the next one
        return Status.OK

    def dequeue(self, queue_id: int) -> tuple[Status, bytes]:
        self._listen()
        qk = _U32.pack(queue_id)
        with self.env.begin(write=True) as txn:
            if txn.get(qk, db=self.db["qinfo"]) is None:
                return Status.NOT_FOUND, b""
            cur = txn.cursor(db=self.db["qitem"])
            if not cur.set_range(qk) or cur.key()[:4] != qk:
                return Status.EMPTY, b""
            data = bytes(cur.value())
            cur.delete()
        return Status.OK, data

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()


# -- the interface the host calls ----------------------------------------------------------
class SharedData:
    def __init__(self) -> None:
        self._backend: _DataBackend = _LocalData()

    def get(self, vm_id: str, key: bytes) -> tuple[bytes, int] | None:
        return self._backend.get(vm_id, key)

    def set(self, vm_id: str, key: bytes, value: bytes, cas: int) -> Status:
        """cas 0 = unconditional; a stale non-zero cas on an existing key -> CAS_MISMATCH."""
        return self._backend.set(vm_id, key, value, cas)


class SharedQueues:
    def __init__(self) -> None:
        self._backend: _QueueBackend = _LocalQueues()

    def register(self, vm_id: str, name: str, notify: QueueReady) -> int:
        """Create or reopen (vm_id, name); the latest registrant receives on_queue_ready."""
        return self._backend.register(vm_id, name, notify)

    def resolve(self, vm_id: str, name: str) -> int | None:
        return self._backend.resolve(vm_id, name)

    def enqueue(self, queue_id: int, data: bytes) -> Status:
        return self._backend.enqueue(queue_id, data)

    def dequeue(self, queue_id: int) -> tuple[Status, bytes]:
        return self._backend.dequeue(queue_id)


shared_data = SharedData()
shared_queues = SharedQueues()

_DBS = ("meta", "data", "qname", "qinfo", "qitem")


class NodeState:
    """Where this process's shared data and queues live; ``close()`` goes back to local."""

    def __init__(self, env: Any = None, queues: _NodeQueues | None = None,
                 lock: IO[str] | None = None) -> None:
        self._env = env
        self._queues = queues
        self._lock = lock

    @classmethod
    def open(cls, config: Config, *, owner: bool, workers: int) -> NodeState:
        """Node-wide state for a node of several workers (or a persistent one).

        The owner (a node alone, or the master before it starts workers) starts the
        state afresh unless it persists; workers join it.
        """
        persist = config.server.persist_shared_data
        if workers <= 1 and not persist:
            return cls()
        import lmdb

        path = filter_state_path(config)
        path.mkdir(parents=True, exist_ok=True)
        lock = None
        if owner:
            lock = open(path / "node.lock", "a+")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                from edgenode.config import ConfigError

                raise ConfigError(f"server.state_dir: {path} is in use by another running node; "
                                  "give each node its own state_dir") from None
            if not persist:
                _wipe(path)
        try:
            env = _open_env(path)
        except lmdb.InvalidError:
            if not owner:
                raise
            log.warning("filter state %s is not an LMDB environment: starting it afresh", path)
            _wipe(path)
            env = _open_env(path)
        dbs = {name: env.open_db(name.encode()) for name in _DBS}
        queues = _NodeQueues(env, dbs)
        shared_data._backend = _NodeData(env, dbs)
        shared_queues._backend = queues
        return cls(env, queues, lock)

    def close(self) -> None:
        if self._env is None:
            return
        if shared_queues._backend is self._queues:
            shared_data._backend = _LocalData()
            shared_queues._backend = _LocalQueues()
        assert self._queues is not None
        self._queues.close()
        self._env.close()
        self._env = None
        if self._lock is not None:
            self._lock.close()


def _open_env(path: Path) -> Any:
    import lmdb

    return lmdb.open(str(path), map_size=256 << 20, max_dbs=len(_DBS), sync=False,
                     metasync=False, max_readers=1024, max_spare_txns=4)


def _wipe(path: Path) -> None:
    for name in ("data.mdb", "lock.mdb"):
        (path / name).unlink(missing_ok=True)


def filter_state_path(config: Config) -> Path:
    """``<server.state_dir>/filter-state``."""
    state = config.server.state_dir
    return (state if state.is_absolute() else config.base_dir / state) / "filter-state"
