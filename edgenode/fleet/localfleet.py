"""A fleet on one machine: nats-server, the simulated origin, shields and edges as child
processes on loopback ports, plus the measurements ``fleet up`` and the benchmarks make
(workload replay through the edges, per-node cache figures, purge propagation).

Every node is ``edgenode serve --config <generated file>``: the same command and file
format an operator uses on separate machines, only the NATS URL and ports differ.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import tomli_w

from edgenode.bench.loadgen import percentiles, run_load
from edgenode.bench.origin_proc import OriginProcess
from edgenode.bench.spec import Workload, request_paths
from edgenode.fleet.bus import ControlBus
from edgenode.fleet.envelope import BadMessage, open_sealed
from edgenode.fleet.names import FleetNames
from edgenode.fleet.natsserver import NatsServer
from edgenode.fleet.procs import NodeProcess
from edgenode.origin.settings import OriginSettings

__all__ = ["FleetSpec", "LocalFleet", "Phase"]


@dataclass
class FleetSpec:
    name: str = "demo"
    shields: int = 2
    edges: int = 4
    #: NATS servers to use; empty: start a local nats-server
    nats: list[str] = field(default_factory=list)
    site: str = "www.example.com"
    origin: OriginSettings = field(default_factory=lambda: OriginSettings(listen=("127.0.0.1", 0)))
    workload: Workload = field(default_factory=lambda: Workload(name="fleet", objects=10_000, zipf=1.0,
                                                                  concurrency=16, ttl=3600))
    duration: float = 20.0
    purges: int = 100
    #: node-config tables every node gets ([cache], [[chain]], ...)
    node: dict[str, Any] = field(default_factory=dict)
    heartbeat: float = 0.5
    node_ttl: float = 2.0


@dataclass
class Phase:
    """What one workload replay did."""

    requests: int = 0
    errors: int = 0
    duration_s: float = 0.0
    distinct_objects: int = 0
    origin_requests: int = 0
    #: objects asked for at least ``popular_min`` times, and the origin fetches they cost
    popular_objects: int = 0
    popular_origin_requests: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)


class _Recorded:
    """The workload's paths, remembering which objects were asked for."""

    def __init__(self, w: Workload) -> None:
        self._it = request_paths(w)
        self.seen: Counter[str] = Counter()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        path = next(self._it)
        self.seen[path] += 1
        return path


