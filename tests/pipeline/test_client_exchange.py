"""``client_exchange`` makes the same exchange ``Exchange.__init__`` would for a client's
request (with the front end's request id and interim sender), without a Python
``__init__``: slot by slot, so a slot ``Exchange`` gains and the maker does not store
fails here."""

from __future__ import annotations

import time
from typing import Any

import pytest
from multidict import CIMultiDict

from edgenode.http.messages import Request, Response
from edgenode.pipeline.exchange import ClientExchange, Exchange, client_exchange
from tests.exchange_support import assert_same_exchange


def _interim(response: Response) -> None:
    """A stand-in for the front end's interim sender."""


@pytest.mark.parametrize("interim", [_interim, None])
def test_the_makers_exchange_is_the_classs_slot_by_slot(interim: Any) -> None:
    request = Request("GET", "/a?b=1", CIMultiDict({"Host": "example.com"}))
    reader: Any = object()
    client, local = ("192.0.2.1", 4), ("127.0.0.1", 80)
    before = time.time()
    made = client_exchange(request, client, local, True, reader, "rid-1", interim)
    expected = Exchange(request, client, local, True, reader)
    expected.request_id = "rid-1"
    expected.interim = interim
    assert type(made) is ClientExchange and isinstance(made, Exchange)
    assert_same_exchange(made, expected)
    assert before <= made.start_wall <= time.time()


def test_each_exchange_has_its_own_dicts_and_its_methods_work() -> None:
    request = Request("GET", "/", CIMultiDict())
    first = client_exchange(request, ("", 0), ("", 0), False, None, "a", None)
    second = client_exchange(request, ("", 0), ("", 0), False, None, "b", None)
    first.add_timing("f", "request_headers", 0.5)
    first.props["k"] = 1
    assert second.timings == {} and second.props == {} and second.id == first.id + 1
    closed: list[int] = []

    class Body:
        def close(self) -> None:
            closed.append(1)

    first.hold(Body())
    first.release()
    assert closed == [1] and first.elapsed >= 0
