"""WAF benchmark: corpus detection / false positives and the filter's added latency.

    python benchmarks/bench_waf.py [--native-only] [--paranoia N] [--rounds N]

Runs ../shared/waf-corpus/crs-dev.jsonl through the engine natively (gcc + ctypes,
fast) and through the real Wasm filter in the Proxy-Wasm host (the figure that
counts), prints detection and false-positive rates per family and per paranoia
level, and the latency the filter adds per request (p50/p99, filter stage vs an
empty chain, same requests).  Results go to benchmarks/results/waf.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT.parent / "shared" / "waf-corpus" / "crs-dev.jsonl"
RESULTS = ROOT / "benchmarks" / "results" / "waf.json"


def load() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


def tally(cases: list[dict], verdicts: list[bool], max_pl: int) -> dict:
    fam: dict = defaultdict(lambda: {"attacks": 0, "detected": 0, "benign": 0, "false_positives": 0})
    lvl: dict = defaultdict(lambda: {"attacks": 0, "detected": 0, "benign": 0, "false_positives": 0})
    for case, hit in zip(cases, verdicts):
        for bucket in (fam[case["family"]], lvl[case["paranoia"]]):
            if case["label"] == "attack":
                bucket["attacks"] += 1
                bucket["detected"] += hit
            else:
                bucket["benign"] += 1
                bucket["false_positives"] += hit
    scoped = [(c, h) for c, h in zip(cases, verdicts) if c["paranoia"] <= max_pl]
    att = [h for c, h in scoped if c["label"] == "attack"]
    ben = [h for c, h in scoped if c["label"] == "benign"]
    return {
        "per_family": dict(fam), "per_paranoia": {str(k): v for k, v in sorted(lvl.items())},
        "scope_paranoia_max": max_pl,
        "detection_rate": sum(att) / max(len(att), 1), "false_positive_rate": sum(ben) / max(len(ben), 1),
        "attacks": len(att), "detected": sum(att), "benign": len(ben), "false_positives": sum(ben),
    }


def print_table(title: str, t: dict) -> None:
    print(f"\n{title}")
    print(f"{'':18}{'detected':>16}{'false pos.':>16}")
    for name, b in sorted(t["per_family"].items()):
        print(f"{name:18}{b['detected']:>6}/{b['attacks']:<5}{100 * b['detected'] / max(b['attacks'], 1):5.1f}%"
              f"{b['false_positives']:>6}/{b['benign']:<4}{100 * b['false_positives'] / max(b['benign'], 1):5.1f}%")
    for pl, b in t["per_paranoia"].items():
        print(f"{'paranoia ' + pl:18}{b['detected']:>6}/{b['attacks']:<5}{100 * b['detected'] / max(b['attacks'], 1):5.1f}%"
              f"{b['false_positives']:>6}/{b['benign']:<4}{100 * b['false_positives'] / max(b['benign'], 1):5.1f}%")
    print(f"paranoia <= {t['scope_paranoia_max']}: detection {100 * t['detection_rate']:.1f}% "
          f"({t['detected']}/{t['attacks']}), false positives {100 * t['false_positive_rate']:.1f}% "
          f"({t['false_positives']}/{t['benign']})")


def run_native(cases: list[dict], paranoia: int) -> tuple[list[bool], dict]:
    import importlib.util
    spec = importlib.util.spec_from_file_location("waf_native", ROOT / "filters" / "waf" / "native.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    waf = mod.NativeWaf()
    verdicts, times = [], []
    for c in cases:
        t0 = time.perf_counter()
        score, _ = waf.inspect(c["method"], c["uri"], c["headers"], c["body"], paranoia=paranoia)
        times.append(time.perf_counter() - t0)
        verdicts.append(score >= 5)
    return verdicts, {"p50_us": statistics.median(times) * 1e6,
                      "p99_us": sorted(times)[int(len(times) * 0.99)] * 1e6}


async def run_wasm(cases: list[dict], paranoia: int, rounds: int) -> tuple[list[bool], dict]:
    from edgenode.http.messages import CIMultiDict, Request
    from tests.filters.conftest import make_stage, origin_ok, run_stage

    subprocess.run(["make", "-s", "-C", str(ROOT / "filters"), "build/waf.wasm",
                    f"ZIG_CC={sys.executable} -m ziglang cc"], check=True)
    stage = make_stage(ROOT / "filters" / "build" / "waf.wasm", {"paranoia": paranoia}, name="waf")
    terminal, _ = origin_ok()

    def req(c: dict) -> Request:
        h = CIMultiDict()
        for k, v in c["headers"]:
            h.add(k, v)
        body = (c["body"] or "").encode("utf-8", "surrogateescape")
        if body:
            h["Content-Length"] = str(len(body))
        return Request(c["method"], c["uri"], h, body)

    verdicts = []
    for c in cases:
        resp, _ = await run_stage([stage], req(c), terminal)
        verdicts.append(resp.status == 403)
    # added latency: same benign-and-attack requests with and without the WAF stage
    with_waf, without = [], []
    for _ in range(rounds):
        for c in cases:
            t0 = time.perf_counter()
            await run_stage([], req(c), terminal)
            t1 = time.perf_counter()
            await run_stage([stage], req(c), terminal)
            t2 = time.perf_counter()
            without.append(t1 - t0)
            with_waf.append(t2 - t1)
    added = sorted(w - b for w, b in zip(with_waf, without))
    return verdicts, {"requests": len(added), "added_p50_us": statistics.median(added) * 1e6,
                      "added_p99_us": added[int(len(added) * 0.99)] * 1e6,
                      "with_waf_p50_us": statistics.median(with_waf) * 1e6,
                      "baseline_p50_us": statistics.median(without) * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--native-only", action="store_true")
    ap.add_argument("--paranoia", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    cases = load()
    import logging
    logging.getLogger("edgenode.filter").setLevel(logging.ERROR)   # one WARN line per block otherwise
    out: dict = {"corpus": str(CORPUS.name), "cases": len(cases), "paranoia": args.paranoia, "threshold": 5}

    verdicts, lat = run_native(cases, args.paranoia)
    out["native"] = {**tally(cases, verdicts, args.paranoia), "engine_latency": lat}
    print_table("native engine (gcc, ctypes)", out["native"])
    print(f"engine time per request (native, incl. ctypes): p50 {lat['p50_us']:.1f} us, p99 {lat['p99_us']:.1f} us")

    if not args.native_only:
        verdicts, lat = asyncio.run(run_wasm(cases, args.paranoia, args.rounds))
        out["wasm"] = {**tally(cases, verdicts, args.paranoia), "latency": lat}
        print_table("Wasm filter in the Proxy-Wasm host (counts)", out["wasm"])
        print(f"added latency per request through the Wasm filter ({lat['requests']} requests): "
              f"p50 {lat['added_p50_us']:.0f} us, p99 {lat['added_p99_us']:.0f} us "
              f"(chain p50 {lat['baseline_p50_us']:.0f} -> {lat['with_waf_p50_us']:.0f} us)")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, sort_keys=True))
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
