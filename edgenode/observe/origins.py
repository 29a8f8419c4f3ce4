"""Origin health as operators see it: failure counts, a rate-limited WARN, pool gauges.

An unreachable origin turns every miss into a 502/504; the access log shows each one,
but the operator's log (stderr) should say once, plainly, that the origin is failing,
without a line per request.  ``OriginHealth.failed`` counts every failure by origin and
kind and logs a WARN at most once per ``interval`` per origin, with the number of
failures since the last one.  ``OriginCollector`` exposes the counts and the origin
connection pools (busy and idle connections) on ``/metrics``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Callable, Iterator, Mapping, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

__all__ = ["OriginHealth", "OriginCollector", "WARN_INTERVAL"]

log = logging.getLogger("edgenode.origin")

#: seconds between two WARN lines about the same failing origin
WARN_INTERVAL = 10.0


class _Pool(Protocol):
    @property
    def open_count(self) -> int: ...

    @property
    def idle_count(self) -> int: ...


class OriginHealth:
    """Failures per (origin, kind), and the WARN line that reports them."""

    def __init__(self, interval: float = WARN_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.failures: Counter[tuple[str, str]] = Counter()
        self._last_warn: dict[str, float] = {}
        self._since_warn: Counter[str] = Counter()

    def failed(self, origin: str, kind: str, detail: str) -> None:
        """Count one failure; WARN unless this origin was reported less than ``interval`` ago."""
        self.failures[(origin, kind)] += 1
        self._since_warn[origin] += 1
        now = self.clock()
        last = self._last_warn.get(origin)
        if last is not None and now - last < self.interval:
            return
        n = self._since_warn.pop(origin)
        self._last_warn[origin] = now
        more = f" ({n} failures since the last report)" if last is not None and n > 1 else ""
        log.warning("origin %r is failing: %s: %s%s", origin, kind, detail, more)


class OriginCollector:
    """``edgenode_origin_connections{origin,state}`` and ``edgenode_origin_errors{origin,kind}``."""

    def __init__(self, pools: Callable[[], Mapping[str, _Pool]], health: OriginHealth) -> None:
        self._pools = pools
        self._health = health

    def collect(self) -> Iterator[Metric]:
        conns = GaugeMetricFamily("edgenode_origin_connections",
                                  "Origin connections open, by state (busy: serving a request).",
                                  labels=["origin", "state"])
        for name, pool in sorted(self._pools().items()):
            idle = pool.idle_count
            conns.add_metric([name, "idle"], float(idle))
            conns.add_metric([name, "busy"], float(max(0, pool.open_count - idle)))
        yield conns
        errors = CounterMetricFamily("edgenode_origin_errors",
                                     "Origin failures answered with 502/504, by kind.",
                                     labels=["origin", "kind"])
        for (origin, kind), n in sorted(self._health.failures.items()):
            errors.add_metric([origin, kind], float(n))
        yield errors
