"""The usual miss (a GET the front end found plain, nothing stored for its key, this
process alone collapsing) led in place by ``CacheStage._plain_miss``: collapsing, the
waiters' answers and a leader's failures as ``_miss`` gives them, with the memory store
and a single-process LMDB store."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any, Awaitable, Callable

import pytest
from aiohttp import web
from multidict import CIMultiDict, getversion

from edgenode.cache.collapse import Collapser
from edgenode.cache.directives import format_http_date, parse_cache_control
from edgenode.cache.stage import CacheStage
from edgenode.cache.store import CacheStore
from edgenode.http.messages import FROM_BODY, Request, Response, made_response, read_body
from edgenode.pipeline.exchange import Exchange
from tests.cache.conftest import Harness, held_stream, reset_leader, stores

BODY = bytes(range(256)) * 4
Terminal = Callable[[Exchange], Awaitable[Response]]


@pytest.fixture(params=["memory", "lmdb-alone"])
def alone_store(request: Any, tmp_path: Any, clock: Any) -> Any:
    """A store whose node is this process: no leases, so the stage leads misses in place."""
    make, made = stores(request.param, tmp_path, clock, alone=True)
    yield make
    for store in made:
        store.close()


@pytest.fixture
def plain_harness(make_harness: Any, alone_store: Any) -> Any:
    """``make_harness`` with a store whose node is this process."""
    return lambda **cfg_kw: make_harness(store_for=alone_store, **cfg_kw)


@pytest.fixture
def led(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys ``_plain_miss`` was asked to lead."""
    keys: list[str] = []
    real = CacheStage._plain_miss

    def plain_miss(self: CacheStage, ex: Exchange, nxt: Any, key: str, url: str, fwd: str) -> Any:
        keys.append(key)
        return real(self, ex, nxt, key, url, fwd)
    monkeypatch.setattr(CacheStage, "_plain_miss", plain_miss)
    return keys


def _plain(target: str) -> Exchange:
    """A GET as the front end hands on one whose fields it found plain (``Exchange.plain``)."""
    ex = Exchange(Request("GET", target, CIMultiDict({"Host": "example.com"})))
    ex.plain = getversion(ex.request.headers)
    return ex


async def _send(h: Harness, target: str, terminal: Terminal | None = None) -> tuple[Response, bytes]:
    """A plain GET through the stage, to ``terminal`` (the harness's origin by default)."""
    out = h.stage.handle(_plain(target), SimpleNamespace(settled=terminal or h.terminal))  # type: ignore[arg-type]
    resp = out if isinstance(out, Response) else await out
    return resp, await read_body(resp.body)


def _usual_origin(gate: asyncio.Event, calls: list[str]) -> Terminal:
    """An origin answering as the origin client does (the body with the head, its plain
    pairs), the usual storable answer, once ``gate`` is set."""
    fields = [("Cache-Control", "max-age=600"), ("Date", format_http_date(time.time()))]
    parse_cache_control(["max-age=600"])  # (the C decision reads the directives' memo)

    async def terminal(ex: Exchange) -> Response:
        calls.append(ex.request.target)
        await gate.wait()
        headers = CIMultiDict(fields)
        return made_response(200, headers, BODY, "OK", (getversion(headers), list(fields)), FROM_BODY)
    return terminal


