"""The front end's request objects made in C (``_fasthit.filtered_exchange`` and
``client_exchange``, bound by ``bind_makers``): over real sockets on 127.0.0.1, every slot
of the ``ClientExchange`` and its ``RawRequest`` that ``_fast`` hands to the batch
(``run_steps`` finds it) is the one the Python makers (``_exchange``, ``raw_request``,
``client_exchange``) give for the same request, for GET and HEAD, HTTP/1.0 and 1.1,
Connection: close, targets with and without a query, and an incoming X-Request-Id (its
exchange from the C ``client_exchange``, held to the Python one slot by slot too);
classes whose slots the maker does not store are refused; an error leaves the parsed
pairs as they were; the clocks are the ``time`` module's."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from multidict import CIMultiDict, getversion

from edgenode.frontend import fast_hits, request_parser
from edgenode.frontend._fasthit import bind_makers, filtered_exchange
from edgenode.frontend._fasthit import client_exchange as native_client_exchange
from edgenode.frontend.connection import Connection
from edgenode.http.messages import FROM_BODY, RawRequest, Request
from edgenode.pipeline.exchange import RAW_PLAIN, ClientExchange, Exchange, client_exchange, exchange_ids
from tests.exchange_support import PLAIN_HEADS, assert_same_exchange, made_and_seen, slots


class Filtered:
    """A fast path behind filters: every plain GET/HEAD is marked plain for its chain."""

    filtered = True

    def answer(self, *args: Any) -> None:
        raise AssertionError("a filtered fast path looks nothing up")


def snapshot(conn: Connection, exchange: Exchange) -> dict[str, Any]:
    """The exchange's slots and its request's (all but the fields ``headers``, made on
    first read) as the request's steps got them, the mutable ones copied, the connection's own
    (its addresses, its interim sender) as whether they are the connection's."""
    seen: dict[str, Any] = {"type": type(exchange), "request.type": type(exchange.request)}
    for name in slots(Exchange):
        value = getattr(exchange, name)
        seen[name] = dict(value) if type(value) is dict else value
    seen["request"] = exchange.request is not None
    seen["client"] = exchange.client == conn.client and type(exchange.client) is tuple
    seen["local"] = exchange.local == conn.local and type(exchange.local) is tuple
    seen["interim"] = None if exchange.interim is None else exchange.interim == conn.send_interim
    for name in slots(Request):
        if name != "headers":
            value = getattr(exchange.request, name)
            seen["request." + name] = (value[0], list(value[1])) if name == "raw" else value
    if type(exchange.request) is Request:  # the fields' multidict version: a global counter's
        version = getversion(exchange.request.headers)
        seen["plain"] = exchange.plain == version
        seen["request.raw"] = (exchange.request.raw[0] == version, seen["request.raw"][1])  # type: ignore[index]
    seen["timings is props"] = exchange.timings is exchange.props
    return seen


