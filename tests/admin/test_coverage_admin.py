"""Issue-coverage gaps of the admin API against a real node and origin (real sockets):
``PURGE`` with an absolute URL, and the /metrics series that must move (origin latency
histogram buckets, evictions, collapsed requests)."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgenode.node import Node

TOKEN = "test-token"  # what conftest.node_config sets
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BOUND = 10.0


async def fetch(node: Node, path: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{node.port}{path}") as r:
            return r.status, r.headers.get("X-Cache", ""), await r.read()


async def raw_admin(node: Node, head: bytes) -> tuple[int, bytes]:
    """Send one request head verbatim to the admin port (aiohttp's client cannot send an
    absolute-form target); return the status and the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", node.admin_port)
    try:
        writer.write(head)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), BOUND)  # Connection: close
    finally:
        writer.close()
    head_part, _, body = data.partition(b"\r\n\r\n")
    return int(head_part.split(b" ", 2)[1]), body


async def metrics(node: Node) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{node.admin_port}/metrics") as r:
            assert r.status == 200
            text = await r.text()
    return {(smp.name, tuple(sorted(smp.labels.items()))): smp.value
            for fam in text_string_to_metric_families(text) for smp in fam.samples}


@pytest.mark.parametrize("soft", [False, True])
async def test_purge_method_with_absolute_url(make_node: Callable[..., Any], soft: bool) -> None:
    """``PURGE http://host/path`` on the admin port purges that URL: the target's authority
    names the site (RFC 9112 §3.2.2), not the Host header, which names the admin listener."""
    node: Node = await make_node()
    path = f"/obj/abs-{int(soft)}?size=1k"
    assert (await fetch(node, path))[1] == "MISS"
    assert (await fetch(node, path))[1] == "HIT"
    url = f"http://127.0.0.1:{node.port}{path}".encode()
    extra = b"Fastly-Soft-Purge: 1\r\n" if soft else b""
    admin_host = b"127.0.0.1:%d" % node.admin_port
    status, body = await raw_admin(node, b"PURGE " + url + b" HTTP/1.1\r\nHost: " + admin_host
                                   + b"\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n" + extra
                                   + b"Connection: close\r\n\r\n")
    assert status == 200, body
    assert b'"purged": 1' in body
    assert (await fetch(node, path))[1] != "HIT"
    assert node.stats()["cache"]["entries"] == 1  # refetched (hard) or kept stale (soft)
    # without the token the same request is refused and purges nothing
    assert (await fetch(node, path))[1] == "HIT"
    status, _ = await raw_admin(node, b"PURGE " + url + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 401
    assert (await fetch(node, path))[1] == "HIT"


async def test_origin_latency_histogram_buckets_move(make_node: Callable[..., Any]) -> None:
    node: Node = await make_node()
    before = await metrics(node)
    # the origin sleeps 300 ms before its first byte: the sample must land above 0.25 s
    assert (await fetch(node, "/obj/lat?size=100&latency_ms=300"))[0] == 200
    assert (await fetch(node, "/obj/lat?size=100&latency_ms=300"))[1] == "HIT"  # no origin sample
    after = await metrics(node)

    def bucket(m: dict, le: str) -> float:
        return m.get(("edgenode_origin_latency_seconds_bucket", (("le", le), ("origin", "default"))), 0.0)

    assert bucket(after, "+Inf") == bucket(before, "+Inf") + 1
    assert bucket(after, "0.25") == bucket(before, "0.25")  # 300 ms is not <= 0.25 s
    total = ("edgenode_origin_latency_seconds_sum", (("origin", "default"),))
    assert after[total] - before.get(total, 0.0) >= 0.3
    count = ("edgenode_origin_latency_seconds_count", (("origin", "default"),))
    assert after[count] == before.get(count, 0.0) + 1


async def test_evictions_counter_moves(make_node: Callable[..., Any]) -> None:
    node: Node = await make_node(cache={"max_bytes": 64 * 1024, "max_object_bytes": 32 * 1024})
    assert (await metrics(node))[("edgenode_cache_evictions_total", ())] == 0
    for i in range(6):  # 6 x 20 KiB into 64 KiB: the oldest go
        assert (await fetch(node, f"/obj/ev{i}?size=20k"))[1] == "MISS"
    m = await metrics(node)
    evicted = m[("edgenode_cache_evictions_total", ())]
    assert evicted >= 3
    assert m[("edgenode_cache_bytes", ())] <= 64 * 1024
    assert m[("edgenode_cache_entries", ())] == 6 - evicted
    assert node.stats()["cache"]["evictions"] == evicted  # /stats and /metrics agree
    assert (await fetch(node, "/obj/ev0?size=20k"))[1] == "MISS"  # least recently used went first
    assert (await fetch(node, "/obj/ev5?size=20k"))[1] == "HIT"


async def test_collapsed_counter_moves(make_node: Callable[..., Any]) -> None:
    node: Node = await make_node()
    before = (await metrics(node))[("edgenode_cache_collapsed_total", ())]
    path = "/obj/col?size=1k&latency_ms=300"
    results = await asyncio.gather(*(fetch(node, path) for _ in range(5)))
    assert all(status == 200 for status, _, _ in results)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{node.admin_port}/stats", headers=AUTH) as r:
            stats = await r.json()
    assert stats["origin_requests"] == {"default": 1}  # one origin fetch for five clients
    after = (await metrics(node))[("edgenode_cache_collapsed_total", ())]
    assert after - before == 4
    assert stats["cache"]["collapsed"] == after
