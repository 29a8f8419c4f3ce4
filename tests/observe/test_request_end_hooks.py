"""``Signals.request_end``: the completion hooks' loop in C (observe/_series.c
``RequestEnd``): every hook in order, the ones subscribed later too, a raising hook
logged without stopping the rest, and no Python frame with the metrics' ``observe``
the only subscriber (the node's usual case)."""

from __future__ import annotations

import logging
import sys
import time
from types import FrameType
from typing import Any

import pytest
from multidict import CIMultiDict

from edgenode.http.messages import Request, Response
from edgenode.node import Signals
from edgenode.observe.metrics import NodeMetrics
from edgenode.pipeline.exchange import Exchange


def exchange() -> Exchange:
    ex = Exchange(Request("GET", "/a", CIMultiDict({"Host": "t"})))
    ex.x_cache, ex.status, ex.response_bytes, ex.start = "HIT", 200, 3, time.perf_counter()
    return ex


def test_every_hook_runs_in_order_with_the_request_including_later_ones() -> None:
    signals, seen = Signals(), []
    signals.on_request_end.append(lambda ex, resp: seen.append(("a", ex, resp)))
    ex, resp = exchange(), Response(200)
    signals.request_end(ex, resp)
    signals.on_request_end.append(lambda ex, resp: seen.append(("b", ex, resp)))
    signals.request_end(ex, resp)
    assert seen == [("a", ex, resp), ("a", ex, resp), ("b", ex, resp)]


def test_a_raising_hook_is_logged_and_the_rest_still_run(caplog: pytest.LogCaptureFixture) -> None:
    signals, seen = Signals(), []

    def broken(ex: Exchange, resp: Response) -> None:
        raise ValueError("boom")

    signals.on_request_end.extend([broken, lambda ex, resp: seen.append(ex)])
    ex = exchange()
    with caplog.at_level(logging.ERROR, logger="edgenode.node"):
        signals.request_end(ex, Response(200))
    assert seen == [ex]
    [record] = [r for r in caplog.records if r.getMessage() == "on_request_end hook failed"]
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
    assert record.exc_info[2] is not None and "boom" in caplog.text


def test_an_exception_outside_exception_stops_the_loop() -> None:
    class Stop(BaseException):
        pass

    def stop(ex: Exchange, resp: Response) -> None:
        raise Stop

    signals, seen = Signals(), []
    signals.on_request_end.extend([stop, lambda ex, resp: seen.append(ex)])
    with pytest.raises(Stop):
        signals.request_end(exchange(), Response(200))
    assert seen == []


def test_request_end_takes_the_request_and_its_answer_only() -> None:
    signals = Signals()
    with pytest.raises(TypeError):
        signals.request_end(exchange())  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        signals.request_end(exchange(), Response(200), response=None)  # type: ignore[call-arg]


def test_the_metrics_alone_complete_a_request_without_a_python_frame() -> None:
    signals, metrics = Signals(), NodeMetrics()
    signals.on_request_end.append(metrics.observe)
    ex, resp, calls = exchange(), Response(200), []

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            calls.append(frame.f_code.co_qualname)

    sys.setprofile(profile)
    try:
        signals.request_end(ex, resp)
    finally:
        sys.setprofile(None)
    assert calls == [] and metrics.requests == 1 and metrics.response_bytes == 3
