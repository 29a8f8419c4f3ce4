"""Freshness through the whole data path (cache-tests: cc-freshness, cc-parse, expires,
age-parse, heuristic, status, other).  RFC 9111 §4.2."""

from __future__ import annotations

import pytest

from conformance_support import Reply, check

HOUR = 3600


async def test_no_freshness_no_validator_not_reused(edge):
    cached, _ = await check(edge, "/none", [], pause=1)
    assert not cached


@pytest.mark.parametrize("cc, pause, cached", [
    ("max-age=3600", 10, True),
    ('max-age="3600"', 10, True),                       # quoted-string form (§5.2)
    ("max-age='3600'", 10, False),                      # single quotes are not quoting
    ('extension="max-age=100", max-age=1', 10, False),  # a directive inside a quoted string
    ('max-age=1, extension="max-age=100"', 10, False),
    ('extension="max-age=100", max-age="1"', 10, False),
    ('max-age="1", extension="max-age=100"', 10, False),
    ("max-age =100", 10, False),                        # no whitespace around "="
    ("max-age= 100", 10, False),
    ("max-age=0", 0, False),
    ("max-age=a100", 10, False),
    ("max-age=100a", 10, False),
    ("max-age=-100", 10, False),
    ("max-age=1.5", 10, False),
    ("max-age=003600", 10, True),
    ("max-age=2147483648", 10, True),
    ("max-age=99999999999", 10, True),                  # clamps to 2^31 (§1.2.2)
    ("max-age=999999999999999999999", 10, True),
    ("foobar, max-age=3600", 10, True),
    ("MaX-aGe=3600", 10, True),
    ("  max-age=3600  ,  public ", 10, True),
    ("max-age=1800, max-age=1", 10, True),              # first occurrence wins (§4.2.1)
    ("s-maxage=3600", 10, True),
    ("max-age=3600, s-maxage=1", 10, False),            # shared cache prefers s-maxage
    ("s-maxage=1, max-age=3600", 10, False),
    ("max-age=1, s-maxage=3600", 10, True),
])
async def test_cache_control_freshness(edge, cc, pause, cached):
    got, _ = await check(edge, "/cc", [("Cache-Control", cc)], pause=pause)
    assert got is cached, cc


async def test_duplicate_directive_on_separate_lines_first_wins(edge):
    got, _ = await check(edge, "/two", [("Cache-Control", "max-age=1800"), ("Cache-Control", "max-age=1")],
                         pause=10)
    assert got


async def test_s_maxage_on_separate_line_wins(edge):
    got, _ = await check(edge, "/two", [("Cache-Control", "max-age=3600"), ("Cache-Control", "s-maxage=1")],
                         pause=10)
    assert not got


async def test_age_greater_than_max_age_is_stale(edge):
    got, _ = await check(edge, "/age", [("Date", edge.clock.date()), ("Cache-Control", "max-age=10"),
                                        ("Age", "15")])
    assert not got


async def test_max_age_with_past_or_invalid_expires_uses_max_age(edge):
    got, _ = await check(edge, "/a", [("Cache-Control", "max-age=3600"), ("Expires", edge.clock.date(-10000))],
                         pause=10)
    assert got
    got, _ = await check(edge, "/b", [("Cache-Control", "max-age=3600"), ("Expires", "0")], pause=10)
    assert got


async def test_max_age_zero_beats_future_expires(edge):
    got, _ = await check(edge, "/z", [("Expires", edge.clock.date(10000)), ("Cache-Control", "max-age=0")])
    assert not got


# -- Expires (§5.3) -----------------------------------------------------------------------
@pytest.mark.parametrize("expires, cached", [
    ("+2592000", True),
    ("-2592000", False),
    ("+0", False),
    ("0", False),
    ("Thu, 18 Aug 2050 02:01:18 UTC", False),
    ("Thu, 18 Aug 50 02:01:18 GMT", False),
    ("Thu 18 Aug 2050 02:01:18 GMT", False),
    ("Thu, 18  Aug  2050 02:01:18 GMT", False),
    ("Thu, 18-Aug-2050 02:01:18 GMT", False),
    ("Thu, 18 Aug 2050 02.01.18 GMT", False),
    ("Thu, 18 Aug 2050 2:01:18 GMT", False),
    ("THU, 18 Aug 2050 02:01:18 GMT", True),            # "should" reuse: case is lenient
    ("Thu, 18 AUG 2050 02:01:18 GMT", True),
    ("Thu, 18 Aug 2050 02:01:18 gMT", True),
    ("Thursday, 18-Aug-50 02:01:18 GMT", True),         # obsolete RFC 850 form
    ("Thu Aug 18 02:01:18 2050", True),                 # asctime form
])
async def test_expires(edge, expires, cached):
    if expires[0] in "+-" and expires[1:].isdigit():
        expires = edge.clock.date(int(expires))
    got, _ = await check(edge, "/exp", [("Expires", expires), ("Date", edge.clock.date())], pause=1)
    assert got is cached, expires


async def test_expires_older_than_date(edge):
    got, _ = await check(edge, "/old", [("Expires", edge.clock.date(300)), ("Date", edge.clock.date(400))], pause=1)
    assert not got


async def test_expires_with_invalid_date_field(edge):
    got, _ = await check(edge, "/inv", [("Date", "foo"), ("Expires", edge.clock.date(10))])
    assert got


