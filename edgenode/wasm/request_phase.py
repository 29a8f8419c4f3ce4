"""A filter's request callbacks after the headers hook (``StreamDriver.begin``), before
the next stage: a held stream, then body and trailers.

When the module exports ``proxy_on_request_body`` (or a trailers hook and the body may
end with trailers), the body is consumed here, so the filter can still answer locally,
and goes downstream whole with a fixed ``Content-Length``; otherwise it streams through
untouched.  A StopAll* hold from the headers hook delivers no body callback until the
filter continues; the body buffered meanwhile then arrives as one callback (holds.py).
"""

from __future__ import annotations

from edgenode.http.messages import TrailerRelay
from edgenode.wasm.bodies import ChunkReader, has_body, may_have_trailers, prepend
from edgenode.wasm.holds import STOP_ALL, Hold
from edgenode.wasm.replies import text_response
from edgenode.wasm.streamstate import Stream
from edgenode.wasm.vm import FilterFailure

__all__ = ["request_rest"]

REQ_BODY = "proxy_on_request_body"


async def request_rest(s: Stream) -> None:
    """The async part: a held stream, or a body the hooks must see."""
    ctx, req, vm = s.ctx, s.ex.request, s.vm
    if vm.request_body_hooks and has_body(req.body) and (
            REQ_BODY in vm.funcs or may_have_trailers(req)):
        await _request_body(s)
        if s.ended():
            return
    if ctx.paused is not None:
        await s.wait()
    ctx.request_headers_open = False


async def _request_body(s: Stream) -> None:
    """Feed the request body (and trailers) to the hooks; the result goes downstream
    whole, with the (possibly edited) trailers."""
    ctx, req, vm = s.ctx, s.ex.request, s.vm
    limit = vm.plugin.max_body_bytes
    source = req.body
    reader = ChunkReader(source)
    held = bytearray()
    buf = ctx.request_body = bytearray()
    out: list[bytes] = []
    try:
        if ctx.paused is not None and ctx.hold_kind in STOP_ALL:
            ctx.request_body = None  # no body buffer before the filter gets its callback
            eos = await s.gather_held(reader, held, limit)
            if eos is None:
                ctx.local_response = text_response(413, "request body exceeds the filter's buffer limit\n")
                return
            if s.ended():
                return
            ctx.request_headers_open = False
            ctx.request_body = buf
            reader.push_front(bytes(held), eos)
            del held[:]
        while not reader.finished:
            chunk, eos = await reader.next()
            buf += chunk
            if len(buf) > limit and len(buf) > len(chunk):  # the filter buffered past the limit
                ctx.local_response = text_response(413, "request body exceeds the filter's buffer limit\n")
                return
            if not await _deliver(s, buf, out, eos):
                return
    except FilterFailure:
        if s.fail_open:  # the rest of the body (and its trailers) goes on untouched
            req.body = TrailerRelay(prepend(out + [bytes(held), bytes(buf)], reader), source)
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


async def _deliver(s: Stream, buf: bytearray, out: list[bytes], eos: bool) -> bool:
    """One body callback over ``buf`` (and the trailers hook at the end); moves what the
    filter passed on to ``out``.  False when the filter ended the stream."""
    ctx, req = s.ctx, s.ex.request
    trailers = s.end_of_body(False, req.trailers) if eos else None
    action = 0
    if REQ_BODY in s.vm.funcs:
        action = s.call(REQ_BODY, "request_body", len(buf), int(eos and trailers is None))
        if s.ended():
            return False
        if ctx.paused is not None:
            if s.released_by(action):
                s.unhold()
                ctx.request_headers_open = False
        elif eos and trailers is None and s.holds(action):
            s.hold("request", Hold.END)  # Stop at end of stream: wait for continue
    if trailers is not None:
        action = s.call_trailers(False, trailers)
        if s.ended():
            return False
        if s.end_result(action, "request"):
            ctx.request_headers_open = False
    if eos and ctx.paused is not None:
        await s.wait_or_open()
        ctx.request_headers_open = False
        if s.ended():
            return False
        action = 0
    if action == 0 or eos:
        out.append(bytes(buf))
        del buf[:]
    return True
