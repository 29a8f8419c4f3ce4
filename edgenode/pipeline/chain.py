"""The chain as data: stages linked once at start-up, run as synchronous steps.

A stage's step (``Stage.handle(exchange, rest)``) returns an ``Outcome``: the final
``Response`` when it could decide without waiting (a cache hit, a filter that did not
pause, a local reply), or an awaitable of it when something has to wait (an origin
fetch, a held stream, a request body).  ``rest`` is the chain after the stage: calling
it runs the next step the same way; ``rest.settled`` is the same as a coroutine
function, for stage code that awaits.  So a request whose every stage before the cache
finishes synchronously is answered without a coroutine or task, and when something does
pause, the same steps continue in a coroutine from where they stopped.

Stages that only implement the older ``wrap(next) -> Handler`` contract are wrapped
once here and always take the awaitable route.

The chain's leading stages that open a stream around the rest (``Opens``: the
Proxy-Wasm filters in front of the cache) are run by one flat step (``_Streams``;
``_Stream`` when there is one) instead of one nested step each: every stream's request
side in chain order, the rest of the chain, the response sides in reverse order -- the
same hooks in the same order as the nested steps.  A request side that does not simply continue (a hold, a body to
read, a local reply, a failure) goes on with the chain after it, as the nested step
would; the stage right after them may answer a request by itself first
(``hit_response``: a cache stage's fresh plain hit, from its kept answer).
"""

from __future__ import annotations

from typing import Awaitable, Callable, Protocol, Sequence, Union

from edgenode.http.messages import Response
from edgenode.pipeline.exchange import Exchange

__all__ = ["Chain", "Next", "Outcome", "Opens", "StreamSteps", "settle"]

Outcome = Union[Response, Awaitable[Response]]
Handler = Callable[[Exchange], Awaitable[Response]]


class Next(Protocol):
    """The rest of the chain after a stage."""

    def __call__(self, exchange: Exchange) -> Outcome:
        """Run the rest: a ``Response`` when it finished synchronously, else an awaitable."""
        ...

    def settled(self, exchange: Exchange) -> Awaitable[Response]:
        """Run the rest, always as an awaitable (for code that awaits it)."""
        ...


class StreamSteps(Protocol):
    """One stage's part in one request, split around the rest of the chain."""

    def enter(self, rest: Next) -> Outcome | None:
        """The request side: None when it continues (the caller runs ``rest``, then
        ``around``); else the stage's whole outcome, going on with ``rest`` itself."""
        ...

    def around(self, outcome: Outcome) -> Outcome:
        """The response side over what ``rest`` answered."""
        ...

    def abort(self) -> None:
        """``rest`` (or an inner response side) raised: end the stream."""
        ...


class Opens(Protocol):
    """A stage whose step is a ``StreamSteps`` around the rest (a Proxy-Wasm filter)."""

    def open_stream(self, exchange: Exchange) -> StreamSteps | Response | None:
        """Its part in ``exchange``; None: it takes no part; a Response: its reply."""
        ...


async def settle(outcome: Outcome) -> Response:
    """The response of ``outcome``, awaited when it is not one already."""
    if isinstance(outcome, Response):
        return outcome
    return await outcome


class _Terminal:
    """The end of the chain: the origin call (an async handler)."""

    __slots__ = ("handler", "settled")

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.settled = handler

    def __call__(self, exchange: Exchange) -> Outcome:
        return self.handler(exchange)


class _Link:
    """A stage with a synchronous step, and the chain after it."""

    __slots__ = ("handle", "rest")

    def __init__(self, handle: Callable[[Exchange, Next], Outcome], rest: Next) -> None:
        self.handle = handle
        self.rest = rest

    def __call__(self, exchange: Exchange) -> Outcome:
        return self.handle(exchange, self.rest)

    async def settled(self, exchange: Exchange) -> Response:
        out = self.handle(exchange, self.rest)
        if isinstance(out, Response):
            return out
        return await out


class _Wrapped:
    """A stage with only the async ``wrap`` contract, wrapped once."""

    __slots__ = ("settled",)

    def __init__(self, handler: Handler) -> None:
        self.settled = handler

    def __call__(self, exchange: Exchange) -> Outcome:
        return self.settled(exchange)


