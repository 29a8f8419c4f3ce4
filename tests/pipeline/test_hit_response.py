"""The flat step's cache answer (``CacheStage.hit_response``): a ``PrebuiltResponse``
made without ``Response.__init__``, equal slot by slot to the general step's answer for
the same hit (``handle`` -> ``_serve``), and each request's own to edit."""

from __future__ import annotations

import time

import pytest
from multidict import CIMultiDict, getversion

from edgenode.cache.directives import format_http_date
from edgenode.cache.stage import CacheStage
from edgenode.config import CacheConfig
from edgenode.http.messages import FROM_BODY, PrebuiltResponse, Request, Response, raw_request
from edgenode.pipeline.chain import Chain
from edgenode.pipeline.exchange import RAW_PLAIN, Exchange

PAIRS = [(b"Host", b"example.com"), (b"Accept", b"*/*"), (b"X-Request-Id", b"t-1")]


async def _origin(ex: Exchange) -> Response:
    fields = CIMultiDict([("Content-Type", "text/plain"), ("Cache-Control", "max-age=600"),
                         ("ETag", '"v1"'), ("Date", format_http_date(time.time()))])
    return Response(200, fields, b"x" * 300, "Fine")


async def _stored() -> CacheStage:
    """A cache stage (memory store) holding /obj, fetched once through its general step."""
    stage = CacheStage(CacheConfig())
    ex = Exchange(Request("GET", "/obj", CIMultiDict({"Host": "example.com"})))
    out = stage.handle(ex, Chain([], _origin))
    assert not isinstance(out, Response) and ex.x_cache == ""  # a miss: its fetch awaits
    assert (await out).status == 200
    return stage


def _raw_exchange(method: str) -> Exchange:
    """A plain request as the front end's fast path hands it on behind filters."""
    ex = Exchange(raw_request(method, "/obj", list(PAIRS)))
    ex.plain = RAW_PLAIN
    ex.parsed = (b"/obj", b"example.com")
    return ex


def _slots() -> list[str]:
    """Every slot a ``Response`` has, from its class and its bases."""
    return [name for cls in Response.__mro__ for name in getattr(cls, "__slots__", ())]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_the_hits_response_is_the_general_steps_slot_by_slot(method: str) -> None:
    stage = await _stored()
    ex = _raw_exchange(method)
    made = stage.hit_response(ex)
    general = Exchange(Request(method, "/obj", CIMultiDict({"Host": "example.com"})))
    expected = stage.handle(general, Chain([], _origin))
    # both made without ``__init__``; the general step's is held to the class's, slot by
    # slot, in tests/cache/test_miss_answer.py
    assert type(made) is PrebuiltResponse and type(expected) is PrebuiltResponse
    assert (ex.cache_status, ex.x_cache) == (general.cache_status, general.x_cache)
    for name in _slots():  # a slot ``Response`` gains must be stored by ``hit_response`` too
        got, want = getattr(made, name), getattr(expected, name)
        if name == "headers":
            assert list(got.items()) == list(want.items())
        elif name == "wire_head":
            assert got[1] == want[1] and got[0] == getversion(made.headers)
        else:
            assert got == want, name
    assert made._trailers is FROM_BODY and made.trailers is None
    assert made.body == (b"" if method == "HEAD" else b"x" * 300)


async def test_each_hit_edits_its_own_fields_and_its_kept_head_goes_stale() -> None:
    stage = await _stored()
    first, second = stage.hit_response(_raw_exchange("GET")), stage.hit_response(_raw_exchange("GET"))
    assert first is not None and second is not None and first.headers is not second.headers
    first.headers.add("X-Filtered", "yes")
    assert first.wire_head[0] != getversion(first.headers)  # type: ignore[index]
    third = stage.hit_response(_raw_exchange("GET"))
    assert third is not None and "x-filtered" not in third.headers and "x-filtered" not in second.headers
    assert third.wire_head[0] == getversion(third.headers)  # type: ignore[index]


def test_a_prebuilt_responses_class_call_runs_no_python_init() -> None:
    """The point of the type: its class call stays in C (no ``__init__`` frame)."""
    assert PrebuiltResponse.__init__ is object.__init__
    with pytest.raises(TypeError):
        PrebuiltResponse(200)  # type: ignore[call-arg]
