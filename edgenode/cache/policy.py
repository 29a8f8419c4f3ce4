"""Sans-IO RFC 9111 shared-cache decisions: storability, freshness, age, reuse.

Nothing here reads a clock or touches a socket: times come in as ``now`` and
friends.  Everything derived from the response's caching fields is computed once,
when the response is stored, and kept on the ``Entry`` so that a hit is a few float
comparisons (the hit path budget is tens of microseconds).
"""

from __future__ import annotations

from typing import Mapping
from urllib.parse import urljoin, urlsplit

from multidict import CIMultiDict, CIMultiDictProxy

from edgenode.cache._dates import freshness_facts
from edgenode.cache._entry import UsualEntry
from edgenode.cache.directives import (
    delta_seconds, field_names, format_http_date, parse_cache_control, parse_http_date, parse_targeted,
    split_list,
)
from edgenode.cache.ranges import Partial, parse_content_range
from edgenode.cache.vary import normalise_field, prefers_language
from edgenode.http._fields import field_block, lower_names

__all__ = [
    "HEURISTIC_STATUSES", "Entry", "storability", "freshness_lifetime", "initial_age",
    "build_entry", "normalise_field", "request_directives", "evaluate", "refresh_entry",
    "FRESH", "STALE_OK", "STALE_SWR", "REVALIDATE", "HOP_BY_HOP", "invalidation_targets",
    "variant_signature", "response_directives", "explicit_freshness", "usual_stored",
]

#: RFC 9110 §15.1: statuses whose responses may get a heuristic freshness lifetime.
HEURISTIC_STATUSES = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
#: statuses whose caching requirements we implement (for must-understand).
UNDERSTOOD_STATUSES = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer",
                        "transfer-encoding", "upgrade", "proxy-authenticate", "proxy-authorization"})
#: never stored: recomputed (age, length), ours (cache-status of this node is not stored),
#: or surrogate-only fields that must not reach clients.
_NOT_STORED = HOP_BY_HOP | {"age", "content-length", "surrogate-key", "surrogate-control"}
#: RFC 9111 §3.2: a 304 updates every stored field except these (Content-Length among them).
#: Set-Cookie too: we never share a personalised cookie (docs/caching.md), so one arriving
#: on a 304 goes only to the client whose request was revalidated (the stage adds it).
_NOT_REFRESHED = _NOT_STORED | {"set-cookie", "set-cookie2"}

#: the stored field the wire block leaves out (``_prepare_hits``)
_OWN_LENGTH = frozenset({"content-length"})

Headers = CIMultiDict[str] | CIMultiDictProxy[str]
#: header fields as plain (name, value) pairs, in order
Fields = list[tuple[str, str]]


def response_directives(resp_headers: Headers, surrogate: tuple[str, ...] | None = None
                        ) -> tuple[dict[str, str | None], bool]:
    """The directives this cache obeys and whether they came from a targeted field.

    RFC 9213 §2.1: the first valid, non-empty field of our target list (CDN-Cache-Control,
    then Surrogate-Control, which Fastly and Akamai honour the same way) replaces
    Cache-Control and Expires for our own decisions; clients still get Cache-Control.
    ``surrogate`` gives the Surrogate-Control values when they are not in ``resp_headers``
    (a stored entry keeps them aside: they never go to clients).
    """
    cdn = resp_headers.getall("cdn-cache-control", ())
    if cdn:
        targeted = parse_targeted(cdn)
        if targeted:
            return targeted, True
    sc = surrogate if surrogate is not None else resp_headers.getall("surrogate-control", ())
    if sc:
        targeted = parse_cache_control(sc)
        if targeted:
            return targeted, True
    return parse_cache_control(resp_headers.getall("cache-control", ())), False


def _auth_allowed(cc: Mapping[str, str | None]) -> bool:
    """RFC 9111 §3.5: directives that let a shared cache reuse a response to an authorised request."""
    return "public" in cc or "s-maxage" in cc or "must-revalidate" in cc


