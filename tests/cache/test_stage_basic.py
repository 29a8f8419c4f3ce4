"""Stage behaviour against a real origin: hits, misses, Age, Cache-Status, Vary, HEAD."""

from __future__ import annotations

from aiohttp import web


async def test_miss_then_hit_with_age_and_status(harness, origin, clock):
    origin.route("/a", body=b"x" * 1024, cache_control="max-age=100", surrogate_key="k1 k2",
                 surrogate_control="max-age=100")  # honoured since RFC 9213 support
    r1, b1, ex1 = await harness.send("/a")
    assert r1.status == 200 and b1 == b"x" * 1024
    assert r1.headers["X-Cache"] == "MISS"
    assert r1.headers["Cache-Status"] == "edgenode; fwd=uri-miss; stored"
    assert "Surrogate-Key" not in r1.headers and "Surrogate-Control" not in r1.headers
    clock.advance(30)
    r2, b2, ex2 = await harness.send("/a")
    assert b2 == b1 and r2.headers["X-Cache"] == "HIT"
    assert 30 <= int(r2.headers["Age"]) <= 32
    assert r2.headers["Cache-Status"].startswith("edgenode; hit; ttl=")
    assert 67 <= int(r2.headers["Cache-Status"].rsplit("=", 1)[1]) <= 70
    assert "Surrogate-Key" not in r2.headers
    assert ex2.x_cache == "HIT" and ex2.cache_status == r2.headers["Cache-Status"]
    assert origin.hits["/a"] == 1
    stats = harness.store.stats()
    assert stats["hits"] == 1 and stats["misses"] == 1 and stats["entries"] == 1 and stats["stored"] == 1


async def test_origin_cache_status_kept_and_ours_last(harness, origin):
    origin.route("/cs", cache_control="max-age=60", cache_status="upstream; hit")
    r1, _, _ = await harness.send("/cs")
    assert r1.headers.getall("Cache-Status")[0] == "upstream; hit"
    assert r1.headers.getall("Cache-Status")[-1].startswith("edgenode; fwd=uri-miss")
    r2, _, _ = await harness.send("/cs")
    assert r2.headers.getall("Cache-Status") == ["upstream; hit", r2.headers.getall("Cache-Status")[1]]
    assert r2.headers.getall("Cache-Status")[1].startswith("edgenode; hit")


async def test_expiry_goes_back_to_origin(harness, origin, clock):
    origin.route("/e", cache_control="max-age=10")
    await harness.send("/e")
    clock.advance(11)
    r, _, _ = await harness.send("/e")
    assert r.headers["X-Cache"] == "MISS" and origin.hits["/e"] == 2
    assert r.headers["Cache-Status"].startswith("edgenode; fwd=stale")


async def test_uncacheable_responses_not_stored(harness, origin):
    origin.route("/ns", cache_control="no-store")
    origin.route("/priv", cache_control="private, max-age=60")
    origin.route("/cookie", cache_control="max-age=60", set_cookie="a=b")
    origin.route("/vstar", cache_control="max-age=60", vary="*")
    for path, detail in (("/ns", "no-store"), ("/priv", "private"), ("/cookie", "set-cookie"),
                         ("/vstar", "vary-star")):
        r1, _, _ = await harness.send(path)
        r2, _, _ = await harness.send(path)
        assert r2.headers["X-Cache"] == "MISS", path
        assert f"detail={detail}" in r2.headers["Cache-Status"], path
        assert origin.hits[path] == 2, path
    assert harness.store.stats()["entries"] == 0


async def test_private_field_and_no_cache_field_stripped(harness, origin):
    origin.route("/pf", cache_control='max-age=60, private="X-User", no-cache="X-Trace"',
                 x_user="alice", x_trace="t1", x_keep="yes")
    await harness.send("/pf")
    r, _, _ = await harness.send("/pf")
    assert r.headers["X-Cache"] == "HIT"
    assert "X-User" not in r.headers and "X-Trace" not in r.headers and r.headers["X-Keep"] == "yes"


async def test_request_no_store_not_stored(harness, origin):
    origin.route("/rns", cache_control="max-age=60")
    r, _, _ = await harness.send("/rns", cache_control="no-store")
    assert "stored" not in r.headers["Cache-Status"]
    assert harness.store.stats()["entries"] == 0


async def test_response_no_cache_always_revalidates(harness, origin):
    async def h(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers={"ETag": '"v1"', "Cache-Control": "no-cache"})
        return web.Response(body=b"body", headers={"ETag": '"v1"', "Cache-Control": "no-cache"})
    origin.routes["/nc"] = h
    await harness.send("/nc")
    r, b, _ = await harness.send("/nc")
    assert r.status == 200 and b == b"body" and r.headers["X-Cache"] == "REVALIDATED"
    assert origin.hits["/nc"] == 2


