"""A declined plain request's objects made in C (``_fasthit.plain_exchange``, bound by
``bind_plain``): over real sockets on 127.0.0.1, every slot of the ``ClientExchange`` and
its ``Request`` (the fields' multidict item by item) that ``_plain_head`` hands to the
batch is the one the Python makers (``_fields``, ``_exchange``, ``Request``,
``client_exchange``) give for the same request: GET and HEAD, HTTP/1.0 and 1.1,
Connection: close, targets with and without a query, repeated and Latin-1 fields, an
incoming X-Request-Id (the Python path, as before) and a request queued behind another,
with the fast path's note of its cache key taken as ``declined_key`` takes it; a note left
for another request is not taken; a ``Request`` class whose slots the maker does not store
is refused; an error leaves the parsed pairs as they were."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from multidict import CIMultiDict, getversion

from edgenode.frontend import fast_hits
from edgenode.frontend._fasthit import bind_plain, plain_exchange
from edgenode.frontend.connection import Connection
from edgenode.http.messages import FROM_BODY, Request
from edgenode.pipeline.exchange import DECLINED, ClientExchange, Exchange, declined_key
from tests.exchange_support import PLAIN_HEADS, made_and_seen, slots


class Declining:
    """A cache-first fast path that finds nothing: every plain GET/HEAD is declined."""

    filtered = False

    def answer(self, *args: Any) -> None:
        return None


def snapshot(conn: Connection, exchange: Exchange) -> dict[str, Any]:
    """The exchange's slots and its request's as the request's steps got them, the fields
    as their items, the multidict versions as whether they agree, the connection's own
    (addresses, interim sender) as whether they are the connection's."""
    seen: dict[str, Any] = {"type": type(exchange), "request.type": type(exchange.request)}
    for name in slots(Exchange):
        value = getattr(exchange, name)
        seen[name] = dict(value) if type(value) is dict else value
    # marked plain at its fields' version (a global counter's): the cache trusts the mark
    seen["plain"] = exchange.plain == getversion(exchange.request.headers)
    seen["request"] = exchange.request is not None
    seen["client"] = exchange.client == conn.client and type(exchange.client) is tuple
    seen["local"] = exchange.local == conn.local and type(exchange.local) is tuple
    seen["interim"] = None if exchange.interim is None else exchange.interim == conn.send_interim
    note = exchange.cache_key  # its ``asked``: the connection's fields callable
    seen["cache_key"] = None if note is None else (note[0] == conn._fast_fields_once, note[1], note[2])
    request = exchange.request
    for name in slots(Request):
        value = getattr(request, name)
        if name == "headers":
            value = (type(value), list(value.items()))
        elif name == "raw":  # the fields' multidict version is a global counter's
            value = (value[0] == getversion(request.headers), list(value[1]))
        seen["request." + name] = value
    return seen


class Noting(Declining):
    """A fast path that declines every head after leaving a note of its key for it (as the
    cache stage's ``fast_hit`` does for a miss)."""

    def answer(self, target: bytes, host: bytes, fields: Any, *rest: Any) -> None:
        DECLINED[0] = (fields, "stage", ("http://" + host.decode() + target.decode(), "key"))
        return None


async def started(native: bool, heads: list[bytes], monkeypatch: pytest.MonkeyPatch,
                  fast_path: Any = None) -> list[dict[str, Any]]:
    """The heads sent on one connection each (a bytes string may hold pipelined heads) to a
    front end whose fast path declines them all (request ids from the same prefix and
    count every run): what each request's steps got, in order."""
    made, seen = await made_and_seen(monkeypatch, native, "NATIVE_PLAIN", "plain_exchange",
                                     fast_path or Declining(), heads, snapshot)
    assert made == (sum(h.count(b"\r\n\r\n") for h in heads if b"X-Request-Id" not in h) if native else 0)
    return seen


HEADS = PLAIN_HEADS + [
    b"GET /obj/f HTTP/1.1\r\nHost: h\r\nAccept: a\r\naccept: b\r\nX-Note: caf\xe9 \xff\r\n\r\n",
    b"GET /obj/g HTTP/1.1\r\nHost: h\r\nX-Request-Id: abc-123\r\n\r\n",
    b"GET /obj/h HTTP/1.1\r\nHost: h\r\n\r\nGET /obj/i HTTP/1.1\r\nHost: h\r\n\r\n",
]


