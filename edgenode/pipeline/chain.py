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
"""

from __future__ import annotations

from typing import Awaitable, Callable, Protocol, Sequence, Union

from edgenode.http.messages import Response
from edgenode.pipeline.exchange import Exchange

__all__ = ["Chain", "Next", "Outcome", "settle"]

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


class Chain:
    """``stages`` (outermost first) linked around ``terminal``, once; call it per request."""

    __slots__ = ("first", "names")

    def __init__(self, stages: Sequence[object], terminal: Handler) -> None:
        step: Next = _Terminal(terminal)
        for stage in reversed(stages):
            handle = getattr(stage, "handle", None)
            step = _Link(handle, step) if handle is not None else _Wrapped(stage.wrap(step.settled))  # type: ignore[attr-defined]
        self.first = step
        self.names = tuple(getattr(s, "name", type(s).__name__) for s in stages)

    def __call__(self, exchange: Exchange) -> Outcome:
        return self.first(exchange)

    def settled(self, exchange: Exchange) -> Awaitable[Response]:
        """The chain as an async handler (``pipeline.stage.Handler``)."""
        return self.first.settled(exchange)