@pytest.mark.parametrize("date, expires, age", [(-10, 10, "25"), (10, 20, "15")])
async def test_age_beyond_expires_minus_date(edge, date, expires, age):
    got, _ = await check(edge, "/ea", [("Date", edge.clock.date(date)), ("Expires", edge.clock.date(expires)),
                                       ("Age", age)])
    assert not got


# -- Age (§5.1): odd values are not trusted; the response is still used ---------------------
@pytest.mark.parametrize("ages", [["abc"], ["-7200"], ["7200.0"], ["0, 0"], ["0"]])
async def test_age_parse_oddities_ignored(edge, ages):
    hdrs = [("Date", edge.clock.date()), ("Cache-Control", "max-age=3600")] + [("Age", a) for a in ages]
    got, _ = await check(edge, "/ap", hdrs, pause=1)
    assert got


@pytest.mark.parametrize("ages, cached", [
    (["7200, 0"], False), (["0, 7200"], True),      # one line holding a list: its first member
    (["7200", "0"], False), (["0", "7200"], True),  # several lines: the first one
])
async def test_age_list_uses_first_member(edge, ages, cached):
    """RFC 9111 §5.1: a list-valued Age counts by its first member (cache-tests age-parse-suffix)."""
    hdrs = [("Date", edge.clock.date()), ("Cache-Control", "max-age=3600")] + [("Age", a) for a in ages]
    got, _ = await check(edge, "/al", hdrs, pause=1)
    assert got is cached


async def test_age_is_generated_and_advances(edge):
    edge.origin.script("/ag", Reply(headers=[("Cache-Control", "max-age=600"), ("Age", "30")]))
    first = await edge.get("/ag")
    assert first.headers["Age"] == "30"
    edge.clock.advance(5)
    second = await edge.get("/ag")
    assert edge.origin.hits["/ag"] == 1
    assert int(second.headers["Age"]) >= 35


async def test_date_is_not_updated_on_a_hit(edge):
    date = edge.clock.date()
    edge.origin.script("/d", Reply(headers=[("Expires", edge.clock.date(HOUR)), ("Date", date)]))
    await edge.get("/d")
    edge.clock.advance(30)
    got = await edge.get("/d")
    assert edge.origin.hits["/d"] == 1 and got.headers["Date"] == date


# -- heuristic freshness (§4.2.2) -----------------------------------------------------------
@pytest.mark.parametrize("status, cached, extra", [
    (200, True, []), (201, False, []), (202, False, []), (203, True, []), (204, True, []),
    (403, False, []), (404, True, []), (405, True, []), (410, True, []), (414, True, []),
    (501, True, []), (502, False, []), (503, False, []), (504, False, []),
    (599, False, []), (599, True, [("Cache-Control", "public")]),
])
async def test_heuristic_by_status(edge, status, cached, extra):
    hdrs = [("Last-Modified", edge.clock.date(-86400)), ("Date", edge.clock.date())] + extra
    got, resp = await check(edge, "/h", hdrs, status=status, body=b"" if status == 204 else b"x")
    assert got is cached
    assert resp.status == status


async def test_heuristic_uses_fraction_of_last_modified_age(edge):
    edge.origin.script("/hf", Reply(headers=[("Last-Modified", edge.clock.date(-1000))]))
    await edge.get("/hf")
    edge.clock.advance(99)           # 10 % of 1000 s
    await edge.get("/hf")
    assert edge.origin.hits["/hf"] == 1
    edge.clock.advance(2)
    await edge.get("/hf")
    assert edge.origin.hits["/hf"] == 2


# -- status codes with explicit freshness (cache-tests "status") -----------------------------
@pytest.mark.parametrize("status", [200, 203, 204, 299, 301, 302, 303, 307, 308, 400, 404, 410,
                                    499, 500, 502, 503, 504, 599])
async def test_status_fresh_reused_stale_not(edge, status):
    body = b"" if status == 204 else b"s"
    fresh = [("Expires", edge.clock.date(100000)), ("Cache-Control", "max-age=100000"),
             ("Last-Modified", edge.clock.date()), ("Date", edge.clock.date())]
    got, resp = await check(edge, "/fresh", fresh, status=status, body=body)
    assert got and resp.status == status and resp.body == body
    stale = [("Expires", edge.clock.date(-5000)), ("Last-Modified", edge.clock.date(-100000)),
             ("Date", edge.clock.date())]
    got, resp = await check(edge, "/stale", stale, status=status, body=body)
    assert not got and resp.status == status


async def test_204_from_cache_has_no_content_length(edge):
    edge.origin.script("/n", Reply(204, [("Cache-Control", "max-age=60")], b""))
    await edge.get("/n")
    got = await edge.get("/n")
    assert edge.origin.hits["/n"] == 1
    assert got.status == 204 and "Content-Length" not in got.headers


# -- keys ---------------------------------------------------------------------------------
async def test_query_is_part_of_the_key(edge):
    edge.origin.script("/q", Reply(headers=[("Cache-Control", "max-age=100000")]))
    await edge.get("/q?test=1")
    await edge.get("/q?test=1")
    assert edge.origin.hits["/q"] == 1
    await edge.get("/q?test=2")
    assert edge.origin.hits["/q"] == 2
