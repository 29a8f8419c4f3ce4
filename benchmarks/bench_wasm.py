"""Benchmark the Proxy-Wasm host: call paths, per-request cost, memory, growth, cold start.

Run: python benchmarks/bench_wasm.py [--quick] [--long N]
Prints tables and writes benchmarks/results/bench_wasm.json.  Everything runs in-process
(a stage chain around a trivial terminal handler), so the figures are the host's own
cost, without sockets.  Targets: the header-only filter (reads two request headers,
adds one response header) adds <= 5 µs CPU per request with a shared VM and <= 25 µs with
a fresh instance per request; the host around the WAF adds no more than the header-only
figure; per-stream host state and per-VM memory reported; no growth over a long run
(``--long``, 1,000,000 requests by default).

CPU per request is ``time.process_time`` over a loop of the chain's steps (a cache hit's
stand-in answers synchronously, as the front end runs a hit behind filters), filter
minus bare terminal in interleaved rounds (the minimum and the median over rounds are printed: the machine is
shared, ratios within one run are what to compare).  Between requests the loops yield
to the event loop once (``asyncio.sleep(0)``), as a server does between network events:
per-request isolation starts the next instances and closes used ones in those idle
iterations, and that idle work is inside the CPU figure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import platform
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Awaitable, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import wasmtime  # noqa: E402

from edgenode.config import StageConfig  # noqa: E402
from edgenode.http.messages import CIMultiDict, Request, Response  # noqa: E402
from edgenode.pipeline.chain import Chain, Outcome  # noqa: E402
from edgenode.pipeline.exchange import Exchange  # noqa: E402
from edgenode.pipeline.stage import build_chain  # noqa: E402
from edgenode.wasm.engine import WasmEngine  # noqa: E402
from edgenode.wasm.hostcalls import registry  # noqa: E402
from edgenode.wasm.hostcalls.table import HOST_FUNCTIONS  # noqa: E402
from edgenode.wasm.native import Instance  # noqa: E402
from edgenode.wasm.stage import WasmStage  # noqa: E402
from edgenode.wasm.vm import Vm  # noqa: E402

WAT = ROOT / "tests" / "wasm" / "wat"
HEADER_FILTER = WAT / "header_only.wat"
CALLS_FILTER = WAT / "bench_calls.wat"
HOLD_FILTER = WAT / "pause.wat"
WAF = ROOT / "filters" / "build" / "waf.wasm"
ROUTING = ROOT / "filters" / "build" / "routing.wasm"
Handler = Callable[[Exchange], Awaitable[Response]]


def best_of(fn: Callable[[], Any], n: int, rounds: int = 5) -> float:
    """Minimum over rounds of the mean per-call time (µs): the least disturbed figure."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * p))] * 1e6


def request(path: str = "/bench?x=1") -> Request:
    return Request("GET", path, CIMultiDict(
        {"Host": "bench.example", "User-Agent": "bench/1", "Accept": "*/*"}))


async def terminal(ex: Exchange) -> Response:
    return Response(200, CIMultiDict({"Content-Length": "2"}), b"ok")


def stage(engine: WasmEngine, name: str, module: Path = HEADER_FILTER, **opts: Any) -> WasmStage:
    options = {"module": str(module), **opts}
    return WasmStage(StageConfig("wasm", name, options), base_dir=ROOT, engine=engine)


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


# --- call paths ------------------------------------------------------------------------

