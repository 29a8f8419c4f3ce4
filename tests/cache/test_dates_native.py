"""The C reading of HTTP dates (``cache/_dates.c``) against the expressions it stands in for.

``parse_http_date`` asks ``_dates.http_date`` and, for a str beyond Latin-1, the
expressions (``directives._parse_http_date``); each answer must be the expressions' own.
"""

from __future__ import annotations

import random
import time

import pytest

from edgenode.cache._dates import http_date
from edgenode.cache.directives import _parse_http_date, parse_http_date, rfc850_year

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_LONG_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: what may surround a date, inside it, or replace one of its characters
_NOISE = (" ", "  ", "\t", "\r\n", "\x0b", "\x1c", "\x85", "\xa0", "\xe9", "", "-", ",", ":", "0",
          "9", "a", "Z", "\x00")


def _generated(rng: random.Random) -> str:
    """A date in one of the three formats, valid or not, perhaps mangled."""
    day = rng.choice((rng.randint(0, 32), rng.randint(1, 28)))
    month = rng.choice(_MONTHS + ("Foo", "JAN", "jan", "nOv"))
    year = rng.choice((rng.randint(0, 9999), rng.randint(1900, 2100), 1900, 2000, 2024, 2023))
    clock = "%02d:%02d:%02d" % (rng.choice((rng.randint(0, 24), 23, 0)),
                                rng.choice((rng.randint(0, 60), 59)), rng.choice((rng.randint(0, 61), 60)))
    kind = rng.randrange(3)
    if kind == 0:
        text = f"{rng.choice(_DAYS)}, {day:02d} {month} {year:04d} {clock} {rng.choice(('GMT', 'gmt', 'UTC'))}"
    elif kind == 1:
        text = f"{rng.choice(_LONG_DAYS)}, {day:02d}-{month}-{year % 100:02d} {clock} GMT"
    else:
        text = f"{rng.choice(_DAYS)} {month} {day:2d} {clock} {year:04d}"
    roll = rng.random()
    if roll < 0.2:
        text = rng.choice(_NOISE) + text + rng.choice(_NOISE)
    elif roll < 0.4:
        at = rng.randrange(len(text) + 1)
        text = text[:at] + rng.choice(_NOISE) + text[at + 1:]
    elif roll < 0.5:
        at = rng.randrange(len(text) + 1)
        text = text[:at] + rng.choice(_NOISE) + text[at:]
    return text


def test_generated_dates_read_as_the_expressions_read_them():
    rng = random.Random(9111)
    valid = 0
    for _ in range(200_000):
        text = _generated(rng)
        expected = _parse_http_date(text)
        assert http_date(text) == expected, text
        valid += expected is not None
    assert valid > 50_000  # (the generator is not mostly noise)


@pytest.mark.parametrize("text, expected", [
    ("Sun, 06 Nov 1994 08:49:37 GMT", 784111777.0),
    ("Sunday, 06-Nov-94 08:49:37 GMT", 784111777.0),
    ("Sun Nov  6 08:49:37 1994", 784111777.0),
    (" \t\x1cSun, 06 nOV 1994 08:49:37 gmt\xa0\x85\r\n", 784111777.0),
    ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
    ("Mon, 01 Jan 0001 00:00:00 GMT", -62135596800.0),  # before the epoch: negative
    ("Fri, 31 Dec 9999 23:59:60 GMT", 253402300800.0),
    ("Thu, 29 Feb 2024 12:00:00 GMT", 1709208000.0),
    ("Sun, 29 Feb 2023 08:49:37 GMT", None), ("Sun, 29 Feb 1900 08:49:37 GMT", None),
    ("Sun, 01 Jan 0000 08:49:37 GMT", None), ("Sun, 01 Jan 2024 24:00:00 GMT", None),
    ("Sun,  6 Nov 1994 08:49:37 GMT", None), ("Sun, 06 Nov 1994 8:49:37 GMT", None),
    ("Sun, 06 Nov 1994 08:49:37", None), ("Sun Nov 06 08:49:37 1994 GMT", None),
    ("Sunda, 06-Nov-94 08:49:37 GMT", None), ("Wednesdays, 06-Nov-94 08:49:37 GMT", None),
    ("", None), ("0", None), ("yesterday", None),
])
def test_dates_at_the_edges(text, expected):
    assert http_date(text) == expected == _parse_http_date(text)


def test_rfc850_two_digit_years_within_fifty_years_ahead():
    """RFC 9110 §5.6.7: a two-digit year more than 50 years in the future is the most recent
    past year with the same digits; C and the expressions agree for all hundred."""
    this_year = time.gmtime().tm_year
    for yy in range(100):
        text = "Sunday, 01-Jan-%02d 00:00:00 GMT" % yy
        year = time.gmtime(http_date(text)).tm_year
        assert year % 100 == yy and this_year - 50 < year <= this_year + 50, text
        assert http_date(text) == _parse_http_date(text)
    assert rfc850_year(76, 2026) == 2076 and rfc850_year(77, 2026) == 1977
    assert rfc850_year(1, 2099) == 2101 and rfc850_year(49, 2099) == 2149
    assert rfc850_year(50, 2099) == 2050


def test_beyond_latin1_the_expressions_decide():
    """A str with a character beyond Latin-1 is not read in C; ``parse_http_date`` gives
    the expressions' answer (which accept Unicode digits and spaces)."""
    text = "Sun, \u0660\u0666 Nov 1994 08:49:37 GMT\u2003"
    with pytest.raises(ValueError):
        http_date(text)
    assert parse_http_date(text) == _parse_http_date(text) == 784111777.0
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT\u20ac") is None
    with pytest.raises(TypeError):
        http_date(b"Sun, 06 Nov 1994 08:49:37 GMT")  # type: ignore[arg-type]