class LocalFleet:
    def __init__(self, spec: FleetSpec, workdir: Path | None = None) -> None:
        self.spec = spec
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="edgenode-fleet-"))
        self.key = secrets.token_urlsafe(24)
        self.token = secrets.token_urlsafe(16)
        self.nats: NatsServer | None = None
        self.nats_urls = list(spec.nats)
        self.origin = OriginProcess(spec.origin)
        self.nodes: dict[str, NodeProcess] = {}
        self.bus: ControlBus | None = None
        self._applied: dict[str, dict[str, float]] = {}

    # --- processes ------------------------------------------------------------------
    async def start(self) -> None:
        if not self.nats_urls:
            self.nats = NatsServer()
            self.nats_urls = [await self.nats.start()]
        await self.origin.start()
        self.bus = ControlBus(self.nats_urls, FleetNames(self.spec.name), client_name="edgenode fleet up")
        await self.bus.open()
        assert self.bus.nc is not None
        await self.bus.nc.subscribe(self.bus.names.applied_subject, cb=self._on_applied)

    async def _on_applied(self, msg: Any) -> None:
        try:
            body = open_sealed(self.key.encode(), msg.data, "purge-applied")
        except BadMessage:
            return
        self._applied.setdefault(str(body["id"]), {})[str(body["node"])] = float(body["applied_at"])

    def node_config(self, node_id: str, tier: str) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "server": {"listen": "127.0.0.1:0", "workers": 1, "shutdown_grace": "2s",
                       "state_dir": str(self.workdir / "state" / node_id)},  # its own cache store
            "admin": {"listen": "127.0.0.1:0", "token": self.token},
            "origins": {"default": {"url": self.origin.url}},
            "log": {"access": "off", "level": "info"},
            "fleet": {"node_id": node_id, "tier": tier, "name": self.spec.name, "nats": self.nats_urls,
                      "heartbeat": self.spec.heartbeat, "node_ttl": self.spec.node_ttl},
        }
        for table, value in self.spec.node.items():
            cfg[table] = {**cfg.get(table, {}), **value} if isinstance(value, dict) else value
        return cfg

    async def start_node(self, node_id: str, tier: str) -> NodeProcess:
        path = self.workdir / f"{node_id}.toml"
        path.write_text(tomli_w.dumps(self.node_config(node_id, tier)))
        node = NodeProcess(node_id, tier, path, self.token, {"EDGENODE_FLEET_KEY": self.key})
        await node.start()
        self.nodes[node_id] = node
        return node

    async def start_tier(self, tier: str, count: int) -> list[NodeProcess]:
        return list(await asyncio.gather(*(self.start_node(f"{tier}-{i + 1}", tier) for i in range(count))))

    def tier(self, tier: str) -> list[NodeProcess]:
        return [n for n in self.nodes.values() if n.tier == tier and n.alive()]

    async def stop(self) -> None:
        await asyncio.gather(*(n.stop() for n in self.nodes.values()), return_exceptions=True)
        if self.bus is not None:
            await self.bus.close()
        await self.origin.stop()
        if self.nats is not None:
            await self.nats.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    async def __aenter__(self) -> LocalFleet:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- observations ---------------------------------------------------------------
    async def wait_parents(self, edges: list[NodeProcess], live: int, timeout: float = 20.0) -> None:
        """Until every edge's ring has ``live`` live shields."""
        deadline = time.monotonic() + timeout
        while True:
            counts = []
            for e in edges:
                health = await e.admin("GET", "/healthz")
                parents = health["fleet"]["tiers"]["parents"]
                counts.append(sum(1 for p in parents if p["live"]))
            if all(c == live for c in counts):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"edges see {counts} live shields, expected {live}")
            await asyncio.sleep(0.1)

    async def cache_counts(self) -> dict[str, dict[str, int]]:
        out = {}
        for node_id, n in self.nodes.items():
            if n.alive():
                stats = await n.admin("GET", "/stats")
                cache = stats.get("cache", {})
                out[node_id] = {"hits": cache.get("hits", 0), "misses": cache.get("misses", 0),
                                "requests": stats.get("requests", 0)}
        return out

    async def replay(self, edges: list[NodeProcess], duration: float, rate: float | None = None) -> Phase:
        """The workload through ``edges`` for ``duration`` s; each request to any edge
        (``rate``: requests/s over all edges, else as fast as the connections go)."""
        w = self.spec.workload
        paths = _Recorded(w)
        before = (await self.origin.stats())["requests"]
        paths_before = await self._origin_paths()
        per_edge = max(1, w.concurrency // max(1, len(edges)))
        results = await asyncio.gather(*(
            run_load("127.0.0.1", e.port, paths, connections=per_edge, duration=duration,
                     host_header=self.spec.site, rate=rate / len(edges) if rate else None) for e in edges))
        after = (await self.origin.stats())["requests"]
        paths_after = await self._origin_paths()
        popular_min = 8 * len(edges)  # enough requests to reach every edge several times
        popular = [p.split("?", 1)[0] for p, n in paths.seen.items() if n >= popular_min]
        lat = [x for r in results for x in r.latencies_us]
        status: dict[str, int] = {}
        for r in results:
            for code, n in r.status.items():
                status[str(code)] = status.get(str(code), 0) + n
        return Phase(requests=sum(r.requests for r in results), errors=sum(sum(r.errors.values()) for r in results),
                     duration_s=max(r.duration_s for r in results), distinct_objects=len(paths.seen),
                     origin_requests=after - before, popular_objects=len(popular),
                     popular_origin_requests=sum(paths_after.get(p, 0) - paths_before.get(p, 0) for p in popular),
                     latency_ms={k: v / 1000 for k, v in percentiles(lat).items()} if lat else {},
                     status=status)

    async def _origin_paths(self) -> dict[str, int]:
        """The origin's per-path request counts (reading them is not counted)."""
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{self.origin.url}/__stats") as r:
                return dict((await r.json())["paths"])

    async def purge_everything(self, via: NodeProcess, timeout: float = 10.0) -> None:
        """Empty every cache (one fleet purge) and wait until each node applied it."""
        out = await via.admin("POST", "/purge/all", {})
        await self.wait_applied(out["fleet"]["id"], [n.node_id for n in self.nodes.values() if n.alive()], timeout)

    async def wait_applied(self, purge_id: str, nodes: list[str], timeout: float = 5.0) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while True:
            got = self._applied.get(purge_id, {})
            if all(n in got for n in nodes) or time.monotonic() > deadline:
                return dict(got)
            await asyncio.sleep(0.002)

    async def measure_purges(self, count: int, nodes: list[NodeProcess], seed: int = 7) -> dict[str, Any]:
        """Propagation of ``count`` URL purges: from the admin call on one node to the
        object gone on every node (each node reports when it applied the purge)."""
        import random

        rng = random.Random(seed)
        ids = [n.node_id for n in nodes]
        latencies: list[float] = []
        missing = 0
        still_cached = 0
        async with aiohttp.ClientSession() as http:
            for i in range(count):
                path = f"/obj/purge-probe-{i}?size=1k&ttl=3600"
                for n in nodes:  # every node holds the object first
                    async with http.get(f"{n.url}{path}", headers={"Host": self.spec.site}) as r:
                        await r.read()
                via = rng.choice(nodes)
                t0 = time.time()
                out = await via.admin("POST", "/purge", {"url": f"http://{self.spec.site}{path}"})
                applied = await self.wait_applied(out["fleet"]["id"], ids, 5.0)
                if len(applied) < len(ids):
                    missing += 1
                    continue
                latencies.append((max(applied.values()) - t0) * 1000)
                if i < 5:  # and it is really gone everywhere
                    for n in nodes:
                        async with http.get(f"{n.url}{path}", headers={"Host": self.spec.site,
                                                                       "Cache-Control": "only-if-cached"}) as r:
                            still_cached += r.status != 504
        pct = percentiles(latencies, (50, 90, 99)) if latencies else {}
        return {"count": count, "nodes": len(nodes), "confirmed": len(latencies), "unconfirmed": missing,
                "still_cached_after_purge": still_cached, "p50_ms": pct.get("p50"), "p90_ms": pct.get("p90"),
                "p99_ms": pct.get("p99"), "max_ms": max(latencies) if latencies else None,
                "latencies_ms": [round(x, 3) for x in latencies]}


def phase_dict(p: Phase) -> dict[str, Any]:
    return asdict(p)
