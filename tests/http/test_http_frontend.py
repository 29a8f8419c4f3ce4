"""FrontEnd on a real socket: framing, keep-alive, pipelining, bad input, shutdown."""

from __future__ import annotations

import asyncio
import tracemalloc
from typing import AsyncIterator

import pytest
from multidict import CIMultiDict

from dataplane_support import BOUND, RawClient, exchange_raw, get, parse_responses
from edgenode.config import ServerConfig
from edgenode.http.messages import Response, read_body
from edgenode.frontend.server import FrontEnd
from edgenode.pipeline.exchange import Exchange

ONE_KB = b"k" * 1024


async def _chunks(parts: list[bytes], fail_after: bool = False) -> AsyncIterator[bytes]:
    for part in parts:
        await asyncio.sleep(0)
        yield part
    if fail_after:
        raise RuntimeError("origin went away")


async def app(exchange: Exchange) -> Response:
    """A small application covering the response shapes the front end must frame."""
    req = exchange.request
    path = req.path
    if path == "/hit":
        return Response(200, CIMultiDict({"Content-Type": "text/plain"}), ONE_KB)
    if path == "/echo":
        body = await read_body(req.body)
        return Response(200, CIMultiDict({"X-Method": req.method}), body)
    if path == "/sleep":
        await asyncio.sleep(float(req.query or "0.05"))
        return Response(200, body=path.encode() + b"?" + req.query.encode())
    if path == "/stream":
        return Response(200, body=_chunks([b"ab", b"cd", b"ef"]))
    if path == "/stream-cl":
        return Response(200, CIMultiDict({"Content-Length": "6"}), _chunks([b"abc", b"def"]))
    if path == "/short":
        return Response(200, CIMultiDict({"Content-Length": "100"}), _chunks([b"only ten b"]))
    if path == "/broken":
        return Response(200, body=_chunks([b"partial"], fail_after=True))
    if path == "/broken-cl":
        return Response(200, CIMultiDict({"Content-Length": "50"}), _chunks([b"partial"], True))
    if path == "/nocontent":
        return Response(204, body=b"ignored")
    if path == "/notmod":
        return Response(304, CIMultiDict({"ETag": '"x"'}), b"")
    if path == "/crash":
        raise RuntimeError("handler bug")
    if path == "/inject":
        return Response(200, CIMultiDict({"X-Bad": "a\r\nSet-Cookie: evil=1"}), b"")
    if path == "/inject-stream":
        return Response(200, CIMultiDict({"X-Bad": "a\r\nSet-Cookie: evil=1"}), _chunks([b"ab"]))
    if path == "/slow-reader":
        total = 0
        async for chunk in req.body:
            total += len(chunk)
            await asyncio.sleep(0.002)
        return Response(200, body=str(total).encode())
    if path == "/ignore-body":
        return Response(403, body=b"no")
    return Response(404, body=b"not found")


@pytest.fixture
async def frontend():
    completed: list[tuple[Exchange, Response]] = []
    cfg = ServerConfig(max_header_bytes=2048, max_request_line_bytes=512,
                       keepalive_timeout=5.0, request_timeout=5.0)
    fe = FrontEnd(app, cfg, on_complete=lambda ex, resp: completed.append((ex, resp)))
    await fe.start("127.0.0.1", 0)
    fe.completed = completed  # type: ignore[attr-defined]
    yield fe
    await fe.shutdown(1.0)


async def assert_still_serving(port: int) -> None:
    resp = await get(port, "/hit")
    assert resp.status == 200 and resp.body == ONE_KB


async def test_bytes_body_has_length_and_date(frontend):
    resp = await get(frontend.port, "/hit")
    assert resp.status == 200
    assert resp.headers["content-length"] == "1024"
    assert resp.headers["date"].endswith("GMT")
    assert resp.body == ONE_KB
    ex, _ = frontend.completed[-1]
    assert (ex.status, ex.response_bytes, ex.client[0]) == (200, 1024, "127.0.0.1")


async def test_keep_alive_serves_several_requests_on_one_connection(frontend):
    client = await RawClient.connect(frontend.port)
    for _ in range(3):
        await client.send(b"GET /hit HTTP/1.1\r\nHost: a\r\n\r\n")
        resp = await client.read_response()
        assert resp.status == 200 and resp.body == ONE_KB
        assert "connection" not in resp.headers
    await client.close()


