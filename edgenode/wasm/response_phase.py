"""A filter's response callbacks, after the next stage: headers, then body and trailers.

Not held: a ``bytes`` body is handed to the body hook once (end_of_stream=1) and
``Content-Length`` is fixed; a streamed body is filtered as it streams (``Content-Length``
removed), and the stream finishes when the body ends.  Held by StopAll* (holds.py): the
body is buffered without callbacks until the filter continues, then delivered as one
callback (the whole body as ``bytes`` if it ended meanwhile, else the buffered part and
the rest as it streams).  Held by an allowed StopIteration: chunks are fed to the hook
while holding; released at end of stream -> one body with a fixed ``Content-Length``,
released earlier -> the buffered part, then the rest filtered as it streams.
"""

from __future__ import annotations

from typing import AsyncIterator, Callable

from edgenode.http.messages import FROM_BODY, Body, CIMultiDict, Response, TrailerRelay, trailers_of
from edgenode.wasm.bodies import ChunkReader, has_body, prepend
from edgenode.wasm.contexts import TrailerFields
from edgenode.wasm.errors import GuestTrap
from edgenode.wasm.holds import STOP_ALL, Hold
from edgenode.wasm.replies import StreamAborted, reset_response, text_response
from edgenode.wasm.streamstate import PauseTimeout, Stream
from edgenode.wasm.vm import FilterFailure

__all__ = ["in_memory_slow", "respond_raised", "responded", "response_fast", "response_phase"]

RESP_HEADERS, RESP_BODY = "proxy_on_response_headers", "proxy_on_response_body"


def _too_large() -> Response:
    return text_response(502, "response body exceeds the filter's buffer limit\n")


def response_fast(s: Stream, response: Response) -> Response | None:
    """Synchronous response phase when nothing can wait; None means take the async path."""
    vm = s.vm
    body = response.body
    if type(body) is bytes and response._trailers is FROM_BODY:  # the common case: a hit, no trailers
        return s.in_memory(response, body)
    if isinstance(body, (bytes, bytearray)):
        if vm.response_body_hooks and response.trailers:
            return None  # a bytes body's trailers go through the trailers hook
        return s.in_memory(response, body if isinstance(body, bytes) else bytes(body))
    if vm.response_body_hooks and RESP_BODY in vm.funcs:
        return None  # a streamed body through the body hook
    ctx = s.ctx
    ctx.set_response(response)
    if RESP_HEADERS in vm.funcs:
        ctx.response_headers_open = True
        ctx.response_started = True
        try:
            n = len(response.headers) + 1
            ctx.continued = False
            args = (ctx.id, n) if s.v010 else (ctx.id, n, 0)
            action = vm.invoke(RESP_HEADERS, ctx, "response_headers", s.ex, args)
        except FilterFailure:
            if s.fail_open:
                vm.finish_stream(ctx)
                return response
            return s.fail()
        if s.hold_headers("response", action):
            return None
        ctx.response_headers_open = False
    return _finish_response(s, response)


def in_memory_slow(s: Stream, response: Response, body: bytes) -> Response | None:
    """``in_memory`` (native.StreamCore: a response whose body is in memory) with a body
    callback, or on a failed, closed or observed VM: the same steps through
    ``Vm.respond``; a hold or a reply from them continues in response_phase."""
    vm, ctx = s.vm, s.ctx
    ctx.set_response(response)
    ctx.continued = False
    if body and RESP_BODY in vm.funcs:
        s.end_of_body(True, None)  # the last body callback may add trailers (map 3)
    try:
        action, stage, buffer = vm.respond(ctx, len(response.headers) + 1, body)
    except FilterFailure:
        return _respond_failed(s, response)
    return responded(s, response, body, action, stage, buffer)


def respond_raised(s: Stream, response: Response, body: bytes, exc: BaseException) -> Response | None:
    """``in_memory``'s native call raised ``exc``: a trap as ``Vm.respond`` meets it."""
    if not isinstance(exc, GuestTrap):
        raise exc
    try:
        action, stage, buffer = s.vm.respond_trapped(s.ctx, exc, -1)
    except FilterFailure:
        return _respond_failed(s, response)
    return responded(s, response, body, action, stage, buffer)


