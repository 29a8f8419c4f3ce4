"""The loop iteration's batch: the synchronous steps of every request parsed in one loop
iteration run in one callback, and the answers they write leave together (see
``Batch``)."""

from __future__ import annotations

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

    def queue(self) -> list[object]:
        """The list of queued stores, cleared in place (``Batch.queue`` reads its
        emptiness on every loop pass without a call)."""
        ...


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
    ``holding``, ``running``, ``stores``, ``queue``): a fast hit's kept answer is built
    and held in one call, and the flush per loop pass takes no Python frame.  So is the
    run of the steps (``add`` of a ``Steps``: the ready list and one ``call_soon`` per iteration;
    ``run``: each connection's ``run_steps`` in order with writes held, then the flush),
    which took two Python frames per filtered request.
    """

    __slots__ = ()

    def _steps_failed(self, exc: Exception) -> None:
        """``run``'s log of a connection whose steps raised (the others still run)."""
        log.error("request steps failed", exc_info=exc)
