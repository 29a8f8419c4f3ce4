"""FrontEnd limits on a real socket: per-request head budgets with pipelining,
write back-pressure, request-body timeouts and lingering close after an error."""

from __future__ import annotations

import asyncio
import socket
import tracemalloc
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from multidict import CIMultiDict

from dataplane_support import BOUND, RawClient, parse_responses
import edgenode
from edgenode.config import ServerConfig
from edgenode.http.messages import Response, read_body
from edgenode.frontend.server import FrontEnd
from edgenode.pipeline.exchange import Exchange

BIG = b"B" * (256 * 1024)
SMALL = b"s" * 1024


async def app(exchange: Exchange) -> Response:
    req = exchange.request
    if req.path == "/big":
        return Response(200, CIMultiDict({"Content-Type": "application/octet-stream"}), BIG)
    if req.path == "/small":
        return Response(200, CIMultiDict({"Content-Type": "text/plain"}), SMALL)
    if req.path == "/upload":
        body = await read_body(req.body)
        return Response(200, body=str(len(body)).encode())
    return Response(200, body=req.target.encode())


@pytest.fixture
async def start() -> AsyncIterator[Any]:
    ends: list[FrontEnd] = []

    async def make(**server: Any) -> FrontEnd:
        settings = {"max_header_bytes": 2048, "max_request_line_bytes": 512,
                    "keepalive_timeout": 5.0, "request_timeout": 5.0, **server}
        fe = FrontEnd(app, ServerConfig(**settings))
        await fe.start("127.0.0.1", 0)
        ends.append(fe)
        return fe

    yield make
    for fe in ends:
        await fe.shutdown(1.0)


async def test_pipelined_batch_larger_than_the_head_limit_is_not_431(start) -> None:
    """Many small pipelined requests in one read (20 KB, ten times the 2 KB head limit)
    ending inside a head: each head is counted on its own."""
    fe = await start()
    heads = [b"GET /r%03d HTTP/1.1\r\nHost: a\r\nX-Pad: %s\r\n\r\n" % (i, b"p" * 60)
             for i in range(200)]
    batch = b"".join(heads)
    assert len(batch) > 9 * 2048
    client = await RawClient.connect(fe.port)
    await client.send(batch + b"GET /last HTTP/1.1\r\nHost: a\r\nX-Pad: ")  # ends mid-head
    await asyncio.sleep(0.1)
    await client.send(b"done\r\nConnection: close\r\n\r\n")
    responses = parse_responses(await client.read_until_close())
    await client.close()
    assert [r.status for r in responses] == [200] * 201
    assert responses[-1].body == b"/last"


async def test_trailer_section_split_across_reads_behind_a_batch_is_not_431(start) -> None:
    """The same per-message count for a chunked body's trailer section (1.5 KB, under the
    2 KB limit) arriving in pieces after a large pipelined batch."""
    fe = await start()
    batch = b"GET /r HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * 60 + b"\r\n\r\n"
    trailers = b"".join(b"X-T%02d: %s\r\n" % (i, b"t" * 40) for i in range(30))
    upload = (b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
              b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\n")
    client = await RawClient.connect(fe.port)
    await client.send(batch * 150 + upload + trailers[:700])
    await asyncio.sleep(0.1)
    await client.send(trailers[700:])
    await asyncio.sleep(0.1)
    await client.send(b"\r\n")
    responses = parse_responses(await client.read_until_close())
    await client.close()
    assert [r.status for r in responses] == [200] * 151 and responses[-1].body == b"5"


async def test_endless_header_line_in_one_read_is_431(start) -> None:
    fe = await start()
    client = await RawClient.connect(fe.port)
    await client.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + b"v" * 8192)
    responses = parse_responses(await client.read_until_close())
    await client.close()
    assert responses[0].status == 431


def _node_allocations() -> tracemalloc.Snapshot:
    """Python memory allocated from the node's own code (the test client's buffers and
    the transports' write buffers are left out: the latter are measured exactly)."""
    return tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(True, f"{Path(edgenode.__file__).parent}/*")])


