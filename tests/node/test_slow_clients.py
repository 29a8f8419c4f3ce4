"""Clients that stall mid-request, through the default chain, where the WAF buffers
request bodies to inspect them: the body timeouts still answer 408."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import pytest

from edgenode.node import Node

BOUND = 10.0


@pytest.fixture
async def slow_node(origin_url: str, config_for) -> AsyncIterator[Node]:
    cfg = config_for(origin_url)
    cfg.server.body_between_bytes_timeout = 0.3
    node = Node(cfg)
    await node.start()
    yield node
    await node.stop(1.0)


async def test_stalled_body_while_the_waf_buffers_it_is_408(slow_node: Node) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", slow_node.port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: shop.test\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                 b"Content-Length: 1000\r\n\r\n" + b"q=harmless&" * 10)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), BOUND)
    writer.close()
    assert raw.startswith(b"HTTP/1.1 408 ")
    assert b"no request body bytes for 0.3s" in raw
    assert "waf" in slow_node.filters
