"""HTTP request and response values shared by every stage of the node.

Bodies are either ``bytes`` (known, small, e.g. served from cache or built locally)
or an async iterator of chunks (streamed from the client or the origin), so a large
body never has to sit whole in memory.  Header names keep their case in the
multidict but compare case-insensitively.

Trailers (the fields after a chunked body) are only known once a streamed body has
ended, so they travel with the body: an iterator that can end with trailers has a
``trailers`` attribute, None until it is exhausted.  ``Request.trailers`` and
``Response.trailers`` read that attribute unless a stage set the message's trailers
explicitly (a ``bytes`` body can carry trailers only that way).  Nothing is allocated
for a message without trailers.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Union

from multidict import CIMultiDict, getversion

Body = Union[bytes, AsyncIterator[bytes]]

__all__ = ["Body", "Request", "RawRequest", "raw_request", "Response", "CIMultiDict", "read_body", "close_body", "trailers_of",
           "TrailerRelay", "Prebuilt", "PrebuiltResponse", "made_response"]


class _FromBody:
    """Marker: the message's trailers are whatever its body reports when it ends."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "FROM_BODY"


FROM_BODY: Any = _FromBody()


def trailers_of(body: Body) -> CIMultiDict[str] | None:
    """The trailers a finished streamed body ended with (None: none, or not ended yet)."""
    if type(body) is bytes:
        return None
    return getattr(body, "trailers", None)


class TrailerRelay:
    """A transformed body (``chunks``) that still reports the trailers of ``source``.

    A stage that wraps a body in its own generator (a tee, a filter) hands this on so
    the trailers read at the end of the origin's (or client's) stream are not lost.
    Setting ``trailers`` replaces what ``source`` reports.
    """

    __slots__ = ("_chunks", "_source", "_trailers")

    def __init__(self, chunks: AsyncIterator[bytes], source: Body) -> None:
        self._chunks = chunks
        self._source = source
        self._trailers: Any = FROM_BODY

    def __aiter__(self) -> TrailerRelay:
        return self

    def __anext__(self) -> Any:
        return self._chunks.__anext__()

    @property
    def trailers(self) -> CIMultiDict[str] | None:
        t = self._trailers
        return trailers_of(self._source) if t is FROM_BODY else t

    @trailers.setter
    def trailers(self, value: CIMultiDict[str] | None) -> None:
        self._trailers = value

    async def aclose(self) -> None:
        """Close the wrapping iterator, then ``source``.

        The wrapper's own cleanup cannot be relied on to close ``source``: an async
        generator closed before its first step runs no ``finally``, and one suspended in
        ``async for`` leaves the iterator it was reading open.  Closing an already
        finished or closed body is a no-op, so this is always safe.
        """
        close = getattr(self._chunks, "aclose", None)
        if close is not None:
            try:
                await close()
            finally:
                await close_body(self._source)
        else:
            await close_body(self._source)


class _Message:
    """What requests and responses share: a body and its trailer fields."""

    __slots__ = ("headers", "body", "_trailers")
    headers: CIMultiDict[str]
    body: Body
    _trailers: Any

    @property
    def trailers(self) -> CIMultiDict[str] | None:
        """Trailer fields: set explicitly, else the body's once it has been read to the end."""
        t = self._trailers
        return trailers_of(self.body) if t is FROM_BODY else t

    @trailers.setter
    def trailers(self, value: CIMultiDict[str] | None) -> None:
        self._trailers = value


class Request(_Message):
    """A request as received from a client (or built by a filter for a callout).

    ``raw``, when set, is ``(version, pairs)``: ``headers`` as the ``bytes`` (name, value)
    pairs the front end parsed them from, in order, valid while
    ``multidict.getversion(headers) == version``.  Forwarding a request no stage changed
    then writes the origin's head from those bytes (``proxy.forwarding.forward_head``)
    instead of re-encoding the multidict.
    """

    __slots__ = ("method", "target", "path", "query", "version", "scheme", "raw")

    def __init__(
        self,
        method: str,
        target: str,
        headers: CIMultiDict[str],
        body: Body = b"",
        version: str = "1.1",
        scheme: str = "http",
    ) -> None:
        self.method = method
        self.version = version
        self.headers = headers
        self.body = body
        self.scheme = scheme
        self._trailers: Any = FROM_BODY
        self.raw: tuple[int, list[tuple[bytes, bytes]]] | None = None
        self.target = target  # ``set_target``, inlined: every request makes one
        path, sep, query = target.partition("?")
        self.path = path
        self.query = query if sep else ""

    def set_target(self, target: str) -> None:
        """Replace the request target, keeping ``path`` and ``query`` in step."""
        self.target = target
        path, sep, query = target.partition("?")
        self.path = path
        self.query = query if sep else ""

    @property
    def host(self) -> str:
        return self.headers.get("host", "")

    def adopt_trailers(self, other: Request) -> Request:
        """Take ``other``'s trailers setting (explicit, or from the shared body); for copies."""
        self._trailers = other._trailers
        return self

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target}>"