@pytest.mark.parametrize("path,count", [("/big", 100), ("/small", 3000)])
async def test_pipelining_client_that_never_reads_holds_bounded_memory(start, path, count) -> None:
    """Three clients pipeline requests (100 for a 256 KiB answer, or 3,000 for a 1 KiB
    one) and read nothing.  Per connection the node holds at most its write high-water
    mark plus one answer in write buffers, and a bounded amount of parsed requests; once
    the clients read, every answer arrives, in order."""
    fe = await start(write_high_water=128 * 1024)
    answer = BIG if path == "/big" else SMALL
    budget = 128 * 1024 + len(answer) + 512 * 1024
    tracemalloc.start()
    try:
        before = _node_allocations()
        clients = [await RawClient.connect(fe.port) for _ in range(3)]
        for client in clients:
            client.writer.write(f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode() * (count - 1)
                                + f"GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
        await asyncio.sleep(0.5)  # the node answers until the clients' socket buffers are full
        parsed = sum(stat.size_diff for stat in _node_allocations().compare_to(before, "filename")) / 3
    finally:
        tracemalloc.stop()
    buffered = [conn.transport.get_write_buffer_size() for conn in fe.connections]
    assert len(buffered) == 3
    for held in buffered:
        assert held + parsed <= budget, (buffered, parsed)
    for client in clients:
        responses = parse_responses(await client.read_until_close())
        assert len(responses) == count
        assert all(r.status == 200 and r.complete and r.body == answer for r in responses)
        await client.close()


async def _stall_body(port: int, sent: bytes, length: int, trickle: float = 0.0) -> tuple[bytes, float]:
    """POST /upload announcing ``length`` bytes, send ``sent`` (a byte per ``trickle``
    seconds when set), then nothing; return what came back and how long it took."""
    client = await RawClient.connect(port)
    started = asyncio.get_running_loop().time()
    await client.send(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % length)
    if trickle:
        for byte in sent:
            await client.send(bytes([byte]))
            await asyncio.sleep(trickle)
    else:
        await client.send(sent)
    raw = await client.read_until_close()
    await client.close()
    return raw, asyncio.get_running_loop().time() - started


async def test_stalled_request_body_is_408(start) -> None:
    fe = await start(body_between_bytes_timeout=0.3, body_timeout=30.0)
    raw, took = await _stall_body(fe.port, b"x" * 10, 100)
    resp = parse_responses(raw)[0]
    assert resp.status == 408 and b"no request body bytes for 0.3s" in resp.body
    assert resp.headers["connection"] == "close"
    assert took < BOUND


async def test_trickled_request_body_hits_the_total_timeout(start) -> None:
    fe = await start(body_between_bytes_timeout=5.0, body_timeout=0.5)
    raw, took = await _stall_body(fe.port, b"y" * 40, 100, trickle=0.05)
    resp = parse_responses(raw)[0]
    assert resp.status == 408 and b"not received within 0.5s" in resp.body
    assert took < 2.0 + 0.5  # the trickle would have taken 2 s and never finished


async def _bad_request_behind_a_big_answer(port: int, bad: bytes, junk: int) -> bytes:
    """Ask for a 256 KiB answer, then send a request the node rejects and ``junk`` more
    bytes (as a client uploading a body does), all before reading anything, through a
    small receive window: the node's answers are still queued in its kernel socket when
    it decides to close.  Then read everything."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    client = RawClient(reader, writer)
    try:
        writer.write(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n" + bad)
        for _ in range(junk // 16384):
            writer.write(b"j" * 16384)
            await asyncio.wait_for(writer.drain(), BOUND)
    except ConnectionError:
        pass
    await asyncio.sleep(0.2)
    raw = await client.read_until_close()
    await client.close()
    return raw


@pytest.mark.parametrize("bad,status", [
    (b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", 400),
    (b"POST /upload HTTP/1.1\r\nHost: a\r\nX-Big: " + b"h" * 4000 + b"\r\n\r\n", 431),
    (b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nContent-Length: 11\r\n\r\n", 400),
])
async def test_error_answer_survives_unread_input(start, bad, status) -> None:
    """With input left unread, a plain close makes the kernel reset the connection and
    drop what it still had to send; a lingering close delivers every answer."""
    fe = await start()
    responses = parse_responses(await _bad_request_behind_a_big_answer(fe.port, bad, 512 * 1024))
    assert [(r.status, r.complete) for r in responses] == [(200, True), (status, True)]
    assert responses[0].body == BIG
