"""Clients that leave mid-download, through the default chain (routing, WAF, image,
two cache stages): every origin connection goes back to the pool or is closed, on every
path (the cache's tee, a Wasm response hook, the image stage, collapsed waiters)."""

from __future__ import annotations

import asyncio
import re

import aiohttp

from edgenode.node import Node

BOUND = 10.0


async def _abort_download(port: int, path: str, read: int, rst: bool) -> None:
    """Request ``path``, read ``read`` bytes of the answer (0: none), then leave."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: shop.test\r\n\r\n".encode())
        await writer.drain()
        if read:
            await asyncio.wait_for(reader.readexactly(read), BOUND)
    finally:
        if rst:
            writer.transport.abort()
        else:
            writer.close()


def _pool_gauge(metrics: str) -> dict[str, float]:
    return {state: float(v) for state, v in re.findall(
        r'^edgenode_origin_connections\{origin="default",state="(\w+)"\} (\S+)$', metrics, re.M)}


async def _metrics(node: Node) -> str:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{node.admin_port}/metrics") as r:
            return await r.text()


async def test_thousand_aborted_downloads_leave_the_origin_pool_idle(node: Node) -> None:
    port = node.port
    jobs = []
    for i in range(1000):
        kind = i % 5
        if kind == 0:  # cacheable, streamed: the cache stage tees it
            jobs.append((f"/stream/t{i}?size=1m", 4096, i % 2 == 0))
        elif kind == 1:  # uncacheable: straight through the Wasm response hooks
            jobs.append((f"/stream/n{i}?size=1m&cc=no-store", 4096, i % 2 == 0))
        elif kind == 2:  # collapsed: five clients on one slow miss, all leave
            jobs.append((f"/stream/c{i // 25}?size=1m&delay_ms=5", 100, True))
        elif kind == 3:  # the image stage: the client leaves before the answer exists
            jobs.append((f"/img/w={8 + i % 40}/image/a{i % 7}.jpg", 0, i % 2 == 0))
        else:  # left before the response head
            jobs.append((f"/slow?delay_ms=20&n={i}", 0, True))
    for start in range(0, len(jobs), 50):
        await asyncio.gather(*(_abort_download(port, *job) for job in jobs[start:start + 50]))

    # everything the aborted requests started settles (the slow and image ones finish)
    for _ in range(100):
        gauge = _pool_gauge(await _metrics(node))
        if gauge.get("busy") == 0:
            break
        await asyncio.sleep(0.1)
    assert gauge["busy"] == 0, gauge
    assert node.upstream.pools["default"].open_count == gauge["idle"]

    # and misses still succeed
    async with aiohttp.ClientSession() as s:
        for i in range(5):
            async with s.get(f"http://127.0.0.1:{port}/obj/after{i}?size=20k") as r:
                assert r.status == 200 and r.headers["X-Cache"] == "MISS"
                assert len(await r.read()) == 20 * 1024