def _respond_failed(s: Stream, response: Response) -> Response:
    if s.fail_open:
        s.vm.finish_stream(s.ctx)
        return response
    return s.fail()


def responded(s: Stream, response: Response, body: bytes, action: int, stage: int,
              buffer: bytes | bytearray | None) -> Response | None:
    """After the response callbacks of ``in_memory``: a changed body or trailers, a hold,
    a local reply or a close (``stage`` as ``Vm.respond`` returns it)."""
    vm, ctx = s.vm, s.ctx
    if buffer is not None and buffer is not body:  # the body callback changed the body
        data = bytes(buffer)
        response.body = data
        response.headers["Content-Length"] = str(len(data))
    trailers = ctx.response_trailers
    if trailers is not None and trailers.fields:  # added by the body callback
        response.trailers = trailers.fields
    if stage == 2:
        if ctx.local_response is None and not ctx.closed:
            return s.timed(response)  # the common case: the stream is already finished
        return _finish_response(s, response)
    if stage == 0:
        if s.hold_headers("response", action):
            return None
        if ctx.local_response is not None or ctx.closed or not body or RESP_BODY not in vm.funcs:
            return _finish_response(s, response)
        return None  # continued in the callback: the body callback comes in response_phase
    if s.holds(action):  # the body callback stopped at end of stream: wait for continue
        ctx.response_body_delivered = True
        s.hold("response", Hold.END)
        return None
    vm.finish_stream(ctx)
    return _finish_response(s, response)


def _finish_response(s: Stream, response: Response) -> Response:
    vm, ctx = s.vm, s.ctx
    ctx.response_headers_open = False
    if ctx.closed:
        vm.finish_stream(ctx)
        return reset_response()
    if ctx.local_response is not None and ctx.local_response is not response:
        vm.finish_stream(ctx)  # a reply sent while encoding replaces the response
        return s.timed(ctx.local_response)
    body = response.body
    if isinstance(body, (bytes, bytearray)):
        vm.finish_stream(ctx)
    else:
        response.body = TrailerRelay(_finish_after(s, body), body)
    return s.timed(response)


async def response_phase(s: Stream, response: Response) -> Response:
    """The async response path: a held response, or a body the hooks must see."""
    vm, ctx = s.vm, s.ctx
    original = response
    if ctx.response_body_delivered:
        return await _held_after_body(s, response)
    body = response.body
    try:
        if not ctx.response_started:  # the headers hook has not run yet
            ctx.response_started = True
            ctx.set_response(response)
            if RESP_HEADERS in vm.funcs:
                ctx.response_headers_open = True
                n = len(response.headers) + 1
                if s.v010:
                    action = s.call(RESP_HEADERS, "response_headers", n)
                else:
                    action = s.call(RESP_HEADERS, "response_headers", n, 0 if has_body(body) else 1)
                s.hold_headers("response", action)
        if ctx.paused is not None and ctx.hold_kind in STOP_ALL and not s.ended():
            overflow = await _gather(s, response)
            if overflow is not None:
                vm.finish_stream(ctx)
                return overflow
            body = response.body
        if not s.ended():
            if RESP_BODY in vm.funcs and has_body(body):
                if ctx.paused is not None:
                    response = await _body_while_held(s, response)
                elif isinstance(body, (bytes, bytearray)):
                    ctx.response_headers_open = False
                    response = await _body_bytes(s, response)
                else:
                    ctx.response_headers_open = False
                    _stream_body(s, response, ChunkReader(body), [], None, body)
                    return s.timed(response)
            elif (vm.response_trailers_hook and isinstance(body, (bytes, bytearray))
                  and response.trailers):
                await _bytes_trailers(s, response)
            elif ctx.paused is not None:
                await s.wait()
    except FilterFailure:
        if s.fail_open:
            vm.finish_stream(ctx)
            return original
        return s.fail()
    except PauseTimeout:
        if not s.fail_open:
            return s.timed_out()
        s.log_timeout_open()
    if response is not original and ctx.local_response is not response:
        vm.finish_stream(ctx)  # the host's own reply (buffer limit)
        return response
    if (response.body is not body and not isinstance(response.body, (bytes, bytearray))
            and not ctx.closed and ctx.local_response is None):
        return s.timed(response)  # released mid-body: the rest finishes the stream
    return _finish_response(s, response)


