"""Ranges, collapsing, LRU eviction by bytes, large and broken bodies, purge."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiohttp import web
from multidict import CIMultiDict

from edgenode.http.messages import Request, Response, read_body
from edgenode.pipeline.exchange import Exchange
from tests.cache.conftest import held_stream, reset_leader

BODY = bytes(range(256)) * 4  # 1024 bytes


async def test_ranges_from_cached_object(harness, origin):
    origin.route("/r", body=BODY, cache_control="max-age=60", etag='"t"', content_type="application/x-b")
    r, b, _ = await harness.send("/r", range="bytes=10-19")  # miss: the origin sends the whole 200
    assert r.status == 206 and b == BODY[10:20] and r.headers["Content-Range"] == "bytes 10-19/1024"
    assert origin.seen["/r"][0]["Range"] == "bytes=10-19"  # forwarded; this origin ignores it
    r, b, _ = await harness.send("/r", range="bytes=-4")
    assert r.status == 206 and b == BODY[-4:] and r.headers["X-Cache"] == "HIT"
    r, b, _ = await harness.send("/r", range="bytes=0-1,100-101")
    assert r.status == 206 and r.headers["Content-Type"].startswith("multipart/byteranges; boundary=")
    assert b"Content-Range: bytes 0-1/1024" in b and b"Content-Range: bytes 100-101/1024" in b
    assert BODY[100:102] in b
    r, b, _ = await harness.send("/r", range="bytes=5000-")
    assert r.status == 416 and r.headers["Content-Range"] == "bytes */1024" and b == b""
    for bad in ("bytes=abc", "items=0-1", "bytes=5-1", "bytes=" + ",".join(["0-1"] * 5000),
                "bytes=0-10,5-20", "bytes=" + "9" * 40 + "-"):
        r, b, _ = await harness.send("/r", range=bad)
        assert r.status == 200 and b == BODY, bad
    r, b, _ = await harness.send("/r", range="bytes=0-0", if_range='"t"')
    assert r.status == 206 and b == BODY[:1]
    r, b, _ = await harness.send("/r", range="bytes=0-0", if_range='"other"')
    assert r.status == 200 and b == BODY
    assert origin.hits["/r"] == 1


async def test_collapsing_twenty_concurrent_misses(harness, origin):
    gate = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await gate.wait()
        return web.Response(body=BODY, headers={"Cache-Control": "max-age=60"})
    origin.routes["/c"] = slow
    tasks = [asyncio.create_task(harness.send("/c")) for _ in range(20)]
    await origin.first_request("/c")
    await asyncio.sleep(0.05)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert origin.hits["/c"] == 1
    assert all(b == BODY for _, b, _ in results)
    kinds = sorted(r.headers["X-Cache"] for r, _, _ in results)
    assert kinds.count("MISS") == 1 and kinds.count("COLLAPSED") == 19
    collapsed = [r for r, _, _ in results if r.headers["X-Cache"] == "COLLAPSED"][0]
    assert "collapsed" in collapsed.headers["Cache-Status"]
    assert harness.store.stats()["collapsed"] == 19


async def test_uncacheable_leader_releases_waiters_while_streaming(harness, origin):
    release_body = asyncio.Event()

    origin.routes["/u"] = held_stream(origin, "/u", release_body)  # the leader's body stays open
    leader = asyncio.create_task(harness.send("/u"))
    await origin.first_request("/u")
    waiters = [asyncio.create_task(harness.send("/u")) for _ in range(5)]
    done = await asyncio.gather(*waiters)  # must finish while the leader's body is still open
    assert not leader.done() and origin.hits["/u"] == 6
    assert all(b == b"firstlast" for _, b, _ in done)
    release_body.set()
    _, b, _ = await leader
    assert b == b"firstlast"


async def test_leader_failure_sends_waiters_to_origin(harness, origin):
    gate = asyncio.Event()
    origin.routes["/f"] = reset_leader(origin, "/f", gate)  # the leader: a reset mid-body
    leader = asyncio.create_task(harness.send("/f"))
    await origin.first_request("/f")
    waiters = [asyncio.create_task(harness.send("/f")) for _ in range(3)]
    await asyncio.sleep(0.02)
    assert origin.hits["/f"] == 1  # the waiters wait for the leader
    gate.set()
    res = await asyncio.gather(leader, return_exceptions=True)
    assert isinstance(res[0], Exception)
    done = await asyncio.gather(*waiters)
    assert all(b == b"ok" for _, b, _ in done)
    assert origin.hits["/f"] == 4 and harness.store.stats()["collapsed"] == 0


async def test_lru_eviction_by_bytes(make_harness, origin):
    h = make_harness(max_bytes=8000, max_object_bytes=4000)
    for i in range(10):
        origin.route(f"/o{i}", body=b"z" * 2000, cache_control="max-age=60")
    for i in range(3):
        await h.send(f"/o{i}")
    await h.send("/o0")  # touch: /o1 is now least recently used
    await h.send("/o3")
    stats = h.store.stats()
    assert stats["evictions"] == 1 and stats["entries"] == 3 and stats["bytes"] <= 8000
    r, _, _ = await h.send("/o0")
    assert r.headers["X-Cache"] == "HIT"
    r, _, _ = await h.send("/o1")
    assert r.headers["X-Cache"] == "MISS"


async def test_too_large_object_streams_uncached(make_harness, origin):
    h = make_harness(max_bytes=100_000, max_object_bytes=5000)
    origin.route("/big", body=b"b" * 20000, cache_control="max-age=60")

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Cache-Control": "max-age=60"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(10):
            await resp.write(b"c" * 1000)
        await resp.write_eof()
        return resp
    origin.routes["/bigchunked"] = chunked
    for path, detail in (("/big", "detail=too-large"), ("/bigchunked", "stored")):
        r, b, _ = await h.send(path)
        assert len(b) in (20000, 10000) and detail in r.headers["Cache-Status"]
        r, b, _ = await h.send(path)
        assert r.headers["X-Cache"] == "MISS" and len(b) in (20000, 10000)
    assert h.store.stats()["entries"] == 0


async def test_reset_mid_body_never_stored(harness, origin):
    async def broken(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Cache-Control": "max-age=60", "Content-Length": "1000"})
        await resp.prepare(request)
        await resp.write(b"x" * 100)
        request.transport.close()  # type: ignore[union-attr]
        return resp
    origin.routes["/broken"] = broken
    try:
        await harness.send("/broken")
    except Exception as exc:  # the body raised: the front end would abort the connection
        assert "payload" in type(exc).__name__.lower() or isinstance(exc, (OSError, ConnectionError))
    else:
        raise AssertionError("a truncated body must raise")
    assert harness.store.stats()["entries"] == 0


async def test_purge_url_keys_all_and_soft(harness, origin, clock):
    async def tagged(request: web.Request) -> web.Response:
        lang = request.headers.get("Accept-Language", "")
        inm = request.headers.get("If-None-Match")
        headers = {"Cache-Control": "max-age=60", "Vary": "Accept-Language", "ETag": '"p"',
                   "Surrogate-Key": f"page {request.path.strip('/')}"}
        if inm == '"p"':
            return web.Response(status=304, headers=headers)
        return web.Response(body=lang.encode() or b"-", headers=headers)
    for p in ("/p1", "/p2", "/p3"):
        origin.routes[p] = tagged
    await harness.send("/p1", accept_language="en")
    await harness.send("/p1", accept_language="fr")
    await harness.send("/p2")
    await harness.send("/p3")
    store = harness.store
    assert store.purge_url("http://EXAMPLE.com:80/p1") == 2  # both variants
    r, _, _ = await harness.send("/p1", accept_language="en")
    assert r.headers["X-Cache"] == "MISS"
    assert store.purge_keys(["p2"]) == 1
    assert store.purge_keys(["nope"]) == 0
    r, _, _ = await harness.send("/p2")
    assert r.headers["X-Cache"] == "MISS"
    # soft purge: still stored, but stale -> the next request revalidates (304)
    assert store.purge_keys(["page"], soft=True) == 3
    assert store.stats()["entries"] == 3
    r, b, _ = await harness.send("/p3")
    assert r.headers["X-Cache"] == "REVALIDATED" and b == b"-"
    r, _, _ = await harness.send("/p3")
    assert r.headers["X-Cache"] == "HIT"
    assert store.purge_all() == 3 and store.stats()["entries"] == 0 and store.stats()["bytes"] == 0


async def test_soft_purge_keeps_stale_while_revalidate(harness, origin, clock):
    origin.route("/sw", body=b"v", cache_control="max-age=600, stale-while-revalidate=30")
    await harness.send("/sw")
    assert harness.store.purge_url("http://example.com/sw", soft=True) == 1
    r, _, _ = await harness.send("/sw")
    assert r.headers["X-Cache"] == "STALE"
    await harness.refreshes_done()
    assert origin.hits["/sw"] == 2


async def test_collapse_timeout_sends_waiter_to_origin(make_harness, origin):
    h = make_harness(collapse_timeout=0.05)
    gate = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        if origin.hits["/t"] == 1:
            await gate.wait()
        return web.Response(body=b"t", headers={"Cache-Control": "max-age=60"})
    origin.routes["/t"] = slow
    leader = asyncio.create_task(h.send("/t"))
    await origin.first_request("/t")
    r, b, _ = await h.send("/t")  # gives up waiting, fetches itself
    assert b == b"t" and r.headers["X-Cache"] == "MISS" and not leader.done()
    gate.set()
    await leader
    assert origin.hits["/t"] == 2


async def test_a_miss_whose_leader_finished_before_its_fetch_began_is_a_hit(harness, origin):
    """The cache step finds no entry and returns the fetch; if the key's leader stores
    the entry before that fetch starts, the request is answered from it: one origin
    request, however the two interleave."""
    origin.route("/late", body=BODY, cache_control="max-age=60")
    ex = Exchange(Request("GET", "/late", CIMultiDict({"Host": "example.com"})))
    rest = SimpleNamespace(settled=harness.terminal)
    pending = harness.stage.handle(ex, rest)  # type: ignore[arg-type]
    assert not isinstance(pending, Response)  # the lookup missed; the fetch has not begun
    first, body, _ = await harness.send("/late")
    assert first.headers["X-Cache"] == "MISS" and body == BODY
    resp = await pending
    assert await read_body(resp.body) == BODY
    assert resp.headers["X-Cache"] == "HIT"
    assert origin.hits["/late"] == 1


async def test_a_leader_whose_fetch_raises_releases_its_waiters(make_harness, origin):
    """The usual miss leads the key's flight and fetches in one coroutine: when the fetch
    raises, the waiters go to the origin themselves at once, not after the collapse
    timeout."""
    h = make_harness(collapse_timeout=5.0)
    gate = asyncio.Event()

    async def broken(ex: Exchange) -> Response:
        await gate.wait()
        raise RuntimeError("the rest of the chain broke")
    origin.route("/x", body=b"ok", cache_control="max-age=60")
    ex = Exchange(Request("GET", "/x", CIMultiDict({"Host": "example.com"})))
    leader = asyncio.ensure_future(h.stage.handle(ex, SimpleNamespace(settled=broken)))  # type: ignore[arg-type]
    await asyncio.sleep(0)  # the leader has joined the key's flight
    waiter = asyncio.create_task(h.send("/x"))
    await asyncio.sleep(0.05)
    assert not waiter.done() and origin.hits["/x"] == 0  # it waits for the leader
    gate.set()
    try:
        await leader
    except RuntimeError:
        pass
    else:
        raise AssertionError("the leader's fetch should have raised")
    r, b, _ = await asyncio.wait_for(waiter, 1.0)
    assert b == b"ok" and r.headers["X-Cache"] == "MISS" and origin.hits["/x"] == 1


async def test_the_usual_miss_awaits_the_origin_from_one_cache_coroutine(harness, origin):
    """The miss's step returns one coroutine that leads the key's flight and awaits the
    rest of the chain itself: no second cache coroutine between them."""
    origin.route("/one", body=BODY, cache_control="max-age=60")
    gate = asyncio.Event()

    async def terminal(ex: Exchange) -> Response:
        await gate.wait()
        return await harness.terminal(ex)
    ex = Exchange(Request("GET", "/one", CIMultiDict({"Host": "example.com"})))
    pending = harness.stage.handle(ex, SimpleNamespace(settled=terminal))  # type: ignore[arg-type]
    task = asyncio.ensure_future(pending)
    await asyncio.sleep(0)
    assert pending.cr_await is not None and pending.cr_await.cr_code is terminal.__code__
    gate.set()
    resp = await task
    assert await read_body(resp.body) == BODY and resp.headers["X-Cache"] == "MISS"
