"""Running parsed requests on a client connection, in order: the handler's synchronous
steps, a task only when something waits, then the response and the next request.

Per connection, requests are answered strictly in order (pipelining): later requests
wait in a short queue while reading pauses once it grows.  A request without a body is
run in the loop iteration's batch (``Batch``: one callback for every request parsed in
that iteration, so the chain's code runs back to back instead of between each socket's
kernel work); when its chain finishes synchronously (a cache hit behind filters that did
not pause) it is answered there, without a task or coroutine, and its bytes leave with
the batch's other answers once every request's steps have run (``Batch.send``: the
kernel's send work back to back too); when a step waits, the same steps continue in one
task per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from edgenode.http.error_reply import error_response
from edgenode.http.errors import ClientBodyError
from edgenode.http.messages import Response, close_body
from edgenode.http.request_id import current_request_id
from edgenode.frontend.response_writer import BadHead
from edgenode.frontend.state import FrontEndState
from edgenode.pipeline.chain import Outcome
from edgenode.pipeline.exchange import Exchange

__all__ = ["Dispatcher", "PIPELINE_DEPTH", "handler_error"]

log = logging.getLogger("edgenode.frontend")

#: pipelined requests queued behind the one in progress before reading pauses
PIPELINE_DEPTH = 16

#: the name of a request's task (``run_steps``): made as ``asyncio.Task`` with this name,
#: not by ``loop.create_task``, which formats a name per task ("Task-<n>") and, in uvloop,
#: adds a call (~1.7k instructions per miss; the factory test here takes 0.4k of it back)
TASK_NAME = "edgenode-request"


class Dispatcher:
    """The request-running part of a client connection (``http/connection.py``)."""

    fe: FrontEndState
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport | None
    closed: bool
    _closing: bool
    _dead: bool
    #: the request being answered and those parsed behind it: each its ``Exchange``, which
    #: carries what the front end needs to answer it (``keep_alive``, ``reader``, ``error``)
    _current: Exchange | None
    _queue: deque[Exchange]
    _write_paused: bool
    _task: asyncio.Task[None] | None
    _idle_since: float
    _timer: asyncio.TimerHandle | None

    def _dispatch(self, exchange: Exchange) -> None:
        if self._current is None and not self._write_paused:
            self._start(exchange)
        else:  # behind the one in progress, or until the client reads what it was sent
            self._queue.append(exchange)
            if len(self._queue) >= PIPELINE_DEPTH:
                self._pause_reading()

    def _start(self, exchange: Exchange) -> None:
        """Queue the request's synchronous steps for this loop iteration's batch; a task
        when it has a body (the handler reads it on the loop)."""
        self._current = exchange
        if exchange.error is not None:
            self._finish_error(exchange)
            return
        if exchange.reader is not None:
            self._task = self.loop.create_task(self._run(exchange, None))
            return
        self.fe.batch.add(self)

    def run_steps(self) -> None:
        """The handler's synchronous steps for the current request (from the batch); a
        task only when something waits.

        A request whose chain finishes synchronously (a cache hit behind filters that did
        not pause) is answered here, without a task or coroutine.
        """
        exchange = self._current
        assert exchange is not None
        # Log lines of the steps (and of the answer's write) carry the id.  Not reset: the
        # batch runs in a loop callback, in a copy of the context of its own, and the next
        # request it runs sets its own id first.
        current_request_id.set(exchange.request_id)
        try:
            outcome = self.fe.handler(exchange)
        except Exception as exc:
            outcome = handler_error(exchange, exc)
        if isinstance(outcome, Response) and type(outcome.body) is bytes:
            # the write (``_write_wire``: the usual answer here is a hit), then the next request
            keep_alive = exchange.keep_alive and not self._closing
            if self._write_wire(exchange, outcome, keep_alive):  # its kept head as bytes
                self._complete(exchange, outcome, keep_alive)
            else:
                self._write_general(exchange, outcome, keep_alive)
        else:  # the steps that wait, in a task (``Task`` itself unless the loop has a factory)
            loop = self.loop
            run = self._run(exchange, outcome)
            self._task = (asyncio.Task(run, loop=loop, name=TASK_NAME) if loop.get_task_factory() is None
                          else loop.create_task(run))

    def _finish_error(self, exchange: Exchange) -> None:
        response = exchange.error
        assert response is not None
        self._write_bytes_response(exchange, response, False)
        self._complete(exchange, response, False)

    async def _run(self, exchange: Exchange, outcome: Outcome | None) -> None:
        """The handler's steps that wait (``outcome``: what its synchronous part returned;
        None: run it here), then the response."""
        try:
            if outcome is None:
                current_request_id.set(exchange.request_id)  # this task's log lines carry it
                outcome = self.fe.handler(exchange)
            # (else ``run_steps`` set the id: the task runs in a copy of its context)
            response = outcome if isinstance(outcome, Response) else await outcome
        except Exception as exc:
            response = handler_error(exchange, exc)
        body = response.body
        if type(body) is not bytes and isinstance(body, (bytearray, memoryview)):
            response.body = bytes(body)
        if type(response.body) is bytes:
            self._respond(exchange, response)
            return
        keep_alive = exchange.keep_alive and not self._closing
        try:
            try:
                keep_alive = await self._write_stream_response(exchange, response, keep_alive)
            except BadHead as exc:  # raised before any byte of the response was written
                await close_body(response.body)
                response, keep_alive = self._answer_bad_head(exchange, exc, keep_alive)
        except Exception:
            keep_alive = self._write_failed(exchange)
        self._complete(exchange, response, keep_alive)

    def _respond(self, exchange: Exchange, response: Response) -> None:
        """Write a response whose body is in memory, then move on (``run_steps`` has the
        same steps inline for the answer it gets without waiting: every hit's)."""
        keep_alive = exchange.keep_alive and not self._closing
        if self._write_wire(exchange, response, keep_alive):  # its kept head as bytes
            self._complete(exchange, response, keep_alive)
        else:
            self._write_general(exchange, response, keep_alive)

    def _write_general(self, exchange: Exchange, response: Response, keep_alive: bool) -> None:
        """A body in memory that ``_write_wire`` declined: the general writers, then the
        next request."""
        try:
            try:
                trailers = response.trailers
                if trailers and self._can_chunk(exchange, response):
                    keep_alive = self._write_bytes_chunked(exchange, response, keep_alive, trailers)
                else:
                    keep_alive = self._write_bytes_response(exchange, response, keep_alive)
            except BadHead as exc:  # raised before any byte of the response was written
                response, keep_alive = self._answer_bad_head(exchange, exc, keep_alive)
        except Exception:
            keep_alive = self._write_failed(exchange)
        self._complete(exchange, response, keep_alive)

    def _answer_bad_head(self, exchange: Exchange, exc: BadHead, keep_alive: bool) -> tuple[Response, bool]:
        """The handler's response head cannot be written: log it and answer 500 instead."""
        log.error("bad response for %s: %s", exchange.request.target, exc)
        response = error_response(500, f"invalid response from the handler: {exc}")
        return response, self._write_bytes_response(exchange, response, keep_alive)

    def _write_failed(self, exchange: Exchange) -> bool:
        """Writing failed part-way (called in the except block): log it, abort the connection."""
        log.exception("writing the response failed for %s", exchange.request.target)
        if self.transport is not None:
            self.transport.abort()
        return False

    def _complete(self, exchange: Exchange, response: Response, keep_alive: bool) -> None:
        """The response is written (or aborted): report it and move to the next request."""
        if exchange._open is not None:  # ``release``'s own test: its frame only when it has work
            exchange.release()
        on_complete = self.fe.on_complete
        if on_complete is not None:
            try:
                on_complete(exchange, response)
            except Exception:
                log.exception("on_complete callback failed")
        self._current = None
        if self.closed:
            return
        body = exchange.reader
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


def handler_error(exchange: Exchange, exc: Exception) -> Response:
    """The answer when the handler raised: the client's body error, or a logged 500."""
    if isinstance(exc, ClientBodyError):
        return error_response(getattr(exc, "status", 400), str(exc), close=True)
    log.error("handler failed for %s %s", exchange.request.method, exchange.request.target,
              exc_info=exc)
    return error_response(500, "internal error while handling the request")