class _Flat:
    """A flat step's awaited answer (``_Streams``, ``_Stream``)."""

    __slots__ = ()

    def __call__(self, exchange: Exchange) -> Outcome:
        raise NotImplementedError

    async def settled(self, exchange: Exchange) -> Response:
        out = self(exchange)
        if isinstance(out, Response):
            return out
        return await out


class _Streams(_Flat):
    """The chain's leading ``Opens`` stages as one step (see the module doc)."""

    __slots__ = ("stages", "rests", "after", "hit")

    def __init__(self, stages: Sequence[Opens], rests: Sequence[Next],
                 hit: Callable[[Exchange], Response | None] | None) -> None:
        self.stages = tuple(stages)
        #: the chain after each stage (what its nested step would call)
        self.rests = tuple(rests)
        self.after = rests[-1]
        self.hit = hit

    def __call__(self, exchange: Exchange) -> Outcome:
        entered: list[StreamSteps] = []  # the streams that continued
        outcome: Outcome | None = None
        try:
            rests = self.rests
            for i, stage in enumerate(self.stages):  # the request sides, in chain order
                steps = stage.open_stream(exchange)
                if steps is None:
                    continue
                if isinstance(steps, Response):
                    outcome = steps
                    break
                outcome = steps.enter(rests[i])
                if outcome is not None:
                    break
                entered.append(steps)
            else:  # every stream continued: the stage behind them, its answer first
                hit = self.hit
                if hit is not None:
                    outcome = hit(exchange)
                if outcome is None:
                    outcome = self.after(exchange)
        except BaseException:
            for steps in entered:
                steps.abort()
            raise
        k = len(entered)
        while k:  # the response sides, in reverse
            k -= 1
            try:
                outcome = entered[k].around(outcome)
            except BaseException:
                for steps in entered[:k]:
                    steps.abort()
                raise
        return outcome


class _Stream(_Flat):
    """``_Streams`` for the usual chain, one leading ``Opens`` stage: the same steps
    without the loops and the list of entered streams."""

    __slots__ = ("stage", "rest", "hit")

    def __init__(self, stage: Opens, rest: Next,
                 hit: Callable[[Exchange], Response | None] | None) -> None:
        self.stage = stage
        self.rest = rest
        self.hit = hit

    def __call__(self, exchange: Exchange) -> Outcome:
        steps = self.stage.open_stream(exchange)
        if steps is not None:
            if isinstance(steps, Response):
                return steps
            outcome = steps.enter(self.rest)
            if outcome is not None:
                return outcome
            try:
                hit = self.hit
                if hit is None or (outcome := hit(exchange)) is None:
                    outcome = self.rest(exchange)
            except BaseException:
                steps.abort()
                raise
            return steps.around(outcome)
        hit = self.hit
        if hit is None or (outcome := hit(exchange)) is None:
            outcome = self.rest(exchange)
        return outcome


class Chain:
    """``stages`` (outermost first) linked around ``terminal``, once; call it per request."""

    __slots__ = ("first", "settled", "names")

    def __init__(self, stages: Sequence[object], terminal: Handler) -> None:
        step: Next = _Terminal(terminal)
        rests: list[Next] = []
        for stage in reversed(stages):
            rests.append(step)
            handle = getattr(stage, "handle", None)
            step = _Link(handle, step) if handle is not None else _Wrapped(stage.wrap(step.settled))  # type: ignore[attr-defined]
        rests.reverse()
        n = 0
        while n < len(stages) and hasattr(stages[n], "open_stream"):
            n += 1
        if n:
            hit = getattr(stages[n], "hit_response", None) if n < len(stages) else None
            step = (_Stream(stages[0], rests[0], hit) if n == 1  # type: ignore[arg-type]
                    else _Streams(stages[:n], rests[:n], hit))  # type: ignore[arg-type]
        #: the first step as a bound method: CPython 3.11 runs a bound method's frame in
        #: the caller's interpreter loop, an object's ``__call__`` through ``slot_tp_call``
        #: in a new one (~0.65k instructions more per request)
        self.first: Callable[[Exchange], Outcome] = step.__call__
        #: the chain as an async handler (``pipeline.stage.Handler``)
        self.settled: Handler = step.settled
        self.names = tuple(getattr(s, "name", type(s).__name__) for s in stages)

    def __call__(self, exchange: Exchange) -> Outcome:
        return self.first(exchange)
