"""Sans-IO policy: freshness, age, storability (with a hishel differential), Vary,
conditionals, ranges, directives, cache key.  No sockets, no clock."""

from __future__ import annotations

import calendar
import random

import pytest
from hishel import Request as HRequest, Response as HResponse
from hishel._core._headers import Headers as HHeaders
from hishel._core._spec import CacheMiss, StoreAndUse, get_freshness_lifetime
from multidict import CIMultiDict

from edgenode.cache.conditional import client_not_modified, if_range_matches
from edgenode.cache import directives
from edgenode.cache.directives import format_http_date, parse_cache_control, parse_http_date
from edgenode.cache.key import KeyBuilder
from edgenode.cache.policy import (
    FRESH, REVALIDATE, STALE_OK, STALE_SWR, build_entry, evaluate, freshness_lifetime, initial_age,
    normalise_field, refresh_entry, response_directives, storability,
)
from edgenode.cache.ranges import UNSATISFIABLE, parse_range
from edgenode.config import CacheKeyConfig

NOW = 1_700_000_000.0
DATE = format_http_date(NOW)


def H(**kw: str) -> CIMultiDict[str]:
    return CIMultiDict({k.replace("_", "-"): v for k, v in kw.items()})


def entry(now: float = NOW, status: int = 200, req: CIMultiDict[str] | None = None, **headers: str):
    headers.setdefault("date", format_http_date(now))
    return build_entry(key="k", url="http://h/", status=status, reason="OK", resp_headers=H(**headers),
                       body=b"body", req_headers=req or H(), request_time=now, response_time=now,
                       heuristic_fraction=0.1, heuristic_max=86400.0)


# -- directives ---------------------------------------------------------------------------
def test_cache_control_parsing():
    cc = parse_cache_control(['Max-Age=60, no-cache="Set-Cookie, X-A", public', "s-maxage = 5,,bogus"])
    # RFC 9111 §5.2 allows no whitespace around "=": "s-maxage = 5" is dropped (cache-tests)
    assert cc == {"max-age": "60", "no-cache": "Set-Cookie, X-A", "public": None, "bogus": None}
    assert parse_cache_control(['private="a,b", max-age=1']) == {"private": "a,b", "max-age": "1"}
    assert parse_cache_control(["max-age=1, max-age=9"])["max-age"] == "1"


def test_parsed_values_are_remembered_but_each_caller_owns_its_dict():
    """A value parsed before is not parsed again (origins repeat them), and what one caller
    does to its directives never shows in the next caller's."""
    first = parse_cache_control(("public, max-age=3600",))
    first["no-store"] = None
    again = parse_cache_control(["public, max-age=3600"])
    assert again == {"public": None, "max-age": "3600"} and again is not first
    for _ in range(3):  # a full memo is cleared, the answers stay the same
        for i in range(directives.MEMO_SIZE + 1):
            assert parse_cache_control([f"max-age={i}"]) == {"max-age": str(i)}
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777.0
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777.0
    assert parse_http_date("Sun, 32 Nov 1994 08:49:37 GMT") is None
    assert parse_http_date("Sun, 32 Nov 1994 08:49:37 GMT") is None


@pytest.mark.parametrize("text", ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
                                  "Sun Nov  6 08:49:37 1994"])
def test_three_date_formats(text):
    assert parse_http_date(text) == 784111777.0


@pytest.mark.parametrize("text", ["", "0", "-1", "yesterday", "Sun, 32 Nov 1994 08:49:37 GMT",
                                  "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 29 Feb 2023 08:49:37 GMT",
                                  "Sun, 29 Feb 1900 08:49:37 GMT", "Sun, 31 Apr 2024 08:49:37 GMT",
                                  "Sun, 00 Jan 2024 08:49:37 GMT", "Sun, 01 Jan 0000 08:49:37 GMT",
                                  "Sun, 01 Jan 2024 24:00:00 GMT", "Sun, 01 Jan 2024 23:60:00 GMT",
                                  "Sun, 01 Jan 2024 23:59:61 GMT"])
def test_invalid_dates(text):
    assert parse_http_date(text) is None


