"""Byte ranges (RFC 9110 §14) and incomplete stored responses (RFC 9111 §3.3-3.4).

A Range field we cannot or will not honour (malformed, other unit, too many or
overlapping ranges) is ignored, which RFC 9110 §14.2 allows: the client gets the 200.

An incomplete stored response keeps the bytes of one or more spans of the representation
(``Partial``): the body holds them one after the other.  It answers only ranges lying
wholly inside its spans; spans of 206 responses for the same representation are combined,
and once they cover every byte the response is complete.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

__all__ = ["parse_range", "UNSATISFIABLE", "MAX_RANGES", "multipart", "Partial", "parse_content_range",
           "covers", "extract", "combine", "gaps"]

MAX_RANGES = 16
UNSATISFIABLE: list[tuple[int, int]] = []
_MAX_DIGITS = 18


def parse_range(value: str, length: int) -> list[tuple[int, int]] | None:
    """Inclusive (first, last) pairs; None = ignore the field; UNSATISFIABLE (empty) = 416."""
    unit, sep, spec = value.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    parts = spec.split(",")
    if len(parts) > MAX_RANGES:
        return None
    out: list[tuple[int, int]] = []
    for part in parts:
        part = part.strip()
        first_s, dash, last_s = part.partition("-")
        first_s, last_s = first_s.strip(), last_s.strip()
        if not dash or len(first_s) > _MAX_DIGITS or len(last_s) > _MAX_DIGITS:
            return None
        if first_s:
            if not first_s.isdigit() or (last_s and not last_s.isdigit()):
                return None
            first = int(first_s)
            if last_s and int(last_s) < first:
                return None
            if first < length:
                out.append((first, min(int(last_s), length - 1) if last_s else length - 1))
        else:
            if not last_s.isdigit():
                return None
            suffix = int(last_s)
            if suffix > 0 and length > 0:
                out.append((max(0, length - suffix), length - 1))
    if len(out) > 1:
        ordered = sorted(out)
        if any(b[0] <= a[1] for a, b in zip(ordered, ordered[1:])):
            return None  # overlapping ranges: serve the whole thing instead
    return out


class Partial(NamedTuple):
    """The shape of an incomplete stored response's body."""

    #: the complete representation's length (Content-Range ``complete-length``)
    length: int
    #: inclusive ``(first, last)`` byte positions held, sorted, disjoint and not adjacent;
    #: the body is their bytes in this order
    spans: tuple[tuple[int, int], ...]


_CONTENT_RANGE = re.compile(r"\s*bytes\s+(\d{1,18})-(\d{1,18})/(\d{1,18})\s*", re.I)


def parse_content_range(value: str | None) -> tuple[int, int, int] | None:
    """``(first, last, complete_length)`` of a single-part 206 (RFC 9110 §14.4); None when
    absent, malformed, unsatisfied (``*/len``) or of unknown complete length (``/*``)."""
    if not value:
        return None
    m = _CONTENT_RANGE.fullmatch(value)
    if m is None:
        return None
    first, last, length = (int(g) for g in m.groups())
    return (first, last, length) if first <= last < length else None


def covers(partial: Partial, ranges: list[tuple[int, int]]) -> bool:
    """Whether every range lies wholly inside one span we hold (RFC 9111 §3.3)."""
    return bool(ranges) and all(
        any(a <= first and last <= b for a, b in partial.spans) for first, last in ranges)


def extract(body: bytes, partial: Partial | None, first: int, last: int) -> bytes:
    """The bytes ``first..last`` of the representation (held, see ``covers``)."""
    if partial is None:
        return body[first:last + 1]
    offset = 0
    for a, b in partial.spans:
        if a <= first and last <= b:
            return body[offset + first - a:offset + last - a + 1]
        offset += b - a + 1
    raise ValueError(f"bytes {first}-{last} are not held")


def combine(partial: Partial, body: bytes, span: tuple[int, int], data: bytes
            ) -> tuple[tuple[tuple[int, int], ...], bytes]:
    """Add ``data`` (the bytes of ``span``) to an incomplete response: the new spans and body.

    The caller has checked that both describe the same representation (RFC 9111 §3.4), so
    overlapping bytes are equal; the newer ones are kept.
    """
    pieces: list[tuple[int, int, bytes]] = []
    offset = 0
    for a, b in partial.spans:
        pieces.append((a, b, body[offset:offset + b - a + 1]))
        offset += b - a + 1
    pieces.append((span[0], span[1], data))
    pieces.sort(key=lambda p: (p[0], -p[1]))
    merged: list[tuple[int, int, bytes]] = []
    for a, b, chunk in pieces:
        if merged and a <= merged[-1][1] + 1:
            ma, mb, mchunk = merged[-1]
            if b > mb:
                merged[-1] = (ma, b, mchunk[:a - ma] + chunk)
            continue
        merged.append((a, b, chunk))
    return tuple((a, b) for a, b, _ in merged), b"".join(c for _, _, c in merged)


def gaps(partial: Partial) -> list[tuple[int, int]]:
    """The inclusive byte spans of the representation we do not hold."""
    out = []
    pos = 0
    for a, b in partial.spans:
        if a > pos:
            out.append((pos, a - 1))
        pos = b + 1
    if pos < partial.length:
        out.append((pos, partial.length - 1))
    return out


def multipart(ranges: list[tuple[int, int]], parts: list[bytes], length: int,
              content_type: str | None) -> tuple[bytes, str]:
    """A multipart/byteranges body (``parts`` are the bytes of ``ranges``) and its Content-Type."""
    boundary = os.urandom(12).hex()
    chunks = []
    for (first, last), part in zip(ranges, parts):
        head = f"\r\n--{boundary}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        head += f"Content-Range: bytes {first}-{last}/{length}\r\n\r\n"
        chunks.append(head.encode("latin-1"))
        chunks.append(part)
    chunks.append(f"\r\n--{boundary}--\r\n".encode("latin-1"))
    return b"".join(chunks), f"multipart/byteranges; boundary={boundary}"
