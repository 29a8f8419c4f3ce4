"""The stage contract: the request path is a chain of stages built once at start-up.

A stage wraps the handler after it (the onion model of Starlette/aiohttp middleware):
it may answer on its own (cache hit, local reply), change the request on its way to
the origin, and change the response on its way back.  Request work therefore runs in
chain order and response work in reverse order, as Envoy runs HTTP filters; a stage
placed after the cache only runs on cache misses.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Protocol, Sequence

from edgenode.http.messages import Response
from edgenode.pipeline.exchange import Exchange

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
    handler = terminal
    for stage in reversed(stages):
        handler = stage.wrap(handler)
    return handler
