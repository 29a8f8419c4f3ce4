"""What a fleet agent acts on: the node as one fleet member.

A node is one member whatever its process layout.  ``NodeHost`` is a single-process
node (the agent runs inside it); :class:`edgenode.fleet.master.MasterHost` is the master
of a multi-worker node, which applies purges to the node-wide store once and carries
rollouts and the shield ring to every worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from edgenode.config import Config, StageConfig
from edgenode.fleet.applier import swap_stages

__all__ = ["FleetHost", "NodeHost", "PurgeIncomplete", "set_cache_keys"]


class PurgeIncomplete(Exception):
    """A purge reached only part of the node (a worker did not answer): the fleet's
    delivery must not be acked, so it comes again and reaches the rest."""

    def __init__(self, purged: int, errors: list[str]) -> None:
        super().__init__(f"purged {purged} object(s), but not everywhere: {'; '.join(errors)}")
        self.purged = purged
        self.errors = errors


class FleetHost(Protocol):
    config: Config

    async def purge(self, kind: str, values: list[str], soft: bool) -> int:
        """Apply a purge to the whole node; the number of objects purged.  Raises
        ``PurgeIncomplete`` when part of the node did not apply it."""
        ...

    async def stats(self) -> dict[str, Any]:
        """Node-wide ``/stats`` (requests, cache hits and misses: the heartbeat's figures)."""
        ...

    async def apply(self, version: int, new: dict[str, StageConfig], old: dict[str, StageConfig],
                    cache: dict[str, Any]) -> None: ...

    def module_paths(self) -> dict[str, Path]: ...

    def set_parents(self, shields: list[tuple[str, str]]) -> None:
        """The live shields (id, url) an edge's misses go to."""
        ...

    def tier_status(self) -> dict[str, Any] | None: ...


def set_cache_keys(config: Config, cache: dict[str, Any]) -> None:
    """Live cache settings: the cache stage reads them from the shared CacheConfig per request."""
    for key, value in cache.items():
        setattr(config.cache, key, value)


class Node(Protocol):
    """A single-process node (``edgenode.node.Node``) as its fleet agent acts on it."""

    config: Config
    upstream: Any

    def purge(self, kind: str, values: list[str], soft: bool) -> int: ...

    def stats(self) -> dict[str, Any]: ...

    async def reload_stage(self, name: str, settings: StageConfig) -> None: ...

    def stage_binaries(self) -> dict[str, Path]: ...


class NodeHost:
    """A single-process node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.config = node.config

    async def purge(self, kind: str, values: list[str], soft: bool) -> int:
        return self.node.purge(kind, values, soft)

    async def stats(self) -> dict[str, Any]:
        return self.node.stats()

    async def apply(self, version: int, new: dict[str, StageConfig], old: dict[str, StageConfig],
                    cache: dict[str, Any]) -> None:
        await swap_stages(self.node.reload_stage, new, old)
        set_cache_keys(self.config, cache)

    def module_paths(self) -> dict[str, Path]:
        return self.node.stage_binaries()

    def set_parents(self, shields: list[tuple[str, str]]) -> None:
        tier = self.node.upstream.tier
        if tier is not None and tier.ring is not None:
            tier.ring.update(shields)

    def tier_status(self) -> dict[str, Any] | None:
        tier = self.node.upstream.tier
        return tier.status() if tier is not None else None
