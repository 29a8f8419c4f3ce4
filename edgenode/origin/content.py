"""Deterministic object content and validators for the simulated origin (no I/O).

Every byte is a function of (name, version, offset), so a test or a benchmark can
predict a body, its ETag and its Last-Modified without talking to the origin, and a
body of any size can be produced piece by piece (/stream never holds it whole).
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
from email.utils import formatdate, parsedate_to_datetime
from functools import lru_cache

__all__ = [
    "parse_size", "object_body", "object_etag", "object_digest", "last_modified", "body_chunks",
    "etag_matches", "not_modified_since", "http_date", "BLOCK",
]

#: the repeating unit of every body; large enough that repeats are not obvious
BLOCK = 16384
#: printable filler, so ``curl`` output stays readable
_ALPHABET = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_\n"
_TABLE = bytes(_ALPHABET[i % len(_ALPHABET)] for i in range(256))
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)i?b?\s*$", re.I)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
#: Last-Modified of every object falls in the 1000 days after this (2024-01-01)
_EPOCH = 1704067200


def parse_size(text: str | None, default: int, limit: int) -> int:
    """``1024``, ``1k``, ``100k``, ``1m``, ``1g`` (binary units) -> bytes; ValueError if bad."""
    if text is None or text == "":
        return default
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"size: expected a number with optional k/m/g suffix, got {text!r}")
    size = int(m.group(1)) * _UNITS[m.group(2).lower()]
    if size > limit:
        raise ValueError(f"size: {size} exceeds the limit of {limit} bytes")
    return size


@lru_cache(maxsize=512)
def _block(name: str, version: str) -> bytes:
    seed = int.from_bytes(hashlib.sha256(f"{name}\0{version}".encode()).digest()[:8], "big")
    return random.Random(seed).randbytes(BLOCK).translate(_TABLE)


def object_body(name: str, size: int, version: str = "1") -> bytes:
    """The whole body of ``name`` at ``size`` bytes (materialised: keep sizes modest)."""
    block = _block(name, version)
    if size <= BLOCK:
        return block[:size]
    reps, rest = divmod(size, BLOCK)
    return block * reps + block[:rest]


def body_chunks(name: str, size: int, chunk: int, version: str = "1"):
    """Yield the same bytes as ``object_body`` in pieces of ``chunk`` bytes (lazily)."""
    block = _block(name, version)
    doubled = block + block
    offset = 0
    while offset < size:
        n = min(chunk, size - offset)
        start = offset % BLOCK
        if start + n <= len(doubled):
            yield doubled[start:start + n]
        else:
            yield _slice(block, start, n)
        offset += n


def _slice(block: bytes, start: int, n: int) -> bytes:
    """``n`` bytes of the endless repetition of ``block`` from ``start``."""
    out = bytearray()
    while len(out) < n:
        take = min(n - len(out), BLOCK - start)
        out += block[start:start + take]
        start = 0
    return bytes(out)


@lru_cache(maxsize=4096)
def object_etag(name: str, size: int, version: str = "1") -> str:
    """Strong ETag: hash of the body and the version (hashed once per object)."""
    h = hashlib.sha1()
    for piece in body_chunks(name, size, 1 << 20, version):
        h.update(piece)
    h.update(version.encode())
    return f'"{h.hexdigest()[:20]}"'


@lru_cache(maxsize=4096)
def object_digest(name: str, size: int, version: str = "1") -> str:
    """RFC 9530 ``Repr-Digest`` value of the body: ``sha-256=:<base64>:``, so a client can
    check every byte it got (through any number of caches) against the origin's."""
    h = hashlib.sha256()
    for piece in body_chunks(name, size, 1 << 20, version):
        h.update(piece)
    return f"sha-256=:{base64.b64encode(h.digest()).decode()}:"


def last_modified(name: str) -> int:
    """A stable per-name Last-Modified (epoch seconds), in the past."""
    digest = hashlib.sha256(name.encode()).digest()
    return _EPOCH + int.from_bytes(digest[:4], "big") % (1000 * 86400)


def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison of an If-None-Match list against ``etag``."""
    value = if_none_match.strip()
    if value == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in value.split(","))


def not_modified_since(if_modified_since: str, modified: int) -> bool:
    """True when the resource has not changed since the client's date (bad dates: False)."""
    try:
        since = parsedate_to_datetime(if_modified_since).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    return modified <= since
