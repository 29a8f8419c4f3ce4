"""RFC 9111 shared cache: ``CacheStage`` (the chain stage) and ``CacheStore`` (storage + purge)."""

from edgenode.cache.stage import CacheStage
from edgenode.cache.store import CacheStore

__all__ = ["CacheStage", "CacheStore"]
