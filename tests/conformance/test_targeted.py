"""Targeted cache-control fields (cache-tests cdn-cache-control, surrogate-control).
RFC 9213 §2.1: CDN-Cache-Control, when present and a valid Structured Field Dictionary,
replaces Cache-Control and Expires for this cache; Surrogate-Control is next in our list."""

from __future__ import annotations

import pytest

from conformance_support import check


@pytest.mark.parametrize("field", ["CDN-Cache-Control", "Surrogate-Control"])
@pytest.mark.parametrize("value, extra, pause, cached", [
    ("max-age=3600", [], 10, True),
    ("max-age=2147483648", [], 10, True),
    ("max-age=99999999999", [], 10, True),
    ("foobar, max-age=3600", [], 10, True),
    ("max-age=0", [], 0, False),
    ("max-age=0", [("Expires", "+10000")], 0, False),
    ("max-age=3600", [("Expires", "-10000")], 10, True),
    ("max-age=3600", [("Expires", "0")], 10, True),
    ("max-age=3600", [("Cache-Control", "max-age=1")], 10, True),
    ("max-age=1", [("Cache-Control", "max-age=3600")], 10, False),
    ("max-age =100", [("Cache-Control", "max-age=1")], 10, False),
    ("max-age= 100", [("Cache-Control", "max-age=1")], 10, False),
    ("private", [("Cache-Control", "max-age=10000"), ("Expires", "+10000")], 0, False),
    ("no-cache", [("Cache-Control", "max-age=10000"), ("Expires", "+10000")], 0, False),
    ("no-store", [("Cache-Control", "max-age=10000"), ("Expires", "+10000")], 10, False),
    ("max-age=10000", [("Cache-Control", "no-store")], 10, True),
])
async def test_targeted_field(edge, field, value, extra, pause, cached):
    hdrs = [(field, value), ("Date", edge.clock.date())]
    for name, v in extra:
        hdrs.append((name, edge.clock.date(int(v)) if name == "Expires" and v != "0" else v))
    got, resp = await check(edge, "/t", hdrs, pause=pause)
    assert got is cached, (field, value, extra)


@pytest.mark.parametrize("field", ["CDN-Cache-Control", "Surrogate-Control"])
async def test_targeted_age_beyond_lifetime(edge, field):
    got, _ = await check(edge, "/ta", [("Date", edge.clock.date()), (field, "max-age=3600"), ("Age", "7200")])
    assert not got


@pytest.mark.parametrize("value", ["max-age=10000, &&&&&", 'max-age="10000"', "MaX-aGe=10000", "max-age=1.5"])
async def test_invalid_cdn_cache_control_not_used_as_fresh(edge, value):
    got, _ = await check(edge, "/inv", [("CDN-Cache-Control", value), ("Cache-Control", "no-store")], pause=1)
    assert not got


async def test_cdn_cache_control_forwarded_surrogate_control_not(edge):
    _, resp = await check(edge, "/fw", [("CDN-Cache-Control", "max-age=60"), ("Surrogate-Control", "max-age=60"),
                                        ("Cache-Control", "max-age=5")])
    assert resp.headers["CDN-Cache-Control"] == "max-age=60" and resp.headers["Cache-Control"] == "max-age=5"
    assert "Surrogate-Control" not in resp.headers


async def test_surrogate_control_survives_a_304(edge):
    from conformance_support import Reply
    edge.origin.script("/s304", Reply(headers=[("Surrogate-Control", "max-age=1"), ("ETag", '"s"')], conditional=True),
                       Reply(headers=[("Surrogate-Control", "max-age=600"), ("ETag", '"s"')], conditional=True))
    await edge.get("/s304")
    edge.clock.advance(2)
    got = await edge.get("/s304")
    assert edge.origin.statuses["/s304"] == [200, 304] and "Surrogate-Control" not in got.headers
    edge.clock.advance(300)
    got = await edge.get("/s304")
    assert edge.origin.hits["/s304"] == 2 and got.headers["X-Cache"] == "HIT"


async def test_fields_named_by_cache_control_private_still_dropped(edge):
    _, _ = await check(edge, "/pf", [("CDN-Cache-Control", "max-age=60"),
                                     ("Cache-Control", 'private="X-User", max-age=60'), ("X-User", "alice")])
    got = await edge.get("/pf")
    assert got.headers["X-Cache"] == "HIT" and "X-User" not in got.headers
