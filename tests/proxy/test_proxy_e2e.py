"""FrontEnd + Upstream + OriginPool end to end, with a real aiohttp origin and faulty ones."""

from __future__ import annotations

import asyncio
import json
import socket
import tracemalloc

import pytest
from aiohttp import web
from multidict import CIMultiDict

from dataplane_support import (
    BOUND, RawClient, RawOrigin, abort_writer, get, node_config, parse_responses,
    read_request_head, start_aiohttp, start_node,
)
from edgenode.http.messages import Request

BIG = 50 * 1024 * 1024
PIECE = 1024 * 1024


class Origin:
    """The well-behaved origin: echoes requests, streams big bodies, counts uploads."""

    def __init__(self) -> None:
        self.first_upload_chunk = asyncio.Event()
        self.upload_bytes = 0
        self.port = 0
        self.runner: web.AppRunner | None = None

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        data = {"method": request.method, "target": request.path_qs,
                "headers": [[k, v] for k, v in request.headers.items()], "body_len": len(body)}
        return web.Response(text=json.dumps(data), content_type="application/json",
                            headers={"Connection": "keep-alive, X-Internal",
                                     "X-Internal": "secret", "Keep-Alive": "timeout=5",
                                     "Cache-Control": "max-age=60"})

    async def upload(self, request: web.Request) -> web.Response:
        async for chunk in request.content.iter_any():
            self.upload_bytes += len(chunk)
            self.first_upload_chunk.set()
        return web.Response(text=str(self.upload_bytes))

    async def download(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = BIG
        await resp.prepare(request)
        piece = b"d" * 65536
        for _ in range(BIG // len(piece)):
            await resp.write(piece)
        return resp

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "0.3")))
        return web.Response(text="slow done")

    async def start(self) -> Origin:
        app = web.Application(client_max_size=BIG * 2)
        app.router.add_route("*", "/echo", self.echo)
        app.router.add_post("/upload", self.upload)
        app.router.add_get("/download", self.download)
        app.router.add_get("/slow", self.slow)
        self.runner, self.port = await start_aiohttp(app)
        return self


def free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
async def origin():
    o = await Origin().start()
    yield o
    assert o.runner is not None
    await o.runner.cleanup()


async def fault_origin(script) -> RawOrigin:
    return await RawOrigin(script).start()


async def start_proxy(origin: Origin, bad_port: int | None = None, bad: dict | None = None,
                      default: dict | None = None):
    origins = {"default": {"url": f"http://127.0.0.1:{origin.port}", **(default or {})}}
    routes = []
    if bad_port is not None:
        origins["bad"] = {"url": f"http://127.0.0.1:{bad_port}", **(bad or {})}
        routes.append({"origin": "bad", "path_prefix": "/bad"})
    cfg = node_config(origins, routes=routes, upstreams={
        "auth": {"url": f"http://127.0.0.1:{origin.port}"}})
    return await start_node(cfg)


