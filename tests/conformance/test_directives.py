"""Response and request directives, stale serving, Authorization, invalidation, stored and
304-updated header fields (cache-tests cc-response, cc-request, stale, auth, invalidation,
headers, update304).  RFC 9111 §3, §3.2, §3.5, §4.2.4, §4.3.4, §4.4, §5.2; RFC 5861."""

from __future__ import annotations

import pytest

from conformance_support import Reply, check

FRESH = [("Cache-Control", "max-age=100000")]


# -- response directives (§5.2.2) ------------------------------------------------------------
@pytest.mark.parametrize("cc", ["private, max-age=3600", "no-store", "No-StOrE", "max-age=10000, no-store"])
async def test_not_stored(edge, cc):
    got, _ = await check(edge, "/p", [("Cache-Control", cc), ("Expires", edge.clock.date(10000))])
    assert not got


async def test_must_understand_overrides_no_store_for_known_status(edge):
    got, _ = await check(edge, "/mu", [("Cache-Control", "max-age=60, must-understand, no-store")])
    assert got


async def test_private_with_field_names_stores_without_them(edge):
    got, resp = await check(edge, "/pf", [("Cache-Control", 'private="X-User", max-age=60'), ("X-User", "alice"),
                                          ("X-Other", "kept")])
    assert got and "X-User" not in resp.headers and resp.headers["X-Other"] == "kept"


@pytest.mark.parametrize("cc", ['no-cache="a"', 'no-cache="a, b"'])
async def test_no_cache_with_field_names_omits_them(edge, cc):
    hdrs = [("Cache-Control", cc), ("a", "1"), ("b", "2"), ("c", "3"), ("Cache-Control", "max-age=3600")]
    got, resp = await check(edge, "/nf", hdrs)
    assert got and resp.headers["c"] == "3" and "a" not in resp.headers
    if "b" in cc:
        assert "b" not in resp.headers


@pytest.mark.parametrize("cc", ["max-age=10000, no-cache", "max-age=10000, No-CaChE", "no-cache"])
async def test_no_cache_revalidates_every_use(edge, cc):
    edge.origin.script("/nc", Reply(headers=[("Cache-Control", cc), ("ETag", '"abcd"')], body=b"v1",
                                    conditional=True))
    await edge.get("/nc")
    got = await edge.get("/nc")
    assert edge.origin.hits["/nc"] == 2
    assert edge.origin.last("/nc")["If-None-Match"] == '"abcd"'
    assert edge.origin.statuses["/nc"][-1] == 304
    assert got.status == 200 and got.body == b"v1" and got.headers["X-Cache"] == "REVALIDATED"


async def test_must_revalidate_fresh_reused_stale_validated(edge):
    edge.origin.script("/mr", Reply(headers=[("Cache-Control", "max-age=2, must-revalidate"), ("ETag", '"abcd"')],
                                    conditional=True))
    await edge.get("/mr")
    await edge.get("/mr")
    assert edge.origin.hits["/mr"] == 1
    edge.clock.advance(3)
    got = await edge.get("/mr")
    assert edge.origin.hits["/mr"] == 2 and edge.origin.statuses["/mr"][-1] == 304 and got.status == 200


@pytest.mark.parametrize("cc", ["must-revalidate", "proxy-revalidate", "no-cache", "s-maxage=2"])
async def test_no_stale_when_prohibited_even_with_stale_if_error(edge, cc):
    edge.origin.script("/ns", Reply(headers=[("Cache-Control", f"max-age=2, {cc}, stale-if-error=600")],
                                    body=b"cached"), Reply(503, body=b"down"))
    await edge.get("/ns")
    edge.clock.advance(10)
    got = await edge.get("/ns")
    assert got.body != b"cached" and got.status == 503


async def test_stale_if_error_on_503(edge):
    edge.origin.script("/sie", Reply(headers=[("Cache-Control", "max-age=2, stale-if-error=60")], body=b"cached"),
                       Reply(503, body=b"down"))
    await edge.get("/sie")
    edge.clock.advance(10)
    got = await edge.get("/sie")
    assert got.status == 200 and got.body == b"cached" and got.headers["X-Cache"] == "STALE"
    edge.clock.advance(100)                     # past the window: the error goes through
    got = await edge.get("/sie")
    assert got.status == 503


