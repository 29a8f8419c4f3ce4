"""Where functions' key-value data lives (Spin's ``key-value`` interface is in capabilities.py).

A store is one function's label (``key_value_stores = ["default"]``): two functions
never see each other's data.  Each store has its own size limit (keys + values, in
bytes); a write that would pass it fails with a clear error and changes nothing, so a
store never loses data behind a function's back.

Two backends, chosen like the cache store (``[cache] store``):

* ``LmdbKeyValue``: node-wide and persistent, an LMDB environment of its own under
  ``<server.state_dir>/function-kv`` (not the cache's: wiping a cache of another
  format must never take function data with it).  The master of a multi-worker node
  opens it first; every worker opens it too, so a value one worker sets is read by
  the others, and it survives restarts.  Writes are one transaction each and survive
  a process crash (LMDB copy-on-write); like the cache they are not fsynced, so an
  operating-system crash may lose the last seconds.
* ``MemoryKeyValue``: in this process (each worker its own), gone at exit.
"""

from __future__ import annotations

import logging
import struct
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from edgenode.config import Config

__all__ = ["KeyValueBackend", "KeyValueError", "StoreFull", "MemoryKeyValue", "LmdbKeyValue",
           "UnavailableKeyValue", "open_key_value", "key_value_path", "MAX_KEY_BYTES"]

log = logging.getLogger("edgenode.functions.kv")

#: the longest key a function may use, UTF-8 bytes (as Fermyon Cloud's stores)
MAX_KEY_BYTES = 255
_FORMAT = b"edgenode-function-kv/1"
_U64 = struct.Struct(">Q")


class KeyValueError(Exception):
    """A store operation failed; the message reaches the guest as Spin's ``other``."""


class StoreFull(KeyValueError):
    """The write would take the store past its size limit (nothing was written)."""


class KeyValueBackend(Protocol):
    """Stores by id (``function/label``, made by the caller); sizes are key + value bytes."""

    def get(self, store: str, key: str) -> bytes | None: ...

    def set(self, store: str, key: str, value: bytes, max_bytes: int) -> None:
        """Raises ``StoreFull`` when the store would pass ``max_bytes``."""

    def delete(self, store: str, key: str) -> None: ...

    def keys(self, store: str) -> list[str]: ...

    def usage(self, store: str) -> int: ...

    def close(self) -> None: ...


def _full(store: str, used: int, adding: int, max_bytes: int) -> StoreFull:
    label = store.split("\0", 1)[-1]
    return StoreFull(f"store {label!r} is full: {used} of {max_bytes} bytes used, "
                     f"this write needs {adding} more")


class MemoryKeyValue:
    """This process's stores in memory (thread-safe: threaded functions share it)."""

    def __init__(self) -> None:
        self._stores: dict[str, dict[str, bytes]] = {}
        self._used: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, store: str, key: str) -> bytes | None:
        with self._lock:
            return self._stores.get(store, {}).get(key)

    def set(self, store: str, key: str, value: bytes, max_bytes: int) -> None:
        size = len(key.encode()) + len(value)
        with self._lock:
            data = self._stores.setdefault(store, {})
            old = data.get(key)
            used = self._used.get(store, 0)
            delta = size - (len(key.encode()) + len(old) if old is not None else 0)
            if used + delta > max_bytes:
                raise _full(store, used, delta, max_bytes)
            data[key] = value
            self._used[store] = used + delta

    def delete(self, store: str, key: str) -> None:
        with self._lock:
            old = self._stores.get(store, {}).pop(key, None)
            if old is not None:
                self._used[store] -= len(key.encode()) + len(old)

    def keys(self, store: str) -> list[str]:
        with self._lock:
            return list(self._stores.get(store, {}))

    def usage(self, store: str) -> int:
        with self._lock:
            return self._used.get(store, 0)

    def close(self) -> None:
        """Nothing to release."""


