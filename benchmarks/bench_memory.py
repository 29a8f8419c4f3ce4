#!/usr/bin/env python3
"""Memory of a filter chain: per-VM baseline, per-stream host state, growth over a long run.

The node runs in this process (pinned to ``--pin``, default CPU 0) with the header-only
filter (``tests/wasm/wat/header_only.wat``, shared VM) before the cache, so the bench can
read the filter VM's linear memory directly; wrk (on the other CPUs) and the simulated
origin are separate processes on 127.0.0.1.  It reports:

* **per-VM baseline**: the shared VM's linear memory after start-up, and the resident
  memory (VmRSS) the filter stage adds to a node built without it (the same config minus
  the filter, built first in this process: compiled module, instance, host state);
* **growth**: ``--requests`` 1 KB cache hits (default 1,000,000) driven by wrk in
  ``--checkpoints`` slices; after each, VmRSS, the VM's linear memory and the number of
  GC-tracked Python objects (after a collection).  Growth is measured from the first
  checkpoint (after a 2 s warm-up: allocators and caches warmed) to the last;
* **per-stream host state**: ``--streams`` requests held in flight at once (a slow
  origin URL, each a new key so none collapse), RSS, Python allocated blocks and VM
  memory with them open minus before, divided by the count; and after they end (what
  stays).

``--isolation per-request`` runs the filter with a fresh instance per request instead: no
long-lived VM, and a held stream's figures then include its instance (the per-VM cost of
that mode is the difference from the shared run's).  Its per-VM baseline is the instances
waiting in the stage's pool (started ahead, or reset after a stream): how many, and their
linear memory, at start-up and after the run (the pool follows the concurrency seen).

Prints a table and writes benchmarks/results/memory-<timestamp>.json.

    python benchmarks/bench_memory.py                        # 1M requests, 200 streams
    python benchmarks/bench_memory.py --requests 100000 --checkpoints 5
    python benchmarks/bench_memory.py --isolation per-request --requests 200000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_proxy import HOST, RESULTS, header_only_stage, rss_kib, start_origin, stop, write_report  # noqa: E402

from edgenode.bench.loadgen import parse_wrk_output, wrk_available  # noqa: E402
from edgenode.config import load_config  # noqa: E402
from edgenode.frontend.server import install_event_loop  # noqa: E402
from edgenode.node import Node, tune_gc  # noqa: E402

HIT_PATH = "/obj/memory-1k?size=1k&ttl=3600"


def node_config(run_dir: Path, origin_port: int, store: str, isolation: str | None) -> Path:
    """The node's config: the header-only filter (``isolation``; None: no filter), the cache."""
    with_filter = isolation is not None
    name = "filter" if with_filter else "cache-only"
    path = run_dir / f"{name}.toml"
    path.write_text(f"""\
[server]
listen = "{HOST}:0"
state_dir = "{run_dir / ('state-' + name)}"

[admin]
listen = "off"

[cache]
store = "{store}"

[origins.default]
url = "http://{HOST}:{origin_port}"

{header_only_stage(isolation) if isolation else ""}
[[chain]]
type = "cache"

[log]
access = "off"
""")
    return path


def vm_memory(node: Node) -> int:
    """Bytes of linear memory of the node's shared filter VMs."""
    total = 0
    for stage in node.stages:
        vm = getattr(stage, "vm", None)
        if vm is not None and not vm.closed:
            mem = vm.mem
            mem.stale = True
            total += len(mem.refresh())
    return total


def pooled(node: Node) -> dict[str, int]:
    """Per-request instances waiting in the stages' pools, and their linear memory."""
    vms = [vm for stage in node.stages for vm in getattr(stage, "_pool", ()) if not vm.closed]
    memory = 0
    for vm in vms:
        vm.mem.stale = True
        memory += len(vm.mem.refresh())
    return {"instances": len(vms), "linear_memory_bytes": memory}


def sample(node: Node) -> dict[str, int | None]:
    gc.collect()
    return {"rss_kib": rss_kib(os.getpid()), "vm_memory_bytes": vm_memory(node),
            "py_objects": len(gc.get_objects()), "py_blocks": sys.getallocatedblocks()}


async def wrk(port: int, path: str, seconds: float, connections: int, cpus: str) -> int:
    """wrk for ``seconds`` against ``path`` (on ``cpus``); the requests it completed."""
    cmd = [wrk_available() or "wrk", "--latency", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s",
           f"http://{HOST}:{port}{path}"]
    if cpus and shutil.which("taskset"):
        cmd = ["taskset", "-c", cpus] + cmd
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {err.decode(errors='replace')}")
    result = parse_wrk_output(out.decode())
    bad = sum(v for k, v in result.status.items() if k not in ("200", "2xx/3xx")) + sum(result.errors.values())
    if bad:
        raise RuntimeError(f"wrk saw {bad} errors or non-2xx answers: {out.decode()}")
    return result.requests


