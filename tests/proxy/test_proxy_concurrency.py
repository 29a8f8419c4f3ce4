"""Concurrent misses over real sockets: every request completes, the origin sees each once.

Regressions for two lost wakeups in the origin pool, on both event loops the node runs
on (asyncio and uvloop; the task ordering differs and so did the symptoms):

* a request whose origin connection was handed to the next request before it resumed
  cleared that request's head waiter, so the next response was read but never delivered;
* a connection paused by a slow client's back-pressure went back to the pool still
  paused, so the next response on it sat unread in the socket.

Each scenario runs in its own event loop (a sync test drives ``asyncio.Runner``), every
wait is bounded by ``BOUND``, so a hang fails the test instead of blocking the suite.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Awaitable, Callable

import pytest

from dataplane_support import BOUND, RawClient, node_config, start_node
from edgenode.config import parse_config
from edgenode.node import Node
from edgenode.origin import content
from edgenode.origin.app import STATS_KEY, start_origin
from edgenode.origin.settings import OriginSettings

uvloop = pytest.importorskip("uvloop")

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
CONNECTIONS = 8
PER_CONNECTION = 40
BIG = 1536 * 1024  # past the pool's 256 KiB high-water mark several times over


def run(loop: str, scenario: Callable[[], Awaitable[None]]) -> None:
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        runner.run(asyncio.wait_for(scenario(), 6 * BOUND))


async def get_on(client: RawClient, path: str) -> tuple[int, bytes]:
    await client.send(f"GET {path} HTTP/1.1\r\nHost: test.local\r\n\r\n".encode())
    resp = await client.read_response()
    return resp.status, resp.body


async def unique_misses(port: int, prefix: str) -> Counter[int]:
    """CONNECTIONS keep-alive clients, each fetching PER_CONNECTION new 1 KB objects in turn."""
    async def one_client(c: int) -> Counter[int]:
        client = await RawClient.connect(port)
        seen: Counter[int] = Counter()
        try:
            for i in range(PER_CONNECTION):
                name = f"{prefix}-{c}-{i}"
                status, body = await get_on(client, f"/obj/{name}?size=1k")
                assert body == content.object_body(name, 1024), name
                seen[status] += 1
        finally:
            await client.close()
        return seen

    totals: Counter[int] = Counter()
    for seen in await asyncio.gather(*(one_client(c) for c in range(CONNECTIONS))):
        totals.update(seen)
    return totals


async def slow_big_reads(port: int, count: int) -> None:
    """Fetch large objects while reading them slowly, so the origin connection pauses."""
    client = await RawClient.connect(port)
    try:
        for i in range(count):
            name = f"big-{i}"
            await client.send(f"GET /obj/{name}?size={BIG} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            status, headers = await client.read_head()
            assert status == 200
            body = bytearray()
            while len(body) < int(headers["content-length"]):
                await asyncio.sleep(0.002)  # lag behind the origin: its bytes pile up in the node
                body += await asyncio.wait_for(client.reader.read(32768), BOUND)
            assert bytes(body) == content.object_body(name, BIG)
    finally:
        await client.close()


def origin_requests(runner) -> int:
    return runner.app[STATS_KEY]["__total__"]


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_concurrent_unique_misses_through_frontend_and_upstream(loop):
    async def scenario() -> None:
        runner, oport = await start_origin(OriginSettings(listen=("127.0.0.1", 0)))
        node = await start_node(node_config({"o": {"url": f"http://127.0.0.1:{oport}"}}))
        try:
            totals = await unique_misses(node.port, "fe")
            assert totals == {200: CONNECTIONS * PER_CONNECTION}
            assert origin_requests(runner) == CONNECTIONS * PER_CONNECTION
            assert len(node.completed) == CONNECTIONS * PER_CONNECTION
        finally:
            await node.close()
            await runner.cleanup()

    run(loop, scenario)


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_concurrent_unique_misses_through_the_full_node(loop):
    async def scenario() -> None:
        runner, oport = await start_origin(OriginSettings(listen=("127.0.0.1", 0)))
        cfg = parse_config({
            "server": {"listen": "127.0.0.1:0"}, "admin": {"listen": "off"},
            "origins": {"default": {"url": f"http://127.0.0.1:{oport}"}},
            "chain": [{"type": "cache"}], "log": {"access": "off"},
        })
        node = Node(cfg, admin=False)
        await node.start("127.0.0.1", 0)
        try:
            totals = await unique_misses(node.port, "node")
            n = CONNECTIONS * PER_CONNECTION
            assert totals == {200: n}
            assert origin_requests(runner) == n  # one origin request per miss, no retries
            stats = node.stats()
            assert stats["cache"]["misses"] == n
            # and the same URLs again are all hits: nothing more reaches the origin
            again = await unique_misses(node.port, "node")
            assert again == {200: n}
            assert origin_requests(runner) == n
        finally:
            await node.stop(1.0)
            await runner.cleanup()

    run(loop, scenario)


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_connection_paused_by_a_slow_client_is_reusable(loop):
    async def scenario() -> None:
        runner, oport = await start_origin(OriginSettings(listen=("127.0.0.1", 0)))
        node = await start_node(node_config({"o": {"url": f"http://127.0.0.1:{oport}"}}))
        try:
            small = asyncio.ensure_future(unique_misses(node.port, "mix"))
            await slow_big_reads(node.port, 6)
            totals = await small
            assert totals == {200: CONNECTIONS * PER_CONNECTION}
            assert origin_requests(runner) == CONNECTIONS * PER_CONNECTION + 6
            pool = node.upstream.pools["o"]
            assert pool.reused > 0
        finally:
            await node.close()
            await runner.cleanup()

    run(loop, scenario)
