"""HTTP/1.1 trailers through the data plane: client -> front end -> cache -> origin and back.

Raw sockets on both sides so the exact chunked framing and trailer sections are visible:
a raw client writes chunked requests, a raw origin records what it was sent (parsed with
httptools, trailers included) and answers with scripted chunked responses.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httptools
import pytest
from multidict import CIMultiDict

from dataplane_support import RawClient, RawOrigin, exchange_raw, node_config, start_node
from edgenode.cache.stage import CacheStage
from edgenode.http.client import OriginPool
from edgenode.http.messages import Request, read_body

#: allowed by the parser but forbidden as trailers (RFC 9110 6.5.1): dropped, not forwarded;
#: framing fields (Content-Length, Transfer-Encoding) make llhttp reject the message (400)
FORBIDDEN_REQ = ("Host: evil.example\r\nAuthorization: Bearer x\r\nCache-Control: no-cache\r\n"
                 "Connection: close\r\n")


# --- a parser that keeps trailers apart from the head ---------------------------------
@dataclass
class Message:
    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    trailers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    complete: bool = False

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def trailer(self, name: str) -> str | None:
        return next((v for k, v in self.trailers if k.lower() == name.lower()), None)


class _Collector:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.in_head = False
        self.parser: httptools.HttpResponseParser | httptools.HttpRequestParser | None = None

    def on_message_begin(self) -> None:
        self.messages.append(Message())
        self.in_head = True

    def on_header(self, name: bytes, value: bytes) -> None:
        pair = (name.decode("latin-1"), value.decode("latin-1"))
        (self.messages[-1].headers if self.in_head else self.messages[-1].trailers).append(pair)

    def on_headers_complete(self) -> None:
        self.in_head = False
        if isinstance(self.parser, httptools.HttpResponseParser):
            self.messages[-1].status = self.parser.get_status_code()

    def on_body(self, chunk: bytes) -> None:
        self.messages[-1].body += chunk

    def on_message_complete(self) -> None:
        self.messages[-1].complete = True


def parse(data: bytes, request: bool = False) -> list[Message]:
    c = _Collector()
    c.parser = (httptools.HttpRequestParser if request else httptools.HttpResponseParser)(c)
    try:
        c.parser.feed_data(data)
    except httptools.HttpParserError:
        pass
    return c.messages


def chunked_response(body_parts: list[bytes], trailers: str, head: str = "") -> bytes:
    out = [f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n{head}\r\n"
           .encode()]
    out += [b"%x\r\n%s\r\n" % (len(p), p) for p in body_parts]
    out.append(b"0\r\n" + trailers.encode() + b"\r\n")
    return b"".join(out)


class TrailerOrigin:
    """Reads each request whole (trailers included) and answers with a scripted response."""

    def __init__(self, answer: bytes, pieces: int = 1) -> None:
        self.answer = answer
        self.pieces = pieces
        self.requests: list[Message] = []
        self.raw = RawOrigin(self._handle)

    async def start(self) -> TrailerOrigin:
        await self.raw.start()
        return self

    @property
    def port(self) -> int:
        return self.raw.port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        c = _Collector()
        c.parser = httptools.HttpRequestParser(c)
        while True:
            data = await reader.read(65536)
            if not data:
                return
            c.parser.feed_data(data)
            while c.messages and c.messages[0].complete:
                self.requests.append(c.messages.pop(0))
                step = max(1, len(self.answer) // self.pieces)
                for i in range(0, len(self.answer), step):  # several writes: a streamed body
                    writer.write(self.answer[i:i + step])
                    await writer.drain()
                    if self.pieces > 1:
                        await asyncio.sleep(0.01)

    async def close(self) -> None:
        await self.raw.close()


def chunked_request(parts: list[bytes], trailers: str, path: str = "/up",
                    extra: str = "") -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n{extra}\r\n"
            .encode())
    return head + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n" + \
        trailers.encode() + b"\r\n"


async def _node(origin_port: int, cache: bool = False, **server: object):
    top = {"server": server} if server else {}
    cfg = node_config({"o": {"url": f"http://127.0.0.1:{origin_port}"}}, **top)
    wrap = (lambda up: CacheStage(cfg.cache).wrap(up)) if cache else None
    return await start_node(cfg, wrap)


async def _roundtrip(port: int, data: bytes) -> list[Message]:
    client = await RawClient.connect(port)
    try:
        await client.send(data)
        return parse(await client.read_until_close())
    finally:
        await client.close()


# --- request trailers ------------------------------------------------------------------
@pytest.mark.parametrize("cache", [False, True], ids=["upstream", "through-cache"])
async def test_request_trailers_reach_the_origin_without_forbidden_fields(cache):
    origin = await TrailerOrigin(chunked_response([b"ok"], "")).start()
    node = await _node(origin.port, cache=cache)
    try:
        req = chunked_request([b"hello ", b"world"], "X-Checksum: abc123\r\n" + FORBIDDEN_REQ
                              + "X-Other: 2\r\n", extra="Connection: close\r\n")
        [resp] = await _roundtrip(node.port, req)
        assert resp.status == 200 and resp.body == b"ok"
        [sent] = origin.requests
        assert sent.body == b"hello world"
        assert sent.header("Transfer-Encoding") == "chunked"
        assert sent.trailers == [("X-Checksum", "abc123"), ("X-Other", "2")]
        assert sent.header("Host") == "test.local"  # the trailer's Host changed nothing
    finally:
        await node.close()
        await origin.close()


async def test_request_trailers_then_next_request_on_the_same_connection():
    origin = await TrailerOrigin(chunked_response([b"ok"], "")).start()
    node = await _node(origin.port)
    try:
        data = (chunked_request([b"abc"], "X-T: 1\r\n")
                + b"GET /next HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n")
        responses = await _roundtrip(node.port, data)
        assert [r.status for r in responses] == [200, 200]
        assert [m.trailers for m in origin.requests] == [[("X-T", "1")], []]
    finally:
        await node.close()
        await origin.close()


async def test_content_length_request_sends_no_trailers():
    origin = await TrailerOrigin(chunked_response([b"ok"], "")).start()
    pool = OriginPool(node_config({"o": {"url": f"http://127.0.0.1:{origin.port}"}}).origins["o"])
    try:
        req = Request("POST", "/x", CIMultiDict({"Host": "o", "Content-Length": "3"}), b"abc")
        resp = await pool.request(req)
        await read_body(resp.body)
        [sent] = origin.requests
        assert sent.header("Content-Length") == "3" and sent.trailers == []
        # a bytes body that carries trailers is sent chunked to deliver them
        req = Request("POST", "/x", CIMultiDict({"Host": "o"}), b"abc")
        req.trailers = CIMultiDict({"X-Sum": "9", "Cache-Control": "no-store"})
        resp = await pool.request(req)
        await read_body(resp.body)
        sent = origin.requests[1]
        assert sent.header("Transfer-Encoding") == "chunked" and sent.header("Content-Length") is None
        assert sent.body == b"abc" and sent.trailers == [("X-Sum", "9")]
    finally:
        await pool.close()
        await origin.close()


async def test_oversized_request_trailers_get_431():
    origin = await TrailerOrigin(chunked_response([b"ok"], "")).start()
    node = await _node(origin.port, max_header_bytes=1024)
    try:
        req = chunked_request([b"abc"], "X-Big: " + "a" * 2000 + "\r\n")
        [resp] = await _roundtrip(node.port, req)
        assert resp.status == 431
        assert b"trailer section larger than 1024" in resp.body
        assert origin.requests == []  # the origin never saw a complete request
    finally:
        await node.close()
        await origin.close()


async def test_never_ending_trailer_line_is_cut_off_with_431():
    origin = await TrailerOrigin(chunked_response([b"ok"], "")).start()
    node = await _node(origin.port, max_header_bytes=1024)
    client = await RawClient.connect(node.port)
    try:
        head = chunked_request([b"abc"], "")[:-2]  # up to and including "0\r\n"
        await client.send(head + b"X-Endless: ")
        data = b""
        for _ in range(40):  # bounded: the node must give up well before 40 KB
            await client.send(b"a" * 1024)
            try:  # stop sending once the node answered (a poll, not a timed assertion)
                data = await asyncio.wait_for(client.reader.read(65536), 0.05)
                break
            except asyncio.TimeoutError:
                continue
        data += await client.read_until_close()
        [resp] = parse(data)
        assert resp.status == 431 and b"trailer" in resp.body
        assert origin.requests == []
    finally:
        await client.close()
        await node.close()
        await origin.close()


@pytest.mark.parametrize("trailer", ["X-Bad 1\r\n", "X-Bad: 1\r\n folded\r\n", "X-Bad: a\x01b\r\n",
                                     "Content-Length: 5\r\n", "Transfer-Encoding: chunked\r\n"])
async def test_malformed_request_trailers_get_400(trailer):
    origin = await TrailerOrigin(chunked_response([b"ok"], "")).start()
    node = await _node(origin.port)
    try:
        [resp] = await _roundtrip(node.port, chunked_request([b"abc"], trailer))
        assert resp.status == 400 and b"malformed" in resp.body
        assert origin.requests == []
    finally:
        await node.close()
        await origin.close()


# --- response trailers -------------------------------------------------------------------
RESP_TRAILERS = "X-Digest: sha-256=abc\r\nSet-Cookie: a=b\r\nCache-Control: no-store\r\nX-Status: done\r\n"


@pytest.mark.parametrize("pieces", [1, 6], ids=["one-read", "streamed"])
@pytest.mark.parametrize("te", ["TE: trailers\r\n", ""], ids=["te-trailers", "no-te"])
async def test_response_trailers_reach_the_client(pieces, te):
    answer = chunked_response([b"a" * 3000, b"b" * 3000], RESP_TRAILERS)
    origin = await TrailerOrigin(answer, pieces).start()
    node = await _node(origin.port)
    try:
        raw = (f"GET /t HTTP/1.1\r\nHost: test.local\r\n{te}Connection: close\r\n\r\n").encode()
        [resp] = await _roundtrip(node.port, raw)
        assert resp.complete and resp.body == b"a" * 3000 + b"b" * 3000
        assert resp.header("Transfer-Encoding") == "chunked"
        assert resp.trailers == [("X-Digest", "sha-256=abc"), ("X-Status", "done")]
        exchange, response = node.completed[-1]
        assert response.trailers is not None and response.trailers["X-Status"] == "done"
    finally:
        await node.close()
        await origin.close()


async def test_http10_client_and_head_get_no_trailers():
    origin = await TrailerOrigin(chunked_response([b"abc"], "X-Status: done\r\n")).start()
    node = await _node(origin.port)
    try:
        [resp] = parse(await exchange_raw(node.port, b"GET /t HTTP/1.0\r\nHost: test.local\r\n\r\n"))
        assert resp.body == b"abc" and resp.trailers == []
        assert resp.header("Transfer-Encoding") is None
    finally:
        await node.close()
        await origin.close()


async def test_origin_pool_reports_response_trailers():
    answer = chunked_response([b"x" * 1000], "X-Status: done\r\nHost: nope\r\n")
    for pieces in (1, 4):
        origin = await TrailerOrigin(answer, pieces).start()
        pool = OriginPool(node_config({"o": {"url": f"http://127.0.0.1:{origin.port}"}}).origins["o"])
        try:
            resp = await pool.request(Request("GET", "/", CIMultiDict({"Host": "o"})))
            assert resp.trailers is None or pieces == 1  # a streamed body: not known yet
            assert await read_body(resp.body) == b"x" * 1000
            assert resp.trailers is not None and list(resp.trailers.items()) == [("X-Status", "done")]
            # the connection went back to the pool cleanly: a second request reuses it
            resp = await pool.request(Request("GET", "/", CIMultiDict({"Host": "o"})))
            await read_body(resp.body)
            assert pool.reused == 1 and origin.raw.connections == 1
        finally:
            await pool.close()
            await origin.close()


# --- the cache ----------------------------------------------------------------------------
@pytest.mark.parametrize("pieces", [1, 6], ids=["one-read", "streamed"])
async def test_cached_chunked_response_replays_its_trailers(pieces):
    answer = chunked_response([b"c" * 4000, b"d" * 4000], "X-Digest: sha-256=xyz\r\n",
                              head="Cache-Control: max-age=60\r\nETag: \"v1\"\r\n")
    origin = await TrailerOrigin(answer, pieces).start()
    node = await _node(origin.port, cache=True)
    try:
        get = b"GET /c HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n"
        [miss] = await _roundtrip(node.port, get)
        [hit] = await _roundtrip(node.port, get)
        assert len(origin.requests) == 1
        assert miss.header("X-Cache") == "MISS" and hit.header("X-Cache") == "HIT"
        for resp in (miss, hit):
            assert resp.body == b"c" * 4000 + b"d" * 4000
            assert resp.header("Transfer-Encoding") == "chunked"
            assert resp.header("Content-Length") is None
            assert resp.trailers == [("X-Digest", "sha-256=xyz")]
        # whole-body metadata: not on a 206, a 304 or a HEAD answered from the entry
        for extra in ("Range: bytes=0-9\r\n", "If-None-Match: \"v1\"\r\n"):
            [part] = await _roundtrip(node.port, get.replace(b"\r\n\r\n", f"\r\n{extra}\r\n".encode()))
            assert part.status in (206, 304) and part.trailers == []
        [head] = await _roundtrip(node.port, get.replace(b"GET", b"HEAD"))
        assert head.status == 200 and head.trailers == [] and head.body == b""
        assert len(origin.requests) == 1
    finally:
        await node.close()
        await origin.close()


async def test_hit_without_trailers_keeps_content_length():
    answer = (b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 3\r\n\r\nabc")
    origin = await TrailerOrigin(answer).start()
    node = await _node(origin.port, cache=True)
    try:
        get = b"GET /n HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n"
        await _roundtrip(node.port, get)
        [hit] = await _roundtrip(node.port, get)
        assert hit.header("X-Cache") == "HIT" and hit.header("Content-Length") == "3"
        assert hit.header("Transfer-Encoding") is None and hit.trailers == []
    finally:
        await node.close()
        await origin.close()


async def test_stored_trailers_are_not_shared_with_a_stage_that_edits_them():
    answer = chunked_response([b"abc"], "X-Digest: one\r\n", head="Cache-Control: max-age=60\r\n")
    origin = await TrailerOrigin(answer).start()
    cfg = node_config({"o": {"url": f"http://127.0.0.1:{origin.port}"}})
    cache = CacheStage(cfg.cache)

    def chain(upstream):
        inner = cache.wrap(upstream)

        async def editor(exchange):  # a later stage (e.g. a filter) rewrites the trailers
            resp = await inner(exchange)
            if resp.trailers is not None:
                resp.trailers["X-Digest"] = "edited"
            return resp
        return editor

    node = await start_node(cfg, chain)
    try:
        get = b"GET /e HTTP/1.1\r\nHost: test.local\r\nConnection: close\r\n\r\n"
        for _ in range(3):
            [resp] = await _roundtrip(node.port, get)
            assert resp.trailers == [("X-Digest", "edited")]
        entry, _ = cache.store.lookup(next(iter(cache.store._variants)), CIMultiDict())
        assert entry is not None and entry.trailers["X-Digest"] == "one"
    finally:
        await node.close()
        await origin.close()


def test_last_chunk_leaves_out_what_would_break_the_framing():
    from edgenode.http.headers import last_chunk

    fields = CIMultiDict([("X-A", "1"), ("Content-Length", "3"), ("X-Split", "a\r\nInjected: 1"),
                          ("Bad Name", "2"), ("X-Euro", "\u20ac"), ("X-B", "\xe9")])
    assert last_chunk(fields) == b"0\r\nX-A: 1\r\nX-B: \xe9\r\n\r\n"
    assert last_chunk(None) == last_chunk(CIMultiDict()) == b"0\r\n\r\n"
