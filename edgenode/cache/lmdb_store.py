"""The node-wide cache store: one LMDB environment shared by every worker, kept across restarts.

Layout (``store_files.py``): each variant has an object id (16 bytes of the key's hash
+ 8 of its variant signature's), so a key's variants sit together in the ``key``
database, which maps each id to the object's tick.  The object itself (``codec.pack``:
its metadata and, when small, its body) is stored under that tick in ``obj``, so
``obj`` is in LRU order and a new object is appended at its end; a larger body is a
record of its own under the object id.  The ``url`` index maps a URL's hash to the keys
stored for it when a key is not its URL (``[cache.key] headers``), and ``tag`` a
Surrogate-Key's hash to object ids, for purges.  So a small object is two rows plus one
per Surrogate-Key, and only its id's and tags' rows land at random places in their
B-trees (each such row dirties a page per commit).  An object with its body and index
rows is written in one write transaction: it appears whole or not at all.

Writing: the stores a worker makes in one pass of its event loop are committed together
in one transaction when the pass ends (``put`` queues, ``flush`` commits), so the
commit, the totals and the shared pages are paid once for all of them, not once per
miss.  Until then the objects are in no other process's view; this process's lookups
of a queued key, purges, refreshes and ``stats`` commit the queue first, and a
collapsing lease on a queued key is released only after its commit, so a worker that
waited for it finds the object.  The front end holds an answer written while stores
are queued until they are committed (``frontend/dispatch.py`` ``Batch.stores``).

Reading: each worker keeps decoded hot objects (``[cache] hot_bytes``) so a fresh hit
costs what the in-memory store's does.  What makes a kept object wrong is a change
by any process (purge, replacement, 304 refresh, eviction): every such change appends
the affected keys to the ``inval`` log in its transaction and then publishes the log's
sequence number in the shared generation cell.  A lookup compares that cell with the
value it last saw (one memory read) and, when it moved, drops the keys logged since.
So a purge is visible in every worker as soon as the purging call returns.

Eviction: LRU with lazy, batched promotion.  Every object has a tick (its place in
``obj``); a hit does not write: it only notes the object in this process, at most once
per second per object, and the notes are written once a second, or before this
process's next write (each noted object moves to a new tick, at the end).  A store
makes room by removing the first objects of ``obj``.  So the hit path takes no lock at
all, a popular object costs one small write per second per worker, and the order is exact
LRU up to that second (memcached bumps items the same way).  Exact LRU keeps the two
stores' behaviour the same; sampled LRU, CLOCK or S3-FIFO would need the same per-hit
note and buy nothing a byte-bounded edge cache measured here needs.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import marshal
import struct
import time
from pathlib import Path
from types import MethodType
from typing import Any, Callable, Iterator

import lmdb

from edgenode.cache._key import Hasher, Reader
from edgenode.cache._record import StoreQueue, UsualWriter
from edgenode.cache.codec import INLINE_BODY, StoreRecord, decode, encode, pack, repack, unpack
from edgenode.cache.key import KeyBuilder
from edgenode.cache.leases import FileLeases
from edgenode.cache.policy import Entry, Headers
from edgenode.cache.store import COUNTERS
from edgenode.cache.store_files import META, StoreFiles, pack_totals, read_totals, u64
from edgenode.config import CacheConfig

__all__ = ["SharedStore"]

log = logging.getLogger("edgenode.cache.store")

_U64 = struct.Struct(">Q")
#: seconds between writes of this process's LRU promotions (and log catch-ups)
FLUSH_INTERVAL = 1.0
#: invalidation log records kept (a worker further behind drops all its hot objects)
LOG_KEEP = 65536
#: how long writes stay off after one failed (full disk, I/O error) before a retry
WRITE_RETRY = 30.0
#: one object may take at most this share of the hot memory
_HOT_SHARE = 4
#: absent keys remembered at most (``SharedStore._absent``)
_ABSENT_KEPT = 4096
#: Python memory of a decoded entry beyond its ``size`` (objects, multidict, header
#: tuples; measured ~1.3 KB with tracemalloc), so ``hot_bytes`` bounds real memory
_HOT_OVERHEAD = 1536


#: hashes of recent keys, variants and URLs by digest size (a miss hashes its key for each
#: lookup and for the store); cleared when full
_HASHES: dict[int, dict[str, bytes]] = {16: {}, 8: {}}
_HASHES_KEPT = 1024


def _py_h(text: str, size: int) -> bytes:
    """``_h``'s reference (and its answer for anything but a str and a size of 16 or 8)."""
    memo = _HASHES[size]
    digest = memo.get(text)
    if digest is None:
        if len(memo) >= _HASHES_KEPT:
            memo.clear()
        digest = memo[text] = hashlib.blake2b(text.encode("utf-8", "surrogatepass"),
                                              digest_size=size).digest()
    return digest


