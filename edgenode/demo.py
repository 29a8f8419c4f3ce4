"""``edgenode demo``: origin + node + workload in one process, on free ports.

Uses the embedded default config (routing -> waf -> image-accept -> cache -> image)
with its default origin pointed at a simulated origin started here, so it needs
nothing but the installed package.  The edge mix (``run_demo_workload(edge=True)``)
exercises every stage; what the node itself saw comes from in-process observation
only: its ``on_request_end`` signal (per-filter timings), its Prometheus exposition
(the WAF's counters), its stats (cache) and a wrapper around the image service it
calls out to (``register_internal_upstream``).
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from edgenode.bench.recorder import NodeRecorder
from edgenode.bench.workload import format_demo_report, format_table, run_demo_workload
from edgenode.config import load_config, with_overrides
from edgenode.http.messages import Request, Response
from edgenode.images.service import IMAGE_UPSTREAM, ImageService
from edgenode.node import Node
from edgenode.origin.app import start_origin
from edgenode.origin.settings import OriginSettings

__all__ = ["run_demo", "DEFAULT_REQUESTS", "ImageTally", "filter_counters", "format_node_report", "narrative"]

DEFAULT_REQUESTS = 2000
#: filter phases shown in the timing table, in the order a request meets them
_PHASES = ("request_headers", "request_body", "response_headers", "response_body", "log", "done",
           "delete")


class ImageTally:
    """The image service, counting what it transformed (bytes in and out, formats)."""

    def __init__(self, service: ImageService) -> None:
        self.service = service
        self.transforms = 0
        self.failures = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.outputs: Counter[str] = Counter()
        #: "2000x1500 JPEG" -> transforms from sources of that shape
        self.sources: Counter[str] = Counter()

    async def handle(self, request: Request) -> Response:
        source = request.body
        response = await self.service.handle(request)
        if response.status != 200 or not isinstance(source, bytes) or not isinstance(response.body, bytes):
            self.failures += 1
            return response
        self.transforms += 1
        self.bytes_in += len(source)
        self.bytes_out += len(response.body)
        self.outputs[response.headers.get("content-type", "?")] += 1
        self.sources[_image_shape(source)] += 1
        return response


def _image_shape(data: bytes) -> str:
    """"2000x1500 JPEG" from the image header (Pillow reads no pixels for this)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return f"{im.width}x{im.height} {im.format}"
    except (UnidentifiedImageError, OSError):
        return "unreadable"


def filter_counters(node: Node) -> dict[tuple[str, str], float]:
    """Counters the wasm filters define, from the node's own Prometheus exposition."""
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(node.metrics.exposition().decode()):
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
    try:
        cfg = with_overrides(load_config(), listen="127.0.0.1:0", origin=origin_url,
                             admin_listen="off")
        cfg.log.access = "stderr" if access_log else "off"
        node = Node(cfg)
        recorder = NodeRecorder()
        node.signals.on_request_end.append(recorder.on_end)
        images = ImageTally(ImageService())
        node.register_internal_upstream(IMAGE_UPSTREAM, images.handle)
        counters0 = filter_counters(node)
        waf_names = {name for name, metric in counters0 if metric == "waf_requests_blocked"}
        quiet = [] if access_log else [logging.getLogger(f"edgenode.filter.{n}") for n in waf_names]
        levels = [lg.level for lg in quiet]
        await node.start()
        try:
            for lg in quiet:  # one warning per blocked attack would bury the report
                lg.setLevel(logging.ERROR)
            await images.service.warm_up()  # worker start-up is not part of the measurement
            bound: float | int = duration if duration is not None else (requests or DEFAULT_REQUESTS)
            result = await run_demo_workload(f"http://127.0.0.1:{node.port}", bound,
                                             origin_url=origin_url, edge=True)
            stats = node.stats()
            waf = _waf_observed(counters0, filter_counters(node))
        finally:
            await node.stop(2.0)
            await images.service.close()
            for lg, level in zip(quiet, levels):
                lg.setLevel(level)
    finally:
        await runner.cleanup()
    observed = {"stats": stats, "waf": waf, "images": images, "filters": recorder.filters()}
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
    shrink = (f" ({1 - images.bytes_out / images.bytes_in:.0%} smaller)" if images.bytes_in else "")
    rows = [
        ("WAF blocks (403)", f"{waf['blocked']} (client saw {result['status'].get('403', 0)} 403s; "
                             f"{sum(result.get('attacks_sent', {}).values())} attack samples sent)"),
        ("WAF rule families", families),
        ("images transformed", f"{images.transforms} ({images.failures} failed), "
                               f"{_mb(images.bytes_in)} -> {_mb(images.bytes_out)}{shrink}"),
        ("image sources", ", ".join(f"{k} x{v}" for k, v in images.sources.items()) or "none"),
        ("image outputs", ", ".join(f"{k} {v}" for k, v in sorted(images.outputs.items())) or "none"),
        ("cache", f"{cache.get('entries', 0)} objects stored, {cache.get('bytes', 0):,} bytes, "
                  f"{cache.get('collapsed', 0)} collapsed, {cache.get('evictions', 0)} evictions"),
        ("node by cache status", ", ".join(f"{k}: {v}" for k, v in
                                           sorted(stats["requests_by_cache_status"].items()))),
        ("server errors (5xx)", str(server_errors)),
    ]
    return format_table("what the node saw", rows) + "\n" + _timing_table(observed["filters"])


def _timing_table(filters: dict[str, dict[str, dict[str, float]]]) -> str:
    """Per-filter p50 µs of each phase (the host's own Exchange timings)."""
    phases = [p for p in _PHASES if any(p in ph for ph in filters.values())]
    head = ["filter p50 µs", "calls"] + phases
    rows = [[name, str(max(v["count"] for v in ph.values()))]
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
    if images.transforms:
        others = mix.get("image", 0) + mix.get("image-auto", 0) - images.transforms
        lines.append(f"The image filter made {images.transforms} variants of "
                     f"{', '.join(images.sources)} originals ({_mb(images.bytes_in)} in, "
                     f"{_mb(images.bytes_out)} out); the other {others} image requests got "
                     "those variants from the cache (or collapsed onto their fetch).")
    lines.append(f"The routing filter answered {mix.get('health', 0)} health checks itself; "
                 f"{mix.get('no-store', 0)} no-store requests went to the origin every time.")
    return "what happened:\n" + "\n".join(f"  - {line}" for line in lines)
