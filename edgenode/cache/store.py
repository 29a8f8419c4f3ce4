"""Cache stores: the interface the cache stage uses, and the in-memory store.

One URL key holds several variants (one per distinct set of values of the request
fields named by the response's Vary).  Each variant is an LRU item sized by its body
plus an estimate of its headers, so ``max_bytes`` bounds what the cache holds.
Surrogate-Key members are indexed so a purge by key finds every object tagged with it.
A soft purge marks entries stale instead of removing them: stale-while-revalidate and
stale-if-error still apply and the next request revalidates.

Two stores implement :class:`Store` with the same semantics: :class:`CacheStore`
(this module: one process's memory, for tests and tiny setups) and
``lmdb_store.SharedStore`` (one store for every worker of a node, kept across
restarts).  ``store_open.open_store`` picks one from ``[cache] store``.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Protocol

from cachetools import LRUCache

from edgenode.cache.key import KeyBuilder
from edgenode.cache.policy import Entry, Headers
from edgenode.config import CacheConfig

__all__ = ["CacheStore", "MemoryStore", "Store", "Leases", "purge_store", "COUNTERS"]


#: per-process tallies every store keeps in ``counters`` (the stage increments most)
COUNTERS = ("hits", "misses", "stale", "revalidations", "collapsed", "stored", "uncacheable",
            "bypass", "evictions", "purged")


class Leases(Protocol):
    """Node-wide leases on cache keys: one origin fetch per key across processes."""

    def acquire(self, key: str) -> bool:
        """Take the lease on ``key`` without waiting; False when another process holds it."""
        ...

    def release(self, key: str) -> None: ...

    def held_elsewhere(self, key: str) -> bool:
        """Whether another process holds the lease on ``key`` right now."""
        ...


class Store(Protocol):
    """What the cache stage (and the purge API) needs from a store."""

    cfg: CacheConfig
    keys: KeyBuilder
    clock: Callable[[], float]
    #: per-process counters read by stats() and the metrics collector
    counters: dict[str, int]
    #: cross-process leases for request collapsing (None: this process is the node)
    leases: Leases | None

    def lookup(self, key: str, req_headers: Headers) -> tuple[Entry | None, bool]: ...

    def lookup_lazy(self, key: str, fields: Callable[[], Headers]) -> Entry | None: ...

    def fast_token(self, key: str) -> object | None:
        """An object that stays the same (``is``) while the key's one variant without Vary
        is ``lookup_lazy``'s answer with nothing left to do (no LRU touch, no read), and
        changes when it no longer is; None when the store cannot vouch for that now."""
        ...

    def newest(self, key: str) -> Entry | None:
        """The most recently stored variant of ``key`` (a collapsed waiter's answer)."""
        ...

    def put(self, entry: Entry) -> bool: ...

    def refresh(self, entry: Entry) -> None:
        """``entry`` (from lookup) was updated in place by a 304: keep the update."""
        ...

    def purge_url(self, url: str, soft: bool = False) -> int: ...

    def purge_keys(self, keys: list[str], soft: bool = False) -> int: ...

    def purge_all(self, soft: bool = False) -> int: ...

    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class _LRU(LRUCache):
    """LRUCache that reports what it evicts (to keep the indexes in step)."""

    def __init__(self, maxsize: int, on_evict: Callable[[Entry], None]) -> None:
        super().__init__(maxsize, getsizeof=_size)
        self._on_evict = on_evict

    def popitem(self):  # type: ignore[no-untyped-def]
        key, entry = super().popitem()
        self._on_evict(entry)
        return key, entry


def _size(entry: Entry) -> int:
    return entry.size


class CacheStore:
    """The in-memory store: one process's byte-bounded LRU, and the purge API."""

    leases: Leases | None = None

    def __init__(self, cfg: CacheConfig, clock: Callable[[], float] = time.time,
                 max_bytes: int | None = None) -> None:
        self.cfg = cfg
        self.clock = clock
        #: this process's share of ``cfg.max_bytes`` (workers split it: the bound is node-wide)
        self.max_bytes = cfg.max_bytes if max_bytes is None else max_bytes
        self.keys = KeyBuilder(cfg.key)
        self._lru = _LRU(self.max_bytes, self._evicted)
        #: key -> variant signature -> entry (most recently stored last)
        self._variants: dict[str, dict[str, Entry]] = {}
        #: normalised URL -> keys (several when [cache.key] headers add values)
        self._urls: dict[str, set[str]] = {}
        #: surrogate key -> {(key, variant)}
        self._tags: dict[str, set[tuple[str, str]]] = {}
        #: counters read by stats() and the metrics collector; the stage increments them
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)

    # -- lookup and store -------------------------------------------------------------
    def lookup(self, key: str, req_headers: Headers) -> tuple[Entry | None, bool]:
        """The newest variant that matches the request, and whether any variant exists."""
        variants = self._variants.get(key)
        if not variants:
            return None, False
        if len(variants) == 1:
            entry = next(iter(variants.values()))
            if not entry.vary or entry.vary_matches(req_headers):
                self._lru[(key, entry.variant)]  # LRU touch
                return entry, True
            return None, True
        for entry in reversed(list(variants.values())):
            if entry.vary_matches(req_headers):
                self._lru[(key, entry.variant)]
                return entry, True
        return None, True

    def lookup_lazy(self, key: str, fields: Callable[[], Headers]) -> Entry | None:
        """``lookup`` for the fast path: ``fields()`` (the request's header fields) is only
        built when the key holds a variant chosen by Vary."""
        variants = self._variants.get(key)
        if not variants:
            return None
        if len(variants) == 1:
            entry = next(iter(variants.values()))
            if not entry.vary:
                self._lru[(key, entry.variant)]  # LRU touch
                return entry
        return self.lookup(key, fields())[0]

    def fast_token(self, key: str) -> object | None:
        """None: a hit here touches the LRU, and a soft purge changes an entry in place."""
        return None

    def newest(self, key: str) -> Entry | None:
        variants = self._variants.get(key)
        return next(reversed(variants.values())) if variants else None

    def put(self, entry: Entry) -> bool:
        """Store (or replace) a variant; False when it can never fit."""
        if entry.size > self.max_bytes:
            return False
        variants = self._variants.get(entry.key)
        if variants:
            for old in list(variants.values()):
                # same variant, or the origin changed what it varies on: the old one goes
                if old.variant == entry.variant or old.vary != entry.vary:
                    self._remove(old)
        self._lru[(entry.key, entry.variant)] = entry
        self._variants.setdefault(entry.key, {})[entry.variant] = entry
        self._urls.setdefault(entry.url, set()).add(entry.key)
        for tag in entry.surrogate_keys:
            self._tags.setdefault(tag, set()).add((entry.key, entry.variant))
        self.counters["stored"] += 1
        return True

    def refresh(self, entry: Entry) -> None:
        """Nothing to do: the stored object is the one the 304 updated."""

    def _unindex(self, entry: Entry) -> None:
        variants = self._variants.get(entry.key)
        if variants is not None and variants.get(entry.variant) is entry:
            del variants[entry.variant]
            if not variants:
                del self._variants[entry.key]
                keys = self._urls.get(entry.url)
                if keys is not None:
                    keys.discard(entry.key)
                    if not keys:
                        del self._urls[entry.url]
        for tag in entry.surrogate_keys:
            members = self._tags.get(tag)
            if members is not None:
                members.discard((entry.key, entry.variant))
                if not members:
                    del self._tags[tag]

    def _remove(self, entry: Entry) -> None:
        lru_key = (entry.key, entry.variant)
        if self._lru.get(lru_key) is entry:
            del self._lru[lru_key]
        self._unindex(entry)

    def _evicted(self, entry: Entry) -> None:
        self.counters["evictions"] += 1
        self._unindex(entry)

    # -- purge (admin API, worker fan-out) ------------------------------------------------
    def _purge(self, entries: list[Entry], soft: bool) -> int:
        now = self.clock()
        for entry in entries:
            if soft:
                entry.make_stale(now)
            else:
                self._remove(entry)
        self.counters["purged"] += len(entries)
        return len(entries)

    def purge_url(self, url: str, soft: bool = False) -> int:
        """Every variant stored for ``url`` (GET and HEAD share it); returns how many."""
        keys = self._urls.get(self.keys.normalise_url(url), ())
        return self._purge([e for k in list(keys) for e in self._variants.get(k, {}).values()], soft)

    def purge_keys(self, keys: list[str], soft: bool = False) -> int:
        """Every object tagged with any of the Surrogate-Key ``keys``."""
        found: dict[int, Entry] = {}
        for tag in keys:
            for key, variant in self._tags.get(tag, ()):
                entry = self._variants.get(key, {}).get(variant)
                if entry is not None:
                    found[id(entry)] = entry
        return self._purge(list(found.values()), soft)

    def purge_all(self, soft: bool = False) -> int:
        return self._purge([e for v in list(self._variants.values()) for e in v.values()], soft)

    def stats(self) -> dict[str, Any]:
        return {**self.counters, "entries": len(self._lru), "bytes": int(self._lru.currsize),
                "max_bytes": self.max_bytes, "urls": len(self._urls), "store": "memory"}

    def close(self) -> None:
        """Nothing to release."""


MemoryStore = CacheStore


def purge_store(store: Store, kind: str, values: list[str], soft: bool) -> int:
    """The admin API's purge (``kind``: "url", "key" or "all") on ``store``."""
    if kind == "url":
        return sum(store.purge_url(url, soft=soft) for url in values)
    if kind == "key":
        return store.purge_keys(values, soft=soft)
    if kind == "all":
        return store.purge_all(soft=soft)
    raise ValueError(f"unknown purge kind {kind!r}")
