"""The origin connection's usual exchange in C (``http/_origin.c``) against its Python
reference (``_OriginConnection``'s ``_send``, ``_data_received``, ``_headers_complete``,
``_on_body``, ``_message_complete``): the same responses slot by slot over many generated
origin heads, on real sockets, and every unusual case still reaching the Python methods."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest
from multidict import CIMultiDict, getversion

from dataplane_support import RawOrigin
from edgenode.config import OriginConfig
from edgenode.http import client
from edgenode.http.client import OriginBody, OriginPool, _OriginConnection
from edgenode.http.errors import OriginError
from edgenode.http.messages import FROM_BODY, PrebuiltResponse, Request, Response, read_body

#: the Python methods the C callbacks hand unusual cases to
REFERENCE = ("_data_received", "_headers_complete", "_on_body", "_message_complete", "_after_read",
             "_parse_failed", "_send")


class PythonConnection(_OriginConnection):
    """The connection with the Python reference as the protocol's and parser's callbacks."""

    data_received = _OriginConnection._data_received  # type: ignore[assignment]
    on_headers_complete = _OriginConnection._headers_complete
    on_body = _OriginConnection._on_body
    on_message_complete = _OriginConnection._message_complete
    send = _OriginConnection._send  # type: ignore[assignment]


def counting(base: type[_OriginConnection], calls: Counter[str]) -> type[_OriginConnection]:
    """``base`` counting its calls of the Python reference methods in ``calls``."""
    def spy(name: str) -> Any:
        method = getattr(base, name)

        def counted(self: Any, *args: Any) -> Any:
            calls[name] += 1
            return method(self, *args)
        return counted
    return type("Counting" + base.__name__, (base,), {name: spy(name) for name in REFERENCE})


def scripted_origin(replies: list[list[bytes]], gap: float = 0.02) -> RawOrigin:
    """Answers each request head with the next reply's parts, written ``gap`` s apart;
    ``5 * gap`` s after the last reply the connection is closed (the end of a body framed
    by the close)."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for parts in replies:
            await reader.readuntil(b"\r\n\r\n")
            for i, part in enumerate(parts):
                if i:
                    await asyncio.sleep(gap)
                writer.write(part)
                await writer.drain()
        await asyncio.sleep(5 * gap)
    return RawOrigin(answer)


async def outcome(response: Response) -> dict[str, Any]:
    """Every slot of ``response``, its streamed body read, its fields' version checked."""
    slots = {name: getattr(response, name) for cls in Response.__mro__
             for name in getattr(cls, "__slots__", ())}
    body = slots["body"]
    if type(body) is OriginBody:
        slots["body"] = ("streamed", await read_body(body))
        slots["_trailers"] = body.trailers
    fields = slots["fields"]
    if fields is not None:
        assert fields[0] == getversion(response.headers)
        slots["fields"] = fields[1]
    slots["headers"] = list(response.headers.items())
    trailers = slots["_trailers"]
    slots["_trailers"] = "FROM_BODY" if trailers is FROM_BODY else (
        None if trailers is None else list(trailers.items()))
    slots["type"] = type(response)
    return slots


async def run(conn_class: type[_OriginConnection], replies: list[list[bytes]], methods: list[str],
              monkeypatch: pytest.MonkeyPatch, gap: float = 0.02) -> list[Any]:
    """The outcomes of ``methods`` sent in turn to an origin answering ``replies``, with
    connections of ``conn_class``, and the pool's counts after."""
    monkeypatch.setattr(client, "_OriginConnection", conn_class)
    origin = await scripted_origin(replies, gap).start()
    pool = OriginPool(OriginConfig(name="t", url=f"http://127.0.0.1:{origin.port}", host="127.0.0.1",
                                   port=origin.port))
    seen: list[Any] = []
    try:
        for method in methods:
            try:
                response = await pool.request(Request(method, "/x", CIMultiDict({"Host": "t"})))
                seen.append(await outcome(response))
            except OriginError as exc:
                seen.append((type(exc), str(exc)))
        await asyncio.sleep(2 * gap)  # what the origin writes after its last reply
        seen.append((pool.opened, pool.reused, pool.idle_count, pool.keep_for, pool.keep_hint))
    finally:
        await pool.close()
        await origin.close()
    return seen