def call_paths(engine: WasmEngine, n: int) -> dict[str, float]:
    """The host core's guest and host call paths vs the checked wasmtime-py ones."""
    st = stage(engine, "calls", CALLS_FILTER)
    vm = st.vm
    assert vm is not None
    out: dict[str, float] = {}
    store = wasmtime.Store(engine.engine)
    store.set_epoch_deadline(1 << 30)
    linker = wasmtime.Linker(engine.engine)
    i32 = wasmtime.ValType.i32()
    linker.define_func("env", "proxy_get_current_time_nanoseconds", wasmtime.FuncType([i32], [i32]),
                       lambda p: 0)
    linker.define_func("env", "proxy_get_log_level", wasmtime.FuncType([i32], [i32]), lambda p: 0)
    linker.define_func("env", "proxy_log", wasmtime.FuncType([i32] * 3, [i32]), lambda a, b, c: 0)
    inst = linker.instantiate(store, st.loaded.module)
    checked = inst.exports(store)["noop"]
    checked_loop = inst.exports(store)["host_calls"]
    out["guest call, wasmtime-py Func.__call__ (checked)"] = best_of(lambda: checked(store, 1), n)
    core = vm.inst
    noop, py_loop, native_loop = (vm.export(name, 1, 1) for name in ("noop", "host_calls", "native_calls"))
    out["guest call, host core Instance.call"] = best_of(lambda: core.call(noop, None, None, None, 1), n)
    base = out["guest call, host core Instance.call"]
    out["host call answered in Python (per call)"] = (
        best_of(lambda: core.call(py_loop, None, None, None, 100), n // 50) - base) / 100
    out["host call answered by the core (per call)"] = (
        best_of(lambda: core.call(native_loop, None, None, None, 100), n // 50) - base) / 100
    out["host call, wasmtime-py Linker.define_func (per call)"] = (
        best_of(lambda: checked_loop(store, 100), n // 50) - out["guest call, wasmtime-py Func.__call__ (checked)"]) / 100
    out["Store + instantiate + drop, wasmtime-py objects"] = best_of(
        lambda: st.loaded.pre.instantiate(_store(engine)), max(200, n // 20))
    for label, eng in (("pooling allocator", engine), ("on-demand", WasmEngine(pool_instances=0))):
        loaded = eng.load(CALLS_FILTER, "calls")

        def native(eng: WasmEngine = eng, loaded: Any = loaded) -> None:
            Instance(eng.engine_ptr, loaded.pre_ptr, 1 << 26, 100, loaded.hooks, loaded.memory_export,
                     loaded.allocator, None, False, 2).delete()
        out[f"Store + instantiate + drop, host core Instance, {label}"] = best_of(native, max(200, n // 20))
    st.vm.close()  # type: ignore[union-attr]
    return out


def _store(engine: WasmEngine) -> wasmtime.Store:
    s = wasmtime.Store(engine.engine)
    s.set_epoch_deadline(100)
    return s


def host_functions(engine: WasmEngine, n: int) -> dict[str, float]:
    """The Python implementations (the core's fallback) of host functions a WAF-like
    filter leans on, called directly (no guest call)."""
    st = stage(engine, "hostfns", CALLS_FILTER)  # its malloc always returns 2048
    vm = st.vm
    assert vm is not None
    headers = CIMultiDict({"Host": "bench.example", "User-Agent": "Mozilla/5.0 bench",
                           "Accept": "text/html,application/xhtml+xml", "Accept-Language": "en-US,en",
                           "Accept-Encoding": "gzip, br", "Cookie": "session=abcdef0123456789",
                           "X-Request-Id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
                           "Referer": "https://bench.example/", "Content-Type": "application/json",
                           "Content-Length": "1024", "Connection": "keep-alive"})
    ex = Exchange(Request("POST", "/api/items?id=1", headers, b"x" * 1024))
    ctx = vm.new_stream(ex)
    ctx.request_body = bytearray(b"x" * 1024)
    mem = vm.mem
    mem.write(200, b"request\0id")
    mem.write(300, b"\x00\x00\x00\x00")  # empty header map for the local reply
    prev, registry.CURRENT = registry.CURRENT, vm
    vm.effective = ctx
    metric = vm.plugin.metrics.define(0, "bench")[1]
    out: dict[str, float] = {}
    try:
        for label, name, args in (
                ("proxy_get_header_map_pairs (15 entries)", "proxy_get_header_map_pairs", (0, 128, 132)),
                ("proxy_get_property request.id", "proxy_get_property", (200, 10, 128, 132)),
                ("proxy_get_buffer_bytes 1 KiB", "proxy_get_buffer_bytes", (0, 0, 1024, 128, 132)),
                ("proxy_increment_metric", "proxy_increment_metric", (metric, 1)),
                ("proxy_send_local_response (403, 9-byte body)", "proxy_send_local_response",
                 (403, 0, 0, 16, 9, 300, 4, 0))):
            fn = HOST_FUNCTIONS[("env", name)].fn

            def one(fn: Callable = fn, args: tuple = args) -> None:
                fn(args)
                ctx.local_response = None
            assert fn(args) == 0, label
            out[label] = best_of(one, n // 4)
    finally:
        vm.effective = None
        registry.CURRENT = prev
        vm.close()
    return out


# --- per-request cost --------------------------------------------------------------------

async def latency(handler: Handler, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        ex = Exchange(request())
        await asyncio.sleep(0)  # idle time between requests (see the module docstring)
        t0 = time.perf_counter()
        await handler(ex)
        samples.append(time.perf_counter() - t0)
    return samples


async def latencies(engine: WasmEngine, n: int) -> dict[str, dict[str, float]]:
    base = await latency(terminal, n)
    chains = {
        "shared VM": [stage(engine, "hdr-shared")],
        "per-request instance": [stage(engine, "hdr-per-request", isolation="per-request")],
        "per-request, prewarm=0": [stage(engine, "hdr-cold", isolation="per-request", prewarm=0)],
        "per-request, prewarm=0, no snapshot": [stage(engine, "hdr-cold-nosnap", isolation="per-request",
                                                      prewarm=0, snapshot=False)],
    }
    results = {"no filter": base}
    for label, stages in chains.items():
        handler = build_chain(stages, terminal)
        await latency(handler, 200)
        results[label] = await latency(handler, n if label == "shared VM" else n // 2)
        for st in stages:
            await st.close()
    b50, b99 = pct(base, 0.5), pct(base, 0.99)
    return {k: {"p50_us": pct(v, 0.5), "p99_us": pct(v, 0.99),
                "added_p50_us": pct(v, 0.5) - b50, "added_p99_us": pct(v, 0.99) - b99}
            for k, v in results.items()}


def hit(ex: Exchange) -> Response:
    """A cache hit's stand-in: the rest of the chain answers without waiting."""
    return Response(200, CIMultiDict({"Content-Length": "2"}), b"ok")


async def cpu_per_request(chain: Callable[[Exchange], Outcome], n: int) -> float:
    """CPU µs per request of ``chain`` (its steps, awaited only when they wait, as the
    front end runs them), idle iterations between requests included."""
    t0 = time.process_time()
    for _ in range(n):
        out = chain(Exchange(request()))
        if not isinstance(out, Response):
            await out
        await asyncio.sleep(0)
    return (time.process_time() - t0) / n * 1e6


async def cpu_added(engine: WasmEngine, n: int, rounds: int) -> dict[str, dict[str, float]]:
    """CPU added per request by each filter, against the bare terminal in the same rounds;
    for the WAF also the time inside its callbacks (Exchange.timings), the rest being the
    host's own work around the filter."""
    chains: dict[str, list[WasmStage]] = {
        "header-only, shared VM": [stage(engine, "cpu-shared")],
        "header-only, per-request instance": [stage(engine, "cpu-per-request", isolation="per-request")],
    }
    if ROUTING.is_file():
        routes = {"default_origin": "default", "routes": [
            {"name": "health", "match": {"path_prefix": "/edge-health"}, "respond": {"status": 200, "body": "ok"}}]}
        chains["routing (default route), shared VM"] = [stage(engine, "cpu-routing", ROUTING, config=routes)]
        chains["routing (default route), per-request instance"] = [
            stage(engine, "cpu-routing-per-request", ROUTING, config=routes, isolation="per-request")]
    if WAF.is_file():
        chains["WAF (block mode, clean GET), shared VM"] = [stage(engine, "cpu-waf", WAF, config={
            "mode": "block"})]  # its built-in rules
    handlers = {k: Chain(v, hit) for k, v in chains.items()}  # type: ignore[arg-type]
    samples: dict[str, list[float]] = {k: [] for k in ["bare terminal", *handlers]}
    for h in handlers.values():
        await cpu_per_request(h, 500)
    for _ in range(rounds):
        samples["bare terminal"].append(await cpu_per_request(hit, n))
        for label, h in handlers.items():
            samples[label].append(await cpu_per_request(h, n))
    out: dict[str, dict[str, float]] = {}
    bare = samples["bare terminal"]
    for label, values in samples.items():
        out[label] = {"cpu_us_min": min(values), "cpu_us_median": statistics.median(values),
                      "added_us_min": min(values) - min(bare),
                      "added_us_median": statistics.median(values) - statistics.median(bare)}
    for label, h in handlers.items():  # time inside the callbacks (guest + host functions)
        inside = []
        for _ in range(200):
            ex = Exchange(request())
            step = h(ex)
            if not isinstance(step, Response):
                await step
            inside.append(sum(ex.timings.values()) * 1e6)
            await asyncio.sleep(0)  # idle time between requests, as in cpu_per_request
        out[label]["in_callbacks_us_median"] = statistics.median(inside)
        out[label]["host_around_us_median"] = out[label]["added_us_median"] - statistics.median(inside)
    for stages in chains.values():
        for st in stages:
            await st.close()
    return out


# --- memory ------------------------------------------------------------------------------

async def _held(handler: Handler, streams: int) -> tuple[int, list[asyncio.Future[Response]]]:
    """Python heap growth while ``streams`` requests are held in ``handler``."""
    exchanges = [Exchange(Request("GET", "/h", CIMultiDict({"Host": "bench.example", "X-Pause": "1000"})))
                 for _ in range(streams)]
    gc.collect()
    before, _ = tracemalloc.get_traced_memory()
    tasks = [asyncio.ensure_future(handler(ex)) for ex in exchanges]
    for _ in range(5):
        await asyncio.sleep(0)
    gc.collect()
    after, _ = tracemalloc.get_traced_memory()
    return after - before, tasks


async def memory(engine: WasmEngine, vms: int, streams: int) -> dict[str, float]:
    """Per-VM baseline (a shared VM of the header-only filter: RSS, Python heap, its linear
    memory) and the host state of one held stream: the Python heap of streams held open by
    pause.wat, minus the same number of requests waiting in a bare handler."""
    out: dict[str, float] = {}
    gc.collect()
    tracemalloc.start()
    rss0, (py0, _) = rss_kib(), tracemalloc.get_traced_memory()
    held = [stage(engine, f"mem-vm-{i}") for i in range(vms)]
    gc.collect()
    rss1, (py1, _) = rss_kib(), tracemalloc.get_traced_memory()
    out["per shared VM, RSS KiB"] = (rss1 - rss0) / vms
    out["per shared VM, Python heap KiB"] = (py1 - py0) / vms / 1024
    out["per shared VM, linear memory KiB (reserved by the module)"] = held[0].vm.mem.size / 1024  # type: ignore[union-attr]
    stuck: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def waiting(ex: Exchange) -> Response:
        await stuck
        return await terminal(ex)
    base, base_tasks = await _held(waiting, streams)
    hold = stage(engine, "mem-stream", HOLD_FILTER, pause_timeout="60s")
    with_filter, tasks = await _held(build_chain([hold], terminal), streams)
    assert hold.vm is not None and hold.vm.active_streams == streams
    out["per held stream, host state bytes (Python heap)"] = (with_filter - base) / streams
    tracemalloc.stop()
    for t in [*base_tasks, *tasks]:
        t.cancel()
    await asyncio.gather(*base_tasks, *tasks, return_exceptions=True)
    for st in [*held, hold]:
        await st.close()
    return out


async def long_run(engine: WasmEngine, n: int) -> dict[str, Any]:
    """RSS over ``n`` requests through the shared header-only filter (after a warm-up)."""
    handler = build_chain([stage(engine, "long-shared")], terminal)
    for _ in range(20000):
        await handler(Exchange(request()))
    gc.collect()
    samples = [(0, rss_kib())]
    step = max(1, n // 10)
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        await handler(Exchange(request()))
        if i % 1000 == 0:
            await asyncio.sleep(0)
        if i % step == 0:
            samples.append((i, rss_kib()))
    return {"requests": n, "seconds": time.perf_counter() - t0, "rss_kib": samples,
            "growth_kib": samples[-1][1] - samples[1][1] if len(samples) > 2 else 0}


# --- start-up ----------------------------------------------------------------------------

def cold_start(cache_dir: Path, n: int) -> dict[str, float]:
    """Fresh engine each time: deserialize from the disk cache + instantiate + vm_start + configure."""
    WasmEngine(cache_dir=cache_dir).load(HEADER_FILTER, "warm")  # make sure the artifact exists
    samples = []
    compile_samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        eng = WasmEngine(cache_dir=cache_dir)
        t1 = time.perf_counter()
        st = WasmStage(StageConfig("wasm", "cold", {"module": str(HEADER_FILTER)}), base_dir=ROOT,
                       engine=eng)
        samples.append(time.perf_counter() - t1)
        compile_samples.append(t1 - t0)
        assert st.loaded.cache_hit
    engine = WasmEngine(cache_dir=cache_dir)
    loaded = engine.load(HEADER_FILTER, "cold")
    st = WasmStage(StageConfig("wasm", "inst", {"module": str(HEADER_FILTER)}), base_dir=ROOT, engine=engine)

    def instance() -> None:
        vm = Vm(st.plugin, loaded, engine)
        vm.start()
        vm.close()
    out = {"engine + linker creation (once per process) ms": statistics.median(compile_samples) * 1e3,
           "VM cold start from disk cache (deserialize+instantiate+vm_start+configure) ms":
               statistics.median(samples) * 1e3,
           "per-request instance start+close (instantiate, root context, configure, root done/delete) us":
               best_of(instance, 500)}
    # the SDK-built filters: instance start+close with and without the start-up snapshot
    for module in sorted((ROOT / "filters" / "build").glob("*.wasm")):
        for snap in (True, False):
            logging.disable(logging.CRITICAL)  # a filter that needs config it does not get here
            try:
                fst = WasmStage(StageConfig("wasm", f"{module.stem}-{snap}", {
                    "module": str(module), "isolation": "per-request", "snapshot": snap}),
                    base_dir=ROOT, engine=engine)
            except Exception:  # noqa: BLE001 - skipped, see above
                break
            finally:
                logging.disable(logging.NOTSET)
            snapshot = fst._snapshot

            def filter_instance(fst: WasmStage = fst, snapshot: Any = snapshot) -> None:
                fst._start_vm(fst.plugin, fst.loaded, snapshot).close()
            label = "snapshot" if snapshot is not None else "start-up calls"
            out[f"{module.name} per-request instance start+close, {label} us"] = best_of(filter_instance, 200)
    return out


async def throughput(engine: WasmEngine, n: int) -> dict[str, float]:
    out = {}
    for label, stages in (("no filters", []),
                          ("3 header filters (shared)", [stage(engine, f"t{i}") for i in range(3)]),
                          ("3 header filters (per-request)",
                           [stage(engine, f"p{i}", isolation="per-request") for i in range(3)])):
        handler = build_chain(stages, terminal)
        best = 0.0
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(n):
                await handler(Exchange(request()))
                await asyncio.sleep(0)  # idle work (instance pool) is inside the timing
            best = max(best, n / (time.perf_counter() - t0))
        out[f"{label} req/s"] = best
    return out


def _table(title: str, rows: dict[str, float], unit: str, width: int = 70) -> None:
    print(f"\n{title:{width}} {unit:>10}")
    for k, v in rows.items():
        print(f"{k:{width}} {v:10.2f}")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer iterations")
    ap.add_argument("--long", type=int, default=None,
                    help="requests of the growth run (default 1,000,000; --quick: 50,000)")
    args = ap.parse_args()
    n = 2000 if args.quick else 20000
    long_n = args.long if args.long is not None else (50_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        engine = WasmEngine(cache_dir=cache)
        report: dict[str, Any] = {
            "python": platform.python_version(), "wasmtime": engine.version,
            "machine": platform.machine(), "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "call_paths_us": call_paths(engine, n),
            "host_functions_us": host_functions(engine, n),
            "cpu_added_us": await cpu_added(engine, n // 4, 5 if args.quick else 9),
            "latency_us": await latencies(engine, n),
            "memory": await memory(engine, 100, 500),
            "long_run": await long_run(engine, long_n),
            "start": cold_start(cache, 5 if args.quick else 20),
            "throughput": await throughput(engine, n // 4),
        }
        engine.close()
    _table("call path", report["call_paths_us"], "µs")
    _table("host function, Python implementation (the core's fallback)", report["host_functions_us"], "µs")
    print(f"\n{'CPU per request (process time, same rounds)':44} {'min':>8} {'median':>8} {'+min':>8} "
          f"{'+median':>8} {'in hooks':>9} {'host':>7}")
    for k, v in report["cpu_added_us"].items():
        print(f"{k:44} {v['cpu_us_min']:8.2f} {v['cpu_us_median']:8.2f} {v['added_us_min']:8.2f} "
              f"{v['added_us_median']:8.2f} {v.get('in_callbacks_us_median', 0):9.2f} "
              f"{v.get('host_around_us_median', 0):7.2f}")
    print(f"\n{'latency around the request (in-process)':40} {'p50':>8} {'p99':>8} {'+p50':>8} {'+p99':>8}")
    for k, v in report["latency_us"].items():
        print(f"{k:40} {v['p50_us']:8.1f} {v['p99_us']:8.1f} {v['added_p50_us']:8.1f} {v['added_p99_us']:8.1f}")
    _table("memory", report["memory"], "")
    lr = report["long_run"]
    print(f"\nlong run: {lr['requests']} requests in {lr['seconds']:.1f} s, RSS KiB at "
          + ", ".join(f"{i}: {kib}" for i, kib in lr["rss_kib"]) + f"; growth after warm-up {lr['growth_kib']} KiB")
    _table("start-up", report["start"], "", 90)
    _table("throughput", report["throughput"], "req/s")
    out = ROOT / "benchmarks" / "results" / "bench_wasm.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