async def test_stale_without_directive_not_served_on_503(edge):
    got, resp = await check(edge, "/s503", [("Cache-Control", "max-age=2")], pause=10, body=b"cached")
    assert not got


async def test_stale_while_revalidate_serves_stale_and_refreshes(edge):
    edge.origin.script("/swr", Reply(headers=[("Cache-Control", "max-age=2, stale-while-revalidate=60")],
                                     body=b"v1"),
                       Reply(headers=[("Cache-Control", "max-age=100, stale-while-revalidate=60")], body=b"v2"))
    await edge.get("/swr")
    edge.clock.advance(5)
    got = await edge.get("/swr")
    assert got.body == b"v1" and got.headers["X-Cache"] == "STALE"
    for _ in range(100):                         # bounded wait for the background refresh
        if edge.origin.hits["/swr"] == 2 and not edge.stage._refreshing:
            break
        await __import__("asyncio").sleep(0.01)
    got = await edge.get("/swr")
    assert got.body == b"v2" and got.headers["X-Cache"] == "HIT"


# -- request directives (§5.2.1) --------------------------------------------------------------
@pytest.mark.parametrize("req_cc", ["max-age=0", "no-cache", "min-fresh=200000"])
async def test_request_directives_force_origin(edge, req_cc):
    got, _ = await check(edge, "/rq", FRESH, pause=1, request_headers={"Cache-Control": req_cc})
    assert not got


async def test_request_no_store_may_use_stored_response(edge):
    """§5.2.1.5 forbids storing, not reusing: a fresh stored response answers it."""
    got, _ = await check(edge, "/rns", FRESH, request_headers={"Cache-Control": "no-store"})
    assert got


async def test_request_no_store_response_not_stored(edge):
    edge.origin.script("/rns2", Reply(headers=FRESH))
    await edge.get("/rns2", headers={"Cache-Control": "no-store"})
    await edge.get("/rns2")
    assert edge.origin.hits["/rns2"] == 2


async def test_request_max_age_vs_aged_response(edge):
    got, _ = await check(edge, "/rma", [("Cache-Control", "max-age=3600"), ("Age", "1800")],
                         request_headers={"Cache-Control": "max-age=600"})
    assert not got


async def test_request_min_fresh_vs_aged_response(edge):
    got, _ = await check(edge, "/rmf", [("Cache-Control", "max-age=1500"), ("Age", "1000")],
                         request_headers={"Cache-Control": "min-fresh=1000"})
    assert not got


@pytest.mark.parametrize("hdrs", [[("Cache-Control", "max-age=1")],
                                  [("Cache-Control", "max-age=1500"), ("Age", "2000")]])
async def test_request_max_stale_accepts_stale(edge, hdrs):
    got, resp = await check(edge, "/rms", hdrs, pause=2, request_headers={"Cache-Control": "max-stale=1000"})
    assert got and resp.headers["X-Cache"] == "STALE"


async def test_request_no_cache_validates_with_etag_and_last_modified(edge):
    lm = edge.clock.date(-10000)
    edge.origin.script("/rnc", Reply(headers=[("Cache-Control", "max-age=3600"), ("ETag", '"e1"'),
                                              ("Last-Modified", lm)], conditional=True))
    await edge.get("/rnc")
    got = await edge.get("/rnc", headers={"Cache-Control": "no-cache"})
    seen = edge.origin.last("/rnc")
    assert seen["If-None-Match"] == '"e1"' and seen["If-Modified-Since"] == lm
    assert got.status == 200 and "fwd=request" in got.headers["Cache-Status"]


async def test_only_if_cached_without_stored_response_is_504(edge):
    edge.origin.script("/oic", Reply(headers=FRESH))
    got = await edge.get("/oic", headers={"Cache-Control": "only-if-cached"})
    assert got.status == 504 and edge.origin.hits["/oic"] == 0
    await edge.get("/oic")
    got = await edge.get("/oic", headers={"Cache-Control": "only-if-cached"})
    assert got.status == 200 and edge.origin.hits["/oic"] == 1