#: a key's, variant's or URL's hash through ``_HASHES``, in C (``_py_h``): every miss hashes
#: its key, variant and tags
_h: Callable[[str, int], bytes] = Hasher(_HASHES, _HASHES_KEPT, _py_h, hashlib.blake2b)


def _oid(key: str, variant: str) -> bytes:
    return _h(key, 16) + _h(variant, 8)


#: ``_Txn.insert_all``'s usual entries in one C call (``_record.c``; ``_Txn.insert`` is the
#: reference it is held to, and the writer of every other entry)
_write_usual = UsualWriter(Entry, _h, INLINE_BODY)


class _Hot:
    """A key's variants as this worker decoded them (newest last), and their ids."""

    __slots__ = ("entries", "oids", "size", "epoch", "single")

    def __init__(self, entries: list[Entry], oids: list[bytes], size: int) -> None:
        self.entries = entries
        self.oids = oids
        self.size = size
        #: the flush epoch in which this worker last noted a hit on it
        self.epoch = -1
        #: one variant without Vary (what ``fast_token`` vouches for; ``entries`` is never
        #: changed in place, and an entry's Vary is set when it is built)
        self.single = len(entries) == 1 and not entries[0].vary


class _Txn:
    """One write transaction's view of the store: objects, indexes, totals, invalidations."""

    def __init__(self, store: SharedStore, txn: Any) -> None:
        self.s = store
        self.txn = txn
        self.db = db = store.files.dbs
        self._key, self._obj = db["key"], db["obj"]
        #: the databases an insert writes, in ``_write_usual``'s order
        self._rows = (db["obj"], db["key"], db["body"], db["tag"])
        self.totals = read_totals(txn, db["meta"])
        self.start = dict(self.totals)
        self.invalid: list[str] = []
        self.everything = False

    # -- reading ---------------------------------------------------------------------------
    def variants(self, kh: bytes) -> list[tuple[bytes, bytes, StoreRecord]]:
        """The key hash's objects: ``(oid, tick, record)``."""
        cur = self.txn.cursor(db=self._key)
        out = []
        if cur.set_range(kh):
            obj, get = self._obj, self.txn.get
            for oid, tick in cur:
                if oid[:16] != kh:
                    break
                value = get(tick, db=obj)
                if value is not None:
                    out.append((bytes(oid), bytes(tick), unpack(value)[1]))
        return out

    def object(self, oid: bytes) -> tuple[bytes, StoreRecord] | None:
        """``(tick, record)`` of the object ``oid``, if stored."""
        tick = self.txn.get(oid, db=self._key)
        if tick is None:
            return None
        value = self.txn.get(tick, db=self._obj)
        return None if value is None else (bytes(tick), unpack(value)[1])

    def has_prefix(self, db: str, prefix: bytes) -> bool:
        cur = self.txn.cursor(db=self.db[db])
        return cur.set_range(prefix) and cur.key()[:len(prefix)] == prefix

    def prefixed(self, db: str, prefix: bytes) -> list[bytes]:
        """The keys of ``db`` that start with ``prefix``, without it."""
        cur = self.txn.cursor(db=self.db[db])
        out = []
        if cur.set_range(prefix):
            n = len(prefix)
            for key in cur.iternext(keys=True, values=False):
                if key[:n] != prefix:
                    break
                out.append(bytes(key[n:]))
        return out

    def url_stored(self, uh: bytes) -> bool:
        """Whether any object of the URL hash ``uh`` is stored (under the URL itself as
        its key, or under a key the URL index names)."""
        return self.has_prefix("key", uh) or self.has_prefix("url", uh)

    # -- changing ----------------------------------------------------------------------------
    def next_tick(self) -> bytes:
        tick = self.totals["tick"] = self.totals["tick"] + 1
        return _U64.pack(tick)  # (``u64``'s encoding without its frame: once per object written)

    def insert_all(self, batch: list[tuple[Entry, bytes, bool]]) -> None:
        """``insert`` of each ``(entry, record, new)``, the usual entries' rows written in C:
        a key read absent that is its URL, in a store without URL index rows, that fits
        (a single-process node's plain miss); the others are handed to ``insert``."""
        _write_usual(self.txn.put, self._rows, batch, self.totals, self.s.max_bytes, self.s,
                     self.insert)

    def insert(self, entry: Entry, record: bytes, new: bool = False) -> None:
        """Store ``entry`` (``record``: its encoded metadata); a key that had no variants is
        logged for no one (no process can hold what was not there), so a plain miss moves
        no worker's generation.  ``new``: the key is known to have no variants (a
        single-process node read it absent and stored nothing under it since), so they
        are not read again.

        Rows written: the object (its tick's value, a small body inline), its id's tick,
        its Surrogate-Keys; a large body on its own; a URL index row only for a key that
        is not its URL (``[cache.key] headers``): the others are found by the URL's hash."""
        key, url = entry.key, entry.url
        kh = _h(key, 16)
        oid = kh + _h(entry.variant, 8)
        olds = [] if new else self.variants(kh)
        for old_oid, tick, old in olds:
            # same variant, or the origin changed what it varies on: the old one goes
            if old_oid == oid or old.variant == entry.variant or old.vary != entry.vary:
                self.remove(old_oid, tick, old)
        size = entry.size
        if self.totals["bytes"] + size > self.s.max_bytes:
            self.make_room(size)
        txn, db = self.txn, self.db
        uh = kh if url == key else _h(url, 16)
        if olds or uh != kh:
            known = self.url_stored(uh)
        else:  # a new key that is its URL: only the URL index can name the URL yet
            known = self.s._url_rows is not False and self.has_prefix("url", uh)
        if not known:
            self.totals["urls"] += 1
        tick = self.next_tick()
        body = entry.body
        # the rows of every miss are put with positional arguments (dupdata, overwrite,
        # append, db): py-lmdb parses keywords per call, ~1.3k instructions a put
        put = txn.put
        put(tick, pack(oid, record, body, INLINE_BODY), True, True, True, self._obj)
        put(oid, tick, True, True, False, self._key)
        if len(body) > INLINE_BODY:
            txn.put(oid, body, db=db["body"])
        if uh != kh:
            txn.put(uh + kh, b"", db=db["url"])
            if self.s._url_rows is False:
                self.s._url_rows = True
        if entry.surrogate_keys:
            tags = db["tag"]
            for tag in entry.surrogate_keys:
                put(_h(tag, 16) + oid, b"", True, True, False, tags)
        self.totals["bytes"] += size
        self.totals["entries"] += 1
        if olds:  # workers may hold the key's other (or removed) variants
            self.invalid.append(key)

    def remove(self, oid: bytes, tick: bytes, record: StoreRecord) -> None:
        txn, db = self.txn, self.db
        txn.delete(tick, db=self._obj)
        txn.delete(oid, db=self._key)
        if record.size - 200 > INLINE_BODY:  # maybe a body of its own (size counts more than it)
            txn.delete(oid, db=db["body"])
        for tag in record.surrogate_keys:
            txn.delete(_h(tag, 16) + oid, db=db["tag"])
        kh = oid[:16]
        if not self.has_prefix("key", kh):
            uh = _h(record.url, 16)
            if uh != kh:
                txn.delete(uh + kh, db=db["url"])
            if not self.url_stored(uh):
                self.totals["urls"] -= 1
        self.totals["bytes"] -= record.size
        self.totals["entries"] -= 1
        self.invalid.append(record.key)

    def rewrite(self, tick: bytes, record: bytes) -> bool:
        """Replace the metadata of the object at ``tick`` (its body kept); False if gone."""
        value = self.txn.get(tick, db=self._obj)
        if value is None:
            return False
        self.txn.put(tick, repack(value, record), db=self._obj)
        return True

    def soften(self, tick: bytes, record: StoreRecord, now: float) -> None:
        """Soft purge: stale from now on (stale-while-revalidate / -if-error still apply)."""
        entry = decode(record, b"")
        entry.make_stale(now)
        self.rewrite(tick, encode(entry))
        self.invalid.append(record.key)

    def make_room(self, size: int) -> None:
        """Evict least recently used objects until ``size`` more bytes fit (``insert`` calls
        it only when they do not)."""
        limit = self.s.max_bytes
        cur = self.txn.cursor(db=self._obj)
        while self.totals["bytes"] + size > limit and cur.first():
            tick = bytes(cur.key())
            oid, record, _ = unpack(cur.value())
            self.remove(oid, tick, record)
            self.s.counters["evictions"] += 1

    def promote(self, oids: Iterator[bytes]) -> None:
        """Write the LRU notes: each object moves to a new, highest tick."""
        txn, key, obj = self.txn, self._key, self._obj
        for oid in oids:
            old = txn.get(oid, db=key)
            if old is None:
                continue
            value = txn.pop(old, db=obj)
            if value is None:
                continue
            tick = self.next_tick()
            txn.put(tick, value, db=obj, append=True)
            txn.put(oid, tick, db=key)

    def clear(self) -> int:
        n = self.totals["entries"]
        for name in ("key", "obj", "body", "url", "tag"):
            self.txn.drop(self.db[name], delete=False)
        self.totals.update(bytes=0, entries=0, urls=0)
        self.everything = True
        return n

    def finish(self) -> int:
        """Log the invalidations and write the totals; the new log position (0: none)."""
        txn = self.txn
        seq = 0
        if self.invalid or self.everything:
            seq = self.totals["seq"] = self.totals["seq"] + 1
            payload = b"*" if self.everything else marshal.dumps(sorted(set(self.invalid)))
            txn.put(u64(seq), payload, db=self.db["inval"])
            if seq > LOG_KEEP:
                cur = txn.cursor(db=self.db["inval"])
                while cur.first() and _U64.unpack(cur.key())[0] <= seq - LOG_KEEP:
                    cur.delete()
        if self.totals != self.start:
            txn.put(META["totals"], pack_totals(self.totals), db=self.db["meta"])
        return seq