@pytest.mark.parametrize("day,month,year,clock", [
    (29, "Feb", 2024, "23:59:60"), (29, "Feb", 2000, "00:00:00"), (31, "Dec", 9999, "23:59:59"),
    (1, "Jan", 1, "00:00:00"), (1, "Jan", 1970, "00:00:00"), (28, "Feb", 2100, "12:30:45"),
    (31, "Jan", 2038, "03:14:08")])
def test_dates_at_the_edges(day, month, year, clock):
    """Leap days, month ends, the first and last years and a leap second: the epoch seconds
    calendar.timegm gives."""
    mon = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec").index(month) + 1
    hh, mm, ss = map(int, clock.split(":"))
    expected = float(calendar.timegm((year, mon, day, hh, mm, ss, 0, 0, 0)))
    assert parse_http_date(f"Sun, {day:02d} {month} {year:04d} {clock} GMT") == expected
    assert parse_http_date(f"Sun {month} {day:2d} {clock} {year:04d}") == expected


# -- freshness and age --------------------------------------------------------------------
@pytest.mark.parametrize("headers,expected", [
    ({"cache-control": "max-age=60, s-maxage=120"}, 120),
    ({"cache-control": "max-age=60", "expires": format_http_date(NOW + 999)}, 60),
    ({"expires": format_http_date(NOW + 300)}, 300),
    ({"expires": "0"}, 0),
    ({"expires": format_http_date(NOW - 5)}, 0),
    ({"cache-control": "max-age=abc"}, 0),
    ({"last-modified": format_http_date(NOW - 1000)}, 100),
    ({"last-modified": format_http_date(NOW - 10_000_000)}, 86400),
    ({}, 0),
])
def test_freshness_lifetime(headers, expected):
    h = CIMultiDict(headers)
    cc = parse_cache_control(h.getall("cache-control", ()))
    assert freshness_lifetime(200, h, cc, NOW, 0.1, 86400.0) == expected


def test_heuristic_only_for_heuristic_statuses():
    h = H(last_modified=format_http_date(NOW - 1000))
    assert freshness_lifetime(302, h, {}, NOW, 0.1, 86400.0) == 0
    assert freshness_lifetime(206, h, {}, NOW, 0.1, 86400.0) == 100
    assert freshness_lifetime(302, h, {"public": None}, NOW, 0.1, 86400.0) == 100


def test_initial_age_rfc9111():
    # apparent age 10 (clock says response came 10 s after its Date)
    assert initial_age(None, NOW - 10, NOW, NOW) == 10
    # corrected age: Age 30 + response delay 2
    assert initial_age("30", NOW, NOW - 2, NOW) == 32
    # a Date in the future gives no negative age
    assert initial_age(None, NOW + 100, NOW, NOW) == 0


@pytest.mark.parametrize("date, request_time", [(NOW - 10, NOW), (NOW + 100, NOW), (NOW, NOW - 2),
                                                 (NOW - 1, NOW - 5)])
def test_an_entry_without_age_has_initial_ages_corrected_age(date, request_time):
    e = build_entry(key="k", url="u", status=200, reason="OK",
                    resp_headers=H(cache_control="max-age=100", date=format_http_date(date)),
                    body=b"x", req_headers=H(), request_time=request_time, response_time=NOW,
                    heuristic_fraction=0.1, heuristic_max=86400.0)
    assert e.age0 == initial_age(None, date, request_time, NOW)


def test_entry_precomputes_and_adds_date():
    e = build_entry(key="k", url="u", status=200, reason="OK", resp_headers=H(cache_control="max-age=100"),
                    body=b"x", req_headers=H(), request_time=NOW, response_time=NOW,
                    heuristic_fraction=0.1, heuristic_max=1.0)
    assert ("Date", DATE) in e.headers and e.ttl(NOW + 40) == 60 and e.age(NOW + 40) == 40
    e2 = entry(age="50", cache_control="max-age=100")
    assert e2.ttl(NOW) == 50


