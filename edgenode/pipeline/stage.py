"""The stage contract: the request path is a chain of stages built once at start-up.

A stage sits in front of the rest of the chain (the onion model of Starlette/aiohttp
middleware): it may answer on its own (cache hit, local reply), change the request on
its way to the origin, and change the response on its way back.  Request work therefore
runs in chain order and response work in reverse order, as Envoy runs HTTP filters; a
stage placed after the cache only runs on cache misses.

A stage may have a step, ``handle(exchange, rest: Next) -> Outcome``, synchronous when
nothing waits (pipeline/chain.py); a stage without one is run through ``wrap``.  ``wrap(next) -> Handler`` is the same stage as a coroutine
function around an async handler; ``build_chain`` composes stages into one.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Protocol, Sequence

from edgenode.http.messages import Response
from edgenode.pipeline.chain import Chain, Next, Outcome
from edgenode.pipeline.exchange import Exchange

__all__ = ["Handler", "Stage", "build_chain", "Next", "Outcome"]

Handler = Callable[[Exchange], Awaitable[Response]]


class Stage(Protocol):
    name: str

    def wrap(self, next_handler: Handler) -> Handler:
        """Return the handler that runs this stage and then ``next_handler``."""
        ...

    async def close(self) -> None:
        """Release resources at shutdown (VMs, background tasks)."""
        ...


def build_chain(stages: Sequence[Stage], terminal: Handler) -> Handler:
    """Compose ``stages`` (outermost first) around ``terminal`` (the origin call)."""
    return Chain(stages, terminal).settled


def wrap_stage(stage: Stage, next_handler: Handler) -> Handler:
    """``stage.wrap`` for a stage that has a step (``handle``)."""
    return Chain([stage], next_handler).settled
