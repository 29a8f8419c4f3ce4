"""Parser robustness for the caching fields (cache-tests cc-parse, age-parse, expires-parse;
RFC 9111 §1.2.2, §4.2.1, §5.1-§5.3; RFC 9110 §5.6.7 HTTP-date)."""

from __future__ import annotations

import calendar

import pytest

from edgenode.cache.directives import (
    MAX_DELTA, delta_seconds, format_http_date, parse_cache_control, parse_http_date,
)
from edgenode.cache.policy import initial_age

NOV6 = float(calendar.timegm((1994, 11, 6, 8, 49, 37, 0, 0, 0)))


@pytest.mark.parametrize("value, expected", [
    ("max-age=60", {"max-age": "60"}),
    ('max-age="60"', {"max-age": "60"}),
    ("MAX-AGE=60, Public", {"max-age": "60", "public": None}),
    ("  max-age=60  ,  no-cache  ", {"max-age": "60", "no-cache": None}),
    ("max-age =60", {}),
    ("max-age= 60", {}),
    ("max-age = 60, public", {"public": None}),
    ('ext="max-age=5, no-store", max-age=1', {"ext": "max-age=5, no-store", "max-age": "1"}),
    ('ext="a\\"b", max-age=1', {"ext": 'a"b', "max-age": "1"}),
    ("max-age=1, max-age=99", {"max-age": "1"}),
    (",,, max-age=1,,", {"max-age": "1"}),
    ('private="a, b", no-cache="c"', {"private": "a, b", "no-cache": "c"}),
    ("max-age=60 junk, public", {"public": None}),
])
def test_cache_control_parse(value, expected):
    assert parse_cache_control([value]) == expected


def test_cache_control_lines_combine_first_wins():
    assert parse_cache_control(["max-age=10", "max-age=20, s-maxage=5"]) == {"max-age": "10", "s-maxage": "5"}


@pytest.mark.parametrize("arg, expected", [
    ("3600", 3600), ("003600", 3600), ("0", 0), ("-1", None), ("1.5", None), ("3600.0", None),
    ("a1", None), ("1a", None), ("", None), (None, None), ("'3600'", None), (" 60", None),
    ("2147483648", MAX_DELTA), ("999999999999", MAX_DELTA), ("9" * 400, MAX_DELTA),
])
def test_delta_seconds(arg, expected):
    assert delta_seconds(arg) == expected


@pytest.mark.parametrize("value", [
    "Sun, 06 Nov 1994 08:49:37 GMT",          # IMF-fixdate
    "Sunday, 06-Nov-94 08:49:37 GMT",         # obsolete RFC 850
    "Sun Nov  6 08:49:37 1994",               # asctime
    "SUN, 06 NOV 1994 08:49:37 gmt",          # case is not enforced
    " Sun, 06 Nov 1994 08:49:37 GMT ",
])
def test_http_date_three_formats(value):
    assert parse_http_date(value) == NOV6


@pytest.mark.parametrize("value", [
    "0", "-1", "", "foo", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Nov 94 08:49:37 GMT",
    "Sun 06 Nov 1994 08:49:37 GMT", "Sun, 06  Nov  1994 08:49:37 GMT", "Sun, 06-Nov-1994 08:49:37 GMT",
    "Sun, 06 Nov 1994 08.49.37 GMT", "Sun, 06 Nov 1994 8:49:37 GMT", "Sun, 32 Nov 1994 08:49:37 GMT",
    "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT", "Sun, 31 Feb 1994 08:49:37 GMT",
    "Sun Nov 6 08:49:37 1994", "Sun, 06 Nov 99999 08:49:37 GMT",
])
def test_http_date_invalid(value):
    assert parse_http_date(value) is None


def test_http_date_round_trip():
    assert parse_http_date(format_http_date(NOV6)) == NOV6


@pytest.mark.parametrize("age, expected", [
    ("30", 30.0), ("abc", 0.0), ("-7200", 0.0), ("7200.0", 0.0), ("0, 0", 0.0),
    ("7200, 0", 7200.0), ("7200,0", 7200.0), ("0, 7200", 0.0),  # a list: its first member (§5.1)
    ("7200;foo=bar", 0.0), (" 30 ", 30.0),
    ("99999999999999", float(MAX_DELTA)),
])
def test_age_values(age, expected):
    # Date == response time, no delay: corrected initial age is the Age value when valid
    assert initial_age(age, 1000.0, 1000.0, 1000.0) == expected


def test_corrected_initial_age_uses_apparent_age_and_delay():
    # apparent age (response_time - Date) = 20; Age 5 + response delay 2 = 7 -> 20
    assert initial_age("5", 980.0, 998.0, 1000.0) == 20.0
    assert initial_age("50", 1000.0, 998.0, 1000.0) == 52.0
