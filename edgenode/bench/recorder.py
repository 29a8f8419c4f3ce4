"""What the node itself saw during a bench run: live counts and per-filter timings.

Two sources with one shape:
* ``NodeRecorder`` subscribes to an in-process node's ``on_request_end`` signal and
  records the (filter, phase) timings of every request (``Exchange.timings``: seconds
  summed over that phase's callbacks): count and mean exact, percentiles exact up to
  ``MAX_SAMPLES`` requests and from a uniform reservoir sample beyond (bounded memory).
* ``MetricsScraper`` reads a remote node's admin ``/metrics``: request counters by
  cache status for the live line and timeline, and the per-callback histogram
  ``edgenode_wasm_callback_seconds`` before and after the run, from whose bucket
  deltas p50/p99 are estimated (linear within a bucket); likewise each function's
  ``edgenode_function_seconds`` (time in the stage) and ``_host_seconds`` histograms.
"""

from __future__ import annotations

import math
import random
from array import array
from collections import Counter
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from edgenode.bench.loadgen import percentiles
from edgenode.http.messages import Response
from edgenode.pipeline.exchange import Exchange

__all__ = ["NodeRecorder", "MetricsScraper", "is_hit", "histogram_stats"]

Histograms = dict[tuple[str, str], tuple[list[tuple[float, float]], float, float]]
#: timing samples kept per (filter, phase); beyond, reservoir sampling (Algorithm R)
MAX_SAMPLES = 200_000


def is_hit(x_cache: str) -> bool:
    """Served from the cache (fresh or stale), by the X-Cache short form."""
    return x_cache.upper().startswith(("HIT", "STALE"))


class NodeRecorder:
    """``node.signals.on_request_end.append(recorder.on_end)``."""

    def __init__(self) -> None:
        self.requests = 0
        self.hits = 0
        self.body_bytes = 0
        self.by_cache: Counter[str] = Counter()
        #: (filter, phase) -> [count, sum µs, samples µs]
        self.timings: dict[tuple[str, str], list] = {}
        self._rng = random.Random(0)

    def on_end(self, exchange: Exchange, response: Response | None) -> None:
        self.requests += 1
        self.body_bytes += exchange.response_bytes
        label = exchange.x_cache or "NONE"
        self.by_cache[label] += 1
        if is_hit(label):
            self.hits += 1
        for key, seconds in exchange.timings.items():
            rec = self.timings.get(key)
            if rec is None:
                rec = self.timings[key] = [0, 0.0, array("d")]
            us = seconds * 1e6
            rec[0] += 1
            rec[1] += us
            samples = rec[2]
            if len(samples) < MAX_SAMPLES:
                samples.append(us)
            else:
                slot = self._rng.randrange(rec[0])
                if slot < MAX_SAMPLES:
                    samples[slot] = us

    async def counts(self) -> tuple[int, int]:
        """(requests, hits) so far."""
        return self.requests, self.hits

    def filters(self) -> dict[str, dict[str, dict[str, float]]]:
        out: dict[str, dict[str, dict[str, float]]] = {}
        for (name, phase), (count, total, samples) in sorted(self.timings.items()):
            pct = percentiles(samples, (50, 99))
            out.setdefault(name, {})[phase] = {
                "count": count, "mean_us": round(total / count, 2),
                "p50_us": round(pct["p50"], 2), "p99_us": round(pct["p99"], 2)}
        return out


def histogram_stats(buckets: list[tuple[float, float]], total: float, count: float) -> dict[str, float]:
    """count/mean/p50/p99 (µs) from cumulative (upper bound s, count) buckets."""
    def quantile(q: float) -> float:
        rank = q * count
        prev_bound, prev_cum = 0.0, 0.0
        for bound, cum in buckets:
            if cum >= rank and cum > prev_cum:
                if math.isinf(bound):
                    return prev_bound  # above the last finite bucket: its bound is all we know
                return prev_bound + (bound - prev_bound) * (rank - prev_cum) / (cum - prev_cum)
            prev_bound, prev_cum = bound, cum
        return prev_bound

    return {"count": int(count), "mean_us": round(total / count * 1e6, 2) if count else 0.0,
            "p50_us": round(quantile(0.5) * 1e6, 2), "p99_us": round(quantile(0.99) * 1e6, 2)}


class MetricsScraper:
    """Reads a node's Prometheus exposition (``http://admin/metrics``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._session: Any = None

    async def _families(self) -> list[Any]:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        async with self._session.get(self.url) as resp:
            if resp.status != 200:
                raise RuntimeError(f"{self.url}: HTTP {resp.status}")
            text = await resp.text()
        return list(text_string_to_metric_families(text))

    async def counts(self) -> tuple[int, int]:
        requests = hits = 0
        for fam in await self._families():
            if fam.name == "edgenode_requests":
                for s in fam.samples:
                    if s.name == "edgenode_requests_total":
                        requests += int(s.value)
                        hits += int(s.value) if is_hit(s.labels.get("cache_status", "")) else 0
        return requests, hits

    async def histograms(self) -> Histograms:
        """(filter, phase) -> the filter callback histogram."""
        return self._histograms(await self._families(), {"edgenode_wasm_callback_seconds": None})

    async def function_histograms(self) -> Histograms:
        """(function, "total" | "host") -> the function's time histograms."""
        return self._histograms(await self._families(), {"edgenode_function_seconds": "total",
                                                          "edgenode_function_host_seconds": "host"})

    @staticmethod
    def _histograms(families: list[Any], wanted: dict[str, str | None]) -> Histograms:
        """Histograms of the ``wanted`` families, keyed by (filter or function, phase); a
        family mapped to a name stands for that phase."""
        out: Histograms = {}
        for fam in families:
            if fam.name not in wanted:
                continue
            phase = wanted[fam.name]
            for s in fam.samples:
                key = (s.labels.get("filter") or s.labels.get("function", "?"),
                       phase or s.labels.get("phase", "?"))
                buckets, total, count = out.get(key, ([], 0.0, 0.0))
                if s.name.endswith("_bucket"):
                    buckets.append((float(s.labels["le"]), s.value))
                elif s.name.endswith("_sum"):
                    total = s.value
                elif s.name.endswith("_count"):
                    count = s.value
                out[key] = (buckets, total, count)
        return out

    @staticmethod
    def filters(before: Histograms, after: Histograms) -> dict[str, dict[str, dict[str, float]]]:
        """Per-callback stats of the run: ``after`` minus ``before``, bucket by bucket."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for key, (buckets, total, count) in sorted(after.items()):
            b_buckets, b_total, b_count = before.get(key, ([], 0.0, 0.0))
            prior = dict(b_buckets)
            delta = [(le, n - prior.get(le, 0.0)) for le, n in sorted(buckets)]
            if count - b_count > 0:
                out.setdefault(key[0], {})[key[1]] = histogram_stats(delta, total - b_total,
                                                                     count - b_count)
        return out

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