FIELDS = [("Content-Type", "text/plain"), ("Cache-Control", "public, max-age=60"), ("ETag", '"e1"'),
          ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"), ("Date", "Mon, 01 Jan 2024 00:00:01 GMT"),
          ("Server", "stand-in"), ("Vary", "Accept"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
          ("x-CUSTOM", "v\xe9"), ("Keep-Alive", "timeout=5, max=100"), ("Keep-Alive", "max=9"),
          ("Connection", "keep-alive"), ("Connection", "close")]
STATUSES = [200, 200, 200, 201, 203, 301, 404, 410, 500, 503, 204, 304, 103]
FRAMINGS = ["length", "length", "LENGTH", "chunked", "Chunked", "chunked-trailers", "gzip, chunked", "close"]


def generated_reply(rng: random.Random) -> tuple[list[bytes], bool]:
    """One origin response as the parts it is written in, and whether the connection ends
    with it (close-delimited, or Connection: close)."""
    status = rng.choice(STATUSES)
    interim = b""
    if status == 103:
        interim, status = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", 200
    fields = rng.sample(FIELDS, rng.randint(0, 6))
    framing = rng.choice(FRAMINGS)
    body = bytes(rng.choice(b"abcxyz") for _ in range(rng.choice([0, 1, 5, 300, 2000])))
    if status in (204, 304):
        body, framing = b"", rng.choice(["length", "none"])
    ends = framing == "close" or ("Connection", "close") in fields
    head = [f"{n}: {v}" for n, v in fields]
    if framing in ("length", "LENGTH"):
        head.append(("Content-Length" if framing == "length" else "CONTENT-LENGTH") + f": {len(body)}")
        payload = body
    elif framing in ("chunked", "Chunked", "chunked-trailers", "gzip, chunked"):
        coding = "chunked" if framing == "chunked-trailers" else framing
        head.append(f"Transfer-Encoding: {coding}")
        cut = len(body) // 2
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:cut], body[cut:]) if p)
        payload += b"0\r\nDigest: x\r\n\r\n" if framing == "chunked-trailers" else b"0\r\n\r\n"
    else:
        payload = body
    text = f"HTTP/1.1 {status} {rng.choice(['OK', 'Whatever', ''])}\r\n" + "".join(
        line + "\r\n" for line in head) + "\r\n"
    whole = interim + text.encode("latin-1") + payload
    split = rng.random()
    if split < 0.6:
        return [whole], ends
    cut = rng.randint(1, len(whole) - 1) if split < 0.85 else len(interim + text.encode("latin-1"))
    return [whole[:cut], whole[cut:]] if 0 < cut < len(whole) else [whole], ends


def generated_case(rng: random.Random) -> tuple[list[list[bytes]], list[str]]:
    replies: list[list[bytes]] = []
    for _ in range(rng.randint(1, 3)):
        parts, ends = generated_reply(rng)
        replies.append(parts)
        if ends:
            break
    methods = ["HEAD" if rng.random() < 0.1 else "GET" for _ in replies]
    return replies, methods


