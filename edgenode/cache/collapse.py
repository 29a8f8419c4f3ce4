"""Request collapsing: concurrent misses for one key make one origin request per node.

The first request for a key leads; the others wait (bounded) for its outcome: the
stored entry, or None when the leader found the response uncacheable, too large or
broken.  The leader reports as early as it knows (an uncacheable response is known
at header time), so waiters are not held behind a body that will never be stored.

Across worker processes the store's leases (``Store.leases``) decide who leads: a
worker that finds the key's lease taken by another process waits for it to be
released, then answers from the store what that process stored (when it is fresh),
or sends its requests to the origin themselves.  One such wait per key per worker
(the worker's own requests for the key join it as local waiters).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from edgenode.cache.policy import Entry
from edgenode.kept_loop import KeptLoop

if TYPE_CHECKING:
    from edgenode.cache.store import Leases, Store

__all__ = ["Collapser", "Flight"]

#: polling of another process's lease: first pause and longest pause (s)
POLL_FIRST = 0.001
POLL_MAX = 0.02


class Flight:
    """The leader's handle: resolve exactly once with the stored entry or None."""

    __slots__ = ("_collapser", "key", "future", "handed_off", "_leased")

    def __init__(self, collapser: "Collapser", key: str, future: asyncio.Future[Entry | None],
                 leased: bool = False) -> None:
        self._collapser = collapser
        self.key = key
        self.future = future
        #: set when a streamed body (the tee) took over resolving the flight
        self.handed_off = False
        self._leased = leased

    def done(self, entry: Entry | None) -> None:
        if not self.future.done():
            self.future.set_result(entry)
            if self._collapser._flights.get(self.key) is self.future:
                del self._collapser._flights[self.key]
            if self._leased:  # the store frees it once the entry is committed: others find it
                self._collapser.release_lease(self.key)

    def release(self) -> None:
        """Nothing will be stored: send the waiters to the origin themselves."""
        self.done(None)

    def settle(self) -> None:
        """The leader's fetch ended: header-time outcomes resolved the flight, a streamed
        body resolves it at its end (the tee holds it, ``handed_off``); anything else (an
        exception) releases the waiters."""
        if not self.handed_off and not self.future.done():
            self.done(None)


class Collapser:
    def __init__(self, store: "Store | None" = None) -> None:
        self._flights: dict[str, asyncio.Future[Entry | None]] = {}
        self._store = store
        self._leases: Leases | None = store.leases if store is not None else None
        self._remote: set[asyncio.Task[None]] = set()
        self._loop = KeptLoop()  # asked for once per miss

    def join(self, key: str) -> tuple[Flight | None, asyncio.Future[Entry | None] | None]:
        """``(flight, None)`` for the leader, ``(None, future)`` for a waiter."""
        fut = self._flights.get(key)
        if fut is not None and not fut.done():
            return None, fut
        loop = self._loop.get()
        fut = loop.create_future()
        self._flights[key] = fut
        leases = self._leases
        if leases is None:
            return Flight(self, key, fut), None
        if leases.acquire(key):
            return Flight(self, key, fut, leased=True), None
        task = loop.create_task(self._elsewhere(key, fut))
        self._remote.add(task)
        task.add_done_callback(self._remote.discard)
        return None, fut

    def release_lease(self, key: str) -> None:
        assert self._leases is not None
        self._leases.release(key)

    async def _elsewhere(self, key: str, fut: asyncio.Future[Entry | None]) -> None:
        """Wait for another process's fetch of ``key``; resolve with what it stored."""
        assert self._store is not None and self._leases is not None
        store = self._store
        entry = None
        try:
            deadline = time.monotonic() + store.cfg.collapse_timeout
            pause = POLL_FIRST
            while self._leases.held_elsewhere(key) and time.monotonic() < deadline:
                await asyncio.sleep(pause)
                pause = min(pause * 1.5, POLL_MAX)
            found = store.newest(key)
            if found is not None and found.fresh_until > store.clock():
                entry = found
        finally:
            if not fut.done():
                fut.set_result(entry)
            if self._flights.get(key) is fut:
                del self._flights[key]

    @staticmethod
    async def wait(fut: asyncio.Future[Entry | None], timeout: float) -> Entry | None:
        """The leader's entry, or None (uncacheable, failed, or ``timeout`` passed)."""
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            return None

    def close(self) -> None:
        """Stop waiting on other processes (their waiters go to the origin themselves)."""
        for task in list(self._remote):
            task.cancel()

    def __len__(self) -> int:
        return len(self._flights)
