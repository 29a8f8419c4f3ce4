"""WAF benchmark: OWASP CRS v4 in the WAF filter, agreement with libmodsecurity and latency.

    python benchmarks/bench_waf.py                       # everything (~1-2 min on 2 cores)
    python benchmarks/bench_waf.py --skip-corpus         # latency, compile time and memory only
    python benchmarks/bench_waf.py --rounds 400 --json benchmarks/results/waf.json

1. Agreement: a node per paranoia level (benchmarks/configs/waf-crs.toml, CRS from
   ../shared/crs unchanged; PL2 sets tx.blocking_paranoia_level=2) on 127.0.0.1:0, scored
   by ../shared/waf-corpus/score.py against libmodsecurity + CRS's verdicts (crs.pl1 /
   crs.pl2): recall, over-blocking, per family, per-rule detection.  Its tables are
   printed as score.py prints them.
2. Latency inside the node, per request class (benign GET with 10 headers and 5 query
   arguments, 4 KB form POST, 64 KB JSON POST): the WAF stage and an empty chain run the
   same requests in the same process, one after the other; "added" = stage - empty at
   p50 and p99.  Timings are noisy on a shared machine: compare ratios of one run.
3. Rule compile time at configure (the filter's own figure) and the VM's linear memory
   with CRS loaded, before and after the latency run.
Results: a table on stdout and JSON (--json).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SCORE = ROOT.parent / "shared" / "waf-corpus" / "score.py"
CONFIG = ROOT / "benchmarks" / "configs" / "waf-crs.toml"
RESULTS = ROOT / "benchmarks" / "results" / "waf.json"


def crs_config(paranoia: int):
    """benchmarks/configs/waf-crs.toml at the given paranoia level (listen/origin on 127.0.0.1)."""
    from edgenode.config import load_config, with_overrides

    cfg = with_overrides(load_config(str(CONFIG)), listen="127.0.0.1:0", origin="http://127.0.0.1:9",
                         workers=1, admin_listen="off")
    waf = next(s for s in cfg.chain if s.name == "waf")
    opts = copy.deepcopy(waf.options)
    opts["config"]["directives"] = [re.sub(r"blocking_paranoia_level=\d", f"blocking_paranoia_level={paranoia}", d)
                                    for d in opts["config"]["directives"]]
    waf.options = opts
    return cfg


async def score_corpus(paranoia: int) -> dict[str, Any]:
    """Run score.py against a fresh node at `paranoia`; return its JSON and printed report."""
    from edgenode.node import Node

    node = Node(crs_config(paranoia), admin=False)
    await node.start("127.0.0.1", 0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "score.json"
            proc = await asyncio.to_thread(
                subprocess.run, [sys.executable, str(SCORE), "--target", f"127.0.0.1:{node.port}",
                                 "--paranoia", str(paranoia), "--json", str(out)],
                capture_output=True, text=True)
            doc = json.loads(out.read_text())
    finally:
        await node.stop(1.0)
    doc.pop("results", None)
    doc["report"] = proc.stdout
    return doc


# ---- latency ---------------------------------------------------------------------------
HEADERS = {"Host": "shop.example.com", "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
           "(KHTML, like Gecko) Chrome/126.0 Safari/537.36", "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
           "Accept-Language": "en-US,en;q=0.9", "Accept-Encoding": "gzip, deflate, br",
           "Cookie": "session=6f1c2a9e; theme=dark", "Referer": "https://shop.example.com/home",
           "Cache-Control": "no-cache", "Connection": "keep-alive", "X-Request-Id": "bench-1"}


def request_classes() -> dict[str, tuple[str, str, dict[str, str], bytes]]:
    form = "&".join(f"field{i}=" + "some+ordinary+form+text+" * 4 for i in range(40))[:4096].encode()
    items, body = [], b""
    while len(body) < 64 * 1024:
        items.append({"id": len(items), "name": f"item {len(items)}",
                      "description": "an ordinary product description with a few words in it " * 3})
        body = json.dumps({"items": items}).encode()
    return {
        "GET 10 headers, 5 args": ("GET", "/products/list?page=2&sort=price&q=blue+shoes&size=42&color=navy",
                                   HEADERS, b""),
        "POST form 4 KB": ("POST", "/account/profile", {**HEADERS, "Content-Type": "application/x-www-form-urlencoded"},
                           form),
        "POST JSON 64 KB": ("POST", "/api/cart", {**HEADERS, "Content-Type": "application/json"}, body),
    }


def quantiles(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return s[len(s) // 2], s[min(len(s) - 1, int(len(s) * 0.99))]


async def latency(rounds: int) -> dict[str, Any]:
    from edgenode.http.messages import CIMultiDict, Request, Response
    from edgenode.pipeline.exchange import Exchange
    from edgenode.pipeline.stage import build_chain
    from edgenode.wasm.stage import WasmStage

    cfg = crs_config(1)
    sc = next(s for s in cfg.chain if s.name == "waf")
    t0 = time.perf_counter()
    stage = WasmStage(sc, base_dir=cfg.base_dir)
    build_ms = (time.perf_counter() - t0) * 1000
    assert stage.vm is not None
    mem_configured = stage.vm.mem.size

    async def origin(_ex: Exchange) -> Response:
        return Response(200, CIMultiDict({"Content-Length": "2"}), b"ok")

    chains = {"empty": build_chain([], origin), "waf": build_chain([stage], origin)}
    out: dict[str, Any] = {"stage_build_ms": round(build_ms, 1), "classes": {}}
    for name, (method, target, headers, body) in request_classes().items():
        row: dict[str, Any] = {"body_bytes": len(body)}
        for label, chain in chains.items():
            n = rounds if not body or len(body) < 10000 else max(20, rounds // 8)
            samples = []
            for _ in range(n):
                h = CIMultiDict(headers)
                if body:
                    h["Content-Length"] = str(len(body))
                req = Request(method, target, h, body)
                t = time.perf_counter()
                resp = await chain(Exchange(req))
                samples.append((time.perf_counter() - t) * 1e6)
                row["status"] = resp.status
            row[label] = dict(zip(("p50_us", "p99_us"), (round(v, 1) for v in quantiles(samples))))
        row["added_p50_us"] = round(row["waf"]["p50_us"] - row["empty"]["p50_us"], 1)
        row["added_p99_us"] = round(row["waf"]["p99_us"] - row["empty"]["p99_us"], 1)
        out["classes"][name] = row
    stage.vm.mem.stale = True
    out["memory"] = {"linear_memory_after_configure": mem_configured, "linear_memory_after_run": stage.vm.mem.refresh().nbytes}
    await stage.close()
    return out


def compile_ms() -> float | None:
    """The filter's own compile figure ("N rules compiled in X ms"), from a fresh stage's log."""
    import logging

    from edgenode.wasm.stage import WasmStage

    records: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    log = logging.getLogger("edgenode.filter.waf")
    handler = Grab()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        cfg = crs_config(1)
        stage = WasmStage(next(s for s in cfg.chain if s.name == "waf"), base_dir=cfg.base_dir)
        asyncio.run(stage.close())
    finally:
        log.removeHandler(handler)
    for line in records:
        m = re.search(r"rules compiled in ([0-9.]+) ms", line)
        if m:
            return float(m.group(1))
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=300, help="requests per class and chain (default 300)")
    ap.add_argument("--skip-corpus", action="store_true", help="latency, compile time and memory only")
    ap.add_argument("--json", type=Path, default=RESULTS, help=f"results file (default {RESULTS.relative_to(ROOT)})")
    args = ap.parse_args()
    subprocess.run(["make", "-s", "-C", str(ROOT / "filters"), "build/waf.wasm",
                    f"ZIG_CC={sys.executable} -m ziglang cc"], check=True)
    result: dict[str, Any] = {"config": str(CONFIG.relative_to(ROOT))}
    if not args.skip_corpus:
        for pl in (1, 2):
            doc = asyncio.run(score_corpus(pl))
            print(doc.pop("report"))
            result[f"pl{pl}"] = doc
    result["compile_ms"] = compile_ms()
    result["latency"] = asyncio.run(latency(args.rounds))
    lat = result["latency"]
    print("### Latency inside the node (CRS v4, paranoia 1; WAF stage vs empty chain, same run)\n")
    print("| request class | status | empty p50 / p99 µs | WAF p50 / p99 µs | added p50 | added p99 |")
    print("|---|---|---|---|---|---|")
    for name, row in lat["classes"].items():
        print(f"| {name} | {row['status']} | {row['empty']['p50_us']} / {row['empty']['p99_us']} | "
              f"{row['waf']['p50_us']} / {row['waf']['p99_us']} | {row['added_p50_us']} µs | {row['added_p99_us']} µs |")
    mem = lat["memory"]
    print(f"\nrule compile at configure: {result['compile_ms']} ms (filter's figure); stage build incl. "
          f"module load and file reading: {lat['stage_build_ms']} ms")
    print(f"linear memory with CRS loaded: {mem['linear_memory_after_configure'] / 2**20:.1f} MiB after configure, "
          f"{mem['linear_memory_after_run'] / 2**20:.1f} MiB after the latency run")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
