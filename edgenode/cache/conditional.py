"""Conditional requests against a stored response (RFC 9110 §13, RFC 9111 §4.3).

Four jobs: does a client's If-None-Match / If-Modified-Since let us answer 304 from
the cache; which validators we send when revalidating; does If-Range still match; is a
new partial response part of the same representation as a stored one (strong validators).
"""

from __future__ import annotations

from edgenode.cache.directives import parse_http_date
from edgenode.cache.policy import Entry, Headers

__all__ = ["client_not_modified", "has_client_validators", "revalidation_headers", "if_range_matches",
           "not_modified_fields", "CLIENT_VALIDATORS", "strong_validator", "same_representation"]

#: request fields a cache answers itself on a hit (stripped when we fetch to store)
CLIENT_VALIDATORS = ("if-none-match", "if-modified-since")
#: RFC 9110 §15.4.5: fields a 304 carries when the 200 would have.
not_modified_fields = frozenset({"cache-control", "content-location", "date", "etag", "expires",
                                 "vary", "last-modified", "cache-status"})


def has_client_validators(req_headers: Headers) -> bool:
    return "if-none-match" in req_headers or "if-modified-since" in req_headers


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith(("W/", "w/")) else tag


def client_not_modified(req_headers: Headers, entry: Entry) -> bool:
    """True when the client's condition says its copy is current (answer 304).

    If-None-Match uses weak comparison and wins over If-Modified-Since (RFC 9110 §13.2.2);
    If-Modified-Since compares with Last-Modified, else Date (RFC 9111 §4.3.2).
    """
    inm = req_headers.getall("if-none-match", ())
    if inm:
        if entry.etag is None:
            return any(v.strip() == "*" for v in inm)
        mine = _opaque(entry.etag)
        for value in inm:
            for tag in value.split(","):
                tag = tag.strip()
                if tag == "*" or (tag and _opaque(tag) == mine):
                    return True
        return False
    ims = parse_http_date(req_headers.get("if-modified-since"))
    if ims is None:
        return False
    modified = entry.last_modified_ts if entry.last_modified_ts is not None else entry.date
    return modified <= ims


def revalidation_headers(entry: Entry) -> list[tuple[str, str]]:
    """Validators to send to the origin for a stored response (RFC 9111 §4.3.1)."""
    out = []
    if entry.etag:
        out.append(("If-None-Match", entry.etag))
    if entry.last_modified:
        out.append(("If-Modified-Since", entry.last_modified))
    return out


def if_range_matches(value: str, entry: Entry) -> bool:
    """RFC 9110 §13.1.5: strong ETag equality, or an exact Last-Modified date."""
    value = value.strip()
    if value.startswith('"') or value.startswith("W/"):
        return (not value.startswith("W/") and entry.etag is not None
                and not entry.etag.startswith("W/") and entry.etag == value)
    when = parse_http_date(value)
    return when is not None and entry.last_modified_ts is not None and when == entry.last_modified_ts


def strong_validator(entry: Entry) -> str | None:
    """The entry's strong validator as an If-Range value (RFC 9110 §13.1.5), or None.

    A strong ETag; else a Last-Modified that a cache may treat as strong because the
    entry's Date is at least one second later (RFC 9110 §8.8.2.2).
    """
    if entry.etag is not None:
        return None if entry.etag.startswith(("W/", "w/")) else entry.etag
    lm = entry.last_modified_ts
    if lm is not None and entry.date >= lm + 1:
        return entry.last_modified
    return None


def same_representation(entry: Entry, resp_headers: Headers) -> bool:
    """RFC 9111 §3.4: a new 206 may be combined with the stored one only when their strong
    validators match (no validators: never)."""
    mine = strong_validator(entry)
    if mine is None:
        return False
    if entry.etag is not None:
        return resp_headers.get("etag") == mine
    return "etag" not in resp_headers and resp_headers.get("last-modified") == mine
