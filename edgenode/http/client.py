"""The origin side: a keep-alive connection pool per origin on Protocol + httptools.

``OriginPool.request`` sends a request (streaming its body when it is an iterator) and
returns as soon as the response head is in; the body comes back as an async iterator
fed by the socket with back-pressure (reading pauses while the consumer lags).  A
connection returns to the pool once its response is fully received and reusable; a
consumer that stops early (``aclose``) closes it.  Failures map to the kinds of
``edgenode.http.errors`` so the upstream can answer 502/504, and a body that breaks
after the head raises from the iterator (the front end then aborts the client).

Trailers: a chunked response's trailer fields (forbidden ones dropped) are set on the
body's ``trailers`` before its iterator ends, or on ``Response.trailers`` when the whole
body is handed on as ``bytes``.  A request's trailers go out after its body when it is
sent chunked (a streamed body of unknown length, or a ``bytes`` body with trailers).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from itertools import chain
from typing import AsyncIterator, Callable

import httptools
from multidict import CIMultiDict, getversion

from edgenode.config import OriginConfig
from edgenode.http._fields import Latin1Pairs
from edgenode.http._origin import OriginCore, PoolCore, bind, send_idle
from edgenode.http.errors import (
    ClientBodyError, OriginBodyError, OriginConnectError, OriginProtocolError, OriginTimeout,
)
from edgenode.http.headers import KEY, last_chunk, trailer_fields
from edgenode.http.messages import FROM_BODY, PrebuiltResponse, Request, Response, made_response

__all__ = ["OriginPool", "OriginBody", "OnInterim", "send_idle", "take_whole"]

log = logging.getLogger("edgenode.http.client")

#: receives each interim (1xx) response that arrives before the final one
OnInterim = Callable[[Response], None]

#: response body bytes buffered before the origin socket stops being read
BODY_HIGH_WATER = 256 * 1024
BODY_LOW_WATER = 64 * 1024
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: framing we write ourselves, so the caller's values never reach the wire
_FRAMING = ("content-length", "transfer-encoding", "connection")
#: seconds taken off an origin's ``Keep-Alive: timeout=N``: a request written on a
#: connection the origin is closing at that moment is lost unanswered, and one that cannot
#: be replayed (a POST, a streamed body) then fails with a 502
KEEP_ALIVE_MARGIN = 1.0


class _HeadTooLarge(Exception):
    """Raised in a parser callback: the origin's header section passed ``max_header_bytes``."""


class _Stale(Exception):
    """A pooled connection died before any response byte arrived (safe to retry)."""


