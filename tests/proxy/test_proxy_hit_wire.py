"""Cache hits written from the entry's pre-serialised header block (``Response.wire_head``).

The fast path must put exactly the bytes on the wire that serialising the headers would,
and must step aside as soon as anything changes the headers after the cache stage.
"""

from __future__ import annotations

import re
from typing import Any

from multidict import CIMultiDict, getversion

from dataplane_support import RawClient, node_config, start_aiohttp, start_node
from aiohttp import web
from edgenode.cache.stage import CacheStage
from edgenode.config import parse_config
from edgenode.http.messages import Response
from edgenode.pipeline.exchange import Exchange

NOW = 1_800_000_000.0


async def origin_app() -> tuple[web.AppRunner, int]:
    async def obj(request: web.Request) -> web.Response:
        headers = {"Cache-Control": "max-age=600", "ETag": '"v1"',
                   "Date": "Fri, 15 Jan 2027 08:00:00 GMT", "X-Thing": "a"}
        if request.path == "/odd":  # a stored field a hit rewrites: the general path only
            headers["X-Cache"] = "from-origin"
        return web.Response(body=b"b" * 300, headers=headers, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/{name}", obj)
    return await start_aiohttp(app)


async def raw_get(client: RawClient, path: str, extra: str = "") -> bytes:
    """One request; the exact response bytes (head and a Content-Length body)."""
    await client.send(f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode())
    head = await client.reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    head = re.sub(rb"\r\nX-Request-Id: [!-~]+\r\n", b"\r\nX-Request-Id: *\r\n", head)  # per node
    assert b"X-Request-Id: *" in head
    return head + await client.reader.readexactly(length)


async def run_hits(cfg: Any, after_cache: Any = None) -> tuple[list[bytes], list[Response]]:
    """MISS then two HITs on one connection; ``after_cache`` sees each response first."""
    runner, port = await origin_app()
    seen: list[Response] = []
    cfg = node_config({"o": {"url": f"http://127.0.0.1:{port}"}})
    stage = CacheStage(parse_config({"origins": {"o": {"url": "http://127.0.0.1:1"}}}).cache,
                       clock=lambda: NOW)

    def handler(upstream: Any) -> Any:
        inner = stage.wrap(upstream)

        async def outer(ex: Exchange) -> Response:
            resp = await inner(ex)
            seen.append(resp)
            if after_cache is not None:
                after_cache(resp)
            return resp
        return outer

    node = await start_node(cfg, handler)
    client = await RawClient.connect(node.port)
    other = await RawClient.connect(node.port)
    try:
        out = [await raw_get(client, "/a"), await raw_get(client, "/a"),
               await raw_get(client, "/a", "Connection: close\r\n"),
               await raw_get(other, "/odd"), await raw_get(other, "/odd")]
    finally:
        await client.close()
        await other.close()
        await node.close()
        await runner.cleanup()
    return out, seen


def without_wire(resp: Response) -> None:
    resp.wire_head = None


async def test_hit_bytes_equal_the_general_path():
    fast, seen = await run_hits(None)
    slow, _ = await run_hits(None, after_cache=without_wire)
    assert seen[1].wire_head is not None and seen[2].wire_head is not None  # the fast path ran
    assert seen[4].wire_head is None  # the origin sent X-Cache, which a hit replaces
    assert fast == slow
    hit = fast[1].decode("latin-1")
    assert hit.startswith("HTTP/1.1 200 OK\r\n")
    assert ("\r\nAge: 0\r\nCache-Status: edgenode; hit; ttl=600\r\nX-Cache: HIT\r\nContent-Length: 300\r\n"
            "X-Request-Id: *\r\n\r\n") in hit
    assert hit.endswith("b" * 300)
    assert "Connection: close\r\n" in fast[2].decode("latin-1")
    assert "X-Cache: HIT\r\n" in fast[4].decode("latin-1")


async def test_a_later_header_change_is_written():
    def touch(resp: Response) -> None:
        resp.headers["X-Later"] = "yes"

    out, seen = await run_hits(None, after_cache=touch)
    assert seen[1].wire_head is not None
    assert getversion(seen[1].headers) != seen[1].wire_head[0]
    assert b"\r\nX-Later: yes\r\n" in out[1]


def test_version_check_sees_any_change():
    headers: CIMultiDict[str] = CIMultiDict({"A": "1"})
    resp = Response(200, headers, b"")
    resp.wire_head = (getversion(headers), b"A: 1\r\n")
    headers["A"] = "1"  # even a same-value write counts as a change
    assert resp.wire_head[0] != getversion(resp.headers)
