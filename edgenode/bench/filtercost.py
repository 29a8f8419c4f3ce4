"""``edgenode bench filter``: one filter's cost per phase, in isolation (no sockets).

The filter runs as a real ``WasmStage`` whose next handler is a synthetic origin
response, so every Proxy-Wasm callback the node would make is made, and each
phase's time comes from the host's own ``Exchange.add_timing`` records.  Cold start
is split into compile (empty module cache), cached deserialize (a fresh engine over
the cache just written), instantiate, on_vm_start (with WASI ``_initialize``) and
on_configure.  Memory: the guest's linear memory size and this process's RSS growth.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from edgenode.bench.loadgen import percentiles
from edgenode.config import ConfigError, StageConfig
from edgenode.http.messages import CIMultiDict, Request, Response, read_body
from edgenode.pipeline.exchange import Exchange

__all__ = ["measure_filter", "filter_cost_markdown"]

#: instantiate + start are cheap enough to repeat; the median is reported
START_REPEATS = 10
_RESPONSE_BODY = b"<html><body>" + b"x" * 1000 + b"</body></html>"


def _rss_bytes() -> int:
    """Current resident set size (Linux /proc; 0 where unavailable)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def _synthetic_request(path: str) -> Request:
    headers = CIMultiDict({"Host": "bench.example.com", "User-Agent": "edgenode-bench",
                           "Accept": "text/html,*/*", "Accept-Encoding": "gzip"})
    return Request("GET", path, headers)


async def _origin(exchange: Exchange) -> Response:
    headers = CIMultiDict({"Content-Type": "text/html", "Content-Length": str(len(_RESPONSE_BODY)),
                           "Cache-Control": "public, max-age=60"})
    return Response(200, headers, _RESPONSE_BODY)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 6)  # 1 ns: a trivial callback takes ~50 ns, which 0.1 µs rounds to 0


async def measure_filter(module: Path, config: str = "", *, iterations: int = 1000,
                         isolation: str = "shared", root_id: str = "",
                         path: str = "/index.html?q=1") -> dict[str, Any]:
    """Measure ``module`` (a .wasm or .wat Proxy-Wasm filter); returns a JSON-ready dict."""
    from edgenode.wasm.engine import FilterLoadError, WasmEngine
    from edgenode.wasm.metrics import filter_metrics
    from edgenode.wasm.stage import WasmStage
    from edgenode.wasm.vm import Vm

    if iterations < 1:
        raise ConfigError(f"--iterations: must be at least 1, got {iterations}")
    module = Path(module).resolve()
    name = f"bench-{module.stem}"
    options: dict[str, Any] = {"module": str(module), "isolation": isolation}
    if config:
        options["config"] = config
    if root_id:
        options["root_id"] = root_id
    rss0 = _rss_bytes()
    with tempfile.TemporaryDirectory(prefix="edgenode-bench-cache-") as cache:
        engines = [WasmEngine(Path(cache)), WasmEngine(Path(cache))]
        try:
            t0 = time.perf_counter()
            engines[0].load(module, name)
            compile_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            loaded = engines[1].load(module, name)
            deserialize_s = time.perf_counter() - t0
            assert loaded.cache_hit, "second engine must read the module cache"
            filter_metrics.pop(name, None)
            try:
                stage = WasmStage(StageConfig("wasm", name, options), base_dir=Path.cwd(),
                                  engine=engines[1])
            except FilterLoadError as exc:
                raise ConfigError(f"filter {module}: {exc}") from None
            cold = _cold_start(stage, Vm, engines[1])
            handler = stage.wrap(_origin)
            samples: dict[str, list[float]] = {}
            statuses: dict[int, int] = {}
            totals: list[float] = []
            for _ in range(iterations):
                ex = Exchange(_synthetic_request(path))
                t0 = time.perf_counter()
                resp = await handler(ex)
                await read_body(resp.body)  # drives response-body, done, log and delete phases
                totals.append((time.perf_counter() - t0) * 1e6)
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
                for (fname, phase), seconds in ex.timings.items():
                    if fname == name:
                        samples.setdefault(phase, []).append(seconds * 1e6)
            vm = stage.vm or Vm(stage.plugin, stage.loaded, engines[1])
            if stage.vm is None:
                vm.start()
            vm.mem.stale = True
            vm.mem.refresh()
            guest_memory = vm.mem.size
            if stage.vm is None:
                vm.close(graceful=False)
            await stage.close()
        finally:
            for engine in engines:
                engine.close()
    phases = {}
    # whole stream through the stage, host work included (per-request: + a fresh instance)
    samples["request_total"] = totals
    for phase, values in samples.items():
        pct = percentiles(values, (50, 99))
        phases[phase] = {"count": len(values), "mean_us": round(statistics.fmean(values), 2),
                         "p50_us": round(pct["p50"], 2), "p99_us": round(pct["p99"], 2)}
    return {
        "meta": {"module": str(module), "bytes": module.stat().st_size, "isolation": isolation,
                 "iterations": iterations, "path": path, "root_id": root_id,
                 "abi": ".".join(map(str, loaded.version))},
        "cold_start_ms": {"compile": _ms(compile_s), "cached_deserialize": _ms(deserialize_s), **cold},
        "phases": phases,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "memory": {"guest_linear_bytes": guest_memory, "rss_delta_bytes": _rss_bytes() - rss0},
    }


def _cold_start(stage: Any, vm_cls: Any, engine: Any) -> dict[str, float]:
    """Median over START_REPEATS fresh instances: instantiate, on_vm_start, on_configure."""
    metrics = stage.plugin.metrics
    inst, vm_start, configure = [], [], []
    for _ in range(START_REPEATS):
        before = {p: (h.sum if (h := metrics.callbacks.get(p)) else 0.0) for p in ("vm_start", "configure")}
        t0 = time.perf_counter()
        vm = vm_cls(stage.plugin, stage.loaded, engine)
        inst.append(time.perf_counter() - t0)
        vm.start()
        after = {p: (h.sum if (h := metrics.callbacks.get(p)) else 0.0) for p in ("vm_start", "configure")}
        vm_start.append(after["vm_start"] - before["vm_start"])
        configure.append(after["configure"] - before["configure"])
        vm.close(graceful=False)
    return {"instantiate": _ms(statistics.median(inst)), "on_vm_start": _ms(statistics.median(vm_start)),
            "on_configure": _ms(statistics.median(configure))}


def filter_cost_markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [f"# filter cost: {Path(meta['module']).name}", "",
             f"{meta['bytes']:,} bytes, ABI {meta['abi']}, isolation={meta['isolation']}, "
             f"{meta['iterations']} requests to {meta['path']}", "",
             "| cold start | ms |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in result["cold_start_ms"].items()]
    lines += ["", "| phase | calls | mean µs | p50 µs | p99 µs |", "|---|---|---|---|---|"]
    lines += [f"| {p} | {s['count']} | {s['mean_us']:.2f} | {s['p50_us']:.2f} | {s['p99_us']:.2f} |"
              for p, s in result["phases"].items()]
    mem = result["memory"]
    lines += ["", f"guest linear memory: {mem['guest_linear_bytes']:,} bytes; "
              f"RSS growth: {mem['rss_delta_bytes']:,} bytes",
              "statuses: " + ", ".join(f"{k}: {v}" for k, v in result["statuses"].items())]
    return "\n".join(lines) + "\n"
