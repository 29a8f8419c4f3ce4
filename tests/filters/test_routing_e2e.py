"""The routing filter end to end: client -> node (routing -> cache) -> two real aiohttp
origins on 127.0.0.1 that answer with their name and the path they received."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from edgenode.config import parse_config
from tests.filters.conftest import ROOT


async def start_origin(name: str) -> tuple[web.AppRunner, str]:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=f"{name} {request.path_qs}", headers={"Cache-Control": "no-store"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def _fnv1a(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


@pytest.fixture
async def node(build_filter):
    from edgenode.node import Node

    runners = []
    urls = {}
    for name in ("blue", "green"):
        runner, url = await start_origin(name)
        runners.append(runner)
        urls[name] = url
    routing = {
        "default_origin": "blue",
        "no_match": "404",
        "routes": [
            {"match": {"path_prefix": "/old/"}, "redirect": {"status": 302, "location": "/new/$1"}},
            {"match": {"path_prefix": "/g/"}, "origin": "green", "rewrite": "/green/$1"},
            {"match": {"path_prefix": "/canary"},
             "split": {"origins": [{"origin": "blue", "weight": 80}, {"origin": "green", "weight": 20}],
                       "sticky_cookie": "uid"}},
            {"match": {"path_prefix": "/b/"}},
        ],
    }
    config = parse_config({
        "server": {"listen": "127.0.0.1:0"},
        "admin": {"listen": "off"},
        "origins": {name: {"url": url} for name, url in urls.items()},
        "chain": [{"type": "wasm", "name": "routing", "module": str(build_filter("routing")), "config": routing},
                  {"type": "cache"}],
        "log": {"access": "off"},
    }, ROOT)
    n = Node(config, admin=False)
    await n.start("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{n.port}"
    finally:
        await n.stop(1.0)
        for runner in runners:
            await runner.cleanup()


async def get(session, url, **kw):
    async with session.get(url, allow_redirects=False, **kw) as resp:
        return resp.status, resp.headers, await resp.text()


async def test_origins_rewrites_redirects_and_404(node) -> None:
    async with aiohttp.ClientSession() as s:
        assert (await get(s, node + "/g/a?x=1"))[::2] == (200, "green /green/a?x=1")
        assert (await get(s, node + "/b/c"))[::2] == (200, "blue /b/c")
        status, headers, _ = await get(s, node + "/old/page?q=2")
        assert (status, headers["Location"]) == (302, "/new/page?q=2")
        assert (await get(s, node + "/nowhere"))[0] == 404


async def test_canary_split_with_fixed_sticky_keys(node) -> None:
    keys = [f"k{i}" for i in range(200)]
    expected = {k: "blue" if _fnv1a(k.encode()) % 100 < 80 else "green" for k in keys}
    got = {}
    async with aiohttp.ClientSession() as s:
        for k in keys:
            status, _, text = await get(s, node + "/canary", headers={"Cookie": f"uid={k}"})
            assert status == 200
            got[k] = text.split()[0]
    assert got == expected
    green = sum(v == "green" for v in got.values()) / len(keys)
    assert 0.12 < green < 0.28
