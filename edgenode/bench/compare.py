"""``edgenode bench --compare``: two results compared as rates and latencies, each
difference set against the noise its own runs show.

Totals (requests, bytes, origin requests) depend on how long a run lasted, so they are
turned into rates (per second) and shares (per client request) first.  The noise band
of a metric is estimated from the two runs themselves, as a 95% interval of the
difference:

* throughput (requests/s, bytes/s): the spread of the per-interval request counts in
  each run's timeline (standard error of the mean rate);
* latency percentiles: a bootstrap over each run's latency sample;
* shares (hit ratio, error rate, origin requests per request): the binomial standard
  error of each share.

A difference inside the band is reported as "within noise", not as better or worse.
A metric a run could not measure (no timeline, no latency sample) gets no band, and
its difference is only reported, never judged.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["MetricDelta", "compare", "compare_markdown"]

#: z for a two-sided 95% interval
_Z = 1.96
_BOOTSTRAP_ROUNDS = 300


@dataclass
class MetricDelta:
    metric: str
    before: float | None
    after: float | None
    #: relative change (after/before - 1) for rates and latencies; absolute points for shares
    change: float | None
    #: half-width of the noise band, in the same unit as ``change`` (None: unknown)
    noise: float | None
    higher_is_better: bool
    share: bool = False

    @property
    def verdict(self) -> str:
        if self.change is None:
            return "n/a"
        if self.noise is None:
            return "no noise estimate"
        if abs(self.change) <= self.noise:
            return "within noise"
        return "better" if (self.change > 0) == self.higher_is_better else "worse"


def _summary(result: dict) -> dict[str, Any]:
    return result.get("summary", {})


def _duration(result: dict) -> float | None:
    d = result.get("meta", {}).get("duration_s")
    return float(d) if isinstance(d, (int, float)) and d > 0 else None


def _interval_rates(result: dict) -> list[float]:
    """Requests/s of each full timeline interval (the last, partial one is left out)."""
    timeline = result.get("timeline") or []
    rates = []
    last_t = 0.0
    for point in timeline:
        span = point["t"] - last_t
        last_t = point["t"]
        if span > 0:
            rates.append(point["requests"] / span)
    return rates[:-1] if len(rates) > 2 else rates


def _rate_noise(result: dict) -> float | None:
    """Relative standard error of a run's mean request rate (None: no timeline)."""
    rates = _interval_rates(result)
    if len(rates) < 2:
        return None
    mean = statistics.fmean(rates)
    return statistics.stdev(rates) / math.sqrt(len(rates)) / mean if mean > 0 else None


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _bootstrap_noise(sample: list[float], q: float, seed: int) -> float | None:
    """Relative standard error of the ``q`` percentile of ``sample`` (bootstrap)."""
    if len(sample) < 20:
        return None
    rng = random.Random(seed)
    n = len(sample)
    estimates = [_percentile([sample[rng.randrange(n)] for _ in range(n)], q)
                 for _ in range(_BOOTSTRAP_ROUNDS)]
    centre = _percentile(sample, q)
    return statistics.stdev(estimates) / centre if centre > 0 else None


def _share_noise(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n > 0 else math.inf


def _combine(a: float | None, b: float | None) -> float | None:
    """A 95% band for the difference of two independent estimates' standard errors."""
    if a is None or b is None:
        return None
    return _Z * math.sqrt(a * a + b * b)


def _relative(metric: str, before: float | None, after: float | None, noise: float | None,
              higher: bool) -> MetricDelta:
    change = None
    if before is not None and after is not None and before > 0:
        change = after / before - 1
    return MetricDelta(metric, before, after, change, noise, higher)


def _shares(before: dict, after: dict) -> list[MetricDelta]:
    def share(result: dict, part: Callable[[dict], float | None]) -> tuple[float | None, int]:
        s = _summary(result)
        n = s.get("requests") or 0
        value = part(s)
        return (value / n if value is not None and n else None), n

    rows = []
    for metric, part, higher in (
            ("hit_ratio", lambda s: s["hit_ratio"] * s["requests"] if s.get("hit_ratio") is not None else None, True),
            ("errors_per_request", lambda s: float(sum((s.get("errors") or {}).values())), False),
            ("origin_requests_per_request", lambda s: s.get("origin_requests"), False)):
        (pa, na), (pb, nb) = share(before, part), share(after, part)
        if pa is None or pb is None:
            rows.append(MetricDelta(metric, pa, pb, None, None, higher, share=True))
            continue
        noise = _Z * math.sqrt(_share_noise(pa, na) ** 2 + _share_noise(pb, nb) ** 2)
        rows.append(MetricDelta(metric, pa, pb, pb - pa, noise, higher, share=True))
    return rows


def compare(before: dict, after: dict) -> list[MetricDelta]:
    """Rates, latency percentiles and shares of two results, each with its noise band."""
    sa, sb = _summary(before), _summary(after)
    rate_noise = _combine(_rate_noise(before), _rate_noise(after))
    rows = [_relative("requests_per_s", sa.get("rps"), sb.get("rps"), rate_noise, True)]
    da, db = _duration(before), _duration(after)
    bytes_a = sa.get("bytes_served") / da if da and sa.get("bytes_served") is not None else None
    bytes_b = sb.get("bytes_served") / db if db and sb.get("bytes_served") is not None else None
    rows.append(_relative("bytes_per_s", bytes_a, bytes_b, rate_noise, True))
    lat_a, lat_b = sa.get("latency_us") or {}, sb.get("latency_us") or {}
    sample_a, sample_b = before.get("latencies_us") or [], after.get("latencies_us") or []
    for i, (key, q) in enumerate((("p50", 0.50), ("p90", 0.90), ("p99", 0.99))):
        noise = _combine(_bootstrap_noise(sample_a, q, seed=i), _bootstrap_noise(sample_b, q, seed=i + 10))
        rows.append(_relative(f"latency_{key}_us", lat_a.get(key), lat_b.get(key), noise, False))
    return rows + _shares(before, after)


def _value(row: MetricDelta, value: float | None) -> str:
    if value is None:
        return "n/a"
    if row.share:
        return f"{value * 100:.2f}%"
    return f"{value:,.1f}" if value >= 10 else f"{value:,.3f}"


def _change(row: MetricDelta) -> str:
    if row.change is None:
        return "n/a"
    return f"{row.change * 100:+.2f} pt" if row.share else f"{row.change * 100:+.1f}%"


def _noise(row: MetricDelta) -> str:
    if row.noise is None:
        return "unknown"
    return f"±{row.noise * 100:.2f} pt" if row.share else f"±{row.noise * 100:.1f}%"


def compare_markdown(before: dict, after: dict) -> str:
    """The comparison as a Markdown table, with a line on what the runs had in common."""
    lines = []
    ma, mb = before.get("meta", {}), after.get("meta", {})
    if ma.get("workload") != mb.get("workload"):
        lines.append(f"Note: different workloads ({ma.get('workload')!r} vs {mb.get('workload')!r}).")
    da, db = _duration(before), _duration(after)
    if da and db and abs(da - db) > 0.05 * max(da, db):
        lines.append(f"Runs of different length ({da:g} s vs {db:g} s): rates and shares are compared, "
                     "not totals.")
    if lines:
        lines.append("")
    lines += ["| metric | before | after | change | noise (95%) | verdict |",
              "|---|---|---|---|---|---|"]
    for row in compare(before, after):
        lines.append(f"| {row.metric} | {_value(row, row.before)} | {_value(row, row.after)} "
                     f"| {_change(row)} | {_noise(row)} | {row.verdict} |")
    return "\n".join(lines) + "\n"
