"""One filter's view of one HTTP stream: the callbacks it gets and the holds they start.

``Stream`` holds what both directions share (request_phase.py, response_phase.py):
calling a hook, starting/ending holds (holds.py says what a result means), waiting for
a resume with the stage's ``pause_timeout``, buffering a body while a StopAll* hold
lasts, the trailer map's life, and the failure replies.
"""

from __future__ import annotations

import asyncio

from edgenode.http.messages import CIMultiDict, RawRequest, Response
from edgenode.pipeline.exchange import Exchange
from edgenode.wasm.abi import REQUEST_TRAILERS, RESPONSE_TRAILERS
from edgenode.wasm.bodies import ChunkReader
from edgenode.wasm.contexts import StreamContext, TrailerFields
from edgenode.wasm.holds import Hold, headers_hold
from edgenode.wasm.recovery import ReloadBackoff
from edgenode.wasm.replies import failure_response, text_response
from edgenode.wasm.vm import Vm

__all__ = ["Stream", "StreamSettings", "PauseTimeout"]


class PauseTimeout(Exception):
    """A held stream was not released within the stage's pause_timeout."""


def _expire(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_exception(PauseTimeout())


class StreamSettings:
    """What a stage's streams share (its options, built once per configuration)."""

    __slots__ = ("fail_open", "server_timing", "pause_timeout", "allow_stop_iteration", "backoff")

    def __init__(self, fail_open: bool = False, server_timing: bool = True, pause_timeout: float = 30.0,
                 allow_stop_iteration: bool = False, backoff: ReloadBackoff | None = None) -> None:
        self.fail_open = fail_open
        self.server_timing = server_timing
        self.pause_timeout = pause_timeout
        self.allow_stop_iteration = allow_stop_iteration
        #: the shared VM's reload back-off, reset when one of its streams completes
        self.backoff = backoff


class Stream:
    """The primitives of both directions of one filter's stream, a mixin of the driver
    (stream.StreamDriver), whose state is native.StreamCore's: the VM, the Exchange, the
    stage's settings, and the stream's context (``ctx``: the driver itself)."""

    __slots__ = ()
    vm: Vm
    ex: Exchange
    cfg: StreamSettings
    ctx: StreamContext

    @property
    def name(self) -> str:
        return self.vm.plugin.name

    @property
    def fail_open(self) -> bool:
        return self.cfg.fail_open

    @property
    def pause_timeout(self) -> float:
        return self.cfg.pause_timeout

    @property
    def v010(self) -> bool:
        return self.vm.v010

    # --- callbacks and holds ------------------------------------------------------
    def call(self, name: str, phase: str, *args: int) -> int:
        ctx = self.ctx
        ctx.continued = False
        return self.vm.invoke(name, ctx, phase, self.ex, (ctx.id, *args))

    def holds(self, action: int) -> bool:
        """Whether a callback's result holds the stream (any non-zero action, unless the
        callback also continued, replied locally or closed)."""
        ctx = self.ctx
        return not (action == 0 or ctx.continued or ctx.local_response is not None or ctx.closed)

    def hold_headers(self, direction: str, action: int) -> bool:
        """After a headers hook: start the hold its result asks for; True if held."""
        if not self.holds(action):
            return False
        kind = headers_hold(action, self.cfg.allow_stop_iteration)
        if kind is Hold.NONE:
            return False
        self.hold(direction, kind)
        return True

    def hold(self, direction: str, kind: Hold) -> None:
        """Start holding ``direction``; continue_stream from now on completes ``ctx.resume``."""
        ctx = self.ctx
        ctx.paused = direction
        ctx.hold_kind = kind
        ctx.resume = asyncio.get_running_loop().create_future()

    def unhold(self) -> None:
        ctx = self.ctx
        ctx.paused = None
        ctx.hold_kind = Hold.NONE
        ctx.resume = None

    def released_by(self, action: int) -> bool:
        """After a body callback during a hold: whether the hold is over.

        continue_stream (or a local reply / close) ends any hold; a body callback
        returning Continue ends a plain StopIteration hold.  A filter failure or pause
        timeout delivered meanwhile is raised here.
        """
        ctx = self.ctx
        assert ctx.resume is not None
        if ctx.resume.done():
            ctx.resume.result()
            return True
        return action == 0 and ctx.hold_kind is Hold.ITERATION

    async def wait(self) -> None:
        """Wait until the hold ends (continue, local reply, close) or times out."""
        ctx = self.ctx
        fut = ctx.resume
        assert fut is not None
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
            self.unhold()

    async def wait_or_open(self) -> None:
        """``wait``, except that under ``fail_open`` a pause timeout counts as a continue."""
        try:
            await self.wait()
        except PauseTimeout:
            if not self.fail_open:
                raise
            self.log_timeout_open()

    async def gather_held(self, reader: ChunkReader, held: bytearray, limit: int) -> bool | None:
        """While a StopAll* hold lasts, read the body into ``held`` without callbacks.

        Returns whether the body ended, once the hold is over; None if ``held`` passed
        ``limit`` under StopAllIterationAndBuffer.  Under ...Watermark reading stops at
        ``limit`` until the resume.  A failure is raised as ``wait`` raises it; a pause
        timeout under ``fail_open`` counts as a resume.
        """
        ctx = self.ctx
        fut = ctx.resume
        assert fut is not None
        watermark = ctx.hold_kind is Hold.ALL_WATERMARK
        eos = reader.finished
        timer = asyncio.get_running_loop().call_later(self.pause_timeout, _expire, fut)
        try:
            while not fut.done():
                if eos or (watermark and len(held) >= limit):
                    await asyncio.wait((fut,))
                    break
                nxt = reader.start()
                await asyncio.wait((nxt, fut), return_when=asyncio.FIRST_COMPLETED)
                if nxt.done():
                    chunk, eos = await reader.next()
                    held += chunk
                    if not watermark and len(held) > limit:
                        return None
            try:
                fut.result()
            except PauseTimeout:
                if not self.fail_open:
                    raise
                self.log_timeout_open()
        finally:
            timer.cancel()
            self.unhold()
        return eos

    def ended(self) -> bool:
        ctx = self.ctx
        return ctx.local_response is not None or ctx.closed

    def end_result(self, action: int, direction: str) -> bool:
        """After the stream's last callback: release a hold or start one; True if released."""
        ctx = self.ctx
        if ctx.paused is not None:
            if self.released_by(action):
                self.unhold()
                return True
            return False
        if self.holds(action):
            self.hold(direction, Hold.END)
        return False

    # --- trailers -------------------------------------------------------------------
    def end_of_body(self, response: bool, fields: CIMultiDict[str] | None) -> TrailerFields | None:
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
            self.ctx.response_trailers = trailers
        else:
            self.ctx.request_trailers = trailers
        return None

    def call_trailers(self, response: bool, trailers: TrailerFields) -> int:
        """``proxy_on_{request,response}_trailers(ctx, n)`` with map 1/3 writable."""
        ctx = self.ctx
        trailers.writable = True
        if response:
            ctx.response_trailers = trailers
            hook, phase = RESPONSE_TRAILERS, "response_trailers"
        else:
            ctx.request_trailers = trailers
            hook, phase = REQUEST_TRAILERS, "request_trailers"
        self.vm.bind_hook(hook)
        return self.call(hook, phase, len(trailers))

    # --- endings ----------------------------------------------------------------------
    def fail(self) -> Response:
        self.vm.plugin.metrics.failed_streams += 1
        self.vm.finish_stream(self.ctx)
        return failure_response(self.name)

    def timed_out(self) -> Response:
        self.vm.plugin.metrics.failed_streams += 1
        self.vm.plugin.logger.warning("stream %d held longer than pause_timeout (%.3g s)",
                                      self.ex.id, self.pause_timeout, extra={"filter": self.name})
        self.vm.finish_stream(self.ctx)
        return text_response(504, f"filter {self.name} did not resume the stream\n")

    def log_timeout_open(self) -> None:
        self.vm.plugin.logger.warning("stream %d held longer than pause_timeout (%.3g s); "
                                      "continuing (fail_open)", self.ex.id, self.pause_timeout,
                                      extra={"filter": self.name})

    def timed(self, response: Response) -> Response:
        """Add this filter's Server-Timing entry when the client asked for timings."""
        ex = self.ex
        if not self.cfg.server_timing:
            return response
        req = ex.request  # a RawRequest's field read from its parsed bytes, its fields not made
        if ex.server_timing or (req.field(b"x-edgenode-timing") == b"1" if type(req) is RawRequest
                                else req.headers.get("x-edgenode-timing") == "1"):
            self.add_timing(response)
        return response

    def add_timing(self, response: Response) -> Response:
        """Add this filter's Server-Timing entry (the caller found it asked for: the native
        step reads the request's parsed bytes, not its fields, for that)."""
        ex = self.ex
        name = self.name
        total = sum(s for (n, _), s in ex.timings.items() if n == name)
        response.headers.add("Server-Timing", f"wasm-{name};dur={total * 1000:.3f}")
        return response