def explicit_freshness(resp_headers: Headers, cc: Mapping[str, str | None], targeted: bool) -> bool:
    """RFC 9111 §4.2.1: an explicit expiration time (s-maxage, max-age or Expires)."""
    return "s-maxage" in cc or "max-age" in cc or ("expires" in resp_headers and not targeted)


def storability(method: str, req_headers: Headers, req_cc: Mapping[str, str | None],
                status: int, resp_headers: Headers, resp_cc: Mapping[str, str | None],
                targeted: bool = False, names_target: bool = False) -> str | None:
    """None when a shared cache may store the response (RFC 9111 §3), else the reason why not.

    ``targeted``: ``resp_cc`` came from a targeted field, so Expires is ignored (RFC 9213).
    ``names_target``: the response's Content-Location is the request's target URI, which
    with explicit freshness makes a POST response reusable for later GETs (RFC 9110 §9.3.3).
    """
    if method != "GET" and not (method == "POST" and names_target
                                and explicit_freshness(resp_headers, resp_cc, targeted)):
        return "method"
    if status < 200 or status == 304:
        return "status"
    if status == 206 and parse_content_range(resp_headers.get("content-range")) is None:
        return "content-range"  # several parts, or no complete length: nothing to combine
    if "no-store" in req_cc:
        return "request-no-store"
    if "must-understand" in resp_cc:
        if status not in UNDERSTOOD_STATUSES:
            return "must-understand"
    elif "no-store" in resp_cc:
        return "no-store"
    if "private" in resp_cc and not resp_cc["private"]:
        return "private"
    if "authorization" in req_headers and not _auth_allowed(resp_cc):
        return "authorization"
    if "set-cookie" in resp_headers:
        return "set-cookie"
    if "vary" in resp_headers and "*" in split_list(resp_headers.getall("vary")):
        return "vary-star"
    if not ("public" in resp_cc or ("expires" in resp_headers and not targeted) or "max-age" in resp_cc
            or "s-maxage" in resp_cc or status in HEURISTIC_STATUSES):
        return "no-freshness-info"
    return None


def freshness_lifetime(status: int, resp_headers: Headers, cc: Mapping[str, str | None],
                       date: float, heuristic_fraction: float, heuristic_max: float,
                       default_ttl: float = 0.0, targeted: bool = False) -> float:
    """RFC 9111 §4.2.1 (shared cache): s-maxage, max-age, Expires - Date, then heuristics.

    A malformed explicit value makes the response stale (lifetime 0), as §4.2.1 advises.
    """
    if "s-maxage" in cc:
        return float(delta_seconds(cc["s-maxage"]) or 0)
    if "max-age" in cc:
        return float(delta_seconds(cc["max-age"]) or 0)
    if "expires" in resp_headers and not targeted:
        expires = parse_http_date(resp_headers.get("expires"))
        return max(0.0, expires - date) if expires is not None else 0.0
    if status in HEURISTIC_STATUSES or "public" in cc:
        last_modified = parse_http_date(resp_headers.get("last-modified"))
        if last_modified is not None:
            return min(heuristic_max, max(0.0, (date - last_modified) * heuristic_fraction))
        return default_ttl
    return 0.0


def initial_age(age_header: str | None, date: float, request_time: float, response_time: float) -> float:
    """RFC 9111 §4.2.3 corrected_initial_age.

    ``age_header`` is the first Age field line.  A list value counts by its first member
    and an invalid one is ignored (RFC 9111 §5.1).
    """
    age_value = float(delta_seconds(age_header.split(",", 1)[0].strip()) or 0) if age_header else 0.0
    apparent_age = max(0.0, response_time - date)
    response_delay = response_time - request_time
    return max(apparent_age, age_value + response_delay)


