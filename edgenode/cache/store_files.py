"""The files of an lmdb cache store directory, opened once per process.

``<path>/data.mdb`` and ``lock.mdb`` are the LMDB environment (every object, its
indexes and the store's totals, in named databases); ``node.lock`` is held (flock) by
the process that runs the node (the master of a multi-worker node), so two nodes never
share a store by accident; ``generation`` is one shared 8-byte counter that every
change other workers must see (purge, replacement, eviction) moves, so a worker's hit
path checks for news with one memory read; ``leases`` carries the request-collapsing
leases as byte-range locks (see ``leases.py``).

The owner checks the format on open: a store written by another format version, or a
file that is not an LMDB environment at all, is wiped with a log line, never misread.
LMDB itself keeps every commit atomic (copy-on-write pages, two meta pages), so a
process killed at any moment leaves the last committed state.  Commits are not fsynced
(``sync=False``): a crash of the operating system may lose the last seconds of writes,
which a cache can afford; a process crash loses nothing.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import operator
import os
import struct
from pathlib import Path
from typing import IO, Any

import lmdb

from edgenode.cache.codec import FORMAT
from edgenode.config import ConfigError

__all__ = ["StoreFiles", "StoreUnavailable", "StoreInUse", "DB_NAMES", "u64", "META", "TOTALS",
           "read_totals", "pack_totals"]

log = logging.getLogger("edgenode.cache.store")

#: named databases: the format and totals, each object id's tick, the objects keyed by
#: tick (so in LRU order; small bodies inline), large bodies by object id, the URL index
#: (keys other than their URL) and the Surrogate-Key index, the invalidation log
DB_NAMES = ("meta", "key", "obj", "body", "url", "tag", "inval")
_U64 = struct.Struct(">Q")
#: keys of the ``meta`` database
META = {name: name.encode() for name in ("format", "totals")}
#: the store's figures, kept in one ``meta`` record: object bytes and count, URLs, the
#: invalidation log's last sequence number, the last LRU tick given out
TOTALS = ("bytes", "entries", "urls", "seq", "tick")
_TOTALS = struct.Struct(">5Q")


def read_totals(txn: Any, meta: Any) -> dict[str, int]:
    raw = txn.get(META["totals"], db=meta)
    return dict(zip(TOTALS, _TOTALS.unpack(raw) if raw is not None else (0,) * len(TOTALS)))


#: the totals' values in ``TOTALS`` order, in one C call (once per write transaction)
_TOTAL_VALUES = operator.itemgetter(*TOTALS)


def pack_totals(totals: dict[str, int]) -> bytes:
    return _TOTALS.pack(*_TOTAL_VALUES(totals))


def u64(n: int) -> bytes:
    """Big-endian, so LMDB's byte order is numeric order."""
    return _U64.pack(n)


class StoreUnavailable(Exception):
    """The store cannot be used (read-only, unwritable, broken): the node passes through."""


class StoreInUse(ConfigError):
    """Another running node owns this store directory."""


#: what opening a file that is not (or no longer) an LMDB environment of ours raises
_NOT_OURS = (lmdb.InvalidError, lmdb.CorruptedError, lmdb.VersionMismatchError,
             lmdb.IncompatibleError)


def _map_size(max_bytes: int) -> int:
    """Room for ``max_bytes`` of objects plus B-tree pages, indexes and pages kept for
    readers; the file only grows as pages are written."""
    return (2 * max_bytes + (64 << 20) + 0xFFFFF) & ~0xFFFFF


