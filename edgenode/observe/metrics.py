"""Node metrics: a per-node prometheus-client registry plus plain counters for /stats.

Request counters are updated once per request from the front end's completion hook
in C, as counters and bucket arrays per cache label (observe/_series.c; a prometheus-client ``labels().inc()``/``observe()``
set cost ~10 µs per request, a quarter of a cache hit); they, the cache and the filter
figures become metric families only on scrape, through custom collectors.  Worker processes expose their own text and the master merges
it with :func:`merge_expositions` (summing samples with identical labels), which
works for any collector, including the filters' own.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from typing import Any, Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from edgenode.http.messages import Response
from edgenode.observe._series import BOUNDS, Recorder, Series
from edgenode.pipeline.exchange import Exchange

__all__ = ["NodeMetrics", "CacheCollector", "merge_expositions"]

#: the duration histograms' bounds (seconds; a last bucket is +Inf), as the C series count
_LATENCY_BUCKETS = BOUNDS
#: the status classes a series counts (``Series.classes``), by index
_CLASSES = ("other", "1xx", "2xx", "3xx", "4xx", "5xx")


class CacheCollector:
    """Exposes a store's ``stats()`` (and the cache stage's, when it has some) on scrape."""

    def __init__(self, stats: Callable[[], dict[str, Any]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self._stats()
        gauges = {"entries": "Objects in the cache.", "bytes": "Bytes held by the cache.",
                  "max_bytes": "Configured cache capacity in bytes."}
        for key, doc in gauges.items():
            if key in s:
                yield GaugeMetricFamily(f"edgenode_cache_{key}", doc, value=float(s[key]))
        counters = {"evictions": "Objects evicted to make room.",
                    "collapsed": "Requests that waited on another request's origin fetch.",
                    "purged": "Objects removed or marked stale by purges."}
        for key, doc in counters.items():
            if key in s:
                yield CounterMetricFamily(f"edgenode_cache_{key}", doc, value=float(s[key]))


class NodeMetrics:
    """Request metrics for one node process (one worker)."""

    def __init__(self) -> None:
        # *_created series (process-wide switch) would only add noise, and the worker
        # merge cannot sum them anyway
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=False)
        self.started = time.time()
        r = self.registry
        self.origin_requests: Tally[str] = Tally()
        #: the series in C (observe/_series.c): ``observe``/``observe_parts`` are its
        #: methods, one C call per request where the Python ones took ~5.1k / ~2.9k
        #: instructions (a label's ``upper()``, the clock, four in-place updates)
        recorder = Recorder(self.origin_requests)
        #: cache_status -> its requests per status class, body bytes and durations
        self._series: dict[str, Series] = recorder.series
        #: origin -> its latency histogram (a ``Series``' counts and sum)
        self._origin: dict[str, Series] = recorder.origin
        #: record one finished request (exchange, response or None): the completion hook
        self.observe: Callable[[Exchange, Response | None], None] = recorder.observe
        #: what ``observe`` records of every request, from plain values (the front end's
        #: fast path has no exchange): cache label, status, body bytes sent, seconds taken
        self.observe_parts: Callable[[str, int, int, float], None] = recorder.observe_parts
        r.register(_RequestCollector(self))
        r.register(_StartCollector(self.started))

    def add_collector(self, collector: Any) -> None:
        """Register a custom collector (cache store, wasm filters)."""
        self.registry.register(collector)

    # the tallies by Prometheus label, made when read (scrapes, /stats, tests)
    @property
    def _requests(self) -> dict[tuple[str, str], int]:
        """(cache_status, status_class) -> requests, for the classes counted."""
        return {(label, _CLASSES[i]): n for label, series in list(self._series.items())
                for i, n in enumerate(series.classes) if n}

    @property
    def _bytes(self) -> dict[str, int]:
        """cache_status -> body bytes sent."""
        return {label: series.bytes for label, series in list(self._series.items())}

    # totals for /stats, tallied from the metric series when read
    @property
    def requests(self) -> int:
        return sum(self._requests.values())

    @property
    def response_bytes(self) -> int:
        return sum(self._bytes.values())

    @property
    def requests_by_cache(self) -> Tally[str]:
        out: Tally[str] = Tally()
        for (label, _), n in list(self._requests.items()):
            out[label] += n
        return out

    @property
    def requests_by_class(self) -> Tally[str]:
        out: Tally[str] = Tally()
        for (_, klass), n in list(self._requests.items()):
            out[klass] += n
        return out

    def snapshot(self) -> dict[str, Any]:
        """The request half of ``GET /stats``."""
        return {
            "uptime_seconds": round(time.time() - self.started, 3),
            "requests": self.requests,
            "requests_by_cache_status": dict(self.requests_by_cache),
            "requests_by_status_class": dict(self.requests_by_class),
            "response_bytes": self.response_bytes,
            "origin_requests": dict(self.origin_requests),
        }

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _cumulative(hist: Series) -> list[tuple[str, float]]:
    """A histogram series' buckets as Prometheus counts them (each with those below)."""
    out, acc = [], 0
    for bound, n in zip((*_LATENCY_BUCKETS, float("inf")), hist.counts):
        acc += n
        out.append((floatToGoString(bound), float(acc)))
    return out


class _RequestCollector:
    """The request tallies of a :class:`NodeMetrics` as metric families, built on scrape."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.m
        requests = CounterMetricFamily("edgenode_requests",
                                       "Client requests by cache status and status class.",
                                       labels=["cache_status", "status_class"])
        for labels, n in list(m._requests.items()):
            requests.add_metric(labels, float(n))
        yield requests
        sent = CounterMetricFamily("edgenode_response_bytes", "Response body bytes sent to clients.",
                                   labels=["cache_status"])
        for label, n in list(m._bytes.items()):
            sent.add_metric([label], float(n))
        yield sent
        for name, doc, label, series in (
                ("edgenode_request_duration_seconds", "Time from request head to response end.",
                 "cache_status", m._series),
                ("edgenode_origin_latency_seconds", "Time to the origin's first response byte.",
                 "origin", m._origin)):
            fam = HistogramMetricFamily(name, doc, labels=[label])
            for value, hist in list(series.items()):
                fam.add_metric([value], _cumulative(hist), hist.sum)
            yield fam


class _StartCollector:
    def __init__(self, started: float) -> None:
        self.started = started

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("edgenode_start_time_seconds", "Unix time the node process started.",
                                value=self.started)


def merge_expositions(texts: Iterable[str], extra: Iterable[Metric] = ()) -> bytes:
    """Merge several processes' exposition text into one.

    Samples with the same name and labels are summed (counters, histogram buckets,
    gauges such as cache bytes), except ``*_created`` samples, which are dropped, and
    ``*_start_time_seconds`` gauges, which keep the earliest value.
    """
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for fam in text_string_to_metric_families(text):
            if fam.name not in families:
                families[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                values[fam.name] = {}
            acc = values[fam.name]
            for s in fam.samples:
                if s.name.endswith("_created"):
                    continue
                key = (s.name, tuple(sorted(s.labels.items())))
                if key not in acc:
                    acc[key] = s.value
                elif s.name.endswith("_start_time_seconds"):
                    acc[key] = min(acc[key], s.value)
                else:
                    acc[key] += s.value
    for name, fam in families.items():
        for (sample_name, labels), value in values[name].items():
            fam.add_sample(sample_name, dict(labels), value)
    merged = list(families.values()) + list(extra)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Static(merged))
    return generate_latest(registry)


class _Static:
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> list[Metric]:
        return self.metrics
