"""The store of a node whose cache store could not be opened: nothing is kept.

Every lookup misses and nothing is stored, so the cache stage forwards every request
and the node works as a plain reverse proxy.  ``stats()`` says so and why, as the log
did at start-up.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from edgenode.cache.key import KeyBuilder
from edgenode.cache.policy import Entry, Headers
from edgenode.cache.store import COUNTERS, Leases
from edgenode.config import CacheConfig

__all__ = ["PassThroughStore"]


class PassThroughStore:
    """A store that holds nothing (see the module doc)."""

    leases: Leases | None = None

    def __init__(self, cfg: CacheConfig, reason: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self.reason = reason
        self.keys = KeyBuilder(cfg.key)
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)

    def lookup(self, key: str, req_headers: Headers) -> tuple[Entry | None, bool]:
        return None, False

    def lookup_lazy(self, key: str, fields: Callable[[], Headers]) -> Entry | None:
        return None

    def fast_token(self, key: str) -> object | None:
        return None

    def newest(self, key: str) -> Entry | None:
        return None

    def put(self, entry: Entry) -> bool:
        return False

    def refresh(self, entry: Entry) -> None:
        """Nothing is stored, so nothing to refresh."""

    def purge_url(self, url: str, soft: bool = False) -> int:
        return 0

    def purge_keys(self, keys: list[str], soft: bool = False) -> int:
        return 0

    def purge_all(self, soft: bool = False) -> int:
        return 0

    def stats(self) -> dict[str, Any]:
        return {**self.counters, "entries": 0, "bytes": 0, "max_bytes": self.cfg.max_bytes,
                "urls": 0, "store": "pass-through", "state": f"pass-through: {self.reason}"}

    def close(self) -> None:
        """Nothing to release."""
