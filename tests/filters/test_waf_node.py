"""The WAF filter in a running Node: real client and origin sockets, wasm stage before the cache.

Chain: waf (wasm, built from filters/waf) -> cache -> origin (aiohttp on 127.0.0.1 that counts
what reaches it and answers cacheable responses).  Checks that a blocked request never reaches
the origin nor the cache, that detect mode tags and passes, and that form, JSON and multipart
bodies are inspected after crossing real sockets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from edgenode.config import Config, parse_config
from edgenode.node import Node
from tests.filters.conftest import ROOT


@dataclass
class Origin:
    url: str = ""
    seen: list[tuple[str, str, bytes]] = field(default_factory=list)   # (method, path_qs, body)


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    state = Origin()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        state.seen.append((request.method, request.path_qs, body))
        return web.Response(text=f"origin {len(state.seen)}\n",
                            headers={"Cache-Control": "public, max-age=300"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield state
    finally:
        await runner.cleanup()


def node_config(origin_url: str, wasm: Path, waf_config: dict[str, Any]) -> Config:
    return parse_config({
        "server": {"listen": "127.0.0.1:0"},
        "admin": {"listen": "off"},
        "origins": {"default": {"url": origin_url}},
        "chain": [{"type": "wasm", "name": "waf", "module": str(wasm), "config": waf_config},
                  {"type": "cache"}],
        "log": {"access": "off"},
    }, ROOT)


@pytest.fixture
async def start_node(build_filter, origin: Origin) -> AsyncIterator[Any]:
    wasm = build_filter("waf")
    nodes: list[Node] = []

    async def start(waf_config: dict[str, Any] | None = None) -> str:
        node = Node(node_config(origin.url, wasm, waf_config or {}), admin=False)
        await node.start("127.0.0.1", 0)
        nodes.append(node)
        return f"http://127.0.0.1:{node.port}"

    yield start
    for node in nodes:
        await node.stop(1.0)


async def fetch(method: str, url: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s:
        async with s.request(method, url, **kw) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read()


ATTACK = "/item?id=1%27%20or%20%271%27%3D%271"


async def test_blocked_request_never_reaches_origin_nor_cache(start_node, origin: Origin) -> None:
    base = await start_node()
    status, headers, body = await fetch("GET", base + ATTACK, headers={"X-Request-Id": "rid-403"})
    assert status == 403
    assert b"rid-403" in body and headers.get("x-request-id") == "rid-403"
    assert headers.get("cache-control") == "no-store"
    assert origin.seen == []
    # the same URL blocked again: still 403 from the filter, nothing was stored for it
    status, _, _ = await fetch("GET", base + ATTACK)
    assert status == 403 and origin.seen == []


async def test_benign_requests_pass_and_are_cached_independently_of_blocks(start_node, origin: Origin) -> None:
    base = await start_node()
    # a 403 for /page (attack in a header) must not be cached for the URL
    status, _, _ = await fetch("GET", base + "/page", headers={"User-Agent": "sqlmap/1.7"})
    assert status == 403 and origin.seen == []
    status, headers, body = await fetch("GET", base + "/page")
    assert status == 200 and body == b"origin 1\n"
    assert headers.get("x-cache") == "MISS"
    status, headers, body = await fetch("GET", base + "/page")
    assert status == 200 and body == b"origin 1\n" and headers.get("x-cache") == "HIT"
    assert [p for _, p, _ in origin.seen] == ["/page"]
    assert "x-waf-score" not in headers


async def test_detect_mode_tags_and_passes(start_node, origin: Origin) -> None:
    base = await start_node({"mode": "detect"})
    status, headers, _ = await fetch("GET", base + "/s?q=%3Cscript%3Ealert(1)%3C/script%3E")
    assert status == 200
    assert int(headers["x-waf-score"]) >= 5
    assert "101300" in headers["x-waf-rules"].split(",")
    assert [p for _, p, _ in origin.seen] == ["/s?q=%3Cscript%3Ealert(1)%3C/script%3E"]


@pytest.mark.parametrize("ctype,attack,clean", [
    ("application/x-www-form-urlencoded", b"name=x&c=%3Cscript%3Ealert(1)%3C%2Fscript%3E", b"name=x&c=hello"),
    ("application/json", b'{"user": {"bio": "<svg onload=alert(1)>"}}', b'{"user": {"bio": "hello"}}'),
    ("multipart/form-data; boundary=B0",
     b'--B0\r\nContent-Disposition: form-data; name="bio"\r\n\r\n<svg onload=alert(1)>\r\n--B0--\r\n',
     b'--B0\r\nContent-Disposition: form-data; name="bio"\r\n\r\nhello there\r\n--B0--\r\n'),
])
async def test_body_inspection_through_sockets(start_node, origin: Origin, ctype: str, attack: bytes,
                                               clean: bytes) -> None:
    base = await start_node()
    status, _, _ = await fetch("POST", base + "/profile", data=attack, headers={"Content-Type": ctype})
    assert status == 403 and origin.seen == []
    status, _, _ = await fetch("POST", base + "/profile", data=clean, headers={"Content-Type": ctype})
    assert status == 200
    assert origin.seen == [("POST", "/profile", clean)]


async def test_chunked_body_split_across_reads_is_inspected_whole(start_node, origin: Origin) -> None:
    """A streamed (chunked) body reaches the filter in one or more body callbacks; the payload
    straddles them and is still found, and a clean streamed body arrives intact."""
    base = await start_node()

    async def chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
        for p in parts:
            yield p

    attack = [b"a=" + b"x" * 4000 + b"&c=%3Cscr", b"ipt%3Ealert(1)%3C%2Fscript%3E"]
    status, _, _ = await fetch("POST", base + "/f", data=chunks(attack),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 403 and origin.seen == []
    clean = [b"a=" + b"x" * 4000, b"&c=hello"]
    status, _, _ = await fetch("POST", base + "/f", data=chunks(clean),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and origin.seen == [("POST", "/f", b"".join(clean))]
