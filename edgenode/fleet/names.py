"""The NATS subjects, streams and buckets of one fleet, all derived from its name.

One place for every name, so nodes, the CLI and docs/fleet.md agree.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FleetNames", "CONFIG_KEY"]


@dataclass(frozen=True)
class FleetNames:
    fleet: str = "edgenode"

    @property
    def purge_subject(self) -> str:
        """Purge requests (JetStream stream ``purge_stream``)."""
        return f"edgenode.{self.fleet}.purge"

    @property
    def purge_stream(self) -> str:
        return f"EDGENODE_{self.fleet}_PURGE"

    @property
    def applied_subject(self) -> str:
        """Core NATS: each node announces every purge it applied (latency, ``--wait``)."""
        return f"edgenode.{self.fleet}.events.purge-applied"

    @property
    def config_bucket(self) -> str:
        """KV bucket holding the fleet config under ``CONFIG_KEY`` (history = versions)."""
        return f"edgenode_{self.fleet}_config"

    @property
    def nodes_bucket(self) -> str:
        """KV bucket of membership heartbeats, one key per node, with a TTL."""
        return f"edgenode_{self.fleet}_nodes"

    @property
    def modules_bucket(self) -> str:
        """Object Store of filter modules, named ``sha256-<hex>``."""
        return f"edgenode_{self.fleet}_modules"

    @staticmethod
    def consumer(node_id: str) -> str:
        """The durable purge consumer of one node (its position survives restarts)."""
        return f"node-{node_id}"


CONFIG_KEY = "current"