async def test_each_request_gets_its_own_fields_on_a_keep_alive_connection(frontend):
    """The decoded text of a head's fields is reused while a connection repeats them: a
    changed value, an added or a dropped field, and Latin-1 bytes still reach the handler
    as sent, and a handler that edits its request's fields does not leak into the next."""
    heads = [b"X-A: 1\r\nX-B: caf\xe9\r\n", b"X-A: 1\r\nX-B: caf\xe9\r\n", b"X-A: 2\r\nX-B: caf\xe9\r\n",
             b"X-A: 2\r\n", b"X-A: 2\r\nX-C: 3\r\n", b""]
    client = await RawClient.connect(frontend.port)
    seen = []
    for fields in heads:
        await client.send(b"GET /hit HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n")
        resp = await client.read_response()
        assert resp.status == 200
        request = frontend.completed[-1][0].request
        seen.append([(k, v) for k, v in request.headers.items() if k != "X-Request-Id"])
        request.headers["X-A"] = "edited"  # the handler's copy only
    await client.close()
    host = ("Host", "a")
    assert seen == [[host, ("X-A", "1"), ("X-B", "caf\xe9")], [host, ("X-A", "1"), ("X-B", "caf\xe9")],
                    [host, ("X-A", "2"), ("X-B", "caf\xe9")], [host, ("X-A", "2")],
                    [host, ("X-A", "2"), ("X-C", "3")], [host]]