class Entry:
    """A stored response with its caching facts precomputed."""

    __slots__ = (
        "key", "url", "variant", "status", "reason", "headers", "body", "size",
        "request_time", "response_time", "date", "age0", "lifetime", "fresh_until",
        "swr", "sie", "no_stale", "no_cache", "auth_ok", "etag", "last_modified",
        "last_modified_ts", "vary", "vary_values", "surrogate_keys", "surrogate_control",
        "proto", "wire", "trailers", "hit", "partial",
    )

    def age(self, now: float) -> float:
        return self.age0 + (now - self.response_time)

    def ttl(self, now: float) -> float:
        """Remaining freshness in seconds; negative once stale."""
        return self.fresh_until - now

    def vary_matches(self, req_headers: Headers) -> bool:
        """RFC 9111 §4.1: every nominated request field matches the stored request's
        (normalised, see ``cache.vary``)."""
        for name, value in zip(self.vary, self.vary_values):
            values = req_headers.getall(name, [])
            if normalise_field(values, name) != value and not (
                    name == "accept-language"
                    and prefers_language(values, self.proto.get("content-language"))):
                return False
        return True

    def stale_on_error(self, now: float, unreachable: float = 0.0) -> bool:
        """Whether an origin failure lets this stale response be served: within the
        stale-if-error window (RFC 5861 §4), or within ``unreachable`` seconds when the
        origin could not be reached at all (RFC 9111 §4.2.4), unless a directive forbids
        serving it stale."""
        window = max(self.sie, unreachable)
        return (window > 0 and not (self.no_stale or self.no_cache)
                and now - self.fresh_until <= window)

    def make_stale(self, now: float) -> None:
        """Soft purge: stale from now on, so stale-while-revalidate/-if-error still apply."""
        self.fresh_until = min(self.fresh_until, now)


#: ``build_entry`` of the usual response in one C call (None: not usual, ``_build_entry``'s)
usual_entry = UsualEntry(Entry, CIMultiDict, HEURISTIC_STATUSES)
#: the cache stage's decision to store a GET's usual response and its entry, in one C call
#: (None: the stage's Python decides): ``(key, url, status, reason, pairs, body, memo,
#: max_bytes, request_time, response_time, heuristic_fraction, heuristic_max,
#: default_ttl)``, ``memo`` the parsed Cache-Control values (``directives.CC_MEMO``)
usual_stored = usual_entry.stored


def variant_signature(vary: tuple[str, ...], req_headers: Headers) -> tuple[tuple[str | None, ...], str]:
    if not vary:
        return (), ""
    values = tuple(normalise_field(req_headers.getall(n, []), n) for n in vary)
    return values, "\x00".join(f"{n}={v}" for n, v in zip(vary, values))


def _not_stored(resp_headers: Headers, cc: Mapping[str, str | None], targeted: bool) -> frozenset[str]:
    """The lower-case names not stored but the ones ``Connection`` names (``_connected``):
    ``_NOT_STORED`` and those of private="f" / no-cache="f" (a shared cache may store the
    response without them; the ones Cache-Control names are dropped even when a
    targeted field rules freshness)."""
    extra: set[str] = set()
    plain = parse_cache_control(resp_headers.getall("cache-control", ())) if targeted else cc
    for directives in (cc, plain):
        if "private" in directives:
            extra.update(field_names(directives["private"]))
        if "no-cache" in directives:
            extra.update(field_names(directives["no-cache"]))
    return _NOT_STORED | extra if extra else _NOT_STORED


def _connected(resp_headers: Headers) -> set[str]:
    """The lower-case names the response's ``Connection`` fields list (hop-by-hop)."""
    return {token.lower() for token in split_list(resp_headers.getall("connection"))}


