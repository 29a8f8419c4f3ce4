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
    """The leader's handle: resolve exactly once with the stored entry or None.

    The waiters' future is made when the first waiter joins (``waiter``): the usual miss
    has none, and its leader then makes and resolves no future at all.  Made by
    ``Collapser._made`` without a Python ``__init__``: its slots are ``_collapser``,
    ``key``, ``future`` (the waiters', None until one joins), ``handed_off`` (a streamed
    body, the tee, took over resolving it), ``_leased`` (it holds the store's lease of
    the key) and ``resolved``.  A key led alone (the usual miss: ``Collapser.flights``)
    has none until a waiter joins or its leader asks for it (``Collapser.flight``)."""

    __slots__ = ("_collapser", "key", "future", "handed_off", "_leased", "resolved")
    __init__ = object.__init__  # type: ignore[assignment]
    _collapser: "Collapser"
    key: str
    future: asyncio.Future[Entry | None] | None
    handed_off: bool
    _leased: bool
    resolved: bool

    def waiter(self) -> asyncio.Future[Entry | None]:
        """The future a waiter awaits for the leader's entry (made on first use)."""
        fut = self.future
        if fut is None:
            fut = self.future = self._collapser._loop.get().create_future()
        return fut

    def done(self, entry: Entry | None) -> None:
        if self.resolved:
            return
        self.resolved = True
        fut = self.future
        if fut is not None and not fut.done():
            fut.set_result(entry)
        flights = self._collapser.flights
        if flights.get(self.key) is self:
            del flights[self.key]
        if self._leased:  # the store frees it once the entry is committed: others find it
            self._collapser.release_lease(self.key)

    def release(self) -> None:
        """Nothing will be stored: send the waiters to the origin themselves."""
        self.done(None)

    def settle(self) -> None:
        """The leader's fetch ended: header-time outcomes resolved the flight, a streamed
        body resolves it at its end (the tee holds it, ``handed_off``); anything else (an
        exception) releases the waiters."""
        if not self.handed_off and not self.resolved:
            self.done(None)


class Collapser:
    def __init__(self, store: "Store | None" = None) -> None:
        #: the keys' unresolved flights; None: a key led alone, its ``Flight`` not made (no
        #: one joined yet: ``CacheStage._plain_miss`` sets the key and ends it by ``pop``)
        self.flights: dict[str, Flight | None] = {}
        self._store = store
        self._leases: Leases | None = store.leases if store is not None else None
        #: no other process leads a key, so a leader takes no lease (and may lead alone)
        self.alone = self._leases is None
        self._remote: set[asyncio.Task[None]] = set()
        self._loop = KeptLoop()  # asked for once per miss

    def join(self, key: str) -> tuple[Flight | None, asyncio.Future[Entry | None] | None]:
        """``(flight, None)`` for the leader, ``(None, future)`` for a waiter."""
        if key in self.flights:  # (a resolved flight has left the table)
            return None, self.flight(key).waiter()
        leases = self._leases
        leased = leases is not None and leases.acquire(key)
        flight = self.flights[key] = self._made(key, leased)
        if leases is None or leased:
            return flight, None
        # another process leads: this one's requests wait for what it stored
        fut = flight.waiter()
        task = self._loop.get().create_task(self._elsewhere(flight))
        self._remote.add(task)
        task.add_done_callback(self._remote.discard)
        return None, fut

    def flight(self, key: str) -> Flight:
        """The unresolved flight of ``key``, made now when it is led alone and no one joined."""
        flight = self.flights[key]
        if flight is None:
            flight = self.flights[key] = self._made(key, False)
        return flight

    def _made(self, key: str, leased: bool) -> Flight:
        """A new unresolved flight of ``key`` (its slots stored here: no ``__init__``)."""
        flight = Flight()
        flight._collapser = self
        flight.key = key
        flight.future = None
        flight.handed_off = False
        flight._leased = leased
        flight.resolved = False
        return flight

    def release_lease(self, key: str) -> None:
        assert self._leases is not None
        self._leases.release(key)

    async def _elsewhere(self, flight: Flight) -> None:
        """Wait for another process's fetch of the flight's key; resolve with what it stored."""
        assert self._store is not None and self._leases is not None
        store = self._store
        key = flight.key
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
            flight.done(entry)

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
        return len(self.flights)
