"""Turn a bench result (a plain dict, the JSON we write) into a Markdown table and PNG
plots (``edgenode.bench.compare`` sets two results side by side).

Result schema (all times in microseconds)::

    {"meta": {"workload": str, "generator": "wrk"|"builtin", "duration_s": float, ...},
     "summary": {"requests": int, "rps": float, "errors": {kind: n},
                 "status": {"200": n, ...},       # sums to requests (completed responses)
                 "latency_us": {"p50", "p90", "p99", "max"}, "hit_ratio": float,
                 "bytes_served": int,             # response body bytes sent to clients
                 "origin_requests": int, "origin_bytes": int,
                 "origin_requests_saved": int, "bytes_saved": int},
     "latencies_us": [float, ...],               # a sample, for the distribution plot
     "filters": {filter: {phase: {"count", "p50_us", "p99_us", "mean_us"}}},
     "timeline": [{"t": s, "requests": n, "hits": n}, ...],
     "node": {...}}                               # optional: the node's own counts

``errors`` are transport errors by kind (connect, read, reset, timeout, protocol, ...)
plus ``status_5xx``, the 5xx responses among ``requests``.  ``hit_ratio`` is the share
of responses whose X-Cache says HIT or STALE.  ``timeline`` counts are per interval
(not cumulative).  Values that could not be measured (e.g. origin figures when
benchmarking a node at a URL without ``--origin-url``) are null.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["to_markdown", "write_plots"]


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _flat_summary(result: dict) -> dict[str, Any]:
    s = result.get("summary", {})
    flat: dict[str, Any] = {}
    for key, value in s.items():
        if key == "latency_us":
            flat.update({f"latency_{k}_us": v for k, v in value.items()})
        elif key == "errors":
            flat["errors"] = sum(value.values())
        elif key == "status":
            continue  # its own table; the requests total is in the summary already
        else:
            flat[key] = value
    return flat


def to_markdown(result: dict) -> str:
    """A Markdown report: summary table, errors by kind, per-filter per-phase costs."""
    meta = result.get("meta", {})
    lines = [f"# edgenode bench: {meta.get('workload', '?')}", ""]
    lines.append(" ".join(f"{k}={v}" for k, v in meta.items() if not isinstance(v, (dict, list))))
    lines += ["", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in _flat_summary(result).items()]
    status = result.get("summary", {}).get("status", {})
    if status:
        lines += ["", "| status | count |", "|---|---|"]
        lines += [f"| {k} | {v:,} |" for k, v in sorted(status.items())]
    errors = result.get("summary", {}).get("errors", {})
    if errors:
        lines += ["", "| error kind | count |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(errors.items())]
    filters = result.get("filters", {})
    if filters:
        lines += ["", "| filter | phase | calls | mean µs | p50 µs | p99 µs |", "|---|---|---|---|---|---|"]
        for name, phases in filters.items():
            for phase, st in phases.items():
                lines.append(f"| {name} | {phase} | {st.get('count', 0)} | {_fmt(st.get('mean_us', 0.0))} "
                             f"| {_fmt(st.get('p50_us', 0.0))} | {_fmt(st.get('p99_us', 0.0))} |")
    return "\n".join(lines) + "\n"


def write_plots(result: dict, outdir: Path, stem: str = "bench") -> list[Path]:
    """Latency distribution, per-filter cost and hit ratio over time, as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    lat = sorted(result.get("latencies_us", []))
    if lat:
        fig, ax = plt.subplots(figsize=(7, 4))
        ys = [i / len(lat) for i in range(1, len(lat) + 1)]
        ax.plot([v / 1000 for v in lat], ys)
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_ylabel("share of requests (CDF)")
        ax.set_title("Latency distribution")
        ax.grid(True, which="both", alpha=0.3)
        written.append(_save(fig, outdir / f"{stem}-latency.png"))

    filters = result.get("filters", {})
    bars = [(f"{n} / {p}", st.get("p50_us", 0.0), st.get("p99_us", 0.0))
            for n, phases in filters.items() for p, st in phases.items()]
    if bars:
        # horizontal bars: one row per (filter, phase), so labels never overlap
        fig, ax = plt.subplots(figsize=(8, max(3, 0.32 * len(bars) + 1)))
        ys = range(len(bars))
        ax.barh([y - 0.2 for y in ys], [b[1] for b in bars], height=0.4, label="p50")
        ax.barh([y + 0.2 for y in ys], [b[2] for b in bars], height=0.4, label="p99")
        ax.set_yticks(list(ys), [b[0] for b in bars], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("µs per request and phase")
        ax.set_title("Per-filter cost")
        ax.legend()
        written.append(_save(fig, outdir / f"{stem}-filters.png"))

    timeline = result.get("timeline", [])
    if timeline:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot([p["t"] for p in timeline],
                [p["hits"] / p["requests"] if p["requests"] else 0.0 for p in timeline])
        ax.set_ylim(0, 1)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("hit ratio")
        ax.set_title("Hit ratio over time")
        ax.grid(True, alpha=0.3)
        written.append(_save(fig, outdir / f"{stem}-hit-ratio.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
