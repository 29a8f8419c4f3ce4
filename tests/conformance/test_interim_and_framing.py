"""Interim responses and origin framing through the cache (cache-tests interim,
headers-store-Transfer-Encoding).  RFC 9110 §15.2, RFC 9111 §3, RFC 9112 §6.3.

The origins here are raw sockets, so the bytes they send are exactly the ones under test
(1xx heads before the final one, a close-delimited body under a Transfer-Encoding that
is not chunked); the client is a raw socket too, so every 1xx it receives is seen.
"""

from __future__ import annotations

import asyncio

import pytest

from dataplane_support import RawClient, RawOrigin, exchange_raw, parse_responses, read_request_head

FINAL = (b"HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 5\r\n\r\nhello")
EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload; as=style\r\nX-My-Header: test\r\n\r\n"


def interim_origin(*interims: bytes) -> RawOrigin:
    """Answers every request with ``interims`` (one write each, a pause between), then FINAL."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_request_head(reader)
            length = [int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                      if line.startswith(b"content-length:")]
            for interim in interims:
                writer.write(interim)
                await writer.drain()
                await asyncio.sleep(0.02)
            if length:
                await reader.readexactly(length[0])
            writer.write(FINAL)
            await writer.drain()
    return RawOrigin(handle)


async def request(port: int, path: str, version: str = "1.1", extra: str = "") -> list:
    raw = await exchange_raw(port, f"GET {path} HTTP/{version}\r\nHost: test.local\r\n"
                                   f"Connection: close\r\n{extra}\r\n".encode())
    return parse_responses(raw)


@pytest.fixture
async def raw_origin_edge(make_edge):
    started: list[RawOrigin] = []

    async def make(origin: RawOrigin):
        await origin.start()
        started.append(origin)
        return await make_edge(origin_port=origin.port)

    yield make
    for origin in started:
        await origin.close()


async def test_early_hints_forwarded_never_cached(raw_origin_edge):
    """103 reaches the client; neither it nor its fields are stored with the final response."""
    edge = await raw_origin_edge(interim_origin(EARLY_HINTS))
    first = await request(edge.port, "/eh")
    assert [r.status for r in first] == [103, 200]
    assert first[0].headers["link"] == "</s.css>; rel=preload; as=style"
    assert first[0].headers["x-my-header"] == "test"
    assert first[1].body == b"hello" and "x-my-header" not in first[1].headers
    again = await request(edge.port, "/eh")
    assert [r.status for r in again] == [200]
    assert again[0].headers["x-cache"] == "HIT" and "x-my-header" not in again[0].headers


async def test_102_and_103_forwarded_in_order(raw_origin_edge):
    edge = await raw_origin_edge(interim_origin(b"HTTP/1.1 102 Processing\r\n\r\n", EARLY_HINTS))
    got = await request(edge.port, "/p")
    assert [r.status for r in got] == [102, 103, 200]
    assert got[2].complete and got[2].body == b"hello"


async def test_no_interim_to_http10_client(raw_origin_edge):
    """RFC 9110 §15.2: a server must not send a 1xx to an HTTP/1.0 client."""
    edge = await raw_origin_edge(interim_origin(EARLY_HINTS))
    got = await request(edge.port, "/old", version="1.0")
    assert [r.status for r in got] == [200]


async def test_one_100_continue_for_the_client(raw_origin_edge):
    """The node answers Expect itself; the origin's own 100 Continue is not sent twice."""
    edge = await raw_origin_edge(interim_origin(b"HTTP/1.1 100 Continue\r\n\r\n", EARLY_HINTS))
    client = await RawClient.connect(edge.port)
    try:
        await client.send(b"POST /up HTTP/1.1\r\nHost: test.local\r\nContent-Length: 3\r\n"
                          b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        status, _ = await client.read_head()
        assert status == 100
        await client.send(b"abc")
        rest = parse_responses(await client.read_until_close())
        assert [r.status for r in rest] == [103, 200]
    finally:
        await client.close()



def close_delimited_origin(head: bytes, body: bytes) -> RawOrigin:
    """One response per connection: ``head``, then ``body`` in pieces, then a clean close."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(head)
        for i in range(0, len(body), 7):
            writer.write(body[i:i + 7])
            await writer.drain()
        writer.write_eof()
    return RawOrigin(handle)


@pytest.mark.parametrize("coding", ["gzip-ish", "identity", "foo, bar"])
async def test_non_chunked_transfer_coding_read_to_close(raw_origin_edge, coding):
    """RFC 9112 §6.3: a final coding other than chunked means the body ends at close; the
    response is whole, stored, and Transfer-Encoding (hop-by-hop) is not stored."""
    body = b"0123456789" * 10
    head = (f"HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nTransfer-Encoding: {coding}\r\n"
            "Connection: close\r\n\r\n").encode()
    edge = await raw_origin_edge(close_delimited_origin(head, body))
    first = (await request(edge.port, "/te"))[-1]
    assert first.status == 200 and first.complete and first.body == body
    assert first.headers.get("transfer-encoding", "chunked") == "chunked"
    again = (await request(edge.port, "/te"))[-1]
    assert again.headers["x-cache"] == "HIT" and again.body == body
    assert "transfer-encoding" not in again.headers and again.headers["content-length"] == "100"
