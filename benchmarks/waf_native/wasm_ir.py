"""Wasm instructions per request in the WAF filter's hooks, under callgrind (docs/waf.md's
recipe): CRS v4 at PL1 in a WasmStage, 3 warm-up requests, then N requests of one class with
collection on, counted inside wasmtime's `timed_call` only.  Exact and independent of the
machine's load, so two builds compare by a few hundred instructions per request.

    .venv/bin/python benchmarks/waf_native/wasm_ir.py                       # GET x10, filters/build/waf.wasm
    .venv/bin/python benchmarks/waf_native/wasm_ir.py --wasm OTHER.wasm --cls form -n 5 --out /tmp/x.out

For the profile by function: build an unstripped waf.wasm (filters/Makefile's link line
without -s), run it here and map `callgrind_annotate OUT`'s addresses through
/tmp/perf-PID.map (wasmtime's perfmap profiler is on; PID is in OUT.log).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLASSES = {"get": "GET 10 headers, 5 args", "form": "POST form 4 KB", "json": "POST JSON 64 KB"}
WARM_UP = 3


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wasm", type=Path, default=ROOT / "filters/build/waf.wasm")
    p.add_argument("--cls", choices=sorted(CLASSES), default="get")
    p.add_argument("-n", type=int, default=10, help="requests counted")
    p.add_argument("--out", type=Path, help="callgrind output file (default: a temporary one)")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args()


def make_chain(wasm: Path, cache: Path):
    """A WAF stage with CRS at PL1 (bench_waf's configuration) before an origin answering 200."""
    sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
    import edgenode.wasm.engine as engine
    import bench_waf
    from edgenode.http.messages import CIMultiDict, Response
    from edgenode.pipeline.stage import build_chain
    from edgenode.wasm.stage import WasmStage

    config = engine._engine_config

    def with_perfmap(p):
        c = config(p)
        c.profiler = "perfmap"   # names for the JIT code in the profile
        return c

    engine._engine_config = with_perfmap
    conf = bench_waf.crs_config(1)
    sc = next(s for s in conf.chain if s.name == "waf")
    sc.options = {**sc.options, "module": str(wasm.resolve())}
    stage = WasmStage(sc, base_dir=conf.base_dir, engine=engine.WasmEngine(cache_dir=cache, pool_instances=0))

    async def origin(_ex):
        return Response(200, CIMultiDict({"Content-Length": "2"}), b"ok")

    return build_chain([stage], origin), bench_waf.request_classes()


async def inner(args: argparse.Namespace) -> None:
    """Runs under valgrind: collection on for the counted requests only."""
    from edgenode.http.messages import CIMultiDict, Request
    from edgenode.pipeline.exchange import Exchange

    with tempfile.TemporaryDirectory() as cache:
        chain, classes = make_chain(args.wasm, Path(cache))
        method, target, headers, body = classes[CLASSES[args.cls]]

        async def one() -> None:
            h = CIMultiDict(headers)
            if body:
                h["Content-Length"] = str(len(body))
            r = await chain(Exchange(Request(method, target, h, body)))
            assert r.status == 200, r.status

        for _ in range(WARM_UP):
            await one()
        pid = str(os.getpid())
        subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
        for _ in range(args.n):
            await one()
        subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)


def total(out: Path) -> int:
    """The run's instructions (callgrind_annotate's program total)."""
    text = subprocess.run(["callgrind_annotate", str(out)], check=True, capture_output=True, text=True).stdout
    m = re.search(r"^\s*([\d,]+) \(.*PROGRAM TOTALS", text, re.M)
    if not m:
        raise SystemExit(f"no totals in {out}")
    return int(m.group(1).replace(",", ""))


def outer(args: argparse.Namespace) -> None:
    out = args.out or Path(tempfile.mkstemp(prefix="wasm_ir.", suffix=".out")[1])
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--toggle-collect=timed_call",
           f"--callgrind-out-file={out}", sys.executable, __file__, "--inner",
           "--wasm", str(args.wasm), "--cls", args.cls, "-n", str(args.n)]
    with open(f"{out}.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    ir = total(out)
    print(f"{args.cls} {args.wasm}: {ir} instructions, {ir / args.n / 1000:.1f}k per request ({out})")


def main() -> None:
    args = parse_args()
    if args.inner:
        asyncio.run(inner(args))
    else:
        outer(args)


if __name__ == "__main__":
    main()