def test_evaluate_outcomes():
    e = entry(cache_control="max-age=100, stale-while-revalidate=50")
    assert evaluate(e, NOW + 10, {}) == (FRESH, False)
    assert evaluate(e, NOW + 10, {"no-cache": None}) == (REVALIDATE, True)
    assert evaluate(e, NOW + 10, {"max-age": "5"}) == (REVALIDATE, True)
    assert evaluate(e, NOW + 90, {"min-fresh": "20"}) == (REVALIDATE, True)
    assert evaluate(e, NOW + 120, {}) == (STALE_SWR, False)
    assert evaluate(e, NOW + 200, {}) == (REVALIDATE, False)
    assert evaluate(e, NOW + 200, {"max-stale": None}) == (STALE_OK, False)
    assert evaluate(e, NOW + 200, {"max-stale": "100"}) == (STALE_OK, False)
    assert evaluate(e, NOW + 200, {"max-stale": "10"}) == (REVALIDATE, False)
    mr = entry(cache_control="max-age=100, must-revalidate, stale-while-revalidate=50, stale-if-error=60")
    assert evaluate(mr, NOW + 120, {"max-stale": None}) == (REVALIDATE, False)
    assert not mr.stale_on_error(NOW + 120)
    sie = entry(cache_control="max-age=100, stale-if-error=60")
    assert sie.stale_on_error(NOW + 150) and not sie.stale_on_error(NOW + 170)
    nc = entry(cache_control="no-cache, max-age=100")
    assert evaluate(nc, NOW, {}) == (REVALIDATE, False)


def test_soft_purge_makes_stale():
    e = entry(cache_control="max-age=100, stale-while-revalidate=10")
    e.make_stale(NOW + 1)
    assert evaluate(e, NOW + 1, {}) == (STALE_SWR, False)
    assert evaluate(e, NOW + 20, {}) == (REVALIDATE, False)


def test_refresh_from_304_keeps_length_and_updates_fields():
    e = entry(cache_control="max-age=10", etag='"a"', x_meta="old")
    refresh_entry(e, H(cache_control="max-age=500", x_meta="new", content_length="0", etag='"a"'),
                  NOW + 100, NOW + 100, 0.1, 86400.0)
    h = CIMultiDict(e.headers)
    assert h["X-Meta"] == "new" and h["Content-Length"] == "4" and h["Cache-Control"] == "max-age=500"
    assert e.ttl(NOW + 100) == pytest.approx(400, abs=1)


# -- storability (with a differential check against hishel) -----------------------------
STORABILITY = [
    # (status, request headers, response headers, storable)
    (200, {}, {"cache-control": "max-age=60"}, True),
    (200, {}, {}, True),                               # heuristically cacheable status
    (302, {}, {}, False),                              # no freshness information
    (302, {}, {"cache-control": "max-age=60"}, True),
    (307, {}, {"expires": DATE}, True),
    (500, {}, {"cache-control": "public"}, True),
    (200, {}, {"cache-control": "no-store"}, False),
    (200, {}, {"cache-control": "private"}, False),
    (200, {}, {"cache-control": 'private="x-user", max-age=5'}, True),
    (200, {"authorization": "Bearer a"}, {"cache-control": "max-age=60"}, False),
    (200, {"authorization": "Bearer a"}, {"cache-control": "public"}, True),
    (200, {"authorization": "Bearer a"}, {"cache-control": "s-maxage=5"}, True),
    (200, {"authorization": "Bearer a"}, {"cache-control": "must-revalidate, max-age=5"}, True),
    (404, {}, {}, True),
    (206, {}, {"cache-control": "max-age=60"}, False),
    (304, {}, {"cache-control": "max-age=60"}, False),
    (201, {}, {}, False),
    (200, {}, {"cache-control": "no-cache"}, True),
]


@pytest.mark.parametrize("status,req,resp,storable", STORABILITY)
def test_storability_table_and_hishel_agrees(status, req, resp, storable):
    ours = storability("GET", CIMultiDict(req), {}, status, CIMultiDict(resp),
                       parse_cache_control(CIMultiDict(resp).getall("cache-control", ())))
    assert (ours is None) == storable, ours
    state = CacheMiss(options={"shared": True}, request=HRequest("GET", "http://h/", HHeaders(req)))
    theirs = state.next(HResponse(status, HHeaders(resp)))
    assert isinstance(theirs, StoreAndUse) == storable


