"""Issue-coverage gaps closed through a real Node (front end, cache stage, upstream) on
127.0.0.1: origin connect timeout -> 504, routing by host and path prefix to several
origins with per-origin Host handling, cache-key configuration (query whitelist, request
headers), and absurd Range headers while the node keeps serving."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any, AsyncIterator, Callable

import aiohttp
import pytest

from edgenode.config import parse_config
from edgenode.node import Node
from edgenode.origin.app import start_origin
from edgenode.origin.settings import OriginSettings

BOUND = 10.0


@pytest.fixture
async def origins() -> AsyncIterator[list[str]]:
    """Two independent simulated origins (their counters tell which one was asked)."""
    runners, urls = [], []
    for _ in range(2):
        runner, port = await start_origin(OriginSettings(listen=("127.0.0.1", 0)))
        runners.append(runner)
        urls.append(f"http://127.0.0.1:{port}")
    yield urls
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def start(run_node: Callable[..., Any]) -> Callable[..., Any]:
    async def make(origins: dict[str, dict[str, Any]], **top: Any) -> Node:
        return await run_node(parse_config({"server": {"listen": "127.0.0.1:0"}, "admin": {"listen": "off"},
                                            "log": {"access": "off"}, "origins": origins, **top}))

    return make


async def get(node: Node, path: str, **headers: str) -> tuple[int, Any, bytes]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{node.port}{path}", headers=headers) as r:
            return r.status, r.headers, await r.read()


@pytest.fixture
def unreachable_port() -> Any:
    """A port whose accept queue is full: the kernel drops further SYNs, so a connect to it
    neither succeeds nor fails until the client's own timeout (no traffic leaves 127.0.0.1)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=BOUND)  # fills the queue
    yield port
    filler.close()
    listener.close()


async def test_connect_timeout_is_504_and_node_keeps_serving(start, origins, unreachable_port) -> None:
    node = await start({"good": {"url": origins[0]},
                        "stuck": {"url": f"http://127.0.0.1:{unreachable_port}", "connect_timeout": "200ms"}},
                       routes=[{"path_prefix": "/stuck", "origin": "stuck"}])
    stuck = asyncio.create_task(get(node, "/stuck/x"))
    status, _, body = await get(node, "/obj/meanwhile?size=10")
    assert status == 200
    status, headers, body = await asyncio.wait_for(stuck, BOUND)
    assert status == 504 and headers["Content-Type"].startswith("text/plain")
    assert body == b"edgenode: origin connect timeout (origin 'stuck')\n"
    stats = node.stats()
    assert stats["requests_by_status_class"].get("5xx") == 1


async def test_routes_by_host_and_prefix_with_per_origin_host_handling(start, origins) -> None:
    a, b = origins
    node = await start(
        {"a": {"url": a, "host_header": "pass"},
         "b": {"url": b, "host_header": "origin"},
         "c": {"url": b, "host_header": "static.internal"}},
        routes=[{"host": "api.test", "path_prefix": "/echo", "origin": "b"},
                {"path_prefix": "/echo/static", "origin": "c"}])

    async def echo(path: str, host: str) -> tuple[str, dict[str, Any]]:
        status, headers, body = await get(node, path, Host=host)
        assert status == 200
        return headers["X-Cache"], json.loads(body)

    # default origin a, Host passed through
    _, seen = await echo("/echo/x", "www.test")
    assert seen["headers"]["host"] == "www.test" and seen["headers"]["x-forwarded-host"] == "www.test"
    # host route -> b, Host rewritten to b's address
    _, seen = await echo("/echo/x", "api.test")
    assert seen["headers"]["host"] == b.removeprefix("http://")
    assert seen["headers"]["x-forwarded-host"] == "api.test"
    # path route -> c (same server as b), Host set to the configured literal
    _, seen = await echo("/echo/static/y", "www.test")
    assert seen["headers"]["host"] == "static.internal"
    # the two servers' request counts show which origin each request reached
    async with aiohttp.ClientSession() as s:
        counts = []
        for url in origins:
            async with s.get(f"{url}/__stats") as r:
                counts.append((await r.json())["paths"])
    assert sum(n for p, n in counts[0].items() if p.startswith("/echo")) == 1
    assert sum(n for p, n in counts[1].items() if p.startswith("/echo")) == 2
    assert node.stats()["origin_requests"] == {"a": 1, "b": 1, "c": 1}


async def test_cache_key_query_whitelist_and_request_headers(start, origins) -> None:
    node = await start({"default": {"url": origins[0]}},
                       cache={"key": {"query_whitelist": ["size", "id"], "sort_query": True,
                                      "headers": ["X-Device"]}})

    async def x_cache(path: str, **headers: str) -> str:
        status, resp_headers, _ = await get(node, path, **headers)
        assert status == 200
        return resp_headers["X-Cache"]

    assert await x_cache("/obj/k?size=10&id=1", **{"X-Device": "mobile"}) == "MISS"
    # params outside the whitelist and the order of params do not make a new object
    assert await x_cache("/obj/k?id=1&utm=z&size=10&ref=q", **{"X-Device": "mobile"}) == "HIT"
    # a whitelisted param does
    assert await x_cache("/obj/k?size=10&id=2", **{"X-Device": "mobile"}) == "MISS"
    # so does a key request header (present with another value, or absent)
    assert await x_cache("/obj/k?size=10&id=1", **{"X-Device": "desktop"}) == "MISS"
    assert await x_cache("/obj/k?size=10&id=1") == "MISS"
    assert await x_cache("/obj/k?size=10&id=1", **{"x-device": "mobile"}) == "HIT"
    assert node.stats()["cache"]["entries"] == 4


@pytest.mark.parametrize("range_value,expected", [
    ("bytes=" + ",".join(["0-0"] * 200), {200, 416}),        # hundreds of ranges
    ("bytes=99999999999-", {416}),                            # a start beyond the object
    ("bytes=0-99999999999", {206}),                           # a huge end is clamped
    ("bytes=-99999999999", {206}),                            # suffix longer than the object
    ("bytes=" + "9" * 400 + "-", {200, 416}),                 # 400-digit numbers: ignored or
    ("bytes=0-" + "9" * 400, {200, 206}),                     # answered, never a crash
    ("bytes=-" + "9" * 400, {200, 206}),
    ("bytes=" + "1-0," * 50 + "5-2", {200}),                  # all invalid: ignored
    ("bytes=\x7f0-1", {200, 400}),                            # a control byte
    ("bytes=" + "0-1," * 3000 + "0-1", {200, 416, 431}),      # a 12 KB field
])
async def test_absurd_range_headers_from_a_cached_object(start, origins, range_value: str,
                                                         expected: set[int]) -> None:
    node = await start({"default": {"url": origins[0]}})
    status, _, full = await get(node, "/obj/rng?size=1k")
    assert status == 200 and len(full) == 1024
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    try:
        writer.write(b"GET /obj/rng?size=1k HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nRange: " % node.port
                     + range_value.encode("latin-1") + b"\r\nConnection: close\r\n\r\n")
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), BOUND)
    finally:
        writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert status in expected, head
    if status == 206:
        assert head.lower().count(b"content-range: bytes ") == 1 and len(body) <= 1024
        assert full.startswith(body) or full.endswith(body)
    if status == 416:
        assert b"content-range: bytes */1024" in head.lower()
    # the node keeps serving, from its cache
    status, headers, again = await get(node, "/obj/rng?size=1k")
    assert status == 200 and headers["X-Cache"] == "HIT" and again == full