# -- Authorization (§3.5) ---------------------------------------------------------------------
@pytest.mark.parametrize("cc, cached", [(None, False), ("max-age=3600, public", True),
                                        ("max-age=3600, must-revalidate", True), ("s-maxage=3600", True)])
async def test_authorization(edge, cc, cached):
    hdrs = [("Expires", edge.clock.date(2592000))] if cc is None else [("Cache-Control", cc)]
    edge.origin.script("/auth", Reply(headers=hdrs))
    await edge.get("/auth", headers={"Authorization": "FOO"})
    assert edge.origin.last("/auth")["Authorization"] == "FOO"
    await edge.get("/auth")
    assert (edge.origin.hits["/auth"] == 1) is cached


# -- invalidation (§4.4) ----------------------------------------------------------------------
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "M-SEARCH"])
async def test_unsafe_method_invalidates(edge, method):
    edge.origin.script("/inv", Reply(headers=FRESH))
    await edge.get("/inv")
    await edge.get("/inv", method=method, data=b"abc")
    assert edge.origin.methods["/inv"][-1] == method
    await edge.get("/inv")
    assert edge.origin.hits["/inv"] == 3


async def test_failed_unsafe_method_does_not_invalidate(edge):
    edge.origin.script("/invf", Reply(headers=FRESH), Reply(500))
    await edge.get("/invf")
    got = await edge.get("/invf", method="POST", data=b"abc")
    assert got.status == 500
    await edge.get("/invf")
    assert edge.origin.hits["/invf"] == 2


@pytest.mark.parametrize("field", ["Location", "Content-Location"])
async def test_location_fields_invalidated(edge, field):
    edge.origin.script("/target", Reply(headers=FRESH))
    edge.origin.script("/poster", Reply(headers=[(field, "/target")]))
    await edge.get("/target")
    await edge.get("/poster", method="POST", data=b"abc")
    await edge.get("/target")
    assert edge.origin.hits["/target"] == 2


async def test_post_with_request_no_store_not_stored(edge):
    edge.origin.script("/post", Reply(headers=FRESH + [("Content-Location", "/post")], body=b"created"))
    await edge.get("/post", method="POST", data=b"12345", headers={"Cache-Control": "no-store"})
    await edge.get("/post")
    assert edge.origin.hits["/post"] == 2


@pytest.mark.parametrize("location, headers, reused", [
    ("/post", FRESH, True),                                   # Content-Location is the target
    ("http://127.0.0.1:{port}/post", FRESH, True),            # ... spelt as an absolute URI
    ("", FRESH, True),                                        # ... as a same-document reference
    ("/other", FRESH, False),
    (None, FRESH, False),
    ("/post", [], False),                                     # no explicit freshness
    ("/post", [("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")], False),  # heuristic only
    ("/post", [("Cache-Control", "max-age=3600, no-store")], False),
    ("/post", [("Cache-Control", "max-age=3600, private")], False),
])
async def test_post_response_reused_for_get(edge, location, headers, reused):
    """RFC 9110 §9.3.3 (cache-tests method-POST): explicit freshness + Content-Location naming
    the POST's target make the response reusable for a later GET of that URI."""
    hdrs = list(headers)
    if location is not None:
        hdrs.append(("Content-Location", location.format(port=edge.port)))
    edge.origin.script("/post", Reply(headers=hdrs, body=b"created"))
    posted = await edge.get("/post", method="POST", data=b"12345")
    assert posted.status == 200 and posted.body == b"created"
    got = await edge.get("/post")
    assert got.body == b"created"
    assert (edge.origin.hits["/post"] == 1) is reused
    assert edge.origin.methods["/post"][0] == "POST"


async def test_location_on_other_host_not_invalidated(edge):
    edge.origin.script("/target", Reply(headers=FRESH))
    edge.origin.script("/poster", Reply(headers=[("Location", "http://elsewhere.example/target")]))
    await edge.get("/target")
    await edge.get("/poster", method="POST", data=b"abc")
    await edge.get("/target")
    assert edge.origin.hits["/target"] == 1


