"""``edgenode fleet up FLEET.toml``: a fleet on this machine, a workload, and a report.

1. nats-server, the simulated origin and the edges start; the workload runs through
   the edges with no shield tier (every edge misses on its own);
2. the shields join, every cache is emptied with one fleet purge, and the same workload
   runs again through edge -> shield -> origin;
3. URL purges sent to random nodes' admin APIs measure propagation to every node.
The report compares origin offload with and without shields, per-node hit ratios and
purge latency (table, plot, JSON).  See docs/fleet.md for the fleet file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from edgenode.bench.spec import parse_workload
from edgenode.config import ConfigError, _Section, read_toml
from edgenode.fleet.localfleet import FleetSpec, LocalFleet, phase_dict
from edgenode.fleet.report import format_report, write_plot
from edgenode.origin.settings import OriginSettings

__all__ = ["load_fleet_file", "parse_fleet_file", "run_fleet"]


def parse_fleet_file(data: dict[str, Any]) -> FleetSpec:
    top = _Section(data, "")
    spec = FleetSpec()
    f = _Section(top.get("fleet", {}, dict), "fleet")
    spec.name = f.get("name", spec.name, str)
    spec.shields = f.get("shields", spec.shields, int)
    spec.edges = f.get("edges", spec.edges, int)
    spec.nats = f.str_list("nats", [])
    spec.site = f.get("site", spec.site, str)
    spec.heartbeat = f.duration("heartbeat", spec.heartbeat)
    spec.node_ttl = f.duration("node_ttl", spec.node_ttl)
    f.done()
    if spec.shields < 1 or spec.edges < 1:
        raise ConfigError("fleet.shields: a fleet up run needs at least one shield and one edge")
    origin = dict(top.get("origin", {}, dict))
    origin.setdefault("listen", "127.0.0.1:0")
    spec.origin = OriginSettings.from_table(origin)
    spec.workload = parse_workload({"objects": 10_000, "zipf": 1.0, "ttl": 3600, "concurrency": 16,
                                    **top.get("workload", {}, dict)}, "fleet")
    spec.duration = spec.workload.duration
    purge = _Section(top.get("purge", {}, dict), "purge")
    spec.purges = purge.get("count", spec.purges, int)
    purge.done()
    spec.node = top.get("node", {}, dict)
    top.done()
    return spec


def load_fleet_file(path: Path) -> FleetSpec:
    return parse_fleet_file(read_toml(path, "fleet file"))


async def run_fleet(spec: FleetSpec, *, out_dir: Path | None = None, stream: TextIO | None = None) -> dict[str, Any]:
    out = stream or sys.stdout

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    half = spec.duration / 2
    async with LocalFleet(spec) as fleet:
        say(f"fleet {spec.name}: NATS {', '.join(fleet.nats_urls)}, origin {fleet.origin.url}")
        edges = await fleet.start_tier("edge", spec.edges)
        say(f"{len(edges)} edges up; workload without the shield tier for {half:.1f} s")
        without = await fleet.replay(edges, half)
        edge_counts_a = await fleet.cache_counts()
        shields = await fleet.start_tier("shield", spec.shields)
        await fleet.wait_parents(edges, len(shields))
        await fleet.purge_everything(edges[0])
        say(f"{len(shields)} shields joined, caches emptied; workload through the shields for {half:.1f} s")
        before_b = await fleet.cache_counts()
        with_shield = await fleet.replay(edges, half)
        after_b = await fleet.cache_counts()
        say(f"{spec.purges} URL purges through random nodes' admin APIs")
        purges = await fleet.measure_purges(spec.purges, [*shields, *edges])
    nodes = []
    for node_id, after in after_b.items():
        base = before_b.get(node_id, {"hits": 0, "misses": 0, "requests": 0})
        hits, misses = after["hits"] - base["hits"], after["misses"] - base["misses"]
        a = edge_counts_a.get(node_id)
        nodes.append({"node": node_id, "tier": "shield" if node_id.startswith("shield") else "edge",
                      "requests": after["requests"] - base["requests"],
                      "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
                      "hit_ratio_without_shield": (round(a["hits"] / (a["hits"] + a["misses"]), 4)
                                                   if a and a["hits"] + a["misses"] else None)})
    report = {
        "fleet": {"shields": spec.shields, "edges": spec.edges, "duration_s": spec.duration,
                  "objects": spec.workload.objects, "zipf": spec.workload.zipf,
                  "concurrency": spec.workload.concurrency},
        "distinct_objects": with_shield.distinct_objects,
        "distinct_objects_without_shield": without.distinct_objects,
        "origin_requests_with_shield": with_shield.origin_requests,
        "origin_requests_without_shield": without.origin_requests,
        "origin_per_object_with_shield": _ratio(with_shield.origin_requests, with_shield.distinct_objects),
        "origin_per_object_without_shield": _ratio(without.origin_requests, without.distinct_objects),
        "popular_objects": with_shield.popular_objects,
        "origin_per_popular_object_with_shield": _ratio(with_shield.popular_origin_requests,
                                                         with_shield.popular_objects),
        "origin_per_popular_object_without_shield": _ratio(without.popular_origin_requests,
                                                            without.popular_objects),
        "purge_p50_ms": purges["p50_ms"], "purge_p99_ms": purges["p99_ms"], "purge_max_ms": purges["max_ms"],
        "purges": purges, "nodes": nodes,
        "phases": {"without_shield": phase_dict(without), "with_shield": phase_dict(with_shield)},
    }
    say(format_report(report))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "fleet-report.md").write_text(format_report(report))
        say(f"plot: {write_plot(report, out_dir / 'fleet-report.png')}")
    return report


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 3) if b else None