#: the slot ``Request.headers`` is stored in (``RawRequest`` fills it on first use)
_HEADERS = _Message.headers


class RawRequest(Request):
    """A request whose fields multidict is made only when something reads ``headers``.

    A plain GET/HEAD behind filters (``frontend/fast_hits.py``) is mostly answered
    without anyone reading its fields as text: the filters' host core reads the parsed
    bytes (``raw``, ``(-1, pairs)`` until then) and the cache its Host.  The first read
    (or a replacement) of ``headers`` makes the multidict from ``raw``, exactly as the
    front end would have (Latin-1 text, in order), sets ``raw``'s version to it, and
    turns the object into a plain ``Request``: from then on no code can tell the two
    apart, and reading ``headers`` is a slot read again.
    """

    __slots__ = ()
    __init__ = object.__init__  # type: ignore[assignment]  # made by ``raw_request``

    @property  # type: ignore[override]
    def headers(self) -> CIMultiDict[str]:
        pairs = self.raw[1]  # type: ignore[index]
        fields: CIMultiDict[str] = CIMultiDict([(n.decode("latin-1"), v.decode("latin-1")) for n, v in pairs])
        self.__class__ = Request
        _HEADERS.__set__(self, fields)
        self.raw = (getversion(fields), pairs)
        return fields

    @headers.setter
    def headers(self, value: CIMultiDict[str]) -> None:
        self.__class__ = Request
        _HEADERS.__set__(self, value)

    def field(self, name: bytes) -> bytes | None:
        """The first value of the field ``name`` (lower-case), from the parsed bytes (the
        multidict is not made)."""
        size = len(name)
        for key, value in self.raw[1]:  # type: ignore[index]
            if len(key) == size and key.lower() == name:
                return value
        return None

    @property
    def host(self) -> str:
        value = self.field(b"host")
        return "" if value is None else value.decode("latin-1")


def raw_request(method: str, target: str, pairs: list[tuple[bytes, bytes]],
                version: str = "1.1", scheme: str = "http") -> RawRequest:
    """A ``RawRequest`` over the parsed ``pairs``, its slots stored here.

    The front end makes one per plain request behind filters.  CPython 3.11 runs a
    class's Python ``__init__`` in an interpreter invocation of its own (``type_call`` ->
    ``slot_tp_init``); with ``object.__init__`` the class call stays in C and this
    function's frame runs in its caller's.  It stores every slot ``Request.__init__``
    does but ``headers`` (made on first read); ``tests/http/test_raw_request.py`` holds
    the two equal, slot by slot.  The class stays ``RawRequest`` itself: the filters'
    host core and the cache test its exact type.  The front end's C maker
    (``frontend/_fasthit.c`` ``filtered_exchange``) stores the same slots, and refuses to
    bind (leaving this maker to the front end) when the class's slots are not its own.
    """
    request = RawRequest()
    request.method = method
    request.version = version
    request.body = b""
    request.scheme = scheme
    request._trailers = FROM_BODY
    request.raw = (-1, pairs)
    request.target = target
    path, sep, query = target.partition("?")
    request.path = path
    request.query = query if sep else ""
    return request


