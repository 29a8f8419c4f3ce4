"""The client-facing HTTP/1.1 front end: ``asyncio.Protocol`` + httptools (+ uvloop).

Why not aiohttp: on this node's 1 KB cache hit an aiohttp server spends ~110 µs of CPU
per request, a bare Protocol with httptools ~15 µs.  So this module stays lean on the
hot path: one task per request, constant header bytes pre-encoded, and the head plus
a ``bytes`` body leave in a single ``transport.write``.

Per connection, requests are answered strictly in order (pipelining): later requests
wait in a short queue while reading pauses once it grows.  Request bodies stream to
the handler with back-pressure; response bodies stream with write flow control, and a
body that breaks (raises, ends short of its Content-Length) aborts the connection so the
client never sees a complete-looking truncated response.

Fast path: a producer that can answer some requests synchronously with pre-serialised
bytes (the cache, for a fresh hit: see ``FastPath``) gets every *plain* GET/HEAD (no
body, none of ``headers.NOT_PLAIN``, origin-form target, one Host) that arrives while
nothing else is in flight on the connection, straight from the parser callback: no
Request, Exchange, task or coroutine is made, and the response leaves in one
``transport.write``.  When it declines, the request takes the general path unchanged.

Trailers: a chunked request's trailer fields (llhttp reports them through ``on_header``
after ``on_headers_complete``) end up on the request body's ``trailers`` before its
iterator ends; they get their own ``max_header_bytes`` budget.  A response's trailers
(``Response.trailers``) go out whenever it is sent chunked, whatever the client's ``TE``
says (Envoy's HTTP/1 codec with trailers enabled does the same; a chunked decoder must
accept a trailer section); a ``bytes`` body that carries trailers is sent chunked to an
HTTP/1.1 client for that reason, and trailers are dropped for HTTP/1.0 clients, HEAD,
204 and 304.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from http import HTTPStatus
from time import perf_counter
from typing import AsyncIterator, Callable, Protocol

import httptools
from multidict import CIMultiDict, getversion

from edgenode.config import ServerConfig
from edgenode.http.errors import ClientBodyError
from edgenode.http.headers import NOT_PLAIN, DateCache, last_chunk, parse_trailers
from edgenode.http.listen import listen_error
from edgenode.http.messages import Prebuilt, Request, Response, close_body
from edgenode.http.request_id import RequestIds, current_request_id
from edgenode.pipeline.exchange import Exchange
from edgenode.pipeline.chain import Outcome
from edgenode.pipeline.stage import Handler

__all__ = ["FrontEnd", "FastPath", "install_event_loop", "error_response"]

log = logging.getLogger("edgenode.http.server")

OnComplete = Callable[[Exchange, Response], None]


class FastPath(Protocol):
    """Answers plain GET/HEAD requests synchronously when it can (see the module doc)."""

    def lookup(self, method: str, target: str, host: str,
               fields: Callable[[], CIMultiDict[str]]) -> Prebuilt | None:
        """The answer, or None to send the request down the general path.

        ``fields()`` builds the request's header multidict (only call it when needed).
        Declining must leave no trace: the general path will see the same request.
        """
        ...

    def done(self, hit: Prebuilt, sent: int, elapsed: float) -> None:
        """``hit`` was written: ``sent`` body bytes, ``elapsed`` seconds since the head was
        parsed (what ``on_complete`` learns from the exchange on the general path)."""
        ...

#: request body bytes buffered before the socket stops being read
BODY_HIGH_WATER = 256 * 1024
BODY_LOW_WATER = 64 * 1024
#: pipelined requests queued behind the one in progress before reading pauses
PIPELINE_DEPTH = 16
#: a read larger than this is parsed in slices of it, so parsing can stop at a full queue
PARSE_SLICE = 4096
#: response statuses that never carry a body
_NO_BODY_STATUS = frozenset({204, 304})

#: fast-path heads (up to the request id) kept per ``Prebuilt`` for GET, keep-alive, HTTP/1.1
#: answers with bodies up to FAST_MEMO_BODY bytes (written with the head in one buffer), at
#: most FAST_MEMO_ENTRIES of them (cleared when full)
FAST_MEMO_BODY = 8192
FAST_MEMO_ENTRIES = 256

_status_lines: dict[tuple[int, str], bytes] = {}
#: method names as str without a decode per request
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")}
_date = DateCache()


def install_event_loop() -> bool:
    """Install uvloop's event loop policy when it is importable; return whether it was."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def error_response(status: int, message: str, close: bool = False) -> Response:
    """A short ``text/plain`` error reply that says what was wrong."""
    headers: CIMultiDict[str] = CIMultiDict({"Content-Type": "text/plain; charset=utf-8"})
    if close:
        headers["Connection"] = "close"
    return Response(status, headers, f"edgenode: {message}\n".encode())


def _status_line(status: int, reason: str) -> bytes:
    key = (status, reason)
    line = _status_lines.get(key)
    if line is None:
        if not reason:
            try:
                reason = HTTPStatus(status).phrase
            except ValueError:
                reason = "Unknown"
        line = f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")
        if len(_status_lines) < 512:
            _status_lines[key] = line
    return line


def _fast_prefix(hit: Prebuilt) -> bytes | None:
    """The head ``_Connection._head`` writes for ``hit`` as a Response with ``wire_head``,
    up to its per-request fields (X-Request-Id, Connection); None when the stored block
    carries an X-Request-Id of its own (the general path replaces it)."""
    if b"x-request-id:" in hit.block.lower():
        return None
    return b"%s%sContent-Length: %d\r\n" % (_status_line(hit.status, hit.reason), hit.block,
                                               len(hit.body))


