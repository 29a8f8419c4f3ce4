"""Failure bookkeeping of the ``reload`` policy and trap logging (pure: times are passed in).

A shared VM that trapped is failed (cpp-host semantics).  Under ``reload`` the next
stream starts a new VM at once; if that VM also traps before any stream succeeded on it,
the next recreation waits ``base``, then ``2*base``, ... up to ``MAX_BACKOFF`` (a VM
that traps on every request costs a start-up per back-off period, not per request),
and streams meanwhile get the failure response.  A stream that completes resets it, so
isolated bad requests never hold the filter down.

Traps are logged once per burst: a trap less than ``BURST_GAP`` seconds after the
previous one is only counted (``edgenode_wasm_traps``), so a flood of bad requests
writes one error line, not one per request.
"""

from __future__ import annotations

__all__ = ["ReloadBackoff", "TrapBurst", "MAX_BACKOFF", "BURST_GAP"]

MAX_BACKOFF = 60.0
BURST_GAP = 10.0


class ReloadBackoff:
    """When a failed VM may be recreated."""

    __slots__ = ("base", "failures", "retry_at")

    def __init__(self, base: float) -> None:
        self.base = base
        #: recreations since the last stream that completed
        self.failures = 0
        self.retry_at: float | None = None

    def may_reload(self, now: float) -> bool:
        """Asked while the VM is failed: True if a new VM may start now (counts it)."""
        if self.retry_at is None:
            self.failures += 1
            delay = 0.0 if self.failures == 1 else min(MAX_BACKOFF, self.base * 2 ** (self.failures - 2))
            self.retry_at = now + delay
        if now < self.retry_at:
            return False
        self.retry_at = None
        return True

    def succeeded(self) -> None:
        """A stream completed on a live VM: the next failure reloads at once again."""
        self.failures = 0
        self.retry_at = None


class TrapBurst:
    """Decides which traps are logged: the first of each burst."""

    __slots__ = ("gap", "last", "count")

    def __init__(self, gap: float = BURST_GAP) -> None:
        self.gap = gap
        self.last: float | None = None
        #: traps in the current burst
        self.count = 0

    def starts_burst(self, now: float) -> bool:
        """Record a trap at ``now``; True if it is the first of a burst (log it)."""
        first = self.last is None or now - self.last >= self.gap
        self.last = now
        self.count = 1 if first else self.count + 1
        return first