class _BatchLeases:
    """The store's leases; one whose key has a store queued is released after its commit,
    so the process that waited for it finds the object."""

    def __init__(self, leases: FileLeases, store: SharedStore) -> None:
        self._leases = leases
        self._store = store
        self.held_elsewhere = leases.held_elsewhere

    def acquire(self, key: str) -> bool:
        if key in self._store._held:  # this process's store of it is queued: commit it first
            self._store.flush()
        return self._leases.acquire(key)

    def release(self, key: str) -> None:
        store = self._store
        if key in store._batch_keys:
            store._held.add(key)
        else:
            self._leases.release(key)


class SharedStore:
    """The lmdb store (``[cache] store = "lmdb"``); see the module doc."""

    def __init__(self, cfg: CacheConfig, path: Path, *, owner: bool = True, alone: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        """``alone``: this process is the only one serving from the store (a single-process
        node), so its own collapsing is node-wide and it takes no cross-process leases."""
        self.cfg = cfg
        self.clock = clock
        self.path = path
        self.keys = KeyBuilder(cfg.key)
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.files = StoreFiles(path, cfg.max_bytes, owner)
        self.env = self.files.env
        self._db = self.files.dbs
        self._file_leases = None if alone else FileLeases(self.files.leases_fd)
        #: keys a lookup found absent, in a single-process node (nothing but this process's
        #: own ``put`` can store one, and it forgets the key): a miss reads its key once,
        #: not once per lookup (the fast path's, the cache stage's, collapsing's recheck),
        #: and its store does not read it again
        self._absent: set[str] | None = set() if alone else None
        #: whether the URL index may have rows (only keys other than their URL add them:
        #: ``[cache.key] headers``); None when other processes write too (then it is read)
        self._url_rows: bool | None = self._has_url_rows() if alone else None
        self.leases = None if self._file_leases is None else _BatchLeases(self._file_leases, self)
        self._cell = self.files.generation.cell
        self._seen = self._cell[0]
        self._log_pos = self.files.seq()
        self._hot: dict[str, _Hot] = {}
        self._hot_bytes = 0
        self._hot_limit = cfg.hot_bytes
        #: object ids hit since the last flush (LRU promotions to write)
        self._pending: dict[bytes, None] = {}
        self._epoch = 0
        self._timer: asyncio.TimerHandle | None = None
        self._write_error: str | None = None
        self.errors = 0
        self._totals: dict[str, int] = {}
        #: stores queued in this loop pass (entry, encoded metadata, whether the key is known
        #: to have no variants), committed by ``flush``
        self._batch: list[tuple[Entry, bytes, bool]] = []
        self._batch_keys: set[str] = set()
        self._flush_handle: asyncio.Handle | None = None
        #: ``put``'s steps in C, on the lists and sets above (never rebound); it holds the
        #: byte bound and the end of a write failure's pause.  The instance's ``put`` is
        #: this queue (a miss's store is one C call, no frame); the class's ``put`` is its
        #: reference and its fallback
        self._queue = StoreQueue(Entry, encode, self._batch, self._batch_keys, self._absent,
                                 self._schedule, MethodType(SharedStore.put, self))
        self._queue.max_bytes = cfg.max_bytes
        self.put = self._queue
        #: keys whose lease is released once their queued store is committed
        self._held: set[str] = set()
        # a key read absent answered in C: ``lookup_lazy`` reads it there (hash, read
        # transaction, cursor, absent note), ``lookup`` answers a key known absent (with
        # other processes: only the one lookup after the read, in its flush epoch, so the
        # stage's lookup after the fast path's read does not read again, collapsing's
        # after its lease does); the methods below are its reference and answer the rest
        reader = Reader(self, SharedStore.lookup, SharedStore.lookup_lazy, _h, _ABSENT_KEPT, lmdb.Error)
        self.lookup, self.lookup_lazy = reader.lookup, reader.lookup_lazy

    @property
    def max_bytes(self) -> int:
        """The bound on the objects' bytes (lowered when the map fills up)."""
        return self._queue.max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        self._queue.max_bytes = value

    def _has_url_rows(self) -> bool:
        """Read once at open: a store written under another ``[cache.key]`` may have some."""
        with self.env.begin() as txn:
            return bool(txn.stat(self._db["url"])["entries"])

    # -- reading ---------------------------------------------------------------------------
    def lookup(self, key: str, req_headers: Headers) -> tuple[Entry | None, bool]:
        """The newest variant that matches the request, and whether any variant exists.

        A key a lookup found absent in a single-process node is absent until this
        process stores it (``put`` forgets it first): answered without ``_variants``, as
        the stage's lookup and collapsing's look again after the fast path's read."""
        absent = self._absent
        if absent is not None and key in absent:
            return None, False
        hot = self._variants(key)
        if hot is None:
            return None, False
        for entry in reversed(hot.entries):
            if entry.vary_matches(req_headers):
                return entry, True
        return None, True

    def lookup_lazy(self, key: str, fields: Callable[[], Headers]) -> Entry | None:
        """``lookup`` for the fast path: ``fields()`` only when a variant is chosen by Vary.

        A key kept hot, noted in this flush epoch, with nothing queued or changed by
        another process since, is ``_variants``' answer without its call (the usual hit)."""
        hot = self._hot.get(key) if not self._batch_keys and self._cell[0] == self._seen else None
        if hot is None or hot.epoch != self._epoch:
            hot = self._variants(key)
        if hot is None:
            return None
        entries = hot.entries
        if len(entries) == 1 and not entries[0].vary:
            return entries[0]
        return self.lookup(key, fields())[0]

    def fast_token(self, key: str) -> object | None:
        """The key's kept variants while ``lookup_lazy`` would answer them as they are (its
        shortcut's terms: nothing queued, no other process's change, noted in this flush
        epoch) and they are one variant without Vary; None otherwise.  A put, purge,
        eviction or another process's write replaces or drops them, so a caller holding
        the token from an earlier answer finds it changed (the cache stage's kept hits)."""
        hot = self._hot.get(key) if not self._batch_keys and self._cell[0] == self._seen else None
        return hot if hot is not None and hot.epoch == self._epoch and hot.single else None

    def newest(self, key: str) -> Entry | None:
        hot = self._variants(key)
        return hot.entries[-1] if hot is not None else None

    def _variants(self, key: str) -> _Hot | None:
        """The key's variants: kept ones unless another process changed the key since."""
        if self._batch_keys and key in self._batch_keys:
            self.flush()  # a store of the key is queued: commit it, then read
        if self._cell[0] != self._seen:
            self._sync()
        hot = self._hot.get(key)
        if hot is None:
            absent = self._absent
            if absent is not None and key in absent:
                return None
            hot = self._load(key)
            if hot is None:
                return None
        if hot.epoch != self._epoch:
            self._note(hot)
        return hot

    def _note(self, hot: _Hot) -> None:
        """A hit: promote the key's objects at the next flush (the hit path never writes)."""
        hot.epoch = self._epoch
        pending = self._pending
        for oid in hot.oids:
            pending[oid] = None
        if self._timer is None:
            self._arm()

    def _load(self, key: str) -> _Hot | None:
        """Read a key's variants; keep them decoded when they fit the hot memory."""
        kh = _h(key, 16)
        found: list[tuple[Entry, bytes]] = []
        try:
            with self.env.begin() as txn:
                cur = txn.cursor(db=self._db["key"])
                if not cur.set_range(kh) or cur.key()[:16] != kh:
                    self._remember_absent(key)
                    return None
                obj = self._db["obj"]
                for oid, tick in cur:
                    if oid[:16] != kh:
                        break
                    value = txn.get(tick, db=obj)
                    if value is None:
                        continue
                    _, record, body = unpack(value)
                    if record.key != key:  # a hash collision: not ours
                        continue
                    if body is None:
                        body = txn.get(oid, db=self._db["body"])  # the one copy of the body
                        if body is None:
                            continue
                    found.append((decode(record, bytes(body)), bytes(oid)))
        except lmdb.Error as exc:
            self._read_failed(exc)
            return None
        if not found:
            return None
        found.sort(key=lambda pair: pair[0].response_time)
        entries = [e for e, _ in found]
        hot = _Hot(entries, [oid for _, oid in found], sum(e.size + _HOT_OVERHEAD for e in entries))
        if hot.size <= self._hot_limit // _HOT_SHARE:
            self._keep(key, hot)
        return hot

    def _remember_absent(self, key: str) -> None:
        """In a single-process node: no row of the key's hash is stored (not merely none
        readable: a failed read or a hash collision is not remembered), so neither its
        next lookups nor its store (``_Txn.insert``) read the key's rows again."""
        absent = self._absent
        if absent is not None:
            if len(absent) >= _ABSENT_KEPT:
                absent.clear()
            absent.add(key)

    def _keep(self, key: str, hot: _Hot) -> None:
        self._hot[key] = hot
        self._hot_bytes += hot.size
        while self._hot_bytes > self._hot_limit and self._hot:
            old = next(iter(self._hot))  # first in, first out: a popular key comes back in one read
            self._drop(old)

    def _drop(self, key: str) -> None:
        hot = self._hot.pop(key, None)
        if hot is not None:
            self._hot_bytes -= hot.size

    def _sync(self) -> None:
        """Catch up with the invalidation log: drop every kept key changed since."""
        self._seen = self._cell[0]
        try:
            with self.env.begin() as txn:
                cur = txn.cursor(db=self._db["inval"])
                if not cur.set_range(u64(self._log_pos + 1)):
                    return
                first = True
                for k, payload in cur:
                    seq = _U64.unpack(k)[0]
                    if (first and seq != self._log_pos + 1) or payload == b"*":
                        self._hot.clear()  # records we never saw were pruned, or all purged
                        self._hot_bytes = 0
                    else:
                        for key in marshal.loads(payload):
                            self._drop(key)
                    first = False
                    self._log_pos = seq
        except lmdb.Error as exc:
            self._read_failed(exc)
            self._hot.clear()
            self._hot_bytes = 0

    # -- writing ---------------------------------------------------------------------------
    def _write(self, work: Callable[[_Txn], Any], default: Any) -> Any:
        """Run ``work`` in a write transaction of its own, after the queued stores commit
        (so a purge or refresh applies to them as it would have to stores made one by one)."""
        if self._batch:
            self.flush()
        return self._commit(work, default)

    def _commit(self, work: Callable[[_Txn], Any], default: Any) -> Any:
        """Run ``work`` in one write transaction (with this process's LRU notes), publish its
        invalidations; ``default`` when writes fail (the failure is logged and counted)."""
        if self._write_error is not None:
            if time.monotonic() < self._queue.retry_until:
                return default
            self._write_error = None
        pending, self._pending = self._pending, {}
        self._epoch += 1
        try:
            with self.env.begin(write=True) as txn:
                w = _Txn(self, txn)
                if pending:
                    w.promote(iter(pending))
                result = work(w)
                seq = w.finish()
        except lmdb.MapFullError:
            # more pages in use than the bytes accounted (indexes, pages kept for readers)
            self.max_bytes = max(self.cfg.max_object_bytes, int(self.max_bytes * 0.9))
            log.warning("cache store %s: map full, lowering the byte bound to %d", self.path,
                        self.max_bytes)
            self.errors += 1
            return default
        except lmdb.Error as exc:
            self._write_failed(exc)
            return default
        if w.everything:
            self._hot.clear()
            self._hot_bytes = 0
        for key in w.invalid:
            self._drop(key)
        if seq:
            self._publish(seq)
        return result

    def _publish(self, seq: int) -> None:
        cell = self._cell
        if cell[0] < seq:
            cell[0] = seq

    def _write_failed(self, exc: Exception) -> None:
        self.errors += 1
        self._write_error = str(exc)
        self._queue.retry_until = time.monotonic() + WRITE_RETRY
        log.error("cache store %s: write failed (%s); not storing new objects for %.0f s, "
                  "serving what is stored", self.path, exc, WRITE_RETRY)

    def _read_failed(self, exc: Exception) -> None:
        self.errors += 1
        log.error("cache store %s: read failed (%s); answering as a miss", self.path, exc)

    def put(self, entry: Entry) -> bool:
        """Queue a variant to store (or replace); False when it can never fit, cannot be
        encoded or writes are failing.

        Under an event loop the stores of one loop pass are committed together at the
        end of it (``flush``); without one, at once.  Until then this process's lookups
        of the key commit first, and a collapsing lease on it is held.

        (A store's ``put`` is ``_queue``, the same steps in C; this is their reference,
        and what it hands an entry the C encoder refuses.)"""
        if entry.size > self.max_bytes:
            return False
        if time.monotonic() < self._queue.retry_until:
            return False
        try:
            record = encode(entry)
        except ValueError:  # a field the codec cannot write
            log.exception("cache entry for %s cannot be stored", entry.url)
            return False
        absent = self._absent
        new = absent is not None and entry.key in absent
        if new:
            absent.discard(entry.key)
        self._batch.append((entry, record, new))
        self._batch_keys.add(entry.key)
        if len(self._batch) == 1:
            return self._schedule()
        return True

    def _schedule(self) -> bool:
        """The pass's first store: commit the batch when the pass ends (at once without
        an event loop); ``put``'s answer."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (tools, tests): commit now
            return self.flush() > 0
        self._flush_handle = loop.call_soon(self.flush)
        return True

    def queued(self) -> bool:
        """Stores wait for this loop pass's commit (``flush``)."""
        return bool(self._batch)

    def queue(self) -> list[tuple[Entry, bytes, bool]]:
        """The queued stores' list itself, cleared in place by ``flush`` and never
        rebound: the front end's flush per loop pass reads its emptiness without a call
        (``Batch.queue``)."""
        return self._batch

    def flush(self) -> int:
        """Commit the queued stores in one transaction; how many were stored.

        LMDB commits a transaction whole or not at all, so a crash leaves every queued
        object either stored with all its records or absent.  When the batch's
        transaction fails, each object is retried in a transaction of its own, so one that
        cannot be stored loses no other.  Leases held for the batch's keys are released
        once it is committed (or given up), so another process that waited for one finds
        the object."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        batch = self._batch.copy()
        self._batch.clear()  # in place: ``queue``'s readers and ``_queue`` keep the list
        keys = self._batch_keys.copy()
        self._batch_keys.clear()  # (``_queue`` keeps the set)
        stored = 0
        try:
            if batch:
                stored = self._commit_batch(batch)
                if stored < 0 and len(batch) > 1:
                    stored = sum(max(0, self._commit_batch([one])) for one in batch)
                stored = max(0, stored)
                self.counters["stored"] += stored
        finally:
            if self._held:
                for key in keys & self._held:
                    self._held.discard(key)
                    assert self._file_leases is not None
                    self._file_leases.release(key)
        return stored

    def _commit_batch(self, batch: list[tuple[Entry, bytes, bool]]) -> int:
        """Store ``batch`` in one transaction: its size, or -1 when that failed."""
        def work(w: _Txn) -> int:
            w.insert_all(batch)
            return len(batch)

        try:
            return int(self._commit(work, -1))
        except Exception:  # a transaction that raised was aborted: nothing of it is stored
            log.exception("cache store %s: storing %d objects failed", self.path, len(batch))
            self.errors += 1
            return -1

    def refresh(self, entry: Entry) -> None:
        """Write back a 304's update of ``entry`` (unless it was removed meanwhile)."""
        oid = _oid(entry.key, entry.variant)

        def work(w: _Txn) -> None:
            tick = w.txn.get(oid, db=w.db["key"])
            if tick is not None and w.rewrite(bytes(tick), encode(entry)):
                w.invalid.append(entry.key)

        self._write(work, None)

    # -- purge -----------------------------------------------------------------------------
    def _purge(self, find: Callable[[_Txn], list[tuple[bytes, bytes, StoreRecord]]],
               soft: bool) -> int:
        now = self.clock()

        def work(w: _Txn) -> int:
            found = find(w)
            for oid, tick, record in found:
                if soft:
                    w.soften(tick, record, now)
                else:
                    w.remove(oid, tick, record)
            return len(found)

        n = self._write(work, 0)
        self.counters["purged"] += n
        return n

    def purge_url(self, url: str, soft: bool = False) -> int:
        """Every variant stored for ``url`` (GET and HEAD share it); returns how many: the
        objects whose key is the URL, and those of the keys the URL index names for it."""
        uh = _h(self.keys.normalise_url(url), 16)

        def find(w: _Txn) -> list[tuple[bytes, bytes, StoreRecord]]:
            found = {oid: (oid, tick, r) for kh in [uh, *w.prefixed("url", uh)]
                     for oid, tick, r in w.variants(kh)}
            return list(found.values())

        return self._purge(find, soft)

    def purge_keys(self, keys: list[str], soft: bool = False) -> int:
        """Every object tagged with any of the Surrogate-Key ``keys``."""
        def find(w: _Txn) -> list[tuple[bytes, bytes, StoreRecord]]:
            oids = {oid for tag in keys for oid in w.prefixed("tag", _h(tag, 16))}
            out = []
            for oid in sorted(oids):
                found = w.object(oid)
                if found is not None:
                    out.append((oid, *found))
            return out

        return self._purge(find, soft)

    def purge_all(self, soft: bool = False) -> int:
        if soft:
            def every(w: _Txn) -> list[tuple[bytes, bytes, StoreRecord]]:
                out = []
                for tick, value in w.txn.cursor(db=w.db["obj"]):
                    oid, record, _ = unpack(value)
                    out.append((oid, bytes(tick), record))
                return out

            return self._purge(every, True)
        n = self._write(lambda w: w.clear(), 0)
        self.counters["purged"] += n
        return n

    # -- upkeep ----------------------------------------------------------------------------
    def _arm(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: notes are written with this process's next write
        self._timer = loop.call_later(FLUSH_INTERVAL, self._tick)

    def _tick(self) -> None:
        """Once a second: write this process's LRU notes, catch up with the log."""
        self._timer = None
        if self.files.env is None:
            return
        if self._batch:
            self.flush()  # the notes go with the queued stores
        elif self._pending:
            self._commit(lambda w: None, None)
        else:
            self._epoch += 1
        if self.files.seq() != self._log_pos:  # a writer died between commit and publish
            self._sync()
        self._arm()

    def check_readers(self) -> int:
        """Free the reader slots of dead processes (a worker killed inside a read), so
        the pages they pinned can be reused; returns how many were freed."""
        return int(self.env.reader_check()) if self.files.env is not None else 0

    def stats(self) -> dict[str, Any]:
        """Node-wide store figures and this process's counters and hot memory."""
        if self._batch:
            self.flush()
        totals = self._totals
        if self.files.env is not None:  # once closed: the figures it had then
            try:
                with self.env.begin() as txn:
                    found = read_totals(txn, self._db["meta"])
                totals = {name: found[name] for name in ("bytes", "entries", "urls")}
            except lmdb.Error as exc:
                self._read_failed(exc)
            self._totals = totals
        state = "ok" if self._write_error is None else f"writes failing: {self._write_error}"
        return {**self.counters, **totals, "max_bytes": self.cfg.max_bytes, "store": "lmdb",
                "path": str(self.path), "state": state, "errors": self.errors,
                "hot_entries": sum(len(h.entries) for h in self._hot.values()),
                "hot_bytes": self._hot_bytes}

    def close(self) -> None:
        if self.files.env is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()
        if self._pending:
            self._commit(lambda w: None, None)
        self.stats()
        self._hot.clear()
        self._hot_bytes = 0
        self.files.close()