async def get(port: int, path: str) -> int:
    """One GET on a fresh connection; the status."""
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench.example\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    return int(data.split(b" ", 2)[1])


async def held_streams(node: Node, port: int, n: int, latency_ms: int) -> dict[str, Any]:
    """Memory with ``n`` requests in flight through the filter (the origin answers late)."""
    before = sample(node)
    tag = time.monotonic_ns()
    tasks = [asyncio.ensure_future(get(port, f"/obj/held-{tag}-{i}?size=1k&ttl=3600&latency_ms={latency_ms}"))
             for i in range(n)]
    await asyncio.sleep(min(1.0, latency_ms / 3000))  # every request parsed and past the filter
    during = sample(node)
    statuses = await asyncio.gather(*tasks)
    after = sample(node)

    def per(key: str, a: dict, b: dict) -> float | None:
        if a[key] is None or b[key] is None:
            return None
        return round((b[key] - a[key]) / n, 2)

    return {"streams": n, "origin_latency_ms": latency_ms, "before": before, "during": during,
            "after": after, "statuses": sorted(set(statuses)),
            "per_stream": {"rss_bytes": None if per("rss_kib", before, during) is None
                           else round(per("rss_kib", before, during) * 1024),  # type: ignore[operator]
                           "py_blocks": per("py_blocks", before, during),
                           "py_objects": per("py_objects", before, during),
                           "vm_memory_bytes": per("vm_memory_bytes", before, during)},
            "kept_after": {"rss_kib": after["rss_kib"] - before["rss_kib"],  # type: ignore[operator]
                           "py_objects": after["py_objects"] - before["py_objects"]}}  # type: ignore[operator]


async def run(args: argparse.Namespace, origin_port: int, run_dir: Path) -> dict[str, Any]:
    report: dict[str, Any] = {}
    # per-VM baseline: the same node without the filter first, then with it
    base = Node(load_config(node_config(run_dir, origin_port, args.store, None)))
    await base.start(HOST, 0)
    gc.collect()
    rss_plain = rss_kib(os.getpid())
    node = Node(load_config(node_config(run_dir, origin_port, args.store, args.isolation)))
    await node.start(HOST, 0)
    gc.collect()
    rss_filter = rss_kib(os.getpid())
    await base.stop(1.0)
    tune_gc()  # as a serving process does (Node.run)
    port = node.port
    assert await get(port, HIT_PATH) == 200
    report["vm_baseline"] = {"vm_memory_bytes": vm_memory(node),
                             "rss_added_by_filter_stage_kib": rss_filter - rss_plain,  # type: ignore[operator]
                             "rss_node_without_filter_kib": rss_plain, "pool": pooled(node)}
    report["streams_cold"] = await held_streams(node, port, args.streams, args.latency_ms)
    # growth over the long run, in slices of about requests/checkpoints
    per_slice = args.requests / args.checkpoints
    started = time.monotonic()
    done = await wrk(port, HIT_PATH, 2.0, args.connections, args.load_cpus)  # warm-up, and the rate
    rate = done / (time.monotonic() - started)
    checkpoints = [{"requests": done, **sample(node)}]
    while done < args.requests:
        seconds = max(1.0, min(60.0, (min(per_slice, args.requests - done)) / rate))
        t0 = time.monotonic()
        got = await wrk(port, HIT_PATH, seconds, args.connections, args.load_cpus)
        rate = max(100.0, got / (time.monotonic() - t0))
        done += got
        checkpoints.append({"requests": done, **sample(node)})
        print(f"  {done:>9,} requests  rss {checkpoints[-1]['rss_kib']:>7,} KiB  "
              f"vm {checkpoints[-1]['vm_memory_bytes']:>9,} B  objects {checkpoints[-1]['py_objects']:>8,}",
              file=sys.stderr, flush=True)
    report["run"] = {"requests": done, "seconds": round(time.monotonic() - started, 1),
                     "connections": args.connections, "checkpoints": checkpoints}
    first, last = checkpoints[0], checkpoints[-1]
    report["growth"] = {"from_requests": first["requests"], "to_requests": last["requests"],
                        "rss_kib": last["rss_kib"] - first["rss_kib"],  # type: ignore[operator]
                        "vm_memory_bytes": last["vm_memory_bytes"] - first["vm_memory_bytes"],  # type: ignore[operator]
                        "py_objects": last["py_objects"] - first["py_objects"]}  # type: ignore[operator]
    report["pool_after_run"] = pooled(node)
    report["streams_after_run"] = await held_streams(node, port, args.streams, args.latency_ms)
    await node.stop(1.0)
    return report


