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

from typing import Awaitable, Callable

from edgenode.http.messages import Response
from edgenode.pipeline.exchange import Exchange
from edgenode.wasm.replies import StreamAborted, failure_response, reset_response
from edgenode.wasm.request_phase import request_headers, request_rest
from edgenode.wasm.response_phase import response_fast, response_phase
from edgenode.wasm.streamstate import PauseTimeout, Stream, StreamSettings
from edgenode.wasm.vm import FilterFailure

__all__ = ["StreamDriver", "StreamSettings", "StreamAborted", "PauseTimeout", "failure_response"]

Handler = Callable[[Exchange], Awaitable[Response]]


class StreamDriver(Stream):
    """Runs one stream through one filter: request hooks, ``next``, response hooks."""

    __slots__ = ()

    async def run(self, next_handler: Handler) -> Response:
        ex, vm = self.ex, self.vm
        ctx = self.ctx = vm.new_stream(ex)
        try:
            if request_headers(self):
                await request_rest(self)
        except FilterFailure:
            if self.fail_open:
                vm.finish_stream(ctx)
                return await next_handler(ex)
            return self.fail()
        except PauseTimeout:
            if not self.fail_open:
                return self.timed_out()
            self.log_timeout_open()
            ctx.request_headers_open = False
        except BaseException:  # the client went away mid-body, or cancellation
            vm.finish_stream(ctx)
            raise
        if ctx.paused is not None:  # ended by a local reply or close while held
            self.unhold()
        if ctx.closed:
            vm.finish_stream(ctx)
            return reset_response()
        if ctx.local_response is not None:
            response = ctx.local_response
        else:
            try:
                response = await next_handler(ex)
            except BaseException:
                vm.finish_stream(ctx)
                raise
        fast = response_fast(self, response)
        if fast is None:
            fast = await response_phase(self, response)
        backoff = self.cfg.backoff
        if backoff is not None and backoff.failures and vm.failed is None:
            backoff.succeeded()  # a stream completed on the reloaded VM
        return fast
