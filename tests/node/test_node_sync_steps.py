"""The request path's synchronous steps through a real node on 127.0.0.1: a cache hit
behind filters that do not pause is answered without a task; a filter that traps, loops
or exhausts its memory there is contained as on the awaited path; a filter that pauses
on the same chain continues in a task (the same steps, resumed)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any, Callable

import aiohttp
import pytest

from edgenode.config import StageConfig
from edgenode.frontend.connection import Connection
from edgenode.node import Node
from edgenode.pipeline.chain import Chain

WAT = Path(__file__).resolve().parents[1] / "wasm" / "wat"


class TaskCount:
    """Counts the front end's request tasks (``Dispatcher._run``) on the running loop."""

    def __init__(self) -> None:
        self.runs = 0
        self.loop = asyncio.get_running_loop()
        self._factory = self.loop.get_task_factory()
        self.loop.set_task_factory(self._task)

    def _task(self, loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[Any]:
        if getattr(coro, "__qualname__", "") == "Dispatcher._run":
            self.runs += 1
        return asyncio.Task(coro, loop=loop, **kw)

    def close(self) -> None:
        self.loop.set_task_factory(self._factory)


def wasm(name: str, module: str, **options: Any) -> StageConfig:
    return StageConfig("wasm", name, {"module": str(WAT / module), **options})


async def get(s: aiohttp.ClientSession, node: Node, path: str, **headers: str) -> tuple[int, Any, bytes]:
    async with s.get(f"http://127.0.0.1:{node.port}{path}", headers=headers) as r:
        return r.status, r.headers, await r.read()


async def test_hits_behind_a_filter_take_no_task(start_node: Callable[..., Any]) -> None:
    node = await start_node(wasm("sync-header", "header_only.wat"))
    async with aiohttp.ClientSession() as s:
        status, headers, body = await get(s, node, "/obj/sync?size=300")  # the miss: a task
        assert status == 200 and headers["X-Cache"] == "MISS" and len(body) == 300
        count = TaskCount()
        try:
            for _ in range(20):
                status, headers, body = await get(s, node, "/obj/sync?size=300")
                assert status == 200 and headers["X-Cache"] == "HIT" and len(body) == 300
                assert headers.getall("x-filtered") == ["yes"]  # added once, by the filter
                assert int(headers["Content-Length"]) == 300
        finally:
            count.close()
    assert count.runs == 0


@pytest.mark.parametrize("what", ["trap", "loop", "bomb"])
@pytest.mark.parametrize("where", ["request", "response"])
async def test_a_misbehaving_filter_on_the_synchronous_path_is_contained(
        start_node: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, what: str, where: str) -> None:
    """Per-request isolation: only the failing stream gets 503, the next hit is served
    (by the chain's flat step and the kept block); a shared VM under fail_open: the hit
    goes out without the filter."""
    isolated = wasm(f"sync-{what}-{where}", "misbehave.wat", isolation="per-request",
                    cpu_deadline_ms=20, memory_limit="2MiB")
    node = await start_node(isolated)
    spy = HitSpy(node, monkeypatch)
    bad = {"x-misbehave": what} | ({"x-misbehave-in": "response"} if where == "response" else {})
    path = f"/obj/contained-{what}-{where}?size=100"
    async with aiohttp.ClientSession() as s:
        assert (await get(s, node, path))[0] == 200  # stored
        count = TaskCount()
        try:
            status, _, body = await get(s, node, path, **bad)
            assert status == 503 and b"failed" in body
            status, headers, _ = await get(s, node, path)
            assert status == 200 and headers["X-Cache"] == "HIT" and headers["x-ok"] == "1"
        finally:
            count.close()
        assert count.runs == 0  # both answered on the synchronous path
        assert spy.answered >= 1  # the hit after the failure: the flat step, the kept block

    opened = await start_node(wasm(f"sync-open-{what}-{where}", "misbehave.wat", failure_policy="fail_open",
                                   cpu_deadline_ms=20, memory_limit="2MiB"))
    async with aiohttp.ClientSession() as s:
        assert (await get(s, opened, path))[0] == 200
        status, headers, _ = await get(s, opened, path, **bad)
        assert status == 200 and headers["X-Cache"] == "HIT" and "x-ok" not in headers


async def test_a_pausing_filter_continues_in_a_task(start_node: Callable[..., Any]) -> None:
    """pause.wat holds the response headers and resumes from its tick: that request
    continues in a task; the others on the same chain stay synchronous."""
    node = await start_node(wasm("sync-pause", "pause.wat"))
    async with aiohttp.ClientSession() as s:
        assert (await get(s, node, "/obj/paused?size=50"))[0] == 200
        count = TaskCount()
        try:
            status, headers, body = await get(s, node, "/obj/paused?size=50", **{"x-resp": "100t"})
            assert status == 200 and headers["x-resumed"] == "1" and headers["X-Cache"] == "HIT"
            assert len(body) == 50
            held = count.runs
            status, headers, _ = await get(s, node, "/obj/paused?size=50")
            assert status == 200 and "x-resumed" not in headers
        finally:
            count.close()
    assert held == 1 and count.runs == 1


class HitSpy:
    """Counts the cache's general steps (``handle``) and its hits answered beside them
    (``hit_response``) on ``node``."""

    def __init__(self, node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
        self.handled = self.answered = 0
        cache = node.cache
        assert cache is not None
        handle, hit_response = cache.handle, cache.hit_response

        def counted_handle(ex: Any, rest: Any) -> Any:
            self.handled += 1
            return handle(ex, rest)

        def counted_hit(ex: Any) -> Any:
            out = hit_response(ex)
            self.answered += out is not None
            return out

        monkeypatch.setattr(cache, "handle", counted_handle)
        monkeypatch.setattr(cache, "hit_response", counted_hit)
        node.entry.chain = Chain(node.stages, node.upstream)  # relinked around the counting methods


async def test_hits_behind_filters_skip_the_caches_general_step(
        start_node: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Two filters, then the cache: a fresh plain hit is answered from the entry's kept
    block, each filter's hooks run once (one x-filtered per filter) and the per-filter
    timings still reach Server-Timing; a request the cache must decide (Range) takes
    its general step after the same filters."""
    node = await start_node(wasm("first", "header_only.wat"), wasm("second", "header_only.wat"))
    spy = HitSpy(node, monkeypatch)
    async with aiohttp.ClientSession() as s:
        status, headers, _ = await get(s, node, "/obj/prefix?size=200")
        assert status == 200 and headers["X-Cache"] == "MISS" and spy.handled == 1
        status, headers, body = await get(s, node, "/obj/prefix?size=200", **{"x-edgenode-timing": "1"})
        assert status == 200 and headers["X-Cache"] == "HIT" and len(body) == 200
        assert headers.getall("x-filtered") == ["yes", "yes"]
        timing = ", ".join(headers.getall("Server-Timing", []))
        assert "wasm-first;dur=" in timing and "wasm-second;dur=" in timing
        assert (spy.handled, spy.answered) == (1, 1)
        status, headers, body = await get(s, node, "/obj/prefix?size=200", Range="bytes=0-9")
        assert status == 206 and len(body) == 10 and headers.getall("x-filtered") == ["yes", "yes"]
        assert (spy.handled, spy.answered) == (2, 1)
    stats = node.stats()
    assert stats["cache"]["hits"] >= 2


async def test_a_filter_that_rewrites_the_path_gets_the_rewritten_key(
        start_node: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """rewrite.wat sets :path to /rewritten: every client path is a hit of that one entry
    once stored, and the response hook's edits (x-served-by added, Server removed) apply
    to the hit."""
    from edgenode.http.messages import CIMultiDict, Response

    seen: list[str] = []

    async def origin(ex: Any) -> Response:
        seen.append(ex.request.target)
        return Response(200, CIMultiDict({"Cache-Control": "max-age=60", "Server": "stub"}), b"r" * 64)

    node = await start_node(wasm("rewrite", "rewrite.wat"))
    spy = HitSpy(node, monkeypatch)
    node.entry.chain = Chain(node.stages, origin)
    async with aiohttp.ClientSession() as s:
        status, headers, _ = await get(s, node, "/obj/one")
        assert status == 200 and headers["X-Cache"] == "MISS" and seen == ["/rewritten"]
        status, headers, body = await get(s, node, "/obj/two")
        assert status == 200 and headers["X-Cache"] == "HIT" and body == b"r" * 64
        assert headers["x-served-by"] == "wasm" and "Server" not in headers
    assert seen == ["/rewritten"] and spy.answered == 1


async def test_a_request_hold_behind_a_filter_hands_the_stream_on(
        start_node: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """header_only, then pause.wat holding the request headers until its tick: the hold
    continues in a task from the held filter on (the cache's own step answers the hit),
    and the first filter's hooks still run once each around it."""
    node = await start_node(wasm("hand-first", "header_only.wat"), wasm("hand-pause", "pause.wat"))
    spy = HitSpy(node, monkeypatch)
    async with aiohttp.ClientSession() as s:
        assert (await get(s, node, "/obj/handover?size=40"))[0] == 200
        count = TaskCount()
        try:
            status, headers, body = await get(s, node, "/obj/handover?size=40", **{"x-pause": "300t"})
            assert status == 200 and headers["X-Cache"] == "HIT" and len(body) == 40
            assert headers.getall("x-filtered") == ["yes"]
            held = (count.runs, spy.answered)
            status, headers, _ = await get(s, node, "/obj/handover?size=40")
            assert status == 200 and headers.getall("x-filtered") == ["yes"]
        finally:
            count.close()
    assert held == (1, 0) and count.runs == 1 and spy.answered == 1


async def raw_hit(node: Node, path: str, extra: str = "") -> bytes:
    """One GET on a new connection: the exact response bytes, the request id masked."""
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\nUser-Agent: raw\r\n{extra}\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        body = await reader.readexactly(length)
    finally:
        writer.close()
    head = re.sub(rb"\r\nX-Request-Id: [!-~]+\r\n", b"\r\nX-Request-Id: *\r\n", head)
    head = re.sub(rb"wasm-([\w-]+);dur=[0-9.]+", rb"wasm-\1;dur=*", head)
    head = re.sub(rb"\r\nAge: [0-9]+\r\n", b"\r\nAge: *\r\n", head)  # a second may pass
    head = re.sub(rb"; ttl=[0-9]+", b"; ttl=*", head)
    return head + body


async def test_a_filtered_hit_writes_the_general_writers_bytes(
        start_node: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Two filters, then the cache: a hit written from its kept head (the fast path's,
    ``_write_wire`` on the general path) is byte for byte the general writer's answer (Server-Timing per filter, Cache-Status,
    the fields the filters added), and counts the same in the node's metrics."""
    node = await start_node(wasm("wire-first", "header_only.wat"), wasm("wire-second", "header_only.wat"))
    path = "/obj/wire?size=500"
    await raw_hit(node, path)  # stored
    metrics = node.metrics
    timing = ("", "X-Edgenode-Timing: 1\r\n")
    counts = [(dict(metrics._requests), dict(metrics._bytes))]
    fast = [await raw_hit(node, path, extra) for extra in timing]
    counts.append((dict(metrics._requests), dict(metrics._bytes)))
    monkeypatch.setattr(Connection, "_write_wire", lambda *args: False)
    monkeypatch.setattr(node.frontend, "fast_path", None)  # its filtered hits leave as bytes too
    general = [await raw_hit(node, path, extra) for extra in timing]
    counts.append((dict(metrics._requests), dict(metrics._bytes)))
    assert fast == general
    assert b"x-filtered: yes\r\nx-filtered: yes\r\n" in fast[0] and b"X-Cache: HIT\r\n" in fast[0]
    assert b"Cache-Status: " in fast[0]
    assert b"Server-Timing: wasm-wire-second;dur=*" in fast[1] and b"wasm-wire-first;dur=*" in fast[1]

    def added(i: int, j: int) -> dict[Any, int]:
        old, new = counts[i][j], counts[i + 1][j]
        return {k: v - old.get(k, 0) for k, v in new.items() if v != old.get(k, 0)}

    assert added(0, 0) == added(1, 0) == {("HIT", "2xx"): 2}
    assert added(0, 1) == added(1, 1) == {"HIT": 1000}


async def read_to_close(reader: asyncio.StreamReader) -> bytes:
    """Everything the node sends until it closes the connection (5 s per read at most)."""
    data = b""
    while more := await asyncio.wait_for(reader.read(1 << 20), 5):
        data += more
    return data


async def test_pipelined_answers_held_by_the_batch_keep_their_order(
        start_node: Callable[..., Any]) -> None:
    """Hits behind a filter leave after their batch's steps (``Batch.send``): pipelined
    on one connection they come back in order, and an answer held by the batch still
    goes out before a close (Connection: close, or a protocol error after it)."""
    node = await start_node(wasm("order", "header_only.wat"))
    await raw_hit(node, "/obj/order?size=64")  # stored
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    try:
        one = "GET /obj/order?size=64&n={} HTTP/1.1\r\nHost: t\r\n{}\r\n"
        await raw_hit(node, "/obj/order?size=64&n=0")
        await raw_hit(node, "/obj/order?size=64&n=1")
        writer.write((one.format(0, "") + one.format(1, "") + one.format(0, "")
                      + "GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n").encode())
        data = await read_to_close(reader)
    finally:
        writer.close()
    heads = re.findall(rb"HTTP/1.1 (\d+)[^\r]*\r\n", data)
    assert heads == [b"200", b"200", b"200", b"400"]
    assert data.count(b"X-Cache: HIT\r\n") == 3 and data.count(b"x-filtered: yes\r\n") == 3

    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    try:
        writer.write((one.format(0, "") + one.format(1, "Connection: close\r\n")).encode())
        data = await read_to_close(reader)
    finally:
        writer.close()
    assert re.findall(rb"HTTP/1.1 (\d+)", data) == [b"200", b"200"]
    assert data.count(b"X-Cache: HIT\r\n") == 2 and b"Connection: close\r\n" in data
