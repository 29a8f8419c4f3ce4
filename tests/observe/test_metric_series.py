"""The request series in C (observe/_series.c): what ``NodeMetrics.observe`` and
``observe_parts`` count, read back as the Python values the exposition and ``/stats``
always read, and a bad request value that raises without counting anything."""

from __future__ import annotations

import math
import time
from bisect import bisect_left

import pytest
from multidict import CIMultiDict

from edgenode.http.messages import Request, Response
from edgenode.observe._series import BOUNDS, Recorder, Series
from edgenode.observe.metrics import NodeMetrics
from edgenode.pipeline.exchange import Exchange


def finished(x_cache: str | None, status: int, sent: int, took: float) -> Exchange:
    ex = Exchange(Request("GET", "/a", CIMultiDict({"Host": "t"})))
    ex.x_cache, ex.status, ex.response_bytes = x_cache, status, sent  # type: ignore[assignment]
    ex.start = time.perf_counter() - took
    return ex


def bucket(m: NodeMetrics, label: str) -> int:
    counts = m._series[label].counts
    assert sum(counts) == 1
    return counts.index(1)


@pytest.mark.parametrize("elapsed", [0.0, 0.0005, 0.00050001, 0.001, 0.0049, 0.3, 30.0, 30.5, 1e9,
                                     -1.0, math.inf])
def test_a_duration_counts_in_the_bucket_bisect_left_finds(elapsed: float) -> None:
    m = NodeMetrics()
    m.observe_parts("HIT", 200, 5, elapsed)
    assert bucket(m, "HIT") == bisect_left(BOUNDS, elapsed)
    assert m._series["HIT"].sum == elapsed
    assert len(m._series["HIT"].counts) == len(BOUNDS) + 1


def test_observe_parts_counts_class_bytes_and_sum_in_python_values() -> None:
    m = NodeMetrics()
    for status, sent, took in ((200, 10, 0.25), (204, 0, 0.5), (404, 7, 1.0), (99, 1, 0.0),
                               (600, 2, 0.0), (2**70, 3, 0.0)):
        m.observe_parts("MISS", status, sent, took)
    s = m._series["MISS"]
    assert s.classes == [3, 0, 2, 0, 1, 0] and type(s.classes[0]) is int
    assert s.bytes == 23 and type(s.bytes) is int
    assert s.sum == 1.75 and type(s.sum) is float
    assert m._requests == {("MISS", "other"): 3, ("MISS", "2xx"): 2, ("MISS", "4xx"): 1}
    assert m._bytes == {"MISS": 23}


@pytest.mark.parametrize("x_cache, label", [("hit", "HIT"), ("HIT", "HIT"), ("Stale", "STALE"),
                                            ("", "NONE"), (None, "NONE")])
def test_observe_labels_by_the_upper_cased_x_cache(x_cache: str | None, label: str) -> None:
    m = NodeMetrics()
    for _ in range(3):
        m.observe(finished(x_cache, 200, 4, 0.0), None)
    assert list(m._series) == [label]
    assert m.requests_by_cache == {label: 3} and m.response_bytes == 12


def test_two_spellings_of_a_label_count_in_one_series() -> None:
    m = NodeMetrics()
    m.observe(finished("hit", 200, 1, 0.0), None)
    m.observe(finished("HIT", 200, 2, 0.0), None)
    m.observe_parts("HIT", 200, 4, 0.0)
    assert list(m._series) == ["HIT"] and m._series["HIT"].bytes == 7 and m.requests == 3


def test_observe_takes_the_status_from_the_response_when_the_exchange_has_none() -> None:
    m = NodeMetrics()
    m.observe(finished("MISS", 0, 0, 0.0), Response(503))
    m.observe(finished("MISS", 0, 0, 0.0), None)
    m.observe(finished("MISS", 302, 0, 0.0), Response(503))
    assert m.requests_by_class == {"5xx": 1, "other": 1, "3xx": 1}


def test_observe_measures_the_seconds_since_start_on_perf_counter() -> None:
    m = NodeMetrics()
    before = time.perf_counter()
    ex = finished("HIT", 200, 0, 0.0)
    ex.start = before - 0.2
    m.observe(ex, None)
    after = time.perf_counter()
    assert 0.2 <= m._series["HIT"].sum <= after - before + 0.2
    assert bucket(m, "HIT") == bisect_left(BOUNDS, 0.2)


