"""What a function costs: cold start, and per request the stage's time split into guest
code and host overhead, for fresh instances (started inside the request), prewarmed
fresh instances (started in idle loop iterations, as a serving node does) and reuse.
The garbage collector is tuned as a serving node tunes it (``node.tune_gc``).

Host overhead = time in the stage minus time in guest code (the ``handle`` call minus
the host functions it called), i.e. instantiation, the host functions, request and
response conversion.  ``edgenode function bench`` and benchmarks/bench_functions.py
print these figures.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgenode.config import StageConfig
from edgenode.functions.component import FunctionRuntime
from edgenode.functions.instance import GuestInstance
from edgenode.functions.stage import FunctionStage
from edgenode.http.messages import CIMultiDict, Request, read_body
from edgenode.pipeline.exchange import Exchange

__all__ = ["ColdStart", "ModeCost", "cold_start", "request_cost", "MODES"]

#: mode -> (stage options, prewarm)
MODES: dict[str, tuple[dict[str, Any], int]] = {
    "fresh": ({"isolation": "per-request"}, 0),
    "fresh, prewarmed": ({"isolation": "per-request"}, 2),
    "reuse": ({"isolation": "reuse"}, 0),
}


@dataclass
class ColdStart:
    #: compile from source (only when asked: seconds for big components)
    compile_ms: float | None
    #: deserialize the cached compiled component + import check + link
    load_ms: float
    #: the first instance after loading
    first_instance_ms: float
    size_bytes: int


@dataclass
class ModeCost:
    total_us: list[float] = field(default_factory=list)
    host_us: list[float] = field(default_factory=list)
    guest_us: list[float] = field(default_factory=list)
    statuses: set[int] = field(default_factory=set)
    instances: int = 0

    def summary(self) -> dict[str, Any]:
        def pct(xs: list[float], q: float) -> float:
            s = sorted(xs)
            return round(s[min(len(s) - 1, int(q * len(s)))], 1)

        return {"n": len(self.total_us), "total_p50_us": pct(self.total_us, 0.5),
                "total_p90_us": pct(self.total_us, 0.9), "host_p50_us": pct(self.host_us, 0.5),
                "host_p90_us": pct(self.host_us, 0.9), "guest_p50_us": pct(self.guest_us, 0.5),
                "host_mean_us": round(statistics.fmean(self.host_us), 1),
                "instances": self.instances, "statuses": sorted(self.statuses)}


def cold_start(component: Path, *, compile_too: bool = False, cache_dir: Path | None = None) -> ColdStart:
    """Load ``component`` in a fresh runtime (its compiled form comes from the disk cache)."""
    compile_ms = None
    if compile_too:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            rt = FunctionRuntime(cache_dir=Path(tmp))
            t0 = time.perf_counter()
            rt.load(component, "bench")
            compile_ms = (time.perf_counter() - t0) * 1000
    rt = FunctionRuntime(cache_dir=cache_dir)
    rt.load(component, "warm-cache")  # make sure the disk cache has it
    rt = FunctionRuntime(cache_dir=cache_dir)
    t0 = time.perf_counter()
    loaded = rt.load(component, "bench")
    load_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    GuestInstance(rt, loaded, 256 << 20)
    first_ms = (time.perf_counter() - t0) * 1000
    return ColdStart(compile_ms, load_ms, first_ms, component.stat().st_size)


async def request_cost(component: Path, *, mode: str, method: str = "GET", path: str = "/",
                       body: bytes = b"", iterations: int = 200, warmup: int = 20,
                       options: dict[str, Any] | None = None) -> ModeCost:
    """Per-request figures of one mode, in-process (no sockets), inline execution."""
    from edgenode.functions.capabilities import MemoryKeyValue

    from edgenode.node import tune_gc

    tune_gc()
    extra, prewarm = MODES[mode]
    # no outbound HTTP here (it needs a node and threaded execution); key-value in memory
    opts = {k: v for k, v in (options or {}).items() if k != "allowed_outbound_hosts"}
    stage = FunctionStage(StageConfig("function", "bench", {**opts, **extra, "execution": "inline",
                                                           "component": str(component)}),
                          base_dir=component.parent, prewarm=prewarm, kv=MemoryKeyValue())
    cost = ModeCost()
    try:
        for i in range(warmup + iterations):
            headers = CIMultiDict({"host": "bench.example"})
            if body:
                headers["content-type"] = "application/json"
            ex = Exchange(Request(method, path, headers, body))
            resp = await stage.serve(ex)
            await read_body(resp.body)
            cost.statuses.add(resp.status)
            if i >= warmup:
                total = ex.timings[("bench", "function")]
                guest = ex.timings[("bench", "guest")]
                cost.total_us.append(total * 1e6)
                cost.guest_us.append(guest * 1e6)
                cost.host_us.append(max(0.0, total - guest) * 1e6)
            await asyncio.sleep(0)  # idle loop iterations: prewarming happens here
            if prewarm:
                await asyncio.sleep(0)
        cost.instances = stage.metrics.instances
    finally:
        await stage.close()
    return cost