@pytest.mark.parametrize("seed", range(40))
async def test_the_c_callbacks_make_the_python_references_responses(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    replies, methods = generated_case(random.Random(seed))
    expected = await run(PythonConnection, replies, methods, monkeypatch)
    made = await run(_OriginConnection, replies, methods, monkeypatch)
    assert made == expected


def reply(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode("latin-1") + body


USUAL = reply("HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 5\n\n", b"hello")
USUAL_CHUNKED = reply("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n", b"5\r\nhello\r\n0\r\n\r\n")


@pytest.mark.parametrize("answer", [USUAL, USUAL_CHUNKED])
async def test_the_usual_response_runs_no_python_callback(answer: bytes,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    calls: Counter[str] = Counter()
    seen = await run(counting(_OriginConnection, calls), [[answer], [answer]], ["GET", "GET"], monkeypatch)
    assert [s["body"] for s in seen[:2]] == [b"hello", b"hello"]
    assert seen[0]["type"] is PrebuiltResponse
    assert seen[2][:3] == (1, 1, 1)  # one connection, reused, idle again
    assert calls == Counter()


UNUSUAL = {
    "interim": ([[reply("HTTP/1.1 100 Continue\n\n") + USUAL]], ["GET"], {"_headers_complete"}),
    "head": ([[reply("HTTP/1.1 200 OK\nContent-Length: 5\n\n")]], ["HEAD"], {"_headers_complete"}),
    "no content": ([[reply("HTTP/1.1 204 No Content\n\n")]], ["GET"], {"_headers_complete"}),
    "not modified": ([[reply("HTTP/1.1 304 Not Modified\nContent-Length: 5\n\n")]], ["GET"],
                     {"_headers_complete"}),
    "close-delimited": ([[reply("HTTP/1.1 200 OK\n\n", b"hello")]], ["GET"], {"_headers_complete"}),
    "other coding": ([[reply("HTTP/1.1 200 OK\nTransfer-Encoding: gzip, chunked\n\n",
                             b"0\r\n\r\n")]], ["GET"], {"_headers_complete"}),
    "a new keep-alive hint": ([[reply("HTTP/1.1 200 OK\nKeep-Alive: timeout=5\nContent-Length: 0\n\n")]],
                              ["GET"], {"_headers_complete"}),
    "body past the read": ([[USUAL[:-3], USUAL[-3:]]], ["GET"], {"_after_read", "_on_body",
                                                               "_message_complete"}),
    "head past the read": ([[USUAL[:20], USUAL[20:]]], ["GET"], {"_after_read"}),
    "trailers": ([[reply("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n",
                         b"5\r\nhello\r\n0\r\nDigest: x\r\n\r\n")]], ["GET"], {"_message_complete"}),
    "garbage": ([[b"HTTP/1.1 2000 What\r\n\r\n"]], ["GET"], {"_parse_failed"}),
    "bytes nobody asked for": ([[USUAL, b"extra"]], ["GET"], {"_data_received"}),
}


@pytest.mark.parametrize("case", sorted(UNUSUAL))
async def test_unusual_responses_reach_the_python_methods_with_the_same_outcome(
        case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    replies, methods, reached = UNUSUAL[case]
    calls: Counter[str] = Counter()
    made = await run(counting(_OriginConnection, calls), replies, methods, monkeypatch)
    assert reached <= set(calls), calls
    assert made == await run(PythonConnection, replies, methods, monkeypatch)


async def test_an_abandoned_waiter_reaches_the_python_method(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: Counter[str] = Counter()
    monkeypatch.setattr(client, "_OriginConnection", counting(_OriginConnection, calls))
    origin = await scripted_origin([[USUAL], [USUAL]]).start()
    pool = OriginPool(OriginConfig(name="t", url=f"http://127.0.0.1:{origin.port}", host="127.0.0.1",
                                   port=origin.port))
    try:
        req = Request("GET", "/", CIMultiDict({"Host": "t"}))
        assert (await pool.request(req)).body == b"hello"
        conn = pool._idle_connection()
        assert conn is not None and calls == Counter()
        conn.send(req, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", 0).cancel()  # its caller gone
        await asyncio.sleep(0.1)
        assert calls["_headers_complete"] == 1
        assert pool.idle_count == 1  # the body read and dropped, the connection pooled again
    finally:
        await pool.close()
        await origin.close()
