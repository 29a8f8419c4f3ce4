"""One filter's callbacks for one HTTP stream, in the onion model of the Stage contract.

Request hooks run before ``next`` (chain order), response hooks after it (reverse
order).  A Stop* result holds the stream until ``proxy_continue_stream``, a local
reply or ``proxy_close_stream``; body hooks see the growing buffered body with an
honest end_of_stream.  Request bodies are consumed before ``next`` when the filter
exports ``proxy_on_request_body`` (so it can still answer locally); response bodies
are processed as they stream (a ``bytes`` body is processed at once and its
Content-Length fixed).
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Awaitable, Callable

from edgenode.http.messages import Body, CIMultiDict, Response, read_body
from edgenode.pipeline.exchange import Exchange
from edgenode.wasm.contexts import StreamContext
from edgenode.wasm.vm import FilterFailure, Vm

__all__ = ["StreamDriver", "StreamAborted", "failure_response"]

Handler = Callable[[Exchange], Awaitable[Response]]

REQ_HEADERS, REQ_BODY = "proxy_on_request_headers", "proxy_on_request_body"
RESP_HEADERS, RESP_BODY = "proxy_on_response_headers", "proxy_on_response_body"
#: Envoy FilterHeadersStatus::StopAllIterationAndBuffer
STOP_ALL_AND_BUFFER = 3


class StreamAborted(Exception):
    """Raised from a response body: the filter broke the response after it started."""


def failure_response(name: str) -> Response:
    """Envoy's fail-closed reply: 503, details wasm_fail_stream."""
    body = f"filter {name} failed\n".encode()
    headers = CIMultiDict({"Content-Type": "text/plain", "Content-Length": str(len(body))})
    return Response(503, headers, body)


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
    it = body.__aiter__()
    pending: bytes | None = None
    async for chunk in it:
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


