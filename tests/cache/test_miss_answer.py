"""The miss's answer from the entry it just stored (``CacheStage._serve``'s common answer,
made without ``Response.__init__``): equal slot by slot to the ``Response`` the class makes
for the same entry, the request's own to edit, and a 304 or 206 when the client's
validators or Range ask for one."""

from __future__ import annotations

import time
from typing import Any

import pytest
from multidict import CIMultiDict, getversion

from edgenode.cache.directives import format_http_date
from edgenode.cache.stage import CacheStage
from edgenode.config import CacheConfig
from edgenode.http.messages import FROM_BODY, PrebuiltResponse, Request, Response
from edgenode.pipeline.chain import Chain
from edgenode.pipeline.exchange import Exchange

BODY = b"x" * 300


def _origin(trailers: CIMultiDict[str] | None) -> Any:
    async def origin(ex: Exchange) -> Response:
        fields = CIMultiDict([("Content-Type", "text/plain"), ("Cache-Control", "max-age=600"),
                             ("ETag", '"v1"'), ("Date", format_http_date(time.time()))])
        resp = Response(200, fields, BODY, "Fine")
        if trailers is not None:
            resp.trailers = trailers
        return resp
    return origin


def _request(method: str, extra: dict[str, str] | None = None) -> Request:
    return Request(method, "/obj", CIMultiDict({"Host": "example.com", **(extra or {})}))


async def _miss(stage: CacheStage, req: Request, trailers: CIMultiDict[str] | None = None
                ) -> tuple[Response, list[tuple[Any, ...]]]:
    """The miss's answer through ``handle``, and what ``_serve`` was called with."""
    seen: list[tuple[Any, ...]] = []
    real = stage._serve

    def spy(ex: Exchange, entry: Any, now: float, x_cache: str, cache_status: str) -> Response:
        seen.append((entry, now, cache_status))
        return real(ex, entry, now, x_cache, cache_status)

    stage._serve = spy  # type: ignore[method-assign]
    ex = Exchange(req)
    out = stage.handle(ex, Chain([], _origin(trailers)))
    resp = out if isinstance(out, Response) else await out
    assert ex.x_cache == "MISS"
    return resp, seen


def _class_made(entry: Any, now: float, cache_status: str, method: str) -> Response:
    """The answer ``Response.__init__`` makes for a whole entry: its fields plus Age,
    Cache-Status and X-Cache, its trailers a copy, its head the stored block plus those."""
    age = str(int(max(0.0, entry.age(now))))
    headers = CacheStage._hit_fields(entry, age, cache_status, "MISS")
    head = method == "HEAD"
    resp = Response(entry.status, headers, b"" if head else entry.body, entry.reason)
    if entry.trailers is not None and not head:
        resp.trailers = entry.trailers.copy()
    tail = f"Age: {age}\r\nCache-Status: {cache_status}\r\nX-Cache: MISS\r\n".encode("latin-1")
    resp.wire_head = (getversion(headers), entry.wire + tail)
    return resp


def _slots() -> list[str]:
    return [name for cls in Response.__mro__ for name in getattr(cls, "__slots__", ())]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("trailers", [None, CIMultiDict([("Digest", "sha-256=abc")])])
async def test_the_miss_answer_is_serves_slot_by_slot(method: str, trailers: CIMultiDict[str] | None) -> None:
    stage = CacheStage(CacheConfig())
    made, seen = await _miss(stage, _request("GET"), trailers)
    assert len(seen) == 1
    entry, now, cache_status = seen[0]
    ex_made = Exchange(_request(method))
    made = CacheStage._serve(stage, ex_made, entry, now, "MISS", cache_status)
    expected = _class_made(entry, now, cache_status, method)
    assert type(made) is PrebuiltResponse
    assert (ex_made.cache_status, ex_made.x_cache) == (cache_status, "MISS")
    for name in _slots():  # a slot ``Response`` gains must be stored by ``made_response`` too
        got, want = getattr(made, name), getattr(expected, name)
        if name == "headers":
            assert list(got.items()) == list(want.items())
        elif name == "wire_head":
            assert (got is None) == (want is None)
            if got is not None:
                assert got[1] == want[1] and got[0] == getversion(made.headers)
        elif name == "_trailers":  # ``FROM_BODY`` when none: the front end's kept-head writer takes only that
            assert got is FROM_BODY if want is FROM_BODY else got is not want
        else:
            assert got == want, name
    got_t, want_t = made.trailers, expected.trailers
    assert (None if got_t is None else list(got_t.items())) == (None if want_t is None else list(want_t.items()))
    if got_t is not None:
        assert got_t is not entry.trailers  # a filter may edit them: not the stored ones
    assert made.body == (b"" if method == "HEAD" else BODY)


async def test_the_miss_answer_is_its_own_to_edit() -> None:
    stage = CacheStage(CacheConfig())
    first, seen = await _miss(stage, _request("GET"))
    assert type(first) is PrebuiltResponse and first.wire_head is not None
    assert first.wire_head[0] == getversion(first.headers)
    first.headers.add("X-Filtered", "yes")
    assert first.wire_head[0] != getversion(first.headers)  # its kept head goes stale
    assert "x-filtered" not in seen[0][0].proto
    ex = Exchange(_request("GET"))
    hit = stage.handle(ex, Chain([], _origin(None)))
    hit = hit if isinstance(hit, Response) else await hit
    assert ex.x_cache == "HIT" and "x-filtered" not in hit.headers


@pytest.mark.parametrize(("extra", "status"), [({"If-None-Match": '"v1"'}, 304), ({"Range": "bytes=0-9"}, 206)])
async def test_validators_and_range_are_answered_by_serve(extra: dict[str, str], status: int) -> None:
    stage = CacheStage(CacheConfig())
    resp, seen = await _miss(stage, _request("GET", extra))
    assert len(seen) == 1 and resp.status == status and type(resp) is Response
