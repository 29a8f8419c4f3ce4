"""Client conditionals, revalidation requests, Vary, Range and HEAD from the cache
(cache-tests conditional-etag, conditional-lm, vary, vary-parse, partial).
RFC 9110 §13, §14; RFC 9111 §4.1, §4.3, §4.3.2, §4.3.5."""

from __future__ import annotations

import pytest

from conformance_support import Reply

FRESH = [("Cache-Control", "max-age=100000")]


async def stored(edge, path: str, headers: list[tuple[str, str]], body: bytes = b"body",
                 request_headers=None) -> None:
    edge.origin.script(path, Reply(headers=headers, body=body, conditional=True))
    await edge.get(path, headers=request_headers)


# -- If-None-Match answered from a fresh entry ----------------------------------------------
@pytest.mark.parametrize("etag, inm, not_modified", [
    ('"abcdef"', '"abcdef"', True),
    ('W/"abcdef"', 'W/"abcdef"', True),
    ('"abcdef"', 'W/"abcdef"', True),                 # weak comparison (§13.1.2)
    ('"abcdef"', '"abcdef", "1234", "5678"', True),
    ('"abcdef"', '"1234", "abcdef", "5678"', True),
    ('"abcdef"', '"1234", "5678", "abcdef"', True),
    ('"abcdef"', "*", True),
    ('"abcdef"', '"other"', False),
])
async def test_if_none_match(edge, etag, inm, not_modified):
    await stored(edge, "/inm", FRESH + [("ETag", etag)])
    got = await edge.get("/inm", headers={"If-None-Match": inm})
    assert edge.origin.hits["/inm"] == 1
    if not_modified:
        assert got.status == 304 and got.body == b"" and got.headers["ETag"] == etag
        assert "Cache-Status" in got.headers and "Content-Length" not in got.headers
    else:
        assert got.status == 200 and got.body == b"body"


async def test_if_none_match_wins_over_if_modified_since(edge):
    await stored(edge, "/prec", FRESH + [("ETag", '"abcdef"'), ("Last-Modified", edge.clock.date(-5000))])
    got = await edge.get("/prec", headers={"If-None-Match": '"abcdef"', "If-Modified-Since": edge.clock.date(-6000)})
    assert got.status == 304
    got = await edge.get("/prec", headers={"If-None-Match": '"zzz"', "If-Modified-Since": edge.clock.date(-1)})
    assert got.status == 200


@pytest.mark.parametrize("ims_offset, status", [(-3000, 304), (-2000, 304), (-4000, 200)])
async def test_if_modified_since(edge, ims_offset, status):
    await stored(edge, "/ims", [("Cache-Control", "max-age=100000"), ("Last-Modified", edge.clock.date(-3000))])
    got = await edge.get("/ims", headers={"If-Modified-Since": edge.clock.date(ims_offset)})
    assert got.status == status and edge.origin.hits["/ims"] == 1


async def test_if_modified_since_rfc850_and_no_last_modified_uses_date(edge):
    """RFC 9111 §4.3.2: without Last-Modified the stored Date stands in for it, so an IMS
    older than Date gets the 200.  (cache-tests conditional-lm-fresh-no-lm expects a 304
    here; its own design notes asked for a Date *earlier* than the IMS, see
    http-tests/cache-tests issue 204.)"""
    await stored(edge, "/ims2", [("Cache-Control", "max-age=10000")])
    t = edge.clock.now - 3000
    import time
    g = time.gmtime(t)
    rfc850 = time.strftime("%A, %d-%b-%y %H:%M:%S GMT", g)
    got = await edge.get("/ims2", headers={"If-Modified-Since": rfc850})
    assert got.status == 200                          # Date is newer than IMS
    got = await edge.get("/ims2", headers={"If-Modified-Since": edge.clock.date(10)})
    assert got.status == 304
    got = await edge.get("/ims2", headers={"If-Modified-Since": edge.clock.date()})
    assert got.status == 304 and got.headers["X-Cache"] == "HIT"      # Date equal to IMS


