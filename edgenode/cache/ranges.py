"""Byte ranges served from a stored full response (RFC 9110 §14).

A Range field we cannot or will not honour (malformed, other unit, too many or
overlapping ranges) is ignored, which RFC 9110 §14.2 allows: the client gets the 200.
"""

from __future__ import annotations

import os

__all__ = ["parse_range", "UNSATISFIABLE", "MAX_RANGES", "multipart"]

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


def multipart(ranges: list[tuple[int, int]], body: bytes, content_type: str | None) -> tuple[bytes, str]:
    """A multipart/byteranges body and its Content-Type."""
    boundary = os.urandom(12).hex()
    length = len(body)
    chunks = []
    for first, last in ranges:
        head = f"\r\n--{boundary}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        head += f"Content-Range: bytes {first}-{last}/{length}\r\n\r\n"
        chunks.append(head.encode("latin-1"))
        chunks.append(body[first:last + 1])
    chunks.append(f"\r\n--{boundary}--\r\n".encode("latin-1"))
    return b"".join(chunks), f"multipart/byteranges; boundary={boundary}"