async def _held_after_body(s: Stream, response: Response) -> Response:
    """The body callback of an in-memory response (run with the headers) held the end of
    the stream: wait for the filter to continue, then finish with its body."""
    vm, ctx = s.vm, s.ctx
    try:
        await s.wait()
    except FilterFailure:
        if s.fail_open:
            vm.finish_stream(ctx)
            return response
        return s.fail()
    except PauseTimeout:
        if not s.fail_open:
            return s.timed_out()
        s.log_timeout_open()
    buffer = ctx.response_body
    if buffer is not None and buffer is not response.body:
        data = bytes(buffer)
        response.body = data
        response.headers["Content-Length"] = str(len(data))
    vm.finish_stream(ctx)
    return _finish_response(s, response)


async def _gather(s: Stream, response: Response) -> Response | None:
    """A StopAll* hold on the response: buffer the body (if the hooks will see it) until
    the filter continues.  Then ``response.body`` is the whole body as ``bytes`` if it
    ended meanwhile, else the buffered part followed by the rest.  Returns the host's
    reply when the buffer overflowed under StopAllIterationAndBuffer."""
    vm = s.vm
    source = response.body
    if not (vm.response_body_hooks and has_body(source)):
        await s.wait()
        return None
    reader = ChunkReader(source)
    held = bytearray()
    try:
        eos = await s.gather_held(reader, held, vm.plugin.max_body_bytes)
    except FilterFailure:
        if s.fail_open:  # the response goes on untouched
            response.body = TrailerRelay(prepend([bytes(held)], reader), source)
        raise
    if eos is None:
        return _too_large()
    if not eos:
        response.body = TrailerRelay(prepend([bytes(held)], reader), source)
        return None
    fields = response.trailers  # the source's, known now that it ended
    response.body = bytes(held)
    response.trailers = fields
    response.headers["Content-Length"] = str(len(held))
    return None


async def _body_while_held(s: Stream, response: Response) -> Response:
    """Response headers held by an allowed StopIteration: feed the body to the hook
    until released."""
    vm, ctx = s.vm, s.ctx
    limit = vm.plugin.max_body_bytes
    source = response.body
    buf = ctx.response_body = bytearray()
    out: list[bytes] = []
    chunks = ChunkReader(source)
    streaming = False
    try:
        async for chunk, eos in chunks:
            buf += chunk
            if len(buf) > limit:
                return _too_large()
            trailers = s.end_of_body(True, response.trailers) if eos else None
            try:
                action = s.call(RESP_BODY, "response_body", len(buf), int(eos and trailers is None))
                if trailers is not None and not s.ended():
                    if s.released_by(action):
                        s.unhold()
                    action = s.call_trailers(True, trailers)
            except FilterFailure:
                if s.fail_open:  # the response goes on untouched
                    response.body = TrailerRelay(prepend(out + [bytes(buf)], chunks), source)
                    response.headers.popall("Content-Length", None)
                raise
            if s.ended():
                return response
            if ctx.paused is None:  # released by the body callback, held again by trailers?
                released = not s.holds(action)
                if not released:
                    s.hold("response", Hold.END)
            else:
                released = s.released_by(action)
                if released:
                    s.unhold()
            if eos:
                if not released:
                    await s.wait_or_open()
                    if s.ended():
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
        _stream_body(s, response, chunks, out, buf, source)
        return response
    data = b"".join(out)
    response.body = data
    response.headers["Content-Length"] = str(len(data))
    if ctx.response_trailers is not None:
        response.trailers = ctx.response_trailers.fields  # a bytes body carries them explicitly
    return response


