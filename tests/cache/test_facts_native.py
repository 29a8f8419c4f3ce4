"""The C reading of an entry's freshness facts (``_dates.freshness_facts``) against the
Python it stands in for (``policy._facts``: ``freshness_lifetime``, ``initial_age`` and
the directives' tests over a multidict of the stored fields)."""

from __future__ import annotations

import math
import random

import pytest
from multidict import CIMultiDict

from edgenode.cache._dates import freshness_facts
from edgenode.cache.directives import delta_seconds, format_http_date, parse_cache_control
from edgenode.cache.policy import HEURISTIC_STATUSES, REVALIDATE, _facts, build_entry, evaluate

NOW = 1_700_000_000.0
_NAMES = ("Date", "date", "DATE", "ETag", "etag", "Expires", "expires", "Last-Modified",
          "last-modified", "LAST-MODIFIED", "Content-Type", "Cache-Control", "X-Date", "Dates", "Age")
_DIRECTIVES = ("max-age", "s-maxage", "stale-while-revalidate", "stale-if-error", "must-revalidate",
               "proxy-revalidate", "no-cache", "public", "private", "no-store")
_DELTAS = ("0", "5", "60", "3600", "007", "", " 5", "5 ", "-1", "1.5", "abc", "99999999999999999999",
           "2147483647", "2147483648", "2147483649", "\t7", "\xb2", "\u0661\u0662")


def _date(rng: random.Random) -> str:
    """A valid date near NOW in one of the three formats, or something else."""
    ts = NOW + rng.randint(-10 * 86400, 10 * 86400)
    return rng.choice((format_http_date(ts), format_http_date(ts).upper(), " " + format_http_date(ts),
                       "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "", "0", "-1",
                       "Mon, 31 Feb 2024 00:00:00 GMT", "soon", "Mon, 06 Nov 1994 08:49:37 GMT\xa0"))


def _generated(rng: random.Random) -> tuple[list[tuple[str, str]], dict[str, str | None], bool, int, str | None]:
    fields = []
    for _ in range(rng.randint(0, 8)):
        name = rng.choice(_NAMES)
        low = name.lower()
        value = (_date(rng) if low in ("date", "expires", "last-modified", "dates", "x-date")
                 else rng.choice(('"abc"', 'W/"x"', "text/plain", "", "5")))
        fields.append((name, value))
    cc: dict[str, str | None] = {}
    for _ in range(rng.randint(0, 4)):
        cc[rng.choice(_DIRECTIVES)] = rng.choice((None, *_DELTAS))
    age = rng.choice((None, "", "5", "10, 20", " 30 ", "x", "4294967296", "007,", "\x0b12\x1c", "\xb2"))
    return fields, cc, rng.random() < 0.3, rng.choice((200, 203, 302, 404, 500, 206)), age


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    return len(a) == len(b) and all(
        type(x) is type(y) and (x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y)))
        for x, y in zip(a, b))


def test_generated_responses_give_the_python_facts():
    rng = random.Random(9111)
    for _ in range(10_000):
        fields, cc, targeted, status, age = _generated(rng)
        times = (NOW - rng.choice((0.0, 0.5, 3.0)), NOW, 0.1, 86400.0, rng.choice((0.0, 30.0)))
        try:
            ours = freshness_facts(fields, cc, targeted, status in HEURISTIC_STATUSES, age, *times)
        except ValueError:  # left to Python: only an Age beyond ASCII here
            assert age is not None and not age.isascii()
            continue
        theirs = _facts(status, CIMultiDict(fields), cc, targeted, age, *times)
        assert _same(ours, theirs), (fields, cc, targeted, status, age, ours, theirs)


def test_the_usual_origin_response():
    fields = [("Content-Type", "text/plain"), ("Cache-Control", "public, max-age=3600"),
              ("ETag", '"1"'), ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
              ("Date", format_http_date(NOW - 2)), ("Content-Length", "3")]
    cc = parse_cache_control(["public, max-age=3600"])
    facts = freshness_facts(fields, cc, False, True, None, NOW - 1, NOW, 0.1, 86400.0, 0.0)
    assert facts == (NOW - 2, 2.0, 3600.0, NOW + 3598.0, 0.0, 0.0, False, False, True, '"1"',
                     "Mon, 01 Jan 2024 00:00:00 GMT", 1704067200.0, True)


@pytest.mark.parametrize("fields, age, cc", [
    ([("D\xe4te", "x")], None, {}),                     # a name beyond ASCII
    ([], "\u2003 7", {}),                                # str.strip takes other spaces
    ([("Date", "Mon, 06 Nov 1994 08:49:37 GMT\u2028")], None, {}),  # a date beyond Latin-1
])
def test_what_python_reads_otherwise_is_left_to_python(fields, age, cc):
    with pytest.raises(ValueError):
        freshness_facts(fields, cc, False, True, age, NOW, NOW, 0.1, 86400.0, 0.0)


def test_an_entry_left_to_python_has_the_python_facts():
    """``build_entry`` falls back to ``_facts`` where the C reading raises ValueError."""
    headers = CIMultiDict([("Cache-Control", "max-age=60"), ("Date", format_http_date(NOW - 5)),
                           ("Age", "\u2003 7")])
    e = build_entry(key="k", url="http://a/", status=200, reason="OK", resp_headers=headers, body=b"x",
                    req_headers=CIMultiDict(), request_time=NOW, response_time=NOW,
                    heuristic_fraction=0.1, heuristic_max=86400.0)
    assert e.age0 == 7.0 and e.lifetime == 60.0 and e.fresh_until == NOW + 53.0


@pytest.mark.parametrize("value", ["\xb2", "\u0661\u0662", "\uff15"])
def test_a_delta_seconds_of_other_digits_is_malformed(value):
    """RFC 9111 §1.2.2: delta-seconds are ASCII digits; ``isdigit`` also takes these (and
    ``int`` refuses the superscripts): malformed, so the response is stale, not an error."""
    assert delta_seconds(value) is None
    e = build_entry(key="k", url="http://a/", status=200, reason="OK",
                    resp_headers=CIMultiDict([("Cache-Control", f"max-age={value}"),
                                              ("Date", format_http_date(NOW)), ("Age", value)]),
                    body=b"x", req_headers=CIMultiDict(), request_time=NOW, response_time=NOW,
                    heuristic_fraction=0.1, heuristic_max=86400.0)
    assert e.lifetime == 0.0 and e.age0 == 0.0
    assert evaluate(e, NOW, {"max-age": value}) == (REVALIDATE, False)


def test_a_response_without_a_date_gets_one():
    e = build_entry(key="k", url="http://a/", status=200, reason="OK",
                    resp_headers=CIMultiDict([("Cache-Control", "max-age=60")]), body=b"x",
                    req_headers=CIMultiDict(), request_time=NOW, response_time=NOW,
                    heuristic_fraction=0.1, heuristic_max=86400.0)
    assert e.date == NOW and ("Date", format_http_date(NOW)) in e.headers
    assert e.wire is not None and b"Date: " + format_http_date(NOW).encode() in e.wire