class OriginBody:
    """The response body as an async iterator with a between-bytes timeout."""

    __slots__ = ("_conn", "_chunks", "_size", "_done", "_error", "_waiter", "_timeout", "trailers")

    def __init__(self, conn: _OriginConnection, timeout: float) -> None:
        self._conn: _OriginConnection | None = conn
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timeout = timeout
        #: the chunked response's trailer fields, set before the iterator ends
        self.trailers: CIMultiDict[str] | None = None

    def __aiter__(self) -> OriginBody:
        return self

    async def __anext__(self) -> bytes:
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._size -= len(chunk)
                conn = self._conn
                if conn is not None and self._size < BODY_LOW_WATER:
                    conn.resume()
                return chunk
            if self._error is not None:
                raise self._error
            if self._done:
                raise StopAsyncIteration
            conn = self._conn
            assert conn is not None
            waiter = self._waiter = conn.loop.create_future()
            timer = conn.loop.call_later(self._timeout, self._on_timeout, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None

    def take_complete(self) -> bytes | None:
        """The whole body if it has already arrived and nothing was read yet, else None.

        A small response usually comes in one read with its head; handing it on as
        ``bytes`` lets the cache store it and the front end write head and body at once.
        """
        if not self._done or self._error is not None:
            return None
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        return data

    def _on_timeout(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done() or self._done:
            return
        conn = self._conn
        self.fail(OriginTimeout("between_bytes"))
        if conn is not None:
            conn.abort()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size > BODY_HIGH_WATER and self._conn is not None:
            self._conn.pause()
        if self._waiter is not None:  # (a body read whole after its head waits for nothing)
            self._wake()

    def finish(self) -> None:
        """All bytes are in: detach from the connection (it may serve someone else now)."""
        self._done = True
        self._conn = None
        if self._waiter is not None:
            self._wake()

    def fail(self, exc: BaseException) -> None:
        if not self._done:
            self._done = True
            self._error = exc
            self._conn = None
            self._wake()

    async def aclose(self) -> None:
        """Stop early: the rest of the body is not wanted, so the connection is closed."""
        self.close()

    def close(self) -> None:
        """``aclose`` without the coroutine (``Exchange.release`` calls it)."""
        conn = self._conn
        self._chunks.clear()
        self._size = 0
        if not self._done:
            self._done = True
            self._conn = None
            if conn is not None:
                conn.abort()
        self._wake()

    def __del__(self) -> None:
        conn = self._conn
        if conn is not None and not self._done:
            conn.abort()


#: what the C callbacks make the usual response of (``made_response``'s slots)
bind(CIMultiDict, PrebuiltResponse, FROM_BODY, getversion)


class _OriginConnection(OriginCore, asyncio.Protocol):
    """One keep-alive connection to an origin, one request at a time.

    ``send``, the protocol's ``data_received`` and the parser's ``on_headers_complete``,
    ``on_body`` and ``on_message_complete`` are ``OriginCore``'s (``http/_origin.c``),
    which also holds the state they share as C fields: a request without a body is sent,
    and the usual response (final, framed by Content-Length or chunked, its body in the
    read with its head, its waiter waiting) made, handed on and its connection released
    (put back idle without the pool's ``_release`` when nothing else is to be done), in
    C, ~9 Python frames fewer per miss.  Any other request, read or response goes to
    ``_send``, ``_data_received``, ``_headers_complete``, ``_on_body``,
    ``_message_complete`` and ``_after_read`` below, the reference the C is held to
    (``tests/http/test_origin_native.py``).
    """

    def __init__(self, pool: OriginPool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        #: the header section being parsed (head or trailers), decoded as it comes: the
        #: parser's field callback appends to it in C (one list per connection, emptied
        #: when a section is taken), so a field costs no Python frame
        self._headers: list[tuple[str, str]] = []
        self.on_header = Latin1Pairs(self._headers)
        self.parser = httptools.HttpResponseParser(self)  # (finds ``on_header`` here)
        self.closed = False
        self.idle_since = 0.0
        self.uses = 0
        self._method = "GET"
        self._head_waiter: asyncio.Future[Response] | None = None
        #: when the response head must have arrived (``OriginPool._check_heads``)
        self.head_deadline = 0.0
        self._status = 0
        self._body: OriginBody | None = None
        #: a response handed on whose body so far came in the read that carried its head
        #: (``_parts``): it gets its body as ``bytes`` if the message ends in that read,
        #: else an ``OriginBody`` fed with those parts when the read is done
        self._early: Response | None = None
        self._parts: list[bytes] = []
        self._eof_delimited = False
        self._eof = False  # the origin half-closed cleanly (a FIN, not a reset)
        # bytes fed since the parser last reported progress, and the limit for those and
        # for a header section's complete fields
        self._stalled = 0
        #: bytes received since the request was sent: a section's fields, counted as
        #: ``Name: value\r\n``, are at most twice its bytes on the wire, so a head that
        #: came within ``max_header_bytes / 2`` of them needs no count
        self._fed = 0
        self._progress = False
        self._max_head = pool.cfg.max_header_bytes
        self._got_bytes = False
        self._busy = False
        self._paused = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._upload: asyncio.Task[None] | None = None
        self._upload_done = True
        self._on_interim: OnInterim | None = None

    # --- protocol callbacks ---------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _data_received(self, data: bytes) -> None:
        """The reference of ``OriginCore.data_received`` (which takes the usual read)."""
        if not self._busy:
            # bytes nobody asked for: the connection's framing can't be trusted
            self.abort()
            return
        self._got_bytes = True
        self._fed += len(data)
        before = len(self._headers)
        try:
            self.parser.feed_data(data)
        except Exception as exc:
            self._parse_failed(exc)
            return
        self._after_read(before, len(data))

    def _parse_failed(self, exc: Exception) -> None:
        """The parser refused the origin's bytes: the exchange fails (anything else the
        parse raised is raised again)."""
        if isinstance(exc, httptools.HttpParserError):
            if isinstance(exc.__context__, _HeadTooLarge):
                self._fail_parse(str(exc.__context__), "head_too_large")
            else:
                self._fail_parse(f"invalid HTTP response from origin: {exc}")
        elif isinstance(exc, httptools.HttpParserUpgrade):
            self._fail_parse("origin switched protocols, which is not supported")
        else:
            raise exc

    def _after_read(self, before: int, size: int) -> None:
        """A read parsed: a response whose body goes on past it streams, and a header
        section still open (``before``: its fields when the read came) stays bounded."""
        if self._early is not None:  # the body goes on after this read
            self._stream_early()
        fields = self._headers
        if fields and _fields_size(fields) > self._max_head:
            # a header section still open after this read (head or trailers), too large
            self._fail_parse(self._too_large(), "head_too_large")
        elif self._progress or len(fields) != before:
            self._progress = False
            self._stalled = 0
        else:
            # a whole read without one complete field (or body byte): httptools keeps an
            # unfinished field line itself, and a never-ending one must not grow unbounded
            self._stalled += size
            if self._stalled > self._max_head:
                self._fail_parse(self._too_large(), "head_too_large")

    def eof_received(self) -> bool | None:
        self._eof = True
        return None  # close the transport; connection_lost settles what EOF means

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._resume_drain(exc or ConnectionResetError("origin closed the connection"))
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            if not self._got_bytes:
                reason = "origin closed the connection before responding"
                waiter.set_exception(_Stale(reason) if self.uses > 1 else OriginConnectError(reason))
            else:
                waiter.set_exception(OriginProtocolError(
                    "origin closed the connection in the middle of the response head"))
        body = self._body
        if body is not None:
            self._body = None
            if self._eof_delimited and self._eof and exc is None:
                body.finish()  # only a clean end completes a close-delimited body
            elif self._eof_delimited:
                body.fail(OriginBodyError("origin connection broke before the end of a "
                                          "close-delimited body"))
            else:
                body.fail(OriginBodyError("origin closed the connection in the middle of the body"))
        if self._upload is not None and not self._upload.done():
            self._upload.cancel()
        self.pool._lost(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._resume_drain(None)

    def _resume_drain(self, exc: BaseException | None) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    # --- parser callbacks -----------------------------------------------------------
    # ``on_header`` (``Latin1Pairs``) only appends; the section's size is checked at its
    # end (``on_headers_complete``, ``on_message_complete``) or at the end of a read that
    # left it open (``data_received``): bounded by one read either way

    def _too_large(self) -> str:
        part = "response head" if self._status == 0 else "trailer section"
        return f"origin {part} larger than {self._max_head} bytes (max_header_bytes)"

    def _headers_complete(self) -> None:
        self._progress = True
        fields = self._headers
        if self._fed > self._max_head // 2 and _fields_size(fields) > self._max_head:
            raise _HeadTooLarge(self._too_large())
        pairs = fields[:]
        fields.clear()  # the trailer section, if any, has a budget of its own
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            # an interim response (100 Continue, 102, 103 Early Hints): hand it on, then
            # wait for the final one; it is never part of the response (nor cached)
            if self._on_interim is not None and status != 101:
                self._interim(status, pairs)
            return
        self._status = status
        headers: CIMultiDict[str] = CIMultiDict(pairs)
        hint = headers.get(KEY.KEEP_ALIVE)
        pool = self.pool
        if hint is not None and hint != pool.keep_hint:  # the origin's setting: for its other connections too
            pool.keep_hint = hint
            pool.keep_for = _keep_for(hint, pool.cfg.idle_timeout)
        streamed = not (self._method == "HEAD" or status in (204, 304))
        # a HEAD answer ends with its head (llhttp would wait for Content-Length bytes that
        # it never has): a new parser, and the message done once its waiter has the head
        ends = self._method == "HEAD" and status not in (204, 304)
        if ends:
            version = self.parser.get_http_version()
            self.parser = httptools.HttpResponseParser(self)
        elif streamed:
            self._eof_delimited = _read_to_close(headers)
        waiter = self._head_waiter
        if waiter is None or waiter.done():  # abandoned: the body is read and dropped
            if streamed:
                self._body = OriginBody(self, self.pool.cfg.between_bytes_timeout)
        else:
            response = made_response(status, headers, b"", "", (getversion(headers), pairs), FROM_BODY)
            if streamed:
                if self._eof_delimited:  # ends only at the connection's close
                    response.body = self._body = OriginBody(self, self.pool.cfg.between_bytes_timeout)
                else:  # its body so far collects in ``_parts`` (its owner resumes after this read)
                    self._early = response
            waiter.set_result(response)
        if ends:
            self._message_done(_keep_alive(headers, version))

    def _stream_early(self) -> None:
        """The read that carried ``_early``'s head ended before its body: the rest
        streams through an ``OriginBody`` holding the parts read so far."""
        response, self._early = self._early, None
        assert response is not None
        body = self._body = OriginBody(self, self.pool.cfg.between_bytes_timeout)
        parts = self._parts
        for part in parts:
            body.feed(part)
        parts.clear()
        response.body = body

    def _interim(self, status: int, pairs: list[tuple[str, str]]) -> None:
        headers: CIMultiDict[str] = CIMultiDict(pairs)
        try:
            self._on_interim(Response(status, headers))  # type: ignore[misc]
        except Exception:  # the client side's trouble must not break this response
            log.exception("forwarding an interim %d response failed", status)

    def _on_body(self, chunk: bytes) -> None:
        self._progress = True
        if self._early is not None:
            self._parts.append(chunk)
        elif self._body is not None:
            self._body.feed(chunk)

    def _message_complete(self) -> None:
        self._progress = True
        if self._status == 0 or not self._busy:
            return  # end of an interim 1xx response
        fields = self._headers
        if fields:  # fields after the head: the chunked body's trailer section
            if _fields_size(fields) > self._max_head:
                raise _HeadTooLarge(self._too_large())
            if self._early is not None:
                self._early.trailers = trailer_fields(fields)
            elif self._body is not None:
                self._body.trailers = trailer_fields(fields)
            fields.clear()
        self._message_done(self.parser.should_keep_alive())

    def _message_done(self, keep_alive: bool) -> None:
        early = self._early
        if early is not None:  # the whole body came with the head: handed on as bytes
            self._early = None
            parts = self._parts
            if parts:
                early.body = parts[0] if len(parts) == 1 else b"".join(parts)
                parts.clear()
        body = self._body
        self._body = None
        self._status = 0
        if body is not None:
            body.finish()
        self._busy = False
        self._on_interim = None
        self._head_waiter = None  # done (or abandoned): its owner needs it no more
        # The finished body detached above and no longer resumes us: a connection paused by
        # its back-pressure must read again before the pool hands it to the next request.
        if self._paused:
            self.resume()
        self.pool._release(self, keep_alive and self._upload_done)

    def _fail_parse(self, reason: str, kind: str = "protocol_error") -> None:
        if self._early is not None:  # its body fails from its iterator, as a streamed one's
            self._stream_early()
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(OriginProtocolError(reason, kind))
        body = self._body
        if body is not None:
            self._body = None
            body.fail(OriginBodyError(reason))
        self.abort()

    # --- flow control ---------------------------------------------------------------
    def pause(self) -> None:
        if not self._paused and not self.closed:
            self._paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def resume(self) -> None:
        if self._paused and not self.closed:
            self._paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]

    def abort(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.abort()

    # --- the request ----------------------------------------------------------------
    def _send(self, req: Request, head: bytes, length: int | None,
              on_interim: OnInterim | None = None) -> asyncio.Future[Response]:
        """Write the request; the future gets the final response head (interim ones go to
        ``on_interim``).  The caller awaits it, then ``settled``: a plain call, not a
        coroutine of its own, so a miss resumes one frame less.  ``OriginCore.send`` (C)
        takes a request without a body and hands any other here: the reference."""
        self.uses += 1
        self._on_interim = on_interim
        self._busy = True
        self._got_bytes = False
        self._method = req.method
        self._headers.clear()
        self._stalled = self._fed = 0
        waiter: asyncio.Future[Response] = self.loop.create_future()
        self._head_waiter = waiter
        transport = self.transport
        assert transport is not None
        body = req.body
        if isinstance(body, (bytes, bytearray)):
            if length is None:  # a bytes body with trailers goes chunked to carry them
                end = last_chunk(req.trailers)
                transport.write(head + b"%x\r\n%s\r\n%s" % (len(body), body, end) if body
                                else head + end)
            else:
                transport.write(head + body if body else head)
        else:
            self._upload_done = False
            self._upload = self.loop.create_task(self._send_body(req, head, length))
        self.head_deadline = self.loop.time() + self.pool.cfg.first_byte_timeout
        self.pool._awaiting_head(self)
        return waiter

    def settled(self, waiter: asyncio.Future[Response]) -> None:
        """``send``'s future is done (or abandoned).  Once the head is in, the body may
        complete and the pool hand this connection to another request before the caller
        resumes: clear only our own waiter, never theirs."""
        if self._head_waiter is waiter:
            self._head_waiter = None

    def first_byte_timeout(self, waiter: asyncio.Future[Response]) -> None:
        if not waiter.done():
            waiter.set_exception(OriginTimeout("first_byte"))
            self.abort()

    async def _send_body(self, req: Request, head: bytes, length: int | None) -> None:
        body: AsyncIterator[bytes] = req.body  # type: ignore[assignment]
        transport = self.transport
        assert transport is not None
        transport.write(head)
        sent = 0
        try:
            async for chunk in body:
                if not chunk:
                    continue
                if self.closed:
                    return
                sent += len(chunk)
                if length is None:
                    transport.writelines([b"%x\r\n" % len(chunk), chunk, b"\r\n"])
                else:
                    transport.write(chunk)
                if self._write_paused:
                    self._drain_waiter = self.loop.create_future()
                    try:
                        await self._drain_waiter
                    finally:
                        self._drain_waiter = None
            if length is None:
                transport.write(last_chunk(req.trailers))
            elif sent != length:
                raise ClientBodyError(f"request body was {sent} bytes, Content-Length said {length}")
            self._upload_done = True
        except (ClientBodyError, ConnectionError) as exc:
            self._upload_failed(exc)
        except Exception as exc:  # the body iterator itself broke
            self._upload_failed(ClientBodyError(f"request body failed: {exc!r}"))

    def _upload_failed(self, exc: BaseException) -> None:
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc if isinstance(exc, ClientBodyError)
                                 else OriginConnectError(f"sending the request failed: {exc}"))
        self.abort()


def take_whole(response: Response) -> bool:
    """An ``OriginBody`` already all in and not read yet handed on as ``bytes`` (its
    trailers on the response): stored without the streaming tee, written with its head."""
    origin_body: OriginBody = response.body  # type: ignore[assignment]
    data = origin_body.take_complete()
    if data is None:
        return False
    response.body = data
    if origin_body.trailers is not None:
        response.trailers = origin_body.trailers
    return True


def _replayable(req: Request) -> bool:
    """A request that may go again after a stale connection lost it."""
    return req.method in _IDEMPOTENT and isinstance(req.body, (bytes, bytearray))


def _fields_size(fields: list[tuple[str, str]]) -> int:
    """A header section's size as ``max_header_bytes`` counts it: ``Name: value\r\n``."""
    return sum(map(len, chain.from_iterable(fields))) + 4 * len(fields)


def _read_to_close(headers: CIMultiDict[str]) -> bool:
    """RFC 9112 §6.3: a body framed neither by chunked nor by Content-Length ends at close.

    That includes a Transfer-Encoding whose final coding is not chunked (llhttp reads it
    to the end of the connection).  Such a coding is not decoded: we offer none in TE, so
    the origin had no business applying one; its name goes with the hop-by-hop fields and
    the bytes are forwarded as they came.
    """
    codings = headers.getall(KEY.TRANSFER_ENCODING, ())
    if codings:
        last = ",".join(codings).rsplit(",", 1)[-1]
        return last.strip().lower() != "chunked"
    return KEY.CONTENT_LENGTH not in headers


def _keep_for(hint: str, idle_timeout: float) -> float:
    """An idle connection's lifetime given the origin's ``Keep-Alive`` field (``timeout=5,
    max=100``, RFC 2068 §19.7.1.1): about then the origin closes it (Node.js, saying 5,
    after 6 s), so it is reused only up to ``KEEP_ALIVE_MARGIN`` before; ``idle_timeout``
    without a timeout or when that is the shorter."""
    for part in hint.split(","):
        name, _, value = part.partition("=")
        if name.strip().lower() == "timeout" and value.strip().isdigit():
            return min(idle_timeout, int(value) - KEEP_ALIVE_MARGIN)
    return idle_timeout


def _keep_alive(headers: CIMultiDict[str], version: str) -> bool:
    tokens = ",".join(headers.getall("connection", ())).lower()
    if version == "1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


class OriginPool(PoolCore):
    """Keep-alive connections to one origin: LIFO reuse, idle timeout (cut short by the
    origin's ``Keep-Alive: timeout``, ``keep_for``), a size cap.

    The state the C side of the usual exchange reads and writes (``send_idle``, the
    send, the release) is ``PoolCore``'s C fields, members here."""

    def __init__(self, cfg: OriginConfig) -> None:
        self.cfg = cfg
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._idle: list[_OriginConnection] = []
        self._open = 0  # connections open or being opened
        self._waiters: deque[asyncio.Future[_OriginConnection | None]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        #: connections waiting for a response head, and the one timer for their deadlines
        self._heads: set[_OriginConnection] = set()
        self._head_timer: asyncio.TimerHandle | None = None
        self._closed = False
        #: how long a connection may wait idle for its next request: ``idle_timeout``, or
        #: less after the origin's last ``Keep-Alive`` field (``_keep_for``), read again
        #: only when that field changes (an origin sends the same one with every response)
        self.keep_for = cfg.idle_timeout
        self.keep_hint: str | None = None
        #: counters for metrics
        self.opened = 0
        self.reused = 0
        self.requests = 0
        self.retries = 0

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    @property
    def open_count(self) -> int:
        return self._open

    async def request(self, req: Request, on_interim: OnInterim | None = None,
                      head: bytes | None = None, replay: bool = False) -> Response:
        """Send ``req``; return the response with its body still streaming.

        Interim (1xx) responses that precede it are passed to ``on_interim`` as they come.
        ``head``: ``req``'s head already encoded (``proxy.forwarding.forward_head``: a
        request without a body), sent instead of encoding ``req``'s fields.  ``replay``:
        ``req`` was counted and sent on an idle connection that turned out stale
        (``failed_idle``): it goes once more, on a new connection.
        """
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        if self._closed:
            raise OriginConnectError("origin pool is closed")
        if not replay:
            self.requests += 1
        length: int | None = 0
        if head is None:
            head, length = _encode_head(req)
        for attempt in ((1,) if replay else (0, 1)):
            conn = self._idle_connection() if attempt == 0 else None
            if conn is None:
                conn = await self._acquire()  # (a retry never takes an idle one)
            try:
                waiter = conn.send(req, head, length, on_interim)
                try:
                    response = await waiter
                finally:
                    conn.settled(waiter)
                if type(response.body) is OriginBody:
                    take_whole(response)
                return response
            except _Stale as exc:
                if attempt == 0 and _replayable(req):
                    self.retries += 1
                    continue
                raise OriginConnectError(str(exc)) from None
            except BaseException:
                conn.abort()
                raise
        raise AssertionError("unreachable")

    def _send_idle(self, req: Request, head: bytes, on_interim: OnInterim | None = None
                   ) -> tuple[_OriginConnection, asyncio.Future[Response]] | None:
        """The reference of ``http._origin.send_idle(pool, ...)``: ``request``'s usual
        start without a coroutine.  A request without a body, its ``head`` encoded, sent
        on an idle connection: the connection and the future of the response head; the
        caller awaits it, and on a failure hands both to ``failed_idle``.  None, with
        nothing sent: the pool has no loop yet, is closed, or has no idle connection to
        use (``request`` takes the request)."""
        if (self.loop is None or self._closed or type(head) is not bytes
                or type(req.body) is not bytes or req.body):
            return None
        conn = self._idle_connection()
        if conn is None:
            return None
        self.requests += 1
        return conn, conn.send(req, head, 0, on_interim)

    async def failed_idle(self, sent: tuple[_OriginConnection, asyncio.Future[Response]],
                          exc: BaseException, req: Request, on_interim: OnInterim | None = None,
                          head: bytes | None = None) -> Response:
        """``send_idle``'s exchange failed before its head with ``exc``, as ``request``'s
        first attempt handles it: a stale connection's replayable request goes once more
        on a new connection; any other failure aborts the connection and is raised."""
        conn, waiter = sent
        conn.settled(waiter)
        if not isinstance(exc, _Stale):
            conn.abort()
            raise exc
        if not _replayable(req):
            raise OriginConnectError(str(exc)) from None
        self.retries += 1
        return await self.request(req, on_interim, head, replay=True)

    def _idle_connection(self) -> _OriginConnection | None:
        """The most recently used idle connection still open and idle no longer than
        ``keep_for`` (LIFO), or None."""
        idle = self._idle
        if not idle:
            return None
        now = self.loop.time()
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            if now - conn.idle_since > self.keep_for:
                conn.abort()
                continue
            self.reused += 1
            return conn
        return None

    async def _acquire(self) -> _OriginConnection:
        """A connection when no idle one is to be used: one freed by another request when
        the pool is full, else a new one."""
        if self._open >= self.cfg.max_connections:
            waiter: asyncio.Future[_OriginConnection | None] = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                conn_or_slot = await asyncio.wait_for(waiter, self.cfg.connect_timeout)
            except asyncio.TimeoutError:
                raise OriginTimeout("connect") from None
            if conn_or_slot is not None:
                self.reused += 1
                return conn_or_slot
        else:
            self._open += 1
        return await self._connect()

    async def _connect(self) -> _OriginConnection:
        """Open a connection for a slot already counted in ``_open``."""
        cfg = self.cfg
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(lambda: _OriginConnection(self), cfg.host, cfg.port),
                cfg.connect_timeout)
        except asyncio.TimeoutError:
            self._slot_freed()
            raise OriginTimeout("connect") from None
        except OSError as exc:
            self._slot_freed()
            reason = exc.strerror or exc.__class__.__name__
            raise OriginConnectError(f"cannot connect to {cfg.host}:{cfg.port}: {reason}") from None
        except BaseException:
            self._slot_freed()
            raise
        self.opened += 1
        return conn

    def _awaiting_head(self, conn: _OriginConnection) -> None:
        """``conn`` waits for a response head until its ``head_deadline``.  One timer per
        pool, at the earliest pending deadline, instead of one per request: every request
        of the pool has the same timeout, so a later one's deadline is never earlier."""
        self._heads.add(conn)
        if self._head_timer is None:
            self._head_timer = self.loop.call_at(conn.head_deadline, self._check_heads)

    def _check_heads(self) -> None:
        """Fail the requests whose head is overdue; wait for the next deadline."""
        self._head_timer = None
        now = self.loop.time()
        nearest = None
        for conn in list(self._heads):
            waiter = conn._head_waiter
            if waiter is None or waiter.done():
                self._heads.discard(conn)
            elif conn.head_deadline <= now:
                self._heads.discard(conn)
                conn.first_byte_timeout(waiter)
            elif nearest is None or conn.head_deadline < nearest:
                nearest = conn.head_deadline
        if nearest is not None:
            self._head_timer = self.loop.call_at(nearest, self._check_heads)

    def _slot_freed(self) -> None:
        self._open -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._open += 1
                waiter.set_result(None)  # the waiter opens a connection in this slot
                return

    def _release(self, conn: _OriginConnection, reusable: bool) -> None:
        """``conn``'s response is all in: back idle, to a waiting request, or aborted.
        ``OriginCore`` puts a usual one back idle itself (a running sweep, no one
        waiting); this is the reference and every other case."""
        if not reusable or conn.closed or self._closed:
            conn.abort()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = self.loop.time()
        self._idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(max(0.01, self.keep_for), self._sweep)

    def _lost(self, conn: _OriginConnection) -> None:
        try:
            self._idle.remove(conn)
        except ValueError:
            pass
        self._slot_freed()

    def _sweep(self) -> None:
        """Close connections idle longer than ``keep_for`` (one timer per pool)."""
        self._sweeper = None
        now = self.loop.time()
        keep_for = self.keep_for
        for conn in [c for c in self._idle if now - c.idle_since >= keep_for]:
            conn.abort()
        if self._idle:
            oldest = min(c.idle_since for c in self._idle)
            self._sweeper = self.loop.call_later(max(0.01, oldest + keep_for - now), self._sweep)

    async def close(self) -> None:
        """Close idle connections and refuse new requests; busy ones close when done."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self._idle):
            conn.abort()
        self._idle.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(OriginConnectError("origin pool is closed"))
        self._waiters.clear()
        await asyncio.sleep(0)  # let the transports run connection_lost


def _encode_head(req: Request) -> tuple[bytes, int | None]:
    """Request line + headers with our framing; returns (head, length or None if chunked).

    A ``bytes`` body is sent with Content-Length unless it carries trailers.  The field
    lines are joined by C calls (``": ".join`` per pair), not formatted one by one.
    """
    headers = req.headers
    body = req.body
    if "content-length" in headers or "transfer-encoding" in headers or "connection" in headers:
        fields = [(k, v) for k, v in headers.items() if k.lower() not in _FRAMING]
    else:
        fields = list(headers.items())
    framing = ""
    length: int | None = None
    if isinstance(body, (bytes, bytearray)):
        if req.trailers:
            framing = "Transfer-Encoding: chunked\r\n"
        else:
            length = len(body)
            if body or req.method in _BODY_METHODS:
                framing = f"Content-Length: {length}\r\n"
    else:
        cl = headers.get("content-length")
        if cl is not None and cl.isdigit():
            length = int(cl)
            framing = f"Content-Length: {length}\r\n"
        else:
            framing = "Transfer-Encoding: chunked\r\n"
    lines = len(fields) + 2 + (framing != "")
    text = (f"{req.method} {req.target} HTTP/1.1\r\n" + "\r\n".join(map(": ".join, fields))
            + ("\r\n" if fields else "") + framing + "\r\n")
    if text.count("\n") != lines or text.count("\r") != lines:
        raise ValueError("a request header contains CR or LF")
    return text.encode("latin-1"), length
