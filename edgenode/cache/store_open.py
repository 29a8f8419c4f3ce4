"""Opening the store ``[cache] store`` names, falling back to a pass-through proxy.

Kept apart from ``store`` so the store interface imports none of its implementations.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

from edgenode.cache.lmdb_store import SharedStore
from edgenode.cache.passthrough import PassThroughStore
from edgenode.cache.store import CacheStore, Store
from edgenode.cache.store_files import StoreUnavailable
from edgenode.config import CacheConfig

__all__ = ["open_store"]

log = logging.getLogger("edgenode.cache.store")


def open_store(cfg: CacheConfig, path: Path, *, owner: bool = True, workers: int = 1,
               clock: Callable[[], float] = time.time) -> Store:
    """The store ``[cache] store`` names.

    ``owner``: this process runs the node's store (a single-process node, or the master
    of a multi-worker node): it takes the store's node lock and checks its format.
    Workers open it with ``owner=False`` after the master did; a single-process node
    (``owner`` and one worker) takes no cross-process collapsing leases.  The memory store is per
    process, so with ``workers`` processes each gets ``max_bytes / workers``.  An lmdb
    store that cannot be opened (read-only, unwritable, in use) leaves the node a
    pass-through proxy, with the reason in the log and in ``stats()``.
    """
    if cfg.store == "memory":
        return CacheStore(cfg, clock, max_bytes=max(1, cfg.max_bytes // max(1, workers)))
    try:
        return SharedStore(cfg, path, owner=owner, alone=owner and workers == 1, clock=clock)
    except StoreUnavailable as exc:
        log.error("cache store %s unavailable: %s; serving as a pass-through proxy "
                  "(nothing is cached until it is fixed and the node restarted)", path, exc)
        return PassThroughStore(cfg, str(exc))