class Response(_Message):
    """A response on its way back to the client.

    ``wire_head``, when set, is ``(version, block)``: ``block`` is ``headers`` already
    serialised (``Name: value\r\n`` lines, Date included, without Content-Length,
    Transfer-Encoding and Connection, which the front end writes itself), valid while
    ``multidict.getversion(headers) == version``.  A producer that holds the bytes anyway
    (a cache hit) sets it so the front end skips re-encoding; any change to the headers
    by a later stage changes the version and the front end serialises them afresh.

    ``fields``, when set, is ``(version, pairs)``: ``headers`` as plain ``str`` (name,
    value) pairs in order, valid while ``getversion(headers) == version``.  The origin
    client keeps the list it decoded anyway, so the cache can build a stored record
    without a pass over the multidict's case-insensitive names.
    """

    __slots__ = ("status", "reason", "wire_head", "fields")

    def __init__(
        self,
        status: int,
        headers: CIMultiDict[str] | None = None,
        body: Body = b"",
        reason: str = "",
    ) -> None:
        self.status = status
        self.headers = headers if headers is not None else CIMultiDict()
        self.body = body
        self.reason = reason
        self.wire_head: tuple[int, bytes] | None = None
        self.fields: tuple[int, list[tuple[str, str]]] | None = None
        self._trailers: Any = FROM_BODY

    def __repr__(self) -> str:
        return f"<Response {self.status}>"


class Prebuilt:
    """A response its producer has serialised, all but the framing (a fresh cache hit).

    ``block`` is the header block as ``Response.wire_head`` holds it (per-hit fields
    included; no Content-Length, Transfer-Encoding or Connection, which the front end
    writes), ``body`` the whole representation (a HEAD answer gets its length only).
    Shared between requests and never modified: a producer may hand the same object to
    every request until ``stamp`` (the producer's own validity token) changes.
    """

    __slots__ = ("status", "reason", "block", "body", "x_cache", "cache_status", "stamp", "fields")

    def __init__(self, status: int, reason: str, block: bytes, body: bytes, x_cache: str,
                 cache_status: str, stamp: Any = None) -> None:
        self.status = status
        self.reason = reason
        self.block = block
        self.body = body
        self.x_cache = x_cache
        self.cache_status = cache_status
        self.stamp = stamp
        #: ``block``'s fields as a multidict, made when a stage first needs the answer as
        #: a ``Response`` (each response gets a copy: a filter may edit it)
        self.fields: CIMultiDict[str] | None = None

    def __repr__(self) -> str:
        return f"<Prebuilt {self.status} {self.x_cache}>"


class PrebuiltResponse(Response):
    """A ``Response`` made without a Python ``__init__``, with the same slots, methods and
    meaning: per cache hit from a kept answer (``CacheStage.hit_response``, its slots
    stored in place), per miss for the origin's head and the cache's answer
    (``made_response``).

    CPython 3.11 runs a class's Python ``__init__`` in an interpreter frame of its own
    (``type_call`` -> ``slot_tp_init``), and a function that builds the object costs a
    frame too: ~1.1k of the ~4k instructions of a hit's ``Response`` with its fields'
    copy, made once per cache hit behind filters.  With ``object.__init__`` the class call
    stays in C and its maker stores every slot ``Response.__init__`` does
    (``tests/pipeline/test_hit_response.py`` holds the two equal, slot by slot).
    """

    __slots__ = ()
    __init__ = object.__init__  # type: ignore[assignment]


async def read_body(body: Body, limit: int | None = None) -> bytes:
    """Collect a body into bytes; raise ``ValueError`` past ``limit`` bytes."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
        if limit is not None and len(data) > limit:
            raise ValueError("body exceeds limit")
        return data
    parts: list[bytes] = []
    size = 0
    async for chunk in body:
        size += len(chunk)
        if limit is not None and size > limit:
            raise ValueError("body exceeds limit")
        parts.append(chunk)
    return b"".join(parts)


async def close_body(body: Body) -> None:
    """Close a streamed body we are abandoning, so its source (socket, generator) is released.

    Errors are swallowed: the stream is being discarded, typically because it already broke.
    """
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            pass


def made_response(status: int, headers: CIMultiDict[str], body: Body, reason: str,
                  fields: tuple[int, list[tuple[str, str]]] | None, trailers: Any) -> Response:
    """A ``PrebuiltResponse`` with every slot ``Response.__init__`` stores, stored here.

    Made once or twice per miss (the origin's response head, the cache's answer): the
    class call stays in C and this frame runs in its caller's, where ``Response(...)``
    runs its ``__init__`` in an interpreter invocation of its own (~1.1k instructions).
    ``trailers``: ``FROM_BODY`` as the class sets it (a body in memory without any:
    the front end's kept-head writer takes only that), or the trailers the caller holds.
    ``tests/http/test_made_response.py`` holds it to the class, slot by slot.
    """
    response = PrebuiltResponse()
    response.status = status
    response.headers = headers
    response.body = body
    response.reason = reason
    response.wire_head = None
    response.fields = fields
    response._trailers = trailers
    return response
