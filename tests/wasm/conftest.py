"""Fixtures for the Proxy-Wasm host tests: a private engine/cache, a real aiohttp
origin on 127.0.0.1, and a terminal handler that proxies to it with aiohttp."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from edgenode.config import StageConfig
from edgenode.http.messages import CIMultiDict, Request, Response
from edgenode.pipeline.exchange import Exchange
from edgenode.wasm.engine import WasmEngine
from edgenode.wasm.stage import WasmStage

WAT = Path(__file__).parent / "wat"


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> WasmEngine:
    eng = WasmEngine(cache_dir=tmp_path_factory.mktemp("wasm-cache"))
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def python_engine(tmp_path_factory: pytest.TempPathFactory) -> WasmEngine:
    """An engine whose host functions all run their Python implementation (the core's fallback)."""
    eng = WasmEngine(cache_dir=tmp_path_factory.mktemp("wasm-cache-py"), pool_instances=0,
                     native_hostcalls=False)
    yield eng
    eng.close()


class Origin:
    """A real HTTP origin: echoes what it received, serves /auth for callouts."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.port = 0

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append({"path": request.path_qs, "headers": dict(request.headers), "body": body})
        if request.path == "/slow":
            await self.release.wait()
        return web.Response(body=b"origin:" + body, headers={"Server": "test-origin",
                                                              "X-Origin-Path": request.path_qs})

    async def auth(self, request: web.Request) -> web.Response:
        return web.Response(status=202, body=b"token-123")


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    o = Origin()
    app = web.Application()
    app.router.add_route("*", "/auth", o.auth)
    app.router.add_route("*", "/{tail:.*}", o.echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    o.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield o
    o.release.set()
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        yield s


async def _send(session: aiohttp.ClientSession, port: int, req: Request, timeout: float | None) -> Response:
    body = req.body if isinstance(req.body, (bytes, bytearray)) else b"".join([c async for c in req.body])
    headers = {k: v for k, v in req.headers.items() if k.lower() not in ("host", "content-length")}
    async with session.request(req.method, f"http://127.0.0.1:{port}{req.target}", headers=headers,
                               data=body or None,
                               timeout=aiohttp.ClientTimeout(total=timeout)) as r:
        data = await r.read()
        hdrs = CIMultiDict((k, v) for k, v in r.headers.items()
                           if k.lower() not in ("transfer-encoding", "connection", "date"))
        return Response(r.status, hdrs, data)


@pytest.fixture
def terminal(origin: Origin, session: aiohttp.ClientSession) -> Callable:
    """The terminal handler: forwards the exchange's request to the origin."""
    async def handler(ex: Exchange) -> Response:
        return await _send(session, origin.port, ex.request, 10)
    return handler


@pytest.fixture
def callout(origin: Origin, session: aiohttp.ClientSession) -> Callable:
    """Upstream.callout stand-in: "auth" works, "down" fails, other names raise KeyError."""
    async def run(name: str, req: Request, timeout: float | None) -> Response:
        if name == "down":
            raise aiohttp.ClientConnectionError("upstream down")
        return await _send(session, origin.port, req, timeout)

    def call(name: str, req: Request, timeout: float | None) -> Any:
        if name not in ("auth", "down"):
            raise KeyError(name)
        return run(name, req, timeout)
    return call


@pytest.fixture
def make_stage(engine: WasmEngine, callout: Callable) -> Callable[..., WasmStage]:
    stages: list[WasmStage] = []

    def make(module: str, name: str = "f", engine: WasmEngine = engine, **options: Any) -> WasmStage:
        opts = {"module": str(WAT / module), **options}
        st = WasmStage(StageConfig("wasm", name, opts), base_dir=WAT, callout=callout,
                       node_props={"worker": 3}, engine=engine)
        stages.append(st)
        return st
    yield make
    for st in stages:
        if st.vm is not None:
            st.vm.close()