def _set_facts(e: Entry, status: int, fields: Fields, cc: dict[str, str | None],
               targeted: bool, age: str | None, request_time: float, response_time: float,
               heuristic_fraction: float, heuristic_max: float, default_ttl: float) -> str | None:
    """Compute the freshness facts from the stored fields (plain pairs); the Date value to
    add when the response had none.  One C call (``_dates.freshness_facts``); ``_facts``
    when it leaves the fields to Python (a name or an Age beyond ASCII)."""
    try:
        facts = freshness_facts(fields, cc, targeted, status in HEURISTIC_STATUSES, age, request_time,
                                response_time, heuristic_fraction, heuristic_max, default_ttl)
    except ValueError:
        facts = _facts(status, CIMultiDict(fields), cc, targeted, age, request_time, response_time,
                       heuristic_fraction, heuristic_max, default_ttl)
    (e.date, e.age0, e.lifetime, e.fresh_until, e.swr, e.sie, e.no_stale, e.no_cache, e.auth_ok,
     e.etag, e.last_modified, e.last_modified_ts, dated) = facts
    e.request_time = request_time
    e.response_time = response_time
    return None if dated else format_http_date(response_time)


def _facts(status: int, fields: Headers, cc: Mapping[str, str | None], targeted: bool,
           age: str | None, request_time: float, response_time: float, heuristic_fraction: float,
           heuristic_max: float, default_ttl: float) -> tuple[object, ...]:
    """``_dates.freshness_facts`` in Python (its reference, and the reading of what it
    leaves alone): ``(date, age0, lifetime, fresh_until, swr, sie, no_stale, no_cache,
    auth_ok, etag, last_modified, last_modified_ts, dated)``."""
    date = parse_http_date(fields.get("date"))
    dated = date is not None
    if date is None:
        date = response_time
    age0 = initial_age(age, date, request_time, response_time)
    lifetime = freshness_lifetime(status, fields, cc, date, heuristic_fraction,
                                  heuristic_max, default_ttl, targeted)
    swr, sie = cc.get("stale-while-revalidate"), cc.get("stale-if-error")
    last_modified = fields.get("last-modified")
    return (date, age0, lifetime, response_time + lifetime - age0,
            float(delta_seconds(swr) or 0) if swr is not None else 0.0,
            float(delta_seconds(sie) or 0) if sie is not None else 0.0,
            "must-revalidate" in cc or "proxy-revalidate" in cc or "s-maxage" in cc,
            "no-cache" in cc and not cc["no-cache"], _auth_allowed(cc),
            fields.get("etag"), last_modified, parse_http_date(last_modified), dated)


def build_entry(*, key: str, url: str, status: int, reason: str, resp_headers: Headers, body: bytes,
                req_headers: Headers, request_time: float, response_time: float,
                heuristic_fraction: float, heuristic_max: float, default_ttl: float = 0.0,
                trailers: Headers | None = None, partial: Partial | None = None,
                fields: Fields | None = None,
                directives: tuple[dict[str, str | None], bool] | None = None) -> Entry:
    """Turn a storable response into an Entry (parsing its caching fields once).

    ``fields``: ``resp_headers`` as plain ``str`` pairs, when the caller has them
    (``Response.fields``): the stored list, the wire block and the size come from the
    pairs, whose names are cheap to lower, join and marshal (a multidict's are ``istr``,
    dear one by one); the lookups go to the multidicts, where they are single C calls.
    The stored multidict (the hits' ``proto``) is built once.  ``trailers`` (the chunked response's
    trailer fields, RFC 9111 §3 lets a cache keep them) are stored as they are and
    replayed on full hits.  ``partial``: the entry is an incomplete response (status 206)
    holding those spans (``resp_headers`` without the 206's Content-Range: it is made per
    answer).  ``directives``: ``response_directives(resp_headers)``, when the caller
    has them (the cache stage's storability decision), so they are not parsed again.
    The usual response's entry is made in one C call (``usual_entry``); ``_build_entry``
    makes the others.
    """
    pairs: Fields = [(str(k), v) for k, v in resp_headers.items()] if fields is None else fields
    cc, targeted = directives if directives is not None else response_directives(resp_headers)
    if partial is None and not trailers:
        e = usual_entry(key, url, status, reason, pairs, body, cc, targeted, request_time, response_time,
                        heuristic_fraction, heuristic_max, default_ttl)
        if e is not None:
            return e
    return _build_entry(key, url, status, reason, resp_headers, body, req_headers, request_time,
                        response_time, heuristic_fraction, heuristic_max, default_ttl, trailers, partial,
                        pairs, cc, targeted)


