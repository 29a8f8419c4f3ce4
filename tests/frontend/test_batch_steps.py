"""The batch's run of the requests' steps in C (``Held.add``/``run``) and the stores'
queue read without a call (``Held.queue``): on a real event loop, every connection added
in one loop iteration runs in one callback, in order, with writes held until the steps
end; one whose steps raise is logged as before and the others still run; what is not an
``Exception`` stops the run after the flush; the stores commit before the held answers
leave when their list is not empty, without ``queued()`` being asked."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from edgenode.frontend.batch import Batch


class Transport:
    """Records writes (the batch's flush calls ``is_closing`` and ``write``)."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.log.append(("write", data))


class Conn:
    def __init__(self, name: str, log: list[Any], batch: Batch, fail: BaseException | None = None) -> None:
        self.name, self.log, self.batch, self.fail = name, log, batch, fail

    def run_steps(self) -> None:
        self.log.append(("steps", self.name, self.batch.running))
        self.batch.send(Transport(self.log), self.name.encode())
        if self.fail is not None:
            raise self.fail


class Stores:
    """A store whose queue the batch reads as a list; ``queued()`` must not be asked."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log
        self.pending: list[int] = []

    def queued(self) -> bool:
        raise AssertionError("the queue's list is read, not queued()")

    def flush(self) -> int:
        self.log.append(("commit", len(self.pending)))
        self.pending.clear()
        return 1


async def test_added_connections_run_in_one_callback_in_order_writes_after() -> None:
    log: list[Any] = []
    batch = Batch()
    conns = [Conn(n, log, batch) for n in "abc"]
    for conn in conns:
        batch.add(conn)
    assert batch._ready == conns and log == []
    await asyncio.sleep(0)
    assert log == [("steps", "a", True), ("steps", "b", True), ("steps", "c", True),
                   ("write", b"a"), ("write", b"b"), ("write", b"c")]
    assert batch._ready == [] and not batch.running
    batch.add(conns[0])  # a later iteration schedules its own run
    await asyncio.sleep(0)
    assert log[-2:] == [("steps", "a", True), ("write", b"a")]


async def test_a_failing_connection_is_logged_and_the_others_run(caplog: pytest.LogCaptureFixture) -> None:
    log: list[Any] = []
    batch = Batch()
    batch.add(Conn("a", log, batch, ValueError("boom")))
    batch.add(Conn("b", log, batch))
    with caplog.at_level(logging.ERROR, logger="edgenode.frontend"):
        await asyncio.sleep(0)
    assert [e[1] for e in log if e[0] == "steps"] == ["a", "b"]
    assert [e[1] for e in log if e[0] == "write"] == [b"a", b"b"]
    record = next(r for r in caplog.records if r.getMessage() == "request steps failed")
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
    assert "boom" in caplog.text and "Traceback" in caplog.text


async def test_what_is_not_an_exception_stops_the_run_after_the_flush() -> None:
    log: list[Any] = []
    batch = Batch()
    batch.add(Conn("a", log, batch, KeyboardInterrupt()))
    batch.add(Conn("b", log, batch))
    with pytest.raises(KeyboardInterrupt):
        batch.run()
    assert log == [("steps", "a", True), ("write", b"a")] and not batch.running


async def test_the_stores_list_is_read_without_a_call_and_committed_first() -> None:
    log: list[Any] = []
    batch = Batch()
    stores = Stores(log)
    batch.stores, batch.queue = stores, stores.pending
    batch.add(Conn("a", log, batch))
    await asyncio.sleep(0)
    assert log == [("steps", "a", True), ("write", b"a")]  # nothing queued: no commit
    assert not batch.holding
    stores.pending.append(1)
    assert batch.holding  # a write must wait for the commit
    batch.add(Conn("b", log, batch))
    await asyncio.sleep(0)
    assert log[2:] == [("steps", "b", True), ("commit", 1), ("write", b"b")]


async def test_without_a_list_the_store_is_asked() -> None:
    asked: list[int] = []

    class Asked:
        def queued(self) -> bool:
            asked.append(1)
            return False

        def flush(self) -> int:
            raise AssertionError("nothing was queued")

    batch = Batch()
    batch.stores = Asked()
    assert not batch.holding and asked == [1]


def test_an_uninitialised_batch_raises() -> None:
    batch = Batch.__new__(Batch)
    with pytest.raises(TypeError):
        batch.add(object())
    with pytest.raises(TypeError):
        batch.run()