async def test_conditional_on_a_stale_entry_validates_then_answers_304(edge):
    lm = edge.clock.date(-3000)
    await stored(edge, "/cs", [("Cache-Control", "max-age=2"), ("Last-Modified", lm)])
    edge.clock.advance(5)
    got = await edge.get("/cs", headers={"If-Modified-Since": lm})
    assert edge.origin.statuses["/cs"] == [200, 304]
    assert got.status == 304


async def test_conditional_miss_stores_full_and_answers_304(edge):
    """Deviation (check-only in cache-tests): we strip the client's validators on a miss."""
    edge.origin.script("/cm", Reply(headers=FRESH + [("ETag", '"e"')], conditional=True))
    got = await edge.get("/cm", headers={"If-None-Match": '"e"'})
    assert "If-None-Match" not in edge.origin.last("/cm")
    assert got.status == 304
    got = await edge.get("/cm")
    assert got.status == 200 and edge.origin.hits["/cm"] == 1


# -- the revalidation request we generate (§4.3.1) ----------------------------------------
@pytest.mark.parametrize("etag", ['"abcdef"', 'W/"abcdef"'])
async def test_stale_generates_if_none_match(edge, etag):
    await stored(edge, "/gen", [("Cache-Control", "max-age=2"), ("ETag", etag)], body=b"kept")
    edge.clock.advance(3)
    got = await edge.get("/gen")
    assert edge.origin.last("/gen")["If-None-Match"] == etag
    assert edge.origin.statuses["/gen"][-1] == 304 and got.body == b"kept" and got.status == 200


async def test_revalidation_carries_vary_fields(edge):
    await stored(edge, "/vh", [("Expires", edge.clock.date(1)), ("ETag", '"abcdef"'), ("Vary", "Abc")],
                 request_headers={"Abc": "123"})
    edge.clock.advance(3)
    await edge.get("/vh", headers={"Abc": "123"})
    seen = edge.origin.last("/vh")
    assert seen["Abc"] == "123" and seen["If-None-Match"] == '"abcdef"'


async def test_vary_mismatch_does_not_validate_with_other_variant(edge):
    await stored(edge, "/vm", [("Expires", edge.clock.date(10000)), ("ETag", '"abcdef"'), ("Vary", "Abc")],
                 request_headers={"Abc": "123"})
    await edge.get("/vm", headers={"Abc": "456"})
    assert "If-None-Match" not in edge.origin.last("/vm")


async def test_304_for_another_etag_refetches(edge):
    edge.origin.script("/other", Reply(headers=[("Cache-Control", "max-age=1"), ("ETag", '"a"')], body=b"A"),
                       Reply(304, [("ETag", '"b"')], b""),
                       Reply(headers=[("Cache-Control", "max-age=60"), ("ETag", '"b"')], body=b"B"))
    await edge.get("/other")
    edge.clock.advance(2)
    got = await edge.get("/other")
    assert edge.origin.hits["/other"] == 3 and got.body == b"B"


# -- Vary (§4.1) ------------------------------------------------------------------------------
VARY = lambda edge, v: [("Expires", edge.clock.date(5000)), ("Last-Modified", edge.clock.date(-3000)),  # noqa: E731
                        ("Date", edge.clock.date()), ("Vary", v)]


@pytest.mark.parametrize("vary, first, second, cached", [
    ("Foo", {"Foo": "1"}, {"Foo": "1"}, True),
    ("Foo", {"Foo": "1"}, {"Foo": "2"}, False),
    ("Foo", {"Foo": "1"}, {}, False),
    ("Foo", {"Foo": "1", "Other": "2"}, {"Foo": "1", "Other": "3"}, True),
    ("Foo, Bar", {"Foo": "1", "Bar": "abc"}, {"Foo": "1", "Bar": "abc"}, True),
    ("Foo, Bar", {"Foo": "1", "Bar": "abc"}, {"Foo": "2", "Bar": "abc"}, False),
    ("Foo, Bar", {"Foo": "1"}, {}, False),
    ("Foo, Bar, Baz", {"Foo": "1", "Bar": "abc4", "Baz": "789"}, {"Foo": "1", "Bar": "abc", "Baz": "789"}, False),
    ("Foo, Bar, Baz", {"Foo": "1", "Baz": "789"}, {"Foo": "1", "Baz": "789"}, True),
    ("Foo", {"Foo": "1,2"}, {"Foo": " 1, 2 "}, True),
    ("*", {"Foo": "1"}, {"Foo": "1"}, False),
    ("*, *", {}, {}, False),
    (", *", {}, {}, False),
    ("*, Foo", {"Foo": "1"}, {"Foo": "1"}, False),
    ("Foo, *", {"Foo": "1"}, {"Foo": "1"}, False),
    ("fOO", {"Foo": "1"}, {"foo": "1"}, True),
])
async def test_vary(edge, vary, first, second, cached):
    await stored(edge, "/v", VARY(edge, vary), request_headers=first)
    await edge.get("/v", headers=second)
    assert (edge.origin.hits["/v"] == 1) is cached


