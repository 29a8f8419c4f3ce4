"""The loop iteration's batch: the synchronous steps of every request parsed in one loop
iteration run in one callback, and the answers they write leave together (see
``Batch``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

# HOLD_LIMIT: bytes a batch holds before it writes them at once (a client pipelining many
# fast hits in one read meets the transport's flow control, not an unbounded list)
from edgenode.frontend._fasthit import HOLD_LIMIT, Held

__all__ = ["Batch", "HOLD_LIMIT", "StoreQueue"]

log = logging.getLogger("edgenode.frontend")


class Steps(Protocol):
    """A connection whose current request's synchronous steps the batch runs."""

    def run_steps(self) -> None: ...


class StoreQueue(Protocol):
    """A cache store that commits its writes once per loop pass (the lmdb store): they are
    committed before an answer leaves, so a client that has its answer finds the object
    in every worker process."""

    def queued(self) -> bool: ...

    def flush(self) -> int: ...


class Batch(Held):
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

    The held writes are ``_fasthit.Held``'s, in C (``send``, ``send_kept``, ``flush``,
    ``holding``, ``running``, ``stores``): a fast hit's kept answer is built and held in
    one call, and the flush per loop pass takes no Python frame.
    """

    __slots__ = ("_ready", "_scheduled")

    def __init__(self) -> None:
        super().__init__()
        self._ready: list[Steps] = []
        self._scheduled = False

    def add(self, conn: Steps) -> None:
        self._ready.append(conn)
        if not self._scheduled:
            self._scheduled = True
            loop = self._loop
            if loop is None or not loop.is_running():
                loop = self._loop = asyncio.get_running_loop()
            loop.call_soon(self.run)

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
