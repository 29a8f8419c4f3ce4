"""Per-request state that every stage can read and annotate.

One ``Exchange`` is created by the front end for each request and handed down the
chain; stages record what they decided (chosen origin, cache status, filter timings)
so that the access log, metrics and Proxy-Wasm properties read one source of truth.
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Any, Callable, Protocol

from multidict import getversion

from edgenode.http.messages import Request, Response

if TYPE_CHECKING:
    from edgenode.frontend.request_body import RequestBody

#: ``Exchange.id``'s counter (the front end's C maker takes it too: ``frontend/_fasthit.c``)
exchange_ids = itertools.count(1)

#: ``Exchange.plain`` of a request whose parsed pairs the front end found plain (a
#: ``messages.RawRequest``)
RAW_PLAIN = -2

#: The cache key the front end's fast path made for a request it declined (the usual
#: miss: no entry for it), handed to the cache stage's ``handle`` so it is not built
#: again: ``(asked, stage, (url, key))``, left here by ``CacheStage.fast_hit`` (``asked``:
#: the ``fields`` callable the front end asked with, which names the request) and taken
#: by the front end for that request's exchange (``declined_key``: ``Exchange.cache_key``).
#: One cell: the front end asks and makes the exchange back to back in the parser
#: callback, and a note left for another ``asked`` is never taken.
DECLINED: list[tuple[object, object, tuple[str, str]] | None] = [None]


def declined_key(asked: object) -> tuple[object, object, tuple[str, str]] | None:
    """The note ``DECLINED`` holds for the request the fast path was asked about with
    ``asked``, taken (the cell emptied), or None: the fast path left none for it.  The
    front end's C maker (``_fasthit.plain_exchange``) does the same; this is its reference."""
    note = DECLINED[0] if len(DECLINED) == 1 else None  # (a cell emptied by hand: nothing)
    if note is None or note[0] is not asked:
        return None
    DECLINED[0] = None
    return note


def fields_plain(ex: "Exchange", req: Request) -> bool:
    """Whether ``req``'s fields are still the ones the front end found plain (none of
    ``http.headers.NOT_PLAIN``): ``ex.plain`` is their multidict version then, or
    ``RAW_PLAIN`` for a ``RawRequest`` whose fields were made since at the version it
    kept (``req.raw[0]``).  A filter or stage that edits them moves the version, so the
    request's checks run again (the cache's ``handle`` and ``hit_response``)."""
    plain = ex.plain
    if plain == RAW_PLAIN and req.raw is not None:
        plain = req.raw[0]
    return plain == getversion(req.headers)


class Closable(Protocol):
    def close(self) -> None:
        """Release the resource now; a no-op when it is already finished or closed."""
        ...


