"""Comparing an ``Exchange`` a maker made with the one its reference made, slot by slot."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from edgenode.pipeline.exchange import Exchange


def slots(cls: type) -> list[str]:
    """Every slot of ``cls``, from the class and its bases."""
    return [name for c in cls.__mro__ for name in getattr(c, "__slots__", ())]


def assert_same_exchange(made: Any, expected: Any, identical: bool = False) -> None:
    """``made`` holds what ``expected`` holds in every ``Exchange`` slot: made after it from
    the same id counter and clocks, its own empty dicts, the rest equal (``identical``: the
    same objects, or equal values of one type)."""
    for name in slots(Exchange):
        got, want = getattr(made, name), getattr(expected, name)
        if name == "id":
            assert got + 1 == want  # the next of the same counter
        elif name in ("start", "start_wall"):
            assert type(got) is float and got <= want
        elif name in ("timings", "props"):
            assert got == want == {} and got is not want
        elif identical:
            assert got is want or (type(got) is type(want) and got == want), name
        else:
            assert got == want, name


async def steps_seen(monkeypatch: Any, fast_path: Any, heads: list[bytes],
                     snapshot: Callable[[Any, Exchange], dict[str, Any]]) -> list[dict[str, Any]]:
    """Each of ``heads`` (pipelined heads in one string) sent on a connection of its own to
    a front end with ``fast_path`` whose handler answers 204 (request ids from the same
    prefix and count every run): ``snapshot(connection, exchange)`` of every request as its
    steps got it (``run_steps``), in order.  ``monkeypatch`` holds the ``run_steps`` patch."""
    from edgenode.config import ServerConfig
    from edgenode.frontend.connection import Connection
    from edgenode.frontend.server import FrontEnd
    from edgenode.http.messages import Response

    seen: list[dict[str, Any]] = []
    steps = Connection.run_steps

    def recorded(conn: Connection) -> None:
        assert conn._current is not None
        seen.append(snapshot(conn, conn._current))
        steps(conn)

    monkeypatch.setattr(Connection, "run_steps", recorded)
    fe = FrontEnd(lambda ex: Response(204), ServerConfig(), fast_path=fast_path)
    fe.request_ids.prefix = b"0123456789ab-"
    fe.request_ids._text = "0123456789ab-"
    await fe.start("127.0.0.1", 0)
    try:
        for head in heads:
            reader, writer = await asyncio.open_connection("127.0.0.1", fe.port)
            writer.write(head)
            for _ in range(head.count(b"\r\n\r\n")):
                assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.")
            writer.close()
    finally:
        await fe.shutdown(0.1)
    return seen


async def made_and_seen(monkeypatch: Any, native: bool, flag: str, maker: str, fast_path: Any,
                        heads: list[bytes], snapshot: Callable[[Any, Exchange], dict[str, Any]]
                        ) -> tuple[int, list[dict[str, Any]]]:
    """``steps_seen`` with the front end's C maker ``fast_hits.<maker>`` on (``native``: its
    switch ``fast_hits.<flag>``) or off (the Python makers, with the Python
    ``client_exchange``): how many requests the C maker made, and what the steps got.  The
    patches are undone before it returns."""
    from edgenode.frontend import fast_hits, request_parser
    from edgenode.pipeline.exchange import client_exchange

    monkeypatch.setattr(fast_hits, flag, native)
    if not native:
        monkeypatch.setattr(request_parser, "make_exchange", client_exchange)
    made: list[int] = []
    real = getattr(fast_hits, maker)

    def counted(*args: Any) -> Exchange:
        made.append(1)
        return real(*args)

    monkeypatch.setattr(fast_hits, maker, counted)
    seen = await steps_seen(monkeypatch, fast_path, heads, snapshot)
    monkeypatch.undo()
    return len(made), seen


#: plain GET/HEAD heads a maker and its reference are held to alike (a test adds its own)
PLAIN_HEADS = [
    b"GET /obj/a?size=10&x HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
    b"HEAD /obj/b HTTP/1.1\r\nhost: example.com\r\n\r\n",
    b"GET /obj/c? HTTP/1.0\r\nHost: h\r\n\r\n",
    b"GET /obj/d?q HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET /obj/e HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
]
