"""The fleet config document: what every node of a fleet runs, versioned in a KV bucket.

A document is a node-config fragment: ``[[chain]]`` (the same tables as a node's
chain; wasm stages' settings and modules may change, the stages themselves - names,
types, order - must match the node's, since adding or removing stages needs a
restart) and ``[cache]`` keys.  Published modules are named by digest
(``sha256-<hex>`` in the fleet's Object Store) or by pinned OCI reference.  Each KV
revision of the document is a version; a rollback re-publishes an older one.  Free of I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from edgenode.config import CacheConfig, ConfigError, StageConfig, _cache, _chain
from edgenode.fleet.envelope import BadMessage

__all__ = ["FleetDoc", "parse_doc", "LIVE_CACHE_KEYS", "cache_changes", "chain_shape", "OBJECT_MODULE"]

#: cache settings a running node applies at once (the cache reads them per request);
#: any other key in a document must equal what the node runs
LIVE_CACHE_KEYS = ("default_ttl", "heuristic_fraction", "heuristic_max", "max_object_bytes",
                   "collapse", "collapse_timeout")
#: a module published in the fleet's Object Store
OBJECT_MODULE = re.compile(r"^sha256-[0-9a-f]{64}$")


@dataclass
class FleetDoc:
    chain: list[StageConfig]
    #: the document's [cache] table as written (only these keys are applied)
    cache: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    published_at: float = 0.0
    by: str = ""
    rollback_of: int | None = None

    def body(self) -> dict[str, Any]:
        chain = [{"type": sc.type, "name": sc.name, **sc.options} for sc in self.chain]
        return {"type": "config", "chain": chain, "cache": self.cache, "note": self.note,
                "published_at": self.published_at, "by": self.by, "rollback_of": self.rollback_of}


def parse_doc(body: dict[str, Any], *, published: bool = True) -> FleetDoc:
    """Validate a document; ``published`` ones must name modules by digest or OCI ref."""
    try:
        chain = _chain(body.get("chain", []))
        cache = body.get("cache", {})
        if not isinstance(cache, dict):
            raise ConfigError("cache: expected a table")
        _cache(cache)  # validates every key and value
    except ConfigError as exc:
        raise BadMessage(str(exc)) from None
    if not chain:
        raise BadMessage("chain: a fleet config needs the chain")
    if published:
        for i, sc in enumerate(chain):
            module = sc.options.get("module")
            if sc.type == "wasm" and not (isinstance(module, str) and (
                    OBJECT_MODULE.match(module) or module.startswith("oci://"))):
                raise BadMessage(f"chain[{i}].module: expected sha256-<hex> or oci://..., got {module!r}")
    rollback = body.get("rollback_of")
    if rollback is not None and (isinstance(rollback, bool) or not isinstance(rollback, int)):
        raise BadMessage("rollback_of: expected a version number")
    return FleetDoc(chain, dict(cache), str(body.get("note", "")), float(body.get("published_at", 0.0) or 0.0),
                    str(body.get("by", "")), rollback)


def chain_shape(chain: list[StageConfig]) -> list[str]:
    return [f"{sc.type}:{sc.name}" for sc in chain]


def cache_changes(doc_cache: dict[str, Any], running: CacheConfig) -> tuple[dict[str, Any], list[str]]:
    """(live settings to set, reasons to refuse) for a document's [cache] table."""
    wanted = _cache(doc_cache)
    live: dict[str, Any] = {}
    refuse: list[str] = []
    for key in doc_cache:
        new, old = getattr(wanted, key), getattr(running, key)
        if new == old:
            continue
        if key in LIVE_CACHE_KEYS:
            live[key] = new
        else:
            refuse.append(f"cache.{key}: changing it needs a restart")
    return live, refuse
