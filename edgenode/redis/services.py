"""The node's Redis services (``[redis.NAME]``) and how a filter's cluster name finds one.

Filters name a Redis service the way Envoy/Higress filters name a cluster, possibly
with options after ``?`` (``db=N``, which selects the database; Envoy's buffering
options are accepted and ignored).  A name resolves to a configured service when it
is the service's name or one of its ``aliases``, or, for Istio-style cluster names
``outbound|PORT|SUBSET|HOST``, when HOST (or HOST without a ``.static``/``.dns``
suffix, Higress's service kinds) is.  One pool per distinct server, credentials and
database is shared by every filter of the worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from edgenode.config import RedisConfig
from edgenode.redis.pool import RedisPool, RedisTarget

__all__ = ["RedisServices", "ResolvedRedis", "resolve_cluster"]

_SUFFIXES = (".static", ".dns")


@dataclass(frozen=True)
class ResolvedRedis:
    config: RedisConfig
    db: int


def resolve_cluster(cluster: str, configs: dict[str, RedisConfig]) -> ResolvedRedis | None:
    """The service and database a filter's cluster name means, or None."""
    name, _, query = cluster.partition("?")
    params = dict(parse_qsl(query))
    cfg = _lookup(name, configs)
    if cfg is None:
        return None
    db = cfg.db
    if "db" in params:
        try:
            db = int(params["db"])
        except ValueError:
            return None
        if db < 0:
            return None
    return ResolvedRedis(cfg, db)


def _lookup(name: str, configs: dict[str, RedisConfig]) -> RedisConfig | None:
    candidates = [name]
    parts = name.split("|")
    if len(parts) == 4 and parts[0] in ("outbound", "inbound"):
        host = parts[3]
        candidates.append(host)
        candidates.extend(host[:-len(s)] for s in _SUFFIXES if host.endswith(s))
    for candidate in candidates:
        cfg = configs.get(candidate)
        if cfg is not None:
            return cfg
        for cfg in configs.values():
            if candidate in cfg.aliases:
                return cfg
    return None


class RedisServices:
    """Configured services and their pools (created on first use, closed with the node)."""

    def __init__(self, configs: dict[str, RedisConfig]) -> None:
        self.configs = configs
        self._pools: dict[RedisTarget, RedisPool] = {}

    def resolve(self, cluster: str) -> ResolvedRedis | None:
        return resolve_cluster(cluster, self.configs)

    def pool(self, resolved: ResolvedRedis, username: str = "", password: str = "") -> RedisPool:
        """The pool for ``resolved`` as the given user (empty: the configured credentials)."""
        cfg = resolved.config
        target = RedisTarget(cfg.host, cfg.port, username or cfg.username,
                             password or cfg.password, resolved.db)
        pool = self._pools.get(target)
        if pool is None:
            pool = self._pools[target] = RedisPool(target, connect_timeout=cfg.connect_timeout,
                                                   max_connections=cfg.max_connections)
        return pool

    async def close(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            await pool.close()
