"""The lmdb store's batched writes: the stores of one event-loop pass are one transaction.

What batching must not change: a collapsed waiter and another process find what was
stored (the latter once it is committed, which a lease on the key waits for), a purge
applies to stores queued before it, a failing object loses no other, and a process that
dies with stores queued leaves the store as it was.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import lmdb
import pytest
from multidict import CIMultiDict

from edgenode.cache import lmdb_store
from edgenode.cache.lmdb_store import SharedStore
from edgenode.config import CacheConfig

from tests.cache.test_lmdb_store import REPO, Peer, entry


def _txn_id(store: SharedStore) -> int:
    return int(store.env.info()["last_txnid"])


async def test_one_pass_of_stores_is_one_transaction_seen_by_another_process(tmp_path: Path) -> None:
    store = SharedStore(CacheConfig(), tmp_path / "c")
    peer = Peer(tmp_path / "c")
    try:
        before = _txn_id(store)
        assert store.put(entry("/a", b"one", at=time.time()))
        assert store.put(entry("/b", b"two", at=time.time()))
        # queued: not committed yet, so no other process sees them
        assert _txn_id(store) == before
        assert peer.ask("get", "http://example.com/a") == "none"
        await asyncio.sleep(0)  # the loop pass ends: one commit for both
        assert _txn_id(store) == before + 1
        assert peer.ask("get", "http://example.com/a") == "one"
        assert peer.ask("get", "http://example.com/b") == "two"
        assert store.stats()["stored"] == 2 and store.stats()["entries"] == 2
    finally:
        peer.close()
        store.close()


async def test_this_process_reads_a_queued_key_after_committing_it(tmp_path: Path) -> None:
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    try:
        before = _txn_id(store)
        store.put(entry("/a", b"one", at=time.time()))
        store.put(entry("/b", b"two", at=time.time()))
        found, _ = store.lookup("http://example.com/a", CIMultiDict())
        assert found is not None and found.body == b"one"
        assert _txn_id(store) == before + 1  # the lookup committed the whole queue once
        await asyncio.sleep(0)
        assert _txn_id(store) == before + 1  # nothing left for the end of the pass
    finally:
        store.close()


async def test_a_lease_on_a_queued_key_is_released_after_its_commit(tmp_path: Path) -> None:
    """A worker waiting on another's lease reads the store once the lease is free: the
    object must be committed by then."""
    store = SharedStore(CacheConfig(), tmp_path / "c", owner=True, alone=False)
    peer = Peer(tmp_path / "c")
    key = "http://example.com/a"
    try:
        assert store.leases is not None and store.leases.acquire(key)
        store.put(entry("/a", b"one", at=time.time()))
        store.leases.release(key)  # the leader is done: held until the commit
        assert peer.ask("lease", key) == "False"
        await asyncio.sleep(0)
        assert peer.ask("lease", key) == "True"
        assert peer.ask("get", key) == "one"
        assert peer.ask("release", key) == "ok"
        # a lease on a key with nothing queued is released at once
        assert store.leases.acquire("http://example.com/b")
        store.leases.release("http://example.com/b")
        assert peer.ask("lease", "http://example.com/b") == "True"
    finally:
        peer.close()
        store.close()


@pytest.mark.parametrize("make_store", ["lmdb"], indirect=True)  # batching is the lmdb store's
async def test_a_collapsed_waiter_and_a_peer_get_the_batched_entry(make_harness, origin) -> None:
    """Waiters get the leader's entry; another process finds it committed after the pass."""
    h = make_harness()
    assert isinstance(h.store, SharedStore)
    origin.route("/c", body=b"collapsed", cache_control="max-age=60")
    results = await asyncio.gather(*(h.send("/c") for _ in range(4)))
    assert sorted(r.headers["X-Cache"] for r, _, _ in results) == ["COLLAPSED"] * 3 + ["MISS"]
    assert all(body == b"collapsed" for _, body, _ in results)
    assert origin.hits["/c"] == 1
    await asyncio.sleep(0)
    peer = Peer(h.store.path)
    try:
        assert peer.ask("get", "http://example.com/c") == "collapsed"
    finally:
        peer.close()


async def test_a_purge_applies_to_stores_queued_before_it(tmp_path: Path) -> None:
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    try:
        store.put(entry("/a", b"one", at=time.time(), Surrogate_Key="grp"))
        store.put(entry("/b", b"two", at=time.time()))
        assert store.purge_keys(["grp"]) == 1  # the queue is committed first, then purged
        store.put(entry("/c", b"three", at=time.time()))
        assert store.purge_url("http://example.com/c") == 1
        store.put(entry("/c", b"again", at=time.time()))  # stored after the purge: kept
        await asyncio.sleep(0)
        assert store.lookup("http://example.com/a", CIMultiDict())[0] is None
        assert store.lookup("http://example.com/b", CIMultiDict())[0] is not None
        again = store.lookup("http://example.com/c", CIMultiDict())[0]
        assert again is not None and again.body == b"again"
        assert store.stats()["entries"] == 2
    finally:
        store.close()


