"""One client connection: an ``asyncio.Protocol`` made of its parts (parsing, fast hits,
dispatch, response writing), plus its lifecycle, flow control, closing and timers."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import httptools
from multidict import CIMultiDict

from edgenode.frontend._fasthit import HeadSink
from edgenode.frontend.dispatch import PIPELINE_DEPTH, Dispatcher
from edgenode.http.errors import ClientBodyError
from edgenode.http.headers import NOT_PLAIN
from edgenode.frontend.fast_hits import FastHits
from edgenode.frontend.request_body import BODY_LOW_WATER, BadBody, RequestBody
from edgenode.frontend.request_parser import RequestParser
from edgenode.frontend.response_writer import ResponseWriter
from edgenode.frontend.state import FrontEndState
from edgenode.pipeline.exchange import Exchange

__all__ = ["Connection"]

log = logging.getLogger("edgenode.frontend")


class Connection(RequestParser, FastHits, Dispatcher, ResponseWriter, asyncio.Protocol):
    """One client connection: parse, dispatch in order, write responses."""

    def __init__(self, fe: FrontEndState) -> None:
        self.fe = fe
        self.loop = fe.loop
        self.cfg = fe.cfg
        self.transport: asyncio.Transport | None = None
        # httptools reads its callbacks once, here: on_header, on_url, on_message_begin,
        # on_headers_complete and on_message_complete are the sink's, C callables
        sink = self._sink = self.on_header = HeadSink(
            fe.cfg.max_header_bytes, self._fields_too_large,
            fe.cfg.max_request_line_bytes, self._target_too_long, NOT_PLAIN)
        self.on_url = sink.on_url
        self.on_message_begin = sink.begin
        self.on_headers_complete = sink.headers_complete
        self.on_message_complete = sink.complete
        parser = self.parser = httptools.HttpRequestParser(self)
        sink.bind(parser.should_keep_alive, parser.get_method, self._fast, self._general_head)
        self.client: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] = ("", 0)
        # message being parsed
        self._url = b""
        self._raw_headers: list[tuple[bytes, bytes]] = sink.raw
        self._parsed = -1
        self._last_raw: list[tuple[bytes, bytes]] = []
        self._last_text: list[tuple[str, str]] = []
        self._head_start = -1.0  # while the sink is in a head: the read that began it
        self._body: RequestBody | None = None
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
        self._queue: deque[Exchange] = deque()
        self._current: Exchange | None = None
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
        for exchange in self._queue:
            if exchange.reader is not None:
                exchange.reader.fail(gone)
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

    def holds_client_back(self, body: RequestBody) -> bool:
        """Whether the node, not the client, is why ``body`` gets no bytes right now."""
        return self._read_paused or body.expect

    def body_timed_out(self, body: RequestBody, reason: str) -> None:
        """The client stalled in the middle of a request body: whoever reads it gets a
        408, and nothing after it is parsed (the connection closes after the answer)."""
        log.info("client %s:%d: %s", *self.client, reason)
        answered = body.discard  # the handler is done: only the rest was being skipped
        body.fail(BadBody(408, reason))
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
        self._flush_held()  # the answers the batch holds go before the close
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


    # --- timers and shutdown ---------------------------------------------------------
    def _arm_timer(self, delay: float) -> None:
        self._timer = self.loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed or self._current is not None or self._queue:
            return  # re-armed when the connection becomes idle again
        now = self.loop.time()
        if self._sink.in_head:
            deadline = self._head_start + self.cfg.request_timeout
            if now >= deadline:
                self._protocol_error(408, "timed out waiting for the request head")
                return
        else:
            deadline = self._idle_since + self.cfg.keepalive_timeout
            if now >= deadline:
                self._dead = True
                self._flush_held()
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
        if self._current is None and not self._queue and not self._sink.in_head:
            self._dead = True
            self._flush_held()  # a fast hit's answer may be held
            self.transport.close()  # type: ignore[union-attr]

    def abort(self) -> None:
        """Forced shutdown: drop the connection and cancel the request in progress."""
        if not self.closed and self.transport is not None:
            self.transport.abort()
        if self._task is not None and not self._task.done():
            self._task.cancel()
