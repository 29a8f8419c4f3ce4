"""OriginPool against real origins on 127.0.0.1: reuse, streaming, timeouts, faults."""

from __future__ import annotations

import asyncio
import re
import socket

import pytest
from aiohttp import web
from multidict import CIMultiDict

from dataplane_support import RawOrigin, abort_writer, read_request_head, start_aiohttp
from edgenode.config import OriginConfig
from edgenode.http.client import OriginPool
from edgenode.http.errors import (
    OriginBodyError, OriginConnectError, OriginProtocolError, OriginTimeout,
)
from edgenode.http.messages import Request, read_body


def origin_cfg(port: int, **kw) -> OriginConfig:
    return OriginConfig(name="t", url=f"http://127.0.0.1:{port}", host="127.0.0.1", port=port, **kw)


def get_req(path: str = "/", method: str = "GET") -> Request:
    return Request(method, path, CIMultiDict({"Host": "t"}))


@pytest.fixture
async def aio_origin():
    async def hello(request: web.Request) -> web.Response:
        return web.Response(body=b"hello " + request.path.encode())

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = 4 * 65536
        await resp.prepare(request)
        for _ in range(4):
            await resp.write(b"s" * 65536)
        return resp

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.router.add_get("/stream", stream)
    runner, port = await start_aiohttp(app)
    yield port
    await runner.cleanup()


async def test_keep_alive_reuse_is_counted(aio_origin):
    pool = OriginPool(origin_cfg(aio_origin))
    for i in range(3):
        resp = await pool.request(get_req("/hello"))
        assert resp.status == 200
        assert await read_body(resp.body) == b"hello /hello"
    assert (pool.opened, pool.reused, pool.requests) == (1, 2, 3)
    assert pool.idle_count == 1
    await pool.close()


async def test_early_aclose_closes_the_connection(aio_origin):
    pool = OriginPool(origin_cfg(aio_origin))
    resp = await pool.request(get_req("/stream"))
    first = await resp.body.__anext__()
    assert first
    await resp.body.aclose()
    assert (await read_body((await pool.request(get_req("/hello"))).body)) == b"hello /hello"
    assert pool.opened == 2 and pool.reused == 0
    await pool.close()


async def test_head_response_has_no_body_and_connection_is_reused(aio_origin):
    pool = OriginPool(origin_cfg(aio_origin))
    resp = await pool.request(get_req("/hello", "HEAD"))
    assert resp.status == 200 and resp.body == b"" and resp.headers["Content-Length"] == "12"
    assert await read_body((await pool.request(get_req("/hello"))).body) == b"hello /hello"
    assert pool.opened == 1 and pool.reused == 1
    await pool.close()


async def test_max_connections_makes_requests_wait(aio_origin):
    pool = OriginPool(origin_cfg(aio_origin, max_connections=1))

    async def one() -> bytes:
        resp = await pool.request(get_req("/hello"))
        return await read_body(resp.body)

    results = await asyncio.gather(*(one() for _ in range(4)))
    assert results == [b"hello /hello"] * 4
    assert pool.opened == 1
    await pool.close()


async def test_idle_connections_expire(aio_origin):
    pool = OriginPool(origin_cfg(aio_origin, idle_timeout=0.05))
    await read_body((await pool.request(get_req("/hello"))).body)
    assert pool.idle_count == 1
    for _ in range(100):  # bounded wait for the sweeper
        if pool.idle_count == 0 and pool.open_count == 0:
            break
        await asyncio.sleep(0.02)
    assert pool.idle_count == 0 and pool.open_count == 0
    await pool.close()


async def test_connect_refused():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    pool = OriginPool(origin_cfg(port))
    with pytest.raises(OriginConnectError, match="cannot connect"):
        await pool.request(get_req())
    assert pool.open_count == 0
    await pool.close()


async def raw_origin(script) -> RawOrigin:
    return await RawOrigin(script).start()


async def test_first_byte_timeout():
    async def silent(reader, writer):
        await read_request_head(reader)
        await asyncio.sleep(30)

    origin = await raw_origin(silent)
    pool = OriginPool(origin_cfg(origin.port, first_byte_timeout=0.1))
    with pytest.raises(OriginTimeout) as info:
        await pool.request(get_req())
    assert info.value.kind == "first_byte"
    await pool.close()
    await origin.close()


