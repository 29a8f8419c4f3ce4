"""One filter's callbacks for one HTTP stream, in the onion model of the Stage contract.

Request hooks run before ``next`` (chain order), response hooks after it (reverse
order).  Pausing follows Envoy's filter contract: a Stop* result from a headers hook
holds the headers, while body callbacks keep coming with the growing buffered size
and an honest end_of_stream.  The hold ends with ``proxy_continue_stream``, a local
reply, ``proxy_close_stream`` or, after ``StopIteration`` (1), a body callback
returning Continue; ``StopAllIterationAndBuffer/Watermark`` (3/4) only end with an
explicit continue.  Request bodies are consumed before ``next`` when the filter
exports ``proxy_on_request_body`` (so it can still answer locally); response bodies
stream once the response headers are released.  A hold that nobody releases ends
after the stage's ``pause_timeout``.

Trailers (docs/architecture.md, Trailers): when a body ends with trailer fields and
the module exports the matching trailers hook, the last body callback gets
end_of_stream=0 and ``proxy_on_*_trailers(ctx, n)`` follows (Envoy's order); its
result holds like an end-of-stream body result.  Otherwise the last body callback
is the end of the stream, and may add trailers.  Maps 1/3 edit the message's own
trailer CIMultiDict in place; streamed bodies are handed on as ``TrailerRelay`` so
the trailers of the source survive the wrapping.

The common case (no hold, no body hook) runs synchronously: no futures, no extra
coroutine per phase.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Awaitable, Callable

from edgenode.http.messages import Body, CIMultiDict, Request, Response, TrailerRelay, trailers_of
from edgenode.pipeline.exchange import Exchange
from edgenode.wasm.abi import REQUEST_TRAILERS, RESPONSE_TRAILERS
from edgenode.wasm.contexts import StreamContext, TrailerFields
from edgenode.wasm.vm import FilterFailure, Vm

__all__ = ["StreamDriver", "StreamAborted", "PauseTimeout", "failure_response"]

Handler = Callable[[Exchange], Awaitable[Response]]

REQ_HEADERS, REQ_BODY = "proxy_on_request_headers", "proxy_on_request_body"
RESP_HEADERS, RESP_BODY = "proxy_on_response_headers", "proxy_on_response_body"
#: Envoy FilterHeadersStatus StopAllIterationAndBuffer / StopAllIterationAndWatermark
STOP_ALL = (3, 4)


class StreamAborted(Exception):
    """Raised from a response body: the filter broke the response after it started."""


class PauseTimeout(Exception):
    """A held stream was not released within the stage's pause_timeout."""


def _text_response(status: int, text: str) -> Response:
    body = text.encode()
    headers = CIMultiDict({"Content-Type": "text/plain", "Content-Length": str(len(body))})
    return Response(status, headers, body)


def failure_response(name: str) -> Response:
    """Envoy's fail-closed reply: 503, details wasm_fail_stream."""
    return _text_response(503, f"filter {name} failed\n")


def _reset_response() -> Response:
    async def broken() -> AsyncIterator[bytes]:
        raise StreamAborted("stream closed by filter")
        yield b""  # pragma: no cover - makes this an async generator
    return Response(502, CIMultiDict(), broken())


async def _chunks(body: Body) -> AsyncIterator[tuple[bytes, bool]]:
    """Yield (chunk, end_of_stream) with one chunk of look-ahead; always ends with eos."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        yield bytes(body), True
        return
    pending: bytes | None = None
    async for chunk in body:
        if not chunk:
            continue
        if pending is not None:
            yield pending, False
        pending = chunk
    yield (pending or b""), True


async def _prepend(parts: list[bytes], rest: AsyncIterator[tuple[bytes, bool]]) -> AsyncIterator[bytes]:
    for p in parts:
        if p:
            yield p
    async for chunk, _ in rest:
        if chunk:
            yield chunk


def _expire(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_exception(PauseTimeout())


def _has_body(body: Body) -> bool:
    return not isinstance(body, (bytes, bytearray)) or len(body) > 0


def _may_have_trailers(req: Request) -> bool:
    """Whether a request's body can end with trailers (a chunked one, or bytes carrying them)."""
    if isinstance(req.body, (bytes, bytearray)):
        return bool(req.trailers)
    return "content-length" not in req.headers


