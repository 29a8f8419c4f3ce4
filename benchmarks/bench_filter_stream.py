"""CPU per stream of one filter's host work around a 1 KB in-memory response, no node.

A ``WasmStage`` (the routing filter with bench_proxy's routing config, the header-only
filter ``tests/wasm/wat/header_only.wat``, or the WAF filter with no rules: what its host
calls cost, bench_waf.py's "no rules" stage; a shared VM, or with ``--isolation per-request``
an instance per stream) runs its synchronous steps for a fresh ``Exchange`` per request: ``open_stream``, ``enter`` (context create + request
headers hook) and ``around`` (response headers, body hook if exported, the stream's end)
over a new 1 KB ``Response``.  Per-request instances are reset (or replaced) in idle
loop time, so that mode yields to the event loop after every stream and counts the
reset too.  No parser, cache, writer or event loop: only what a filter
adds to a hit, steady to a few per cent where the whole-hit benches move by ±20 %, so a
change of a few hundred ns in the filter's path can be read.  To compare two trees, run
each tree's copy of this script alternately (ABBA)::

    python benchmarks/bench_filter_stream.py [--filter routing|header|waf] [--n 10000] [--rounds 5]
                                             [--isolation shared|per-request]
                                             [--module other/routing.wasm] [--label x] [--on-demand]

Instruction counts, which do not move with the machine's load, come from callgrind on
two runs of different lengths (the difference over the streams between them), with
``--on-demand`` (valgrind cannot reserve the pooling allocator's address space)::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python benchmarks/bench_filter_stream.py \
        --filter header --on-demand --rounds 1 --n 1000     # then --n 4000: (I4000 - I1000) / 3000

Prints best and median µs per stream over the rounds; writes
benchmarks/results/filter_stream-<label>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgenode.config import StageConfig  # noqa: E402
from edgenode.http.messages import CIMultiDict, Request, Response  # noqa: E402
from edgenode.pipeline.exchange import Exchange  # noqa: E402
from edgenode.wasm.engine import WasmEngine  # noqa: E402
from edgenode.wasm.stage import WasmStage  # noqa: E402

ROUTING_CONFIG = {"default_origin": "default", "routes": [
    {"name": "health", "match": {"path_prefix": "/edge-health"}, "respond": {"status": 200, "body": "ok"}}]}
BODY = b"x" * 1024


def make_stage(which: str, module: str | None, isolation: str, engine: WasmEngine | None = None) -> WasmStage:
    if which == "routing":
        opts = {"module": module or str(ROOT / "filters/build/routing.wasm"), "config": ROUTING_CONFIG}
    elif which == "waf":
        opts = {"module": module or str(ROOT / "filters/build/waf.wasm"),
                "config": {"directives": "SecRuleEngine On\nSecRequestBodyAccess On"}}
    else:
        opts = {"module": module or str(ROOT / "tests/wasm/wat/header_only.wat")}
    opts["isolation"] = isolation
    return WasmStage(StageConfig(type="wasm", name=which, options=opts), base_dir=ROOT, engine=engine)


def one(stage: WasmStage) -> Exchange:
    ex = Exchange(Request("GET", "/obj?size=1k", CIMultiDict({"Host": "example.com", "User-Agent": "wrk"})))
    driver = stage.open_stream(ex)
    assert driver is not None and driver.enter(None) is None  # type: ignore[union-attr]
    out = driver.around(Response(200, CIMultiDict({"Content-Type": "text/plain", "Content-Length": "1024",  # type: ignore[union-attr]
                                                   "Cache-Control": "max-age=3600"}), BODY))
    assert isinstance(out, Response)
    return ex


async def measure(stage: WasmStage, n: int, rounds: int, per_request: bool) -> tuple[list[float], Exchange]:
    """CPU µs per stream of each round (per-request: a loop turn after each stream, where
    the used instance is reset or closed and the pool refilled)."""
    ex = None
    for _ in range(2000):
        ex = one(stage)
        if per_request:
            await asyncio.sleep(0)
    out = []
    for _ in range(rounds):
        t = time.process_time()
        for _ in range(n):
            one(stage)
            if per_request:
                await asyncio.sleep(0)
        out.append((time.process_time() - t) / n * 1e6)
    assert ex is not None
    return out, ex


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--filter", choices=("routing", "header", "waf"), default="routing")
    ap.add_argument("--isolation", choices=("shared", "per-request"), default="shared")
    ap.add_argument("--module", help="another build of the filter's module")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--label", default="latest")
    ap.add_argument("--on-demand", action="store_true",
                    help="instances without the pooling allocator, whose address space reservation "
                         "valgrind cannot make: for instruction counts under callgrind")
    args = ap.parse_args()
    engine = WasmEngine(pool_instances=0) if args.on_demand else None
    stage = make_stage(args.filter, args.module, args.isolation, engine)
    rounds, ex = asyncio.run(measure(stage, args.n, args.rounds, args.isolation == "per-request"))
    if args.filter == "routing":
        assert ex.origin == "default", ex.origin
    best, median = min(rounds), statistics.median(rounds)
    print(f"{args.filter} filter ({args.isolation}), one stream around a 1 KB response ({args.label})"
          "   best   median")
    print(f"CPU µs / stream{'':44s}{best:6.2f}  {median:6.2f}")
    out = ROOT / "benchmarks" / "results" / f"filter_stream-{args.label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"filter": args.filter, "isolation": args.isolation, "module": args.module,
                               "n": args.n, "rounds_us": [round(r, 3) for r in rounds],
                               "best_us": round(best, 3), "median_us": round(median, 3)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
