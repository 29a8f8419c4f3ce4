"""Fleet targets on one machine: 2 shields + 4 edges, real nats-server, real processes.

Run: python benchmarks/bench_fleet.py [--duration 20] [--purges 100]
Measures (each figure is also in the JSON, benchmarks/results/bench_fleet.json):
  * offload: Zipf(1.0) over 10k objects through 4 edges, without then with the shield
    tier: origin requests / distinct objects (target with shields <= 1.1, ~4 for the
    objects popular enough to reach every edge without them)
  * purge: URL purges sent to random nodes' admin APIs, from the call to applied on all
    6 nodes (target p99 <= 50 ms), idle and with the workload running at half the rate
    the fleet reached flat out
  * restart: an edge stopped while 100 purges are sent applies all 100 before serving
  * shield failure: one of the 2 shields SIGKILLed under load: client errors (target:
    none beyond requests in flight on it; those are retried), its keys on the survivor
  * rollout: a new filter version to all 6 nodes (target <= 2 s; the machine compiles the
    new module once, the other nodes load the compiled copy), then back to the module
    they started with; a broken module refused by every node, with the reason in fleet status
Timing figures depend on the machine: compare ratios from one run, rerun on a quiet one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wasmtime import Engine, Module  # noqa: E402

from edgenode.bench.loadgen import run_load  # noqa: E402
from edgenode.bench.spec import Workload, request_paths  # noqa: E402
from edgenode.config import StageConfig  # noqa: E402
from edgenode.fleet.fleetconfig import FleetDoc  # noqa: E402
from edgenode.fleet.localfleet import FleetSpec, LocalFleet  # noqa: E402
from edgenode.fleet.rollout import format_status, live_nodes, publish, wait_for_version  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "bench_fleet.json"
ROUTING = ROOT / "filters" / "build" / "routing.wasm"
ROUTING_CONFIG = {"default_origin": "default", "routes": [
    {"name": "health", "match": {"path_prefix": "/edge-health"}, "respond": {"status": 200, "body": "ok\n"}}]}


def with_custom_section(wasm: bytes, name: str, payload: bytes) -> bytes:
    """The same module with a custom section appended: new digest, same behaviour."""
    def leb(n: int) -> bytes:
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)
    body = leb(len(name)) + name.encode() + payload
    return wasm + b"\x00" + leb(len(body)) + body


def spec(duration: float, purges: int) -> FleetSpec:
    s = FleetSpec(name="bench", shields=2, edges=4, duration=duration, purges=purges, heartbeat=0.5, node_ttl=2.0)
    s.workload = Workload(name="fleet", objects=10_000, zipf=1.0, concurrency=16, ttl=3600, sizes=[(2048, 1.0)])
    s.node = {"chain": [{"type": "wasm", "name": "routing", "module": str(ROUTING), "config": ROUTING_CONFIG},
                        {"type": "cache"}]}
    return s


async def offload_and_purges(fleet: LocalFleet, duration: float, purges: int) -> dict:
    edges = await fleet.start_tier("edge", 4)
    without = await fleet.replay(edges, duration / 2)
    shields = await fleet.start_tier("shield", 2)
    await fleet.wait_parents(edges, 2)
    await fleet.purge_everything(edges[0])
    with_shield = await fleet.replay(edges, duration / 2)
    idle = await fleet.measure_purges(purges, [*shields, *edges])
    # the workload keeps running meanwhile, at half the rate the fleet managed flat out
    rate = 0.5 * with_shield.requests / max(0.1, with_shield.duration_s)
    load = asyncio.create_task(fleet.replay(edges, 3600, rate=rate))
    try:
        busy = await fleet.measure_purges(purges, [*shields, *edges], seed=8)
    finally:
        load.cancel()
    return {
        "distinct_objects": with_shield.distinct_objects,
        "origin_requests_with_shield": with_shield.origin_requests,
        "origin_requests_without_shield": without.origin_requests,
        "distinct_objects_without_shield": without.distinct_objects,
        "origin_per_object_with_shield": round(with_shield.origin_requests / with_shield.distinct_objects, 3),
        "origin_per_object_without_shield": round(without.origin_requests / without.distinct_objects, 3),
        "origin_per_popular_object_without_shield": round(
            without.popular_origin_requests / max(1, without.popular_objects), 3),
        "origin_per_popular_object_with_shield": round(
            with_shield.popular_origin_requests / max(1, with_shield.popular_objects), 3),
        "requests": {"without_shield": without.requests, "with_shield": with_shield.requests},
        "purge_idle": {k: v for k, v in idle.items() if k != "latencies_ms"},
        "purge_under_load": {**{k: v for k, v in busy.items() if k != "latencies_ms"},
                             "background_rps": round(rate, 1)},
        "purge_p99_ms": idle["p99_ms"],
    }


async def restart_catch_up(fleet: LocalFleet, count: int = 100) -> dict:
    edge = fleet.nodes["edge-4"]
    await edge.stop()
    via = fleet.nodes["shield-1"]
    for i in range(count):
        await via.admin("POST", "/purge", {"url": f"http://{fleet.spec.site}/obj/o{i + 1}?size=2048&ttl=3600"})
    started = time.time()
    await edge.start()
    ready = time.time()
    health = await edge.admin("GET", "/healthz")
    purges = health["fleet"]["purges"]
    log = edge.log_path.read_text().splitlines()
    caught = max((i for i, line in enumerate(log) if "caught up in" in line), default=-1)
    listening = max((i for i, line in enumerate(log) if "listening on" in line), default=-1)
    return {"purges_sent_while_down": count, "applied_at_ready": purges["applied"],
            "caught_up_before_listening": 0 <= caught < listening,
            "caught_up_at_before_ready": purges["caught_up_at"] is not None and purges["caught_up_at"] <= ready,
            "restart_to_ready_s": round(ready - started, 2)}


async def shield_failure(fleet: LocalFleet, seconds: float = 6.0) -> dict:
    edges = fleet.tier("edge")
    victim = fleet.nodes["shield-2"]
    w = fleet.spec.workload
    paths = request_paths(Workload(**{**w.__dict__, "seed": 3}))
    per = max(1, w.concurrency // len(edges))
    load = [asyncio.create_task(run_load("127.0.0.1", e.port, paths, connections=per, duration=seconds,
                                         host_header=fleet.spec.site, timeout=10.0)) for e in edges]
    await asyncio.sleep(seconds / 3)
    await victim.kill()
    results = await asyncio.gather(*load)
    errors = sum(sum(r.errors.values()) for r in results)
    non_200: dict[str, int] = {}
    for r in results:
        for code, n in r.status.items():
            if code != 200:
                non_200[str(code)] = non_200.get(str(code), 0) + n
    tiers = [(await e.admin("GET", "/healthz"))["fleet"]["tiers"] for e in edges]
    await asyncio.sleep(fleet.spec.node_ttl + 0.5)
    after = [(await e.admin("GET", "/healthz"))["fleet"]["tiers"]["parents"] for e in edges]
    return {"requests": sum(r.requests for r in results), "client_errors": errors, "non_200": non_200,
            "retried_on_another_parent": sum(t["retries"] for t in tiers),
            "sent_to_origin_instead": sum(t["origin_fallbacks"] for t in tiers),
            "victim_dropped_by_every_edge": all(not p["live"] for ps in after for p in ps if p["id"] == "shield-2")}


async def rollout(fleet: LocalFleet) -> dict:
    assert fleet.bus is not None
    if not fleet.nodes["shield-2"].alive():
        await fleet.nodes["shield-2"].start()
    key = fleet.key.encode()
    v2 = fleet.workdir / "routing-v2.wasm"
    v2.write_bytes(with_custom_section(ROUTING.read_bytes(), "edgenode-build", b"v2"))
    broken = fleet.workdir / "routing-broken.wasm"
    broken.write_bytes(ROUTING.read_bytes()[: len(ROUTING.read_bytes()) // 2])

    def doc(module: Path) -> FleetDoc:
        return FleetDoc(chain=[StageConfig("wasm", "routing", {"module": str(module), "config": ROUTING_CONFIG}),
                               StageConfig("cache", "cache")])

    await asyncio.sleep(fleet.spec.node_ttl)  # every heartbeat current
    expect = await live_nodes(fleet.bus, key, fleet.spec.node_ttl)
    t0, wall0 = time.monotonic(), time.time()
    good = await publish(fleet.bus, key, doc(v2), Path("/"))
    rows, _ = await wait_for_version(fleet.bus, key, good, 10.0, fleet.spec.node_ttl, expect)
    took = time.monotonic() - t0
    on_new = [r["id"] for r in rows if r.get("version") == good]
    digests = {r["modules"].get("routing") for r in rows}
    applied = max((r.get("applied_at") or 0) - wall0 for r in rows)
    bad = await publish(fleet.bus, key, doc(broken), Path("/"))
    rows_bad, took_bad = await wait_for_version(fleet.bus, key, bad, 10.0, fleet.spec.node_ttl, expect)
    refused = [r for r in rows_bad if (r.get("refused") or {}).get("version") == bad]
    print(format_status(rows_bad, bad))
    t1 = time.monotonic()  # back to the module the nodes started with: compiled already
    back = await publish(fleet.bus, key, doc(ROUTING), Path("/"))
    rows_back, _ = await wait_for_version(fleet.bus, key, back, 10.0, fleet.spec.node_ttl, expect)
    took_back = time.monotonic() - t1
    t2 = time.perf_counter()  # one compile of the new module, alone, for scale
    await asyncio.to_thread(Module, Engine(), v2.read_bytes())
    compile_s = time.perf_counter() - t2
    return {"nodes": len(expect), "on_new_version": len(on_new), "seconds_to_all": round(took, 3),
            "seconds_to_last_apply": round(applied, 3),
            "one_digest": len(digests) == 1,
            "broken_refused_by": len(refused), "broken_still_on": sorted({r.get("version") for r in rows_bad}),
            "refusal_reason": refused[0]["refused"]["reason"] if refused else None,
            "seconds_to_all_refusals": round(took_bad, 3),
            "back_to_first_nodes_on_it": sum(1 for r in rows_back if r.get("version") == back),
            "back_to_first_seconds_to_all": round(took_back, 3), "one_compile_seconds": round(compile_s, 3)}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=20.0, help="workload seconds (half without shields)")
    ap.add_argument("--purges", type=int, default=100)
    args = ap.parse_args()
    if not ROUTING.is_file():
        sys.exit("filters/build/routing.wasm is missing: run `make filters`")
    # a private module cache: the rollout then includes compiling the new module on every node
    os.environ["EDGENODE_CACHE_DIR"] = modules = tempfile.mkdtemp(prefix="bench-fleet-modules-")
    try:
        await run(args)
    finally:
        shutil.rmtree(modules, ignore_errors=True)


async def run(args: argparse.Namespace) -> None:
    out: dict = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()}}
    async with LocalFleet(spec(args.duration, args.purges)) as fleet:
        out["offload_and_purge"] = await offload_and_purges(fleet, args.duration, args.purges)
        print(json.dumps(out["offload_and_purge"], indent=1))
        out["restart"] = await restart_catch_up(fleet)
        print(json.dumps(out["restart"], indent=1))
        out["shield_failure"] = await shield_failure(fleet)
        print(json.dumps(out["shield_failure"], indent=1))
        out["rollout"] = await rollout(fleet)
        print(json.dumps(out["rollout"], indent=1))
    o, r, s, ro = out["offload_and_purge"], out["restart"], out["shield_failure"], out["rollout"]
    rows = [
        ("purge p99, idle (ms)", o["purge_idle"]["p99_ms"], "<= 50"),
        ("purge p99, under load (ms)", o["purge_under_load"]["p99_ms"], "<= 50"),
        ("restarted edge: purges applied before serving", f"{r['applied_at_ready']}/100", "100/100"),
        ("origin / distinct objects, with shields", o["origin_per_object_with_shield"], "<= 1.1"),
        ("origin / distinct objects, without shields", o["origin_per_object_without_shield"], "(all objects)"),
        ("origin / popular object, without shields", o["origin_per_popular_object_without_shield"], "~4"),
        ("shield killed: client errors / non-200", f"{s['client_errors']} / {sum(s['non_200'].values())}",
         "0 beyond in-flight"),
        ("shield killed: retried on the other parent", s["retried_on_another_parent"], ""),
        ("rollout to 6 nodes, seen in fleet status (s)", ro["seconds_to_all"], "<= 2"),
        ("rollout to 6 nodes, last node applied (s)", ro["seconds_to_last_apply"], "<= 2"),
        ("  of which: one compile of the module, alone (s)", ro["one_compile_seconds"], ""),
        ("rollout back to the first module (compiled already) (s)", ro["back_to_first_seconds_to_all"], "<= 2"),
        ("broken module refused by", f"{ro['broken_refused_by']}/{ro['nodes']}", "all"),
    ]
    width = max(len(r[0]) for r in rows)
    print("\n".join(f"{name.ljust(width)}  {value!s:>12}  {target}" for name, value, target in rows))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, sort_keys=True))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    asyncio.run(main())