async def started(native: bool, heads: list[bytes], monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Each head sent on its own connection to a front end behind filters (request ids
    from the same prefix and count every run): what the request's steps got (``run_steps``:
    the fast path hands its exchange to the batch without ``_start``), per request."""
    made, seen = await made_and_seen(monkeypatch, native, "NATIVE_EXCHANGE", "filtered_exchange", Filtered(), heads,
                                     snapshot)
    assert made == (sum(b"X-Request-Id" not in head for head in heads) if native else 0)
    return seen


HEADS = PLAIN_HEADS + [
    b"GET /obj/f HTTP/1.1\r\nHost: h\r\nX-Request-Id: abc-123\r\n\r\n",
]


async def test_the_c_made_objects_are_the_python_makers_slot_by_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    assert fast_hits.NATIVE_EXCHANGE  # the classes' slots are the maker's
    native = await started(True, HEADS, monkeypatch)
    python = await started(False, HEADS, monkeypatch)
    assert len(native) == len(python) == len(HEADS)
    for got, want in zip(native, python):
        for name in ("id", "start", "start_wall"):  # a shared counter and the clocks
            assert type(got.pop(name)) is type(want.pop(name))
        assert got == want
    plain = native[:5]
    assert all(s["type"] is ClientExchange and s["request.type"] is RawRequest for s in plain)
    assert [s["request.method"] for s in plain] == ["GET", "HEAD", "GET", "GET", "GET"]
    assert [(s["request.path"], s["request.query"]) for s in plain] == [
        ("/obj/a", "size=10&x"), ("/obj/b", ""), ("/obj/c", ""), ("/obj/d", "q"), ("/obj/e", "")]
    assert [s["keep_alive"] for s in plain] == [True, True, False, False, True]
    assert [s["interim"] for s in plain] == [True, True, None, True, None]
    assert [s["request_id"] for s in plain] == [f"0123456789ab-{i}" for i in range(1, 6)]
    assert plain[0]["request.raw"][1][-1] == (b"X-Request-Id", b"0123456789ab-1")
    assert all(s["plain"] == RAW_PLAIN and s["parsed"][0] == s["target"].encode() for s in plain)
    assert native[5]["request.type"] is Request and native[5]["request_id"] == "abc-123"


@pytest.mark.parametrize("interim", [lambda response: None, None])
def test_the_c_client_exchange_is_the_python_one_slot_by_slot(interim: Any) -> None:
    """``_exchange``'s maker for every other request (``request_parser.make_exchange``)."""
    assert request_parser.make_exchange is native_client_exchange
    request = Request("POST", "/a?b=1", CIMultiDict({"Host": "example.com"}))
    reader: Any = object()
    args = (request, ("192.0.2.1", 4), ("127.0.0.1", 80), True, reader, "rid-1", interim)
    made, expected = native_client_exchange(*args), client_exchange(*args)
    assert type(made) is type(expected) is ClientExchange
    assert_same_exchange(made, expected, identical=True)


def test_classes_whose_slots_the_maker_does_not_store_are_refused() -> None:
    class MoreSlots(ClientExchange):
        __slots__ = ("extra",)

    class OwnInit(ClientExchange):
        __slots__ = ()

        def __init__(self) -> None:
            pass

    class MoreRequestSlots(RawRequest):
        __slots__ = ("extra",)

    for request_type, exchange_type in [(RawRequest, MoreSlots), (RawRequest, OwnInit),
                                        (MoreRequestSlots, ClientExchange), (RawRequest, Exchange),
                                        (Request, ClientExchange)]:
        assert bind_makers(request_type, exchange_type, FROM_BODY, exchange_ids, RAW_PLAIN) is False
    # refused without unbinding: the front end's classes are still the ones made
    made = filtered_exchange("GET", b"/", [], b"h", "1.1", True, b"p-", itertools.count(1),
                             ("", 0), ("", 0), None)
    assert type(made) is ClientExchange and type(made.request) is RawRequest


def test_an_error_leaves_the_parsed_pairs_as_they_were(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = [(b"Host", b"h")]
    with pytest.raises(RuntimeError):
        filtered_exchange("GET", b"/", raw, b"h", "1.1", True, b"p-", iter(()), ("", 0), ("", 0), None)

    def broken() -> float:
        raise OSError("no clock")

    monkeypatch.setattr(time, "perf_counter", broken)
    with pytest.raises(OSError):
        filtered_exchange("GET", b"/", raw, b"h", "1.1", True, b"p-", itertools.count(1), ("", 0), ("", 0), None)
    with pytest.raises(TypeError):
        filtered_exchange("GET", "/", raw, b"h", "1.1", True, b"p-", itertools.count(1), ("", 0), ("", 0), None)
    assert raw == [(b"Host", b"h")]


def test_the_clocks_are_read_through_the_time_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "perf_counter", lambda: 12.5)
    monkeypatch.setattr(time, "time", lambda: 1e9)
    made = filtered_exchange("GET", b"/x", [], b"h", "1.1", True, b"p-", itertools.count(255),
                             ("", 0), ("", 0), None)
    assert (made.start, made.start_wall, made.request_id) == (12.5, 1e9, "p-ff")
    assert made.request.raw == (-1, [(b"X-Request-Id", b"p-ff")])
    assert list(made.request.headers.items()) == list(CIMultiDict({"X-Request-Id": "p-ff"}).items())
