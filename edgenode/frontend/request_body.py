"""A request body streamed from the client connection to the handler, with back-pressure
and the two clocks that bound a client sending it slowly."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from multidict import CIMultiDict

from edgenode.config import ServerConfig
from edgenode.http.errors import ClientBodyError

__all__ = ["RequestBody", "BadBody", "BodyOwner", "BODY_HIGH_WATER", "BODY_LOW_WATER"]

#: request body bytes buffered before the socket stops being read
BODY_HIGH_WATER = 256 * 1024
BODY_LOW_WATER = 64 * 1024


class BodyOwner(Protocol):
    """What a request body needs of its connection."""

    loop: asyncio.AbstractEventLoop
    cfg: ServerConfig
    closed: bool

    def body_drained(self) -> None: ...
    def pause_for_body(self) -> None: ...
    def send_continue(self) -> None: ...
    def holds_client_back(self, body: RequestBody) -> bool: ...
    def body_timed_out(self, body: RequestBody, reason: str) -> None: ...


class BadBody(ClientBodyError):
    """The request body (or its trailer section) broke the protocol; ``status`` answers it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RequestBody:
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

    def __init__(self, conn: BodyOwner, expect_continue: bool) -> None:
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

    def __aiter__(self) -> RequestBody:
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
