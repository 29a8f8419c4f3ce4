"""The loop iteration's batch: the synchronous steps of every request parsed in one loop
iteration run in one callback, and the answers they write leave together (see
``Batch``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol


__all__ = ["Batch", "HOLD_LIMIT", "StoreQueue"]

log = logging.getLogger("edgenode.frontend")

#: bytes a batch holds before it writes them at once (a client pipelining many fast hits
#: in one read meets the transport's flow control, not an unbounded list)
HOLD_LIMIT = 64 * 1024


class Steps(Protocol):
    """A connection whose current request's synchronous steps the batch runs."""

    def run_steps(self) -> None: ...


class StoreQueue(Protocol):
    """A cache store that commits its writes once per loop pass (the lmdb store): they are
    committed before an answer leaves, so a client that has its answer finds the object
    in every worker process."""

    def queued(self) -> bool: ...

    def flush(self) -> int: ...


class Batch:
    """Connections whose current request waits for its synchronous steps, run together in
    one loop callback (what a task per request got from the loop: the requests of one
    read batch processed back to back, which keeps the chain's code and data in cache).

    The answers written as one buffer on a connection that stays open (``send``) leave
    together: those of the batch's steps after the last request's steps, a fast hit's
    (``fast_hits.py``, answered from the parser callback) after the loop iteration's
    reads, in a callback of their own.  So the socket writes run back to back too,
    instead of a kernel send between two requests' Python.  Whatever closes a
    connection or writes to it directly flushes what is held first (``flush``), so order
    on a connection holds.
    """

    __slots__ = ("_ready", "_scheduled", "_out", "_held", "_flush_scheduled", "running", "stores",
                 "_loop")

    def __init__(self) -> None:
        self._ready: list[Steps] = []
        self._scheduled = False
        self._out: list[tuple[asyncio.Transport, bytes]] = []
        self._held = 0  # bytes in _out
        self._flush_scheduled = False
        #: the batch's steps are running: ``send`` holds a write until they end
        self.running = False
        #: the cache store whose writes wait for the end of the loop pass, if any
        self.stores: StoreQueue | None = None
        #: the event loop the callbacks run in, asked of asyncio only when it no longer runs
        #: (``kept_loop.KeptLoop``'s rule, inline: no frame per request)
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, conn: Steps) -> None:
        self._ready.append(conn)
        if not self._scheduled:
            self._scheduled = True
            loop = self._loop
            if loop is None or not loop.is_running():
                loop = self._loop = asyncio.get_running_loop()
            loop.call_soon(self.run)

    def send(self, transport: asyncio.Transport, data: bytes) -> None:
        """Write ``data`` when this batch's steps are over, or (outside them) in a callback
        after the loop iteration's reads."""
        self._out.append((transport, data))
        self._held += len(data)
        if self._held > HOLD_LIMIT:
            self.flush()
        elif not self.running and not self._flush_scheduled:
            self._flush_scheduled = True
            loop = self._loop
            if loop is None or not loop.is_running():
                loop = self._loop = asyncio.get_running_loop()
            loop.call_soon(self.flush)

    @property
    def holding(self) -> bool:
        """A write must wait for ``flush`` (a direct write or a close flushes first):
        answers are held, or stores are queued for the loop pass's commit."""
        return bool(self._out) or (self.stores is not None and self.stores.queued())

    def flush(self) -> None:
        """Write what ``send`` holds now, in order (before anything closes a connection
        or writes to it directly)."""
        self._flush_scheduled = False
        self._held = 0
        if self.stores is not None and self.stores.queued():
            self.stores.flush()  # stored before answered: the client then finds it everywhere
        out, self._out = self._out, []
        for transport, data in out:
            if not transport.is_closing():  # the peer left: its answers go nowhere
                transport.write(data)

    def run(self) -> None:
        self._scheduled = False
        ready, self._ready = self._ready, []
        self.running = True
        try:
            for conn in ready:
                try:
                    conn.run_steps()
                except Exception:  # one connection's failure must not strand the others
                    log.exception("request steps failed")
        finally:
            self.running = False
            self.flush()