async def test_the_c_made_objects_are_the_python_makers_slot_by_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    assert fast_hits.NATIVE_PLAIN  # ``Request``'s slots are the maker's
    native = await started(True, HEADS, monkeypatch)
    python = await started(False, HEADS, monkeypatch)
    assert len(native) == len(python) == 9
    for got, want in zip(native, python):
        for name in ("id", "start", "start_wall"):  # a shared counter and the clocks
            assert type(got.pop(name)) is type(want.pop(name))
        assert got == want
    assert all(s["type"] is ClientExchange and s["request.type"] is Request for s in native)
    assert [s["request.method"] for s in native[:3]] == ["GET", "HEAD", "GET"]
    assert [(s["request.path"], s["request.query"]) for s in native[:4]] == [
        ("/obj/a", "size=10&x"), ("/obj/b", ""), ("/obj/c", ""), ("/obj/d", "q")]
    assert [s["keep_alive"] for s in native[:5]] == [True, True, False, False, True]
    assert [s["interim"] for s in native[:5]] == [True, True, None, True, None]
    first = native[0]
    assert first["request.headers"] == (CIMultiDict, [
        ("Host", "example.com"), ("User-Agent", "t"), ("Accept", "*/*"), ("X-Request-Id", "0123456789ab-1")])
    assert first["request.raw"] == (True, [(b"Host", b"example.com"), (b"User-Agent", b"t"),
                                           (b"Accept", b"*/*"), (b"X-Request-Id", b"0123456789ab-1")])
    assert ("X-Note", "caf\xe9 \xff") in native[5]["request.headers"][1]
    assert native[6]["request_id"] == "abc-123"
    assert [s["request.target"] for s in native[7:]] == ["/obj/h", "/obj/i"]  # the second queued
    # marked plain where the fast path declined; the pipelined second one is not asked
    assert [s["plain"] for s in native] == [True] * 8 + [False]
    assert all(s["parsed"] is None and s["request.body"] == b"" and s["cache_key"] is None
               and s["request._trailers"] is FROM_BODY for s in native)


async def test_the_fast_paths_key_is_taken_as_the_python_maker_takes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    native = await started(True, HEADS, monkeypatch, Noting())
    python = await started(False, HEADS, monkeypatch, Noting())
    for got, want in zip(native, python):
        assert got["cache_key"] == want["cache_key"]
    # every declined head carries its own note (an incoming id: the Python maker's); the
    # pipelined second one was not asked
    assert [s["cache_key"] for s in native] == [
        (True, "stage", ("http://" + host + target, "key")) for host, target in [
            ("example.com", "/obj/a?size=10&x"), ("example.com", "/obj/b"), ("h", "/obj/c?"), ("h", "/obj/d?q"),
            ("h", "/obj/e"), ("h", "/obj/f"), ("h", "/obj/g"), ("h", "/obj/h")]] + [None]


def test_a_note_for_another_request_is_not_taken() -> None:
    asked, other = object(), object()
    note = (other, "stage", ("u", "k"))
    for take in (lambda a: plain_exchange("GET", b"/", [(b"Host", b"h")], "1.1", True, b"p-", itertools.count(1),
                                          ("", 0), ("", 0), None, a).cache_key, declined_key):
        DECLINED[0] = note
        assert take(asked) is None and DECLINED[0] is note  # left as it was
        assert take(other) is note and DECLINED[0] is None  # taken
        assert take(other) is None
        DECLINED.clear()  # a cell that is not the one bound: nothing to take, nothing read
        try:
            assert take(other) is None
        finally:
            DECLINED.append(None)


def test_a_request_class_whose_slots_the_maker_does_not_store_is_refused() -> None:
    class MoreSlots(Request):
        __slots__ = ("extra",)

    class OwnNew(Request):
        __slots__ = ()

        def __new__(cls, *args: Any) -> OwnNew:
            return super().__new__(cls)

    for request_type in (MoreSlots, OwnNew, ClientExchange):
        assert bind_plain(request_type, CIMultiDict, getversion, DECLINED) is False
    # refused without unbinding: the front end's class is still the one made
    made = plain_exchange("GET", b"/", [(b"Host", b"h")], "1.1", True, b"p-", itertools.count(1),
                          ("", 0), ("", 0), None, None)
    assert type(made) is ClientExchange and type(made.request) is Request
    assert list(made.request.headers.items()) == [("Host", "h"), ("X-Request-Id", "p-1")]


def test_an_error_leaves_the_parsed_pairs_as_they_were() -> None:
    raw = [(b"Host", b"h")]
    with pytest.raises(RuntimeError):
        plain_exchange("GET", b"/", raw, "1.1", True, b"p-", iter(()), ("", 0), ("", 0), None, None)
    with pytest.raises(TypeError):
        plain_exchange("GET", b"/", raw + [("Host", "h")], "1.1", True, b"p-", itertools.count(1),
                       ("", 0), ("", 0), None, None)
    with pytest.raises(TypeError):
        plain_exchange("GET", "/", raw, "1.1", True, b"p-", itertools.count(1), ("", 0), ("", 0), None, None)
    assert raw == [(b"Host", b"h")]
