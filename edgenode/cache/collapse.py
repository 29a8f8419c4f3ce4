"""Request collapsing: concurrent misses for one key make one origin request.

The first request for a key leads; the others wait (bounded) for its outcome: the
stored entry, or None when the leader found the response uncacheable, too large or
broken.  The leader reports as early as it knows (an uncacheable response is known
at header time), so waiters are not held behind a body that will never be stored.
"""

from __future__ import annotations

import asyncio

from edgenode.cache.policy import Entry

__all__ = ["Collapser", "Flight"]


class Flight:
    """The leader's handle: resolve exactly once with the stored entry or None."""

    __slots__ = ("_collapser", "key", "future", "handed_off")

    def __init__(self, collapser: "Collapser", key: str, future: asyncio.Future[Entry | None]) -> None:
        self._collapser = collapser
        self.key = key
        self.future = future
        #: set when a streamed body (the tee) took over resolving the flight
        self.handed_off = False

    def done(self, entry: Entry | None) -> None:
        if not self.future.done():
            self.future.set_result(entry)
            if self._collapser._flights.get(self.key) is self.future:
                del self._collapser._flights[self.key]

    def release(self) -> None:
        """Nothing will be stored: send the waiters to the origin themselves."""
        self.done(None)


class Collapser:
    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Future[Entry | None]] = {}

    def join(self, key: str) -> tuple[Flight | None, asyncio.Future[Entry | None] | None]:
        """``(flight, None)`` for the leader, ``(None, future)`` for a waiter."""
        fut = self._flights.get(key)
        if fut is not None and not fut.done():
            return None, fut
        fut = asyncio.get_running_loop().create_future()
        self._flights[key] = fut
        return Flight(self, key, fut), None

    @staticmethod
    async def wait(fut: asyncio.Future[Entry | None], timeout: float) -> Entry | None:
        """The leader's entry, or None (uncacheable, failed, or ``timeout`` passed)."""
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            return None

    def __len__(self) -> int:
        return len(self._flights)
