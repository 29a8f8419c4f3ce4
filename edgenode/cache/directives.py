"""Parsing of the caching header fields: Cache-Control directives and HTTP dates.

Parsed once when a response is stored (and for requests only when they carry a
Cache-Control field), so the hit path never re-parses them.
"""

from __future__ import annotations

import re
import time
from datetime import date
from typing import Iterable

from edgenode.cache._dates import http_date

__all__ = ["CC_MEMO", "parse_cache_control", "parse_targeted", "delta_seconds", "field_names", "parse_http_date",
           "format_http_date", "split_list"]

#: RFC 9111 §1.2.2: delta-seconds beyond this are treated as this value.
MAX_DELTA = 2147483648

#: RFC 9111 §5.2: ``token [ "=" ( token / quoted-string ) ]``; no whitespace around "="
#: (cache-tests: ``max-age =100`` and ``max-age= 100`` must be ignored, not read as 100).
_DIRECTIVE = re.compile(r'\s*([^\s=,"]+)(?:=("(?:[^"\\]|\\.)*"|[^\s,"]*))?\s*(?:,|$)')


#: parsed Cache-Control values kept per process (origins repeat a handful; a miss parses
#: each several times); cleared when full.  Read-only elsewhere: the cache stage's C
#: decision (``policy.usual_stored``) takes a response's directives from it
MEMO_SIZE = 1024
CC_MEMO: dict[tuple[str, ...], dict[str, str | None]] = {}


def parse_cache_control(values: Iterable[str]) -> dict[str, str | None]:
    """Directives of all Cache-Control field lines: lowercase name -> argument or None.

    A quoted argument is unquoted.  When a directive repeats, the first one wins
    (RFC 9111 leaves duplicates undefined; conflicting freshness directives then
    make ``delta_seconds`` see one consistent value).  Each caller gets its own dict.
    """
    lines = tuple(values)
    parsed = CC_MEMO.get(lines)
    if parsed is None:
        if len(CC_MEMO) >= MEMO_SIZE:
            CC_MEMO.clear()
        parsed = CC_MEMO[lines] = _parse_cache_control(lines)
    return dict(parsed)


def _parse_cache_control(values: tuple[str, ...]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for value in values:
        pos = 0
        n = len(value)
        while pos < n:
            m = _DIRECTIVE.match(value, pos)
            if m is None or m.end() == pos:
                # garbage up to the next comma: skip it, keep the rest
                comma = value.find(",", pos)
                if comma < 0:
                    break
                pos = comma + 1
                continue
            pos = m.end()
            name = m.group(1).lower()
            arg = m.group(2)
            if arg is not None:
                if arg.startswith('"') and arg.endswith('"') and len(arg) >= 2:
                    arg = re.sub(r"\\(.)", r"\1", arg[1:-1])
            out.setdefault(name, arg)
    return out


#: RFC 8941 Dictionary member: key [ "=" bare-item ] *( ";" parameter ), bare items reduced
#: to the ones cache directives use (integer, string, token, boolean; decimals are parsed
#: so that they can be rejected as the wrong type).
_SF_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_SF_ITEM = re.compile(r'(-?\d{1,15}(?:\.\d{1,3})?)|"((?:[^"\\\x00-\x1f\x7f]|\\["\\])*)"|'
                      r"([A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*)|\?([01])")
_SF_PARAM = re.compile(r';\s*[a-z*][a-z0-9_\-.*]*(?:=(?:-?\d{1,15}(?:\.\d{1,3})?|"(?:[^"\\]|\\.)*"|'
                       r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*|\?[01]))?")


def parse_targeted(values: Iterable[str]) -> dict[str, str | None] | None:
    """A targeted cache-control field (RFC 9213 CDN-Cache-Control): an RFC 8941 Dictionary.

    Same shape as ``parse_cache_control``; None when the field is not a valid Dictionary
    (the cache then falls back to Cache-Control, RFC 9213 §2.1).  An integer or string
    member becomes its text; a value of the wrong type for a delta-seconds directive
    (decimal, string) is kept as text that ``delta_seconds`` rejects, so it makes the
    response stale rather than fresh.  Later duplicates win, as RFC 8941 dictionaries say.
    """
    text = ",".join(values)
    out: dict[str, str | None] = {}
    pos, n = 0, len(text)
    while pos < n and text[pos] in " \t":
        pos += 1
    while pos < n:
        m = _SF_KEY.match(text, pos)
        if m is None:
            return None
        key, pos = m.group(), m.end()
        value: str | None = None
        if pos < n and text[pos] == "=":
            item = _SF_ITEM.match(text, pos + 1)
            if item is None:
                return None
            number, string, token, boolean = item.groups()
            if number is not None:
                value = number if "." not in number else "decimal:" + number
            elif string is not None:
                value = ("string:" if key in _DELTA_DIRECTIVES else "") + re.sub(r"\\(.)", r"\1", string)
            elif token is not None:
                value = token
            elif boolean == "0":
                value = "false"
            pos = item.end()
        while True:
            param = _SF_PARAM.match(text, pos)
            if param is None:
                break
            pos = param.end()
        if value != "false":
            out[key] = value
        else:
            out.pop(key, None)
        while pos < n and text[pos] in " \t":
            pos += 1
        if pos == n:
            break
        if text[pos] != ",":
            return None
        pos += 1
        while pos < n and text[pos] in " \t":
            pos += 1
        if pos == n:
            return None  # trailing comma
    return out


