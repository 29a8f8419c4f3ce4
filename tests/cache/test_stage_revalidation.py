"""Revalidation, client conditionals, stale-while-revalidate, stale-if-error, must-revalidate."""

from __future__ import annotations

import asyncio

from aiohttp import web


def etag_route(origin, path: str, cc: str, state: dict) -> None:
    """An origin resource with ETag "v<n>"; answers 304 to a matching If-None-Match."""
    async def h(request: web.Request) -> web.Response:
        tag = f'"v{state["version"]}"'
        if state.get("fail"):
            return web.Response(status=state["fail"], text="down")
        headers = {"ETag": tag, "Cache-Control": cc, "X-Gen": str(state.get("gen", 0))}
        if request.headers.get("If-None-Match") == tag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=f"body-{state['version']}".encode(), headers=headers)
    origin.routes[path] = h


async def test_304_refreshes_headers_and_serves_stored_body(harness, origin, clock):
    state = {"version": 1, "gen": 0}
    etag_route(origin, "/r", "max-age=10", state)
    await harness.send("/r")
    clock.advance(20)
    state["gen"] = 7
    r, b, ex = await harness.send("/r")
    assert r.status == 200 and b == b"body-1"
    assert r.headers["X-Cache"] == "REVALIDATED" and ex.x_cache == "REVALIDATED"
    assert "fwd=stale; fwd-status=304" in r.headers["Cache-Status"]
    assert r.headers["X-Gen"] == "7"  # refreshed from the 304
    assert origin.seen["/r"][-1]["If-None-Match"] == '"v1"'
    r, _, _ = await harness.send("/r")
    assert r.headers["X-Cache"] == "HIT" and r.headers["X-Gen"] == "7"
    assert harness.store.stats()["revalidations"] == 1


async def test_full_200_on_revalidation_replaces_entry(harness, origin, clock):
    state = {"version": 1}
    etag_route(origin, "/r2", "max-age=10", state)
    await harness.send("/r2")
    clock.advance(20)
    state["version"] = 2
    r, b, _ = await harness.send("/r2")
    assert b == b"body-2" and r.headers["X-Cache"] == "MISS"
    r, b, _ = await harness.send("/r2")
    assert b == b"body-2" and r.headers["X-Cache"] == "HIT"


async def test_client_conditionals_answered_from_cache(harness, origin):
    origin.route("/c", body=b"data", cache_control="max-age=60", etag='W/"abc"',
                 last_modified="Mon, 01 Jan 2024 00:00:00 GMT")
    await harness.send("/c")
    r, b, _ = await harness.send("/c", if_none_match='"abc"')  # weak comparison
    assert r.status == 304 and b == b"" and r.headers["ETag"] == 'W/"abc"'
    r, _, _ = await harness.send("/c", if_none_match='"zzz", *')
    assert r.status == 304
    r, b, _ = await harness.send("/c", if_none_match='"zzz"')
    assert r.status == 200 and b == b"data"
    r, _, _ = await harness.send("/c", if_modified_since="Tue, 02 Jan 2024 00:00:00 GMT")
    assert r.status == 304
    r, _, _ = await harness.send("/c", if_modified_since="Sun, 31 Dec 2023 00:00:00 GMT")
    assert r.status == 200
    assert origin.hits["/c"] == 1


async def test_client_conditional_on_miss_fetches_full_object(harness, origin):
    origin.route("/cm", body=b"data", cache_control="max-age=60", etag='"e1"')
    r, _, _ = await harness.send("/cm", if_none_match='"e1"')
    assert r.status == 304
    assert "If-None-Match" not in origin.seen["/cm"][0]
    r, b, _ = await harness.send("/cm")
    assert r.status == 200 and b == b"data" and r.headers["X-Cache"] == "HIT"


async def test_stale_while_revalidate_refreshes_in_background(harness, origin, clock):
    state = {"version": 1}
    etag_route(origin, "/swr", "max-age=10, stale-while-revalidate=60", state)
    await harness.send("/swr")
    clock.advance(15)
    state["version"] = 2
    r, b, _ = await harness.send("/swr")
    assert b == b"body-1" and r.headers["X-Cache"] == "STALE"
    assert "detail=stale-while-revalidate" in r.headers["Cache-Status"]
    r, b, _ = await harness.send("/swr")  # still stale while the refresh runs: one refresh only
    await harness.refreshes_done()
    assert origin.hits["/swr"] == 2
    r, b, _ = await harness.send("/swr")
    assert b == b"body-2" and r.headers["X-Cache"] == "HIT"
    clock.advance(100)  # past the window: a foreground revalidation
    r, _, _ = await harness.send("/swr")
    assert r.headers["X-Cache"] == "REVALIDATED"


