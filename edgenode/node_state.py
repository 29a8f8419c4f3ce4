"""The node's state one process opens: the cache store and the Proxy-Wasm filter state.

A node alone (or the master of a multi-worker node) owns them: it opens them first
(node lock, format check, a fresh filter state) and workers join.  The master only
opens what its workers share: an lmdb store, not a per-process memory store.
"""

from __future__ import annotations

from typing import Any

from edgenode.cache.store import Store, open_store
from edgenode.config import Config, cache_path

__all__ = ["NodeResources"]


class NodeResources:
    """``store`` (None without a cache stage) and the filter state, closed together."""

    def __init__(self, config: Config, *, owner: bool, workers: int, shared_only: bool = False) -> None:
        kinds = {sc.type for sc in config.chain}
        self.store: Store | None = None
        self._filters: Any = None
        if "cache" in kinds and not (shared_only and config.cache.store == "memory"):
            self.store = open_store(config.cache, cache_path(config), owner=owner, workers=workers)
        if "wasm" in kinds:
            from edgenode.wasm.shared import NodeState  # wasmtime only when needed

            try:
                self._filters = NodeState.open(config, owner=owner, workers=workers)
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        """Release both (idempotent)."""
        if self.store is not None:
            self.store.close()
            self.store = None
        if self._filters is not None:
            self._filters.close()
            self._filters = None