# -- stored header fields (§3.1) --------------------------------------------------------------
@pytest.mark.parametrize("name, value", [("Test-Header", "t"), ("X-Test-Header", "x"), ("Content-Type", "text/plain"),
                                         ("X-Frame-Options", "deny"), ("Strict-Transport-Security", "max-age=1"),
                                         ("WWW-Authenticate", "Basic"), ("Clear-Site-Data", "cookies"),
                                         ("Content-Range", "ananananan")])  # on a 200: just a field
async def test_end_to_end_fields_stored(edge, name, value):
    got, resp = await check(edge, "/st", [(name, value), ("Cache-Control", "max-age=3600")])
    assert got and resp.headers[name] == value


async def test_connection_listed_fields_not_stored(edge):
    got, resp = await check(edge, "/conn", [("Connection", "a, b"), ("a", "1"), ("b", "2"), ("c", "3"),
                                            ("Cache-Control", "max-age=3600")])
    assert got and resp.headers["c"] == "3" and "a" not in resp.headers and "b" not in resp.headers


# -- 304 updates the stored response (§3.2, §4.3.4) -------------------------------------------
@pytest.mark.parametrize("name, a, b", [
    ("Test-Header", "A", "B"), ("X-Content-Foo", "A", "B"), ("Content-Type", "text/plain", "text/plain;charset=utf-8"),
    ("Content-Location", "/foo", "/bar"), ("X-Frame-Options", "deny", "sameorigin"),
    ("Content-Security-Policy", "default-src 'self'", "default-src 'self' cdn.example.com"),
])
@pytest.mark.parametrize("validator", ["ETag", "Last-Modified"])
async def test_304_updates_returned_and_stored_fields(edge, name, a, b, validator):
    value = '"v1"' if validator == "ETag" else edge.clock.date(-86400)

    def resp(v: str, life: int) -> Reply:
        return Reply(headers=[("Cache-Control", f"max-age={life}"), (validator, value), (name, v)], body=b"orig",
                     conditional=True)
    edge.origin.script("/u", resp(a, 1), resp(b, 3600))
    await edge.get("/u")
    edge.clock.advance(2)
    got = await edge.get("/u")
    assert edge.origin.statuses["/u"] == [200, 304]
    assert got.status == 200 and got.body == b"orig" and got.headers[name] == b
    got = await edge.get("/u")
    assert edge.origin.hits["/u"] == 2 and got.headers[name] == b


async def test_304_that_omits_a_field_keeps_the_stored_one(edge):
    lm = edge.clock.date(-86400)
    edge.origin.script("/keep", Reply(headers=[("Cache-Control", "max-age=1"), ("Last-Modified", lm),
                                               ("Test-Header", "A")], conditional=True),
                       Reply(headers=[("Cache-Control", "max-age=3600"), ("Last-Modified", lm)], conditional=True))
    await edge.get("/keep")
    edge.clock.advance(2)
    got = await edge.get("/keep")
    assert edge.origin.statuses["/keep"] == [200, 304] and got.headers["Test-Header"] == "A"


async def test_304_updates_freshness(edge):
    edge.origin.script("/fr", Reply(headers=[("Cache-Control", "max-age=1"), ("ETag", '"x"')], conditional=True),
                       Reply(headers=[("Cache-Control", "max-age=3600"), ("ETag", '"x"')], conditional=True))
    await edge.get("/fr")
    edge.clock.advance(2)
    await edge.get("/fr")
    edge.clock.advance(100)
    got = await edge.get("/fr")
    assert edge.origin.hits["/fr"] == 2 and got.headers["X-Cache"] == "HIT"


async def test_304_set_cookie_goes_to_that_client_only(edge):
    """Deviation (docs/conformance.md): a Set-Cookie on a 304 is never shared."""
    edge.origin.script("/ck", Reply(headers=[("Cache-Control", "max-age=1"), ("ETag", '"c"')], conditional=True),
                       Reply(headers=[("Cache-Control", "max-age=3600"), ("ETag", '"c"'), ("Set-Cookie", "sid=alice")],
                             conditional=True))
    await edge.get("/ck")
    edge.clock.advance(2)
    got = await edge.get("/ck")
    assert edge.origin.statuses["/ck"] == [200, 304]
    assert got.headers.get("Set-Cookie") == "sid=alice"
    got = await edge.get("/ck")
    assert edge.origin.hits["/ck"] == 2 and "Set-Cookie" not in got.headers
