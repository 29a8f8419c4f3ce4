"""A single-process node's store of a key it read absent: the key's rows are not read
again, so what that skips must hold: the key really had no rows, a second store of it
replaces the first, and the URL count stays right when an older configuration left URL
index rows behind."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from multidict import CIMultiDict

from edgenode.cache import lmdb_store
from edgenode.cache.lmdb_store import SharedStore
from edgenode.cache.policy import build_entry
from edgenode.config import CacheConfig

from tests.cache.test_lmdb_store import entry

URL = "http://example.com/a"


def _rows(store: SharedStore) -> dict[str, int]:
    with store.env.begin() as txn:
        return {name: txn.stat(store.files.dbs[name])["entries"] for name in ("key", "obj", "url")}


async def test_a_key_read_absent_is_stored_without_reading_its_rows(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    reads: list[bytes] = []
    variants = lmdb_store._Txn.variants

    def counted(self: lmdb_store._Txn, kh: bytes) -> list[tuple[bytes, bytes, object]]:
        reads.append(kh)
        return variants(self, kh)  # type: ignore[return-value]

    monkeypatch.setattr(lmdb_store._Txn, "variants", counted)
    try:
        assert store.lookup(URL, CIMultiDict()) == (None, False)
        assert store.put(entry("/a", b"one", at=time.time()))
        await asyncio.sleep(0)
        assert reads == []  # read absent, stored nothing since: its rows not read again
        assert store.put(entry("/a", b"two", at=time.time()))  # a replacement reads them
        await asyncio.sleep(0)
        assert len(reads) == 1
        found, _ = store.lookup(URL, CIMultiDict())
        assert found is not None and found.body == b"two"
        assert _rows(store) == {"key": 1, "obj": 1, "url": 0}
        stats = store.stats()
        assert stats["entries"] == 1 and stats["urls"] == 1 and stats["bytes"] == found.size
    finally:
        store.close()


async def test_two_stores_of_an_absent_key_in_one_pass_leave_one_object(tmp_path: Path) -> None:
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    try:
        assert store.lookup(URL, CIMultiDict()) == (None, False)
        assert store.put(entry("/a", b"one", at=time.time()))
        assert store.put(entry("/a", b"two", at=time.time()))
        await asyncio.sleep(0)
        assert _rows(store) == {"key": 1, "obj": 1, "url": 0}
        assert store.stats()["entries"] == 1
        assert store.lookup(URL, CIMultiDict())[0].body == b"two"  # type: ignore[union-attr]
    finally:
        store.close()


def test_url_index_rows_left_by_another_configuration_still_count(tmp_path: Path) -> None:
    """A key other than its URL (``[cache.key] headers``) left a URL index row: a later
    node keyed by the URL alone stores that URL as a key without counting it twice."""
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    e = build_entry(key=URL + "\nx-device:mobile", url=URL, status=200, reason="OK",
                    resp_headers=CIMultiDict({"Cache-Control": "max-age=60"}), body=b"k",
                    req_headers=CIMultiDict(), request_time=time.time(), response_time=time.time(),
                    heuristic_fraction=0.1, heuristic_max=86400)
    assert store.put(e)
    store.close()
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    try:
        assert store.lookup(URL, CIMultiDict()) == (None, False)
        assert store.put(entry("/a", b"one", at=time.time()))
        assert store.stats()["urls"] == 1 and store.stats()["entries"] == 2
        assert store.put(entry("/b", b"two", at=time.time()))
        assert store.stats()["urls"] == 2
    finally:
        store.close()


def count_variant_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys ``SharedStore._variants`` reads from now on, in order (the store's reads)."""
    calls: list[str] = []
    variants = SharedStore._variants

    def counted(self: SharedStore, key: str) -> object:
        calls.append(key)
        return variants(self, key)

    monkeypatch.setattr(SharedStore, "_variants", counted)
    return calls


async def test_a_key_read_absent_is_looked_up_again_without_a_read(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The stage's lookup and collapsing's look again after the fast path's read: a key
    read absent answers them from memory until this process stores it, then is read."""
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    calls = count_variant_reads(monkeypatch)
    try:
        assert store.lookup(URL, CIMultiDict()) == (None, False)
        assert calls == [URL]
        assert store.lookup(URL, CIMultiDict()) == (None, False)
        assert store.lookup(URL, CIMultiDict()) == (None, False)
        assert calls == [URL]  # answered from the absent key, not read again
        assert store.put(entry("/a", b"one", at=time.time()))
        found, any_variant = store.lookup(URL, CIMultiDict())  # queued: committed, then read
        assert found is not None and found.body == b"one" and any_variant
        assert calls == [URL, URL]
    finally:
        store.close()


async def test_with_other_processes_every_lookup_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another worker may store the key at any time: a lookup reads the store each time."""
    store = SharedStore(CacheConfig(), tmp_path / "c")
    calls = count_variant_reads(monkeypatch)
    try:
        assert store.lookup(URL, CIMultiDict()) == (None, False)
        assert store.lookup(URL, CIMultiDict()) == (None, False)
        assert calls == [URL, URL]
    finally:
        store.close()
