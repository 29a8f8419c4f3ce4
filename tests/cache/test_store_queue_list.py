"""The lmdb store's queued stores as one list cleared in place (``SharedStore.queue``):
the front end's batch keeps it (``Held.queue``) and reads its emptiness on every flush
without a call, so an answer still leaves after the stores queued before it are
committed, and the list stays the store's through every commit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from edgenode.cache.lmdb_store import SharedStore
from edgenode.config import CacheConfig
from edgenode.frontend.batch import Batch

from tests.cache.test_lmdb_store import entry


async def test_the_list_is_the_stores_through_its_commits(tmp_path: Path) -> None:
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    try:
        queue = store.queue()
        assert queue == []
        store.put(entry("/a", b"one", at=time.time()))
        assert len(queue) == 1 and store.queue() is queue
        await asyncio.sleep(0)  # the loop pass's commit
        assert queue == [] and store.queue() is queue and store.stats()["stored"] == 1
        store.put(entry("/b", b"two", at=time.time()))
        assert store.flush() == 1 and queue == [] and store.queue() is queue
    finally:
        store.close()


async def test_an_answer_leaves_after_the_stores_queued_before_it_read_by_list(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SharedStore(CacheConfig(), tmp_path / "c", alone=True)
    batch = Batch()
    batch.stores, batch.queue = store, store.queue()
    writes: list[tuple[bytes, int]] = []

    def not_asked() -> bool:
        raise AssertionError("the batch reads the list, not queued()")

    monkeypatch.setattr(store, "queued", not_asked)

    class Transport:  # the socket's end: how many stores were queued when the bytes left
        def is_closing(self) -> bool:
            return False

        def write(self, data: bytes) -> None:
            writes.append((data, len(store.queue())))

    try:
        assert not batch.holding
        batch.send(Transport(), b"hit")  # type: ignore[arg-type]
        store.put(entry("/a", b"one", at=time.time()))
        assert batch.holding  # a direct write now would overtake the commit
        batch.send(Transport(), b"miss")  # type: ignore[arg-type]
        await asyncio.sleep(0)
        assert writes == [(b"hit", 0), (b"miss", 0)]
        assert store.stats()["stored"] == 1
    finally:
        store.close()