def print_report(r: dict[str, Any]) -> None:
    b, g = r["vm_baseline"], r["growth"]
    print(f"\nheader-only filter ({r['chain'][0]}) before the cache, {r['store']} store, one process")
    print(f"{'figure':<58} {'value':>14}")
    print("-" * 73)
    rows = [
        ("per-VM baseline: linear memory (bytes)", f"{b['vm_memory_bytes']:,}"),
        ("per-VM baseline: RSS the filter stage adds (KiB)", f"{b['rss_added_by_filter_stage_kib']:,}"),
    ]
    if r["isolation"] == "per-request":
        for label, pool in (("at start-up", b["pool"]), ("after the run", r["pool_after_run"])):
            per = pool["linear_memory_bytes"] // pool["instances"] if pool["instances"] else 0
            rows.append((f"pooled instances {label}: count / linear memory each (bytes)",
                         f"{pool['instances']} / {per:,}"))
    for label, key in (("cold", "streams_cold"), ("after the run", "streams_after_run")):
        s = r[key]
        p = s["per_stream"]
        rows += [
            (f"per-stream host state, {s['streams']} streams {label}: RSS (bytes)", f"{p['rss_bytes']:,}"),
            (f"  Python allocated blocks per stream", f"{p['py_blocks']:,}"),
            (f"  GC-tracked objects per stream", f"{p['py_objects']:,}"),
            (f"  guest linear memory per stream (bytes)", f"{p['vm_memory_bytes']:,}"),
            (f"  kept after the streams ended: RSS KiB / objects",
             f"{s['kept_after']['rss_kib']:,} / {s['kept_after']['py_objects']:,}"),
        ]
    rows += [
        (f"requests driven (wrk, {r['run']['connections']} connections, 1 KB hits)", f"{r['run']['requests']:,}"),
        (f"growth {g['from_requests']:,} -> {g['to_requests']:,} requests: RSS (KiB)", f"{g['rss_kib']:,}"),
        ("  guest linear memory (bytes)", f"{g['vm_memory_bytes']:,}"),
        ("  GC-tracked Python objects", f"{g['py_objects']:,}"),
    ]
    for label, value in rows:
        print(f"{label:<58} {value:>14}")
    print(f"verdict: {'no growth' if r['no_growth'] else 'GROWS'} "
          f"(RSS within {r['tolerance_kib']} KiB, VM memory and Python objects flat)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--checkpoints", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--streams", type=int, default=200, help="requests held in flight for the per-stream figure")
    parser.add_argument("--latency-ms", type=int, default=3000, help="origin delay that holds them")
    parser.add_argument("--store", choices=("lmdb", "memory"), default="lmdb")
    parser.add_argument("--isolation", choices=("shared", "per-request"), default="shared",
                        help="per-request: a fresh instance per stream, so a held stream's figures "
                        "include its VM")
    parser.add_argument("--pin", default="0", help="CPU of the node (this process); wrk and the origin use the others")
    parser.add_argument("--tolerance-kib", type=int, default=2048, help="RSS change still called flat")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if wrk_available() is None:
        parser.error("wrk is not installed (benchmarks/setup_reference.sh)")
    cpus = set(range(os.cpu_count() or 1))
    pin = {int(c) for c in args.pin.split(",") if c.isdigit()}
    args.load_cpus = ",".join(str(c) for c in sorted(cpus - pin)) if cpus - pin else ""
    install_event_loop()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory(prefix="edgenode-memory-") as tmp:
        run_dir = Path(tmp)
        if args.load_cpus:
            os.sched_setaffinity(0, {int(c) for c in args.load_cpus.split(",")})
        origin = start_origin(run_dir)  # inherits the load CPUs
        origin_port = origin.port
        try:
            if pin:
                os.sched_setaffinity(0, pin)
            report = asyncio.run(run(args, origin_port, run_dir))
        finally:
            stop(origin.proc)
    report.update(timestamp=stamp, store=args.store, tolerance_kib=args.tolerance_kib, isolation=args.isolation,
                  chain=[f"header-only ({args.isolation})", "cache"],
                  machine={"cpus": os.cpu_count(), "python": platform.python_version(),
                           "loadavg": os.getloadavg()})
    g = report["growth"]
    report["no_growth"] = (abs(g["rss_kib"]) <= args.tolerance_kib and g["vm_memory_bytes"] == 0
                           and g["py_objects"] <= 1000)
    print_report(report)
    write_report(report, args.output or RESULTS / f"memory-{stamp}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
