"""The short mixed workload behind ``edgenode demo``.

Zipf-popular objects of mixed sizes on the simulated origin, a few images and a few
``no-store`` objects, sent through the node by the load generator.  The report shows
what the cache did: hit ratio from X-Cache / Cache-Status, and the origin requests
actually saved, read from the origin's own ``/__stats`` counter before and after.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import math
import random
from typing import Iterator
from urllib.parse import urlsplit

from edgenode.bench.loadgen import LoadResult, percentiles, run_load

__all__ = ["demo_paths", "run_demo_workload", "format_demo_report", "classify_cache"]

#: (share of objects, size) of the object population
_SIZE_MIX = ((0.55, "1k"), (0.25, "10k"), (0.15, "100k"), (0.05, "1m"))


def _object_path(i: int, rng: random.Random) -> str:
    if i % 20 == 7:
        return f"/image/demo-{i}.jpg?w=640&h=480"
    if i % 25 == 3:
        return f"/obj/demo-{i}?size=1k&cc=no-store"
    roll, acc = rng.random(), 0.0
    for share, size in _SIZE_MIX:
        acc += share
        if roll < acc:
            break
    return f"/obj/demo-{i}?size={size}&ttl=300&keys=demo"


def demo_paths(objects: int = 200, seed: int = 1, zipf_s: float = 1.0) -> Iterator[str]:
    """An endless, seeded stream of paths whose popularity follows Zipf(``zipf_s``)."""
    rng = random.Random(seed)
    catalogue = [_object_path(i, rng) for i in range(objects)]
    cum: list[float] = []
    total = 0.0
    for rank in range(1, objects + 1):
        total += 1.0 / rank**zipf_s
        cum.append(total)
    while True:
        yield catalogue[min(bisect.bisect_left(cum, rng.random() * total), objects - 1)]


def classify_cache(x_cache: str | None, cache_status: str | None) -> str | None:
    """"hit", "miss" or None (no cache header) from X-Cache or RFC 9211 Cache-Status."""
    if x_cache:
        return "hit" if x_cache.strip().upper().startswith(("HIT", "STALE")) else "miss"
    if cache_status:
        # The last entry is the cache closest to the client, i.e. this node.
        params = [p.strip().lower() for p in cache_status.split(",")[-1].split(";")[1:]]
        return "hit" if "hit" in params else "miss"
    return None


async def _origin_total(origin_url: str) -> int | None:
    """The origin's request counter, over a raw socket (no client library needed)."""
    parts = urlsplit(origin_url)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, parts.port or 80), 5.0)
    except (OSError, asyncio.TimeoutError):
        return None
    try:
        writer.write(f"GET /__stats HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
        raw = await asyncio.wait_for(reader.read(), 5.0)
    except (OSError, asyncio.TimeoutError):
        return None
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        return None
    try:
        return int(json.loads(body)["total"])
    except (ValueError, KeyError, TypeError):
        return None


def _hit_counts(load: LoadResult) -> tuple[int, int, int]:
    hits = misses = 0
    for header in ("x-cache", "cache-status"):
        for value, n in load.headers.get(header, {}).items():
            kind = classify_cache(value, None) if header == "x-cache" else classify_cache(None, value)
            if kind == "hit":
                hits += n
            else:
                misses += n
        if hits or misses:
            break  # X-Cache found: do not count the same responses twice
    return hits, misses, load.requests - hits - misses


async def run_demo_workload(
    node_url: str,
    duration_or_count: float | int,
    *,
    origin_url: str | None = None,
    connections: int = 8,
    objects: int = 200,
    seed: int = 1,
    timeout: float = 5.0,
) -> dict:
    """Run the demo mix against ``node_url``.

    ``duration_or_count``: a float is seconds, an int is a request count.
    ``origin_url`` (the simulated origin) lets the report count real origin requests.
    A response slower than ``timeout`` seconds counts as a "timeout" error, so a stuck
    node shows up in the report instead of stalling the demo.
    """
    parts = urlsplit(node_url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"node_url: expected http://host:port, got {node_url!r}")
    bound: dict = ({"requests": duration_or_count} if isinstance(duration_or_count, int)
                   else {"duration": float(duration_or_count)})
    before = await _origin_total(origin_url) if origin_url else None
    load = await run_load(parts.hostname, parts.port or 80, demo_paths(objects, seed),
                          connections=connections, sample_headers=("x-cache", "cache-status"),
                          timeout=timeout, **bound)
    after = await _origin_total(origin_url) if origin_url else None
    hits, misses, unknown = _hit_counts(load)
    origin_requests = after - before if before is not None and after is not None else None
    classified = hits + misses
    lat = percentiles(load.latencies_us, (50, 90, 99))
    return {
        "generator": load.generator,
        "requests": load.requests,
        "duration_s": round(load.duration_s, 3),
        "rps": round(load.rps, 1),
        "hits": hits,
        "misses": misses,
        "unclassified": unknown,
        "hit_ratio": round(hits / classified, 4) if classified else None,
        "origin_requests": origin_requests,
        "origin_requests_saved": (max(0, load.requests - origin_requests)
                                  if origin_requests is not None else None),
        "latency_ms": {k: (round(v / 1000.0, 3) if not math.isnan(v) else None) for k, v in lat.items()},
        "status": {str(k): v for k, v in sorted(load.status.items())},
        "errors": dict(load.errors),
        "bytes_received": load.bytes_received,
    }


def format_demo_report(result: dict) -> str:
    """A small aligned table of ``run_demo_workload``'s result."""
    def show(value: object, fmt: str = "{}") -> str:
        return "n/a" if value is None else fmt.format(value)

    lat = result.get("latency_ms", {})
    saved = result.get("origin_requests_saved")
    saved_share = (saved / result["requests"]) if saved is not None and result.get("requests") else None
    rows = [
        ("requests", show(result.get("requests"))),
        ("duration", show(result.get("duration_s"), "{:.2f} s")),
        ("throughput", show(result.get("rps"), "{:,.0f} req/s")),
        ("cache hits / misses", f"{result.get('hits', 0)} / {result.get('misses', 0)}"),
        ("hit ratio", show(result.get("hit_ratio"), "{:.1%}")),
        ("origin requests", show(result.get("origin_requests"))),
        ("origin requests saved", show(saved) + (f" ({saved_share:.1%})" if saved_share is not None else "")),
        ("latency p50 / p90 / p99", " / ".join(show(lat.get(k), "{:.2f}") for k in ("p50", "p90", "p99")) + " ms"),
        ("status codes", ", ".join(f"{k}: {v}" for k, v in result.get("status", {}).items()) or "none"),
        ("errors", ", ".join(f"{k}: {v}" for k, v in result.get("errors", {}).items()) or "none"),
        ("load generator", show(result.get("generator"))),
    ]
    width = max(len(name) for name, _ in rows)
    line = "-" * (width + 2 + max(len(v) for _, v in rows))
    return "\n".join(["edgenode demo workload", line]
                     + [f"{name.ljust(width)}  {value}" for name, value in rows] + [line])