async def test_an_object_that_fails_loses_no_other(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch's transaction is aborted whole; each object is then retried alone."""
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    insert = lmdb_store._Txn.insert

    def failing(self: lmdb_store._Txn, e: object, record: bytes, new: bool = False) -> None:
        if getattr(e, "url", "").endswith("/bad"):
            raise RuntimeError("cannot store this one")
        insert(self, e, record, new)  # type: ignore[arg-type]

    monkeypatch.setattr(lmdb_store._Txn, "insert", failing)
    try:
        for path in ("/a", "/bad", "/b"):
            assert store.put(entry(path, at=time.time()))
        await asyncio.sleep(0)
        assert store.lookup("http://example.com/a", CIMultiDict())[0] is not None
        assert store.lookup("http://example.com/b", CIMultiDict())[0] is not None
        assert store.lookup("http://example.com/bad", CIMultiDict())[0] is None
        stats = store.stats()
        assert stats["stored"] == 2 and stats["entries"] == 2 and stats["errors"] == 2
    finally:
        store.close()


async def test_a_full_map_retries_each_object_after_lowering_the_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    real = store._commit
    failed: list[int] = []

    def commit(work, default):  # type: ignore[no-untyped-def]
        if not failed:
            failed.append(1)
            raise lmdb.MapFullError("full")
        return real(work, default)

    monkeypatch.setattr(store, "_commit", commit)
    try:
        store.put(entry("/a", at=time.time()))
        store.put(entry("/b", at=time.time()))
        await asyncio.sleep(0)
        assert store.stats()["stored"] == 2
    finally:
        store.close()


_DIE = textwrap.dedent("""
    import asyncio, os, sys, time
    sys.path.insert(0, sys.argv[2])
    from test_lmdb_store import entry
    from edgenode.cache.lmdb_store import SharedStore
    from edgenode.config import CacheConfig

    async def main():
        store = SharedStore(CacheConfig(), __import__("pathlib").Path(sys.argv[1]), alone=True)
        store.put(entry("/kept", b"k", at=time.time()))
        await asyncio.sleep(0)  # committed
        for i in range(20):
            store.put(entry(f"/lost{i}", b"x" * 3000, at=time.time()))
        os._exit(0)  # dies with those queued

    asyncio.run(main())
""")


def test_a_process_dying_with_stores_queued_leaves_the_last_commit(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", _DIE, str(tmp_path / "c"), str(Path(__file__).parent)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    try:
        stats = store.stats()
        assert stats["entries"] == 1 and stats["urls"] == 1
        kept = store.lookup("http://example.com/kept", CIMultiDict())[0]
        assert kept is not None and kept.body == b"k"
        assert store.lookup("http://example.com/lost0", CIMultiDict())[0] is None
    finally:
        store.close()


async def test_an_answer_leaves_after_the_stores_queued_before_it(tmp_path: Path) -> None:
    """The front end's batch commits the store's queue before it writes an answer, so a
    client that has its answer finds the object in every worker (then a HIT, not a wait
    on the lease)."""
    from edgenode.frontend.batch import Batch

    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    batch = Batch()
    batch.stores = store
    writes: list[tuple[bytes, bool]] = []

    class Transport:  # the socket's end: what was queued when the bytes left
        def is_closing(self) -> bool:
            return False

        def write(self, data: bytes) -> None:
            writes.append((data, store.queued()))

    try:
        assert not batch.holding
        batch.send(Transport(), b"hit")  # type: ignore[arg-type]  # its flush is scheduled first
        store.put(entry("/a", b"one", at=time.time()))
        assert batch.holding  # a direct write now would overtake the commit
        batch.send(Transport(), b"miss")  # type: ignore[arg-type]
        await asyncio.sleep(0)
        assert writes == [(b"hit", False), (b"miss", False)]
        assert store.stats()["stored"] == 1
    finally:
        store.close()


async def test_a_single_process_node_reads_an_absent_key_once(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Alone on its store, a node knows a key it found absent stays absent until its own
    ``put``: the fast path's, the stage's and collapsing's lookups of a miss read it once.
    A node with other workers reads every time (another process may have stored it)."""
    reads: list[str] = []
    load = SharedStore._load

    def counting(self: SharedStore, key: str) -> object:
        reads.append(key)
        return load(self, key)

    monkeypatch.setattr(SharedStore, "_load", counting)
    key = "http://example.com/a"
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    try:
        for _ in range(3):
            assert store.lookup(key, CIMultiDict()) == (None, False)
        assert reads == [key]
        assert store.put(entry("/a", b"one", at=time.time()))  # forgets the key: read again
        found, _ = store.lookup(key, CIMultiDict())
        assert found is not None and found.body == b"one" and reads == [key, key]
    finally:
        store.close()
    reads.clear()
    shared = SharedStore(CacheConfig(), tmp_path / "d")
    peer = Peer(tmp_path / "d")
    try:
        assert shared.lookup(key, CIMultiDict()) == (None, False)
        assert peer.ask("put", "/a") == "ok"  # another worker stores it meanwhile
        found, _ = shared.lookup(key, CIMultiDict())
        assert found is not None and reads == [key, key]
    finally:
        peer.close()
        shared.close()
