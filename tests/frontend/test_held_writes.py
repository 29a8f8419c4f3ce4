"""The loop iteration's held writes in C (``_fasthit.Held``, ``Batch``'s base): what
``send`` and ``send_kept`` hold leaves over real sockets on 127.0.0.1 after the loop
iteration, in order, in one flush; past ``HOLD_LIMIT`` at once; the stores' queued
writes are committed first; a closing transport gets nothing; nothing is held or
scheduled when an argument is refused, and a foreign item in the held list is an error."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import pytest

from edgenode.frontend._fasthit import Held, kept_answer
from edgenode.frontend.batch import HOLD_LIMIT, Batch


class Sink(asyncio.Protocol):
    """The server side of one connection: every byte it receives."""

    def __init__(self) -> None:
        self.data = b""

    def data_received(self, data: bytes) -> None:
        self.data += data


class Peers:
    """Client transports connected to a server whose connections collect their bytes."""

    def __init__(self) -> None:
        self.sinks: list[Sink] = []
        self.transports: list[asyncio.Transport] = []
        self.server: asyncio.AbstractServer | None = None

    def _made(self) -> Sink:
        sink = Sink()
        self.sinks.append(sink)
        return sink

    async def connect(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._made, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        for _ in range(n):
            transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
            self.transports.append(transport)  # type: ignore[arg-type]
        while len(self.sinks) < n:
            await asyncio.sleep(0.01)

    async def received(self, sizes: list[int]) -> list[bytes]:
        """Each sink's bytes once it has at least its size (within 5 s)."""
        for _ in range(500):
            if all(len(s.data) >= n for s, n in zip(self.sinks, sizes)):
                break
            await asyncio.sleep(0.01)
        return [s.data for s in self.sinks]


@pytest.fixture
async def peers() -> AsyncIterator[Peers]:
    p = Peers()
    await p.connect(2)
    yield p
    for t in p.transports:
        t.close()
    assert p.server is not None
    p.server.close()


class Stores:
    """A store queue that records whether answers were still held when it committed."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.pending = True
        self.held_at_commit: list[int] = []

    def queued(self) -> bool:
        return self.pending

    def flush(self) -> int:
        self.held_at_commit.append(len(self.batch._out))
        self.pending = False
        return 1


async def test_held_writes_leave_after_the_iteration_in_order(peers: Peers) -> None:
    batch = Batch()
    a, b = peers.transports
    batch.send_kept(a, b"HTTP/1.1 200 OK\r\nX-Request-Id: ab-", 255, b"body one")
    batch.send(b, b"plain answer")
    batch.send_kept(a, b"P-", 0, b"two")
    assert batch.holding and len(batch._out) == 3 and a.get_write_buffer_size() == 0
    await asyncio.sleep(0)  # the one scheduled flush
    assert not batch.holding and batch._held == 0
    first = kept_answer(b"HTTP/1.1 200 OK\r\nX-Request-Id: ab-", 255, b"body one")
    assert first == b"HTTP/1.1 200 OK\r\nX-Request-Id: ab-ff\r\n\r\nbody one"
    expected = [first + b"P-0\r\n\r\ntwo", b"plain answer"]
    assert await peers.received([len(x) for x in expected]) == expected


async def test_past_the_hold_limit_everything_is_written_at_once(peers: Peers) -> None:
    batch = Batch()
    a, _ = peers.transports
    batch.send(a, b"small")
    batch.send_kept(a, b"p", 1, b"x" * HOLD_LIMIT)
    assert not batch.holding and batch._held == 0  # flushed inside the call
    expected = b"small" + b"p1\r\n\r\n" + b"x" * HOLD_LIMIT
    assert (await peers.received([len(expected), 0]))[0] == expected


async def test_stores_commit_before_the_answers_leave(peers: Peers) -> None:
    batch = Batch()
    stores = batch.stores = Stores(batch)
    assert batch.holding  # a queued store holds direct writes back too
    batch.send(peers.transports[0], b"after the commit")
    batch.flush()
    assert stores.held_at_commit == [1] and not batch.holding
    assert (await peers.received([16, 0]))[0] == b"after the commit"


async def test_a_closing_transport_gets_nothing_the_others_theirs(peers: Peers) -> None:
    batch = Batch()
    a, b = peers.transports
    batch.send_kept(a, b"gone", 1, b"")
    batch.send_kept(b, b"kept", 2, b"!")
    a.close()
    batch.flush()
    assert (await peers.received([0, 9]))[1] == b"kept2\r\n\r\n!"
    assert peers.sinks[0].data == b""


async def test_writes_during_the_batch_steps_wait_for_its_end(peers: Peers) -> None:
    batch = Batch()
    a, _ = peers.transports
    seen: list[bool] = []

    class Steps:
        def run_steps(self) -> None:
            batch.send_kept(a, b"in-steps", 3, b"")
            seen.append(batch.holding)

    batch.add(Steps())
    await asyncio.sleep(0)
    assert seen == [True] and not batch.holding
    assert (await peers.received([12, 0]))[0] == b"in-steps3\r\n\r\n"


async def test_refused_arguments_hold_nothing(peers: Peers) -> None:
    batch = Batch()
    a, _ = peers.transports
    for args in [(a, "text", 1, b""), (a, b"", -1, b""), (a, b"", 2**64, b""), (a, b"", 1)]:
        with pytest.raises((TypeError, OverflowError)):
            batch.send_kept(*args)
    with pytest.raises(TypeError):
        batch.send(a, "text")
    assert not batch.holding and batch._held == 0
    with pytest.raises(TypeError):
        Held.__new__(Held).flush()  # not initialised: an error, not a crash


async def test_a_foreign_item_in_the_held_list_is_an_error_not_a_crash(peers: Peers) -> None:
    batch = Batch()
    a, _ = peers.transports
    batch._out.append("not a pair")  # the list is readable from Python, so it can be changed
    with pytest.raises(TypeError):
        batch.flush()
    batch.send(a, b"after")
    batch.flush()
    assert (await peers.received([5, 0]))[0] == b"after"
