"""Helpers for the conformance tests. The integrated data path under test: client -> FrontEnd -> CacheStage -> Upstream -> origin.

Everything runs on real sockets on 127.0.0.1 (ephemeral ports).  The origin is a
scriptable aiohttp app: each test queues the responses a path gives (the last one
repeats), and the origin counts requests and records their headers, so a test can
tell "served from cache" (origin count unchanged) from "forwarded".  Time passes
through one injectable clock shared by the CacheStage and the origin's Date field.
The client side is aiohttp's ClientSession (a real third-party client) and curl.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

sys.path.insert(0, str(Path(__file__).parent.parent / "http"))

from dataplane_support import BOUND, Node, node_config, start_node  # noqa: E402
from edgenode.cache.directives import format_http_date, parse_http_date  # noqa: E402
from edgenode.cache.stage import CacheStage  # noqa: E402
from edgenode.cache.store import CacheStore  # noqa: E402
from edgenode.config import CacheConfig  # noqa: E402
from edgenode.pipeline.stage import build_chain  # noqa: E402
from tests.aiohttp_support import serve_app  # noqa: E402


class Clock:
    """Injectable clock starting at real time; ``advance`` is the suite's ``pause_after``."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def date(self, offset: float = 0) -> str:
        """An HTTP-date ``offset`` seconds from now (the suite's ``['Date', 0]`` style)."""
        return format_http_date(self.now + offset)


@dataclass
class Reply:
    """One scripted origin response.

    ``conditional``: answer 304 (same headers, no body) when the request's
    If-None-Match names our ETag or its If-Modified-Since is not older than our
    Last-Modified, as the cache-tests server does.  ``reset_after``: send that many
    body bytes of a larger Content-Length, then reset the connection.  ``chunked``:
    stream the body with chunked transfer coding (no Content-Length).  ``ranges``: honour
    a single-range Range (and an If-Range naming our ETag or Last-Modified) with a 206.
    """

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b"body"
    conditional: bool = False
    reset_after: int | None = None
    delay: float = 0.0
    chunked: bool = False
    ranges: bool = False


class Origin:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.scripts: dict[str, list[Reply]] = {}
        self.hits: Counter[str] = Counter()
        self.seen: dict[str, list[CIMultiDict[str]]] = {}
        self.methods: dict[str, list[str]] = {}
        self.statuses: dict[str, list[int]] = {}
        self.port = 0
        self.runner: web.AppRunner | None = None

    def script(self, path: str, *replies: Reply) -> None:
        self.scripts[path] = list(replies)

    def last(self, path: str) -> CIMultiDict[str]:
        return self.seen[path][-1]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] += 1
        self.seen.setdefault(path, []).append(CIMultiDict(request.headers))
        self.methods.setdefault(path, []).append(request.method)
        await request.read()
        queue = self.scripts.get(path)
        if not queue:
            return web.Response(status=404, text="no script")
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if reply.delay:
            await asyncio.sleep(reply.delay)
        headers: CIMultiDict[str] = CIMultiDict(reply.headers)
        if "date" not in headers:
            headers["Date"] = self.clock.date()
        status, body = reply.status, reply.body
        if reply.conditional and _matches(request, headers):
            status, body = 304, b""
        elif reply.ranges and status == 200 and _range_applies(request, headers):
            span = _single_range(request.headers["Range"], len(body))
            if span is not None:
                first, last = span
                status, body = 206, body[first:last + 1]
                headers["Content-Range"] = f"bytes {first}-{last}/{len(reply.body)}"
        self.statuses.setdefault(path, []).append(status)
        if reply.chunked and status != 304:
            resp = web.StreamResponse(status=status, headers=headers)
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for i in range(0, len(body), 1000):
                await resp.write(body[i:i + 1000])
            await resp.write_eof()
            return resp
        if reply.reset_after is not None:
            resp = web.StreamResponse(status=status, headers=headers)
            resp.content_length = len(body)
            await resp.prepare(request)
            await resp.write(body[:reply.reset_after])
            await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.abort()
            return resp
        return web.Response(status=status, headers=headers, body=body if status != 304 else None)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self.runner, self.port = await serve_app(app)

    async def close(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


def _matches(request: web.Request, headers: CIMultiDict[str]) -> bool:
    inm = request.headers.get("If-None-Match")
    if inm is not None:
        etag = headers.get("ETag")
        return etag is not None and any(t.strip() in (etag, "*") for t in inm.split(","))
    ims = parse_http_date(request.headers.get("If-Modified-Since"))
    lm = parse_http_date(headers.get("Last-Modified"))
    return ims is not None and lm is not None and lm <= ims


def _range_applies(request: web.Request, headers: CIMultiDict[str]) -> bool:
    if "Range" not in request.headers:
        return False
    if_range = request.headers.get("If-Range")
    return if_range is None or if_range in (headers.get("ETag"), headers.get("Last-Modified"))


def _single_range(value: str, length: int) -> tuple[int, int] | None:
    unit, _, spec = value.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    if not first:
        return (max(0, length - int(last)), length - 1)
    return (int(first), min(int(last), length - 1) if last else length - 1)


@dataclass
class Got:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class Client:
    """aiohttp ClientSession pointed at the node."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=BOUND))

    def url(self, path: str) -> str:
        """The cache-key spelling of ``path`` (what purge_url takes)."""
        return self.base + path

    async def get(self, path: str, method: str = "GET", headers: Any = None,
                  data: bytes | None = None) -> Got:
        async with self.session.request(method, self.base + path, headers=headers, data=data,
                                        allow_redirects=False) as resp:
            body = await resp.read()
            return Got(resp.status, resp.headers, body)

    async def close(self) -> None:
        await self.session.close()


@dataclass
class Edge:
    node: Node
    stage: CacheStage
    store: CacheStore
    client: Client
    origin: Origin
    clock: Clock

    @property
    def port(self) -> int:
        return self.node.port

    async def get(self, path: str, **kw: Any) -> Got:
        return await self.client.get(path, **kw)


async def check(edge: Edge, path: str, first: list[tuple[str, str]], pause: float = 0,
                request_headers: Any = None, status: int = 200,
                body: bytes = b"body") -> tuple[bool, Got]:
    """The suite's basic shape: store ``first``, let ``pause`` seconds pass, ask again.

    Returns (served from cache, second response).
    """
    edge.origin.script(path, Reply(status, first, body))
    await edge.get(path)
    edge.clock.advance(pause)
    before = edge.origin.hits[path]
    got = await edge.get(path, headers=request_headers)
    return edge.origin.hits[path] == before, got