async def test_each_request_times_out_a_first_byte_timeout_after_its_own_send():
    """One timer per pool serves every waiting request: a request sent later times out
    later, and one whose head comes in time is not failed by an earlier one's deadline."""
    async def by_path(reader, writer):
        head = await read_request_head(reader)
        if b"/fast" in head:
            await asyncio.sleep(0.15)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        await asyncio.sleep(30)

    origin = await raw_origin(by_path)
    pool = OriginPool(origin_cfg(origin.port, first_byte_timeout=0.3))
    loop = asyncio.get_running_loop()

    async def timed(path: str, delay: float) -> tuple[float, object]:
        await asyncio.sleep(delay)
        start = loop.time()
        try:
            result: object = (await pool.request(get_req(path))).status
        except OriginTimeout as exc:
            result = exc.kind
        return loop.time() - start, result

    (t1, r1), (t2, r2), (t3, r3) = await asyncio.gather(
        timed("/slow", 0), timed("/fast", 0.1), timed("/slow", 0.2))
    assert r1 == r3 == "first_byte" and r2 == 200
    assert 0.29 <= t1 < 0.45 and 0.29 <= t3 < 0.45 and t2 < 0.29
    await pool.close()
    await origin.close()


async def test_between_bytes_timeout_raises_from_the_body():
    async def stalls(reader, writer):
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
        await writer.drain()
        await asyncio.sleep(30)

    origin = await raw_origin(stalls)
    pool = OriginPool(origin_cfg(origin.port, between_bytes_timeout=0.1))
    resp = await pool.request(get_req())
    assert await resp.body.__anext__() == b"first"
    with pytest.raises(OriginTimeout) as info:
        await resp.body.__anext__()
    assert info.value.kind == "between_bytes"
    await pool.close()
    await origin.close()


@pytest.mark.parametrize("ending", ["reset", "eof"])
async def test_body_cut_short_raises_origin_body_error(ending):
    async def cuts(reader, writer):
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(0.05)
        if ending == "reset":
            abort_writer(writer)
        else:
            writer.close()

    origin = await raw_origin(cuts)
    pool = OriginPool(origin_cfg(origin.port))
    resp = await pool.request(get_req())
    with pytest.raises(OriginBodyError):
        await read_body(resp.body)
    await pool.close()
    await origin.close()


async def test_garbage_is_a_protocol_error():
    async def garbage(reader, writer):
        await read_request_head(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    origin = await raw_origin(garbage)
    pool = OriginPool(origin_cfg(origin.port))
    with pytest.raises(OriginProtocolError):
        await pool.request(get_req())
    await pool.close()
    await origin.close()


async def test_interim_and_close_delimited_responses():
    async def interim(reader, writer):
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                     b"HTTP/1.0 200 OK\r\nX-Final: 1\r\n\r\nbody until close")
        await writer.drain()
        writer.close()

    origin = await raw_origin(interim)
    pool = OriginPool(origin_cfg(origin.port))
    resp = await pool.request(get_req())
    assert resp.status == 200 and resp.headers["X-Final"] == "1" and "Link" not in resp.headers
    assert await read_body(resp.body) == b"body until close"
    await pool.close()
    await origin.close()


async def test_stale_pooled_connection_is_retried_once():
    async def one_then_drop(reader, writer):
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await read_request_head(reader)  # the second request on this connection...
        abort_writer(writer)  # ...finds it dead, as if the origin had timed it out

    origin = await raw_origin(one_then_drop)
    pool = OriginPool(origin_cfg(origin.port))
    assert await read_body((await pool.request(get_req())).body) == b"ok"
    assert await read_body((await pool.request(get_req())).body) == b"ok"
    assert (pool.retries, pool.opened, origin.connections) == (1, 2, 2)
    # a POST is not replayed: the failure is reported instead
    post = Request("POST", "/", CIMultiDict({"Host": "t"}), b"data")
    with pytest.raises(OriginConnectError, match="before responding"):
        await pool.request(post)
    await pool.close()
    await origin.close()