_DELTA_DIRECTIVES = frozenset({"max-age", "s-maxage", "stale-while-revalidate", "stale-if-error",
                               "max-stale", "min-fresh"})


def delta_seconds(arg: str | None) -> int | None:
    """A delta-seconds argument as int; None when absent or malformed (RFC 9111 §1.2.2:
    ASCII digits only, so neither ``int``'s other digits nor the superscripts ``isdigit``
    accepts and ``int`` refuses)."""
    if arg is None or not (arg.isascii() and arg.isdigit()):
        return None
    return min(int(arg), MAX_DELTA)


def field_names(arg: str | None) -> list[str]:
    """The field-name list of ``private="a, b"`` / ``no-cache="a"`` (lowercase)."""
    if not arg:
        return []
    return [n.strip().lower() for n in arg.split(",") if n.strip()]


def split_list(values: Iterable[str]) -> list[str]:
    """Members of a comma-separated list field over all its field lines."""
    return [m.strip() for v in values for m in v.split(",") if m.strip()]


_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
# RFC 9110 §5.6.7 grammar: single spaces, fixed field widths (cache-tests reject
# "18  Aug  2050" and "2:01:18"); letter case is not enforced (cache-tests "should" accept it).
# IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
_IMF = re.compile(r"^\s*[a-z]{3}, (\d{2}) ([a-z]{3}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT\s*$", re.I)
# obsolete RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
_RFC850 = re.compile(r"^\s*[a-z]{6,9}, (\d{2})-([a-z]{3})-(\d{2}) (\d\d):(\d\d):(\d\d) GMT\s*$", re.I)
# asctime: Sun Nov  6 08:49:37 1994
_ASCTIME = re.compile(r"^\s*[a-z]{3} ([a-z]{3}) ( \d|\d\d) (\d\d):(\d\d):(\d\d) (\d{4})\s*$", re.I)


def parse_http_date(value: str | None) -> float | None:
    """Seconds since the epoch for the three HTTP-date formats (RFC 9110 §5.6.7); None if invalid.

    Read in C (``_dates.http_date``: ~0.1 µs, where the expressions below took ~5; every
    new object's Last-Modified is a new value, so a memo never helped there); a str
    beyond Latin-1 (never one read from the wire) goes to the expressions.
    """
    if not value:
        return None
    try:
        return http_date(value)
    except ValueError:
        return _parse_http_date(value)


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def rfc850_year(yy: int, this_year: int) -> int:
    """The year of an rfc850-date's two digits (RFC 9110 §5.6.7): one that would be more
    than 50 years in the future is the most recent past year with the same last two."""
    year = this_year - this_year % 100 + yy
    if year > this_year + 50:
        return year - 100
    if year + 100 <= this_year + 50:
        return year + 100
    return year


def _parse_http_date(value: str) -> float | None:
    """``parse_http_date`` by the expressions (for any str; ``http_date`` is held to it)."""
    try:
        m = _IMF.match(value)
        if m:
            day, mon, year, hh, mm, ss = m.groups()
        else:
            m = _RFC850.match(value)
            if m:
                day, mon, yy, hh, mm, ss = m.groups()
                year = str(rfc850_year(int(yy), time.gmtime().tm_year))
            else:
                m = _ASCTIME.match(value)
                if not m:
                    return None
                mon, day, hh, mm, ss, year = m.groups()
        month = _MONTHS.get(mon.lower())
        if month is None:
            return None
        h, mi, s = int(hh), int(mm), int(ss)
        if not (h < 24 and mi < 60 and s <= 60):
            return None
        # date() refuses a day its month lacks (and year 0)
        days = date(int(year), month, int(day)).toordinal() - _EPOCH_ORDINAL
        return float(days * 86400 + h * 3600 + mi * 60 + s)
    except (ValueError, OverflowError):
        return None


_WD = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_http_date(ts: float) -> str:
    """IMF-fixdate for a Date field we have to add."""
    t = time.gmtime(ts)
    return (f"{_WD[t.tm_wday]}, {t.tm_mday:02d} {_MN[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")