async def test_vary_variants(harness, origin):
    async def h(request: web.Request) -> web.Response:
        lang = request.headers.get("Accept-Language", "none")
        return web.Response(body=lang.encode(), headers={"Cache-Control": "max-age=60",
                                                         "Vary": "Accept-Language"})
    origin.routes["/v"] = h
    r, b, _ = await harness.send("/v", accept_language="en")
    assert b == b"en" and "fwd=uri-miss" in r.headers["Cache-Status"]
    r, b, _ = await harness.send("/v", accept_language="fr")
    assert b == b"fr" and "fwd=vary-miss" in r.headers["Cache-Status"]
    r, b, _ = await harness.send("/v", accept_language="  en ")  # whitespace folded
    assert b == b"en" and r.headers["X-Cache"] == "HIT"
    r, b, _ = await harness.send("/v", accept_language="fr")
    assert b == b"fr" and r.headers["X-Cache"] == "HIT"
    r, b, _ = await harness.send("/v")  # absent field is its own variant
    assert b == b"none" and r.headers["X-Cache"] == "MISS"
    assert origin.hits["/v"] == 3
    assert harness.store.stats()["entries"] == 3


async def test_head_answered_from_stored_get(harness, origin):
    origin.route("/h", body=b"0123456789", cache_control="max-age=60")
    await harness.send("/h")
    r, b, _ = await harness.send("/h", method="HEAD")
    assert r.status == 200 and b == b"" and r.headers["Content-Length"] == "10"
    assert r.headers["X-Cache"] == "HIT" and origin.hits["/h"] == 1


async def test_head_miss_passes_through_unstored(harness, origin):
    origin.route("/hm", body=b"abc", cache_control="max-age=60")
    r, _, _ = await harness.send("/hm", method="HEAD")
    assert r.headers["X-Cache"] == "MISS" and harness.store.stats()["entries"] == 0


async def test_authorization_requires_explicit_permission(harness, origin):
    origin.route("/auth", cache_control="max-age=60")
    origin.route("/auth-pub", cache_control="public, max-age=60")
    await harness.send("/auth", authorization="Bearer x")
    await harness.send("/auth", authorization="Bearer x")
    assert origin.hits["/auth"] == 2
    await harness.send("/auth-pub", authorization="Bearer x")
    r, _, _ = await harness.send("/auth-pub", authorization="Bearer y")
    assert r.headers["X-Cache"] == "HIT" and origin.hits["/auth-pub"] == 1
    # stored from an anonymous request without public: not served to an authorised one
    await harness.send("/auth")
    r, _, _ = await harness.send("/auth", authorization="Bearer x")
    assert r.headers["X-Cache"] == "BYPASS"


async def test_request_directives(harness, origin, clock):
    origin.route("/rd", cache_control="max-age=100")
    await harness.send("/rd")
    clock.advance(50)
    r, _, _ = await harness.send("/rd", cache_control="max-age=10")
    assert r.headers["X-Cache"] == "MISS" and "fwd=request" in r.headers["Cache-Status"]
    clock.advance(80)  # the refetch above re-stored it: 20 s of freshness left
    r, _, _ = await harness.send("/rd", cache_control="min-fresh=30")
    assert "fwd=request" in r.headers["Cache-Status"]
    r, _, _ = await harness.send("/rd", cache_control="no-cache")
    assert "fwd=request" in r.headers["Cache-Status"]
    assert origin.hits["/rd"] == 4
    clock.advance(150)
    r, _, _ = await harness.send("/rd", cache_control="max-stale=200")
    assert r.headers["X-Cache"] == "STALE" and origin.hits["/rd"] == 4


async def test_only_if_cached(harness, origin):
    r, _, _ = await harness.send("/nothing", cache_control="only-if-cached")
    assert r.status == 504 and origin.hits["/nothing"] == 0


async def test_cache_key_config(make_harness, origin):
    from edgenode.config import CacheKeyConfig
    h = make_harness(key=CacheKeyConfig(ignore_query=["utm"], sort_query=True))
    origin.route("/q", cache_control="max-age=60")
    await h.send("/q?b=2&a=1&utm=x")
    r, _, _ = await h.send("/q?a=1&b=2", host="EXAMPLE.com:80")
    assert r.headers["X-Cache"] == "HIT" and origin.hits["/q"] == 1
    assert h.store.purge_url("http://example.com/q?a=1&b=2") == 1