def test_storability_rules_hishel_does_not_have():
    cc = parse_cache_control(["max-age=60"])
    assert storability("GET", H(), cc, 200, H(set_cookie="a=1"), cc) == "set-cookie"
    assert storability("GET", H(), cc, 200, H(vary="Accept, *"), cc) == "vary-star"
    assert storability("POST", H(), cc, 200, H(), cc) == "method"
    assert storability("GET", H(), {"no-store": None}, 200, H(), cc) == "request-no-store"
    mu = parse_cache_control(["must-understand, no-store, max-age=60"])
    assert storability("GET", H(), {}, 200, H(), mu) is None
    assert storability("GET", H(), {}, 299, H(), mu) == "must-understand"


FRESHNESS = [
    {"cache-control": "max-age=60"},
    {"cache-control": "s-maxage=30, max-age=60"},
    {"cache-control": "max-age=0"},
    {"expires": format_http_date(NOW + 3600), "date": DATE},
    {"expires": format_http_date(NOW + 3600), "date": DATE, "cache-control": "max-age=10"},
    {"cache-control": "public, max-age=86400"},
]


@pytest.mark.parametrize("headers", FRESHNESS)
def test_freshness_agrees_with_hishel(headers):
    h = CIMultiDict(headers)
    ours = freshness_lifetime(200, h, parse_cache_control(h.getall("cache-control", ())), NOW, 0.1, 86400.0)
    assert ours == get_freshness_lifetime(HResponse(200, HHeaders(headers)), is_cache_shared=True)


# -- Vary ----------------------------------------------------------------------------------
def test_vary_normalisation_and_matching():
    assert normalise_field(["gzip,  br", " deflate "]) == "gzip,br,deflate"
    assert normalise_field([]) is None
    e = entry(cache_control="max-age=60", vary="Accept-Encoding, Accept-Language",
              req=H(accept_encoding="gzip, br", accept_language="en"))
    assert e.vary == ("accept-encoding", "accept-language")
    assert e.vary_matches(CIMultiDict([("Accept-Encoding", "gzip"), ("Accept-Encoding", "br"),
                                       ("Accept-Language", "en")]))
    assert not e.vary_matches(H(accept_encoding="gzip, br"))
    # Accept-Encoding ranks by qvalue, not by order (RFC 9110 §12.5.3): the same variant
    assert e.vary_matches(H(accept_encoding="br, gzip", accept_language="en"))
    assert not e.vary_matches(H(accept_encoding="br;q=0.5, gzip", accept_language="en"))


# -- conditionals ---------------------------------------------------------------------------
def test_client_conditionals():
    e = entry(cache_control="max-age=60", etag='W/"x"', last_modified=format_http_date(NOW - 100))
    assert client_not_modified(H(if_none_match='"x"'), e)
    assert client_not_modified(H(if_none_match='"a", W/"x"'), e)
    assert client_not_modified(H(if_none_match="*"), e)
    assert not client_not_modified(H(if_none_match='"y"'), e)
    # If-None-Match wins over If-Modified-Since
    assert not client_not_modified(H(if_none_match='"y"', if_modified_since=format_http_date(NOW)), e)
    assert client_not_modified(H(if_modified_since=format_http_date(NOW - 100)), e)
    assert not client_not_modified(H(if_modified_since=format_http_date(NOW - 101)), e)
    assert not client_not_modified(H(if_modified_since="garbage"), e)
    assert not if_range_matches('W/"x"', e)  # If-Range needs a strong validator
    strong = entry(cache_control="max-age=60", etag='"s"', last_modified=format_http_date(NOW - 100))
    assert if_range_matches('"s"', strong) and not if_range_matches('"t"', strong)
    assert if_range_matches(format_http_date(NOW - 100), strong)


# -- ranges ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value,expected", [
    ("bytes=0-9", [(0, 9)]),
    ("bytes=90-", [(90, 99)]),
    ("bytes=-10", [(90, 99)]),
    ("bytes=-1000", [(0, 99)]),
    ("bytes=95-200", [(95, 99)]),
    ("bytes=0-1, 10-11", [(0, 1), (10, 11)]),
    ("bytes=100-", UNSATISFIABLE),
    ("bytes=-0", UNSATISFIABLE),
    ("bytes=200-300, 150-", UNSATISFIABLE),
    ("bytes=abc", None),
    ("bytes=5-1", None),
    ("bits=0-1", None),
    ("bytes=0-10, 5-20", None),
    ("bytes", None),
    ("bytes=" + ",".join(["0-0"] * 17), None),
    ("bytes=" + "1" * 100 + "-", None),
])
def test_parse_range(value, expected):
    assert parse_range(value, 100) == expected


