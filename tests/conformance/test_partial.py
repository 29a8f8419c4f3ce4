"""Incomplete responses: storing 206s, answering ranges from them, combining and
completing them (cache-tests partial).  RFC 9111 §3.3-3.4; RFC 9110 §13.1.5, §14.

The scripted origin honours Range (and If-Range) like a static file server, so the cache
sees real 206 responses; ``edge.origin.seen`` shows the Range/If-Range it was sent.
"""

from __future__ import annotations

import asyncio

import pytest

from conformance_support import Reply
from edgenode.cache.ranges import Partial, combine, covers, gaps, parse_content_range

BODY = b"0123456789A"  # 11 bytes
FRESH = [("Cache-Control", "max-age=3600")]
TAGGED = FRESH + [("ETag", '"v1"')]


def ranged(headers=TAGGED, body=BODY) -> Reply:
    return Reply(headers=list(headers), body=body, ranges=True)


async def test_206_stored_and_ranges_inside_it_answered(edge):
    edge.origin.script("/p", ranged())
    first = await edge.get("/p", headers={"Range": "bytes=0-3"})
    assert edge.origin.last("/p")["Range"] == "bytes=0-3"   # forwarded on a miss
    assert first.status == 206 and first.body == b"0123"
    assert first.headers["Content-Range"] == "bytes 0-3/11" and "stored" in first.headers["Cache-Status"]
    for rng, body, content_range in [("bytes=0-3", b"0123", "bytes 0-3/11"),
                                     ("bytes=1-2", b"12", "bytes 1-2/11"),
                                     ("bytes=3-3", b"3", "bytes 3-3/11")]:
        got = await edge.get("/p", headers={"Range": rng})
        assert got.status == 206 and got.body == body and got.headers["Content-Range"] == content_range
        assert got.headers["X-Cache"] == "HIT" and got.headers["Content-Length"] == str(len(body))
        assert got.headers["ETag"] == '"v1"'
    assert edge.origin.hits["/p"] == 1


async def test_suffix_range_inside_a_stored_tail(edge):
    edge.origin.script("/s", ranged())
    await edge.get("/s", headers={"Range": "bytes=-5"})              # origin: bytes 6-10/11
    got = await edge.get("/s", headers={"Range": "bytes=-1"})
    assert got.status == 206 and got.body == b"A" and got.headers["Content-Range"] == "bytes 10-10/11"
    got = await edge.get("/s", headers={"Range": "bytes=7-"})
    assert got.status == 206 and got.body == b"789A" and edge.origin.hits["/s"] == 1


@pytest.mark.parametrize("request_headers", [
    {},                                                   # the whole representation
    {"Range": "bytes=2-5"},                               # partly outside what we hold
    {"Range": "bytes=0-1,8-9"},                           # one of several ranges outside
    {"Range": "bytes=0-1", "If-None-Match": '"v1"'},      # asks about the whole
    {"Range": "bytes=0-1", "If-Range": '"v0"'},           # If-Range fails: wants the whole
])
async def test_partial_never_answers_more_than_it_holds(edge, request_headers):
    edge.origin.script("/n", ranged())
    await edge.get("/n", headers={"Range": "bytes=0-3"})
    got = await edge.get("/n", headers=request_headers)
    assert edge.origin.hits["/n"] >= 2 and got.headers["X-Cache"] != "HIT"
    assert got.status in (200, 206, 304)
    if got.status == 200:
        assert got.body == BODY


async def test_head_with_only_a_partial_goes_to_the_origin(edge):
    edge.origin.script("/h", ranged())
    await edge.get("/h", headers={"Range": "bytes=0-3"})
    got = await edge.get("/h", method="HEAD")
    assert edge.origin.methods["/h"] == ["GET", "HEAD"] and got.headers["Content-Length"] == "11"


async def test_completed_with_one_range_request(edge):
    """The missing tail is asked for with our strong validator; the 206 completes the entry."""
    edge.origin.script("/c", ranged())
    await edge.get("/c", headers={"Range": "bytes=0-3"})
    got = await edge.get("/c")
    sent = edge.origin.last("/c")
    assert sent["Range"] == "bytes=4-" and sent["If-Range"] == '"v1"'
    assert got.status == 200 and got.body == BODY and got.headers["Content-Length"] == "11"
    assert "Content-Range" not in got.headers and "fwd=partial" in got.headers["Cache-Status"]
    again = await edge.get("/c")
    assert again.headers["X-Cache"] == "HIT" and again.body == BODY and edge.origin.hits["/c"] == 2


async def test_spans_combined_until_complete(edge):
    edge.origin.script("/m", ranged())
    await edge.get("/m", headers={"Range": "bytes=0-2"})
    await edge.get("/m", headers={"Range": "bytes=8-"})
    got = await edge.get("/m", headers={"Range": "bytes=9-10"})            # inside the second span
    assert got.headers["X-Cache"] == "HIT" and got.body == b"9A"
    await edge.get("/m", headers={"Range": "bytes=2-8"})                    # fills the hole
    assert edge.origin.hits["/m"] == 3
    whole = await edge.get("/m")
    assert whole.status == 200 and whole.body == BODY and whole.headers["X-Cache"] == "HIT"
    assert edge.origin.hits["/m"] == 3


async def test_several_gaps_fetch_the_whole(edge):
    edge.origin.script("/g", ranged())
    await edge.get("/g", headers={"Range": "bytes=2-3"})
    got = await edge.get("/g")
    assert "Range" not in edge.origin.last("/g")
    assert got.status == 200 and got.body == BODY and edge.origin.hits["/g"] == 2


