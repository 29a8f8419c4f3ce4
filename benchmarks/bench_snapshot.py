"""Per-request isolation for large runtimes: a fresh instance from a start-up snapshot
against one that runs start-up itself, per module, in the same run.

Run: python benchmarks/bench_snapshot.py [--quick] [--reset]
Prints a table and writes benchmarks/results/bench_snapshot.json.  ``--reset`` instead
times ``Vm.recycle`` (CPU µs) of an instance that has served streams, for the header-only
filter and routing: what putting a used per-request instance back into its snapshot's
state costs when its last stream changed nothing (the page-table scan, the compare of
the pages it reports, the globals and the host side).  Each row starts and
closes ``n`` per-request instances of one stage (what ``prewarm`` does in idle loop
iterations, and a request does when the pool is empty) and reports µs per instance;
"how" says whether the snapshot was copied into each instance or baked into the
module (snapshot.bake, for snapshots of 256 KiB and more), "stage ms" what building
the snapshot stage cost (start-up, capture, and for baked ones the rewrite and compile).

Modules: the AssemblyScript example (filters/build/as_example.wasm, a small runtime),
the routing filter (C, parses its JSON routes at configure), and a stand-in for a Go-
or JVM-size runtime (tests/wasm/wat/startup_limits.wat: start-up spins for some
milliseconds and leaves megabytes of initialised heap, as a Go runtime plus a parsed
configuration do; no Go toolchain that builds wasip1 modules installs here).
"""

from __future__ import annotations

import argparse
import json
import platform
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgenode.config import StageConfig  # noqa: E402
from edgenode.wasm.engine import WasmEngine  # noqa: E402
from edgenode.wasm.stage import WasmStage  # noqa: E402

ROUTES = {"routes": [{"match": {"path_prefix": f"/r{i}"}, "origin": "default"} for i in range(50)],
          "default_origin": "default"}


def _runtime(spins: int, pages: int) -> dict[str, Any]:
    data = struct.pack("<II", spins, pages)
    assert max(data) < 0x80  # the configuration travels as a UTF-8 string
    return {"module": str(ROOT / "tests/wasm/wat/startup_limits.wat"), "config": data.decode(),
            "memory_limit": "256MiB"}


CASES: list[tuple[str, dict[str, Any]]] = [
    ("AssemblyScript example", {"module": str(ROOT / "filters/build/as_example.wasm"), "root_id": "as_example",
                                "config": "x"}),
    ("routing (C, 50 routes)", {"module": str(ROOT / "filters/build/routing.wasm"), "config": ROUTES}),
    ("runtime: ~2 ms start, 1 MiB heap", _runtime(0x00202020, 0x10)),
    ("runtime: ~6 ms start, 4 MiB heap", _runtime(0x00606060, 0x40)),
    ("runtime: ~6 ms start, 24 MiB heap", _runtime(0x00606060, 0x17F)),
]


def per_instance_us(stage: WasmStage, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        vm = stage._start_vm(stage.plugin, stage.loaded, stage._snapshot)
        vm.close()
    return (time.perf_counter() - start) / n * 1e6


def recycle_us(n: int, rounds: int) -> None:
    """Best CPU µs of ``Vm.recycle`` over ``rounds`` of ``n`` on a used instance, per module."""
    import asyncio

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_filter_stream import make_stage, one

    async def used(which: str) -> WasmStage:
        stage = make_stage(which, None, "per-request")
        for _ in range(100):  # streams, each followed by the loop turn that resets its instance
            one(stage)
            await asyncio.sleep(0)
        return stage

    print(f"{'Vm.recycle, used instance, nothing to copy':44} {'CPU µs':>8}")
    for which, label in (("header", "header-only (tests/wasm/wat, 32 pages)"), ("routing", "routing (4,160 pages)")):
        stage = asyncio.run(used(which))
        vm, reset = stage._pool[-1], stage._reset
        assert reset is not None
        best = float("inf")
        for _ in range(rounds):
            start = time.process_time()
            for _ in range(n):
                vm.recycle(*reset)
            best = min(best, (time.process_time() - start) / n * 1e6)
        print(f"{label:44} {best:8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reset", action="store_true", help="time Vm.recycle of a used instance instead")
    args = ap.parse_args()
    if args.reset:
        recycle_us(20000 if args.quick else 100000, 5)
        return
    n = 20 if args.quick else 100
    engine = WasmEngine(cache_dir=Path(tempfile.mkdtemp(prefix="bench-snapshot-")))
    rows = []
    for name, opts in CASES:
        if not Path(opts["module"]).is_file():
            print(f"skipping {name}: {opts['module']} not built (make filters)")
            continue
        result: dict[str, Any] = {"module": name}
        for label, snapshot in (("start-up", False), ("snapshot", True)):
            built = time.perf_counter()
            stage = WasmStage(StageConfig("wasm", "b", {**opts, "isolation": "per-request", "prewarm": 0,
                                                        "snapshot": snapshot}), base_dir=ROOT, engine=engine)
            result[f"{label} stage ms"] = (time.perf_counter() - built) * 1e3
            assert stage.stats()["snapshot"] is snapshot, f"{name}: no snapshot taken"
            per_instance_us(stage, 3)  # warm caches
            result[label] = per_instance_us(stage, n)
            if snapshot:
                snap = stage._snapshot[0]  # type: ignore[index]
                result["dirty_kib"] = sum(len(d) for _, d in snap.pages) // 1024
                result["memory_mib"] = snap.memory_size / 2**20
                result["baked"] = stage.stats()["snapshot_baked"]
        result["speedup"] = result["start-up"] / result["snapshot"]
        rows.append(result)
    print(f"{'module':36} {'start-up µs':>12} {'snapshot µs':>12} {'speed-up':>9} {'dirty KiB':>10} "
          f"{'memory MiB':>11} {'how':>7} {'stage ms':>9}")
    for r in rows:
        print(f"{r['module']:36} {r['start-up']:12.0f} {r['snapshot']:12.0f} {r['speedup']:8.1f}x "
              f"{r['dirty_kib']:10d} {r['memory_mib']:11.1f} {'baked' if r['baked'] else 'copied':>7} "
              f"{r['snapshot stage ms']:9.0f}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_snapshot.json").write_text(json.dumps(
        {"machine": platform.platform(), "n": n, "rows": rows}, indent=2))
    engine.close()


if __name__ == "__main__":
    main()