class Exchange:
    __slots__ = (
        "request", "client", "local", "id", "start", "start_wall", "origin",
        "cache_status", "x_cache", "origin_time", "timings", "props", "response_bytes",
        "status", "server_timing", "interim", "_open", "target", "request_id", "wasm_maps",
        "plain", "parsed", "keep_alive", "reader", "error", "cache_key",
    )

    def __init__(
        self,
        request: Request,
        client: tuple[str, int] = ("127.0.0.1", 0),
        local: tuple[str, int] = ("127.0.0.1", 0),
        keep_alive: bool = False,
        reader: RequestBody | None = None,
    ) -> None:
        self.request = request
        #: the request target as the client sent it (stages may rewrite the request's)
        self.target = request.target
        #: the request's X-Request-Id (set by the front end; "" for internal requests)
        self.request_id = ""
        self.client = client
        self.local = local
        self.id = next(exchange_ids)
        self.start = time.perf_counter()
        self.start_wall = time.time()
        #: name of the origin the request goes to (set by routing; None = default)
        self.origin: str | None = None
        #: RFC 9211 Cache-Status value for this node, e.g. 'edgenode; hit'
        self.cache_status: str = ""
        #: short form for X-Cache and metrics labels: HIT, MISS, STALE, BYPASS, ...
        self.x_cache: str = ""
        #: seconds spent waiting for the origin (first byte), None when not contacted
        self.origin_time: float | None = None
        #: (filter name, phase) -> seconds, summed over the callbacks of that phase
        self.timings: dict[tuple[str, str], float] = {}
        #: free-form properties set by stages and filters (Proxy-Wasm set_property)
        self.props: dict[str, Any] = {}
        #: bytes of response body sent to the client (filled by the front end)
        self.response_bytes = 0
        self.status = 0
        #: whether the client asked for a Server-Timing header
        self.server_timing = False
        #: resources bound to this request (origin bodies), released when it ends
        self._open: list[Closable] | None = None
        #: sends an interim (1xx) response to the client ahead of the final one; set by
        #: the front end when the client can take one (HTTP/1.1), called by the Upstream
        self.interim: Callable[[Response], None] | None = None
        #: the Proxy-Wasm filters' serialised header maps [request, response], shared by
        #: every filter of the stream until one changes them (wasm/contexts.py)
        self.wasm_maps: list[Any] | None = None
        #: the request's header multidict version when the front end found none of
        #: ``http.headers.NOT_PLAIN`` in it (-1: not checked; ``RAW_PLAIN``: a
        #: ``RawRequest``'s parsed pairs, whose multidict's version is ``request.raw[0]``
        #: once made); while it is unchanged, a stage need not look again
        #: (``CacheStage.hit_response``)
        self.plain = -1
        #: a ``RawRequest``'s target and Host as the bytes the front end parsed (None:
        #: not one), the cache's kept answers' key (``CacheStage.hit_response``)
        self.parsed: tuple[bytes, bytes] | None = None
        #: the front end's, for a client's request (one object per request, as it waits
        #: for its turn on the connection and runs): whether the connection may stay open
        #: after the answer (the client's wish), the request body as read from the client
        #: (None: it has none; stages may replace ``request.body``), and the protocol
        #: error answered in place of running the chain
        self.keep_alive = keep_alive
        self.reader = reader
        self.error: Response | None = None
        #: the note of the cache key the front end's fast path made for this request before
        #: declining it (``DECLINED``), or None; the cache stage that made it takes the key
        #: while the request's scheme, target and fields are the ones it was made from
        self.cache_key: tuple[object, object, tuple[str, str]] | None = None

    def add_timing(self, name: str, phase: str, seconds: float) -> None:
        key = (name, phase)
        self.timings[key] = self.timings.get(key, 0.0) + seconds

    def hold(self, resource: Closable) -> None:
        """Tie ``resource`` (an origin response body) to this request's lifetime.

        Whatever a stage does with the body (wrap it, buffer it, drop it for a reply of
        its own) and however the client leaves, ``release`` closes it when the request
        ends, so its origin connection goes back to the pool or is closed.
        """
        if self._open is None:
            self._open = [resource]
        else:
            self._open.append(resource)

    def release(self) -> None:
        """The request is over (answered, aborted or failed): close what it still holds."""
        held = self._open
        if held is not None:
            self._open = None
            for resource in held:
                resource.close()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


class ClientExchange(Exchange):
    """An ``Exchange`` the front end makes per client request (``client_exchange``): the
    same slots, methods and meaning, made without a Python ``__init__``."""

    __slots__ = ()
    __init__ = object.__init__  # type: ignore[assignment]


def client_exchange(request: Request, client: tuple[str, int], local: tuple[str, int],
                    keep_alive: bool, reader: RequestBody | None, request_id: str,
                    interim: Callable[[Response], None] | None) -> Exchange:
    """The exchange of a client's request, its slots stored here (meanings: ``Exchange``).

    CPython 3.11 runs a class's Python ``__init__`` in an interpreter invocation of its
    own (``type_call`` -> ``slot_tp_init``); with ``object.__init__`` the class call stays
    in C and this function's frame runs in its caller's (the front end's, once per
    request).  It stores every slot ``Exchange.__init__`` does, with the front end's
    request id and interim sender; ``tests/pipeline/test_client_exchange.py`` holds the
    two equal, slot by slot.  The front end's C maker of a filtered plain request
    (``frontend/_fasthit.c`` ``filtered_exchange``) stores the same slots: a slot added
    here and not there makes its ``bind_makers`` refuse, and the front end keeps this maker.
    """
    ex = ClientExchange()
    ex.request = request
    ex.target = request.target
    ex.request_id = request_id
    ex.client = client
    ex.local = local
    ex.id = next(exchange_ids)
    ex.start = time.perf_counter()
    ex.start_wall = time.time()
    ex.origin = None
    ex.cache_status = ""
    ex.x_cache = ""
    ex.origin_time = None
    ex.timings = {}
    ex.props = {}
    ex.response_bytes = 0
    ex.status = 0
    ex.server_timing = False
    ex._open = None
    ex.interim = interim
    ex.wasm_maps = None
    ex.plain = -1
    ex.parsed = None
    ex.keep_alive = keep_alive
    ex.reader = reader
    ex.error = None
    ex.cache_key = None
    return ex