async def test_last_modified_is_a_strong_validator_when_older_than_date(edge):
    lm = edge.clock.date(-60)
    edge.origin.script("/lm", ranged(FRESH + [("Last-Modified", lm)]))
    await edge.get("/lm", headers={"Range": "bytes=0-3"})
    got = await edge.get("/lm")
    assert edge.origin.last("/lm")["If-Range"] == lm
    assert got.body == BODY and edge.origin.hits["/lm"] == 2


async def test_no_strong_validator_means_no_combining(edge):
    """RFC 9111 §3.4: without matching strong validators the parts may belong to different
    representations: the whole one is fetched instead."""
    edge.origin.script("/w", ranged(FRESH + [("ETag", 'W/"weak"')]))
    await edge.get("/w", headers={"Range": "bytes=0-3"})
    got = await edge.get("/w")
    assert edge.origin.seen["/w"][1]["Range"] == "bytes=4-" and "If-Range" not in edge.origin.seen["/w"][1]
    assert "Range" not in edge.origin.seen["/w"][2]
    assert got.status == 200 and got.body == BODY and edge.origin.hits["/w"] == 3


async def test_changed_representation_replaces_the_partial(edge):
    edge.origin.script("/x", ranged(), ranged(FRESH + [("ETag", '"v2"')], b"abcdefghijk"))
    await edge.get("/x", headers={"Range": "bytes=0-3"})
    got = await edge.get("/x")                                # If-Range "v1" fails: whole 200
    assert got.status == 200 and got.body == b"abcdefghijk"
    again = await edge.get("/x", headers={"Range": "bytes=0-1"})
    assert again.body == b"ab" and again.headers["X-Cache"] == "HIT"


@pytest.mark.parametrize("headers, body", [
    ([("Content-Range", "bytes 4-9/10")], b"01234"),          # Content-Range says 6 bytes, 5 sent
    ([("Content-Range", "bytes 0-4/*")], b"01234"),           # complete length unknown
    ([("Content-Type", "multipart/byteranges; boundary=x")], b"--x--"),
])
async def test_unusable_206_passed_on_not_stored(edge, headers, body):
    edge.origin.script("/u", Reply(206, FRESH + headers, body))
    got = await edge.get("/u", headers={"Range": "bytes=-5"})
    assert got.status == 206 and got.body == body and "stored" not in got.headers["Cache-Status"]
    await edge.get("/u", headers={"Range": "bytes=-5"})
    assert edge.origin.hits["/u"] == 2


async def test_206_for_other_bytes_than_asked_is_passed_on(edge):
    edge.origin.script("/o", Reply(206, TAGGED + [("Content-Range", "bytes 0-4/10")], b"01234"))
    got = await edge.get("/o", headers={"Range": "bytes=6-8"})
    assert got.status == 206 and got.body == b"01234" and got.headers["Content-Range"] == "bytes 0-4/10"
    hit = await edge.get("/o", headers={"Range": "bytes=1-2"})     # but what it holds is reused
    assert hit.body == b"12" and hit.headers["X-Cache"] == "HIT"


# -- the span arithmetic ------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    ("bytes 0-4/10", (0, 4, 10)), ("BYTES 4-9/10", (4, 9, 10)), (" bytes 0-0/1 ", (0, 0, 1)),
    ("bytes 4-9/*", None), ("bytes */10", None), ("bytes 5-4/10", None), ("bytes 0-10/10", None),
    ("items 0-4/10", None), ("bytes 0-4", None), (None, None),
])
def test_parse_content_range(value, expected):
    assert parse_content_range(value) == expected


def test_combine_and_gaps():
    p = Partial(11, ((0, 2),))
    spans, body = combine(p, b"012", (8, 10), b"89A")
    assert spans == ((0, 2), (8, 10)) and body == b"01289A"
    assert gaps(Partial(11, spans)) == [(3, 7)]
    spans, body = combine(Partial(11, spans), body, (2, 8), b"2345678")
    assert spans == ((0, 10),) and body == BODY
    assert combine(Partial(11, ((2, 5),)), b"2345", (3, 4), b"34") == (((2, 5),), b"2345")
    assert combine(Partial(11, ((2, 3),)), b"23", (4, 5), b"45") == (((2, 5),), b"2345")  # adjacent
    assert gaps(Partial(11, ((3, 4),))) == [(0, 2), (5, 10)]
    assert covers(Partial(11, ((0, 2), (8, 10))), [(0, 1), (9, 10)])
    assert not covers(Partial(11, ((0, 2), (8, 10))), [(1, 8)]) and not covers(Partial(11, ((0, 2),)), [])


async def test_stale_partial_revalidated_in_the_background(edge, caplog):
    """stale-while-revalidate on an incomplete entry: the stale range is served and the
    background revalidation (a plain conditional GET) refreshes what we hold."""
    swr = [("Cache-Control", "max-age=1, stale-while-revalidate=60"), ("ETag", '"v1"')]
    edge.origin.script("/swr", Reply(headers=swr, body=BODY, ranges=True, conditional=True))
    await edge.get("/swr", headers={"Range": "bytes=0-3"})
    edge.clock.advance(5)
    got = await edge.get("/swr", headers={"Range": "bytes=1-2"})
    assert got.status == 206 and got.body == b"12" and got.headers["X-Cache"] == "STALE"
    for _ in range(100):
        if edge.origin.hits["/swr"] == 2 and not edge.stage._refreshing:
            break
        await asyncio.sleep(0.01)
    assert edge.origin.statuses["/swr"] == [206, 304]
    assert not [r for r in caplog.records if "background revalidation" in r.getMessage()]
    again = await edge.get("/swr", headers={"Range": "bytes=0-3"})
    assert again.headers["X-Cache"] == "HIT" and again.body == b"0123" and edge.origin.hits["/swr"] == 2
