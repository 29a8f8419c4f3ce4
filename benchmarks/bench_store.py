#!/usr/bin/env python3
"""Cache store benchmark: the shared LMDB store against the in-memory store, and what
makes a multi-worker node one cache.  One table, JSON in benchmarks/results/store-<ts>.json.

Sections (``--sections``, default all):

  hit      fresh 1 KB and 100 KB hits, server CPU per request (wrk), of three single-process
           nodes up together: memory store, lmdb store, lmdb store without hot memory
           (every hit read from LMDB: one copy of the body).  Interleaved rounds, so the
           lmdb/memory ratio is from the same run.
  workers  ``edgenode bench`` with the mixed-edge workload, bounded by a request count,
           against serve --workers 1, --workers 2 and --workers 1 again (the noise band),
           cache-only chain: origin requests and hit ratio.
  purge    serve --workers 2: after each admin purge returns, both workers are asked at once
           (``only-if-cached``) until they no longer answer the object from cache: how many
           answers still had it, and the time until the 504s arrived (a request round trip
           when the purge is already visible).
  restart  serve --workers 2 under a Zipf load, ``kill -9`` of the whole node, restart on
           the same port, replay: hit ratio of the replay's first 1,000 requests against
           the last 1,000 before the kill; every body checked against ``Repr-Digest``.
  million  up to 1M small objects in one store: disk and memory per object, and lookup
           latency (read from LMDB and decoded; and from hot memory) at 1k ... 1M objects.

    python benchmarks/bench_store.py
    python benchmarks/bench_store.py --sections hit --rounds 5 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import hashlib
import itertools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_proxy as bp  # noqa: E402
from multidict import CIMultiDict  # noqa: E402

from edgenode.bench.loadgen import run_wrk  # noqa: E402
from edgenode.bench.recorder import is_hit  # noqa: E402
from edgenode.bench.spec import load_workload, request_paths  # noqa: E402

HOST = bp.HOST
RESULTS = ROOT / "benchmarks" / "results"
WORKLOAD = ROOT / "benchmarks" / "workloads" / "mixed-edge.toml"
SECTIONS = ("hit", "workers", "purge", "restart", "million")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def verified(body: bytes, digest: str) -> bool:
    return digest == f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"


# -- hit: lmdb vs memory -------------------------------------------------------------------
def section_hit(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    origin = bp.start_origin(run_dir)
    origin_port = origin.port
    kinds = (("memory", "memory", ""), ("lmdb", "lmdb", ""), ("lmdb-nohot", "lmdb", "hot_bytes = 0"))
    targets = []
    try:
        for name, store, extra in kinds:
            tdir = run_dir / f"hit-{name}"
            tdir.mkdir()
            targets.append(bp.launch_edgenode(origin_port, 1, tdir, store=store, name=name, cache=extra))
        sizes = ("1k", "100k")
        headers = {}
        for t in targets:
            for size in sizes:
                headers[(t.name, size)] = asyncio.run(bp.probe(t.port, bp.load_paths("x", size, "hit"), True))
        cpu: dict[tuple[str, str], list[float]] = {(t.name, s): [] for t in targets for s in sizes}
        rps: dict[tuple[str, str], list[float]] = {(t.name, s): [] for t in targets for s in sizes}
        for rnd in range(args.rounds):
            order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]  # no position bias
            for size in sizes:
                for t in order:
                    path = bp.load_paths("x", size, "hit")[0]  # type: ignore[index]
                    print(f"hit: round {rnd + 1}/{args.rounds} {t.name} {size} ...", file=sys.stderr, flush=True)
                    c0 = bp.tree_cpu_seconds(t.proc.pid)
                    load = run_wrk(f"http://{HOST}:{t.port}{path}", connections=args.connections,
                                   duration=args.duration, threads=2)
                    c1 = bp.tree_cpu_seconds(t.proc.pid)
                    cpu[(t.name, size)].append((c1 - c0) * 1e6 / max(1, load.requests))
                    rps[(t.name, size)].append(load.rps)
    finally:
        for t in targets:
            bp.stop(t.proc)
        bp.stop(origin.proc)
    out: dict[str, Any] = {"rounds": args.rounds, "duration_s": args.duration, "connections": args.connections,
                           "targets": {}, "ratio_lmdb_memory": {}}
    for t in targets:
        out["targets"][t.name] = {size: {"cpu_us_per_request": [round(v, 2) for v in cpu[(t.name, size)]],
                                         "median_cpu_us": round(statistics.median(cpu[(t.name, size)]), 2),
                                         "median_rps": round(statistics.median(rps[(t.name, size)])),
                                         "cache_header": headers[(t.name, size)]} for size in sizes}
    for size in sizes:
        per_round = [a / b for a, b in zip(cpu[("lmdb", size)], cpu[("memory", size)])]
        nohot = [a / b for a, b in zip(cpu[("lmdb-nohot", size)], cpu[("memory", size)])]
        out["ratio_lmdb_memory"][size] = {"per_round": [round(r, 3) for r in per_round],
                                          "median": round(statistics.median(per_round), 3),
                                          "nohot_median": round(statistics.median(nohot), 3)}
    return out


# -- node processes for the other sections ------------------------------------------------
class Serve:
    """``edgenode serve`` in its own session (so kill -9 takes the whole node)."""

    def __init__(self, run_dir: Path, origin_url: str, workers: int, port: int | None = None,
                 chain: str = "default") -> None:
        self.port = port or bp.free_port()
        self.admin_port = bp.free_port()
        state = run_dir / "state"
        cmd = [sys.executable, "-m", "edgenode", "serve", "--workers", str(workers),
               "--origin", origin_url, "--listen", f"{HOST}:{self.port}",
               "--admin-listen", f"{HOST}:{self.admin_port}", "--set", f"server.state_dir={state}",
               "--set", "log.access=off", "--set", "log.level=error", "--set", 'admin.token="bench"']
        if chain == "cache":
            conf = run_dir / "cache-only.toml"
            conf.write_text('[origins.default]\nurl = "http://127.0.0.1:9"\n[[chain]]\ntype = "cache"\n')
            cmd += ["--config", str(conf)]
        self.proc, logs = bp.spawn(cmd, run_dir, f"serve-{self.port}")
        bp.wait_ready(self.proc, self.port, logs, timeout=60)
        bp.wait_banner(self.proc, logs[1])
        self.admin = f"http://{HOST}:{self.admin_port}"

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        deadline = time.monotonic() + 10  # the workers go with the group
        while time.monotonic() < deadline and _alive_group(self.proc.pid):
            time.sleep(0.05)

    def stop(self) -> None:
        bp.stop(self.proc)


def _alive_group(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def start_origin(run_dir: Path, latency_ms: float = 0, jitter_ms: float = 0, error_rate: float = 0,
                 name: str = "origin") -> tuple[subprocess.Popen, str]:
    port = bp.free_port()
    proc, logs = bp.spawn([sys.executable, "-m", "edgenode.origin", "--listen", f"{HOST}:{port}",
                           "--latency", f"{latency_ms}ms", "--jitter", f"{jitter_ms}ms",
                           "--error-rate", str(error_rate), "--seed", "1"], run_dir, name)
    bp.wait_ready(proc, port, logs)
    return proc, f"http://{HOST}:{port}"


# -- workers: 1 vs 2 with edgenode bench ------------------------------------------------------
def section_workers(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    w = load_workload(WORKLOAD)
    runs: dict[str, Any] = {}
    for label, n in (("1", 1), ("2", 2), ("1-again", 1)):
        rdir = run_dir / f"workers-{label}"
        rdir.mkdir()
        origin, origin_url = start_origin(rdir, w.origin_latency_ms, w.origin_jitter_ms, w.origin_error_rate)
        # the cache is what is compared; the filters of the default chain would add their
        # own noise (their CPU deadline trips on a loaded machine and fails the filter)
        node = Serve(rdir, origin_url, n, chain="cache")
        try:
            print(f"workers: edgenode bench mixed-edge --requests {args.requests}, {n} worker(s) ...",
                  file=sys.stderr, flush=True)
            out_dir = rdir / "bench"
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            done = subprocess.run([sys.executable, "-m", "edgenode", "bench", str(WORKLOAD),
                                   "--url", f"http://{HOST}:{node.port}", "--origin-url", origin_url,
                                   "--metrics-url", f"{node.admin}/metrics", "--requests", str(args.requests),
                                   "--quiet", "--no-plots", "--out", str(out_dir)],
                                  capture_output=True, text=True, env=env, timeout=1800)
            if done.returncode != 0:
                raise RuntimeError(f"edgenode bench failed: {done.stderr[-2000:]}")
            result = json.loads(next(out_dir.glob("bench-*.json")).read_text())
        finally:
            node.stop()
            bp.stop(origin)
        s = result["summary"]
        runs[label] = {"workers": n, "requests": s["requests"], "hit_ratio": s["hit_ratio"],
                       "origin_requests": s["origin_requests"], "rps": s["rps"], "errors": s["errors"]}
    base, two, again = runs["1"], runs["2"], runs["1-again"]

    def diff(a: dict, b: dict) -> dict[str, float]:
        return {"origin_requests_pct": round(100 * (b["origin_requests"] - a["origin_requests"])
                                             / a["origin_requests"], 2),
                "hit_ratio_points": round(100 * (b["hit_ratio"] - a["hit_ratio"]), 2)}

    return {"workload": str(WORKLOAD.relative_to(ROOT)), "request_bound": args.requests, "runs": runs,
            "two_vs_one": diff(base, two), "noise_one_vs_one": diff(base, again)}


# -- purge visibility ---------------------------------------------------------------------------
class Raw:
    """One keep-alive connection (so it stays with one worker)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def get(self, path: str, extra: str = "") -> bytes:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n{extra}\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await self.reader.readexactly(length)
        return head


