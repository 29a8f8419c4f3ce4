"""One ``edgenode bench`` run: set up the target, drive the workload, collect a result.

Managed mode (no ``url``): a simulated origin in a child process (the workload's
latency / jitter / error rate) and a ``Node`` in this process (the given or default
config, pointed at that origin), so the node's own figures come from an in-process
subscription.  URL mode: an existing node; its figures come from its admin
``/metrics`` when ``metrics_url`` is given, origin figures from ``origin_url``'s
``/__stats``.  Load always comes from another process (see generators.py).  The
result is the dict documented in report.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import platform
import shutil
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from edgenode.bench import generators
from edgenode.bench.generators import ClientResult
from edgenode.bench.origin_proc import OriginProcess
from edgenode.bench.progress import Progress
from edgenode.bench.recorder import MetricsScraper, NodeRecorder
from edgenode.bench.spec import Workload, request_paths
from edgenode.config import Config, ConfigError, load_config, with_overrides
from edgenode.origin.settings import OriginSettings

__all__ = ["BenchOptions", "run_bench", "path_count"]

GENERATORS = ("auto", "wrk", "builtin")


@dataclass
class BenchOptions:
    workload: Workload
    url: str | None = None
    config: str | None = None
    #: URL mode: the node's admin /metrics and the origin's base URL (both optional)
    metrics_url: str | None = None
    origin_url: str | None = None
    generator: str = "auto"
    #: seconds between timeline samples (and progress updates)
    interval: float = 1.0
    progress: bool = True


def path_count(w: Workload) -> int:
    """How many paths to pre-generate: enough that a run rarely wraps around (and never
    when it is bounded by a request count)."""
    if w.requests is not None:
        return w.requests
    return int(min(400_000, max(20_000, w.duration * 25_000)))


def _pick_generator(choice: str, w: Workload) -> str:
    if choice not in GENERATORS:
        raise ConfigError(f"--generator: must be one of {', '.join(GENERATORS)}, got {choice!r}")
    paced = w.rate is not None or w.requests is not None
    if choice == "wrk":
        if generators.wrk_path() is None:
            raise ConfigError("--generator: wrk is not installed")
        if paced:
            raise ConfigError("--rate/--requests: wrk can neither pace nor count requests; "
                              "use --generator builtin")
        return "wrk"
    if choice == "auto" and not paced and generators.wrk_path() is not None:
        return "wrk"
    return "builtin"


class _Sampler:
    """Samples (requests, hits) every ``interval`` s into the timeline; drives the live line."""

    def __init__(self, source: Any, interval: float, progress: Progress | None) -> None:
        self.source = source
        self.interval = interval
        self.progress = progress
        self.timeline: list[dict[str, float]] = []
        self.failed: str | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        last_req, last_hits = await self.source.counts()
        base_req, base_hits = last_req, last_hits
        last_t = start
        for tick in itertools.count(1):
            await asyncio.sleep(max(0.0, start + tick * self.interval - loop.time()))
            try:
                req, hits = await self.source.counts()
            except Exception as exc:  # a remote node that stops answering must not end the run
                self.failed = f"{type(exc).__name__}: {exc}"
                continue
            now = loop.time()
            self.timeline.append({"t": round(now - start, 3), "requests": req - last_req,
                                  "hits": hits - last_hits})
            if self.progress is not None:
                done = req - base_req
                self.progress.update(now - start, done, (req - last_req) / max(now - last_t, 1e-9),
                                     (hits - base_hits) / done if done else None)
            last_req, last_hits, last_t = req, hits, now


async def _run_client(kind: str, url: str, paths: list[str], w: Workload) -> ClientResult:
    if kind == "wrk":
        return await generators.run_wrk_paths(url, paths, connections=w.concurrency,
                                              duration=w.duration)
    parts = urlsplit(url)
    return await generators.run_builtin(parts.hostname or "127.0.0.1", parts.port or 80, paths,
                                        connections=w.concurrency, duration=w.duration, rate=w.rate,
                                        requests=w.requests)


async def _origin_total(origin_url: str) -> int | None:
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
            async with s.get(origin_url.rstrip("/") + "/__stats") as resp:
                return int((await resp.json())["total"])
    except (aiohttp.ClientError, asyncio.TimeoutError, KeyError, ValueError):
        return None


def _num(value: float) -> float | None:
    """JSON has no NaN: unknown values become null."""
    return None if value is None or math.isnan(value) else round(value, 1)


async def run_bench(opts: BenchOptions, stream: TextIO | None = None) -> dict[str, Any]:
    """Run the workload and return the result dict (report.py schema)."""
    w = opts.workload
    if w.duration <= 0:
        raise ConfigError("duration: must be positive")
    if opts.url is not None:
        parts = urlsplit(opts.url)
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigError(f"--url: expected http://host:port, got {opts.url!r}")
    kind = _pick_generator(opts.generator, w)
    paths = list(itertools.islice(request_paths(w), path_count(w)))
    node_info: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        origin: OriginProcess | None = None
        recorder: NodeRecorder | None = None
        scraper: MetricsScraper | None = None
        if opts.url is None:
            cfg = load_config(opts.config)  # a bad config fails before anything starts
            origin = OriginProcess(OriginSettings(latency_ms=w.origin_latency_ms,
                                                  jitter_ms=w.origin_jitter_ms,
                                                  error_rate=w.origin_error_rate, seed=w.seed))
            await origin.start()
            stack.push_async_callback(origin.stop)
            node, recorder = await _start_node(cfg, origin.url, stack)
            target = f"http://127.0.0.1:{node.port}"
            source: Any = recorder
            node_info["chain"] = [f"{sc.type}:{sc.name}" for sc in node.config.chain]
        else:
            target = opts.url.rstrip("/")
            if opts.metrics_url:
                scraper = MetricsScraper(opts.metrics_url)
                stack.push_async_callback(scraper.close)
            source = scraper

        origin_before = await origin.stats() if origin else None
        total_before = await _origin_total(opts.origin_url) if opts.origin_url else None
        hist_before = await scraper.histograms() if scraper else {}
        progress = Progress(w.duration, stream) if opts.progress else None
        sampler = _Sampler(source, opts.interval, progress) if source is not None else None
        sampler_task = asyncio.create_task(sampler.run()) if sampler else None
        started = time.time()
        try:
            client = await _run_client(kind, target, paths, w)
        finally:
            if sampler_task is not None:
                sampler_task.cancel()
                await asyncio.gather(sampler_task, return_exceptions=True)
            if progress is not None:
                progress.close()
        origin_after = await origin.stats() if origin else None
        total_after = await _origin_total(opts.origin_url) if opts.origin_url else None
        hist_after = await scraper.histograms() if scraper else {}

    origin_requests: int | None = None
    origin_bytes: int | None = None
    if origin_before is not None and origin_after is not None:
        origin_requests = origin_after["requests"] - origin_before["requests"]
        origin_bytes = origin_after["bytes"] - origin_before["bytes"]
    elif total_before is not None and total_after is not None:
        origin_requests = total_after - total_before
    bytes_served = recorder.body_bytes if recorder else client.bytes_received
    errors = dict(client.errors)
    status_5xx = sum(n for code, n in client.status.items() if 500 <= code <= 599)
    if status_5xx:
        errors["status_5xx"] = status_5xx
    requests = client.requests
    summary = {
        "requests": requests,
        "rps": round(requests / client.duration_s, 1) if client.duration_s > 0 else 0.0,
        "status": {str(k): v for k, v in sorted(client.status.items())},
        "errors": errors,
        "latency_us": {k: _num(v) for k, v in client.latency_us.items()},
        "hit_ratio": round(client.cache_hits / requests, 4) if requests else 0.0,
        "bytes_served": bytes_served,
        "origin_requests": origin_requests,
        "origin_bytes": origin_bytes,
        "origin_requests_saved": requests - origin_requests if origin_requests is not None else None,
        "bytes_saved": bytes_served - origin_bytes if origin_bytes is not None else None,
    }
    if recorder is not None:
        filters, filter_source = recorder.filters(), "in-process: per request and phase, exact"
        node_info.update(requests=recorder.requests, by_cache_status=dict(recorder.by_cache))
    elif scraper is not None:
        filters = MetricsScraper.filters(hist_before, hist_after)
        filter_source = "scraped /metrics: per callback, estimated from histogram buckets"
    else:
        filters, filter_source = {}, "none (URL mode without --metrics-url)"
    meta = {
        "workload": w.name, "generator": kind, "target": "managed" if opts.url is None else target,
        "config": opts.config or "default", "duration_s": round(client.duration_s, 3),
        "concurrency": w.concurrency, "rate": w.rate, "request_bound": w.requests,
        "objects": w.objects, "zipf": w.zipf,
        "origin_latency_ms": w.origin_latency_ms, "origin_jitter_ms": w.origin_jitter_ms,
        "origin_error_rate": w.origin_error_rate, "seed": w.seed,
        "latency_sample": "quantiles" if kind == "wrk" else "random sample",
        "filter_timings": filter_source, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                  time.gmtime(started)),
        "host": f"{platform.node()} ({os.cpu_count()} CPUs, Python {platform.python_version()})",
        **client.notes,
    }
    if sampler is not None and sampler.failed:
        meta["timeline_error"] = sampler.failed
    result: dict[str, Any] = {"meta": meta, "summary": summary,
                              "latencies_us": [round(v, 1) for v in client.latency_sample_us],
                              "filters": filters, "timeline": sampler.timeline if sampler else []}
    if node_info:
        result["node"] = node_info
    json.dumps(result, allow_nan=False)  # fail here, not in a reader, if a NaN slipped in
    return result


async def _start_node(cfg: Config, origin_url: str, stack: AsyncExitStack) -> tuple[Any, NodeRecorder]:
    from edgenode.node import Node

    cfg = with_overrides(cfg, listen="127.0.0.1:0", origin=origin_url, admin_listen="off")
    cfg.log.access = "off"
    # a cold cache of its own every run, whatever store the config names
    state = Path(tempfile.mkdtemp(prefix="edgenode-bench-"))
    stack.callback(shutil.rmtree, state, ignore_errors=True)
    cfg.server.state_dir, cfg.cache.path = state, None
    node = Node(cfg)  # registers the image service itself when the chain has filters
    recorder = NodeRecorder()
    node.signals.on_request_end.append(recorder.on_end)
    await node.start()
    stack.push_async_callback(node.stop, 2.0)
    return node, recorder
