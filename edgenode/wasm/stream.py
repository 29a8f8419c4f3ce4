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
coroutine per phase.  The driver is the stream's context too (``native.StreamCore``):
``begin``/``enter`` and ``around``/``in_memory`` are native, one call into the host core
per side of the usual stream, and go on in the methods below (``_opened``,
``_responded``, ...) only where a hold, a body, a local reply or a failure needs the
event loop or Python objects.
"""

from __future__ import annotations

from enum import Enum
from typing import Awaitable

from edgenode.http.messages import FROM_BODY, Response
from edgenode.pipeline.chain import Next, Outcome, settle
from edgenode.wasm.contexts import StreamContext
from edgenode.wasm.errors import GuestTrap
from edgenode.wasm.native import stream_setup
from edgenode.wasm.replies import StreamAborted, failure_response, reset_response
from edgenode.wasm.request_phase import request_rest
from edgenode.wasm.response_phase import in_memory_slow, respond_raised, responded, response_fast, response_phase
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


class StreamDriver(StreamContext, Stream):
    """Runs one stream through one filter: request hooks, ``next``, response hooks.

    ``StreamDriver(vm, exchange, settings)``.  ``through(rest)`` is the filter's step in
    the chain (pipeline/chain.py): made of synchronous steps a caller can also use
    directly (docs/architecture.md): ``begin()`` (native: registers the context, then
    context create and request headers in one call) -> ``Step`` or a final
    ``Response``; on ``ASYNC`` ``await finish_request()``; then ``respond(response)``
    -> the response, or None: ``await respond_async(response)``.  ``enter``/``around``
    (native) are the same steps as the chain's ``StreamSteps``.  Nothing here pauses
    unless a filter holds the stream or a body callback must see a streamed body.
    """

    __slots__ = ()

    # --- the request side after begin()'s native call --------------------------------
    def _begin_slow(self, nheaders: int, body: bool) -> Step | Response:
        """``begin`` on a failed or closed VM, or under developer tools' observer."""
        try:
            action = self.vm.start_stream(self, nheaders, not body)
        except FilterFailure:
            return self._request_failed()
        except BaseException:
            self.vm.finish_stream(self)
            raise
        return self._opened(action, body)

    def _opened(self, action: int, body: bool) -> Step | Response:
        """After the request headers callback: a hold, a local reply or a close."""
        try:
            if action and self.local_response is None and not self.closed and self.hold_headers("request", action):
                return ASYNC
        except BaseException:
            self.vm.finish_stream(self)
            raise
        if self.local_response is not None or self.closed:
            return self._after_request()
        self.request_headers_open = False
        return ASYNC if body and self.vm.request_body_hooks else NEXT

    def _open_raised(self, exc: BaseException) -> Step | Response:
        """begin()'s native call raised ``exc``: a trap fails the filter; else the stream
        ends and ``exc`` goes on."""
        if isinstance(exc, GuestTrap):
            try:
                self.vm.trapped("", exc)
            except FilterFailure:
                return self._request_failed()
        self.vm.finish_stream(self)
        raise exc

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
            self.request_headers_open = False
        except BaseException:  # the client went away mid-body, or cancellation
            self.vm.finish_stream(self)
            raise
        return self._after_request()

    # --- the response side --------------------------------------------------------------
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

    def _in_memory_slow(self, response: Response, body: bytes) -> Response | None:
        return in_memory_slow(self, response, body)

    def _responded(self, response: Response, body: bytes, action: int, stage: int,
                   buffer: bytearray | bytes | None) -> Response | None:
        return responded(self, response, body, action, stage, buffer)

    def _respond_raised(self, response: Response, body: bytes, exc: BaseException) -> Response | None:
        return respond_raised(self, response, body, exc)

    def _around(self, outcome: Response) -> Outcome:
        """``around`` over a response the native step does not take (a streamed body,
        trailers)."""
        body = outcome.body
        if type(body) is bytes and outcome._trailers is FROM_BODY:
            out = self.in_memory(outcome, body)
        else:
            out = response_fast(self, outcome)
        if out is None:
            return self.respond_async(outcome)
        backoff = self.cfg.backoff
        if backoff is not None and backoff.failures:
            self._succeeded()
        return out

    # --- the chain's steps --------------------------------------------------------------
    def through(self, rest: Next) -> Outcome:
        """This filter around ``rest`` (the chain after it): the response when nothing
        paused, else an awaitable that continues the same steps."""
        return self._after_begin(self.begin(), rest)

    def abort(self) -> None:
        """The chain after this filter raised: end the stream (done, log, delete)."""
        self.vm.finish_stream(self)

    def _after_begin(self, step: Step | Response, rest: Next) -> Outcome:
        if step is ASYNC:
            return self._resume_request(rest)
        return self._after_request_step(step, rest)

    def _after_request_step(self, step: Step | Response, rest: Next) -> Outcome:
        if isinstance(step, Response):
            return step
        if step is BYPASS:
            return rest(self.ex)
        if step is REPLY:
            outcome: Outcome = self.local_response  # type: ignore[assignment]
        else:
            try:
                outcome = rest(self.ex)
            except BaseException:
                self.vm.finish_stream(self)
                raise
        return self.around(outcome)

    async def _resume_request(self, rest: Next) -> Response:
        step = await self.finish_request()
        return await settle(self._after_request_step(step, rest))

    async def _resume_response(self, pending: Awaitable[Response]) -> Response:
        try:
            response = await pending
        except BaseException:
            self.vm.finish_stream(self)
            raise
        out = self.respond(response)
        return out if out is not None else await self.respond_async(response)

    def _request_failed(self) -> Step | Response:
        if self.fail_open:
            self.vm.finish_stream(self)
            return BYPASS
        return self.fail()

    def _after_request(self) -> Step | Response:
        if self.paused is not None:  # ended by a local reply or close while held
            self.unhold()
        if self.closed:
            self.vm.finish_stream(self)
            return reset_response()
        return NEXT if self.local_response is None else REPLY

    def _succeeded(self) -> None:
        backoff = self.cfg.backoff
        if backoff is not None and backoff.failures and self.vm.failed is None:
            backoff.succeeded()  # a stream completed on the reloaded VM


stream_setup(NEXT, ASYNC, Response, FROM_BODY)  # what the native steps return and test