async def test_the_usual_miss_leads_its_flight_in_place(plain_harness: Any, origin: Any, led: list[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    h = plain_harness()
    origin.route("/a", body=BODY, cache_control="max-age=60")

    def no_join(self: Collapser, key: str) -> Any:
        raise AssertionError("the usual miss leads its flight without join")
    monkeypatch.setattr(Collapser, "join", no_join)
    resp, body = await _send(h, "/a")
    assert body == BODY and resp.headers["X-Cache"] == "MISS" and len(led) == 1
    assert resp.headers["Cache-Status"] == "edgenode; fwd=uri-miss; stored"
    assert len(h.stage.collapser) == 0
    resp, body = await _send(h, "/a")
    assert body == BODY and resp.headers["X-Cache"] == "HIT" and origin.hits["/a"] == 1 and len(led) == 1


async def test_with_leases_or_collapsing_off_a_plain_miss_goes_through_miss(
        make_harness: Any, plain_harness: Any, origin: Any, led: list[str]) -> None:
    origin.route("/b", body=BODY, cache_control="max-age=60")
    leased = make_harness()  # (its LMDB store takes leases: other processes may lead)
    off = plain_harness(collapse=False)
    assert off.stage.collapser.alone and leased.stage.collapser.alone == isinstance(leased.store, CacheStore)
    for h in (leased, off):
        resp, body = await _send(h, "/b")
        assert body == BODY and resp.headers["X-Cache"] == "MISS" and len(h.stage.collapser) == 0
    assert len(led) == (1 if isinstance(leased.store, CacheStore) else 0)


async def test_twenty_concurrent_plain_misses_make_one_origin_request(plain_harness: Any, origin: Any,
                                                                     led: list[str]) -> None:
    h = plain_harness()
    gate = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await gate.wait()
        return web.Response(body=BODY, headers={"Cache-Control": "max-age=60"})
    origin.routes["/c"] = slow
    tasks = [asyncio.create_task(_send(h, "/c")) for _ in range(20)]
    await origin.first_request("/c")
    await asyncio.sleep(0.05)
    assert len(h.stage.collapser) == 1
    gate.set()
    results = await asyncio.gather(*tasks)
    assert origin.hits["/c"] == 1 and len(led) == 20
    assert all(b == BODY for _, b in results)
    kinds = sorted(r.headers["X-Cache"] for r, _ in results)
    assert kinds.count("MISS") == 1 and kinds.count("COLLAPSED") == 19
    assert h.store.stats()["collapsed"] == 19 and len(h.stage.collapser) == 0


async def test_the_stored_miss_ends_the_flight_with_its_entry(plain_harness: Any, led: list[str]) -> None:
    """A leader whose origin answer is the usual one (``usual_stored``) ends the flight
    its waiters joined (a ``Flight`` the first one made) with the entry it stored; one no
    one joined made no ``Flight`` and leaves none behind."""
    h = plain_harness()
    gate = asyncio.Event()
    calls: list[str] = []
    terminal = _usual_origin(gate, calls)
    leader = asyncio.create_task(_send(h, "/s", terminal))
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(_send(h, "/s", terminal)) for _ in range(3)]
    await asyncio.sleep(0.01)
    (flight,) = h.stage.collapser.flights.values()
    assert flight.future is not None and not flight.resolved
    gate.set()
    resp, body = await leader
    assert resp.headers["Cache-Status"] == "edgenode; fwd=uri-miss; stored" and body == BODY
    answers = await asyncio.gather(*waiters)
    assert [r.headers["X-Cache"] for r, _ in answers] == ["COLLAPSED"] * 3 and calls == ["/s"]
    assert all(b == BODY for _, b in answers) and flight.resolved and len(h.stage.collapser) == 0

    gate.clear()
    alone = asyncio.create_task(_send(h, "/t", terminal))
    await asyncio.sleep(0)
    assert list(h.stage.collapser.flights.values()) == [None]  # led alone: no Flight made
    gate.set()
    resp, _ = await alone
    assert resp.headers["X-Cache"] == "MISS" and resp.headers["Cache-Status"] == "edgenode; fwd=uri-miss; stored"
    assert len(h.stage.collapser) == 0 and len(led) == 5


async def test_a_plain_leaders_uncacheable_answer_releases_its_waiters(plain_harness: Any, origin: Any,
                                                                      led: list[str]) -> None:
    h = plain_harness()
    release_body = asyncio.Event()

    origin.routes["/u"] = held_stream(origin, "/u", release_body)  # the leader's body stays open
    leader = asyncio.create_task(_send(h, "/u"))
    await origin.first_request("/u")
    done = await asyncio.gather(*[_send(h, "/u") for _ in range(5)])  # while the leader's body is open
    assert not leader.done() and origin.hits["/u"] == 6
    assert all(b == b"firstlast" for _, b in done)
    release_body.set()
    _, b = await leader
    assert b == b"firstlast" and len(h.stage.collapser) == 0 and len(led) == 6


async def test_a_plain_leader_whose_body_breaks_sends_its_waiters_to_the_origin(
        plain_harness: Any, origin: Any, led: list[str]) -> None:
    h = plain_harness()
    gate = asyncio.Event()
    origin.routes["/f"] = reset_leader(origin, "/f", gate)  # the leader: a reset mid-body
    leader = asyncio.create_task(_send(h, "/f"))
    await origin.first_request("/f")
    waiters = [asyncio.create_task(_send(h, "/f")) for _ in range(3)]
    await asyncio.sleep(0.02)
    assert origin.hits["/f"] == 1  # the waiters wait for the leader
    gate.set()
    res = await asyncio.gather(leader, return_exceptions=True)
    assert isinstance(res[0], Exception)
    done = await asyncio.gather(*waiters)
    assert all(b == b"ok" for _, b in done)
    assert origin.hits["/f"] == 4 and h.store.stats()["collapsed"] == 0 and len(h.stage.collapser) == 0


async def test_a_plain_leader_whose_fetch_raises_releases_its_waiters_at_once(
        plain_harness: Any, origin: Any, led: list[str]) -> None:
    h = plain_harness(collapse_timeout=5.0)
    gate = asyncio.Event()

    async def broken(ex: Exchange) -> Response:
        await gate.wait()
        raise RuntimeError("the rest of the chain broke")
    origin.route("/x", body=b"ok", cache_control="max-age=60")
    leader = asyncio.create_task(_send(h, "/x", broken))
    await asyncio.sleep(0)  # the leader has led the key's flight
    waiter = asyncio.create_task(_send(h, "/x"))
    await asyncio.sleep(0.05)
    assert not waiter.done() and origin.hits["/x"] == 0  # it waits for the leader
    gate.set()
    with pytest.raises(RuntimeError):
        await leader
    r, b = await asyncio.wait_for(waiter, 1.0)
    assert b == b"ok" and r.headers["X-Cache"] == "MISS" and origin.hits["/x"] == 1
    assert len(h.stage.collapser) == 0 and len(led) == 2


async def test_a_plain_miss_whose_leader_stored_before_its_fetch_began_is_a_hit(
        plain_harness: Any, origin: Any, led: list[str]) -> None:
    h = plain_harness()
    origin.route("/late", body=BODY, cache_control="max-age=60")
    pending = h.stage.handle(_plain("/late"), SimpleNamespace(settled=h.terminal))  # type: ignore[arg-type]
    assert not isinstance(pending, Response)  # the lookup missed; the fetch has not begun
    first, body = await _send(h, "/late")
    assert first.headers["X-Cache"] == "MISS" and body == BODY
    resp = await pending
    assert await read_body(resp.body) == BODY and resp.headers["X-Cache"] == "HIT"
    assert origin.hits["/late"] == 1 and len(h.stage.collapser) == 0 and len(led) == 2


async def test_the_plain_miss_awaits_the_origin_from_one_cache_coroutine(plain_harness: Any, origin: Any,
                                                                        led: list[str]) -> None:
    h = plain_harness()
    origin.route("/one", body=BODY, cache_control="max-age=60")
    gate = asyncio.Event()

    async def terminal(ex: Exchange) -> Response:
        await gate.wait()
        return await h.terminal(ex)
    pending = h.stage.handle(_plain("/one"), SimpleNamespace(settled=terminal))  # type: ignore[arg-type]
    task = asyncio.ensure_future(pending)
    await asyncio.sleep(0)
    assert pending.cr_await is not None and pending.cr_await.cr_code is terminal.__code__
    gate.set()
    resp = await task
    assert await read_body(resp.body) == BODY and resp.headers["X-Cache"] == "MISS" and len(led) == 1
