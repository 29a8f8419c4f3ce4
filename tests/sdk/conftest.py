"""Fixtures for filters built with public Proxy-Wasm SDKs: the npm build and a real origin."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from edgenode.http.messages import CIMultiDict, Response, read_body
from edgenode.pipeline.exchange import Exchange
from tests.aiohttp_support import serve_app

REPO = Path(__file__).resolve().parents[2]
AS_EXAMPLE_DIR = REPO / "filters" / "examples" / "assemblyscript"
BUILD_DIR = REPO / "filters" / "build"

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
               "proxy-connection", "content-length"}


@pytest.fixture(scope="session")
def as_wasm() -> dict[str, Path]:
    """Build the AssemblyScript filters from source (npm ci + asc via the example's Makefile)."""
    for tool in ("npm", "make"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool!r} not found on PATH: the AssemblyScript example filter is built "
                        "with npm (Debian: apt-get install nodejs npm make)", pytrace=False)
    proc = subprocess.run(["make", "-C", str(AS_EXAMPLE_DIR)], capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"building {AS_EXAMPLE_DIR} failed (exit {proc.returncode}):\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}", pytrace=False)
    out = {"example": BUILD_DIR / "as_example.wasm", "callout": BUILD_DIR / "as_callout.wasm"}
    for path in out.values():
        assert path.is_file(), f"build succeeded but {path} is missing"
    return out


@dataclass
class Origin:
    """An aiohttp origin on 127.0.0.1 that echoes what it received as JSON."""

    url: str
    seen: list[dict] = field(default_factory=list)
    auth_calls: list[dict] = field(default_factory=list)


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    state = Origin(url="")

    async def echo(request: web.Request) -> web.Response:
        info = {"method": request.method, "path": request.path_qs,
                "headers": {k.lower(): v for k, v in request.headers.items()}}
        state.seen.append(info)
        return web.json_response(info, headers={"x-origin": "1"})

    async def auth(request: web.Request) -> web.Response:
        state.auth_calls.append({k.lower(): v for k, v in request.headers.items()})
        name = request.headers.get("x-as-name", "")
        if name == "alice":
            return web.Response(text="alice-ok\n")
        return web.Response(status=403, text="no\n")

    app = web.Application()
    app.router.add_get("/auth", auth)
    app.router.add_route("*", "/{tail:.*}", echo)
    runner, port = await serve_app(app)
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


class OriginProxy:
    """A terminal handler (and callout target) that forwards to the origin over real TCP."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = aiohttp.ClientSession(auto_decompress=False)

    async def send(self, method: str, target: str, headers: CIMultiDict[str], body: bytes) -> Response:
        out = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP and not k.startswith(":")}
        async with self.session.request(method, self.base_url + target, headers=out, data=body or None,
                                        allow_redirects=False) as resp:
            data = await resp.read()
            hdrs: CIMultiDict[str] = CIMultiDict(
                (k, v) for k, v in resp.headers.items() if k.lower() not in _HOP_BY_HOP)
            return Response(resp.status, hdrs, data, resp.reason or "")

    async def __call__(self, exchange: Exchange) -> Response:
        req = exchange.request
        return await self.send(req.method, req.target, req.headers, await read_body(req.body))

    async def close(self) -> None:
        await self.session.close()


@pytest.fixture
async def origin_proxy(origin: Origin) -> AsyncIterator[OriginProxy]:
    proxy = OriginProxy(origin.url)
    try:
        yield proxy
    finally:
        await proxy.close()

