"""HTTP request and response values shared by every stage of the node.

Bodies are either ``bytes`` (known, small, e.g. served from cache or built locally)
or an async iterator of chunks (streamed from the client or the origin), so a large
body never has to sit whole in memory.  Header names keep their case in the
multidict but compare case-insensitively.
"""

from __future__ import annotations

from typing import AsyncIterator, Union

from multidict import CIMultiDict

Body = Union[bytes, AsyncIterator[bytes]]

__all__ = ["Body", "Request", "Response", "CIMultiDict", "read_body"]


class Request:
    """A request as received from a client (or built by a filter for a callout)."""

    __slots__ = ("method", "target", "path", "query", "version", "headers", "body", "scheme")

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
        self.set_target(target)

    def set_target(self, target: str) -> None:
        """Replace the request target, keeping ``path`` and ``query`` in step."""
        self.target = target
        path, sep, query = target.partition("?")
        self.path = path
        self.query = query if sep else ""

    @property
    def host(self) -> str:
        return self.headers.get("host", "")

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target}>"


class Response:
    """A response on its way back to the client.

    ``wire_head``, when set, is ``(version, block)``: ``block`` is ``headers`` already
    serialised (``Name: value\r\n`` lines, Date included, without Content-Length,
    Transfer-Encoding and Connection, which the front end writes itself), valid while
    ``multidict.getversion(headers) == version``.  A producer that holds the bytes anyway
    (a cache hit) sets it so the front end skips re-encoding; any change to the headers
    by a later stage changes the version and the front end serialises them afresh.
    """

    __slots__ = ("status", "headers", "body", "reason", "wire_head")

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

    def __repr__(self) -> str:
        return f"<Response {self.status}>"


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