class _Reject(Exception):
    """Raised inside parser callbacks to answer with a 4xx/5xx and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _BadBody(ClientBodyError):
    """The request body (or its trailer section) broke the protocol; ``status`` answers it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _BadHead(Exception):
    """The handler's response head cannot be written (CR/LF or non-Latin-1 in a header)."""


class _RequestBody:
    """The request body as an async iterator fed by ``data_received``.

    Buffering more than ``BODY_HIGH_WATER`` pauses the socket; consuming below
    ``BODY_LOW_WATER`` resumes it, so a huge upload never piles up in memory.

    Two clocks bound a client that sends the body slowly or stops half-way (which would
    hold the request, and a filter buffering the body, forever): no byte for
    ``body_between_bytes_timeout`` or the whole body taking longer than ``body_timeout``
    fails it with a 408, whoever is reading it.  Neither clock runs while the node is
    the one holding the client back (reading paused, ``100 Continue`` not yet sent).
    """

    __slots__ = ("_conn", "_chunks", "size", "done", "error", "_waiter", "discard", "expect",
                 "trailers", "_timer", "_started", "_last", "_checked")

    def __init__(self, conn: _Connection, expect_continue: bool) -> None:
        self._conn = conn
        now = conn.loop.time()
        self._started = self._last = self._checked = now
        cfg = conn.cfg
        self._timer: asyncio.TimerHandle | None = conn.loop.call_later(
            min(cfg.body_between_bytes_timeout, cfg.body_timeout), self._check_clock)
        self._chunks: deque[bytes] = deque()
        self.size = 0
        self.done = False
        self.error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        #: the handler is finished: drop further bytes up to the end of the message
        self.discard = False
        #: send "100 Continue" on the first read (the client waits for it)
        self.expect = expect_continue
        #: the chunked body's trailer fields, set just before the iterator ends
        self.trailers: CIMultiDict[str] | None = None

    def __aiter__(self) -> _RequestBody:
        return self

    async def __anext__(self) -> bytes:
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self.size -= len(chunk)
                if self.size < BODY_LOW_WATER:
                    self._conn.body_drained()
                return chunk
            if self.error is not None:
                raise self.error
            if self.done:
                raise StopAsyncIteration
            if self.expect:
                self.expect = False
                self._conn.send_continue()
            self._waiter = self._conn.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _check_clock(self) -> None:
        self._timer = None
        if self.done:
            return
        conn = self._conn
        cfg = conn.cfg
        now = conn.loop.time()
        if conn.closed:
            return
        if conn.holds_client_back(self):
            self._started += now - self._checked  # neither clock runs meanwhile
            self._last = now
        elif now - self._last >= cfg.body_between_bytes_timeout:
            conn.body_timed_out(self, f"no request body bytes for "
                                      f"{cfg.body_between_bytes_timeout:g}s")
            return
        elif now - self._started >= cfg.body_timeout:
            conn.body_timed_out(self, f"request body not received within {cfg.body_timeout:g}s")
            return
        self._checked = now
        due = min(self._last + cfg.body_between_bytes_timeout, self._started + cfg.body_timeout)
        self._timer = conn.loop.call_later(max(0.001, due - now), self._check_clock)

    def stop_clock(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def feed(self, chunk: bytes) -> None:
        self._last = self._conn.loop.time()
        if self.discard:
            return
        self._chunks.append(chunk)
        self.size += len(chunk)
        if self.size > BODY_HIGH_WATER:
            self._conn.pause_for_body()
        self._wake()

    def finish(self) -> None:
        self.done = True
        self.stop_clock()
        self._wake()

    def fail(self, exc: BaseException) -> None:
        if not self.done:
            self.stop_clock()
            self.error = exc
            self.done = True
            self._chunks.clear()
            self.size = 0
            self._wake()

    def start_discard(self) -> None:
        self.discard = True
        self.expect = False
        self._chunks.clear()
        self.size = 0


class _Pending:
    """A parsed request waiting for its turn (or a protocol error to answer)."""

    __slots__ = ("exchange", "body", "keep_alive", "error")

    def __init__(self, exchange: Exchange, body: _RequestBody | None, keep_alive: bool,
                 error: Response | None = None) -> None:
        self.exchange = exchange
        self.body = body
        self.keep_alive = keep_alive
        self.error = error


class _Connection(asyncio.Protocol):
    """One client connection: parse, dispatch in order, write responses."""

    def __init__(self, fe: FrontEnd) -> None:
        self.fe = fe
        self.loop = fe.loop
        self.cfg = fe.cfg
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.client: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] = ("", 0)
        # message being parsed
        self._url = b""
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._in_head = False
        self._head_start = 0.0
        self._body: _RequestBody | None = None
        # chunked request: header lines before the trailers (0: not chunked), and whether a
        # chunk header came with no data after it yet (the last chunk's trailer section)
        self._n_head = 0
        self._chunk_pending = False
        # bytes of the current read the parser accounted for (complete heads, body bytes,
        # chunk framing), what the current head had accounted for before the read, and the
        # bytes of the unfinished field line httptools is holding (an estimate from above)
        self._seen = 0
        self._mark = 0
        self._partial = 0
        self._slicing = False  # _parse is feeding a slice of a large read
        # the part of a read left unparsed while the pipeline queue was full
        self._unparsed = b""
        self._parse_scheduled = False
        # dispatch state
        self._queue: deque[_Pending] = deque()
        self._current: _Pending | None = None
        self._dead = False  # stop parsing: a protocol error was queued or the peer left
        self._closing = False  # graceful shutdown: close after the current response
        self._read_paused = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        # lingering close: when the last input arrived, and when it ends at the latest
        self._linger_last = 0.0
        self._linger_end = 0.0
        self._idle_since = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._fast_fields: CIMultiDict[str] | None = None
        self.closed = False

    # --- connection lifecycle -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=self.cfg.write_high_water)  # type: ignore[attr-defined]
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.client = (peer[0], peer[1]) if isinstance(peer, tuple) else ("", 0)
        self.local = (sock[0], sock[1]) if isinstance(sock, tuple) else ("", 0)
        self.fe.connections.add(self)
        self._idle_since = self.loop.time()
        self._arm_timer(min(self.cfg.keepalive_timeout, self.cfg.request_timeout))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._dead = True
        self.fe.connection_gone(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        gone = ClientBodyError("client closed the connection before sending the whole body")
        if self._body is not None:
            self._body.fail(gone)
        for pending in self._queue:
            if pending.body is not None:
                pending.body.fail(gone)
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("client closed the connection"))

    # --- write flow control ---------------------------------------------------------
    def pause_writing(self) -> None:
        """The write buffer passed its high-water mark: the client is not reading.

        Nothing more is parsed or started on this connection until it drains (a client
        that pipelines without reading holds one response's worth of memory, not one per
        request), and a client that stops reading for ``send_timeout`` is dropped.
        """
        self._write_paused = True
        self._pause_reading()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.cfg.send_timeout, self._send_timed_out)

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._current is None and self._queue and not self.closed:
            self._start(self._queue.popleft())
        self.body_drained()

    def _send_timed_out(self) -> None:
        self._send_timer = None
        if not self.closed:
            log.debug("client %s:%d read nothing for %.0fs: closing", *self.client,
                      self.cfg.send_timeout)
            self._dead = True
            self.transport.abort()  # type: ignore[union-attr]

    async def _drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("client closed the connection")
        self._drain_waiter = self.loop.create_future()
        try:
            await self._drain_waiter
        finally:
            self._drain_waiter = None

    # --- read flow control ----------------------------------------------------------
    def _pause_reading(self) -> None:
        if not self._read_paused and not self.closed:
            self._read_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def pause_for_body(self) -> None:
        self._pause_reading()

    def body_drained(self) -> None:
        """Read again unless something still holds reading back: the request body's
        buffer, the pipeline queue, or a client that is not reading its responses."""
        if (self._read_paused and len(self._queue) < PIPELINE_DEPTH and not self._dead
                and not self._write_paused and not self.closed):
            if self._unparsed:  # the rest of the last read first (never from a callback)
                if not self._parse_scheduled:
                    self._parse_scheduled = True
                    self.loop.call_soon(self._parse_unparsed)
            elif self._body is None or self._body.size < BODY_LOW_WATER:
                self._read_paused = False
                self.transport.resume_reading()  # type: ignore[union-attr]

    def holds_client_back(self, body: _RequestBody) -> bool:
        """Whether the node, not the client, is why ``body`` gets no bytes right now."""
        return self._read_paused or body.expect

    def body_timed_out(self, body: _RequestBody, reason: str) -> None:
        """The client stalled in the middle of a request body: whoever reads it gets a
        408, and nothing after it is parsed (the connection closes after the answer)."""
        log.info("client %s:%d: %s", *self.client, reason)
        answered = body.discard  # the handler is done: only the rest was being skipped
        body.fail(_BadBody(408, reason))
        self._dead = True
        self._pause_reading()
        if answered and self._current is None and not self._queue:
            self._close(linger=True)

    # --- closing --------------------------------------------------------------------
    def _close(self, linger: bool) -> None:
        """Close after the last response; with ``linger``, as nginx's lingering_close.

        Closing a socket with unread input makes the kernel send a reset, which can
        destroy the response still on its way (the client sees a reset, not the 4xx).
        So when the client may still be sending (an error answered mid-message, a body
        not read), the node half-closes, reads and drops what arrives until the client
        closes, goes quiet for ``lingering_timeout``, or ``lingering_time`` is over.
        """
        self._dead = True
        transport = self.transport
        assert transport is not None
        if transport.is_closing():  # aborted already
            return
        if not linger or self.cfg.lingering_time <= 0 or not transport.can_write_eof():
            transport.close()
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self.loop.time()
        self._linger_last = now
        self._linger_end = now + self.cfg.lingering_time
        transport.write_eof()  # after what is buffered: the response is complete
        if self._read_paused:
            self._read_paused = False
            transport.resume_reading()
        self._timer = self.loop.call_later(
            min(self.cfg.lingering_timeout, self.cfg.lingering_time), self._linger_check)

    def _linger_check(self) -> None:
        self._timer = None
        if self.closed:
            return
        now = self.loop.time()
        due = min(self._linger_last + self.cfg.lingering_timeout, self._linger_end)
        if now >= due:
            self.transport.close()  # type: ignore[union-attr]
        else:
            self._timer = self.loop.call_later(due - now, self._linger_check)

    def send_continue(self) -> None:
        if not self.closed:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # type: ignore[union-attr]

    def send_interim(self, response: Response) -> None:
        """Write an interim (1xx) response ahead of the current request's final one.

        RFC 9110 §15.2: a proxy forwards the 1xx responses it receives.  A 100 Continue
        goes only to a client that asked for one and has not had it yet (``send_continue``
        answers ``Expect`` itself); 101 never (protocol switches are not supported).
        """
        current = self._current
        if self.closed or current is None or current.exchange.status:
            return  # the final response has begun: too late for an interim one
        status = response.status
        if status == 100:
            body = current.body
            if body is None or not body.expect:
                return
            body.expect = False
        elif not 101 < status < 200:
            return
        lines = [f"{k}: {v}\r\n" for k, v in response.headers.items()
                 if k.lower() != "content-length"]
        text = "".join(lines)
        if text.count("\n") != len(lines) or text.count("\r") != len(lines):
            log.warning("interim %d response dropped: a header contains CR or LF", status)
            return
        try:
            head = _status_line(status, response.reason) + text.encode("latin-1") + b"\r\n"
        except UnicodeEncodeError:
            log.warning("interim %d response dropped: a header is not Latin-1 text", status)
            return
        self.transport.write(head)  # type: ignore[union-attr]

    # --- parsing --------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._dead:
            if self._linger_end:
                self._linger_last = self.loop.time()  # lingering: read and dropped
            return
        if len(data) > PARSE_SLICE and not self._slicing:
            self._parse(data)
            return
        if self._in_head:  # what the current header section had accounted for before this read
            self._mark = len(self._url) + self._head_bytes
        elif self._chunk_pending:
            self._mark = self._head_bytes
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # llhttp stops after an Upgrade/CONNECT head; the request was dispatched as a
            # plain one (Upgrade is hop-by-hop), so keep parsing what follows it.
            offset = exc.args[0] if exc.args else len(data)
            self._seen = 0
            if not self._dead and offset < len(data):
                self.data_received(data[offset:])
            return
        except httptools.HttpParserError as exc:
            reject = exc.__context__
            if isinstance(reject, _Reject):
                self._protocol_error(reject.status, reject.message)
            else:
                self._protocol_error(400, f"malformed request: {exc}")
            return
        seen = self._seen
        self._seen = 0
        if self._in_head or self._chunk_pending:
            if self._in_head:
                if self._head_start < 0:
                    self._head_start = self.loop.time()  # the read that began this message
                seen += len(self._url) + self._head_bytes - self._mark  # the head so far
            else:
                seen += self._head_bytes - self._mark  # the trailer fields so far
            # The read ended inside a header section (the head, or a chunked body's trailer
            # section).  Complete fields are counted per message (on_header), the target in
            # on_url; httptools keeps an unfinished field line to itself, so its bytes are
            # what this read held beyond what was accounted for (plus the whole of earlier
            # reads that accounted for nothing).
            self._partial = len(data) - seen if seen > 0 else self._partial + len(data)
            if self._head_bytes + self._partial > self.cfg.max_header_bytes:
                part = "header" if self._in_head else "trailer"
                self._protocol_error(431, f"request {part} fields too large")

    def _parse(self, data: bytes) -> None:
        """Parse a large read a slice at a time, keeping what follows a full pipeline
        queue unparsed (reading stays paused until the queue has room again).

        A read can hold thousands of small pipelined requests; parsed at once, each would
        become a queued request object.  Inside a request body the rest is fed whole (a
        large upload is not cut into small pieces).
        """
        start, end = 0, len(data)
        while start < end and not self._dead:
            if len(self._queue) >= PIPELINE_DEPTH and self._body is None:
                self._unparsed = data[start:]
                self._pause_reading()
                return
            stop = end if self._body is not None else min(end, start + PARSE_SLICE)
            self._slicing = True
            try:
                self.data_received(data if start == 0 and stop == end else data[start:stop])
            finally:
                self._slicing = False
            start = stop

    def _parse_unparsed(self) -> None:
        """The pipeline queue has room again: parse the rest of the read it stopped."""
        self._parse_scheduled = False
        data, self._unparsed = self._unparsed, b""
        if data and not self._dead:
            self._parse(data)
            self.body_drained()

    def on_message_begin(self) -> None:
        self._in_head = True
        self._mark = 0
        self._url = b""
        self._raw_headers = []
        self._head_bytes = 0
        self._head_start = -1.0  # stamped below only if the head spans several reads

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.cfg.max_request_line_bytes:
            raise _Reject(414, f"request line longer than {self.cfg.max_request_line_bytes} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4  # "Name: value\r\n"
        if self._head_bytes > self.cfg.max_header_bytes:
            part = "header block" if self._in_head else "trailer section"
            raise _Reject(431, f"request {part} larger than {self.cfg.max_header_bytes} bytes")
        self._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        # the head's bytes in this read (method, version, line ends: roughly)
        self._seen += len(self._url) + self._head_bytes + 16 - self._mark
        parser = self.parser
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("ascii")
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise _Reject(505, f"HTTP version {version} is not supported")
        headers: CIMultiDict[str] | None = None
        fast = self.fe.fast_path
        if (fast is not None and (method == "GET" or method == "HEAD") and self._current is None
                and not self._dead and not self._write_paused and self._url.startswith(b"/")):
            self._fast_fields = None
            if self._fast(fast, method, version):
                return
            headers = self._fast_fields  # built already when the fast path looked at them
        if headers is None:
            headers = self._fields()
        if method == "CONNECT":
            raise _Reject(405, "CONNECT is not supported")
        target = self._url.decode("latin-1")
        if not target.startswith("/"):
            target = _absolute_target(method, target, headers)
        hosts = headers.getall("host", ())
        if len(hosts) > 1 or (version == "1.1" and not hosts):
            raise _Reject(400, "exactly one Host header is required")
        if "transfer-encoding" in headers:
            _check_transfer_encoding(headers.getall("transfer-encoding"), version)
            has_body = True
            self._n_head = len(self._raw_headers)
            self._head_bytes = 0  # the trailer section has its own budget
        else:
            cl = headers.get("content-length")
            has_body = cl is not None and cl != "0"
        keep_alive = parser.should_keep_alive()
        body: _RequestBody | None = None
        if has_body:
            expect = version == "1.1" and headers.get("expect", "").lower() == "100-continue"
            body = self._body = _RequestBody(self, expect)
        incoming = headers.get("x-request-id")
        rid = self.fe.request_ids.pick(incoming)
        if rid is not incoming or len(headers.getall("x-request-id")) > 1:
            headers.popall("x-request-id", None)
            headers["X-Request-Id"] = rid  # the origin and the filters see it too
        request = Request(method, target, headers, body if body is not None else b"", version)
        exchange = Exchange(request, self.client, self.local)
        exchange.request_id = rid
        if version == "1.1":  # RFC 9110 §15.2: no 1xx to an HTTP/1.0 client
            exchange.interim = self.send_interim
        self._dispatch(_Pending(exchange, body, keep_alive))

    def _fields(self) -> CIMultiDict[str]:
        return CIMultiDict([(n.decode("latin-1"), v.decode("latin-1")) for n, v in self._raw_headers])

    def _fast_fields_once(self) -> CIMultiDict[str]:
        fields = self._fast_fields
        if fields is None:
            fields = self._fast_fields = self._fields()
        return fields

    def _fast(self, fast: FastPath, method: str, version: str) -> bool:
        """Answer a plain GET/HEAD from ``fast`` right here; False: take the general path.

        Only called with nothing in flight on this connection, so the answer is in order,
        and not while the transport asks us to stop writing (a client that pipelines
        without reading gets the general path's pace, not a burst of answers per read).
        The bytes are the ones ``_write_bytes_response`` writes for the equivalent
        ``Response`` with ``wire_head`` set (tests/proxy/test_proxy_hit_wire.py holds
        the two paths to that).
        """
        host: bytes | None = None
        incoming: bytes | None = None
        for name, value in self._raw_headers:
            low = name.lower()
            if low in NOT_PLAIN:
                return False
            if low == b"host":
                if host is not None:
                    return False  # the general path answers 400
                host = value
            elif low == b"x-request-id":
                if incoming is not None:
                    return False  # the general path replaces repeated ids
                incoming = value
        if host is None:
            return False
        start = perf_counter()
        try:
            hit = fast.lookup(method, self._url.decode("latin-1"), host.decode("latin-1"),
                              self._fast_fields_once)
        except Exception:  # a bug there must not turn into a 400 from the parser
            log.exception("fast path lookup failed for %r", self._url[:200])
            return False
        if hit is None:
            return False
        keep_alive = self.parser.should_keep_alive() and not self._closing
        body = hit.body
        ids = self.fe.request_ids
        if (incoming is None and keep_alive and version == "1.1" and method == "GET"
                and len(body) <= FAST_MEMO_BODY):
            # the common answer: its head up to the request id's number is kept until
            # ``hit`` changes, and the id is formatted straight into the bytes written
            memo = self.fe.fast_memo
            prefix = memo.get(hit, b"")
            if prefix == b"":
                if len(memo) >= FAST_MEMO_ENTRIES:
                    memo.clear()
                head = _fast_prefix(hit)
                prefix = memo[hit] = None if head is None else head + b"X-Request-Id: " + ids.prefix
            if prefix is None:
                return False
            data = b"%s%x\r\n\r\n%s" % (prefix, next(ids.count), body)
        else:
            head = _fast_prefix(hit)
            if head is None:
                return False
            rid = ids.pick(incoming.decode("latin-1")) if incoming is not None else ids.new()
            if not keep_alive:
                conn = b"Connection: close\r\n"
            elif version == "1.0":
                conn = b"Connection: keep-alive\r\n"
            else:
                conn = b""
            head = data = b"%sX-Request-Id: %s\r\n%s\r\n" % (head, rid.encode(), conn)
            if method == "GET" and body:
                data = head + body if len(body) <= 65536 else None
        sent = 0
        if not self.closed:
            if data is None:  # a large body: not copied behind the head
                self.transport.writelines([head, body])  # type: ignore[union-attr]
            else:
                self.transport.write(data)  # type: ignore[union-attr]
            if method == "GET":
                sent = len(body)
        try:
            fast.done(hit, sent, perf_counter() - start)
        except Exception:
            log.exception("fast path completion failed")
        if self.closed:
            return True
        if not keep_alive:
            self._dead = True
            self.transport.close()  # type: ignore[union-attr]
            return True
        self._idle_since = self.loop.time()
        if self._timer is None:
            self._arm_timer(min(self.cfg.keepalive_timeout, self.cfg.request_timeout))
        return True

    def on_body(self, chunk: bytes) -> None:
        self._seen += len(chunk)
        self._chunk_pending = False
        if self._body is not None:
            self._body.feed(chunk)

    def on_chunk_header(self) -> None:
        # until data follows, this may be the last chunk: its trailer section comes next
        self._seen += 6  # size line and the CRLF after the data: roughly
        self._chunk_pending = True
        self._mark = 0
        self._partial = 0

    def on_message_complete(self) -> None:
        self._chunk_pending = False
        body = self._body
        if body is not None:
            n = self._n_head
            if n:
                self._n_head = 0
                if len(self._raw_headers) > n:
                    body.trailers = parse_trailers(self._raw_headers[n:])
            body.finish()
            self._body = None

    def _protocol_error(self, status: int, message: str) -> None:
        """Answer a malformed request after the ones already in flight, then close."""
        if self._dead:
            return
        self._dead = True
        self._in_head = False
        if self._body is not None:
            self._body.fail(_BadBody(status, f"bad request body: {message}"))
            self._body = None
        if not self._read_paused and not self.closed:
            self._read_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]
        method = "-"
        if self._url:  # llhttp reports DELETE (method 0) when no method was parsed
            method = self.parser.get_method().decode("ascii", "replace")
        target = self._url.decode("latin-1")[:200] or "-"
        request = Request(method, target, CIMultiDict())
        exchange = Exchange(request, self.client, self.local)
        exchange.request_id = self.fe.request_ids.new()
        self._dispatch(_Pending(exchange, None, False, error_response(status, message, close=True)))

    # --- dispatch -------------------------------------------------------------------
    def _dispatch(self, pending: _Pending) -> None:
        if self._current is None and not self._write_paused:
            self._start(pending)
        else:  # behind the one in progress, or until the client reads what it was sent
            self._queue.append(pending)
            if len(self._queue) >= PIPELINE_DEPTH:
                self._pause_reading()

    def _start(self, pending: _Pending) -> None:
        """Run the handler's synchronous steps now; a task only when something waits.

        A request without a body whose chain finishes synchronously (a cache hit behind
        filters that did not pause) is answered from here, without a task or coroutine.
        """
        self._current = pending
        if pending.error is not None:
            self._finish_error(pending)
            return
        if pending.body is not None:  # the handler reads the body: it needs the loop
            self._task = self.loop.create_task(self._run(pending, None))
            return
        exchange = pending.exchange
        token = current_request_id.set(exchange.request_id)  # log lines of the steps carry it
        try:
            outcome = self.fe.handler(exchange)
        except Exception as exc:
            outcome = _handler_error(exchange, exc)
        finally:
            current_request_id.reset(token)
        if isinstance(outcome, Response) and type(outcome.body) is bytes:
            self._respond(pending, outcome)
        else:
            self._task = self.loop.create_task(self._run(pending, outcome))

    def _finish_error(self, pending: _Pending) -> None:
        response = pending.error
        assert response is not None
        self._write_bytes_response(pending.exchange, response, False)
        self._complete(pending, response, False)

    async def _run(self, pending: _Pending, outcome: Outcome | None) -> None:
        """The handler's steps that wait (``outcome``: what its synchronous part returned;
        None: run it here), then the response."""
        exchange = pending.exchange
        current_request_id.set(exchange.request_id)  # this task's log lines carry it
        try:
            if outcome is None:
                outcome = self.fe.handler(exchange)
            response = outcome if isinstance(outcome, Response) else await outcome
        except Exception as exc:
            response = _handler_error(exchange, exc)
        body = response.body
        if type(body) is not bytes and isinstance(body, (bytearray, memoryview)):
            response.body = bytes(body)
        if type(response.body) is bytes:
            self._respond(pending, response)
            return
        keep_alive = pending.keep_alive and not self._closing
        try:
            try:
                keep_alive = await self._write_stream_response(exchange, response, keep_alive)
            except _BadHead as exc:  # raised before any byte of the response was written
                log.error("bad response for %s: %s", exchange.request.target, exc)
                await close_body(response.body)
                response = error_response(500, f"invalid response from the handler: {exc}")
                keep_alive = self._write_bytes_response(exchange, response, keep_alive)
        except Exception:
            log.exception("writing the response failed for %s", exchange.request.target)
            keep_alive = False
            if self.transport is not None:
                self.transport.abort()
        self._complete(pending, response, keep_alive)

    def _respond(self, pending: _Pending, response: Response) -> None:
        """Write a response whose body is in memory, then move on."""
        exchange = pending.exchange
        keep_alive = pending.keep_alive and not self._closing
        try:
            try:
                trailers = response.trailers
                if trailers and self._can_chunk(exchange, response):
                    keep_alive = self._write_bytes_chunked(exchange, response, keep_alive, trailers)
                else:
                    keep_alive = self._write_bytes_response(exchange, response, keep_alive)
            except _BadHead as exc:  # raised before any byte of the response was written
                log.error("bad response for %s: %s", exchange.request.target, exc)
                response = error_response(500, f"invalid response from the handler: {exc}")
                keep_alive = self._write_bytes_response(exchange, response, keep_alive)
        except Exception:
            log.exception("writing the response failed for %s", exchange.request.target)
            keep_alive = False
            if self.transport is not None:
                self.transport.abort()
        self._complete(pending, response, keep_alive)

    def _complete(self, pending: _Pending, response: Response, keep_alive: bool) -> None:
        """The response is written (or aborted): report it and move to the next request."""
        pending.exchange.release()
        on_complete = self.fe.on_complete
        if on_complete is not None:
            try:
                on_complete(pending.exchange, response)
            except Exception:
                log.exception("on_complete callback failed")
        self._current = None
        if self.closed:
            return
        body = pending.body
        if not keep_alive or (self._dead and not self._queue):
            # input may be left unread: after a protocol error, or a body not read to its end
            self._close(linger=self._dead or (body is not None and not body.done))
            return
        if body is not None and not body.done:
            # The handler did not read the whole body: skip the rest of the message.
            body.start_discard()
            self.body_drained()
        if self._queue:
            if not self._write_paused:  # else resume_writing starts it
                self._start(self._queue.popleft())
            self.body_drained()
            return
        self._idle_since = self.loop.time()
        if self._timer is None:
            self._arm_timer(min(self.cfg.keepalive_timeout, self.cfg.request_timeout))

    # --- response writing -----------------------------------------------------------
    def _head(self, exchange: Exchange, response: Response, framing: str,
              keep_alive: bool) -> bytes:
        """Status line and header block; framing, Connection and X-Request-Id are ours to write."""
        headers = response.headers
        wire = response.wire_head
        rid = exchange.request_id
        if rid:
            framing += f"X-Request-Id: {rid}\r\n"
        if wire is not None and wire[0] == getversion(headers) and "x-request-id" not in headers:
            if not keep_alive:
                framing += "Connection: close\r\n"
            elif exchange.request.version == "1.0":
                framing += "Connection: keep-alive\r\n"
            return b"%s%s%s\r\n" % (_status_line(response.status, response.reason), wire[1],
                                     framing.encode("latin-1"))
        if ("connection" in headers or "content-length" in headers or "transfer-encoding" in headers
                or (rid and "x-request-id" in headers)):
            headers = headers.copy()
            for name in ("connection", "content-length", "transfer-encoding"):
                headers.popall(name, None)
            if rid:
                headers.popall("x-request-id", None)
        lines = [f"{k}: {v}\r\n" for k, v in headers.items()]
        if "date" not in headers:
            lines.append(_date.get_line())
        if framing:
            lines.append(framing)
        if not keep_alive:
            lines.append("Connection: close\r\n")
        elif exchange.request.version == "1.0":
            lines.append("Connection: keep-alive\r\n")
        lines.append("\r\n")
        text = "".join(lines)
        n = len(lines) + framing.count("\n") - (1 if framing else 0)  # framing: our own lines
        if text.count("\n") != n or text.count("\r") != n:
            raise _BadHead("a response header contains CR or LF")
        try:
            return _status_line(response.status, response.reason) + text.encode("latin-1")
        except UnicodeEncodeError:
            raise _BadHead("a response header is not Latin-1 text") from None

    def _write_bytes_response(self, exchange: Exchange, response: Response,
                              keep_alive: bool, length_known: bool = True) -> bool:
        """Write a response whose body is in memory; return whether to keep the connection.

        ``length_known=False`` is for HEAD/304 answers to a streamed body of unknown
        length: no Content-Length is invented then.
        """
        status = response.status
        body: bytes = response.body  # type: ignore[assignment]
        headers = response.headers
        if status in _NO_BODY_STATUS or status < 200:
            cl = headers.get("content-length") if status == 304 else None
            framing = f"Content-Length: {cl}\r\n" if cl is not None else ""
            body = b""
        elif exchange.request.method == "HEAD":
            cl = headers.get("content-length")
            if body or cl is None:
                framing = f"Content-Length: {len(body)}\r\n" if length_known else ""
            else:
                framing = f"Content-Length: {cl}\r\n"
            body = b""
        else:
            framing = f"Content-Length: {len(body)}\r\n"
        if keep_alive and "connection" in headers and "close" in headers.get("connection", "").lower():
            keep_alive = False
        head = self._head(exchange, response, framing, keep_alive)
        exchange.status = status
        if not self.closed:
            if not body:
                self.transport.write(head)  # type: ignore[union-attr]
            elif len(body) <= 65536:
                self.transport.write(head + body)  # type: ignore[union-attr]
            else:
                self.transport.writelines([head, body])  # type: ignore[union-attr]
            exchange.response_bytes = len(body)
        return keep_alive

    @staticmethod
    def _can_chunk(exchange: Exchange, response: Response) -> bool:
        status = response.status
        return (exchange.request.version == "1.1" and exchange.request.method != "HEAD"
                and status >= 200 and status not in _NO_BODY_STATUS)

    def _write_bytes_chunked(self, exchange: Exchange, response: Response, keep_alive: bool,
                             trailers: CIMultiDict[str]) -> bool:
        """A ``bytes`` body with trailers: one chunk, then the trailer section."""
        if keep_alive and "close" in response.headers.get("connection", "").lower():
            keep_alive = False
        head = self._head(exchange, response, "Transfer-Encoding: chunked\r\n", keep_alive)
        exchange.status = response.status
        body: bytes = response.body  # type: ignore[assignment]
        if not self.closed:
            end = last_chunk(trailers)
            if body:
                self.transport.writelines(  # type: ignore[union-attr]
                    [head, b"%x\r\n" % len(body), body, b"\r\n" + end])
            else:
                self.transport.write(head + end)  # type: ignore[union-attr]
            exchange.response_bytes = len(body)
        return keep_alive

    async def _write_stream_response(self, exchange: Exchange, response: Response,
                                     keep_alive: bool) -> bool:
        body: AsyncIterator[bytes] = response.body  # type: ignore[assignment]
        status = response.status
        exchange.status = status
        cl_text = response.headers.get("content-length")
        if status in _NO_BODY_STATUS or status < 200 or exchange.request.method == "HEAD":
            await close_body(body)
            return self._write_bytes_response(
                exchange, Response(status, response.headers, b"", response.reason), keep_alive,
                length_known=False)
        length: int | None = None
        if cl_text is not None and cl_text.isdigit():
            length = int(cl_text)
            framing = f"Content-Length: {length}\r\n"
            chunked = False
        elif exchange.request.version == "1.1":
            framing = "Transfer-Encoding: chunked\r\n"
            chunked = True
        else:
            framing = ""
            chunked = False
            keep_alive = False
        if "close" in response.headers.get("connection", "").lower():
            keep_alive = False
        transport = self.transport
        assert transport is not None
        head = self._head(exchange, response, framing, keep_alive)
        if self.closed:
            await close_body(body)
            return False
        transport.write(head)
        sent = 0
        finished = False
        try:
            async for chunk in body:
                if not chunk:
                    continue
                if self.closed:
                    break
                sent += len(chunk)
                if length is not None and sent > length:
                    raise ValueError(f"body longer than its Content-Length {length}")
                if chunked:
                    transport.writelines([b"%x\r\n" % len(chunk), chunk, b"\r\n"])
                else:
                    transport.write(chunk)
                if self._write_paused:
                    await self._drain()
            else:
                finished = True
        except ConnectionResetError:
            pass
        except Exception as exc:
            log.warning("response body for %s broke after %d bytes: %r",
                        exchange.request.target, sent, exc)
        finally:
            exchange.response_bytes = sent
            if not finished:
                await close_body(body)
        if finished and (length is None or sent == length):
            if chunked:
                transport.write(last_chunk(response.trailers))
            return keep_alive
        if finished:
            log.warning("response body for %s ended after %d of %s bytes",
                        exchange.request.target, sent, length)
        exchange.props["response_aborted"] = True
        transport.abort()
        return False

    # --- timers and shutdown ---------------------------------------------------------
    def _arm_timer(self, delay: float) -> None:
        self._timer = self.loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed or self._current is not None or self._queue:
            return  # re-armed when the connection becomes idle again
        now = self.loop.time()
        if self._in_head:
            deadline = self._head_start + self.cfg.request_timeout
            if now >= deadline:
                self._protocol_error(408, "timed out waiting for the request head")
                return
        else:
            deadline = self._idle_since + self.cfg.keepalive_timeout
            if now >= deadline:
                self._dead = True
                self.transport.close()  # type: ignore[union-attr]
                return
        self._arm_timer(deadline - now)

    def start_shutdown(self) -> None:
        """Finish the request in progress, then close; close at once when idle."""
        self._closing = True
        if self.closed:
            return
        if self._linger_end:
            self.transport.close()  # type: ignore[union-attr]
            return
        if self._current is None and not self._queue and not self._in_head:
            self._dead = True
            self.transport.close()  # type: ignore[union-attr]

    def abort(self) -> None:
        """Forced shutdown: drop the connection and cancel the request in progress."""
        if not self.closed and self.transport is not None:
            self.transport.abort()
        if self._task is not None and not self._task.done():
            self._task.cancel()