class LmdbKeyValue:
    """Node-wide stores in an LMDB environment: ``data`` maps ``store \\0 key`` to the
    value, ``usage`` each store's bytes, ``meta`` the format."""

    def __init__(self, path: Path, map_size: int, owner: bool) -> None:
        import lmdb

        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        try:
            self.env = self._open(map_size)
        except (lmdb.InvalidError, lmdb.CorruptedError, lmdb.VersionMismatchError) as exc:
            if not owner:
                raise KeyValueError(f"{path}: {exc}") from None
            log.error("function key-value store %s is not a readable LMDB environment (%s): "
                      "starting it empty", path, exc)
            for name in ("data.mdb", "lock.mdb"):
                (path / name).unlink(missing_ok=True)
            self.env = self._open(map_size)
        self.data = self.env.open_db(b"data")
        self.used = self.env.open_db(b"usage")
        meta = self.env.open_db(b"meta")
        with self.env.begin(write=True) as txn:
            found = txn.get(b"format", db=meta)
            if found is None:
                txn.put(b"format", _FORMAT, db=meta)
            elif bytes(found) != _FORMAT:
                self.env.close()
                raise KeyValueError(f"{path} holds {bytes(found).decode(errors='replace')}, "
                                    f"this node reads {_FORMAT.decode()}")

    def _open(self, map_size: int) -> Any:
        import lmdb

        return lmdb.open(str(self.path), map_size=map_size, max_dbs=3, sync=False, metasync=False,
                         readahead=False, max_readers=1024, max_spare_txns=4)

    @staticmethod
    def _key(store: str, key: str) -> bytes:
        return store.encode() + b"\0" + key.encode()

    def _guard(self, fn: Any) -> Any:
        import lmdb

        try:
            return fn()
        except lmdb.MapFullError:
            raise KeyValueError(f"the node's key-value storage is full ({self.path})") from None
        except lmdb.Error as exc:
            raise KeyValueError(f"key-value storage failed: {exc}") from None

    def get(self, store: str, key: str) -> bytes | None:
        def run() -> bytes | None:
            with self.env.begin(buffers=False) as txn:
                return txn.get(self._key(store, key), db=self.data)
        return self._guard(run)

    def set(self, store: str, key: str, value: bytes, max_bytes: int) -> None:
        k = self._key(store, key)
        size = len(key.encode()) + len(value)

        def run() -> None:
            with self.env.begin(write=True) as txn:
                old = txn.get(k, db=self.data)
                raw = txn.get(store.encode(), db=self.used)
                used = _U64.unpack(raw)[0] if raw is not None else 0
                delta = size - (len(key.encode()) + len(old) if old is not None else 0)
                if used + delta > max_bytes:
                    raise _full(store, used, delta, max_bytes)
                txn.put(k, value, db=self.data)
                txn.put(store.encode(), _U64.pack(used + delta), db=self.used)
        self._guard(run)

    def delete(self, store: str, key: str) -> None:
        k = self._key(store, key)

        def run() -> None:
            with self.env.begin(write=True) as txn:
                old = txn.pop(k, db=self.data)
                if old is not None:
                    raw = txn.get(store.encode(), db=self.used)
                    used = _U64.unpack(raw)[0] if raw is not None else 0
                    txn.put(store.encode(), _U64.pack(max(0, used - len(key.encode()) - len(old))),
                            db=self.used)
        self._guard(run)

    def keys(self, store: str) -> list[str]:
        prefix = store.encode() + b"\0"

        def run() -> list[str]:
            out = []
            with self.env.begin() as txn:
                cur = txn.cursor(db=self.data)
                if cur.set_range(prefix):
                    for k in cur.iternext(values=False):
                        if not k.startswith(prefix):
                            break
                        out.append(bytes(k[len(prefix):]).decode())
            return out
        return self._guard(run)

    def usage(self, store: str) -> int:
        def run() -> int:
            with self.env.begin() as txn:
                raw = txn.get(store.encode(), db=self.used)
            return _U64.unpack(raw)[0] if raw is not None else 0
        return self._guard(run)

    def close(self) -> None:
        self.env.close()


class UnavailableKeyValue:
    """The backend of a node whose key-value storage cannot be opened: every operation
    fails with the reason (functions get Spin's ``other``), the node serves on."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def _fail(self, *args: Any) -> Any:
        raise KeyValueError(f"key-value storage unavailable: {self.reason}")

    get = set = delete = keys = usage = _fail

    def close(self) -> None:
        """Nothing to release."""


def key_value_path(config: Config) -> Path:
    """``<server.state_dir>/function-kv``."""
    state = config.server.state_dir
    return (state if state.is_absolute() else config.base_dir / state) / "function-kv"


def _map_size(config: Config) -> int:
    """Room for every configured store at its limit, twice over (B-tree pages, pages
    kept for readers), and at least 1 GiB: the file only grows as pages are written."""
    from edgenode.functions.options import parse_key_value_stores

    total = 0
    for i, sc in enumerate(config.chain):
        if sc.type == "function":
            stores = parse_key_value_stores(sc.options.get("key_value_stores", []),
                                            f"chain[{i}].key_value_stores")
            total += sum(stores.values())
    return max(1 << 30, (2 * total + (64 << 20) + 0xFFFFF) & ~0xFFFFF)


def open_key_value(config: Config, *, owner: bool, shared_only: bool = False) -> KeyValueBackend | None:
    """The node's backend: LMDB when the cache store is lmdb, else in memory (None for a
    master with the memory store: it serves no function)."""
    if config.cache.store != "lmdb":
        return None if shared_only else MemoryKeyValue()
    import lmdb

    path = key_value_path(config)
    try:
        return LmdbKeyValue(path, _map_size(config), owner)
    except (OSError, KeyValueError, lmdb.Error) as exc:
        reason = f"{path}: {getattr(exc, 'strerror', None) or exc}"
        log.warning("function key-value storage unavailable (%s): stores answer errors", reason)
        return UnavailableKeyValue(reason)
