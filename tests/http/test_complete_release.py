"""The front end's completion over real sockets on 127.0.0.1: what a request holds
(``Exchange.hold``) is closed when its answer is written, on the batch's synchronous
path and on a task's alike, once each; a request holding nothing completes as before
(``_complete`` calls ``release`` only when something is held)."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import pytest
from multidict import CIMultiDict

from dataplane_support import RawClient
from edgenode.config import ServerConfig
from edgenode.frontend.server import FrontEnd
from edgenode.http.messages import Response
from edgenode.pipeline.chain import Outcome
from edgenode.pipeline.exchange import Exchange


class Resource:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


held: list[Resource] = []
completed: list[tuple[str, bool]] = []  # (path, the exchange held something at completion)


async def _later() -> Response:
    await asyncio.sleep(0.01)
    return Response(200, CIMultiDict(), b"later")


def handler(exchange: Exchange) -> Outcome:
    path = exchange.request.path
    if path.startswith("/hold"):
        resource = Resource()
        held.append(resource)
        exchange.hold(resource)
    if path.endswith("/wait"):
        return _later()
    return Response(200, CIMultiDict(), b"now")


@pytest.fixture
async def frontend() -> AsyncIterator[FrontEnd]:
    held.clear()
    completed.clear()
    fe = FrontEnd(handler, ServerConfig(keepalive_timeout=5.0, request_timeout=5.0),
                  on_complete=lambda ex, resp: completed.append((ex.request.path, ex._open is not None)))
    await fe.start("127.0.0.1", 0)
    yield fe
    await fe.shutdown(1.0)


@pytest.mark.parametrize("path", ["/hold", "/hold/wait"])
async def test_what_a_request_holds_is_closed_once_it_is_answered(frontend: FrontEnd, path: str) -> None:
    client = await RawClient.connect(frontend.port)
    for _ in range(2):
        await client.send(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path.encode())
        assert (await client.read_response()).status == 200
    await client.close()
    assert [r.closed for r in held] == [1, 1]
    assert completed == [(path, False), (path, False)]  # released before the hooks ran


async def test_a_request_holding_nothing_completes(frontend: FrontEnd) -> None:
    client = await RawClient.connect(frontend.port)
    await client.send(b"GET /plain HTTP/1.1\r\nHost: a\r\n\r\n")
    assert (await client.read_response()).status == 200
    await client.close()
    assert completed == [("/plain", False)] and held == []