def _handler_error(exchange: Exchange, exc: Exception) -> Response:
    """The answer when the handler raised: the client's body error, or a logged 500."""
    if isinstance(exc, ClientBodyError):
        return error_response(getattr(exc, "status", 400), str(exc), close=True)
    log.error("handler failed for %s %s", exchange.request.method, exchange.request.target,
              exc_info=exc)
    return error_response(500, "internal error while handling the request")


def _absolute_target(method: str, target: str, headers: CIMultiDict[str]) -> str:
    """Turn an absolute-form target into origin-form; its authority replaces Host."""
    if target == "*" and method == "OPTIONS":
        return target
    lower = target[:8].lower()
    if lower.startswith("http://") or lower.startswith("https://"):
        rest = target.split("://", 1)[1]
        slash = rest.find("/")
        authority, path = (rest, "/") if slash == -1 else (rest[:slash], rest[slash:])
        if "?" in authority:
            authority, _, query = authority.partition("?")
            path = "/?" + query
        if not authority or "@" in authority:
            raise _Reject(400, "bad absolute request target")
        headers.popall("host", None)
        headers["Host"] = authority
        return path
    raise _Reject(400, "request target must be an absolute path or absolute URL")


def _check_transfer_encoding(values: list[str], version: str) -> None:
    """Allow exactly ``chunked``: anything else is a smuggling risk or unsupported."""
    if version == "1.0":
        raise _Reject(400, "Transfer-Encoding is not allowed in HTTP/1.0 requests")
    codings = [c.strip().lower() for v in values for c in v.split(",") if c.strip()]
    if not codings or codings[-1] != "chunked" or codings.count("chunked") != 1:
        raise _Reject(400, "Transfer-Encoding must end with a single 'chunked'")
    if len(codings) > 1:
        raise _Reject(501, f"transfer coding {codings[0]!r} is not supported")


