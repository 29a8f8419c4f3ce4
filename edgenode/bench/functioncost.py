"""``edgenode bench function``: one edge function's cost, in isolation (no sockets).

The component runs in a real ``FunctionStage`` (what the node runs), fed synthetic
requests.  Cold start: compile from scratch (only with ``compile_too``: seconds for
the big guests), load from the compiled cache + link, the first instance.  Per
isolation mode (a fresh instance started inside the request, fresh instances
prewarmed between requests as a serving node does, one reused instance): the time in
the stage, split into guest code and host overhead (see ``edgenode.functions.cost``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgenode.config import ConfigError

__all__ = ["measure_function", "function_cost_markdown"]


async def measure_function(component: Path, options: dict[str, Any] | None = None, *, method: str = "GET",
                           path: str = "/", body: bytes = b"", iterations: int = 200,
                           compile_too: bool = False) -> dict[str, Any]:
    """Measure ``component`` (a wasi:http component); returns a JSON-ready dict."""
    from edgenode.functions.cost import MODES, cold_start, request_cost

    if iterations < 1:
        raise ConfigError(f"--iterations: must be at least 1, got {iterations}")
    component = Path(component).resolve()
    cold = cold_start(component, compile_too=compile_too)
    modes = {}
    for mode in MODES:
        cost = await request_cost(component, mode=mode, method=method, path=path, body=body,
                                  iterations=iterations, options=options)
        modes[mode] = cost.summary()
    return {
        "meta": {"component": str(component), "bytes": cold.size_bytes, "method": method, "path": path,
                 "body_bytes": len(body), "iterations": iterations},
        "cold_start_ms": {"compile": cold.compile_ms, "load": round(cold.load_ms, 3),
                          "first_instance": round(cold.first_instance_ms, 3)},
        "modes": modes,
    }


def function_cost_markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [f"# function cost: {Path(meta['component']).name}", "",
             f"{meta['bytes']:,} bytes, {meta['iterations']} requests per mode: {meta['method']} "
             f"{meta['path']} ({meta['body_bytes']} body bytes)", "",
             "| cold start | ms |", "|---|---|"]
    lines += [f"| {k.replace('_', ' ')} | {'-' if v is None else f'{v:.3f}'} |"
              for k, v in result["cold_start_ms"].items()]
    lines += ["", "| mode | host p50 µs | host p90 µs | guest p50 µs | total p50 µs | total p90 µs "
                  "| instances | statuses |", "|---|---|---|---|---|---|---|---|"]
    for mode, r in result["modes"].items():
        lines.append(f"| {mode} | {r['host_p50_us']:.1f} | {r['host_p90_us']:.1f} | {r['guest_p50_us']:.1f} "
                     f"| {r['total_p50_us']:.1f} | {r['total_p90_us']:.1f} | {r['instances']} "
                     f"| {', '.join(map(str, r['statuses']))} |")
    lines += ["", "host = time in the function stage minus time in guest code (instantiation, host "
                  "calls, request and response conversion)"]
    return "\n".join(lines) + "\n"
