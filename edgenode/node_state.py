"""The node's state one process opens: the cache store, the Proxy-Wasm filter state and
the functions' key-value stores.

A node alone (or the master of a multi-worker node) owns them: it opens them first
(node lock, format check, a fresh filter state) and workers join.  The master only
opens what its workers share: an lmdb store, not a per-process memory store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgenode.cache.store import Store
from edgenode.cache.store_open import open_store
from edgenode.config import Config, cache_path

if TYPE_CHECKING:
    from edgenode.functions.kv import KeyValueBackend

__all__ = ["NodeResources"]


class NodeResources:
    """``store`` (None without a cache stage), the filter state and ``function_kv`` (None
    without a function stage), closed together."""

    def __init__(self, config: Config, *, owner: bool, workers: int, shared_only: bool = False) -> None:
        kinds = {sc.type for sc in config.chain}
        self.store: Store | None = None
        self._filters: Any = None
        self.function_kv: KeyValueBackend | None = None
        if "cache" in kinds and not (shared_only and config.cache.store == "memory"):
            self.store = open_store(config.cache, cache_path(config), owner=owner, workers=workers)
        if "wasm" in kinds:
            from edgenode.wasm.shared import NodeState  # wasmtime only when needed

            try:
                self._filters = NodeState.open(config, owner=owner, workers=workers)
            except BaseException:
                self.close()
                raise
        if "function" in kinds:
            from edgenode.functions.kv import open_key_value

            try:
                self.function_kv = open_key_value(config, owner=owner, shared_only=shared_only)
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        """Release them all (idempotent)."""
        if self.store is not None:
            self.store.close()
            self.store = None
        if self._filters is not None:
            self._filters.close()
            self._filters = None
        if self.function_kv is not None:
            self.function_kv.close()
            self.function_kv = None
