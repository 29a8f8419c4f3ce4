"""What a client connection shares with the front end that accepted it: the handler, the
fast path, the loop iteration's batch, request ids and the set of open connections.
The connection's modules depend on this state, not on the listening server
(``server.py``), which builds on it."""

from __future__ import annotations

import asyncio
from typing import Callable, Protocol

from multidict import CIMultiDict

from edgenode.config import ServerConfig
from edgenode.frontend.batch import Batch
from edgenode.http.messages import Prebuilt, Response
from edgenode.http.request_id import RequestIds
from edgenode.pipeline.chain import Outcome
from edgenode.pipeline.exchange import Exchange

__all__ = ["FastPath", "FrontEndState", "OnComplete", "OpenConnection", "RequestHandler"]

OnComplete = Callable[[Exchange, Response], None]
#: what the front end runs per request: the response, or an awaitable of it
RequestHandler = Callable[[Exchange], Outcome]


class FastPath(Protocol):
    """Answers plain GET/HEAD requests synchronously when it can (see the module doc)."""

    #: the chain starts with filters (Proxy-Wasm streams), then the producer: a plain
    #: request is not looked up but marked plain for its chain (``FastHits._fast``)
    filtered: bool

    def answer(self, target: bytes, host: bytes, fields: Callable[[], CIMultiDict[str]],
               get: bool, start: float) -> Prebuilt | None:
        """The answer, already counted as written, or None to send the request down the
        general path.  ``target`` and ``host``: the origin-form target and the Host value
        as parsed (latin-1 text); ``get``: its body is sent (a GET on an open connection);
        ``start``: ``perf_counter()`` when the head was parsed (the metrics' duration, what
        ``on_complete`` learns from the exchange on the general path).

        ``fields()`` builds the request's header multidict (only call it when needed);
        the object names the request too (the front end passes a new one per head).
        Declining must leave no trace but one: a producer that made the request's cache key
        before declining may leave it in ``pipeline.exchange.DECLINED`` under ``fields``,
        and the front end hands it to the request's exchange (``Exchange.cache_key``).
        """
        ...


class OpenConnection(Protocol):
    """What shutting the front end down asks of each open connection."""

    def start_shutdown(self) -> None: ...

    def abort(self) -> None: ...


class FrontEndState:
    """The front end's state its connections read on every request."""

    def __init__(self, handler: RequestHandler, cfg: ServerConfig,
                 on_complete: OnComplete | None = None,
                 fast_path: FastPath | None = None) -> None:
        self.handler = handler
        self.cfg = cfg
        self.on_complete = on_complete
        #: answers plain GET/HEAD requests without the handler when it can (cache hits)
        self.fast_path = fast_path
        self.fast_memo: dict[Prebuilt, bytes | None] = {}
        self.request_ids = RequestIds()
        #: requests whose synchronous steps run in this loop iteration's batch
        self.batch = Batch()
        #: plain requests behind filters the fast path marked and handed to the batch
        #: itself (``FastHits._fast``: not through ``Dispatcher._start``)
        self.filtered_started = 0
        self.connections: set[OpenConnection] = set()
        self._all_gone: asyncio.Future[None] | None = None
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]

    def connection_gone(self, conn: OpenConnection) -> None:
        self.connections.discard(conn)
        if not self.connections and self._all_gone is not None and not self._all_gone.done():
            self._all_gone.set_result(None)
