"""Filter metrics: guest-defined metrics and per-callback timings, per filter name.

Values live here (not in a VM) so they survive reloads and per-request instances; a
filter's own metrics are in a native ``MetricTable``, which the host core updates itself
(proxy_increment_metric / proxy_record_metric / proxy_get_metric, hostfns.c).
``wasm_collector`` is a prometheus-client custom collector; observe/metrics.py
registers it (``REGISTRY.register(wasm_collector)``).  Every family is labelled by
``filter``.
"""

from __future__ import annotations

import re
from typing import Iterator

from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric)

from edgenode.wasm.abi import MetricType, Status
from edgenode.wasm.native import Histogram, MetricTable

__all__ = ["FilterMetrics", "filter_metrics", "metrics_for", "wasm_collector", "WasmCollector",
           "CALLBACK_BUCKETS", "VALUE_BUCKETS"]

CALLBACK_BUCKETS = (5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3,
                    0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
VALUE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 100000, 1000000)


class _UserMetric:
    __slots__ = ("name", "type", "hist", "id", "_table")

    def __init__(self, name: str, mtype: MetricType, table: MetricTable) -> None:
        self.name = name
        self.type = mtype
        self.hist = Histogram(VALUE_BUCKETS) if mtype == MetricType.HISTOGRAM else None
        self._table = table
        self.id: int = table.add(int(mtype), self.hist)

    @property
    def value(self) -> int:
        return self._table.value(self.id)


class FilterMetrics:
    """Everything measured about one filter (by name)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._by_name: dict[tuple[int, str], int] = {}
        self._by_id: dict[int, _UserMetric] = {}
        #: the values, by metric id (what the host core updates)
        self.table = MetricTable()
        self.callbacks: dict[str, Histogram] = {}
        self.traps = 0
        self.vm_starts = 0
        #: VMs recreated by the reload policy after a trap
        self.vm_reloads = 0
        self.failed_streams = 0

    # guest-defined metrics -------------------------------------------------
    def define(self, mtype: int, name: str) -> tuple[Status, int]:
        try:
            kind = MetricType(mtype)
        except ValueError:
            return Status.BAD_ARGUMENT, 0
        key = (kind, name)
        mid = self._by_name.get(key)
        if mid is None:
            m = _UserMetric(name, kind, self.table)
            mid = self._by_name[key] = m.id
            self._by_id[mid] = m
        return Status.OK, mid

    def increment(self, mid: int, delta: int) -> Status:
        """Counters take deltas >= 0, gauges any; histograms none."""
        return Status(self.table.increment(mid, delta))

    def record(self, mid: int, value: int) -> Status:
        """``value`` (u64) is added to a counter, set on a gauge, observed by a histogram."""
        return Status(self.table.record(mid, value))

    def get(self, mid: int) -> tuple[Status, int]:
        """A counter's or gauge's value, its low 64 bits (what the guest reads)."""
        status, value = self.table.get(mid)
        return Status(status), value

    def user_metrics(self) -> list[_UserMetric]:
        return list(self._by_id.values())

    # host-side timings -------------------------------------------------------
    def callback_histogram(self, phase: str) -> Histogram:
        """The histogram of one callback phase, keyed (filter, phase) for Exchange.timings
        (the host core updates both after each call)."""
        h = self.callbacks.get(phase)
        if h is None:
            h = self.callbacks[phase] = Histogram(CALLBACK_BUCKETS, (self.name, phase))
        return h


filter_metrics: dict[str, FilterMetrics] = {}


def metrics_for(name: str) -> FilterMetrics:
    m = filter_metrics.get(name)
    if m is None:
        m = filter_metrics[name] = FilterMetrics(name)
    return m


_BAD = re.compile(r"[^a-zA-Z0-9_:]")


class WasmCollector:
    """prometheus-client collector over ``filter_metrics`` (read at scrape time)."""

    def collect(self) -> Iterator[Metric]:
        cb = HistogramMetricFamily("edgenode_wasm_callback_seconds",
                                   "Time spent in Proxy-Wasm callbacks", labels=["filter", "phase"])
        traps = CounterMetricFamily("edgenode_wasm_traps", "Filter traps and deadline cut-offs",
                                    labels=["filter"])
        starts = CounterMetricFamily("edgenode_wasm_vm_starts", "Filter VM (instance) starts",
                                     labels=["filter"])
        reloads = CounterMetricFamily("edgenode_wasm_vm_reloads",
                                      "Filter VMs recreated by the reload failure policy after a trap",
                                      labels=["filter"])
        failed = CounterMetricFamily("edgenode_wasm_failed_streams",
                                     "Streams failed by the filter failure policy", labels=["filter"])
        counters = CounterMetricFamily("edgenode_filter_counter", "Counters defined by filters",
                                       labels=["filter", "metric"])
        gauges = GaugeMetricFamily("edgenode_filter_gauge", "Gauges defined by filters",
                                   labels=["filter", "metric"])
        hists = HistogramMetricFamily("edgenode_filter_histogram", "Histograms defined by filters",
                                      labels=["filter", "metric"])
        for name, fm in sorted(filter_metrics.items()):
            for phase, h in sorted(fm.callbacks.items()):
                cb.add_metric([name, phase], h.buckets(), h.sum)
            traps.add_metric([name], fm.traps)
            starts.add_metric([name], fm.vm_starts)
            reloads.add_metric([name], fm.vm_reloads)
            failed.add_metric([name], fm.failed_streams)
            for m in fm.user_metrics():
                label = _BAD.sub("_", m.name)
                if m.type == MetricType.COUNTER:
                    counters.add_metric([name, label], m.value)
                elif m.type == MetricType.GAUGE:
                    gauges.add_metric([name, label], m.value)
                else:
                    assert m.hist is not None
                    hists.add_metric([name, label], m.hist.buckets(), m.hist.sum)
        yield from (cb, traps, starts, reloads, failed, counters, gauges, hists)


wasm_collector = WasmCollector()