# -- key ----------------------------------------------------------------------------------------
def test_cache_key():
    from edgenode.http.messages import Request
    kb = KeyBuilder(CacheKeyConfig())
    assert kb.for_request(Request("GET", "/a?x=1", H(host="Example.COM:80"))) == (
        "http://example.com/a?x=1",) * 2
    assert kb.for_request(Request("GET", "/a", H(host="example.com:8080")))[0] == "http://example.com:8080/a"
    kb = KeyBuilder(CacheKeyConfig(query_whitelist=["id", "v"], sort_query=True, headers=["x-dev"]))
    url, key = kb.for_request(Request("GET", "/p?v=2&utm=1&id=7", H(host="h", x_dev="mobile")))
    assert url == "http://h/p?id=7&v=2" and key == "http://h/p?id=7&v=2\nx-dev:mobile"
    kb = KeyBuilder(CacheKeyConfig(ignore_query=["utm"]))
    assert kb.normalise_url("HTTP://H:80/p?utm=1") == "http://h/p"


@pytest.mark.parametrize("ignore", [["utm_source", "utm_medium"], ["a"], ["", "a.b"], ["a+", "x"]])
def test_a_query_loses_exactly_its_empty_and_ignored_parameters(ignore):
    """A query with nothing to drop is kept as it is without a pass over its parameters;
    every other one is filtered: the answer is the filter's on generated queries."""
    kb = KeyBuilder(CacheKeyConfig(ignore_query=ignore))
    pieces = ["a", "b", "utm_source", "utm_sourcex", "utm_medium=", "x", "=", "a=b", "a.b", "aab", "a+",
              "&", "&", "="]
    rng = random.Random(7)
    for _ in range(20_000):
        query = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))
        expected = "&".join(p for p in query.split("&") if p and p.partition("=")[0] not in ignore)
        assert kb.query(query) == expected, query


@pytest.mark.parametrize("fields", [
    [("Content-Type", "text/plain"), ("Cache-Control", "max-age=60"), ("Surrogate-Key", "a b"),
     ("ETag", '"x"'), ("Content-Length", "4"), ("Age", "3"), ("Via", "1.1 edge")],
    [("Cache-Control", 'max-age=60, private="X-Secret"'), ("X-Secret", "s"), ("Vary", "Accept"),
     ("Last-Modified", DATE), ("X-Cache", "HIT")],
    [("Cache-Control", "public"), ("Date", DATE), ("Connection", "X-Hop"), ("X-Hop", "1"),
     ("Expires", format_http_date(NOW + 30))],
    [("CDN-Cache-Control", "max-age=5"), ("Cache-Control", 'no-cache="X-Tmp"'), ("X-Tmp", "t"),
     ("Surrogate-Control", "max-age=9"), ("Surrogate-Key", "k1"), ("Surrogate-Key", "k2 k3")],
])
def test_an_entry_from_plain_pairs_equals_the_one_from_the_multidict(fields):
    """``fields`` (the origin client's plain pairs) and ``directives`` (the stage's
    storability check) only make ``build_entry`` cheaper: the stored fields, facts, wire
    block and size are the same as from the multidict alone."""
    def made(pairs, directives=None):
        return build_entry(key="k", url="http://h/", status=200, reason="OK", resp_headers=CIMultiDict(fields),
                           body=b"body", req_headers=H(accept="text/html"), request_time=NOW,
                           response_time=NOW + 1, heuristic_fraction=0.1, heuristic_max=86400.0,
                           fields=pairs, directives=directives)
    a, b = made(None), made(list(fields))
    c = made(list(fields), response_directives(CIMultiDict(fields)))
    for name in ("headers", "wire", "size", "lifetime", "age0", "etag", "last_modified", "vary",
                 "vary_values", "surrogate_keys", "surrogate_control", "no_cache", "auth_ok", "swr"):
        assert getattr(a, name) == getattr(b, name) == getattr(c, name), name
    assert list(a.proto.items()) == list(b.proto.items()) == list(c.proto.items())
    assert all(type(k) is str for k, _ in b.headers)  # marshal takes them as they are
    assert ("X-Secret" in dict(b.headers)) is False and ("X-Hop" in dict(b.headers)) is False
