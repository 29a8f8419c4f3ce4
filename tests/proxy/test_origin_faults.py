"""Faulty origins through a real Node (front end, cache stage, upstream) on 127.0.0.1:
close-delimited bodies cut by a reset, and response heads that never end."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable

import pytest
from dataplane_support import BOUND, RawClient, RawOrigin, abort_writer, parse_responses, read_request_head

from edgenode.config import parse_config
from edgenode.node import Node

FULL = b"".join(b"line %04d of a close-delimited body\n" % i for i in range(400))


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Any]]:
    nodes: list[Node] = []
    origins: list[RawOrigin] = []

    async def make(handler: Any, **origin: Any) -> tuple[Node, RawOrigin]:
        raw = await RawOrigin(handler).start()
        origins.append(raw)
        cfg = parse_config({"server": {"listen": "127.0.0.1:0"}, "admin": {"listen": "off"},
                            "log": {"access": "off"}, "cache": {"store": "memory"},  # several per test
                            "origins": {"default": {"url": f"http://127.0.0.1:{raw.port}", **origin}}})
        node = Node(cfg)
        await node.start()
        nodes.append(node)
        return node, raw

    yield make
    for node in nodes:
        await node.stop(1.0)
    for raw in origins:
        await raw.close()


async def _get(port: int, path: str) -> bytes:
    client = await RawClient.connect(port)
    try:
        await client.send(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        return await client.read_until_close()
    finally:
        await client.close()


async def test_close_delimited_body_cut_by_reset_is_never_cached(start) -> None:
    """The first origin connection sends half a close-delimited body and resets; the
    collapsed waiters must not get those bytes as a complete object, and nothing is stored."""
    release = asyncio.Event()

    async def origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\n\r\n")
        if raw.connections == 1:
            writer.write(FULL[:len(FULL) // 2])
            await writer.drain()
            await release.wait()  # the waiters have joined the leader's flight
            abort_writer(writer)
            return
        writer.write(FULL)
        await writer.drain()
        writer.close()  # a clean end: this body is complete

    node, raw = await start(origin)
    leader = asyncio.create_task(_get(node.port, "/doc"))
    await asyncio.sleep(0.2)
    waiters = [asyncio.create_task(_get(node.port, "/doc")) for _ in range(4)]
    await asyncio.sleep(0.2)
    assert len(node.cache.collapser) == 1  # four waiters behind one origin request
    release.set()
    first = parse_responses(await asyncio.wait_for(leader, BOUND))
    assert first and first[0].status == 200 and not first[0].complete  # the client sees the break
    for raw_bytes in await asyncio.wait_for(asyncio.gather(*waiters), BOUND):
        resp = parse_responses(raw_bytes)[0]
        # a waiter retried at the origin (or got a 502), never the truncated bytes
        assert (resp.status, resp.complete, resp.body) == (200, True, FULL) or resp.status == 502
    later = parse_responses(await _get(node.port, "/doc"))[0]
    assert later.body == FULL and later.complete
    assert node.cache.store.stats()["entries"] == 1  # the complete body, stored once


async def test_close_delimited_body_with_clean_end_is_cached(start) -> None:
    async def origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\n\r\n" + FULL)
        await writer.drain()
        writer.close()

    node, raw = await start(origin)
    for expected in ("MISS", "HIT"):
        resp = parse_responses(await _get(node.port, "/doc"))[0]
        assert resp.body == FULL and resp.headers["x-cache"] == expected
    assert raw.connections == 1


async def _metric(node: Node, name: str, **labels: str) -> float:
    text = node.metrics.exposition().decode()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.split()[-1])
    return 0.0


async def test_endless_origin_header_line_is_502_and_counted(start) -> None:
    """An origin that never ends its header section: the node stops reading at the
    limit (64 KiB by default), answers 502, counts it, and keeps serving."""
    cut: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Endless: ")
        sent = 0
        try:
            for _ in range(16384):  # up to 64 MiB, one header value that never ends
                writer.write(b"a" * 4096)
                sent += 4096
                await writer.drain()
        except ConnectionError:  # the node closed the connection
            cut.set_result(sent)

    node, raw = await start(origin)
    resp = parse_responses(await _get(node.port, "/endless"))[0]
    assert resp.status == 502 and b"larger than 65536 bytes" in resp.body
    # the node closed the connection long before the end (the kernel's socket buffers,
    # several MiB on loopback, hold what the origin wrote past the limit)
    assert await asyncio.wait_for(cut, BOUND) < 64 * 1024 * 1024
    assert await _metric(node, "edgenode_origin_errors_total", origin="default",
                         kind="head_too_large") == 1


async def test_origin_head_limit_is_per_origin_and_counts_many_fields(start) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + b"".join(
        b"X-Field-%03d: %s\r\n" % (i, b"v" * 40) for i in range(100)) + b"\r\nok"

    async def origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request_head(reader)
            writer.write(head)  # ~5.5 KB of fields in one write
            await writer.drain()

    small, _ = await start(origin, max_header_bytes="4KiB")
    resp = parse_responses(await _get(small.port, "/many"))[0]
    assert resp.status == 502 and b"larger than 4096 bytes" in resp.body
    roomy, _ = await start(origin)
    resp = parse_responses(await _get(roomy.port, "/many"))[0]
    assert resp.status == 200 and resp.body == b"ok" and resp.headers["x-field-099"] == "v" * 40


async def test_origin_head_in_small_pieces_is_parsed(start) -> None:
    """A legitimate 60 KB head trickling in 256-byte writes: parsed as it comes, accepted."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + b"".join(
        b"X-F%04d: %s\r\n" % (i, b"w" * 100) for i in range(550)) + b"\r\nok"
    assert 60_000 < len(head) < 64 * 1024

    async def origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        for i in range(0, len(head), 256):
            writer.write(head[i:i + 256])
            await writer.drain()
            await asyncio.sleep(0)

    node, _ = await start(origin)
    resp = parse_responses(await _get(node.port, "/trickle"))[0]
    assert resp.status == 200 and resp.body == b"ok"
