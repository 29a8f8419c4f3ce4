"""The demo's edge mix without sockets: seeded, in the documented shares, every kind present."""

from __future__ import annotations

import itertools
from collections import Counter

from edgenode.bench.workload import (ACCEPT_PROFILES, ATTACK_SAMPLES, AUTO_SHARE, FUNCTION_PATHS, HEALTH_PATH,
                                     IMAGE_SOURCES, EdgeTally, _budgets, edge_paths, edge_streams)


def test_edge_paths_are_seeded_and_tallied() -> None:
    tally = EdgeTally()
    a = list(itertools.islice(edge_paths(tally, seed=3), 5000))
    assert a == list(itertools.islice(edge_paths(EdgeTally(), seed=3), 5000))
    assert a != list(itertools.islice(edge_paths(EdgeTally(), seed=4), 5000))
    assert sum(tally.kinds.values()) == 5000
    assert sum(tally.attacks.values()) == tally.kinds["attack"]
    shares = {k: n / 5000 for k, n in tally.kinds.items()}
    assert 0.84 < shares["object"] < 0.90
    for kind in ("no-store", "attack", "image", "health", "function"):
        assert 0.01 < shares[kind] < 0.07, (kind, shares)
    assert a.count(HEALTH_PATH) == tally.kinds["health"]
    assert sum(a.count(p) for p in FUNCTION_PATHS) == tally.kinds["function"]
    assert set(FUNCTION_PATHS) <= set(a)
    assert {p for _, p in ATTACK_SAMPLES} <= set(a)


def test_objects_are_zipf_popular_and_images_come_from_large_sources() -> None:
    paths = list(itertools.islice(edge_paths(EdgeTally(), seed=1), 5000))
    objects = Counter(p for p in paths if p.startswith("/obj/demo-"))
    ranked = objects.most_common()
    assert ranked[0][1] > 5 * ranked[min(50, len(ranked) - 1)][1]
    assert {p.split("size=")[1].split("&")[0] for p in objects} == {"1k", "10k", "100k", "1m"}
    images = {p for p in paths if "/image/" in p}
    assert any(p.startswith("/img/") for p in images) and any("?w=" in p for p in images)
    assert all(any(src in p for src in IMAGE_SOURCES) for p in images)
    assert not any("h=" in p.partition("?")[2] for p in images)  # the origin's size stays 2000x1500


def test_streams_split_a_request_count() -> None:
    tally = EdgeTally()
    streams = edge_streams(tally, connections=6)
    assert [s.name for s in streams] == ["main"] + [f"auto-{label}" for label, _ in ACCEPT_PROFILES]
    assert streams[0].connections == 6 and not streams[0].headers
    assert [s.headers["Accept"] for s in streams[1:]] == [accept for _, accept in ACCEPT_PROFILES]
    budgets = _budgets(streams, 600)
    assert sum(budgets) == 600 and budgets[1:] == [int(600 * AUTO_SHARE)] * 3
    assert _budgets(streams, 10) == [10, 0, 0, 0]
    auto = list(itertools.islice(streams[1].paths, 50))
    assert all("f=auto" in p or "width=" in p for p in auto)
    assert tally.kinds["image-auto"] == 50
