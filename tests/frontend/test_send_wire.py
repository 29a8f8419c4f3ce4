"""``Held.send_wire`` (``_fasthit.c``): a kept head's answer behind filters, formatted and
written in one C call.  Over real sockets on 127.0.0.1: its bytes are the Python
formatting ``ResponseWriter._write_wire`` had (status line, block, Content-Length,
X-Request-Id, the head's end, the body); it is held while the batch's steps run or other
writes wait and written at once otherwise; a body past 64 KiB leaves after what is held,
as a head and the body object itself; a refused argument holds and writes nothing."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import pytest

from edgenode.frontend._fasthit import Held
from edgenode.frontend.batch import Batch

LINE = b"HTTP/1.1 200 OK\r\n"
BLOCK = b"Content-Type: text/plain\r\nAge: 3\r\nX-Cache: HIT\r\n"


def python_wire(body: bytes, rid: str | None) -> bytes:
    """What ``_write_wire`` formatted in Python before ``send_wire``."""
    if rid:
        return b"%s%sContent-Length: %d\r\nX-Request-Id: %s\r\n\r\n%s" % (
            LINE, BLOCK, len(body), rid.encode("latin-1"), body)
    return b"%s%sContent-Length: %d\r\n\r\n%s" % (LINE, BLOCK, len(body), body)


class Sink(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = b""

    def data_received(self, data: bytes) -> None:
        self.data += data


class Peer:
    """A client transport whose server side collects what it receives."""

    def __init__(self) -> None:
        self.sink = Sink()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.server: asyncio.AbstractServer | None = None

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        made = asyncio.Event()

        def factory() -> Sink:
            made.set()
            return self.sink

        self.server = await loop.create_server(factory, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)  # type: ignore[assignment]
        await made.wait()

    async def received(self, size: int) -> bytes:
        for _ in range(500):
            if len(self.sink.data) >= size:
                break
            await asyncio.sleep(0.01)
        return self.sink.data


class Recording:
    """A transport that records its calls (what was written, how, and in which order)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def writelines(self, parts: list[bytes]) -> None:
        self.calls.append(("writelines", list(parts)))

    def is_closing(self) -> bool:
        return False


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    p = Peer()
    await p.connect()
    yield p
    p.transport.close()
    assert p.server is not None
    p.server.close()


@pytest.mark.parametrize("size", [0, 300, 65536, 65537, 200_000])
@pytest.mark.parametrize("rid", ["a1b2c3d4e5f6-1f", "lb-\xe9:7", "", None])
async def test_the_bytes_are_the_python_formatting(peer: Peer, size: int, rid: str | None) -> None:
    body = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    batch = Batch()
    batch.send_wire(peer.transport, LINE, BLOCK, body, rid)
    expected = python_wire(body, rid)
    assert await peer.received(len(expected)) == expected


async def test_held_while_the_steps_run_and_in_order(peer: Peer) -> None:
    batch = Batch()
    batch.running = True
    batch.send(peer.transport, b"first ")
    batch.send_wire(peer.transport, LINE, BLOCK, b"second", "r-1")
    assert batch._held == 6 + len(python_wire(b"second", "r-1"))
    await asyncio.sleep(0.05)
    assert peer.sink.data == b""  # nothing leaves before the batch's flush
    batch.running = False
    batch.flush()
    expected = b"first " + python_wire(b"second", "r-1")
    assert await peer.received(len(expected)) == expected


def test_written_now_when_nothing_waits() -> None:
    batch, transport = Batch(), Recording()
    batch.send_wire(transport, LINE, BLOCK, b"now", None)
    assert transport.calls == [("write", python_wire(b"now", None))]
    assert batch._out == [] and not batch.holding


async def test_held_behind_waiting_writes_outside_the_steps() -> None:
    batch, transport = Batch(), Recording()
    batch.send(transport, b"waiting ")  # held for the iteration's flush
    batch.send_wire(transport, LINE, BLOCK, b"after", "r")
    assert transport.calls == []
    await asyncio.sleep(0)  # the one scheduled flush
    assert transport.calls == [("write", b"waiting "), ("write", python_wire(b"after", "r"))]


def test_a_large_body_leaves_after_what_is_held_without_a_copy() -> None:
    batch, transport = Batch(), Recording()
    batch.running = True
    batch.send(transport, b"held ")
    body = b"b" * 70_000
    batch.send_wire(transport, LINE, BLOCK, body, "r")
    assert [c[0] for c in transport.calls] == ["write", "writelines"]
    assert transport.calls[0][1] == b"held "
    head, sent = transport.calls[1][1]  # type: ignore[misc]
    assert head + sent == python_wire(body, "r") and sent is body
    assert batch._out == [] and batch._held == 0


class Queue:
    """A store queue with writes waiting for the flush."""

    def __init__(self) -> None:
        self.flushed = 0

    def queued(self) -> bool:
        return self.flushed == 0

    def flush(self) -> int:
        self.flushed += 1
        return 1


async def test_stores_queued_hold_the_answer_until_their_commit() -> None:
    batch, transport, stores = Batch(), Recording(), Queue()
    batch.stores = stores
    batch.send_wire(transport, LINE, BLOCK, b"x", None)
    assert transport.calls == [] and batch.holding
    await asyncio.sleep(0)
    assert stores.flushed == 1 and transport.calls == [("write", python_wire(b"x", None))]


@pytest.mark.parametrize("args", [
    (LINE, BLOCK, b"x"),  # too few
    ("HTTP/1.1 200 OK\r\n", BLOCK, b"x", None),  # a str line
    (LINE, BLOCK, bytearray(b"x"), None),  # not bytes
    (LINE, BLOCK, b"x", b"rid"),  # a bytes id
])
def test_refused_arguments_hold_and_write_nothing(args: tuple[object, ...]) -> None:
    batch, transport = Batch(), Recording()
    batch.running = True
    with pytest.raises(TypeError):
        batch.send_wire(transport, *args)
    assert transport.calls == [] and batch._out == []


def test_an_id_that_is_not_latin1_is_an_error_with_nothing_held() -> None:
    batch, transport = Batch(), Recording()
    batch.running = True
    with pytest.raises(UnicodeEncodeError):
        batch.send_wire(transport, LINE, BLOCK, b"x", "id-\u20ac")
    assert transport.calls == [] and batch._out == []


def test_an_uninitialised_held_raises() -> None:
    held = Held.__new__(Held)
    with pytest.raises(TypeError):
        held.send_wire(Recording(), LINE, BLOCK, b"x", None)