class StreamDriver:
    __slots__ = ("vm", "ex", "ctx", "name", "fail_open", "v010", "server_timing")

    def __init__(self, vm: Vm, exchange: Exchange, fail_open: bool, server_timing: bool) -> None:
        self.vm = vm
        self.server_timing = server_timing
        self.ex = exchange
        self.name = vm.plugin.name
        self.fail_open = fail_open
        self.v010 = vm.version == (0, 1, 0)
        self.ctx: StreamContext = vm.new_stream(exchange)

    # --- helpers -------------------------------------------------------------
    def _call(self, name: str, phase: str, *args: int) -> int:
        ctx = self.ctx
        ctx.continued = False
        return self.vm.call(name, ctx, ctx.id, *args, phase=phase, exchange=self.ex)

    def _holds(self, action: int) -> bool:
        """Whether a callback's result holds the stream (any non-zero action pauses)."""
        ctx = self.ctx
        return not (action == 0 or ctx.continued or ctx.local_response is not None or ctx.closed)

    async def _wait(self, phase: str) -> None:
        """Hold ``phase`` until continue_stream, a local reply or close_stream."""
        ctx = self.ctx
        ctx.paused = phase
        ctx.resume = asyncio.get_running_loop().create_future()
        try:
            await ctx.resume
        finally:
            ctx.paused = None
            ctx.resume = None

    def _fail(self) -> Response:
        self.vm.plugin.metrics.failed_streams += 1
        self.vm.finish_stream(self.ctx)
        return failure_response(self.name)

    # --- the stream ------------------------------------------------------------
    async def run(self, next_handler: Handler) -> Response:
        ex, ctx = self.ex, self.ctx
        try:
            await self._request_phase()
        except FilterFailure:
            if self.fail_open:
                self.vm.finish_stream(ctx)
                return await next_handler(ex)
            return self._fail()
        if ctx.closed:
            self.vm.finish_stream(ctx)
            return _reset_response()
        if ctx.local_response is not None:
            return await self._response_phase(ctx.local_response)
        try:
            response = await next_handler(ex)
        except BaseException:
            self.vm.finish_stream(ctx)
            raise
        return await self._response_phase(response)

    async def _request_phase(self) -> None:
        vm, ctx, req = self.vm, self.ctx, self.ex.request
        body = req.body
        has_body = not isinstance(body, (bytes, bytearray)) or len(body) > 0
        if REQ_HEADERS in vm.funcs:
            n = len(req.headers) + 4 - ("host" in req.headers)
            if self.v010:
                action = self._call(REQ_HEADERS, "request_headers", n)
            else:
                action = self._call(REQ_HEADERS, "request_headers", n, 0 if has_body else 1)
            if self._holds(action):
                await self._wait("request")
            if ctx.local_response is not None or ctx.closed:
                return
        ctx.request_headers_open = False
        if has_body and REQ_BODY in vm.funcs:
            await self._request_body()

    async def _request_body(self) -> None:
        ctx, req = self.ctx, self.ex.request
        limit = self.vm.plugin.max_body_bytes
        buf = ctx.request_body = bytearray()
        out: list[bytes] = []
        chunks = _chunks(req.body)
        try:
            async for chunk, eos in chunks:
                buf += chunk
                if len(buf) > limit:
                    body = b"request body exceeds the filter's buffer limit\n"
                    ctx.local_response = Response(413, CIMultiDict(
                        {"Content-Type": "text/plain", "Content-Length": str(len(body))}), body)
                    return
                action = self._call(REQ_BODY, "request_body", len(buf), int(eos))
                if eos and self._holds(action):
                    await self._wait("request")
                if ctx.local_response is not None or ctx.closed:
                    return
                if action == 0 or eos:
                    out.append(bytes(buf))
                    del buf[:]
        except FilterFailure:
            if self.fail_open:  # the rest of the body goes on untouched
                req.body = _prepend(out + [bytes(buf)], chunks)
                req.headers.popall("Content-Length", None)
            raise
        finally:
            ctx.request_body = None
        new_body = b"".join(out)
        req.body = new_body
        req.headers.popall("Transfer-Encoding", None)
        req.headers["Content-Length"] = str(len(new_body))

    async def _response_phase(self, response: Response) -> Response:
        vm, ctx = self.vm, self.ctx
        original = response
        ctx.set_response(response)
        ctx.response_headers_open = True
        body = response.body
        has_body = not isinstance(body, (bytes, bytearray)) or len(body) > 0
        try:
            if RESP_HEADERS in vm.funcs:
                n = len(response.headers) + 1
                if self.v010:
                    action = self._call(RESP_HEADERS, "response_headers", n)
                else:
                    action = self._call(RESP_HEADERS, "response_headers", n, 0 if has_body else 1)
                if (action == STOP_ALL_AND_BUFFER and has_body and RESP_BODY in vm.funcs
                        and not ctx.continued and ctx.local_response is None and not ctx.closed):
                    response = await self._buffer_then_body(response)
                    has_body = False  # the body hook has run
                else:
                    if self._holds(action):
                        await self._wait("response")
            ctx.response_headers_open = False
            if ctx.closed:
                vm.finish_stream(ctx)
                return _reset_response()
            if ctx.local_response is not None and ctx.local_response is not response:
                vm.finish_stream(ctx)  # a reply sent while encoding replaces the response
                return self._timed(ctx.local_response)
            if has_body and RESP_BODY in vm.funcs:
                if isinstance(body, (bytes, bytearray)):
                    response = await self._response_body_bytes(response)
                else:
                    response.headers.popall("Content-Length", None)
                    response.body = self._response_body_stream(body)
                    return self._timed(response)
        except FilterFailure:
            if self.fail_open:
                vm.finish_stream(ctx)
                return original
            return self._fail()
        if isinstance(response.body, (bytes, bytearray)):
            vm.finish_stream(ctx)
        else:
            response.body = self._finish_after(response.body)
        return self._timed(response)

    async def _buffer_then_body(self, response: Response) -> Response:
        """StopAllIterationAndBuffer from the response headers hook (Envoy semantics):
        collect the whole body, then run the body hook once with end_of_stream while the
        response headers are still writable, so a body transform (the image filter) can
        also set Content-Type/ETag/Vary."""
        try:
            response.body = await read_body(response.body, self.vm.plugin.max_body_bytes)
        except ValueError:
            body = b"response body exceeds the filter's buffer limit\n"
            return Response(502, CIMultiDict({"Content-Type": "text/plain",
                                              "Content-Length": str(len(body))}), body)
        return await self._response_body_bytes(response)

    async def _response_body_bytes(self, response: Response) -> Response:
        ctx = self.ctx
        ctx.response_body = bytearray(response.body)  # type: ignore[arg-type]
        action = self._call(RESP_BODY, "response_body", len(ctx.response_body), 1)
        if self._holds(action):
            await self._wait("response")
        if ctx.local_response is not None and ctx.local_response is not response:
            return ctx.local_response
        data = bytes(ctx.response_body)
        ctx.response_body = None
        response.body = data
        response.headers["Content-Length"] = str(len(data))
        return response

    async def _response_body_stream(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        vm, ctx = self.vm, self.ctx
        limit = vm.plugin.max_body_bytes
        buf = ctx.response_body = bytearray()
        bypass = False
        try:
            async for chunk, eos in _chunks(body):
                if bypass:
                    if chunk:
                        yield chunk
                    continue
                buf += chunk
                if len(buf) > limit:
                    raise StreamAborted(f"filter {self.name}: buffered response body exceeds limit")
                try:
                    action = self._call(RESP_BODY, "response_body", len(buf), int(eos))
                    if eos and self._holds(action):
                        await self._wait("response")
                except FilterFailure:
                    vm.plugin.metrics.failed_streams += 1
                    if not self.fail_open:
                        raise StreamAborted(f"filter {self.name} failed in the response body") from None
                    bypass = True
                    action = 0
                if ctx.local_response is not None or ctx.closed:
                    raise StreamAborted(f"filter {self.name} ended the stream after the response started")
                if (action == 0 or eos) and buf:
                    data = bytes(buf)
                    del buf[:]
                    yield data
        finally:
            ctx.response_body = None
            vm.finish_stream(ctx)

    async def _finish_after(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        try:
            async for chunk in body:
                yield chunk
        finally:
            self.vm.finish_stream(self.ctx)

    def _timed(self, response: Response) -> Response:
        """Add this filter's Server-Timing entry when the client asked for timings."""
        ex = self.ex
        if self.server_timing and (ex.server_timing or ex.request.headers.get("x-edgenode-timing") == "1"):
            total = sum(s for (name, _), s in ex.timings.items() if name == self.name)
            response.headers.add("Server-Timing", f"wasm-{self.name};dur={total * 1000:.3f}")
        return response
