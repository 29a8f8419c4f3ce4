"""One filter's callbacks for one HTTP stream, in the onion model of the Stage contract.

Request hooks run before ``next`` (chain order, request_phase.py), response hooks after
it (reverse order, response_phase.py).  Holds follow Envoy as proxy-wasm-cpp-host drives
it (holds.py); a hold ends with ``proxy_continue_stream``, a local reply,
``proxy_close_stream`` or the stage's ``pause_timeout``.

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

from enum import Enum
from typing import Awaitable

from edgenode.http.messages import FROM_BODY, Response
from edgenode.pipeline.chain import Next, Outcome, settle
from edgenode.wasm.replies import StreamAborted, failure_response, reset_response
from edgenode.wasm.request_phase import request_rest
from edgenode.wasm.response_phase import in_memory, response_fast, response_phase
from edgenode.wasm.streamstate import PauseTimeout, Stream, StreamSettings
from edgenode.wasm.vm import FilterFailure

__all__ = ["StreamDriver", "Step", "StreamSettings", "StreamAborted", "PauseTimeout", "failure_response"]


class Step(Enum):
    """What the chain does after a filter's request side (``StreamDriver.begin``)."""

    #: call the next stage, then this filter's response side (``respond``)
    NEXT = "next"
    #: the request side needs the event loop: ``await finish_request()``
    ASYNC = "async"
    #: the filter answered (``ctx.local_response``): skip the next stage, run the
    #: response side over the reply (Envoy: the sender's own response hooks see it)
    REPLY = "reply"
    #: the filter failed under ``fail_open``: call the next stage without it
    BYPASS = "bypass"


#: the members as module globals for the per-request steps below (on Python 3.11 each
#: ``Step.X`` is a Python-level descriptor call, ~0.3 µs)
NEXT, ASYNC, REPLY, BYPASS = Step.NEXT, Step.ASYNC, Step.REPLY, Step.BYPASS


class StreamDriver(Stream):
    """Runs one stream through one filter: request hooks, ``next``, response hooks.

    ``through(rest)`` is the filter's step in the chain (pipeline/chain.py): made of
    synchronous steps a caller can also use directly (docs/architecture.md):
    ``begin()`` -> ``Step`` or a final ``Response``; on ``ASYNC`` ``await
    finish_request()``; then ``respond(response)`` -> the response, or None: ``await
    respond_async(response)``.  Nothing here pauses unless a filter holds the stream or
    a body callback must see a streamed body.
    """

    __slots__ = ()

    def begin(self) -> Step | Response:
        """Create the stream's context and run its request headers callback (one call into
        the host core); ``Step.ASYNC`` when a hold or a body the hooks must see needs the
        event loop (``finish_request``)."""
        vm, req = self.vm, self.ex.request
        ctx = self.ctx = vm.new_stream(self.ex)
        body = req.body
        body = not isinstance(body, (bytes, bytearray)) or len(body) > 0  # bodies.has_body, inlined
        headers = req.headers
        try:
            action = vm.start_stream(ctx, len(headers) + 4 - ("host" in headers), not body)
            if action and ctx.local_response is None and not ctx.closed and self.hold_headers("request", action):
                return ASYNC
        except FilterFailure:
            return self._request_failed()
        except BaseException:
            vm.finish_stream(ctx)
            raise
        if ctx.local_response is not None or ctx.closed:
            return self._after_request()
        ctx.request_headers_open = False
        return ASYNC if body and vm.request_body_hooks else NEXT

    async def finish_request(self) -> Step | Response:
        """The request side that needs the event loop: a hold, a body the hooks must see."""
        try:
            await request_rest(self)
        except FilterFailure:
            return self._request_failed()
        except PauseTimeout:
            if not self.fail_open:
                return self.timed_out()
            self.log_timeout_open()
            self.ctx.request_headers_open = False
        except BaseException:  # the client went away mid-body, or cancellation
            self.vm.finish_stream(self.ctx)
            raise
        return self._after_request()

    def respond(self, response: Response) -> Response | None:
        """The response side when nothing can wait (None: ``await respond_async``)."""
        out = response_fast(self, response)
        if out is not None and self.cfg.backoff is not None and self.cfg.backoff.failures:
            self._succeeded()
        return out

    async def respond_async(self, response: Response) -> Response:
        out = await response_phase(self, response)
        self._succeeded()
        return out

    def through(self, rest: Next) -> Outcome:
        """This filter around ``rest`` (the chain after it): the response when nothing
        paused, else an awaitable that continues the same steps."""
        return self._after_begin(self.begin(), rest)

    def enter(self, rest: Next) -> Outcome | None:
        """The request side (pipeline/chain.py ``StreamSteps``): None when the stream
        continues (the caller runs ``rest``, then ``around``), else this filter's
        outcome, going on with ``rest`` as ``through`` does."""
        step = self.begin()
        return None if step is NEXT else self._after_begin(step, rest)

    def abort(self) -> None:
        """The chain after this filter raised: end the stream (done, log, delete)."""
        self.vm.finish_stream(self.ctx)

    def _after_begin(self, step: Step | Response, rest: Next) -> Outcome:
        if step is ASYNC:
            return self._resume_request(rest)
        return self._after_request_step(step, rest)

    def around(self, outcome: Outcome) -> Outcome:
        """The response side over what the chain after this filter answered (``begin``
        returned ``Step.NEXT``): a response, or an awaitable continuing the same steps."""
        if not isinstance(outcome, Response):
            return self._resume_response(outcome)
        body = outcome.body  # ``respond``, inlined: the common case (a hit) straight to its step
        if type(body) is bytes and outcome._trailers is FROM_BODY:
            out = in_memory(self, outcome, body)
        else:
            out = response_fast(self, outcome)
        if out is None:
            return self.respond_async(outcome)
        backoff = self.cfg.backoff
        if backoff is not None and backoff.failures:
            self._succeeded()
        return out

    def _after_request_step(self, step: Step | Response, rest: Next) -> Outcome:
        if isinstance(step, Response):
            return step
        if step is BYPASS:
            return rest(self.ex)
        if step is REPLY:
            outcome: Outcome = self.ctx.local_response  # type: ignore[assignment]
        else:
            try:
                outcome = rest(self.ex)
            except BaseException:
                self.vm.finish_stream(self.ctx)
                raise
        return self.around(outcome)

    async def _resume_request(self, rest: Next) -> Response:
        step = await self.finish_request()
        return await settle(self._after_request_step(step, rest))

    async def _resume_response(self, pending: Awaitable[Response]) -> Response:
        try:
            response = await pending
        except BaseException:
            self.vm.finish_stream(self.ctx)
            raise
        out = self.respond(response)
        return out if out is not None else await self.respond_async(response)

    def _request_failed(self) -> Step | Response:
        if self.fail_open:
            self.vm.finish_stream(self.ctx)
            return BYPASS
        return self.fail()

    def _after_request(self) -> Step | Response:
        ctx = self.ctx
        if ctx.paused is not None:  # ended by a local reply or close while held
            self.unhold()
        if ctx.closed:
            self.vm.finish_stream(ctx)
            return reset_response()
        return NEXT if ctx.local_response is None else REPLY

    def _succeeded(self) -> None:
        backoff = self.cfg.backoff
        if backoff is not None and backoff.failures and self.vm.failed is None:
            backoff.succeeded()  # a stream completed on the reloaded VM