def _build_entry(key: str, url: str, status: int, reason: str, resp_headers: Headers, body: bytes,
                 req_headers: Headers, request_time: float, response_time: float,
                 heuristic_fraction: float, heuristic_max: float, default_ttl: float,
                 trailers: Headers | None, partial: Partial | None, pairs: Fields,
                 cc: dict[str, str | None], targeted: bool) -> Entry:
    """``build_entry`` in Python: the reference ``usual_entry`` is held to, and the maker of
    every entry it leaves alone (Vary, Connection, a Date to add, trailers, a 206...)."""
    drop = _not_stored(resp_headers, cc, targeted)
    # the stored list, its wire block (None: not writable as it is) and its length, and
    # every lower-case name, in one C pass
    names: set[str] = set()
    stored, block, chars = field_block(pairs, drop, names)
    if "connection" in names:  # the fields it lists are not stored either (rare: a second pass)
        drop = drop | _connected(resp_headers)
        stored, block, chars = field_block(pairs, drop)
    kept = names - drop
    e = Entry()
    e.key, e.url, e.status, e.reason, e.body = key, url, status, reason, body
    e.partial = partial
    e.surrogate_control = tuple(resp_headers.getall("surrogate-control")) if "surrogate-control" in names else ()
    e.headers = stored
    if partial is None:
        length = str(len(body))
        stored.append(("Content-Length", length))
    proto = CIMultiDict(stored)
    added = _set_facts(e, status, stored, cc, targeted, resp_headers.get("age"), request_time, response_time,
                       heuristic_fraction, heuristic_max, default_ttl)
    if added is not None:
        stored.append(("Date", added))
        proto.add("Date", added)
        kept.add("date")
        line = f"Date: {added}\r\n"
        chars += len(line)
        if block is not None:
            block += line.encode("ascii")  # (an IMF-fixdate)
    if "vary" in names:
        e.vary = tuple(n.lower() for n in split_list(resp_headers.getall("vary")))
        e.vary_values, e.variant = variant_signature(e.vary, req_headers)
    else:
        e.vary, e.vary_values, e.variant = (), (), ""
    if "surrogate-key" in names:
        tags = resp_headers.getall("surrogate-key")
        e.surrogate_keys = (tuple(tags[0].split()) if len(tags) == 1
                            else tuple(k for v in tags for k in v.split()))
    else:
        e.surrogate_keys = ()
    e.trailers = CIMultiDict(trailers) if trailers else None
    # each field counted as its "name: value\r\n" line (Content-Length's is not in ``chars``)
    e.size = len(body) + chars + (len(length) + 18 if partial is None else 0) + len(key) + 200
    if e.trailers is not None:
        e.size += sum(len(k) + len(v) + 4 for k, v in e.trailers.items())
    _prepare_hits(e, proto, kept, block)
    return e


#: fields a hit adds or replaces (the stage), or that the front end frames itself; the
#: stored Content-Length is always ours, spelt so (``build_entry``: the origin's is not
#: stored), and is left out of the block
_NOT_PRESERIALISED = frozenset({"age", "x-cache", "transfer-encoding", "connection"})


def _prepare_hits(e: Entry, proto: CIMultiDict[str], names: set[str], block: bytes | None) -> None:
    """Per-entry work done once at store time instead of on every hit.

    ``proto`` (``e.headers`` as a multidict) is the header multidict a hit copies, ``names``
    its lower-case names, ``block`` its field lines but Content-Length's (``field_block``:
    None when one holds CR, LF or a character beyond Latin-1).
    ``wire`` is the header block as the front end would write it (see
    ``Response.wire_head``), or None when the stored fields cannot be sent as they are
    (they hold a field a hit rewrites, or bad characters): those hits take the general
    path.
    """
    e.proto = proto
    e.wire = None
    #: the cache stage's pre-serialised fresh hit (``Prebuilt``), reused while valid
    e.hit = None
    if e.partial is not None:
        return  # never a whole hit: only ranges inside what it holds
    if "date" not in names or not _NOT_PRESERIALISED.isdisjoint(names):
        return
    e.wire = block