async def test_forwarding_headers_both_ways(origin):
    node = await start_proxy(origin)
    resp = await get(node.port, "/echo?x=1", {
        "Via": "1.1 upstream-cdn", "X-Forwarded-For": "203.0.113.7",
        "Connection": "close, X-Hop", "X-Hop": "drop me", "TE": "trailers",
        "Proxy-Authorization": "Basic eA=="})
    assert resp.status == 200
    seen = {k.lower(): v for k, v in resp.json()["headers"]}
    assert resp.json()["target"] == "/echo?x=1"
    assert seen["via"] == "1.1 upstream-cdn, 1.1 edgenode"
    assert seen["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == "test.local" and seen["host"] == "test.local"
    for hop in ("x-hop", "te", "proxy-authorization"):
        assert hop not in seen
    # response side: hop-by-hop and Connection-named fields removed, Via added
    assert resp.headers["via"] == "1.1 edgenode"
    assert "x-internal" not in resp.headers and "keep-alive" not in resp.headers
    assert resp.headers["cache-control"] == "max-age=60"
    ex, _ = node.completed[-1]
    assert ex.origin == "default" and ex.origin_time is not None and ex.origin_time > 0
    await node.close()


async def test_host_rewritten_to_origin(origin):
    node = await start_proxy(origin, default={"host_header": "origin"})
    resp = await get(node.port, "/echo")
    seen = {k.lower(): v for k, v in resp.json()["headers"]}
    assert seen["host"] == f"127.0.0.1:{origin.port}"
    assert seen["x-forwarded-host"] == "test.local"
    await node.close()


async def test_origin_connections_are_reused(origin):
    node = await start_proxy(origin)
    client = await RawClient.connect(node.port)
    for _ in range(3):
        await client.send(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        assert (await client.read_response()).status == 200
    pool = node.upstream.pools["default"]
    assert (pool.opened, pool.reused) == (1, 2)
    await client.close()
    await node.close()


async def test_50mb_upload_streams_with_bounded_memory(origin):
    node = await start_proxy(origin)
    client = await RawClient.connect(node.port)
    tracemalloc.start()
    try:
        await client.send(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % BIG)
        piece = b"u" * PIECE
        await client.send(piece)
        # the origin sees data while the client still has 49 MB to send: nothing buffers it all
        await asyncio.wait_for(origin.first_upload_chunk.wait(), BOUND)
        assert origin.upload_bytes < BIG
        for _ in range(BIG // PIECE - 1):
            await client.send(piece)
        resp = await client.read_response()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert resp.status == 200 and resp.body == str(BIG).encode()
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes for a {BIG}-byte body"
    await client.close()
    await node.close()


async def test_50mb_chunked_upload_reaches_origin_whole(origin):
    node = await start_proxy(origin)
    client = await RawClient.connect(node.port)
    await client.send(b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b"%x\r\n" % PIECE + b"c" * PIECE + b"\r\n"
    for _ in range(BIG // PIECE):
        await client.send(piece)
    await client.send(b"0\r\n\r\n")
    resp = await client.read_response()
    assert resp.status == 200 and resp.body == str(BIG).encode()
    await client.close()
    await node.close()


async def test_50mb_download_streams_with_bounded_memory(origin):
    node = await start_proxy(origin)
    client = await RawClient.connect(node.port)
    tracemalloc.start()
    try:
        await client.send(b"GET /download HTTP/1.1\r\nHost: a\r\n\r\n")
        status, headers = await client.read_head()
        received = 0
        while received < BIG:
            chunk = await asyncio.wait_for(client.reader.read(PIECE), BOUND)
            assert chunk
            received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 200 and headers["content-length"] == str(BIG) and received == BIG
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes for a {BIG}-byte body"
    await client.close()
    await node.close()


async def assert_serves_while(node, fault_path: str):
    """Run a faulty request and, while it is in progress, a good one on another connection."""
    fault = asyncio.create_task(get(node.port, fault_path))
    await asyncio.sleep(0.02)
    good = await get(node.port, "/echo")
    assert good.status == 200
    return await asyncio.wait_for(fault, BOUND)


async def test_connect_refused_is_502(origin):
    node = await start_proxy(origin, bad_port=free_port())
    resp = await assert_serves_while(node, "/bad/x")
    assert resp.status == 502 and resp.headers["content-type"].startswith("text/plain")
    assert b"(origin 'bad')" in resp.body
    ex = next(ex for ex, _ in node.completed if ex.request.path == "/bad/x")
    assert ex.props["upstream_error"] == "connect_error"
    await node.close()


async def test_first_byte_timeout_is_504(origin):
    async def silent(reader, writer):
        await read_request_head(reader)
        await asyncio.sleep(30)

    bad = await fault_origin(silent)
    node = await start_proxy(origin, bad.port, {"first_byte_timeout": "200ms"})
    resp = await assert_serves_while(node, "/bad/x")
    assert resp.status == 504
    assert resp.body == b"edgenode: origin first byte timeout (origin 'bad')\n"
    ex = next(ex for ex, _ in node.completed if ex.request.path == "/bad/x")
    assert ex.props["upstream_error"] == "first_byte_timeout"
    await node.close()
    await bad.close()


async def test_garbage_origin_is_502(origin):
    async def garbage(reader, writer):
        await read_request_head(reader)
        writer.write(b"\x00\x01\x02 not http at all\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    bad = await fault_origin(garbage)
    node = await start_proxy(origin, bad.port)
    resp = await assert_serves_while(node, "/bad/x")
    assert resp.status == 502 and b"invalid HTTP response" in resp.body
    await node.close()
    await bad.close()


@pytest.mark.parametrize("fault", ["between_bytes", "reset", "short_eof"])
async def test_body_fault_aborts_the_client_connection(origin, fault):
    async def breaks(reader, writer):
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"p" * 100)
        await writer.drain()
        await asyncio.sleep(0.1)
        if fault == "reset":
            abort_writer(writer)
        elif fault == "short_eof":
            writer.close()
        else:
            await asyncio.sleep(30)

    bad = await fault_origin(breaks)
    node = await start_proxy(origin, bad.port, {"between_bytes_timeout": "200ms"})
    resp = await assert_serves_while(node, "/bad/x")
    assert resp.status == 200 and resp.headers["content-length"] == "1000"
    assert not resp.complete and len(resp.body) < 1000  # the client can tell it is truncated
    ex = next(ex for ex, _ in node.completed if ex.request.path == "/bad/x")
    assert ex.props.get("response_aborted") is True
    await node.close()
    await bad.close()


async def test_graceful_shutdown_drains_in_flight_proxied_request(origin):
    node = await start_proxy(origin)
    client = await RawClient.connect(node.port)
    await client.send(b"GET /slow?s=0.3 HTTP/1.1\r\nHost: a\r\n\r\n")
    await asyncio.sleep(0.05)
    shutdown = asyncio.create_task(node.frontend.shutdown(BOUND))
    resp = await client.read_response()
    assert resp.status == 200 and resp.body == b"slow done"
    await asyncio.wait_for(shutdown, BOUND)
    await node.upstream.close()
    await client.close()


async def test_callout_to_named_upstream(origin):
    node = await start_proxy(origin)
    req = Request("POST", "/echo", CIMultiDict({"Content-Type": "text/plain"}), b"ping")
    resp = await node.upstream.callout("auth", req, timeout=BOUND)
    assert resp.status == 200 and isinstance(resp.body, bytes)
    data = json.loads(resp.body)
    assert data["body_len"] == 4
    assert {k.lower(): v for k, v in data["headers"]}["host"] == f"127.0.0.1:{origin.port}"
    with pytest.raises(KeyError):
        await node.upstream.callout("nope", req, timeout=BOUND)
    await node.close()


async def test_pipelined_requests_through_the_proxy(origin):
    node = await start_proxy(origin)
    client = await RawClient.connect(node.port)
    await client.send(b"GET /slow?s=0.1 HTTP/1.1\r\nHost: a\r\n\r\n"
                      b"GET /echo?n=2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    responses = parse_responses(await client.read_until_close())
    assert [r.status for r in responses] == [200, 200]
    assert responses[0].body == b"slow done"
    assert json.loads(responses[1].body)["target"] == "/echo?n=2"
    await client.close()
    await node.close()