async def test_close_cancels_background_refresh(harness, origin, clock):
    gate = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        if origin.hits["/slow"] > 1:
            await gate.wait()
        return web.Response(body=b"s", headers={"Cache-Control": "max-age=1, stale-while-revalidate=100"})
    origin.routes["/slow"] = slow
    await harness.send("/slow")
    clock.advance(5)
    r, _, _ = await harness.send("/slow")
    assert r.headers["X-Cache"] == "STALE"
    task = next(iter(harness.stage._refreshing.values()))
    await harness.stage.close()
    assert task.cancelled() and not harness.stage._refreshing


async def test_stale_if_error_on_500_and_connection_refused(make_harness, origin, clock):
    harness = make_harness(stale_if_unreachable=0)  # only the response's window applies
    state = {"version": 1}
    etag_route(origin, "/sie", "max-age=10, stale-if-error=100", state)
    await harness.send("/sie")
    clock.advance(20)
    state["fail"] = 500
    r, b, _ = await harness.send("/sie")
    assert r.status == 200 and b == b"body-1" and r.headers["X-Cache"] == "STALE"
    assert "fwd-status=500" in r.headers["Cache-Status"] and "detail=stale-if-error" in r.headers["Cache-Status"]
    await origin.runner.cleanup()  # origin gone: connection refused
    r, b, _ = await harness.send("/sie")
    assert r.status == 200 and b == b"body-1" and r.headers["X-Cache"] == "STALE"
    clock.advance(200)  # outside the window: the error comes through
    try:
        r, _, _ = await harness.send("/sie")
    except OSError:
        pass
    else:
        raise AssertionError("expected the origin failure outside stale-if-error")


async def test_stale_if_error_window_but_origin_error_passes_when_fresh_needed(harness, origin, clock):
    state = {"version": 1}
    etag_route(origin, "/sie2", "max-age=10", state)
    await harness.send("/sie2")
    clock.advance(20)
    state["fail"] = 503
    r, _, _ = await harness.send("/sie2")
    assert r.status == 503


async def test_must_revalidate_gives_504_when_origin_down(harness, origin, clock):
    state = {"version": 1}
    etag_route(origin, "/mr", "max-age=10, must-revalidate, stale-if-error=100, stale-while-revalidate=100",
               state)
    await harness.send("/mr")
    clock.advance(20)
    await origin.runner.cleanup()
    r, _, ex = await harness.send("/mr")
    assert r.status == 504 and "must-revalidate" in r.headers["Cache-Status"]


async def test_s_maxage_forbids_stale_serving(harness, origin, clock):
    state = {"version": 1}
    etag_route(origin, "/sm", "s-maxage=10, stale-while-revalidate=100", state)
    await harness.send("/sm")
    clock.advance(20)
    r, _, _ = await harness.send("/sm")
    assert r.headers["X-Cache"] == "REVALIDATED"


async def test_unsafe_methods_invalidate_uri_and_location(harness, origin):
    origin.route("/u", cache_control="max-age=60")
    origin.route("/other", cache_control="max-age=60")
    origin.route("/foreign", cache_control="max-age=60")
    origin.route("/post", status=201, location="/other", content_location="http://elsewhere.com/foreign")
    origin.route("/fail", status=500, location="/u")
    for p in ("/u", "/other", "/foreign"):
        await harness.send(p)
    await harness.send("/foreign", host="elsewhere.com")
    assert harness.store.stats()["entries"] == 4
    r, _, _ = await harness.send("/fail", method="POST")
    assert r.headers["X-Cache"] == "BYPASS" and harness.store.stats()["entries"] == 4
    await harness.send("/post", method="POST")
    assert harness.store.stats()["entries"] == 3  # /other (same host) went; elsewhere.com stayed
    r, _, _ = await harness.send("/other")
    assert r.headers["X-Cache"] == "MISS"
    r, _, _ = await harness.send("/foreign", host="elsewhere.com")
    assert r.headers["X-Cache"] == "HIT"
    origin.route("/u", status=204)
    await harness.send("/u", method="DELETE")
    r, _, _ = await harness.send("/u")
    assert r.headers["X-Cache"] == "MISS"
