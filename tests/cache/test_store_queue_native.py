"""A store's ``put`` is ``_record.StoreQueue``: the steps of ``SharedStore.put`` (its
reference) in one C call.  Held to the reference over generated entries (answers, the
queued tuples, the batch's keys, the absent keys), and through its edges: an entry too
large, writes paused after a failure, an entry the encoder refuses, another type, the
pass's first store scheduling the commit (at once without a loop)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from pathlib import Path

import pytest
from multidict import CIMultiDict

from edgenode.cache import lmdb_store
from edgenode.cache._record import StoreQueue
from edgenode.cache.lmdb_store import SharedStore
from edgenode.cache.policy import Entry, build_entry
from edgenode.config import CacheConfig

NOW = time.time()


def _entry(rng: random.Random, i: int) -> Entry:
    url = f"http://example.com/q{i}"
    return build_entry(key=url, url=url, status=200, reason="OK",
                       resp_headers=CIMultiDict({"Cache-Control": "max-age=60",
                                                 "Surrogate-Key": "a b"}),
                       body=rng.randbytes(rng.choice([3, 900, 5000, 40_000])),
                       req_headers=CIMultiDict(), request_time=NOW, response_time=NOW,
                       heuristic_fraction=0.1, heuristic_max=86400)


def _state(store: SharedStore) -> tuple[object, ...]:
    return ([(id(e), record, new) for e, record, new in store._batch], set(store._batch_keys),
            set(store._absent or ()), store._flush_handle is not None)


def _encode_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """One record per entry for both stores (a record's back-references depend on the
    references its strings have when it is written); stores made after this use it."""
    records: dict[int, tuple[Entry, bytes]] = {}
    real = lmdb_store.encode
    monkeypatch.setattr(lmdb_store, "encode",
                        lambda e: records.setdefault(id(e), (e, real(e)))[1])


@pytest.mark.parametrize("alone", [True, False])
async def test_the_queue_is_the_python_put(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alone: bool) -> None:
    _encode_once(monkeypatch)
    rng = random.Random(5)
    cfg = CacheConfig(max_bytes=30_000)  # (the 40 KB bodies are refused)
    native = SharedStore(cfg, tmp_path / "c", alone=alone)
    reference = SharedStore(cfg, tmp_path / "py", alone=alone)
    assert isinstance(native.put, StoreQueue)
    try:
        entries = [_entry(rng, rng.randrange(60)) for _ in range(200)]
        answers = set()
        for n in range(0, len(entries), 7):  # loop passes of up to seven stores
            for e in entries[n:n + 7]:
                if rng.random() < 0.6:  # read absent (or found) first
                    native.lookup(e.key, CIMultiDict())
                    reference.lookup(e.key, CIMultiDict())
                got, want = native.put(e), SharedStore.put(reference, e)
                assert got == want
                answers.add(got)
                assert _state(native) == _state(reference)
            await asyncio.sleep(0)
            assert native._batch == reference._batch == []
        assert answers == {True, False}
        assert native.stats()["entries"] == reference.stats()["entries"] > 0
    finally:
        native.close()
        reference.close()


def test_without_a_loop_the_store_commits_at_once(tmp_path: Path) -> None:
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    try:
        assert store.put(_entry(random.Random(1), 1))
        assert store._batch == [] and store.stats()["entries"] == 1
    finally:
        store.close()


async def test_too_large_or_paused_is_refused_until_the_pause_ends(tmp_path: Path) -> None:
    store = SharedStore(CacheConfig(max_bytes=1 << 20), tmp_path / "c", alone=True)
    rng = random.Random(2)
    try:
        store.max_bytes = 10_000  # (as a full map lowers it)
        assert store._queue.max_bytes == 10_000
        assert not store.put(_big(rng))  # larger than the bound
        store._queue.retry_until = time.monotonic() + 60  # a write failed
        assert not store.put(_entry(rng, 2)) and store._batch == []
        store._queue.retry_until = time.monotonic() - 1
        assert store.put(_entry(rng, 3)) and len(store._batch) == 1
        assert store._flush_handle is not None  # the pass's first store scheduled the commit
        await asyncio.sleep(0)
        assert store.stats()["entries"] == 1
    finally:
        store.close()


def _big(rng: random.Random) -> Entry:
    e = _entry(rng, 9)
    e.size = 20_000
    return e


def test_what_the_encoder_refuses_goes_to_the_python_put(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    try:
        e = _entry(random.Random(3), 1)
        e.vary_values = (object(),)  # neither the C writer nor marshal writes an object
        with caplog.at_level(logging.ERROR, "edgenode.cache.store"):
            assert store.put(e) is False
        assert "cannot be stored" in caplog.text and store._batch == []
    finally:
        store.close()


def test_another_type_goes_to_the_python_put(tmp_path: Path) -> None:
    class Special(Entry):
        __slots__ = ()

    calls: list[Entry] = []
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    try:
        queue = StoreQueue(Entry, lmdb_store.encode, [], set(), None, lambda: True,
                           lambda e: calls.append(e) or False)
        e = Special()
        assert queue(e) is False and calls == [e]
        with pytest.raises(TypeError):
            StoreQueue(Entry, lmdb_store.encode, [], set(), [], lambda: True, lambda e: False)
    finally:
        store.close()