class FrontEnd:
    """The listening side of the node: accepts connections and runs ``handler``."""

    def __init__(self, handler: Handler, cfg: ServerConfig,
                 on_complete: OnComplete | None = None,
                 fast_path: FastPath | None = None) -> None:
        self.handler = handler
        self.cfg = cfg
        self.on_complete = on_complete
        #: answers plain GET/HEAD requests without the handler when it can (cache hits)
        self.fast_path = fast_path
        self.fast_memo: dict[Prebuilt, bytes | None] = {}
        self.request_ids = RequestIds()
        self.connections: set[_Connection] = set()
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._all_gone: asyncio.Future[None] | None = None
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]

    async def start(self, host: str | None = None, port: int | None = None,
                    reuse_port: bool = False, sock: socket.socket | None = None) -> None:
        """Listen on ``host:port`` (defaults: cfg.listen) or on an already bound ``sock``."""
        self.loop = asyncio.get_running_loop()
        if sock is not None:
            self._server = await self.loop.create_server(
                lambda: _Connection(self), sock=sock, backlog=1024)
        else:
            if host is None or port is None:
                host, port = self.cfg.listen
            try:
                self._server = await self.loop.create_server(
                    lambda: _Connection(self), host, port, reuse_port=reuse_port or None,
                    backlog=1024)
            except OSError as exc:
                raise listen_error("server.listen", host, port, exc) from None
        sockets = self._server.sockets
        self.port = sockets[0].getsockname()[1] if sockets else 0

    def connection_gone(self, conn: _Connection) -> None:
        self.connections.discard(conn)
        if not self.connections and self._all_gone is not None and not self._all_gone.done():
            self._all_gone.set_result(None)

    async def shutdown(self, grace: float) -> None:
        """Stop accepting, let in-flight requests finish for up to ``grace`` seconds,
        close idle keep-alive connections, then force-close whatever is left."""
        if self._server is not None:
            self._server.close()
        if self.connections:
            self._all_gone = self.loop.create_future()
            for conn in list(self.connections):
                conn.start_shutdown()
            if self.connections:
                try:
                    await asyncio.wait_for(asyncio.shield(self._all_gone), grace)
                except asyncio.TimeoutError:
                    log.warning("shutdown grace over: aborting %d connection(s)",
                                len(self.connections))
                    for conn in list(self.connections):
                        conn.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
