"""WAF benchmark: OWASP CRS v4 in the WAF filter, agreement with libmodsecurity and latency.

    python benchmarks/bench_waf.py                       # everything (~2-3 min on 2 cores)
    python benchmarks/bench_waf.py --skip-corpus         # latency, compile time and memory only
    python benchmarks/bench_waf.py --rounds 400 --json benchmarks/results/waf.json
    python benchmarks/bench_waf.py --skip-corpus --baseline /tmp/waf-old.wasm   # before/after
    python benchmarks/bench_waf.py --skip-corpus --compare-rules /tmp/waf-old.wasm   # same verdicts?

1. Agreement: a node per paranoia level (benchmarks/configs/waf-crs.toml, CRS from
   ../shared/crs unchanged; PL2 sets tx.blocking_paranoia_level=2) on 127.0.0.1:0, scored
   by ../shared/waf-corpus/score.py against libmodsecurity + CRS's verdicts (crs.pl1 /
   crs.pl2): recall, over-blocking, per family, per-rule detection.  Its tables are
   printed as score.py prints them.
2. Latency inside the node, per request class (benign GET with 10 headers and 5 query
   arguments, 4 KB form POST, 64 KB JSON POST, and 64 KB of JSON made of attack
   fragments, the worst case): the WAF stage, an empty chain, the same filter with no
   rules (what its host calls cost) and, with --baseline, the stage running another
   build of waf.wasm take turns on the same requests in the same process; "added" =
   stage - empty at p50 and p99.  Timings are noisy on a shared machine: compare ratios
   of one run.  --cpu-time times each request by the thread's CPU time instead of the
   wall clock: another job's load then shows much less (the Wasm runs on this thread).
3. Rule compile time at configure (the filter's own figures: parsing and compiling, then
   the warm-up that compiles the regex sets ordinary requests reach) and the VM's linear
   memory with CRS loaded, after configure and after each request class.
4. With --compare-rules: every corpus request through this build and another waf.wasm in
   detect mode (in process, PL1 and PL2): the matched rule ids, status and score must be the
   same request by request; the requests that differ are counted and listed.  A change
   meant only to make the engine faster must leave this at zero.
Results: a table on stdout and JSON (--json).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import logging
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WAF_CORPUS = ROOT.parent / "shared" / "waf-corpus"
SCORE = WAF_CORPUS / "score.py"
CORPUS = WAF_CORPUS / "crs-dev-v2.jsonl"
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
    logging.getLogger("edgenode.filter.waf").setLevel(logging.ERROR)   # no audit line per blocked request
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
    rnd = random.Random(7)
    bits = ["cat /etc/passwd", "' or 1=1 --", "<script>alert(1)</script>", "$(curl x)", "../../", "union select",
            "eval(", "${jndi:", "; ls -la", "onerror=", "|| wget", "<?php"]
    attack: list[str] = []
    while len(json.dumps({"k": attack})) < 64 * 1024:
        attack.append(" ".join(rnd.choice(bits) for _ in range(6)))
    return {
        "GET 10 headers, 5 args": ("GET", "/products/list?page=2&sort=price&q=blue+shoes&size=42&color=navy",
                                   HEADERS, b""),
        "POST form 4 KB": ("POST", "/account/profile", {**HEADERS, "Content-Type": "application/x-www-form-urlencoded"},
                           form),
        "POST JSON 64 KB": ("POST", "/api/cart", {**HEADERS, "Content-Type": "application/json"}, body),
        "POST JSON 64 KB, attack fragments": ("POST", "/api/cart", {**HEADERS, "Content-Type": "application/json"},
                                              json.dumps({"k": attack}).encode()),
    }


def quantiles(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return s[len(s) // 2], s[min(len(s) - 1, int(len(s) * 0.99))]


def waf_stage(module: Path | None = None, rules: bool = True, paranoia: int = 1, detect: bool = False):
    """The CRS WAF stage of benchmarks/configs/waf-crs.toml at `paranoia` (optionally another
    waf.wasm; `rules=False`: the same filter with no rules, i.e. what its host calls cost;
    `detect`: detect mode, no per-callback deadline)."""
    from edgenode.wasm.stage import WasmStage

    cfg = crs_config(paranoia)
    sc = next(s for s in cfg.chain if s.name == "waf")
    if module is not None:
        sc.options = {**sc.options, "module": str(module.resolve())}
    if detect:
        sc.options = {**sc.options, "cpu_deadline_ms": 60000,
                      "config": {**sc.options["config"], "mode": "detect"}}
    if not rules:
        sc.options = {**sc.options, "config": {"directives": "SecRuleEngine On\nSecRequestBodyAccess On"}}
    return WasmStage(sc, base_dir=cfg.base_dir)


async def latency(rounds: int, baseline: Path | None, cpu_time: bool = False) -> dict[str, Any]:
    from edgenode.http.messages import CIMultiDict, Request, Response
    from edgenode.pipeline.exchange import Exchange
    from edgenode.pipeline.stage import build_chain

    t0 = time.perf_counter()
    stages = {"waf": waf_stage()}
    build_ms = (time.perf_counter() - t0) * 1000
    if baseline is not None:
        stages["baseline"] = waf_stage(baseline)
    stages["no rules"] = waf_stage(rules=False)

    async def origin(_ex: Exchange) -> Response:
        return Response(200, CIMultiDict({"Content-Length": "2"}), b"ok")

    def memory(stage: Any) -> int:
        stage.vm.mem.stale = True
        return stage.vm.mem.refresh().nbytes

    clock = time.thread_time if cpu_time else time.perf_counter
    chains = {"empty": build_chain([], origin), **{k: build_chain([st], origin) for k, st in stages.items()}}
    out: dict[str, Any] = {"stage_build_ms": round(build_ms, 1), "classes": {},
                           "clock": "thread CPU time" if cpu_time else "wall clock",
                           "memory": {k: {"after configure": memory(st)} for k, st in stages.items()}}
    for name, (method, target, headers, body) in request_classes().items():
        row: dict[str, Any] = {"body_bytes": len(body)}
        samples: dict[str, list[float]] = {label: [] for label in chains}
        n = rounds if len(body) < 10000 else max(20, rounds // 8)
        for _ in range(n):
            for label, chain in chains.items():   # take turns: drift hits every label alike
                h = CIMultiDict(headers)
                if body:
                    h["Content-Length"] = str(len(body))
                t = clock()
                resp = await chain(Exchange(Request(method, target, h, body)))
                samples[label].append((clock() - t) * 1e6)
                row[f"status_{label}"] = resp.status
        for label, got in samples.items():
            row[label] = dict(zip(("p50_us", "p99_us"), (round(v, 1) for v in quantiles(got))))
            if label != "empty":
                row[f"{label}_added_p50_us"] = round(row[label]["p50_us"] - row["empty"]["p50_us"], 1)
                row[f"{label}_added_p99_us"] = round(row[label]["p99_us"] - row["empty"]["p99_us"], 1)
        out["classes"][name] = row
        for k, st in stages.items():
            out["memory"][k][f"after {name}"] = memory(st)
    for st in stages.values():
        await st.close()
    return out


async def corpus_verdicts(module: Path | None, paranoia: int) -> dict[str, list[Any]]:
    """[status, X-WAF-Rules, X-WAF-Score] per corpus request id, the stage in detect mode."""
    from edgenode.http.messages import CIMultiDict, Request, Response
    from edgenode.pipeline.exchange import Exchange
    from edgenode.pipeline.stage import build_chain

    stage = waf_stage(module, paranoia=paranoia, detect=True)

    async def origin(_ex: Exchange) -> Response:
        return Response(200, CIMultiDict({"Content-Length": "2"}), b"ok")

    chain = build_chain([stage], origin)
    out: dict[str, list[Any]] = {}
    try:
        for line in CORPUS.read_text().splitlines():
            rec = json.loads(line)
            headers = CIMultiDict()
            for k, v in rec["headers"]:
                headers.add(k, v)
            body = rec["body"].encode("utf-8", "surrogateescape") if rec.get("body") else b""
            resp = await chain(Exchange(Request(rec["method"], rec["uri"], headers, body)))
            out[rec["id"]] = [resp.status, resp.headers.get("x-waf-rules", ""), resp.headers.get("x-waf-score", "")]
    finally:
        await stage.close()
    return out


def compare_rules(other: Path) -> dict[str, Any]:
    """Per paranoia level: how many corpus requests get other rule ids, status or score
    from `other` than from this build (and the first few of them)."""
    result: dict[str, Any] = {}
    for pl in (1, 2):
        mine, theirs = asyncio.run(corpus_verdicts(None, pl)), asyncio.run(corpus_verdicts(other, pl))
        differ = {k: {"this": v, "other": theirs.get(k)} for k, v in mine.items() if v != theirs.get(k)}
        result[f"pl{pl}"] = {"requests": len(mine), "differ": len(differ), "examples": dict(list(differ.items())[:10])}
        print(f"rule ids per corpus request, PL{pl}: {len(differ)} of {len(mine)} requests differ from {other}")
        for k, v in list(differ.items())[:10]:
            print(f"  {k}: this {v['this']}, other {v['other']}")
    return result


def configure_figures(module: Path | None = None) -> dict[str, float]:
    """The filter's own figures from a fresh stage's log: "N rules compiled in X ms (...;
    regex sets warmed up in Y ms)" -> {"compile_ms": X, "warm_up_ms": Y}."""

    records: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    # on the parent: a node started in this process (the corpus run) leaves a level on the
    # filter's own logger, which the stage's VM clears again
    logging.getLogger("edgenode.filter.waf").setLevel(logging.NOTSET)
    log = logging.getLogger("edgenode.filter")
    handler, level = Grab(), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        asyncio.run(waf_stage(module).close())
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    figures: dict[str, float] = {}
    for line in records:
        for key, pattern in (("compile_ms", r"rules compiled in ([0-9.]+) ms"), ("warm_up_ms", r"warmed up in ([0-9.]+) ms")):
            m = re.search(pattern, line)
            if m:
                figures[key] = float(m.group(1))
    return figures


