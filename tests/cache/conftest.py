"""Fixtures: a real aiohttp origin on 127.0.0.1 and a terminal handler that calls it.

The terminal handler uses aiohttp's client so these tests do not depend on the
node's own front end / origin client (written in parallel).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from edgenode.cache.directives import format_http_date
from edgenode.cache.lmdb_store import SharedStore
from edgenode.cache.stage import CacheStage
from edgenode.cache.store import CacheStore, Store
from edgenode.config import CacheConfig
from edgenode.http.messages import Request, Response, read_body
from edgenode.pipeline.exchange import Exchange
from tests.aiohttp_support import serve_app

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-encoding"}


class Clock:
    """Injectable clock that starts at real time (origins stamp real Date fields)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Origin:
    """Routes path -> handler; counts requests per path; records request headers."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {}
        self.hits: Counter[str] = Counter()
        self.seen: dict[str, list[CIMultiDict[str]]] = {}
        self.url = ""
        self.runner: web.AppRunner | None = None

    def route(self, path: str, status: int = 200, body: bytes = b"hello", **headers: str) -> None:
        hdrs = {k.replace("_", "-"): v for k, v in headers.items()}

        async def handler(request: web.Request) -> web.Response:
            return web.Response(status=status, body=body, headers=hdrs)
        self.routes[path] = handler

    async def first_request(self, path: str) -> None:
        """Wait (at most about a second) until a request for ``path`` has arrived."""
        for _ in range(200):
            if self.hits[path]:
                return
            await asyncio.sleep(0.005)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path] += 1
        self.seen.setdefault(request.path, []).append(CIMultiDict(request.headers))
        handler = self.routes.get(request.path)
        if handler is None:
            return web.Response(status=404, text="no route")
        resp = await handler(request)
        if "Date" not in resp.headers and not resp.prepared:
            resp.headers["Date"] = format_http_date(self.clock())  # the origin shares the test clock
        return resp

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self.runner, port = await serve_app(app)
        self.url = f"http://127.0.0.1:{port}"


class Harness:
    def __init__(self, origin: Origin, session: aiohttp.ClientSession, cfg: CacheConfig,
                 clock: Clock, store: Store) -> None:
        self.origin = origin
        self.session = session
        self.clock = clock
        self.store = store
        self.stage = CacheStage(cfg, self.store, clock)
        self.origin_url = origin.url
        self.handler = self.stage.wrap(self.terminal)

    async def terminal(self, ex: Exchange) -> Response:
        req = ex.request
        headers = [(k, v) for k, v in req.headers.items()]
        body = await read_body(req.body)
        resp = await self.session.request(
            req.method, self.origin_url + req.target, headers=headers, data=body or None,
            allow_redirects=False, auto_decompress=False)

        async def stream():
            try:
                async for chunk in resp.content.iter_any():
                    yield chunk
            finally:
                resp.release()
        h = CIMultiDict((k, v) for k, v in resp.headers.items() if k.lower() not in _HOP)
        return Response(resp.status, h, stream(), resp.reason or "")

    async def refreshes_done(self) -> None:
        """Wait (at most about two seconds) until no background revalidation runs."""
        for _ in range(200):
            if not self.stage._refreshing:
                return
            await asyncio.sleep(0.01)

    async def send(self, target: str, method: str = "GET", host: str = "example.com",
                   **headers: str) -> tuple[Response, bytes, Exchange]:
        h = CIMultiDict({"Host": host})
        for k, v in headers.items():
            h[k.replace("_", "-")] = v
        ex = Exchange(Request(method, target, h))
        resp = await self.handler(ex)
        body = await read_body(resp.body)
        return resp, body, ex


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
async def origin(clock):
    o = Origin(clock)
    await o.start()
    yield o
    await o.runner.cleanup()  # type: ignore[union-attr]


@pytest.fixture
async def session():
    s = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
    yield s
    await s.close()


def stores(kind: str, tmp_path, clock, alone: bool = False):
    """A store maker for the fixtures, ``(make, made)``: ``kind`` "memory" or an LMDB store
    (``alone``: its node is this process, so it takes no leases)."""
    made: list[Store] = []

    def make(cfg: CacheConfig) -> Store:
        store: Store = (CacheStore(cfg, clock) if kind == "memory"
                        else SharedStore(cfg, tmp_path / f"{'alone' if alone else 'store'}{len(made)}",
                                     clock=clock, alone=alone))
        made.append(store)
        return store
    return make, made


@pytest.fixture(params=["memory", "lmdb"])
def make_store(request, tmp_path, clock):
    """Every stage test runs on both stores: they must behave the same."""
    make, made = stores(request.param, tmp_path, clock)
    yield make
    for store in made:
        store.close()


@pytest.fixture
async def make_harness(origin, session, clock, make_store):
    made: list[Harness] = []

    def make(store_for=None, **cfg_kw) -> Harness:
        """A harness with ``cfg_kw``'s cache config; ``store_for(cfg)`` makes its store
        (``make_store`` by default)."""
        cfg = CacheConfig(**cfg_kw)
        h = Harness(origin, session, cfg, clock, (store_for or make_store)(cfg))
        made.append(h)
        return h
    yield make
    for h in made:
        await h.stage.close()


@pytest.fixture
def harness(make_harness):
    return make_harness()


def held_stream(origin, path: str, release: asyncio.Event):
    """An uncacheable streamed answer for ``path`` whose first request's body stays open
    until ``release`` is set (its waiters must be answered meanwhile)."""
    async def streaming(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Cache-Control": "private"})
        await resp.prepare(request)
        await resp.write(b"first")
        if origin.hits[path] == 1:
            await release.wait()
        await resp.write(b"last")
        await resp.write_eof()
        return resp
    return streaming


def reset_leader(origin, path: str, gate: asyncio.Event):
    """A cacheable answer for ``path`` whose first request's connection is reset mid-body
    once ``gate`` is set; later requests get a whole answer."""
    async def flaky(request: web.Request) -> web.StreamResponse:
        if origin.hits[path] == 1:
            resp = web.StreamResponse(headers={"Cache-Control": "max-age=60", "Content-Length": "100"})
            await resp.prepare(request)
            await resp.write(b"x" * 10)
            await gate.wait()
            request.transport.close()  # type: ignore[union-attr]
            return resp
        return web.Response(body=b"ok", headers={"Cache-Control": "max-age=60"})
    return flaky
