"""The ``fleet up`` report: a Markdown table and a plot of what the fleet did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["format_report", "write_plot"]


def _f(value: Any, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def format_report(r: dict[str, Any]) -> str:
    fl = r["fleet"]
    w, s = r["phases"]["without_shield"], r["phases"]["with_shield"]
    p = r["purges"]
    lines = [
        f"## Fleet: {fl['shields']} shields + {fl['edges']} edges, Zipf({fl['zipf']}) over {fl['objects']} objects",
        "",
        "| | without shields | with shields |",
        "|---|---:|---:|",
        f"| requests | {w['requests']} | {s['requests']} |",
        f"| errors | {w['errors']} | {s['errors']} |",
        f"| distinct objects requested | {w['distinct_objects']} | {s['distinct_objects']} |",
        f"| origin requests | {w['origin_requests']} | {s['origin_requests']} |",
        f"| origin requests per distinct object | {_f(r['origin_per_object_without_shield'])} "
        f"| {_f(r['origin_per_object_with_shield'])} |",
        f"| objects requested >= 8x edges times | {w['popular_objects']} | {s['popular_objects']} |",
        f"| origin requests per such object | {_f(r['origin_per_popular_object_without_shield'])} "
        f"| {_f(r['origin_per_popular_object_with_shield'])} |",
        f"| client latency p50 / p99 (ms) | {_f(w['latency_ms'].get('p50'))} / {_f(w['latency_ms'].get('p99'))} "
        f"| {_f(s['latency_ms'].get('p50'))} / {_f(s['latency_ms'].get('p99'))} |",
        "",
        "| node | tier | requests (with shields) | hit ratio without shields | hit ratio with shields |",
        "|---|---|---:|---:|---:|",
    ]
    for n in r["nodes"]:
        lines.append(f"| {n['node']} | {n['tier']} | {n['requests']} | {_f(n['hit_ratio_without_shield'], '{:.1%}')} "
                     f"| {_f(n['hit_ratio'], '{:.1%}')} |")
    lines += ["", f"Purge propagation to all {p['nodes']} nodes ({p['confirmed']}/{p['count']} confirmed): "
              f"p50 {_f(p['p50_ms'])} ms, p99 {_f(p['p99_ms'])} ms, max {_f(p['max_ms'])} ms; "
              f"objects still cached after a purge: {p['still_cached_after_purge']}", ""]
    return "\n".join(lines)


def write_plot(r: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(15, 4.5))
    labels = ["without shields", "with shields"]
    origin = [r["origin_requests_without_shield"], r["origin_requests_with_shield"]]
    distinct = [r["distinct_objects_without_shield"], r["distinct_objects"]]
    x = range(2)
    a1.bar([i - 0.2 for i in x], origin, 0.4, label="origin requests")
    a1.bar([i + 0.2 for i in x], distinct, 0.4, label="distinct objects")
    a1.set_xticks(list(x), labels)
    a1.set_title("origin offload")
    a1.legend()
    nodes = r["nodes"]
    a2.bar([n["node"] for n in nodes], [n["hit_ratio"] or 0 for n in nodes],
           color=["tab:orange" if n["tier"] == "shield" else "tab:blue" for n in nodes])
    a2.set_ylim(0, 1)
    a2.set_title("hit ratio per node (with shields)")
    a2.tick_params(axis="x", rotation=45)
    lat = sorted(r["purges"]["latencies_ms"])
    if lat:
        a3.plot(lat, [(i + 1) / len(lat) for i in range(len(lat))])
    a3.set_xscale("log")
    a3.set_xlabel("ms from admin call to applied on every node (log)")
    a3.set_title("purge propagation (CDF)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