def refresh_entry(e: Entry, resp_headers: Headers, request_time: float, response_time: float,
                  heuristic_fraction: float, heuristic_max: float, default_ttl: float = 0.0) -> None:
    """RFC 9111 §3.2/§4.3.4: update a stored response from a 304, then recompute its freshness."""
    incoming = [(str(k), v) for k, v in resp_headers.items() if k.lower() not in _NOT_REFRESHED]
    names = {k.lower() for k, _ in incoming}
    e.headers = [(k, v) for k, v in e.headers if k.lower() not in names] + incoming
    if "surrogate-control" in resp_headers:
        e.surrogate_control = tuple(resp_headers.getall("surrogate-control"))
    h = CIMultiDict(e.headers)
    cc, targeted = response_directives(h, e.surrogate_control)
    added = _set_facts(e, e.status, e.headers, cc, targeted, resp_headers.get("age"), request_time,
                       response_time, heuristic_fraction, heuristic_max, default_ttl)
    if added is not None:
        e.headers.append(("Date", added))
        h.add("Date", added)
    # (the stored Content-Length is always the node's own: left out of the block)
    _prepare_hits(e, h, lower_names(e.headers), field_block(e.headers, _OWN_LENGTH)[1])


def request_directives(req_headers: Headers) -> dict[str, str | None]:
    values = req_headers.getall("cache-control", ())
    return parse_cache_control(values) if values else {}


# evaluate() outcomes
FRESH = 0       # serve as is
STALE_OK = 1    # stale, but the client accepts it (max-stale)
STALE_SWR = 2   # serve stale now, refresh in the background
REVALIDATE = 3  # must go to the origin (conditionally when validators exist)


def evaluate(e: Entry, now: float, req_cc: Mapping[str, str | None]) -> tuple[int, bool]:
    """RFC 9111 §4.2 + RFC 5861 reuse decision: (outcome, forced_by_request).

    ``forced_by_request`` says the request's directives (no-cache, max-age, min-fresh)
    ruled out an otherwise fresh response (RFC 9211 ``fwd=request``).
    """
    ttl = e.fresh_until - now
    if req_cc:
        if "no-cache" in req_cc:
            return REVALIDATE, ttl > 0
        max_age = delta_seconds(req_cc.get("max-age"))
        if max_age is not None and e.age(now) > max_age:
            return REVALIDATE, ttl > 0
        min_fresh = delta_seconds(req_cc.get("min-fresh"))
        if min_fresh is not None and ttl < min_fresh:
            return REVALIDATE, ttl > 0
    if e.no_cache:
        return REVALIDATE, False
    if ttl > 0:
        return FRESH, False
    if e.no_stale:
        return REVALIDATE, False
    if req_cc and "max-stale" in req_cc:
        limit = req_cc["max-stale"]
        if limit is None or -ttl <= (delta_seconds(limit) or 0):
            return STALE_OK, False
    if e.swr > 0 and -ttl <= e.swr:
        return STALE_SWR, False
    return REVALIDATE, False


def invalidation_targets(request_url: str, resp_headers: Headers) -> list[str]:
    """RFC 9111 §4.4: the target URI plus Location/Content-Location on the same host."""
    out = [request_url]
    origin = urlsplit(request_url).netloc.lower()
    for name in ("location", "content-location"):
        value = resp_headers.get(name)
        if value:
            target = urljoin(request_url, value.strip())
            if urlsplit(target).netloc.lower() == origin:
                out.append(target)
    return out