def print_latency(lat: dict[str, Any], labels: list[str]) -> None:
    print(f"### Latency inside the node (CRS v4, paranoia 1; stages take turns, same run; {lat['clock']})\n")
    head = " | ".join(f"{k} added p50 / p99 µs" for k in labels)
    print(f"| request class | empty p50 / p99 µs | {head} |")
    print("|---|---|" + "---|" * len(labels))
    for name, row in lat["classes"].items():
        cells = " | ".join(f"{row[f'{k}_added_p50_us']} / {row[f'{k}_added_p99_us']} (status {row[f'status_{k}']})"
                           for k in labels)
        print(f"| {name} | {row['empty']['p50_us']} / {row['empty']['p99_us']} | {cells} |")
    print()
    for k, mem in lat["memory"].items():
        if k == "no rules":
            continue
        steps = ", ".join(f"{step} {v / 2**20:.1f}" for step, v in mem.items())
        print(f"linear memory of the {k} VM (MiB): {steps}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=300, help="requests per class and chain (default 300)")
    ap.add_argument("--skip-corpus", action="store_true", help="latency, compile time and memory only")
    ap.add_argument("--baseline", type=Path, help="another waf.wasm to measure in the same run (before/after)")
    ap.add_argument("--compare-rules", type=Path, metavar="WASM",
                    help="check that another waf.wasm matches the same rules on every corpus request")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time requests by the thread's CPU time, not the wall clock (steadier on a loaded machine)")
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
    if args.compare_rules:
        logging.getLogger("edgenode.filter").setLevel(logging.ERROR)
        result["rule_ids"] = compare_rules(args.compare_rules)
    result["configure"] = {"waf": configure_figures()}
    if args.baseline:
        result["configure"]["baseline"] = configure_figures(args.baseline)
    logging.getLogger("edgenode.filter.waf").setLevel(logging.NOTSET)
    logging.getLogger("edgenode.filter").setLevel(logging.ERROR)   # no audit line per blocked request
    result["latency"] = asyncio.run(latency(args.rounds, args.baseline, args.cpu_time))
    print_latency(result["latency"], ["waf", "baseline", "no rules"] if args.baseline else ["waf", "no rules"])
    for k, fig in result["configure"].items():
        warm = f", regex sets warmed up in {fig['warm_up_ms']} ms" if "warm_up_ms" in fig else ""
        print(f"configure ({k}, the filter's figures): rules compiled in {fig.get('compile_ms')} ms{warm}")
    print(f"stage build incl. module load and file reading: {result['latency']['stage_build_ms']} ms")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
