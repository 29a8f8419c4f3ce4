"""``NodeMetrics.observe`` makes ``observe_parts``' four updates inline (one frame per
request fewer): for the same request both record the same series, counts, bytes and
duration buckets, whatever the cache label, status and duration."""

from __future__ import annotations

import time

import pytest
from multidict import CIMultiDict

from edgenode.http.messages import Request, Response
from edgenode.observe.metrics import NodeMetrics
from edgenode.pipeline.exchange import Exchange


def finished(x_cache: str, status: int, sent: int, took: float) -> Exchange:
    ex = Exchange(Request("GET", "/a", CIMultiDict({"Host": "t"})))
    ex.x_cache, ex.status, ex.response_bytes = x_cache, status, sent
    ex.start = time.perf_counter() - took
    return ex


def series(m: NodeMetrics) -> tuple[dict, dict, dict]:  # type: ignore[type-arg]
    durations = {label: (list(h.counts), h.sum > 0) for label, h in m._series.items()}
    return dict(m._requests), dict(m._bytes), durations


@pytest.mark.parametrize("x_cache, status, sent, took", [
    ("HIT", 200, 1024, 0.0), ("hit", 200, 10, 0.0003), ("MISS", 404, 7, 0.02),
    ("", 503, 0, 3.0), ("STALE", 0, 5, 40.0), ("HIT", 999, 1, 0.2),
])
def test_observe_records_what_observe_parts_records(x_cache: str, status: int, sent: int,
                                                    took: float) -> None:
    inline, parts = NodeMetrics(), NodeMetrics()
    for _ in range(2):
        ex = finished(x_cache, status, sent, took)
        inline.observe(ex, Response(status or 204))
        parts.observe_parts(x_cache.upper() if x_cache else "NONE", status or 204, sent,
                            time.perf_counter() - ex.start)
    assert series(inline) == series(parts)
    assert inline.requests == 2 and inline.response_bytes == 2 * sent