def test_observe_counts_the_origin_and_its_latency_when_the_origin_answered() -> None:
    m = NodeMetrics()
    ex = finished("MISS", 200, 1, 0.0)
    ex.origin_time = 0.03
    m.observe(ex, None)
    ex = finished("MISS", 200, 1, 0.0)
    ex.origin, ex.origin_time = "images", 2.0
    m.observe(ex, None)
    m.observe(ex, None)
    m.observe(finished("HIT", 200, 1, 0.0), None)
    assert m.origin_requests == {"default": 1, "images": 2}
    assert m.snapshot()["origin_requests"] == {"default": 1, "images": 2}
    assert m._origin["images"].counts[bisect_left(BOUNDS, 2.0)] == 2 and m._origin["images"].sum == 4.0
    assert m._origin["default"].counts[bisect_left(BOUNDS, 0.03)] == 1
    assert m._origin["images"].classes == [0] * 6 and m._origin["images"].bytes == 0


@pytest.mark.parametrize("field, value", [("response_bytes", "7"), ("start", None),
                                          ("origin_time", "slow"), ("status", [])])
def test_a_bad_value_raises_and_counts_nothing(field: str, value: object) -> None:
    m = NodeMetrics()
    m.observe(finished("HIT", 200, 1, 0.0), None)
    ex = finished("HIT", 200, 1, 0.0)
    setattr(ex, field, value)
    if field == "status":  # not an int: counted as "other", as the dict lookup did
        m.observe(ex, None)
        assert m.requests_by_class == {"2xx": 1, "other": 1}
        return
    with pytest.raises(TypeError):
        m.observe(ex, None)
    assert m.requests == 1 and m.response_bytes == 1 and sum(m._series["HIT"].counts) == 1
    assert m.origin_requests == {}


def test_observe_parts_refuses_bad_arguments_without_counting() -> None:
    m = NodeMetrics()
    with pytest.raises(TypeError):
        m.observe_parts("HIT", 200, "1", 0.0)
    with pytest.raises(TypeError):
        m.observe_parts("HIT", 200, 1, "0.1")
    with pytest.raises(TypeError):
        m.observe_parts("HIT", 200, 1)
    with pytest.raises(TypeError):
        m.observe(finished("HIT", 200, 1, 0.0))
    assert m._series == {} and m.requests == 0


def test_the_exposition_reads_the_series() -> None:
    m = NodeMetrics()
    m.observe_parts("HIT", 200, 1024, 0.0002)
    m.observe_parts("HIT", 404, 10, 0.003)
    text = m.exposition().decode()
    assert 'edgenode_requests_total{cache_status="HIT",status_class="2xx"} 1.0' in text
    assert 'edgenode_requests_total{cache_status="HIT",status_class="4xx"} 1.0' in text
    assert 'edgenode_response_bytes_total{cache_status="HIT"} 1034.0' in text
    assert 'edgenode_request_duration_seconds_bucket{cache_status="HIT",le="0.0005"} 1.0' in text
    assert 'edgenode_request_duration_seconds_bucket{cache_status="HIT",le="0.0025"} 1.0' in text
    assert 'edgenode_request_duration_seconds_bucket{cache_status="HIT",le="0.005"} 2.0' in text
    assert 'edgenode_request_duration_seconds_bucket{cache_status="HIT",le="+Inf"} 2.0' in text
    assert 'edgenode_request_duration_seconds_count{cache_status="HIT"} 2.0' in text
    assert f'edgenode_request_duration_seconds_sum{{cache_status="HIT"}} {0.0002 + 0.003!r}' in text


def test_a_series_starts_empty_and_an_uninitialised_recorder_raises() -> None:
    s = Series()
    assert (s.classes, s.bytes, s.counts, s.sum) == ([0] * 6, 0, [0] * 16, 0.0)
    with pytest.raises(TypeError):
        Series(1)
    r = Recorder.__new__(Recorder)
    with pytest.raises(RuntimeError):
        r.observe_parts("HIT", 200, 1, 0.0)
    with pytest.raises(TypeError):
        Recorder([])