async def test_pipelined_requests_are_answered_in_order(frontend):
    raw = (b"GET /sleep?0.1 HTTP/1.1\r\nHost: a\r\n\r\n"
           b"GET /sleep?0 HTTP/1.1\r\nHost: a\r\n\r\n"
           b"GET /hit HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    responses = parse_responses(await exchange_raw(frontend.port, raw))
    assert [r.body[:12] for r in responses] == [b"/sleep?0.1", b"/sleep?0", ONE_KB[:12]]
    assert responses[-1].headers["connection"] == "close"


async def test_http10_closes_unless_keep_alive(frontend):
    raw = await exchange_raw(frontend.port, b"GET /hit HTTP/1.0\r\n\r\n")
    assert parse_responses(raw)[0].headers["connection"] == "close"
    client = await RawClient.connect(frontend.port)
    await client.send(b"GET /hit HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    resp = await client.read_response()
    assert resp.headers["connection"] == "keep-alive"
    await client.send(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    status, headers = await client.read_head()
    # no chunked coding for HTTP/1.0: the body is delimited by closing the connection
    assert headers["connection"] == "close" and "transfer-encoding" not in headers
    assert await client.reader.read() == b"abcdef"
    await client.close()


async def test_head_gets_length_but_no_body(frontend):
    client = await RawClient.connect(frontend.port)
    await client.send(b"HEAD /hit HTTP/1.1\r\nHost: a\r\n\r\nGET /hit HTTP/1.1\r\nHost: a\r\n\r\n")
    status, headers = await client.read_head()
    assert status == 200 and headers["content-length"] == "1024"
    resp = await client.read_response()  # the next bytes are the GET's response, not a body
    assert resp.status == 200 and resp.body == ONE_KB
    await client.close()


async def test_204_and_304_have_no_body(frontend):
    client = await RawClient.connect(frontend.port)
    await client.send(b"GET /nocontent HTTP/1.1\r\nHost: a\r\n\r\n")
    status, headers = await client.read_head()
    assert status == 204 and "content-length" not in headers
    await client.send(b"GET /notmod HTTP/1.1\r\nHost: a\r\n\r\n")
    status, headers = await client.read_head()
    assert status == 304 and headers["etag"] == '"x"'
    await client.send(b"GET /hit HTTP/1.1\r\nHost: a\r\n\r\n")
    assert (await client.read_response()).body == ONE_KB
    await client.close()


async def test_streamed_body_is_chunked_or_uses_its_length(frontend):
    resp = await get(frontend.port, "/stream")
    assert resp.headers["transfer-encoding"] == "chunked" and resp.body == b"abcdef"
    resp = await get(frontend.port, "/stream-cl")
    assert resp.headers["content-length"] == "6" and resp.body == b"abcdef"
    assert "transfer-encoding" not in resp.headers


@pytest.mark.parametrize("path", ["/short", "/broken", "/broken-cl"])
async def test_broken_body_aborts_the_connection(frontend, path):
    raw = await exchange_raw(frontend.port, f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    responses = parse_responses(raw)
    assert len(responses) == 1 and responses[0].status == 200
    assert not responses[0].complete  # never a complete-looking truncated response
    assert b"partial" in raw or b"only ten b" in raw
    ex, _ = frontend.completed[-1]
    assert ex.props.get("response_aborted") is True
    await assert_still_serving(frontend.port)


async def test_handler_exception_is_500_and_connection_survives(frontend):
    client = await RawClient.connect(frontend.port)
    await client.send(b"GET /crash HTTP/1.1\r\nHost: a\r\n\r\n")
    resp = await client.read_response()
    assert resp.status == 500 and b"internal error" in resp.body
    assert resp.headers["content-type"].startswith("text/plain")
    await client.send(b"GET /hit HTTP/1.1\r\nHost: a\r\n\r\n")
    assert (await client.read_response()).status == 200
    await client.close()


async def test_header_with_crlf_is_not_written(frontend):
    for path in ("/inject", "/inject-stream"):  # in-memory and streamed bodies
        resp = await get(frontend.port, path)
        assert resp.status == 500
        assert "set-cookie" not in resp.headers
        assert b"invalid response from the handler" in resp.body
    await assert_still_serving(frontend.port)


BAD_REQUESTS = {
    "garbage request line": (b"HELLO\r\n\r\n", 400),
    "bad header name": (b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n", 400),
    "control byte in value": (b"GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n", 400),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
    "CL and TE": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "differing CLs": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                      b"Content-Length: 4\r\n\r\nabcd", 400),
    "TE not chunked-last": (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
    "TE other coding": (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                        b"0\r\n\r\n", 501),
    "TE in HTTP/1.0": (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "missing Host": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "two Hosts": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "HTTP/0.9": (b"GET /\r\n\r\n", 505),
    "long request line": (b"GET /" + b"a" * 600 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    "many headers": (b"GET / HTTP/1.1\r\nHost: a\r\n"
                     + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 50) for i in range(60)) + b"\r\n", 431),
    "CONNECT": (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405),
    "bad chunk size": (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"zz\r\nabc\r\n0\r\n\r\n", 400),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
async def test_bad_input_gets_4xx_and_close(frontend, name):
    data, status = BAD_REQUESTS[name]
    raw = await exchange_raw(frontend.port, data)  # returns only once the server closed
    responses = parse_responses(raw)
    assert responses and responses[0].status == status, raw[:300]
    assert responses[0].headers["connection"] == "close"
    assert responses[0].headers["content-type"].startswith("text/plain")
    assert responses[0].body.startswith(b"edgenode: ")
    await assert_still_serving(frontend.port)


async def test_endless_header_line_is_bounded(frontend):
    """httptools buffers a header until its end, so the front end bounds the head itself."""
    client = await RawClient.connect(frontend.port)
    await client.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: ")
    for _ in range(8):
        await client.send(b"v" * 1024)
    raw = await client.read_until_close()
    assert parse_responses(raw)[0].status == 431
    await client.close()
    await assert_still_serving(frontend.port)


async def test_bad_request_after_good_pipelined_one(frontend):
    raw = await exchange_raw(frontend.port, b"GET /sleep?0.05 HTTP/1.1\r\nHost: a\r\n\r\nBAD\r\n\r\n")
    responses = parse_responses(raw)
    assert [r.status for r in responses] == [200, 400]


async def test_request_body_content_length_and_chunked(frontend):
    raw = await exchange_raw(frontend.port, b"POST /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                                            b"Content-Length: 5\r\n\r\nhello")
    assert parse_responses(raw)[0].body == b"hello"
    raw = await exchange_raw(frontend.port, b"POST /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                                            b"Transfer-Encoding: chunked\r\n\r\n"
                                            b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n")
    assert parse_responses(raw)[0].body == b"hello"


async def test_upgrade_request_is_served_as_plain_http(frontend):
    raw = await exchange_raw(frontend.port, b"GET /hit HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                                            b"Upgrade: websocket\r\n\r\n"
                                            b"GET /hit HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert [r.status for r in parse_responses(raw)] == [200, 200]


async def test_expect_100_continue(frontend):
    client = await RawClient.connect(frontend.port)
    await client.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                      b"Content-Length: 4\r\n\r\n")
    status, _ = await client.read_head()
    assert status == 100
    await client.send(b"body")
    resp = await client.read_response()
    assert resp.status == 200 and resp.body == b"body"
    await client.close()


async def test_unread_request_body_is_skipped_on_keep_alive(frontend):
    client = await RawClient.connect(frontend.port)
    await client.send(b"POST /ignore-body HTTP/1.1\r\nHost: a\r\nContent-Length: 300000\r\n\r\n"
                      + b"z" * 300000 + b"GET /hit HTTP/1.1\r\nHost: a\r\n\r\n")
    assert (await client.read_response()).status == 403
    assert (await client.read_response()).body == ONE_KB
    await client.close()


async def test_absolute_form_target_sets_host(frontend):
    seen: list[tuple[str, str]] = []

    async def handler(exchange: Exchange) -> Response:
        seen.append((exchange.request.target, exchange.request.host))
        return Response(200, body=b"ok")

    fe = FrontEnd(handler, ServerConfig())
    await fe.start("127.0.0.1", 0)
    await exchange_raw(fe.port, b"GET http://example.com:8080/a?b=1 HTTP/1.1\r\nHost: other\r\n"
                                b"Connection: close\r\n\r\n")
    await fe.shutdown(1.0)
    assert seen == [("/a?b=1", "example.com:8080")]


async def test_idle_keep_alive_connection_times_out():
    fe = FrontEnd(app, ServerConfig(keepalive_timeout=0.1))
    await fe.start("127.0.0.1", 0)
    client = await RawClient.connect(fe.port)
    await client.send(b"GET /hit HTTP/1.1\r\nHost: a\r\n\r\n")
    assert (await client.read_response()).status == 200
    assert await client.is_closed()
    await client.close()
    await fe.shutdown(1.0)


async def test_slow_request_head_gets_408():
    fe = FrontEnd(app, ServerConfig(request_timeout=0.1, keepalive_timeout=5))
    await fe.start("127.0.0.1", 0)
    client = await RawClient.connect(fe.port)
    await client.send(b"GET /hit HTTP/1.1\r\nHo")
    raw = await client.read_until_close()
    assert parse_responses(raw)[0].status == 408
    await client.close()
    await fe.shutdown(1.0)


async def test_graceful_shutdown_drains_in_flight_and_closes_idle(frontend):
    idle = await RawClient.connect(frontend.port)
    await idle.send(b"GET /hit HTTP/1.1\r\nHost: a\r\n\r\n")
    await idle.read_response()
    busy = await RawClient.connect(frontend.port)
    await busy.send(b"GET /sleep?0.3 HTTP/1.1\r\nHost: a\r\n\r\n")
    await asyncio.sleep(0.05)  # let the request reach the handler
    shutdown = asyncio.create_task(frontend.shutdown(BOUND))
    assert await idle.is_closed()
    resp = await busy.read_response()
    assert resp.status == 200 and resp.body == b"/sleep?0.3"
    assert resp.headers["connection"] == "close"
    await asyncio.wait_for(shutdown, BOUND)
    with pytest.raises(OSError):
        await RawClient.connect(frontend.port)
    await idle.close()
    await busy.close()


async def test_shutdown_grace_over_aborts():
    fe = FrontEnd(app, ServerConfig())
    await fe.start("127.0.0.1", 0)
    client = await RawClient.connect(fe.port)
    await client.send(b"GET /sleep?30 HTTP/1.1\r\nHost: a\r\n\r\n")
    await asyncio.sleep(0.05)
    task = next(iter(fe.connections))._task
    await asyncio.wait_for(fe.shutdown(0.1), BOUND)
    assert await client.read_until_close() == b""
    await asyncio.sleep(0)
    assert task is not None and task.cancelled()
    await client.close()


async def test_slow_body_consumer_pauses_reading(frontend):
    """A handler reading slowly must not make the front end buffer the upload."""
    size = 32 * 1024 * 1024
    client = await RawClient.connect(frontend.port)
    tracemalloc.start()
    try:
        await client.send(b"POST /slow-reader HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size)
        piece = b"b" * (1024 * 1024)
        for _ in range(size // len(piece)):
            await client.send(piece)
        resp = await client.read_response()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert resp.status == 200 and resp.body == str(size).encode()
    assert peak < 12 * 1024 * 1024, f"peak {peak} bytes for a {size}-byte body"
    await client.close()
