"""The store's lookups answered in C (``_key.Reader``: a key read absent) equal the Python
methods they stand in front of (``SharedStore.lookup``, ``lookup_lazy``: the reference):
present (kept and not), absent, Vary, queued, another worker's write, a failed read, and
the key's hash is the one the store writes under."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import lmdb
import pytest
from multidict import CIMultiDict

from edgenode.cache import lmdb_store
from edgenode.cache._key import Reader
from edgenode.cache.lmdb_store import SharedStore
from edgenode.cache.policy import Entry, build_entry
from edgenode.config import CacheConfig

from tests.cache.test_lmdb_absent import count_variant_reads
from tests.cache.test_lmdb_store import Peer, entry

BASE = "http://example.com"


def _answer(found: Entry | None) -> bytes | None:
    return None if found is None else found.body


def _both_lazy(store: SharedStore, key: str, fields: CIMultiDict[str]) -> bytes | None:
    """``lookup_lazy``'s answer, the C one checked against the reference's."""
    native = _answer(store.lookup_lazy(key, lambda: fields))
    assert native == _answer(SharedStore.lookup_lazy(store, key, lambda: fields)), key
    return native


def _both(store: SharedStore, key: str, fields: CIMultiDict[str]) -> tuple[bytes | None, bool]:
    found, any_variant = store.lookup(key, fields)
    ref, ref_any = SharedStore.lookup(store, key, fields)
    assert (_answer(found), any_variant) == (_answer(ref), ref_any), key
    return _answer(found), any_variant


def _varied(path: str, lang: str) -> Entry:
    url = BASE + path
    return build_entry(key=url, url=url, status=200, reason="OK",
                       resp_headers=CIMultiDict({"Cache-Control": "max-age=60", "Vary": "Accept-Language"}),
                       body=lang.encode(), req_headers=CIMultiDict({"Accept-Language": lang}),
                       request_time=time.time(), response_time=time.time(), heuristic_fraction=0.1,
                       heuristic_max=86400)


@pytest.mark.parametrize("alone", [True, False])
async def test_c_lookups_equal_the_python_ones(tmp_path: Path, alone: bool) -> None:
    store = SharedStore(CacheConfig(hot_bytes=4096), tmp_path / "c", alone=alone)
    try:
        none = CIMultiDict[str]()
        assert store.lookup_lazy != SharedStore.lookup_lazy.__get__(store)  # the C one is installed
        assert _both_lazy(store, BASE + "/a", none) is None  # absent
        assert _both(store, BASE + "/a", none) == (None, False)
        assert store.put(entry("/a", b"one", at=time.time()))
        assert _both_lazy(store, BASE + "/a", none) == b"one"  # queued: committed, then read
        assert store.put(entry("/big", b"b" * 8192, at=time.time()))  # too large to keep hot
        store.flush()
        assert BASE + "/big" not in store._hot
        assert _both_lazy(store, BASE + "/big", none) == b"b" * 8192  # stored, not kept
        assert _both(store, BASE + "/big", none) == (b"b" * 8192, True)
        assert store.put(_varied("/v", "de")) and store.put(_varied("/v", "fr"))
        store.flush()
        store._hot.clear()
        fr = CIMultiDict({"Accept-Language": "fr"})
        assert _both_lazy(store, BASE + "/v", fr) == b"fr"
        assert _both_lazy(store, BASE + "/v", CIMultiDict({"Accept-Language": "it"})) is None
        assert _both(store, BASE + "/v", CIMultiDict({"Accept-Language": "it"})) == (None, True)
        # a key sharing no hash prefix with any stored one, and one that is a stored key's prefix
        assert _both_lazy(store, BASE + "/", none) is None and _both_lazy(store, BASE + "/v/", none) is None
        assert _both_lazy(store, BASE + "/ü€", none) is None
        assert store.put(entry("/ü€", b"text", at=time.time()))
        store.flush()
        store._hot.clear()
        assert _both_lazy(store, BASE + "/ü€", none) == b"text"
    finally:
        store.close()


async def test_a_key_read_absent_in_c_is_remembered_and_hashed_as_stored(tmp_path: Path) -> None:
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    try:
        key = BASE + "/new"
        assert store.lookup_lazy(key, CIMultiDict) is None
        assert store._absent == {key}  # later lookups and the store do not read it again
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        assert lmdb_store._HASHES[16][key] == digest == lmdb_store._h(key, 16)
        assert store.put(entry("/new", b"one", at=time.time()))
        assert store._absent == set()
        assert _answer(store.lookup_lazy(key, CIMultiDict)) == b"one"
    finally:
        store.close()


def test_c_hashes_equal_the_python_ones() -> None:
    texts = ["", "a", "http://example.com/ü€", "\ud800 surrogate", "obj-bench", "é" * 64, "€" * 43]
    texts += ["x" * n for n in (1, 63, 64, 127, 128, 129, 255, 256, 257, 1000)]
    for size in (16, 8):
        for text in texts:
            lmdb_store._HASHES[size].clear()
            native = lmdb_store._h(text, size)
            assert lmdb_store._HASHES[size][text] == native  # remembered
            lmdb_store._HASHES[size].clear()
            assert native == lmdb_store._py_h(text, size) == hashlib.blake2b(
                text.encode("utf-8", "surrogatepass"), digest_size=size).digest()
            assert lmdb_store._h(text, size) == native  # from the memo
    memo = lmdb_store._HASHES[16]
    memo.clear()
    for i in range(lmdb_store._HASHES_KEPT + 1):
        lmdb_store._h(str(i), 16)
    assert len(memo) == 1  # cleared when full, as Python's
    with pytest.raises(KeyError):
        lmdb_store._h("a", 32)  # (Python's answer for another size)


def test_another_workers_write_is_seen(tmp_path: Path) -> None:
    store = SharedStore(CacheConfig(), tmp_path / "c")
    peer = Peer(tmp_path / "c")
    try:
        key = BASE + "/a"
        assert store.lookup_lazy(key, CIMultiDict) is None and store._absent is None
        assert peer.ask("put", "/a") == "ok"
        assert _answer(store.lookup_lazy(key, CIMultiDict)) == b"peer"
        assert _both(store, key, CIMultiDict()) == (b"peer", True)
    finally:
        peer.close()
        store.close()


async def test_with_other_workers_the_read_answers_the_one_lookup_after_it(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path's read of an absent key answers the stage's lookup that follows (same
    flush epoch, nothing queued for it); the next one (collapsing's, after its lease)
    reads the store, and finds what another worker stored meanwhile."""
    store = SharedStore(CacheConfig(), tmp_path / "c")
    peer = Peer(tmp_path / "c")
    calls = count_variant_reads(monkeypatch)
    try:
        key, none = BASE + "/a", CIMultiDict[str]()
        assert store.lookup_lazy(key, CIMultiDict) is None
        assert peer.ask("put", "/a") == "ok"
        assert store.lookup(key, none) == (None, False) and calls == []  # the stage's: the read's answer
        found, _ = store.lookup(key, none)  # collapsing's: read
        assert _answer(found) == b"peer" and calls == [key]
        # a note outlives no flush epoch, and no store of the key queued since
        other = BASE + "/b"
        assert store.lookup_lazy(other, CIMultiDict) is None
        assert store.put(entry("/c", b"c", at=time.time()))
        store.flush()
        assert store.lookup(other, none) == (None, False) and calls == [key, other]
        assert store.lookup_lazy(BASE + "/d", CIMultiDict) is None
        assert store.put(entry("/d", b"d", at=time.time()))
        assert _answer(store.lookup(BASE + "/d", none)[0]) == b"d"
    finally:
        peer.close()
        store.close()


class _FailingEnv:
    """An environment whose reads fail (as a full reader table or an I/O error does)."""

    def begin(self) -> object:
        raise lmdb.ReadersFullError("no reader slot")


def test_a_failed_read_is_reported_by_python(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    env, store.env = store.env, _FailingEnv()  # type: ignore[assignment]
    try:
        reader = Reader(store, SharedStore.lookup, SharedStore.lookup_lazy, lmdb_store._h, 64, lmdb.Error)
        assert reader.lookup_lazy(BASE + "/a", CIMultiDict) is None
        assert store.errors == 1 and "read failed" in caplog.text  # Python read it again, and said so
        assert store._absent == set()  # not known absent: not remembered
    finally:
        store.env = env
        store.close()
