"""``edgenode demo``: origin + a multi-worker node + workload, on free ports.

Uses the embedded default config (routing -> waf -> image-accept -> cache -> image,
``workers = "auto"``) with its default origin pointed at a simulated origin started
here, and a fresh state directory (so the cache starts cold and is removed after), so
it needs nothing but the installed package.  The node runs as it does under ``edgenode
serve``: this process is its master, the workers are child processes sharing one cache
store.  The edge mix (``run_demo_workload(edge=True)``) exercises every stage; what the
node saw comes from the master's own admin view: node-wide ``/stats`` (cache, images),
the merged Prometheus exposition (the WAF's counters, per-filter callback histograms).
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from edgenode.bench.recorder import MetricsScraper
from edgenode.bench.workload import format_demo_report, format_table, run_demo_workload
from edgenode.config import load_config, with_overrides
from edgenode.origin.app import start_origin
from edgenode.origin.settings import OriginSettings
from edgenode.workers import FanoutAdmin, Supervisor, WorkerSpec

__all__ = ["run_demo", "DEFAULT_REQUESTS", "filter_counters", "format_node_report", "narrative"]

DEFAULT_REQUESTS = 2000
#: filter phases shown in the timing table, in the order a request meets them
_PHASES = ("request_headers", "request_body", "response_headers", "response_body", "log", "done",
           "delete")


def filter_counters(exposition: bytes) -> dict[tuple[str, str], float]:
    """Counters the wasm filters define, from a Prometheus exposition."""
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(exposition.decode()):
        if family.name == "edgenode_filter_counter":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    out[(sample.labels["filter"], sample.labels["metric"])] = sample.value
    return out


def _waf_observed(before: dict[tuple[str, str], float],
                  after: dict[tuple[str, str], float]) -> dict[str, Any]:
    """Blocks and matched rule families over the run, of every filter with WAF counters."""
    blocked, families = 0, Counter()
    for (name, metric), value in after.items():
        delta = int(value - before.get((name, metric), 0.0))
        if metric == "waf_requests_blocked":
            blocked += delta
        elif metric.startswith("waf_matches_") and delta:
            families[metric.removeprefix("waf_matches_")] += delta
    return {"blocked": blocked, "families": dict(families.most_common())}


async def run_demo(requests: int | None = None, duration: float | None = None,
                   access_log: bool = False) -> str:
    """Run the demo workload and return the printable report."""
    runner, origin_port = await start_origin(OriginSettings(listen=("127.0.0.1", 0), seed=1))
    origin_url = f"http://127.0.0.1:{origin_port}"
    state = tempfile.mkdtemp(prefix="edgenode-demo-")
    # the workers read the same settings: a cold store of their own, the log as asked
    # (one warning per blocked attack would bury the report)
    settings = [f"server.state_dir={state}", f"log.access={'stderr' if access_log else 'off'}",
                f"log.level={'info' if access_log else 'error'}"]
    try:
        cfg = with_overrides(load_config(None, settings), listen="127.0.0.1:0", origin=origin_url,
                             admin_listen="127.0.0.1:0")
        sup = Supervisor(cfg, WorkerSpec(None, origin_url, settings), cfg.server.workers)
        await sup.start()
        admin = FanoutAdmin(sup)
        scraper = MetricsScraper(f"http://127.0.0.1:{sup.admin_port}/metrics")
        try:
            counters0 = filter_counters(await admin.metrics())
            hist0 = await scraper.histograms()
            bound: float | int = duration if duration is not None else (requests or DEFAULT_REQUESTS)
            result = await run_demo_workload(f"http://127.0.0.1:{sup.port}", bound,
                                             origin_url=origin_url, edge=True)
            stats = await admin.stats()
            waf = _waf_observed(counters0, filter_counters(await admin.metrics()))
            filters = MetricsScraper.filters(hist0, await scraper.histograms())
        finally:
            await scraper.close()
            await sup.stop(2.0)
    finally:
        await runner.cleanup()
        shutil.rmtree(state, ignore_errors=True)
    observed = {"stats": stats, "waf": waf, "images": stats.get("images", {}), "filters": filters,
                "workers": sup.count}
    return "\n".join([format_demo_report(result), format_node_report(result, observed),
                      narrative(result, observed)])


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def format_node_report(result: dict, observed: dict[str, Any]) -> str:
    """What the node saw: WAF, images, cache, and per-filter p50 time per phase."""
    stats, waf, images = observed["stats"], observed["waf"], observed["images"]
    cache = stats["cache"]
    server_errors = sum(n for code, n in result["status"].items() if code.startswith("5"))
    families = ", ".join(f"{k} {v}" for k, v in waf["families"].items()) or "none"
    bytes_in, bytes_out = images.get("bytes_in", 0), images.get("bytes_out", 0)
    shrink = f" ({1 - bytes_out / bytes_in:.0%} smaller)" if bytes_in else ""
    per_worker = ", ".join(f"{w.get('requests', 0)}" for w in stats.get("per_worker", []))
    rows = [
        ("node", f"{observed['workers']} workers sharing one {cache.get('store', '?')} cache store "
                 f"(requests per worker: {per_worker})"),
        ("WAF blocks (403)", f"{waf['blocked']} (client saw {result['status'].get('403', 0)} 403s; "
                             f"{sum(result.get('attacks_sent', {}).values())} attack samples sent)"),
        ("WAF rule families", families),
        ("images transformed", f"{images.get('transforms', 0)} ({images.get('errors', 0)} failed), "
                               f"{_mb(bytes_in)} -> {_mb(bytes_out)}{shrink}"),
        ("image sources", ", ".join(f"{k} x{v}" for k, v in images.get("sources", {}).items()) or "none"),
        ("image outputs", ", ".join(f"{k} {v}" for k, v in sorted(images.get("outputs", {}).items()))
         or "none"),
        ("cache", f"{cache.get('entries', 0)} objects stored, {cache.get('bytes', 0):,} bytes, "
                  f"{cache.get('collapsed', 0)} collapsed, {cache.get('evictions', 0)} evictions"),
        ("node by cache status", ", ".join(f"{k}: {v}" for k, v in
                                           sorted(stats["requests_by_cache_status"].items()))),
        ("server errors (5xx)", str(server_errors)),
    ]
    return format_table("what the node saw", rows) + "\n" + _timing_table(observed["filters"])


def _timing_table(filters: dict[str, dict[str, dict[str, float]]]) -> str:
    """Per-filter p50 µs of each phase (from the node's callback histograms, so estimated
    within a bucket)."""
    phases = [p for p in _PHASES if any(p in ph for ph in filters.values())]
    head = ["filter p50 µs", "calls"] + phases
    # calls: requests the filter saw (body callbacks run once per chunk)
    rows = [[name, str(ph["request_headers"]["count"] if "request_headers" in ph
                       else max(v["count"] for v in ph.values()))]
            + [f"{ph[p]['p50_us']:.1f}" if p in ph else "-" for p in phases]
            for name, ph in filters.items()]
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return "\n".join([fmt(head)] + [fmt(r) for r in rows])


def narrative(result: dict, observed: dict[str, Any]) -> str:
    """Three to five plain sentences on what happened, from the measured numbers."""
    waf, images = observed["waf"], observed["images"]
    mix = result.get("mix", {})
    attacks = sum(result.get("attacks_sent", {}).values())
    lines = []
    if result.get("hit_ratio") is not None:
        saved = result.get("origin_requests_saved")
        lines.append(f"The cache answered {result['hits']} of the {result['hits'] + result['misses']} "
                     f"requests that reached it ({result['hit_ratio']:.0%}); the origin saw "
                     f"{result['origin_requests']} requests for {result['requests']} sent"
                     + (f" ({saved} saved)." if saved is not None else "."))
    families = list(waf["families"])[:4]
    lines.append(f"The WAF blocked {waf['blocked']} requests ({attacks} attack samples sent) before "
                 "the cache or the origin saw them"
                 + (f"; rules matched: {', '.join(families)}." if families else "."))
    transforms = images.get("transforms", 0)
    if transforms:
        others = mix.get("image", 0) + mix.get("image-auto", 0) - transforms
        lines.append(f"The image filter made {transforms} variants of "
                     f"{', '.join(images.get('sources', {}))} originals ({_mb(images.get('bytes_in', 0))} "
                     f"in, {_mb(images.get('bytes_out', 0))} out); the other {others} image requests "
                     "got those variants from the cache (or collapsed onto their fetch).")
    lines.append(f"The routing filter answered {mix.get('health', 0)} health checks itself; "
                 f"{mix.get('no-store', 0)} no-store requests went to the origin every time.")
    return "what happened:\n" + "\n".join(f"  - {line}" for line in lines)