async def _per_worker_requests(session: Any, admin: str) -> list[int]:
    async with session.get(f"{admin}/stats", headers={"Authorization": "Bearer bench"}) as r:
        per = (await r.json())["per_worker"]
    return [w["requests"] for w in sorted(per, key=lambda w: w["worker"])]


async def _one_per_worker(port: int, admin: str, session: Any) -> list[Raw]:
    held: dict[int, Raw] = {}
    for i in range(400):
        conn = Raw(*await asyncio.open_connection(HOST, port))
        before = await _per_worker_requests(session, admin)
        await conn.get(f"/obj/probe{i}?size=10")
        after = await _per_worker_requests(session, admin)
        worker = next(k for k in range(len(after)) if after[k] > before[k])
        if worker not in held:
            held[worker] = conn
        else:
            conn.writer.close()
        if len(held) == len(after):
            return [held[k] for k in sorted(held)]
    raise RuntimeError("the kernel never gave a connection to every worker")


def section_purge(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    import aiohttp

    origin, origin_url = start_origin(run_dir, name="purge-origin")
    node = Serve(run_dir, origin_url, 2, chain="cache")

    async def run() -> dict[str, Any]:
        delays: list[list[float]] = [[], []]
        calls: list[float] = []
        rtt: list[float] = []
        stale = 0
        async with aiohttp.ClientSession() as s:
            conns = await _one_per_worker(node.port, node.admin, s)
            for i in range(args.purges):
                path = f"/obj/purge{i}?size=1k"
                for conn in conns + conns:  # stored by one, then decoded and kept hot by both
                    await conn.get(path)
                t0 = time.perf_counter()  # the reference: a hit on both workers at once
                await asyncio.gather(*(c.get(path, "Cache-Control: only-if-cached\r\n") for c in conns))
                rtt.append((time.perf_counter() - t0) * 1e3)
                t0 = time.perf_counter()
                async with s.post(f"{node.admin}/purge", json={"url": f"http://{HOST}{path}"},
                                  headers={"Authorization": "Bearer bench"}) as r:
                    assert (await r.json())["purged"] == 1
                returned = time.perf_counter()
                calls.append((returned - t0) * 1e3)
                async def seen_by(k: int, conn: Raw) -> int:
                    """Ask until the worker no longer has it; how many answers still had it."""
                    late = 0
                    while True:
                        head = await conn.get(path, "Cache-Control: only-if-cached\r\n")
                        if head.startswith(b"HTTP/1.1 504"):
                            delays[k].append((time.perf_counter() - returned) * 1e3)
                            return late
                        late += 1  # answered from a copy the purge should have reached

                stale += sum(await asyncio.gather(*(seen_by(k, c) for k, c in enumerate(conns))))
        every = delays[0] + delays[1]
        return {"purges": args.purges, "stale_answers_after_return": stale,
                "visible_ms": {"p50": round(pct(every, 50), 3), "p99": round(pct(every, 99), 3),
                               "max": round(max(every), 3)},
                "per_worker_p99_ms": [round(pct(d, 99), 3) for d in delays],
                "hit_round_trip_ms": {"p50": round(pct(rtt, 50), 3), "p99": round(pct(rtt, 99), 3)},
                "admin_call_ms": {"p50": round(pct(calls, 50), 3), "p99": round(pct(calls, 99), 3)}}

    try:
        print(f"purge: {args.purges} purges, 2 workers ...", file=sys.stderr, flush=True)
        return asyncio.run(run())
    finally:
        node.stop()
        bp.stop(origin)


# -- kill -9 under load, restart, replay ----------------------------------------------------------
async def _drive(port: int, paths: list[str], concurrency: int, stop_after: int | None,
                 log: list[tuple[bool, bool | None]]) -> None:
    """Send ``paths`` in order on ``concurrency`` connections; log (hit, body verified)."""
    import aiohttp

    source = iter(paths)
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=30)) as s:
        async def lane() -> None:
            for path in source:
                if stop_after is not None and len(log) >= stop_after:
                    return
                try:
                    async with s.get(f"http://{HOST}:{port}{path}") as r:
                        body = await r.read()
                        digest = r.headers.get("Repr-Digest")
                        log.append((is_hit(r.headers.get("X-Cache", "")),
                                    verified(body, digest) if digest and r.status == 200 else None))
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    return  # the node was killed

        await asyncio.gather(*(lane() for _ in range(concurrency)))


