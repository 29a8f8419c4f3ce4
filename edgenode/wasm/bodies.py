"""Reading message bodies for the body hooks: (chunk, end_of_stream) pairs with one chunk
of look-ahead, a read that can be started now and awaited later (so a held stream can
wait for whichever comes first, the next chunk or the resume), and data pushed back in
front (what a hold buffered, delivered as one chunk when it ends)."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from edgenode.http.messages import Body, Request

__all__ = ["ChunkReader", "has_body", "may_have_trailers", "prepend"]

Pair = tuple[bytes, bool]


async def _pairs(body: Body) -> AsyncIterator[Pair]:
    """Yield (chunk, end_of_stream) with one chunk of look-ahead; always ends with eos."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        yield bytes(body), True
        return
    pending: bytes | None = None
    async for chunk in body:
        if not chunk:
            continue
        if pending is not None:
            yield pending, False
        pending = chunk
    yield (pending or b""), True


class ChunkReader:
    """A body as (chunk, end_of_stream) pairs; ``finished`` once the eos pair was read."""

    __slots__ = ("_pairs", "_pending", "_front", "finished")

    def __init__(self, body: Body) -> None:
        self._pairs = _pairs(body)
        self._pending: asyncio.Future[Pair] | None = None
        self._front: Pair | None = None
        self.finished = False

    def push_front(self, data: bytes, eos: bool) -> None:
        """Make ``(data, eos)`` the next pair (what a hold buffered)."""
        self._front = (data, eos)
        self.finished = False

    def start(self) -> asyncio.Future[Pair]:
        """Start reading the next pair without waiting for it (idempotent)."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._pairs.__anext__())
        return self._pending

    async def next(self) -> Pair:
        if self._front is not None:
            pair, self._front = self._front, None
        elif self._pending is not None:
            fut, self._pending = self._pending, None
            pair = await fut
        else:
            pair = await self._pairs.__anext__()
        if pair[1]:
            self.finished = True
        return pair

    def __aiter__(self) -> "ChunkReader":
        return self

    async def __anext__(self) -> Pair:
        if self.finished:
            raise StopAsyncIteration
        return await self.next()


async def prepend(parts: list[bytes], rest: ChunkReader) -> AsyncIterator[bytes]:
    """``parts`` then the rest of ``rest``'s chunks (a failed filter's body, passed on)."""
    for p in parts:
        if p:
            yield p
    async for chunk, _ in rest:
        if chunk:
            yield chunk


def has_body(body: Body) -> bool:
    return not isinstance(body, (bytes, bytearray)) or len(body) > 0


def may_have_trailers(req: Request) -> bool:
    """Whether a request's body can end with trailers (a chunked one, or bytes carrying them)."""
    if isinstance(req.body, (bytes, bytearray)):
        return bool(req.trailers)
    return "content-length" not in req.headers
