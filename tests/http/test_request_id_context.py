"""The request id's context variable over real sockets on 127.0.0.1: the synchronous steps
of requests run in one batch each see their own id (the batch sets it per request and
does not reset it), a request whose steps wait sees its own in its task, and nothing of
it is left for the loop's later callbacks (the batch runs in a context copy of its own)."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import pytest
from multidict import CIMultiDict

from dataplane_support import RawClient
from edgenode.config import ServerConfig
from edgenode.frontend.server import FrontEnd
from edgenode.http.messages import Response
from edgenode.http.request_id import current_request_id
from edgenode.pipeline.exchange import Exchange
from edgenode.pipeline.chain import Outcome

seen: list[tuple[str, str | None, str | None]] = []  # (path, the exchange's id, the variable's)


async def _later(exchange: Exchange) -> Response:
    await asyncio.sleep(0.01)
    seen.append((exchange.request.path, exchange.request_id, current_request_id.get()))
    return Response(200, CIMultiDict(), b"later")


def handler(exchange: Exchange) -> Outcome:
    seen.append((exchange.request.path, exchange.request_id, current_request_id.get()))
    if exchange.request.path == "/wait":
        return _later(exchange)
    return Response(200, CIMultiDict(), b"now")


@pytest.fixture
async def frontend() -> AsyncIterator[FrontEnd]:
    seen.clear()
    fe = FrontEnd(handler, ServerConfig(keepalive_timeout=5.0, request_timeout=5.0))
    await fe.start("127.0.0.1", 0)
    yield fe
    await fe.shutdown(1.0)


async def test_each_request_of_a_batch_sees_its_own_id(frontend: FrontEnd) -> None:
    clients = [await RawClient.connect(frontend.port) for _ in range(4)]
    for i, client in enumerate(clients):  # written back to back: read in one loop iteration
        await client.send(b"GET /now%d HTTP/1.1\r\nHost: a\r\nX-Request-Id: given-%d\r\n\r\n" % (i, i))
    for client in clients:
        assert (await client.read_response()).status == 200
        await client.close()
    assert sorted(seen) == [(f"/now{i}", f"given-{i}", f"given-{i}") for i in range(4)]


async def test_a_waiting_request_sees_its_own_id_and_nothing_is_left_behind(frontend: FrontEnd) -> None:
    waiting, quick = await RawClient.connect(frontend.port), await RawClient.connect(frontend.port)
    await waiting.send(b"GET /wait HTTP/1.1\r\nHost: a\r\n\r\n")
    await quick.send(b"GET /now HTTP/1.1\r\nHost: a\r\n\r\n")
    for client in (waiting, quick):
        assert (await client.read_response()).status == 200
        await client.close()
    assert len(seen) == 3 and all(rid and var == rid for _, rid, var in seen)
    later: list[str | None] = []
    asyncio.get_running_loop().call_soon(lambda: later.append(current_request_id.get()))
    await asyncio.sleep(0)
    assert later == [None] and current_request_id.get() is None