@pytest.mark.parametrize("field, first, second, cached", [
    # RFC 9110 §12.5: weighted lists of case-insensitive tokens; order carries no meaning
    ("Accept-Language", "en, de", "de, en", True),
    ("Accept-Language", "en, de", "eN, De", True),
    ("Accept-Language", "en, de", " en ,   de", True),
    ("Accept-Language", "en;q=0.5, de", "de;q=1.0, EN; Q=0.500", True),
    ("Accept-Language", "en;q=0.5, de", "en, de;q=0.5", False),
    ("Accept-Language", "en, de", "en, de, fr", False),
    ("Accept-Encoding", "gzip, br", "BR,gzip", True),
    ("Accept-Encoding", "gzip;q=1.5, br", "br, gzip;q=1.5", False),  # invalid qvalue: kept as sent
    ("Accept-Encoding", "gzip;q=1.5, br", "gzip;q=1.5,br", True),
    ("Accept-Encoding", "gzip", "identity", False),
    ("Foo", "a, b", "b, a", False),                                   # unknown field: order counts
    ("Foo", "a", "A", False),
])
async def test_vary_normalises_negotiation_fields(edge, field, first, second, cached):
    """RFC 9111 §4.1 normalisation (cache-tests vary-normalise-*)."""
    await stored(edge, "/vn", VARY(edge, field), request_headers={field: first})
    await edge.get("/vn", headers={field: second})
    assert (edge.origin.hits["/vn"] == 1) is cached


@pytest.mark.parametrize("content_language, second, cached", [
    ("de", "fr;q=0.5, de;q=1.0", True),   # the stored language is the request's top choice
    ("de-CH", "de, fr;q=0.5", True),      # basic filtering: "de" matches "de-CH"
    ("de", "de-CH", False),
    ("de", "de, fr", False),              # a tie at the top: the origin might choose fr
    ("de", "*", False),
    ("de", "fr", False),
    ("de, en", "de", False),
    (None, "de", False),
])
async def test_vary_accept_language_selects_content_language(edge, content_language, second, cached):
    """RFC 9110 §12.5.4 (cache-tests vary-normalise-lang-select)."""
    headers = VARY(edge, "Accept-Language")
    if content_language:
        headers = headers + [("Content-Language", content_language)]
    await stored(edge, "/vl", headers, request_headers={"Accept-Language": "en, de"})
    await edge.get("/vl", headers={"Accept-Language": second})
    assert (edge.origin.hits["/vl"] == 1) is cached


async def test_vary_combined_field_lines(edge):
    await stored(edge, "/vc", VARY(edge, "Foo"), request_headers={"Foo": "1, 2"})
    from multidict import CIMultiDict
    await edge.get("/vc", headers=CIMultiDict([("Foo", "1"), ("Foo", "2")]))
    assert edge.origin.hits["/vc"] == 1


async def test_vary_variants_coexist(edge):
    edge.origin.script("/vv", Reply(headers=VARY(edge, "Foo"), body=b"one"),
                       Reply(headers=VARY(edge, "Foo"), body=b"two"))
    await edge.get("/vv", headers={"Foo": "1"})
    got = await edge.get("/vv", headers={"Foo": "2"})
    assert got.body == b"two" and "fwd=vary-miss" in got.headers["Cache-Status"]
    assert (await edge.get("/vv", headers={"Foo": "1"})).body == b"one"
    assert (await edge.get("/vv", headers={"Foo": "2"})).body == b"two"
    assert edge.origin.hits["/vv"] == 2