def section_restart(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    w = load_workload(WORKLOAD)
    paths = list(itertools.islice(request_paths(w), args.restart_requests + 1000))
    origin, origin_url = start_origin(run_dir, name="restart-origin")
    node = Serve(run_dir, origin_url, 2, chain="cache")
    before: list[tuple[bool, bool | None]] = []
    try:
        print(f"restart: {args.restart_requests} requests, then kill -9 under load ...", file=sys.stderr,
              flush=True)

        async def load_then_kill() -> None:
            driver = asyncio.create_task(_drive(node.port, paths, 16, None, before))
            while len(before) < args.restart_requests and not driver.done():
                await asyncio.sleep(0.01)
            node.kill9()  # requests still in flight: some bodies half written
            await driver

        asyncio.run(load_then_kill())
        killed_at = len(before)
        node = Serve(run_dir, origin_url, 2, port=node.port, chain="cache")  # same port: same keys
        after: list[tuple[bool, bool | None]] = []
        asyncio.run(_drive(node.port, paths, 16, 1000, after))
        request = urllib.request.Request(f"{node.admin}/stats", headers={"Authorization": "Bearer bench"})
        with urllib.request.urlopen(request, timeout=10) as r:
            stats = json.loads(r.read())
    finally:
        node.stop()
        bp.stop(origin)
    last = before[max(0, killed_at - 1000):killed_at]
    checked = [v for _, v in before + after if v is not None]
    return {"requests_before_kill": killed_at,
            "hit_ratio_last_1000_before_kill": round(sum(h for h, _ in last) / len(last), 4),
            "hit_ratio_first_1000_after_restart": round(sum(h for h, _ in after) / len(after), 4),
            "bodies_verified": len(checked), "corrupt_bodies": checked.count(False),
            "objects_after_restart": stats.get("cache", {}).get("entries")}


# -- 1M small objects ------------------------------------------------------------------------------
def _rss() -> dict[str, int]:
    """Resident memory of this process: anonymous (its heap) and file-backed (mapped
    LMDB pages it touched, which the kernel may drop and re-read at any time)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("RssAnon:", "RssFile:")):
            out[line.split(":")[0]] = int(line.split()[1]) * 1024
    return out


_PROBE = """
import json, random, sys, time
from pathlib import Path
from multidict import CIMultiDict
sys.path.insert(0, sys.argv[4])
from bench_store import _rss, pct
from edgenode.cache.lmdb_store import SharedStore
from edgenode.config import CacheConfig
rss0 = _rss()
store = SharedStore(CacheConfig(max_bytes=64 << 30, max_object_bytes=1 << 20), Path(sys.argv[1]), owner=False)
count, rng = int(sys.argv[2]), random.Random(int(sys.argv[3]))
keys = [f"http://a.test/obj/{rng.randrange(count)}" for _ in range(20_000)]
limit, store._hot_limit = store._hot_limit, 0  # every lookup reads LMDB and decodes
cold = []
for k in keys:
    t = time.perf_counter_ns()
    assert store.lookup_lazy(k, CIMultiDict) is not None
    cold.append((time.perf_counter_ns() - t) / 1e3)
store._hot_limit = limit
popular = keys[:500]
for k in popular:
    store.lookup_lazy(k, CIMultiDict)
hot = []
for k in popular * 20:
    t = time.perf_counter_ns()
    store.lookup_lazy(k, CIMultiDict)
    hot.append((time.perf_counter_ns() - t) / 1e3)
rss = _rss()
print(json.dumps({"heap": rss["RssAnon"] - rss0["RssAnon"], "mapped": rss["RssFile"] - rss0["RssFile"],
                  "hot_bytes": store.stats()["hot_bytes"],
                  "lmdb_us": [pct(cold, 50), pct(cold, 99)], "hot_us": [pct(hot, 50), pct(hot, 99)]}))
store.close()
"""


def section_million(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    """Fill one store in this process (the owner, in bulk); at each size a fresh process
    opens it as a worker does and measures lookups and its own memory."""
    from edgenode.cache.codec import encode
    from edgenode.cache.lmdb_store import SharedStore
    from edgenode.cache.policy import build_entry
    from edgenode.config import CacheConfig

    now = time.time()
    template = build_entry(key="http://a.test/t", url="http://a.test/t", status=200, reason="OK",
                           resp_headers=CIMultiDict({"Cache-Control": "max-age=86400",
                                                     "Content-Type": "text/plain"}),
                           body=b"s" * args.small_size, req_headers=CIMultiDict(), request_time=now,
                           response_time=now, heuristic_fraction=0.1, heuristic_max=86400)

    def entry(i: int) -> Any:
        e = copy.copy(template)
        e.key = e.url = f"http://a.test/obj/{i}"
        return e

    path = run_dir / "million"
    store = SharedStore(CacheConfig(max_bytes=64 << 30, max_object_bytes=1 << 20), path)
    rows = []
    done = 0
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        for target in [n for n in (1_000, 10_000, 100_000, 1_000_000) if n <= args.objects]:
            print(f"million: storing up to {target:,} objects ...", file=sys.stderr, flush=True)
            while done < target:
                batch = [entry(i) for i in range(done, min(target, done + 10_000))]
                # the store's own insert, many objects per transaction (a bulk load)
                store._write(lambda w, b=batch: [w.insert(e, encode(e)) for e in b], None)
                done += len(batch)
            probe = subprocess.run([sys.executable, "-c", _PROBE, str(path), str(done), "1",
                                    str(Path(__file__).resolve().parent)],
                                   capture_output=True, text=True, env=env, timeout=600)
            if probe.returncode != 0:
                raise RuntimeError(f"probe failed: {probe.stderr[-2000:]}")
            m = json.loads(probe.stdout)
            with store.env.begin() as txn:
                pages = sum(sum(txn.stat(db)[k] for k in ("branch_pages", "leaf_pages", "overflow_pages"))
                            for db in store.files.dbs.values())
            rows.append({"objects": done, "body_bytes": args.small_size,
                         "disk_bytes_per_object": round((path / "data.mdb").stat().st_blocks * 512 / done, 1),
                         "btree_bytes_per_object": round(pages * 4096 / done, 1),
                         "worker_heap_bytes": m["heap"], "worker_hot_bytes": m["hot_bytes"],
                         "worker_mapped_bytes_per_object": round(m["mapped"] / done, 1),
                         "lookup_lmdb_us": {"p50": round(m["lmdb_us"][0], 2), "p99": round(m["lmdb_us"][1], 2)},
                         "lookup_hot_us": {"p50": round(m["hot_us"][0], 2), "p99": round(m["hot_us"][1], 2)}})
    finally:
        store.close()
    return {"rows": rows,
            "note": "worker heap: a fresh process after 20,000 random lookups and 500 hot keys (its "
                    "hot objects are bounded by [cache] hot_bytes, not by the object count); mapped: "
                    "LMDB pages it touched, page cache the kernel may reclaim"}


# -- report ------------------------------------------------------------------------------------------
def print_report(report: dict[str, Any]) -> None:
    print(f"\nedgenode cache store benchmark ({report['machine']['cpus']} CPUs, "
          f"Python {report['machine']['python']})")
    hit = report.get("hit")
    if hit:
        print(f"\nfresh hits, CPU µs/request (median of {hit['rounds']} interleaved rounds x "
              f"{hit['duration_s']} s, wrk {hit['connections']} connections)")
        print(f"{'store':<12} {'1 KB µs':>9} {'1 KB req/s':>11} {'100 KB µs':>10} {'100 KB req/s':>13}")
        for name, t in hit["targets"].items():
            print(f"{name:<12} {t['1k']['median_cpu_us']:>9.2f} {t['1k']['median_rps']:>11,} "
                  f"{t['100k']['median_cpu_us']:>10.2f} {t['100k']['median_rps']:>13,}")
        for size, r in hit["ratio_lmdb_memory"].items():
            print(f"lmdb / memory, {size}: median x{r['median']:.3f} (rounds: "
                  f"{', '.join(f'{v:.2f}' for v in r['per_round'])}); without hot memory x{r['nohot_median']:.3f}")
    wk = report.get("workers")
    if wk:
        print(f"\nworkers (edgenode bench {wk['workload']}, --requests {wk['request_bound']})")
        print(f"{'run':<9} {'workers':>7} {'requests':>9} {'hit ratio':>9} {'origin req':>10} {'req/s':>8}")
        for label, r in wk["runs"].items():
            print(f"{label:<9} {r['workers']:>7} {r['requests']:>9} {r['hit_ratio'] * 100:>8.2f}% "
                  f"{r['origin_requests']:>10} {r['rps']:>8,.0f}")
        t, n = wk["two_vs_one"], wk["noise_one_vs_one"]
        print(f"2 vs 1 worker: origin requests {t['origin_requests_pct']:+.2f}%, hit ratio "
              f"{t['hit_ratio_points']:+.2f} pts (1 vs 1 again: {n['origin_requests_pct']:+.2f}%, "
              f"{n['hit_ratio_points']:+.2f} pts)")
    pg = report.get("purge")
    if pg:
        v = pg["visible_ms"]
        print(f"\npurge visible in both workers after the admin call returned ({pg['purges']} purges): "
              f"p50 {v['p50']} ms, p99 {v['p99']} ms, max {v['max']} ms; stale answers "
              f"{pg['stale_answers_after_return']}; admin call p50 {pg['admin_call_ms']['p50']} ms; "
              f"a hit on both workers (reference) p50 {pg['hit_round_trip_ms']['p50']} ms, "
              f"p99 {pg['hit_round_trip_ms']['p99']} ms")
    rs = report.get("restart")
    if rs:
        print(f"\nkill -9 under load after {rs['requests_before_kill']} requests, restart, replay: hit ratio "
              f"{rs['hit_ratio_last_1000_before_kill'] * 100:.1f}% (last 1,000 before) -> "
              f"{rs['hit_ratio_first_1000_after_restart'] * 100:.1f}% (first 1,000 after); "
              f"{rs['corrupt_bodies']} corrupt of {rs['bodies_verified']} bodies checked; "
              f"{rs['objects_after_restart']} objects kept")
    mil = report.get("million")
    if mil:
        print(f"\nsmall objects ({mil['rows'][0]['body_bytes']} B bodies) in one store")
        print(f"{'objects':>10} {'disk B/obj':>10} {'B-tree B/obj':>12} {'worker heap MB':>14} "
              f"{'mapped B/obj':>12} {'LMDB lookup p50/p99 µs':>23} {'hot p50/p99 µs':>15}")
        for r in mil["rows"]:
            c, h = r["lookup_lmdb_us"], r["lookup_hot_us"]
            print(f"{r['objects']:>10,} {r['disk_bytes_per_object']:>10} {r['btree_bytes_per_object']:>12} "
                  f"{r['worker_heap_bytes'] / 1e6:>14.1f} {r['worker_mapped_bytes_per_object']:>12} "
                  f"{c['p50']:>11.2f}/{c['p99']:<11.2f} {h['p50']:>7.2f}/{h['p99']:<7.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--rounds", type=int, default=3, help="hit: interleaved rounds")
    parser.add_argument("--duration", type=float, default=5.0, help="hit: seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64, help="hit: wrk connections")
    parser.add_argument("--requests", type=int, default=40_000, help="workers: requests per run")
    parser.add_argument("--purges", type=int, default=200, help="purge: purges measured")
    parser.add_argument("--restart-requests", type=int, default=15_000,
                        help="restart: requests before the kill")
    parser.add_argument("--objects", type=int, default=1_000_000, help="million: objects at most")
    parser.add_argument("--small-size", type=int, default=256, help="million: body bytes")
    parser.add_argument("--output", type=Path, help="JSON path (default benchmarks/results/store-<ts>.json)")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"--sections: unknown {', '.join(sorted(unknown))}")
    if "hit" in chosen and not bp.wrk_available():
        parser.error("the hit section needs wrk (make system installs it)")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report: dict[str, Any] = {"timestamp": stamp, "machine": {"cpus": os.cpu_count(),
                                                              "python": platform.python_version(),
                                                              "platform": platform.platform()}}
    runners = {"hit": section_hit, "workers": section_workers, "purge": section_purge,
               "restart": section_restart, "million": section_million}
    with tempfile.TemporaryDirectory(prefix="edgenode-store-bench-") as tmp:
        for name in chosen:
            sdir = Path(tmp) / name
            sdir.mkdir()
            report[name] = runners[name](args, sdir)
    print_report(report)
    bp.write_report(report, args.output or RESULTS / f"store-{stamp}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