class StoreFiles:
    """One store directory's environment, databases, generation counter and lease file."""

    def __init__(self, path: Path, max_bytes: int, owner: bool) -> None:
        self.path = path
        self.owner = owner
        self.map_size = _map_size(max_bytes)
        self._lock: IO[str] | None = None
        self.env: Any = None
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create {path}: {exc.strerror}") from None
        if not os.access(path, os.W_OK):
            raise StoreUnavailable(f"{path} is not writable (read-only file system or permissions)")
        try:
            if owner:
                self._lock_node()
            self._open_env()
            self.generation = _Generation(path / "generation", owner, self.seq())
            self.leases_fd = os.open(path / "leases", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            self.close()
            raise StoreUnavailable(f"{path}: {exc.strerror or exc}") from None
        except BaseException:
            self.close()
            raise

    # -- opening ---------------------------------------------------------------------------
    def _lock_node(self) -> None:
        # a file object: the lock goes with it even if the store is dropped unclosed
        lock = open(self.path / "node.lock", "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read(32).strip() or "?"
            lock.close()
            raise StoreInUse(f"cache.path: {self.path} is in use by another running node (pid "
                             f"{holder}); give each node its own [cache] path") from None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._lock = lock

    def _open_env(self) -> None:
        try:
            self._lmdb_open()
        except _NOT_OURS as exc:
            if not self.owner:
                raise StoreUnavailable(f"cannot open the LMDB environment: {exc}") from None
            log.warning("cache store %s is not a readable LMDB environment (%s): wiping it",
                        self.path, exc)
            self._wipe()
            self._lmdb_open()
        except lmdb.Error as exc:
            raise StoreUnavailable(f"cannot open the LMDB environment: {exc}") from None
        found = self.read_meta("format")
        if found == FORMAT.encode():
            return
        if not self.owner:
            raise StoreUnavailable(f"store format is {found!r}, expected {FORMAT!r}")
        if found is not None or self._has_data():
            log.warning("cache store %s has format %s, this node writes %s: wiping it",
                        self.path, found.decode(errors="replace") if found else "(none)", FORMAT)
            self.env.close()
            self._wipe()
            self._lmdb_open()
        with self.env.begin(write=True) as txn:
            txn.put(META["format"], FORMAT.encode(), db=self.dbs["meta"])
        self.env.reader_check()

    def _lmdb_open(self) -> None:
        self.env = lmdb.open(str(self.path), map_size=self.map_size, max_dbs=len(DB_NAMES),
                             sync=False, metasync=False, readahead=False, max_readers=1024,
                             max_spare_txns=4)
        self.dbs = {name: self.env.open_db(name.encode()) for name in DB_NAMES}

    def _has_data(self) -> bool:
        with self.env.begin() as txn:
            return any(txn.stat(self.dbs[n])["entries"] for n in DB_NAMES)

    def _wipe(self) -> None:
        self.env = None
        for name in ("data.mdb", "lock.mdb"):
            try:
                (self.path / name).unlink()
            except FileNotFoundError:
                pass

    # -- shared figures ---------------------------------------------------------------------
    def read_meta(self, name: str) -> bytes | None:
        with self.env.begin() as txn:
            value = txn.get(META[name], db=self.dbs["meta"])
        return bytes(value) if value is not None else None

    def seq(self) -> int:
        with self.env.begin() as txn:
            return read_totals(txn, self.dbs["meta"])["seq"]

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None
        gen = getattr(self, "generation", None)
        if gen is not None:
            gen.close()
        fd = getattr(self, "leases_fd", None)
        if fd is not None:
            os.close(fd)
            self.leases_fd = None
        if self._lock is not None:
            self._lock.close()  # releases the node lock
            self._lock = None


class _Generation:
    """An 8-byte counter in a shared mapping: the last invalidation a writer published.

    Aligned 8-byte loads and stores are single instructions on the platforms we run on,
    so readers never see a torn value.  Writers store the sequence number of the
    invalidation they just committed (never a stale one they read), so a reader that
    saw the value change knows it must catch up, and one that saw no change has missed
    nothing (see ``SharedStore._sync``).
    """

    SIZE = 4096

    def __init__(self, path: Path, owner: bool, seq: int) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < self.SIZE:
                os.ftruncate(fd, self.SIZE)
            self._map = mmap.mmap(fd, self.SIZE)
        finally:
            os.close(fd)
        self.cell = memoryview(self._map).cast("Q")
        if owner:
            self.cell[0] = seq

    def close(self) -> None:
        self.cell.release()
        self._map.close()
