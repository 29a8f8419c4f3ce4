"""Benchmark edge functions: cold start and per-request host overhead per guest language,
and the cached function response against the cache-only hit path.

Run: python benchmarks/bench_functions.py [--quick] [--compile]
(after `make functions`).  Prints one table per guest language and writes
benchmarks/results/bench_functions.json.

Per language (C written against the canonical ABI: the small-component case; JavaScript;
Python), two handlers of the example functions: ``hello`` (GET, plain text) and
``echo`` (POST of a 1 KB JSON body, answered with JSON).  Per handler, three modes:
a fresh instance started inside the request, fresh instances prewarmed in idle loop
iterations (what a serving node does), and reuse of one instance.  Host overhead =
time in the function stage minus time in guest code.  Targets: host overhead p50
<= 200 µs fresh, <= 100 µs reuse.

The cache comparison times fresh hits through [cache, function] and through [cache]
alone, in-process, in the same run: a cached function response never calls the function,
so the two should match (ratio ~1.0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgenode.cache.stage import CacheStage  # noqa: E402
from edgenode.config import CacheConfig, StageConfig  # noqa: E402
from edgenode.functions.cost import MODES, cold_start, request_cost  # noqa: E402
from edgenode.functions.stage import FunctionStage  # noqa: E402
from edgenode.http.messages import CIMultiDict, Request, Response, read_body  # noqa: E402
from edgenode.pipeline.exchange import Exchange  # noqa: E402
from edgenode.pipeline.stage import build_chain  # noqa: E402

BUILD = ROOT / "edgenode" / "functions" / "examples" / "build"
LANGS = {"c": (BUILD / "hello-c.wasm", "/fn/c/"), "js": (BUILD / "hello-js.wasm", "/fn/js/"),
         "python": (BUILD / "hello-py.wasm", "/fn/py/")}
ECHO_BODY = json.dumps({f"k{i}": "v" * 20 for i in range(35)}).encode()  # 1071 bytes
OPTIONS = {"variables": {"greeting": "hello"}}


async def cache_comparison(component: Path, prefix: str, n: int) -> dict[str, Any]:
    """Seconds per fresh hit: [cache, function] vs [cache] over an origin stub."""

    async def origin(exchange: Exchange) -> Response:
        return Response(200, CIMultiDict({"Content-Type": "text/plain", "Cache-Control": "max-age=600"}),
                        b"hello from the origin\n")

    fn = FunctionStage(StageConfig("function", "bench", {**OPTIONS, "component": str(component)}),
                       base_dir=component.parent, prewarm=0)
    with_fn = build_chain([CacheStage(CacheConfig(), name="cache"), fn], origin)
    cache_only = build_chain([CacheStage(CacheConfig(), name="cache")], origin)
    out: dict[str, Any] = {}
    try:
        for label, chain in (("cache+function", with_fn), ("cache only", cache_only)):
            target = prefix + "hello"

            async def one() -> Response:
                return await chain(Exchange(Request("GET", target, CIMultiDict({"host": "bench.example"}))))

            first = await one()
            await read_body(first.body)
            best = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(n):
                    resp = await one()
                    await read_body(resp.body)
                best = min(best, (time.perf_counter() - t0) / n)
            out[label] = {"us_per_hit": round(best * 1e6, 2), "x_cache": resp.headers.get("x-cache", "")}
        out["function_calls_on_hits"] = fn.metrics.requests - 1
        out["ratio"] = round(out["cache+function"]["us_per_hit"] / out["cache only"]["us_per_hit"], 3)
    finally:
        await fn.close()
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": platform.platform(), "python": sys.version.split()[0],
                              "iterations": args.n, "languages": {}}
    for lang, (component, prefix) in LANGS.items():
        if not component.is_file():
            raise SystemExit(f"{component}: not built (run `make functions`)")
        cold = cold_start(component, compile_too=args.compile)
        entry: dict[str, Any] = {"component": str(component.relative_to(ROOT)), "cold_start": vars(cold),
                                 "handlers": {}}
        for handler, method, body in (("hello", "GET", b""), ("echo 1 KB JSON", "POST", ECHO_BODY)):
            route = prefix + ("hello" if handler == "hello" else "echo")
            rows = {}
            for mode in MODES:
                cost = await request_cost(component, mode=mode, method=method, path=route, body=body,
                                          iterations=args.n, options=OPTIONS)
                rows[mode] = cost.summary()
            entry["handlers"][handler] = rows
        entry["cache_hit"] = await cache_comparison(component, prefix, args.hits)
        report["languages"][lang] = entry
    return report


def print_tables(report: dict[str, Any]) -> None:
    for lang, entry in report["languages"].items():
        c = entry["cold_start"]
        compile_txt = f", compile {c['compile_ms']:.0f} ms" if c["compile_ms"] is not None else ""
        print(f"\n== {lang}: {entry['component']} ({c['size_bytes'] / 1e6:.1f} MB) — cold start: load "
              f"{c['load_ms']:.1f} ms (cached compile + link) + first instance {c['first_instance_ms']:.2f} ms"
              f"{compile_txt}")
        print(f"{'handler':<16}{'mode':<18}{'host p50':>10}{'host p90':>10}{'guest p50':>11}"
              f"{'total p50':>11}{'total p90':>11}{'inst':>6}  status")
        for handler, rows in entry["handlers"].items():
            for mode, r in rows.items():
                print(f"{handler:<16}{mode:<18}{r['host_p50_us']:>8.1f}µs{r['host_p90_us']:>8.1f}µs"
                      f"{r['guest_p50_us']:>9.1f}µs{r['total_p50_us']:>9.1f}µs{r['total_p90_us']:>9.1f}µs"
                      f"{r['instances']:>6}  {','.join(map(str, r['statuses']))}")
        h = entry["cache_hit"]
        print(f"cached response: {h['cache+function']['us_per_hit']:.2f} µs/hit with the function stage vs "
              f"{h['cache only']['us_per_hit']:.2f} µs cache only (ratio {h['ratio']:.3f}; function calls "
              f"on hits: {h['function_calls_on_hits']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300, help="requests per mode and handler")
    ap.add_argument("--hits", type=int, default=3000, help="cache hits per timing round")
    ap.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    ap.add_argument("--compile", action="store_true", help="also time compiling each component")
    args = ap.parse_args()
    if args.quick:
        args.n, args.hits = 40, 300
    logging.basicConfig(level=logging.ERROR)
    report = asyncio.run(run(args))
    print_tables(report)
    out = ROOT / "benchmarks" / "results" / "bench_functions.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=list))
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