# -- Range from a stored complete response (RFC 9110 §14, RFC 9111 §3.4) ------------------
BODY = b"01234567890"


@pytest.mark.parametrize("rng, status, body, content_range", [
    ("bytes=0-1", 206, b"01", "bytes 0-1/11"),
    ("bytes=1-", 206, b"1234567890", "bytes 1-10/11"),
    ("bytes=-1", 206, b"0", "bytes 10-10/11"),
    ("bytes=5-100", 206, b"567890", "bytes 5-10/11"),
    ("bytes=11-", 416, b"", "bytes */11"),
    ("bytes=100-200", 416, b"", "bytes */11"),
    ("bytes=5-2", 200, BODY, None),                  # invalid: ignored (§14.2)
    ("items=0-1", 200, BODY, None),
])
async def test_range_from_cache(edge, rng, status, body, content_range):
    await stored(edge, "/r", FRESH + [("ETag", '"r1"')], body=BODY)
    got = await edge.get("/r", headers={"Range": rng})
    assert edge.origin.hits["/r"] == 1
    assert got.status == status and got.body == body
    assert got.headers.get("Content-Range") == content_range
    assert int(got.headers["Content-Length"]) == len(body)


async def test_multiple_ranges_multipart(edge):
    await stored(edge, "/mr", FRESH + [("Content-Type", "text/plain")], body=BODY)
    got = await edge.get("/mr", headers={"Range": "bytes=0-1,5-6"})
    assert got.status == 206 and got.headers["Content-Type"].startswith("multipart/byteranges; boundary=")
    assert b"Content-Range: bytes 0-1/11\r\n\r\n01" in got.body
    assert b"Content-Range: bytes 5-6/11\r\n\r\n56" in got.body


async def test_if_range(edge):
    lm = edge.clock.date(-100)
    await stored(edge, "/ir", FRESH + [("ETag", '"r1"'), ("Last-Modified", lm)], body=BODY)
    assert (await edge.get("/ir", headers={"Range": "bytes=0-1", "If-Range": '"r1"'})).status == 206
    assert (await edge.get("/ir", headers={"Range": "bytes=0-1", "If-Range": '"r0"'})).status == 200
    assert (await edge.get("/ir", headers={"Range": "bytes=0-1", "If-Range": lm})).status == 206
    assert (await edge.get("/ir", headers={"Range": "bytes=0-1", "If-Range": edge.clock.date(-50)})).status == 200


async def test_range_miss_answered_from_a_whole_200(edge):
    """The Range goes to the origin; one that ignores it sends the whole 200: stored, and
    the range answered from it (test_partial.py covers origins that answer 206)."""
    edge.origin.script("/rm", Reply(headers=FRESH, body=BODY))
    got = await edge.get("/rm", headers={"Range": "bytes=2-4"})
    assert edge.origin.last("/rm")["Range"] == "bytes=2-4"
    assert got.status == 206 and got.body == b"234"
    got = await edge.get("/rm")
    assert got.status == 200 and got.body == BODY and edge.origin.hits["/rm"] == 1


# -- HEAD (RFC 9110 §9.3.2) -------------------------------------------------------------------
async def test_head_answered_from_stored_get(edge):
    await stored(edge, "/head", FRESH + [("ETag", '"h"'), ("Content-Type", "text/plain")], body=BODY)
    got = await edge.get("/head", method="HEAD")
    assert edge.origin.hits["/head"] == 1
    assert got.status == 200 and got.body == b"" and got.headers["Content-Length"] == "11"
    assert got.headers["ETag"] == '"h"' and got.headers["X-Cache"] == "HIT"


async def test_head_miss_forwarded_as_head_not_stored(edge):
    edge.origin.script("/hm", Reply(headers=FRESH, body=BODY))
    got = await edge.get("/hm", method="HEAD")
    assert edge.origin.methods["/hm"] == ["HEAD"] and got.status == 200 and got.body == b""
    await edge.get("/hm")
    assert edge.origin.methods["/hm"] == ["HEAD", "GET"]
