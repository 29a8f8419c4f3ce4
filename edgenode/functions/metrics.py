"""Per-function counters and timings, exposed on ``/metrics`` (label ``function``).

A stage owns its ``FunctionMetrics`` (they survive its reloads); the node registers one
``FunctionsCollector`` over its function stages.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

__all__ = ["FunctionMetrics", "FunctionsCollector", "BUCKETS"]

BUCKETS = (5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


@dataclass
class _Hist:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    sum: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, value)] += 1
        self.sum += value
        self.count += 1

    def buckets(self) -> list[tuple[str, float]]:
        out, acc = [], 0
        for bound, n in zip(BUCKETS, self.counts):
            acc += n
            out.append((repr(bound), acc))
        out.append(("+Inf", acc + self.counts[-1]))
        return out


@dataclass
class FunctionMetrics:
    requests: int = 0
    #: failed requests by kind: trap, cpu, memory, timeout, body, no_response, unavailable
    failures: dict[str, int] = field(default_factory=dict)
    instances: int = 0
    reloads: int = 0
    cold_start_s: float = 0.0
    total: _Hist = field(default_factory=_Hist)
    host: _Hist = field(default_factory=_Hist)

    def fail(self, kind: str) -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1


class FunctionsCollector:
    """prometheus-client collector over ``stages()``: name -> an object with ``metrics``."""

    def __init__(self, stages: Callable[[], Mapping[str, Any]]) -> None:
        self._stages = stages

    def collect(self) -> Iterator[Metric]:
        req = CounterMetricFamily("edgenode_function_requests", "Requests served by a function.",
                                  labels=["function"])
        fail = CounterMetricFamily("edgenode_function_failures",
                                   "Requests a function failed (trap or limit), by kind.",
                                   labels=["function", "kind"])
        inst = CounterMetricFamily("edgenode_function_instances", "Instances created.", labels=["function"])
        cold = GaugeMetricFamily("edgenode_function_cold_start_seconds",
                                 "Load (compile or cache read) + link time of the current component.",
                                 labels=["function"])
        total = HistogramMetricFamily("edgenode_function_seconds", "Time in the function stage per request.",
                                      labels=["function"])
        host = HistogramMetricFamily("edgenode_function_host_seconds",
                                     "Host overhead per request (stage time minus guest code).",
                                     labels=["function"])
        for name, stage in self._stages().items():
            m: FunctionMetrics = stage.metrics
            req.add_metric([name], m.requests)
            for kind, n in m.failures.items():
                fail.add_metric([name, kind], n)
            inst.add_metric([name], m.instances)
            cold.add_metric([name], m.cold_start_s)
            total.add_metric([name], m.total.buckets(), m.total.sum)
            host.add_metric([name], m.host.buckets(), m.host.sum)
        yield from (req, fail, inst, cold, total, host)