async def _body_bytes(s: Stream, response: Response) -> Response:
    ctx = s.ctx
    ctx.response_body = bytearray(response.body)  # type: ignore[arg-type]
    trailers = s.end_of_body(True, response.trailers)
    try:
        action = s.call(RESP_BODY, "response_body", len(ctx.response_body), int(trailers is None))
        if trailers is not None and not s.ended():
            action = s.call_trailers(True, trailers)
        if s.holds(action):
            s.hold("response", Hold.END)
            await s.wait()
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


async def _bytes_trailers(s: Stream, response: Response) -> None:
    """A bytes body's trailers through the trailers hook (no body hook), held or not."""
    ctx = s.ctx
    trailers = TrailerFields(response.trailers)  # the message's own map: edits in place
    try:
        action = s.call_trailers(True, trailers)
        if not s.ended():
            s.end_result(action, "response")
            if ctx.paused is not None:
                await s.wait()
    finally:
        trailers.writable = False


def _stream_body(s: Stream, response: Response, chunks: ChunkReader, prefix: list[bytes],
                 buf: bytearray | None, source: Body) -> None:
    """Hand the rest of the response on, filtered as it streams, with its trailers."""
    def attach(fields: CIMultiDict[str]) -> None:  # trailers a filter added to none
        relay.trailers = fields
    relay = TrailerRelay(_body_stream(s, chunks, prefix, buf, source, attach), source)
    response.headers.popall("Content-Length", None)
    response.body = relay


async def _body_stream(s: Stream, chunks: ChunkReader, prefix: list[bytes], buf: bytearray | None,
                       source: Body, attach: Callable[[CIMultiDict[str]], None]) -> AsyncIterator[bytes]:
    """Filter a response body as it streams (the headers are already on their way)."""
    vm, ctx = s.vm, s.ctx
    limit = vm.plugin.max_body_bytes
    if buf is None:
        buf = bytearray()
    ctx.response_body = buf
    bypass = False
    found = None
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
            if len(buf) > limit and len(buf) > len(chunk):  # the filter buffered past the limit
                raise StreamAborted(f"filter {s.name}: buffered response body exceeds limit")
            try:
                trailers = None
                if eos:
                    found = trailers_of(source)
                    trailers = s.end_of_body(True, found)
                action = s.call(RESP_BODY, "response_body", len(buf), int(eos and trailers is None))
                if trailers is not None and not s.ended():
                    action = s.call_trailers(True, trailers)
                if eos and s.holds(action):
                    s.hold("response", Hold.END)
                    await s.wait()
            except FilterFailure:
                vm.plugin.metrics.failed_streams += 1
                if not s.fail_open:
                    raise StreamAborted(f"filter {s.name} failed in the response body") from None
                bypass = True
                action = 0
            except PauseTimeout:
                vm.plugin.metrics.failed_streams += 1
                if not s.fail_open:
                    raise StreamAborted(f"filter {s.name} did not resume the response body") from None
                s.log_timeout_open()
                action = 0
            if ctx.local_response is not None or ctx.closed:
                raise StreamAborted(f"filter {s.name} ended the stream after the response started")
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


async def _finish_after(s: Stream, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in body:
            yield chunk
        if s.vm.response_trailers_hook:
            fields = trailers_of(body)
            if fields:
                await _streamed_trailers(s, fields)
    finally:
        s.vm.finish_stream(s.ctx)


async def _streamed_trailers(s: Stream, fields: CIMultiDict[str]) -> None:
    """The trailers hook at the end of a streamed response (no body hook)."""
    ctx = s.ctx
    trailers = TrailerFields(fields)
    try:
        action = s.call_trailers(True, trailers)
        if s.holds(action):
            s.hold("response", Hold.END)
            await s.wait()
    except FilterFailure:
        s.vm.plugin.metrics.failed_streams += 1
        if not s.fail_open:
            raise StreamAborted(f"filter {s.name} failed in the response trailers") from None
    except PauseTimeout:
        s.vm.plugin.metrics.failed_streams += 1
        if not s.fail_open:
            raise StreamAborted(f"filter {s.name} did not resume the response trailers") from None
        s.log_timeout_open()
    finally:
        trailers.writable = False
    if ctx.local_response is not None or ctx.closed:
        raise StreamAborted(f"filter {s.name} ended the stream after the response started")