async def test_an_origin_keep_alive_timeout_bounds_reuse():
    """An origin that sends ``Keep-Alive: timeout=2`` closes a connection idle that long; a
    request written as it does (its FIN still on the way) is lost unanswered, and a PUT
    with a streamed body cannot be replayed.  So the pool reuses the connection only up to
    ``KEEP_ALIVE_MARGIN`` before that timeout, and sends the PUT on a new one."""
    loop = asyncio.get_running_loop()

    async def closes_after_its_timeout(reader, writer):
        idle_since = None
        while True:
            head = await read_request_head(reader)
            if idle_since is not None and loop.time() - idle_since >= 2:
                abort_writer(writer)  # its close crossed this request
                return
            length = re.search(rb"content-length: *(\d+)", head.lower())
            await reader.readexactly(int(length.group(1)) if length else 0)
            writer.write(b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=2, max=100\r\n"
                         b"Content-Length: 2\r\n\r\nok")
            await writer.drain()
            idle_since = loop.time()

    async def upload():
        yield b"abc"

    origin = await raw_origin(closes_after_its_timeout)
    pool = OriginPool(origin_cfg(origin.port))
    for _ in range(2):  # well within the timeout: the connection is reused
        assert await read_body((await pool.request(get_req())).body) == b"ok"
    assert (pool.opened, pool.reused) == (1, 1)
    await asyncio.sleep(2.05)
    put = Request("PUT", "/", CIMultiDict({"Host": "t", "Content-Length": "3"}), upload())
    assert await read_body((await pool.request(put)).body) == b"ok"
    assert (pool.opened, pool.reused, origin.connections) == (2, 1, 2)
    await pool.close()
    await origin.close()


async def test_streamed_upload_uses_chunked_or_content_length():
    seen: list[bytes] = []

    async def record(reader, writer):
        for _ in range(2):
            head = await read_request_head(reader)
            seen.append(head)
            if b"chunked" in head.lower():
                body = await reader.readuntil(b"0\r\n\r\n")
            else:
                body = await reader.readexactly(6)
            seen.append(body)
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()

    async def parts():
        yield b"abc"
        yield b"def"

    origin = await raw_origin(record)
    pool = OriginPool(origin_cfg(origin.port))
    resp = await pool.request(Request("POST", "/up", CIMultiDict({"Host": "t"}), parts()))
    assert resp.status == 204 and resp.body == b""
    assert b"transfer-encoding: chunked" in seen[0].lower()
    assert seen[1] == b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"
    headers = CIMultiDict({"Host": "t", "Content-Length": "6"})
    resp = await pool.request(Request("POST", "/up", headers, parts()))
    assert resp.status == 204
    assert b"content-length: 6" in seen[2].lower() and seen[3] == b"abcdef"
    await pool.close()
    await origin.close()


async def test_a_body_that_comes_with_its_head_is_handed_on_as_bytes():
    """A response read whole in the read that carried its head needs no body iterator: its
    body (and a chunked one's trailers) are on the response as the pool returns it."""
    async def whole(reader, writer):
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        await writer.drain()
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
                     b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 9\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    origin = await raw_origin(whole)
    pool = OriginPool(origin_cfg(origin.port))
    resp = await pool.request(get_req())
    assert resp.body == b"hello" and resp.trailers is None
    resp = await pool.request(get_req())
    assert resp.body == b"abcde" and resp.trailers["X-Sum"] == "9"
    assert pool.opened == 1 and pool.reused == 1
    await pool.close()
    await origin.close()


async def test_a_body_broken_in_the_read_of_its_head_raises_from_the_iterator():
    """Bytes the parser refuses after a head in the same read: the response is handed on,
    the part read before streams, then its body raises (the connection is not reused)."""
    async def broken(reader, writer):
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    origin = await raw_origin(broken)
    pool = OriginPool(origin_cfg(origin.port))
    resp = await pool.request(get_req())
    assert await resp.body.__anext__() == b"hello"
    with pytest.raises(OriginBodyError):
        await resp.body.__anext__()
    assert pool.idle_count == 0
    await pool.close()
    await origin.close()