class StreamDriver:
    __slots__ = ("vm", "ex", "ctx", "name", "fail_open", "v010", "server_timing", "pause_timeout")

    def __init__(self, vm: Vm, exchange: Exchange, fail_open: bool, server_timing: bool,
                 pause_timeout: float = 30.0) -> None:
        self.vm = vm
        self.ex = exchange
        self.name = vm.plugin.name
        self.fail_open = fail_open
        self.server_timing = server_timing
        self.pause_timeout = pause_timeout
        self.v010 = vm.version == (0, 1, 0)
        self.ctx: StreamContext | None = None

    # --- helpers -------------------------------------------------------------
    def _call(self, name: str, phase: str, *args: int) -> int:
        ctx = self.ctx
        ctx.continued = False  # type: ignore[union-attr]
        return self.vm.invoke(name, ctx, phase, self.ex, (ctx.id, *args))  # type: ignore[union-attr]

    def _holds(self, action: int) -> bool:
        """Whether a callback's result holds the stream (any non-zero action pauses)."""
        ctx = self.ctx
        return not (action == 0 or ctx.continued or ctx.local_response is not None or ctx.closed)  # type: ignore[union-attr]

    def _hold(self, direction: str, action: int) -> None:
        """Start holding ``direction``; continue_stream from now on completes ``ctx.resume``."""
        ctx = self.ctx
        assert ctx is not None
        ctx.paused = direction
        ctx.stop_all = action in STOP_ALL
        ctx.resume = asyncio.get_running_loop().create_future()

    def _unhold(self) -> None:
        ctx = self.ctx
        assert ctx is not None
        ctx.paused = None
        ctx.resume = None

    def _released_by(self, action: int) -> bool:
        """After a body callback during a hold: whether the hold is over.

        Envoy: continue_stream (or a local reply / close) ends any hold; a body
        callback returning Continue ends a StopIteration hold, not a StopAll* one.
        A filter failure or pause timeout delivered meanwhile is raised here.
        """
        ctx = self.ctx
        assert ctx is not None and ctx.resume is not None
        if ctx.resume.done():
            ctx.resume.result()
            return True
        return action == 0 and not ctx.stop_all

    async def _wait(self) -> None:
        """Wait until the hold ends (continue, local reply, close) or times out."""
        ctx = self.ctx
        assert ctx is not None and ctx.resume is not None
        fut = ctx.resume
        try:
            if not fut.done():
                timer = asyncio.get_running_loop().call_later(self.pause_timeout, _expire, fut)
                try:
                    await fut
                finally:
                    timer.cancel()
            else:
                fut.result()
        finally:
            self._unhold()

    def _ended(self) -> bool:
        ctx = self.ctx
        return ctx.local_response is not None or ctx.closed  # type: ignore[union-attr]

    def _end_of_body(self, response: bool, fields: CIMultiDict[str] | None) -> TrailerFields | None:
        """The body just ended with ``fields`` (None: no trailers).

        Returns the trailers map when the trailers hook follows (the last body callback
        then gets end_of_stream=0); else the map becomes map 1/3 at once, writable in
        the last body callback (end_of_stream=1, where a filter may add trailers), and
        None is returned.
        """
        trailers = TrailerFields(fields)
        if fields and (self.vm.response_trailers_hook if response else self.vm.request_trailers_hook):
            return trailers
        trailers.writable = True
        if response:
            self.ctx.response_trailers = trailers  # type: ignore[union-attr]
        else:
            self.ctx.request_trailers = trailers  # type: ignore[union-attr]
        return None

    def _call_trailers(self, response: bool, trailers: TrailerFields) -> int:
        """``proxy_on_{request,response}_trailers(ctx, n)`` with map 1/3 writable."""
        ctx = self.ctx
        assert ctx is not None
        trailers.writable = True
        if response:
            ctx.response_trailers = trailers
            hook, phase = RESPONSE_TRAILERS, "response_trailers"
        else:
            ctx.request_trailers = trailers
            hook, phase = REQUEST_TRAILERS, "request_trailers"
        self.vm.bind_hook(hook)
        return self._call(hook, phase, len(trailers))

    def _end_result(self, action: int, direction: str) -> bool:
        """After the stream's last callback: release a hold or start one; True if released."""
        ctx = self.ctx
        assert ctx is not None
        if ctx.paused is not None:
            if self._released_by(action):
                self._unhold()
                return True
            return False
        if self._holds(action):
            self._hold(direction, action)
        return False

    def _fail(self) -> Response:
        self.vm.plugin.metrics.failed_streams += 1
        self.vm.finish_stream(self.ctx)  # type: ignore[arg-type]
        return failure_response(self.name)

    def _timed_out(self) -> Response:
        self.vm.plugin.metrics.failed_streams += 1
        self.vm.plugin.logger.warning("stream %d held longer than pause_timeout (%.3g s)",
                                      self.ex.id, self.pause_timeout, extra={"filter": self.name})
        self.vm.finish_stream(self.ctx)  # type: ignore[arg-type]
        return _text_response(504, f"filter {self.name} did not resume the stream\n")

    # --- the stream ------------------------------------------------------------
    async def run(self, next_handler: Handler) -> Response:
        ex, vm = self.ex, self.vm
        try:
            ctx = self.ctx = vm.new_stream(ex)
            if self._request_headers():
                await self._request_rest()
        except FilterFailure:
            if self.ctx is None:  # proxy_on_context_create trapped
                vm.plugin.metrics.failed_streams += 1
                if self.fail_open:
                    return await next_handler(ex)
                return failure_response(self.name)
            if self.fail_open:
                vm.finish_stream(self.ctx)
                return await next_handler(ex)
            return self._fail()
        except PauseTimeout:
            if not self.fail_open:
                return self._timed_out()
            self._log_timeout_open()
            self.ctx.request_headers_open = False  # type: ignore[union-attr]
        if ctx.paused is not None:  # ended by a local reply or close while held
            self._unhold()
        if ctx.closed:
            vm.finish_stream(ctx)
            return _reset_response()
        if ctx.local_response is not None:
            response = ctx.local_response
        else:
            try:
                response = await next_handler(ex)
            except BaseException:
                vm.finish_stream(ctx)
                raise
        fast = self._response_fast(response)
        if fast is not None:
            return fast
        return await self._response_phase(response)

    def _log_timeout_open(self) -> None:
        self.vm.plugin.logger.warning("stream %d held longer than pause_timeout (%.3g s); "
                                      "continuing (fail_open)", self.ex.id, self.pause_timeout,
                                      extra={"filter": self.name})

    # --- request ---------------------------------------------------------------
    def _request_headers(self) -> bool:
        """Run the request headers hook; True when a hold or a body hook needs async work."""
        vm, ctx, req = self.vm, self.ctx, self.ex.request
        assert ctx is not None
        has_body = _has_body(req.body)
        if REQ_HEADERS in vm.funcs:
            n = len(req.headers) + 4 - ("host" in req.headers)
            ctx.continued = False
            args = (ctx.id, n) if self.v010 else (ctx.id, n, 0 if has_body else 1)
            action = vm.invoke(REQ_HEADERS, ctx, "request_headers", self.ex, args)
            if ctx.local_response is not None or ctx.closed:
                return False
            if self._holds(action):
                self._hold("request", action)
                return True
        ctx.request_headers_open = False
        return has_body and vm.request_body_hooks

    async def _request_rest(self) -> None:
        ctx, req, vm = self.ctx, self.ex.request, self.vm
        assert ctx is not None
        if vm.request_body_hooks and _has_body(req.body) and (
                REQ_BODY in vm.funcs or _may_have_trailers(req)):
            await self._request_body()
            if self._ended():
                return
        if ctx.paused is not None:
            await self._wait()
        ctx.request_headers_open = False

    async def _request_body(self) -> None:
        """Feed the request body (and trailers) to the hooks, held or not; the result goes
        downstream whole, with the (possibly edited) trailers."""
        ctx, req, vm = self.ctx, self.ex.request, self.vm
        assert ctx is not None
        limit = vm.plugin.max_body_bytes
        body_hook = REQ_BODY in vm.funcs
        source = req.body
        buf = ctx.request_body = bytearray()
        out: list[bytes] = []
        chunks = _chunks(source)
        try:
            async for chunk, eos in chunks:
                buf += chunk
                if len(buf) > limit:
                    ctx.local_response = _text_response(
                        413, "request body exceeds the filter's buffer limit\n")
                    return
                trailers = self._end_of_body(False, req.trailers) if eos else None
                action = 0
                if body_hook:
                    action = self._call(REQ_BODY, "request_body", len(buf),
                                        int(eos and trailers is None))
                    if self._ended():
                        return
                    if ctx.paused is not None:
                        if self._released_by(action):
                            self._unhold()
                            ctx.request_headers_open = False
                    elif eos and trailers is None and self._holds(action):
                        self._hold("request", action)  # StopIteration at end of stream
                if trailers is not None:
                    action = self._call_trailers(False, trailers)
                    if self._ended():
                        return
                    if self._end_result(action, "request"):
                        ctx.request_headers_open = False
                if eos and ctx.paused is not None:
                    try:
                        await self._wait()
                    except PauseTimeout:
                        if not self.fail_open:
                            raise
                        self._log_timeout_open()
                    ctx.request_headers_open = False
                    if self._ended():
                        return
                    action = 0
                if action == 0 or eos:
                    out.append(bytes(buf))
                    del buf[:]
        except FilterFailure:
            if self.fail_open:  # the rest of the body (and its trailers) goes on untouched
                req.body = TrailerRelay(_prepend(out + [bytes(buf)], chunks), source)
                req.headers.popall("Content-Length", None)
            raise
        finally:
            ctx.request_body = None
            if ctx.request_trailers is not None:
                ctx.request_trailers.writable = False
        new_body = b"".join(out)
        req.body = new_body
        req.headers.popall("Transfer-Encoding", None)
        req.headers["Content-Length"] = str(len(new_body))  # the client sends chunked if trailers
        if ctx.request_trailers is not None:
            req.trailers = ctx.request_trailers.fields  # a bytes body carries them explicitly

    # --- response ----------------------------------------------------------------
    def _response_fast(self, response: Response) -> Response | None:
        """Synchronous response phase when nothing can wait; None means take the async path."""
        vm = self.vm
        body = response.body
        if vm.response_body_hooks and self._response_async(response):
            return None
        ctx = self.ctx
        assert ctx is not None
        ctx.set_response(response)
        if RESP_HEADERS in vm.funcs:
            ctx.response_headers_open = True
            try:
                n = len(response.headers) + 1
                ctx.continued = False
                args = (ctx.id, n) if self.v010 else (ctx.id, n, 0 if _has_body(body) else 1)
                action = vm.invoke(RESP_HEADERS, ctx, "response_headers", self.ex, args)
            except FilterFailure:
                if self.fail_open:
                    vm.finish_stream(ctx)
                    return response
                return self._fail()
            if self._holds(action):
                self._hold("response", action)
                return None
            ctx.response_headers_open = False
        return self._finish_response(response)

    def _response_async(self, response: Response) -> bool:
        """A body for the body hook, or a bytes body's trailers for the trailers hook."""
        body = response.body
        if RESP_BODY in self.vm.funcs and _has_body(body):
            return True
        return isinstance(body, (bytes, bytearray)) and bool(response.trailers)

    def _finish_response(self, response: Response) -> Response:
        vm, ctx = self.vm, self.ctx
        assert ctx is not None
        ctx.response_headers_open = False
        if ctx.closed:
            vm.finish_stream(ctx)
            return _reset_response()
        if ctx.local_response is not None and ctx.local_response is not response:
            vm.finish_stream(ctx)  # a reply sent while encoding replaces the response
            return self._timed(ctx.local_response)
        body = response.body
        if isinstance(body, (bytes, bytearray)):
            vm.finish_stream(ctx)
        else:
            response.body = TrailerRelay(self._finish_after(body), body)
        return self._timed(response)

    async def _response_phase(self, response: Response) -> Response:
        """The async response path: a held response, or a body the hook must see."""
        vm, ctx = self.vm, self.ctx
        assert ctx is not None
        original = response
        body = response.body
        try:
            if ctx.paused is None:  # the headers hook has not run yet
                ctx.set_response(response)
                if RESP_HEADERS in vm.funcs:
                    ctx.response_headers_open = True
                    n = len(response.headers) + 1
                    if self.v010:
                        action = self._call(RESP_HEADERS, "response_headers", n)
                    else:
                        action = self._call(RESP_HEADERS, "response_headers", n,
                                            0 if _has_body(body) else 1)
                    if self._holds(action):
                        self._hold("response", action)
            if not self._ended():
                if RESP_BODY in vm.funcs and _has_body(body):
                    if ctx.paused is not None:
                        response = await self._response_body_held(response)
                    elif isinstance(body, (bytes, bytearray)):
                        ctx.response_headers_open = False
                        response = await self._response_body_bytes(response)
                    else:
                        ctx.response_headers_open = False
                        self._stream_body(response, _chunks(body), [], None, body)
                        return self._timed(response)
                elif (vm.response_trailers_hook and isinstance(body, (bytes, bytearray))
                      and response.trailers):
                    await self._bytes_trailers(response)
                elif ctx.paused is not None:
                    await self._wait()
        except FilterFailure:
            if self.fail_open:
                vm.finish_stream(ctx)
                return original
            return self._fail()
        except PauseTimeout:
            if not self.fail_open:
                return self._timed_out()
            self._log_timeout_open()
        if response is not original and ctx.local_response is not response:
            vm.finish_stream(ctx)  # the host's own reply (buffer limit)
            return response
        if (response.body is not body and not isinstance(response.body, (bytes, bytearray))
                and not ctx.closed and ctx.local_response is None):
            return self._timed(response)  # released mid-body: the rest finishes the stream
        return self._finish_response(response)

    async def _response_body_held(self, response: Response) -> Response:
        """Response headers are held: feed the body to the hook until released.

        Released at end of stream -> a bytes body with a fixed Content-Length; released
        earlier -> the buffered part then the rest, still filtered as it streams.
        """
        vm, ctx = self.vm, self.ctx
        assert ctx is not None
        limit = vm.plugin.max_body_bytes
        source = response.body
        buf = ctx.response_body = bytearray()
        out: list[bytes] = []
        chunks = _chunks(source)
        streaming = False
        try:
            async for chunk, eos in chunks:
                buf += chunk
                if len(buf) > limit:
                    return _text_response(502, "response body exceeds the filter's buffer limit\n")
                trailers = self._end_of_body(True, response.trailers) if eos else None
                try:
                    action = self._call(RESP_BODY, "response_body", len(buf),
                                        int(eos and trailers is None))
                    if trailers is not None and not self._ended():
                        if self._released_by(action):
                            self._unhold()
                        action = self._call_trailers(True, trailers)
                except FilterFailure:
                    if self.fail_open:  # the response goes on untouched
                        response.body = TrailerRelay(_prepend(out + [bytes(buf)], chunks), source)
                        response.headers.popall("Content-Length", None)
                    raise
                if self._ended():
                    return response
                if ctx.paused is None:  # released by the body callback, held again by trailers?
                    released = not self._holds(action)
                    if not released:
                        self._hold("response", action)
                else:
                    released = self._released_by(action)
                    if released:
                        self._unhold()
                if eos:
                    if not released:
                        try:
                            await self._wait()
                        except PauseTimeout:
                            if not self.fail_open:
                                raise
                            self._log_timeout_open()
                        if self._ended():
                            return response
                    out.append(bytes(buf))
                    del buf[:]
                    break
                if action == 0:
                    out.append(bytes(buf))
                    del buf[:]
                if released:
                    streaming = True
                    break
        finally:
            if not streaming:
                ctx.response_body = None
            if ctx.response_trailers is not None:
                ctx.response_trailers.writable = False
        ctx.response_headers_open = False
        if streaming:
            self._stream_body(response, chunks, out, buf, source)
            return response
        data = b"".join(out)
        response.body = data
        response.headers["Content-Length"] = str(len(data))
        if ctx.response_trailers is not None:
            response.trailers = ctx.response_trailers.fields  # a bytes body carries them explicitly
        return response

    async def _response_body_bytes(self, response: Response) -> Response:
        ctx = self.ctx
        assert ctx is not None
        ctx.response_body = bytearray(response.body)  # type: ignore[arg-type]
        trailers = self._end_of_body(True, response.trailers)
        try:
            action = self._call(RESP_BODY, "response_body", len(ctx.response_body), int(trailers is None))
            if trailers is not None and not self._ended():
                action = self._call_trailers(True, trailers)
            if self._holds(action):
                self._hold("response", action)
                await self._wait()
            if ctx.local_response is not None and ctx.local_response is not response:
                return ctx.local_response
            data = bytes(ctx.response_body)
        finally:
            ctx.response_body = None
            if ctx.response_trailers is not None:
                ctx.response_trailers.writable = False
        response.body = data
        response.headers["Content-Length"] = str(len(data))
        if ctx.response_trailers is not None:
            response.trailers = ctx.response_trailers.fields
        return response

    async def _bytes_trailers(self, response: Response) -> None:
        """A bytes body's trailers through the trailers hook (no body hook), held or not."""
        ctx = self.ctx
        assert ctx is not None
        trailers = TrailerFields(response.trailers)  # the message's own map: edits in place
        try:
            action = self._call_trailers(True, trailers)
            if not self._ended():
                self._end_result(action, "response")
                if ctx.paused is not None:
                    await self._wait()
        finally:
            trailers.writable = False

    def _stream_body(self, response: Response, chunks: AsyncIterator[tuple[bytes, bool]],
                     prefix: list[bytes], buf: bytearray | None, source: Body) -> None:
        """Hand the rest of the response on, filtered as it streams, with its trailers."""
        def attach(fields: CIMultiDict[str]) -> None:  # trailers a filter added to none
            relay.trailers = fields
        relay = TrailerRelay(self._response_body_stream(chunks, prefix, buf, source, attach), source)
        response.headers.popall("Content-Length", None)
        response.body = relay

    async def _response_body_stream(self, chunks: AsyncIterator[tuple[bytes, bool]],
                                    prefix: list[bytes], buf: bytearray | None, source: Body,
                                    attach: Callable[[CIMultiDict[str]], None]
                                    ) -> AsyncIterator[bytes]:
        """Filter a response body as it streams (the headers are already on their way)."""
        vm, ctx = self.vm, self.ctx
        assert ctx is not None
        limit = vm.plugin.max_body_bytes
        if buf is None:
            buf = bytearray()
        ctx.response_body = buf
        bypass = False
        try:
            for part in prefix:
                if part:
                    yield part
            async for chunk, eos in chunks:
                if bypass:
                    if chunk:
                        yield chunk
                    continue
                buf += chunk
                if len(buf) > limit:
                    raise StreamAborted(f"filter {self.name}: buffered response body exceeds limit")
                try:
                    trailers = None
                    if eos:
                        found = trailers_of(source)
                        trailers = self._end_of_body(True, found)
                    action = self._call(RESP_BODY, "response_body", len(buf), int(eos and trailers is None))
                    if trailers is not None and not self._ended():
                        action = self._call_trailers(True, trailers)
                    if eos and self._holds(action):
                        self._hold("response", action)
                        await self._wait()
                except FilterFailure:
                    vm.plugin.metrics.failed_streams += 1
                    if not self.fail_open:
                        raise StreamAborted(f"filter {self.name} failed in the response body") from None
                    bypass = True
                    action = 0
                except PauseTimeout:
                    vm.plugin.metrics.failed_streams += 1
                    if not self.fail_open:
                        raise StreamAborted(f"filter {self.name} did not resume the response body") from None
                    self._log_timeout_open()
                    action = 0
                if ctx.local_response is not None or ctx.closed:
                    raise StreamAborted(f"filter {self.name} ended the stream after the response started")
                if eos and not bypass and ctx.response_trailers is not None:
                    fields = ctx.response_trailers.fields
                    if fields is not None and fields is not found:
                        attach(fields)
                if (action == 0 or eos) and buf:
                    data = bytes(buf)
                    del buf[:]
                    yield data
        finally:
            ctx.response_body = None
            if ctx.response_trailers is not None:
                ctx.response_trailers.writable = False
            vm.finish_stream(ctx)

    async def _finish_after(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        try:
            async for chunk in body:
                yield chunk
            if self.vm.response_trailers_hook:
                fields = trailers_of(body)
                if fields:
                    await self._streamed_trailers(fields)
        finally:
            self.vm.finish_stream(self.ctx)  # type: ignore[arg-type]

    async def _streamed_trailers(self, fields: CIMultiDict[str]) -> None:
        """The trailers hook at the end of a streamed response (no body hook)."""
        ctx = self.ctx
        assert ctx is not None
        trailers = TrailerFields(fields)
        try:
            action = self._call_trailers(True, trailers)
            if self._holds(action):
                self._hold("response", action)
                await self._wait()
        except FilterFailure:
            self.vm.plugin.metrics.failed_streams += 1
            if not self.fail_open:
                raise StreamAborted(f"filter {self.name} failed in the response trailers") from None
        except PauseTimeout:
            self.vm.plugin.metrics.failed_streams += 1
            if not self.fail_open:
                raise StreamAborted(f"filter {self.name} did not resume the response trailers") from None
            self._log_timeout_open()
        finally:
            trailers.writable = False
        if ctx.local_response is not None or ctx.closed:
            raise StreamAborted(f"filter {self.name} ended the stream after the response started")

    def _timed(self, response: Response) -> Response:
        """Add this filter's Server-Timing entry when the client asked for timings."""
        ex = self.ex
        if self.server_timing and (ex.server_timing or ex.request.headers.get("x-edgenode-timing") == "1"):
            name = self.name
            total = sum(s for (n, _), s in ex.timings.items() if n == name)
            response.headers.add("Server-Timing", f"wasm-{name};dur={total * 1000:.3f}")
        return response
