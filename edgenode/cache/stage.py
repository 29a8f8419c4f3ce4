"""The cache as a chain stage: hits answered here, misses sent on through ``next``.

Policy lives in ``policy``/``conditional``/``ranges`` (sans-IO); this module does the
I/O around it: lookups, forwarding, collapsing concurrent misses, revalidation,
background stale-while-revalidate refreshes, the answers from a stored entry.  What
the origin sent is decided on, stored and answered from in ``storing`` (the base
``OriginStoring``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from time import perf_counter
from types import MappingProxyType
from typing import Any, Awaitable, Callable
from urllib.parse import urljoin

from multidict import CIMultiDict, getversion

from edgenode.cache import status
from edgenode.cache.collapse import Collapser, Flight
from edgenode.cache.conditional import (
    CLIENT_VALIDATORS, client_not_modified, has_client_validators, if_range_matches,
    not_modified_fields, revalidation_headers, strong_validator,
)
from edgenode.cache.key import KeyBuilder
from edgenode.cache.policy import (
    FRESH, STALE_OK, STALE_SWR, Entry, Headers, evaluate, invalidation_targets, refresh_entry,
    request_directives,
)
from edgenode.cache.ranges import covers, extract, gaps, multipart, parse_range
from edgenode.cache.store import CacheStore
from edgenode.cache.storing import Cc, OriginStoring, entry_answer, strip_surrogate
from edgenode.config import CacheConfig
from edgenode.http.headers import NOT_PLAIN
from edgenode.http.messages import (
    FROM_BODY, Prebuilt, PrebuiltResponse, RawRequest, Request, Response, close_body, made_response,
)
from edgenode.pipeline.exchange import DECLINED, Exchange, fields_plain
from edgenode.pipeline.chain import Next, Outcome
from edgenode.pipeline.stage import Handler, wrap_stage

__all__ = ["CacheStage"]

log = logging.getLogger("edgenode.cache")

#: request fields after which a hit is more than the stored answer (``hit_response``)
_NOT_PLAIN = frozenset(name.decode("ascii") for name in NOT_PLAIN)

#: the directives of a request holding none (a plain one's)
_NO_CC: Cc = MappingProxyType({})

_ORIGIN_ERRORS = frozenset({500, 502, 503, 504})
_STORE_STRIP = CLIENT_VALIDATORS + ("range", "if-range")


#: answers ``fast_hit`` keeps per (target, Host), at most, and the largest body kept there
#: (a kept answer holds its object until replaced or swept: at most ~32 MiB of them).  A
#: kept answer's span ends within a second of its making, so when the table is full the
#: ended ones are swept out at most once a second and until then no answer is added: many
#: objects hit in turn cost a failed look-up each, not a new ``_Kept`` per hit
_KEPT_ENTRIES = 256
_KEPT_BODY = 128 * 1024
#: how far inside its span a kept answer's clock must be (the span's ends are float sums)
_KEPT_MARGIN = 1e-5


class _Kept:
    """A fresh hit ``fast_hit`` hands out again: its key, the store's token for the key's
    object (``Store.fast_token``), the answer and its entry (whose ``hit`` a 304's update
    in place resets), and the clock span (``lo``, ``hi``) in which ``_fresh`` would stamp
    it with the same whole-second Age and ttl."""

    __slots__ = ("key", "token", "hit", "entry", "lo", "hi")

    def __init__(self, key: str, token: object, hit: Prebuilt, entry: Entry) -> None:
        self.key = key
        self.token = token
        self.hit = hit
        self.entry = entry
        age_s, ttl_s = hit.stamp[0], hit.stamp[1]
        base = entry.response_time - entry.age0  # age = now - base
        fresh_until = entry.fresh_until  # ttl = fresh_until - now
        # int(age) stays age_s while age_s <= age < age_s + 1 (any age below 1 stamps 0);
        # int(ttl) stays ttl_s while ttl_s <= ttl < ttl_s + 1, and the hit needs ttl > 0
        lo = fresh_until - ttl_s - 1.0
        if age_s > 0:
            lo = max(lo, base + age_s)
        self.lo = lo + _KEPT_MARGIN
        self.hi = min(base + age_s + 1.0, fresh_until - ttl_s) - _KEPT_MARGIN


def _unobserved(label: str, status: int, sent: int, elapsed: float) -> None:
    """A stage's fast hits before ``observe_fast``: counted nowhere but the cache's counters."""


def _forward_request(req: Request, drop: tuple[str, ...], add: list[tuple[str, str]]) -> Request:
    h = req.headers.copy()
    for name in drop:
        h.popall(name, None)
    for name, value in add:
        h[name] = value
    return Request(req.method, req.target, h, req.body, req.version, req.scheme).adopt_trailers(req)


class CacheStage(OriginStoring):
    """RFC 9111 shared cache stage; see docs/caching.md for the behaviour it implements.

    A chain may hold several cache stages over one store (e.g. a second one after the
    image filter keeps originals, so every variant's miss reuses one origin fetch).  With
    ``nested`` set, a key is looked up by the outermost stage only: an inner stage passes a
    request whose key an outer stage already missed straight on.
    """

    def __init__(self, cfg: CacheConfig, store: CacheStore | None = None,
                 clock: Callable[[], float] = time.time, name: str = "cache",
                 cache_name: str = "edgenode", nested: bool = False) -> None:
        self.cfg = cfg
        self.name = name
        self.cache_name = cache_name
        self.nested = nested
        self.clock = clock
        self.store = store if store is not None else CacheStore(cfg, clock)
        self.keys = KeyBuilder(cfg.key)
        #: (target, Host) -> the fast path's kept answer (``fast_hit``); None when the key
        #: takes request fields (``[cache.key] headers``): the pair then does not name it
        self._kept: dict[tuple[bytes, bytes], _Kept] | None = None if cfg.key.headers else {}
        self._kept_sweep = 0.0  # the clock before which the full table is not swept again
        self.collapser = Collapser(self.store)
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._counters = self.store.counters
        #: the fast path's listener gate and metrics (``observe_fast``): by default none
        self._fast_starts: list[object] = []
        self._fast_ends: list[object] = []
        self._fast_sole: list[object] = []
        self._fast_observe: Callable[[str, int, int, float], None] = _unobserved

    def observe_fast(self, observe: Callable[[str, int, int, float], None], starts: list[Any],
                     ends: list[Any], sole: object) -> None:
        """Count ``fast_hit``'s answers with ``observe`` (label, status, body bytes, seconds:
        ``Metrics.observe_parts``), the record that ``ends``' hook ``sole`` would make of
        the request.  So ``fast_hit`` answers only while ``starts`` is empty and ``ends``
        holds ``sole`` alone: any other listener (the access log, tracing, a recorder)
        needs the request's ``Exchange``, which only the chain makes."""
        self._fast_observe = observe
        self._fast_starts = starts
        self._fast_ends = ends
        self._fast_sole = [sole]

    def wrap(self, next_handler: Handler) -> Handler:
        return wrap_stage(self, next_handler)

    async def close(self) -> None:
        self.collapser.close()
        tasks = list(self._refreshing.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def stats(self) -> dict[str, int]:
        return self.store.stats()

    # -- entry points ---------------------------------------------------------------------
    def fast_hit(self, target: bytes, host: bytes, fields: Callable[[], Headers], get: bool = True,
                 start: float = 0.0) -> Prebuilt | None:
        """A fresh full hit for a plain GET/HEAD (the same for both: the front end leaves
        out a HEAD's body), pre-serialised and counted in the metrics as written (its body's
        bytes when ``get``, the seconds since ``start``, a ``perf_counter`` reading: see
        ``observe_fast``); None: use the chain.

        For the front end's fast path (``FrontEnd(fast_path=...)``) when this is the
        chain's first stage (with ``nested``, the outermost: no inner stage runs on a hit,
        so none needs the key recorded), with the target and Host as parsed (latin-1
        text, decoded only when the kept answer does not serve).  The front end only asks
        about plain requests (none of ``http.headers.NOT_PLAIN``: no cache directives,
        validators, ranges, credentials, upgrade or body), so of ``_handle``'s decisions
        only the key, the lookup (Vary included) and freshness are left.  Anything else
        (stale, trailers, no pre-serialised block, a status without a body, a stored
        X-Request-Id, which the general path replaces) declines, leaving nothing behind
        but the LRU touch the general path's lookup makes too.  The bytes equal what
        ``_serve`` and the front end write for the same request; the answer is kept on
        the entry and handed out again while Age and the ttl (whole seconds) stay the
        same.

        The usual hit repeats the last one for the same (target, Host): that answer is
        kept here (``_Kept``) and handed out again, without the key, the lookup or the
        freshness arithmetic, while the clock is inside the span where ``_fresh`` would
        build the same stamp and the store vouches for the key's object as unchanged and
        noted (``fast_token``: nothing queued, no other process's change, the same single
        variant, its LRU note taken); otherwise ``_fresh`` decides as before, and a small
        answer is kept for the pair.  Its validation, the hit count and the metrics are
        this one call.  A decline for want of an entry (the usual miss) leaves the key
        ``_fresh`` made in ``exchange.DECLINED`` for ``fields``: the front end puts it on
        the request's exchange, and ``handle`` does not build it again.
        """
        if self._fast_starts or self._fast_ends != self._fast_sole:
            return None
        pair = (target, host)
        k = self._kept_hit(pair)
        if k is not None:
            hit = k.hit
        else:  # ``_fresh`` decides (a miss's decline: the key it made left for ``handle``)
            found = self._fresh("http", target.decode("latin-1"), host.decode("latin-1"), fields, fields)
            if found is None or not self._keep(pair, found):
                return None
            hit = found[1]
        self._fast_observe(hit.x_cache, hit.status, len(hit.body) if get else 0, perf_counter() - start)
        return hit

    def _kept_hit(self, pair: tuple[bytes, bytes]) -> _Kept | None:
        """The kept answer for a plain GET/HEAD's (target, Host) as parsed, counted as a
        hit, while it still serves: the clock inside its span, its entry's answer still
        it and the store vouching for the key's object (``fast_token``); None: ``_fresh``
        decides (``hit_response`` repeats this rule inline: keep the two the same)."""
        kept = self._kept
        k = kept.get(pair) if kept is not None else None
        if (k is not None and k.lo < self.clock() < k.hi and k.entry.hit is k.hit
                and self.store.fast_token(k.key) is k.token):
            self._counters["hits"] += 1
            return k
        return None

    def _keep(self, pair: tuple[bytes, bytes], found: tuple[Entry, Prebuilt, str]) -> bool:
        """Keep ``_fresh``'s answer for ``pair`` (``_kept_hit`` hands it out again) when it
        is small, the table has room and the store vouches for the key's object.  False,
        nothing kept, when the stored answer holds an X-Request-Id of its own: only the
        general path replaces it, so the fast path declines such an answer."""
        entry, hit, key = found
        if b"x-request-id:" in hit.block.lower():
            return False
        kept = self._kept
        if kept is not None and len(entry.body) <= _KEPT_BODY and self._room(kept, pair):
            token = self.store.fast_token(key)
            if token is not None:
                kept[pair] = _Kept(key, token, hit, entry)
        return True

    def _room(self, kept: dict[tuple[bytes, bytes], _Kept], pair: tuple[bytes, bytes]) -> bool:
        """Whether ``pair``'s answer may be kept: it replaces its own, or the table has
        room, or a sweep of the ended answers (at most once a second) makes some."""
        if len(kept) < _KEPT_ENTRIES or pair in kept:
            return True
        now = self.clock()
        if now < self._kept_sweep:
            return False
        self._kept_sweep = now + 1.0
        for ended in [p for p, k in kept.items() if k.hi <= now]:
            del kept[ended]
        return len(kept) < _KEPT_ENTRIES

    def hit_response(self, ex: Exchange) -> Response | None:
        """``handle``'s answer to a plain GET/HEAD that is a fresh full hit, built from the
        entry's pre-serialised answer (``fast_hit``); None: run ``handle``.

        For the stage right after the chain's leading filters (pipeline/chain.py runs
        them as one flat step and asks this first): they may have rewritten the
        request, so it is checked here as the front end checks the raw head (method,
        none of ``NOT_PLAIN``: skipped while the fields are the ones the front end found
        plain, ``Exchange.plain``, or a ``RawRequest`` whose fields nothing made), and the
        key is the rewritten request's.  While the target and Host are still the ones the
        front end parsed (``Exchange.parsed``, a ``RawRequest`` whose target nothing
        replaced), the answer is ``fast_hit``'s kept one for the pair (``_kept_hit``'s
        rule, inline to spare a frame: no key, lookup or freshness arithmetic), and ``_fresh``'s answer is kept for it.  The
        response is ``_serve``'s for the same hit: its fields a copy of the kept answer's
        (``Prebuilt.fields``), its ``wire_head`` the kept block; declining leaves nothing
        behind but the LRU touch ``handle``'s lookup makes too.
        """
        req = ex.request
        method = req.method
        if (method != "GET" and method != "HEAD") or self.nested:
            return None
        pair = None  # (target, Host) as parsed while the filters left both alone
        if type(req) is RawRequest:  # its fields are still the ones found plain
            if req.target is ex.target and req.scheme == "http":
                pair = ex.parsed
        else:
            if not fields_plain(ex, req) and not _NOT_PLAIN.isdisjoint(map(str.lower, req.headers)):
                return None  # (the front end's check stands while the filters left the fields alone)
        # ``_kept_hit``'s rule, inline: this is every filtered hit's path
        kept = self._kept
        k = kept.get(pair) if pair is not None and kept is not None else None
        if (k is not None and k.lo < self.clock() < k.hi and k.entry.hit is k.hit
                and self.store.fast_token(k.key) is k.token):
            self._counters["hits"] += 1
            entry, hit = k.entry, k.hit
        else:
            found = self._fresh(req.scheme, req.target, req.host, lambda: req.headers)
            if found is None:
                return None
            entry, hit = found[0], found[1]
            if pair is not None:
                self._keep(pair, found)
        fields = hit.fields
        if fields is None:  # the stored fields and the hit's three, once per kept answer
            fields = hit.fields = self._hit_fields(entry, str(hit.stamp[0]), hit.cache_status, "HIT")
        ex.cache_status = hit.cache_status
        ex.x_cache = "HIT"
        headers = fields.copy()  # a filter may edit them
        resp = PrebuiltResponse()  # ``Response.__init__``'s slots, stored here (no frame)
        resp.status = hit.status
        resp.headers = headers
        resp.body = b"" if method == "HEAD" else hit.body
        resp.reason = hit.reason
        resp.wire_head = (getversion(headers), hit.block)
        resp.fields = None
        resp._trailers = FROM_BODY
        return resp

    def _fresh(self, scheme: str, target: str, host: str, fields: Callable[[], Headers],
               asked: object = None) -> tuple[Entry, Prebuilt, str] | None:
        """The entry, its kept answer and its key for a fresh full hit (counted), or None
        (an incomplete entry has no ``wire``: never a full hit).  ``asked``: the front
        end's ``fields`` callable (``fast_hit``): when no such entry is stored, the key
        made here is left for that request in ``exchange.DECLINED`` (``handle`` takes it)."""
        made = self.keys.for_parts(scheme, host, target, fields)
        key = made[1]
        entry = self.store.lookup_lazy(key, fields)
        if entry is None or entry.wire is None or entry.trailers is not None or entry.no_cache:
            if asked is not None:  # the usual miss: its key for ``handle``
                DECLINED[0] = (asked, self, made)
            return None
        now = self.clock()
        ttl = entry.fresh_until - now
        code = entry.status
        if ttl <= 0 or code < 200 or code == 204 or code == 304:
            return None
        age = entry.age0 + (now - entry.response_time)
        stamp = (int(age) if age > 0 else 0, int(ttl), self.cache_name)  # ttl > 0: int is floor
        hit = entry.hit
        if hit is None or hit.stamp != stamp:
            cache_status = status.hit(self.cache_name, ttl)
            tail = f"Age: {stamp[0]}\r\nCache-Status: {cache_status}\r\nX-Cache: HIT\r\n"
            try:
                block = entry.wire + tail.encode("latin-1")
            except UnicodeEncodeError:
                return None
            hit = entry.hit = Prebuilt(code, entry.reason, block, entry.body, "HIT",
                                       cache_status, stamp)
        self._counters["hits"] += 1
        return entry, hit, key

    def handle(self, ex: Exchange, rest: Next) -> Outcome:
        """The cache's step (pipeline/chain.py): a hit is answered synchronously; what
        needs the origin returns the coroutine that fetches it."""
        req = ex.request
        nxt = rest.settled
        method = req.method
        if method != "GET" and method != "HEAD":
            return self._unsafe(ex, nxt)
        h = req.headers
        plain = fields_plain(ex, req)  # none of NOT_PLAIN, unchanged since: no checks
        if not plain and ("upgrade" in h or "if-match" in h or "if-unmodified-since" in h):
            return self._bypass(ex, nxt, "request")
        known = ex.cache_key  # the fast path's key, while made from this scheme, target and fields
        if known is not None and plain and known[1] is self and req.target is ex.target and req.scheme == "http":
            url, key = known[2]
        else:
            url, key = self.keys.for_request(req)
        if self.nested:
            seen = ex.props.setdefault("cache.keys", set())
            if key in seen:
                return rest(ex)
            seen.add(key)
        req_cc = request_directives(h) if not plain and "cache-control" in h else {}
        now = self.clock()
        entry, any_variant = self.store.lookup(key, h)
        if entry is not None and not plain and "authorization" in h and not entry.auth_ok:
            return self._bypass(ex, nxt, "request")
        if entry is not None and entry.partial is not None and not self._answers(entry, req):
            # RFC 9111 §3.3: an incomplete response answers only ranges inside what it holds
            if "only-if-cached" in req_cc:
                return self._gateway_timeout(ex, "only-if-cached")
            if method == "HEAD":
                return self._bypass(ex, nxt, "partial", count="misses", x_cache="MISS")
            return self._collapsed(ex, nxt, key, req_cc,
                                  functools.partial(self._complete, ex, nxt, entry, key, url, req_cc))
        if entry is not None:
            outcome, forced = evaluate(entry, now, req_cc)
            if outcome == FRESH:
                self._counters["hits"] += 1
                return self._serve(ex, entry, now, "HIT", status.hit(self.cache_name, entry.fresh_until - now))
            if outcome == STALE_OK or outcome == STALE_SWR:
                self._counters["stale"] += 1
                if outcome == STALE_SWR:
                    self._schedule_refresh(ex, nxt, entry, key, url)
                detail = "stale-while-revalidate" if outcome == STALE_SWR else "max-stale"
                return self._serve(ex, entry, now, "STALE",
                                   status.hit(self.cache_name, entry.fresh_until - now, detail))
            if "only-if-cached" in req_cc:
                return self._gateway_timeout(ex, "only-if-cached")
            fwd = "request" if forced else "stale"
            return self._collapsed(ex, nxt, key, req_cc,
                                  functools.partial(self._revalidate, ex, nxt, entry, key, url, req_cc, fwd))
        if "only-if-cached" in req_cc:
            return self._gateway_timeout(ex, "only-if-cached")
        fwd = "vary-miss" if any_variant else "uri-miss"
        if method == "HEAD":
            return self._bypass(ex, nxt, fwd, count="misses", x_cache="MISS")
        if plain and self.collapser.alone and self.cfg.collapse:
            return self._plain_miss(ex, nxt, key, url, fwd)
        return self._miss(ex, nxt, key, url, req_cc, fwd, None, True, plain)

    # -- answers built from a stored entry -----------------------------------------------
    @staticmethod
    def _hit_fields(entry: Entry, age: str, cache_status: str, x_cache: str) -> CIMultiDict[str]:
        """The stored fields plus Age, Cache-Status and X-Cache (a full hit's)."""
        headers = entry.proto.copy()
        headers["Age"] = age
        headers.add("Cache-Status", cache_status)
        headers["X-Cache"] = x_cache
        return headers

    def _serve(self, ex: Exchange, entry: Entry, now: float, x_cache: str, cache_status: str) -> Response:
        """A response from ``entry``: 200 (or stored status), 304, 206 or 416 as the request asks."""
        req = ex.request
        h = req.headers
        if entry.wire is not None and ("if-none-match" not in h and "if-modified-since" not in h
                                       and "range" not in h):
            # the common answer (a hit, a miss's just stored): the stored fields as they are
            # plus ours, their head pre-serialised at store time, made without ``__init__``
            head = req.method == "HEAD"
            resp = entry_answer(entry, now, cache_status, x_cache, head)
            if resp is None:
                resp = self._whole_answer(entry, now, cache_status, x_cache, head)
            ex.cache_status = cache_status
            ex.x_cache = x_cache
            return resp
        status_code = entry.status
        body = entry.body
        age = str(int(max(0.0, entry.age(now))))
        headers = entry.proto.copy()
        headers["Age"] = age
        partial = entry.partial
        if partial is not None:  # asked only for ranges it holds (``_answers``)
            ranges = parse_range(h.get("range", ""), partial.length) or []
            status_code, body = self._ranged(headers, ranges, entry)
        elif status_code == 200 and has_client_validators(h) and client_not_modified(h, entry):
            headers = CIMultiDict((k, v) for k, v in headers.items()
                                  if k.lower() in not_modified_fields or k == "Age")
            status_code, body = 304, b""
        elif status_code == 200 and "range" in h and req.method == "GET":
            if_range = h.get("if-range")
            if if_range is None or if_range_matches(if_range, entry):
                ranges = parse_range(h["range"], len(body))
                if ranges is not None:
                    status_code, body = self._ranged(headers, ranges, entry)
        headers.add("Cache-Status", cache_status)
        headers["X-Cache"] = x_cache
        ex.cache_status = cache_status
        ex.x_cache = x_cache
        if req.method == "HEAD":
            body = b""
        resp = Response(status_code, headers, body, entry.reason if status_code == entry.status else "")
        if (entry.trailers is not None and status_code == entry.status and partial is None
                and req.method != "HEAD"):
            resp.trailers = entry.trailers.copy()  # whole-body metadata: not on 304/206/416
        return resp

    @staticmethod
    def _whole_answer(entry: Entry, now: float, cache_status: str, x_cache: str, head: bool) -> Response:
        """The whole entry's answer (``_serve``'s common one): the stored fields plus Age,
        Cache-Status and X-Cache, their head as bytes (the stored block plus those lines:
        none when they are beyond Latin-1), made without ``__init__``.  ``storing.entry_answer``
        makes the usual one in C; this is its reference (tests/cache/test_entry_answer.py)
        and the maker of the rest (trailers, no block, a Cache-Status or X-Cache beyond
        Latin-1, an age of 1e15 s or more)."""
        age = str(int(max(0.0, entry.age(now))))
        headers = CacheStage._hit_fields(entry, age, cache_status, x_cache)
        trailers = entry.trailers  # a copy: a filter may edit them, not the stored ones
        resp = made_response(entry.status, headers, b"" if head else entry.body, entry.reason, None,
                             FROM_BODY if trailers is None or head else trailers.copy())
        wire = entry.wire
        if wire is not None:
            try:
                tail = f"Age: {age}\r\nCache-Status: {cache_status}\r\nX-Cache: {x_cache}\r\n"
                resp.wire_head = (getversion(headers), wire + tail.encode("latin-1"))
            except UnicodeEncodeError:  # written by the general writer
                pass
        return resp

    @staticmethod
    def _ranged(headers: CIMultiDict[str], ranges: list[tuple[int, int]], entry: Entry) -> tuple[int, bytes]:
        partial = entry.partial
        length = partial.length if partial is not None else len(entry.body)
        if not ranges:
            headers["Content-Range"] = f"bytes */{length}"
            headers["Content-Length"] = "0"
            return 416, b""
        parts = [extract(entry.body, partial, first, last) for first, last in ranges]
        if len(ranges) == 1:
            first, last = ranges[0]
            headers["Content-Range"] = f"bytes {first}-{last}/{length}"
            part = parts[0]
        else:
            part, ctype = multipart(ranges, parts, length, headers.get("content-type"))
            headers["Content-Type"] = ctype
        headers["Content-Length"] = str(len(part))
        return 206, part

    @staticmethod
    def _answers(entry: Entry, req: Request) -> bool:
        """Whether ``entry`` can answer ``req``: it is complete, or the request is a GET for
        ranges wholly inside what it holds and asks nothing else of the whole (RFC 9111 §3.3)."""
        partial = entry.partial
        if partial is None:
            return True
        h = req.headers
        value = h.get("range")
        if req.method != "GET" or value is None or has_client_validators(h):
            return False
        if_range = h.get("if-range")
        if if_range is not None and not if_range_matches(if_range, entry):
            return False
        ranges = parse_range(value, partial.length)
        return ranges is not None and covers(partial, ranges)

    def _gateway_timeout(self, ex: Exchange, detail: str) -> Response:
        cache_status = status.plain(self.cache_name, detail)
        ex.cache_status, ex.x_cache = cache_status, "MISS"
        self._counters["misses"] += 1
        headers = CIMultiDict({"Content-Type": "text/plain", "Cache-Status": cache_status, "X-Cache": "MISS"})
        return Response(504, headers, f"504 Gateway Timeout ({detail})\n".encode())

    def _mark(self, ex: Exchange, resp: Response, x_cache: str, cache_status: str) -> None:
        resp.headers.add("Cache-Status", cache_status)
        resp.headers["X-Cache"] = x_cache
        ex.cache_status, ex.x_cache = cache_status, x_cache

    # -- pass-through ---------------------------------------------------------------------
    async def _bypass(self, ex: Exchange, nxt: Handler, fwd: str, count: str = "bypass",
                      x_cache: str = "BYPASS") -> Response:
        resp = await nxt(ex)
        strip_surrogate(resp)
        self._counters[count] += 1
        self._mark(ex, resp, x_cache, status.forwarded(self.cache_name, fwd, fwd_status=resp.status))
        return resp

    async def _unsafe(self, ex: Exchange, nxt: Handler) -> Response:
        """Unsafe methods go through; a non-error answer invalidates what they may change (§4.4).

        A POST response that names its own target in Content-Location is then stored for
        later GETs of that URI when it is storable (RFC 9110 §9.3.3).
        """
        req = ex.request
        url, key = self.keys.for_request(req)
        request_time = self.clock()
        resp = await nxt(ex)
        if 200 <= resp.status < 400 and req.method not in ("OPTIONS", "TRACE"):
            for target in invalidation_targets(url, resp.headers):
                self.store.purge_url(target)
            location = resp.headers.get("content-location")
            if (req.method == "POST" and location is not None
                    and self.keys.normalise_url(urljoin(url, location.strip())) == url):
                self._counters["bypass"] += 1
                req_cc = request_directives(req.headers) if "cache-control" in req.headers else {}
                out = self._from_origin(ex, resp, key, url, req_cc, "method", None, request_time,
                                        None, need_entry=False, names_target=True)
                return out if isinstance(out, Response) else await out
        strip_surrogate(resp)
        self._counters["bypass"] += 1
        self._mark(ex, resp, "BYPASS", status.forwarded(self.cache_name, "method", fwd_status=resp.status))
        return resp

    # -- collapsing -------------------------------------------------------------------------
    async def _collapsed(self, ex: Exchange, nxt: Handler, key: str, req_cc: Cc,
                         fetch: Callable[[Flight | None], Awaitable[Response]]) -> Response:
        """``fetch`` as the key's leader, or wait for the leader's entry."""
        flight, fut, _ = self._lead(ex, key, req_cc, False)
        if fut is not None:
            return await self._follow(ex, fut, fetch)
        try:
            return await fetch(flight)
        finally:
            if flight is not None:
                flight.settle()

    def _lead(self, ex: Exchange, key: str, req_cc: Cc, missed: bool,
              plain: bool = False) -> tuple[Flight | None, asyncio.Future[Entry | None] | None, Response | None]:
        """Join the key's flight: ``(flight, None, None)`` to lead it, ``(None, future,
        None)`` to wait for its leader's entry, ``(None, None, None)`` when the request is
        not collapsed.  ``missed``: the lookup found nothing; a leader that finished
        between that lookup and this call (a coroutine's start) has stored the entry, so a
        new leader looks again first, and a fresh entry found is ``(None, None, answer)``.
        ``plain``: the request holds no directives or credentials (``handle``)."""
        h = ex.request.headers
        if not self.cfg.collapse or (not plain and ("authorization" in h or "no-cache" in req_cc
                                                     or "no-store" in req_cc)):
            return None, None, None
        flight, fut = self.collapser.join(key)
        if flight is not None and missed:
            entry, _ = self.store.lookup(key, h)
            if entry is not None:
                served = self._stored_since(ex, entry, req_cc)
                if served is not None:
                    flight.done(entry)
                    return None, None, served
        return flight, fut, None

    def _stored_since(self, ex: Exchange, entry: Entry, req_cc: Cc = _NO_CC) -> Response | None:
        """A new leader's answer from ``entry``, which a leader stored between the lookup that
        missed and this one (its flight ended), when it is fresh and whole: a hit (the
        caller ends its flight with ``entry``); None: fetch."""
        now = self.clock()
        if entry.partial is not None or evaluate(entry, now, req_cc)[0] != FRESH:
            return None
        self._counters["hits"] += 1
        return self._serve(ex, entry, now, "HIT", status.hit(self.cache_name, entry.fresh_until - now))

    async def _follow(self, ex: Exchange, fut: asyncio.Future[Entry | None],
                      fetch: Callable[[Flight | None], Awaitable[Response]]) -> Response:
        """A waiter: the leader's entry when it answers the request, else ``fetch`` alone."""
        h = ex.request.headers
        entry = await self.collapser.wait(fut, self.cfg.collapse_timeout)
        if entry is not None and entry.vary_matches(h) and self._answers(entry, ex.request):
            self._counters["collapsed"] += 1
            now = self.clock()
            return self._serve(ex, entry, now, "COLLAPSED", status.forwarded(
                self.cache_name, "uri-miss", collapsed=True, ttl=entry.fresh_until - now))
        return await fetch(None)

    # -- origin fetches --------------------------------------------------------------------
    async def _forward(self, ex: Exchange, nxt: Handler, fwd_req: Request) -> Response:
        original = ex.request
        ex.request = fwd_req
        try:
            return await nxt(ex)
        finally:
            ex.request = original

    async def _miss(self, ex: Exchange, nxt: Handler, key: str, url: str, req_cc: Cc,
                    fwd: str, flight: Flight | None, lead: bool = False, plain: bool = False) -> Response:
        """Fetch from the origin to store.  ``lead``: the lookup found nothing, so first
        lead the key's flight or wait for its leader (``_lead``): ``_collapsed`` around
        this fetch, in this one coroutine (the usual miss's only one in the cache).
        ``plain``: the request holds none of ``NOT_PLAIN`` (``handle``): no validators,
        Range, directives or credentials to look for."""
        if lead:
            flight, fut, served = self._lead(ex, key, req_cc, True, plain)
            if served is not None:
                return served
            if fut is not None:
                return await self._follow(ex, fut, functools.partial(self._miss, ex, nxt, key, url, req_cc, fwd))
        try:
            req = ex.request
            # an unconditional request, so the answer can be stored; the client's validators
            # are then answered from the entry.  Its Range goes on: a 206 is stored as an
            # incomplete response, a 200 whole (and the range answered from it).
            h = req.headers
            if plain:
                drop: tuple[str, ...] = ()
                usual = ranged = False
            else:  # (``has_client_validators``, inline)
                drop = (tuple(n for n in CLIENT_VALIDATORS if n in h) if "no-store" not in req_cc
                        and ("if-none-match" in h or "if-modified-since" in h) else ())
                ranged = "range" in h
                usual = not (drop or ranged or req_cc) and "authorization" not in h
            request_time = self.clock()
            if drop:
                resp = await self._forward(ex, nxt, _forward_request(req, drop, []))
            else:
                resp = await nxt(ex)
            self._counters["misses"] += 1
            if plain or usual:  # (a GET: ``handle`` sends a HEAD's miss on uncached)
                out = self._stored_miss(ex, resp, key, url, request_time, flight, fwd)
                if out is not None:
                    return out
            out = self._from_origin(ex, resp, key, url, req_cc, fwd, None, request_time,
                                    flight, need_entry=bool(drop) or ranged)
            return out if isinstance(out, Response) else await out
        finally:
            if lead and flight is not None and not flight.resolved:
                flight.settle()

    async def _plain_miss(self, ex: Exchange, nxt: Handler, key: str, url: str, fwd: str) -> Response:
        """The usual miss: ``_miss``'s steps with ``lead`` and ``plain`` (a GET holding none of
        ``NOT_PLAIN`` whose key the lookup found absent) in one frame, where this process
        alone collapses the key's requests (no lease to take).  The key is led alone (its
        ``Flight`` made only when a waiter joins or the fetch needs one: ``Collapser.flight``)
        or its leader waited for (``_follow``); a fresh entry stored since the lookup
        answers (``_lead``'s look again); the origin's usual storable answer is stored,
        answered and ends the flight (``_stored_miss``); anything else as ``_miss``."""
        collapser = self.collapser
        flights = collapser.flights
        if key in flights:  # another request leads: its entry, or a fetch of our own
            return await self._follow(ex, collapser.flight(key).waiter(), functools.partial(
                self._miss, ex, nxt, key, url, _NO_CC, fwd))
        flights[key] = None  # led alone
        flight: Flight | None = None  # (made when the fetch needs one)
        try:
            entry, _ = self.store.lookup(key, ex.request.headers)
            if entry is not None:  # a leader stored it between the lookup and this start
                served = self._stored_since(ex, entry)
                if served is not None:
                    del flights[key]  # (no one joined: nothing was awaited)
                    return served
            request_time = self.clock()
            resp = await nxt(ex)
            self._counters["misses"] += 1
            out = self._stored_miss(ex, resp, key, url, request_time, None, fwd, led_alone=True)
            if out is not None:
                return out
            flight = collapser.flight(key)
            out = self._from_origin(ex, resp, key, url, _NO_CC, fwd, None, request_time, flight,
                                    need_entry=False)
            return out if isinstance(out, Response) else await out
        finally:
            if flight is None:  # ended, or the fetch raised: the waiters go to the origin
                joined = flights.pop(key, None)
                if joined is not None:
                    joined.done(None)
            elif not flight.resolved:
                flight.settle()

    async def _complete(self, ex: Exchange, nxt: Handler, entry: Entry, key: str, url: str,
                        req_cc: Cc, flight: Flight | None) -> Response:
        """A request that the incomplete ``entry`` cannot answer (RFC 9111 §3.3-3.4).

        A GET for the whole representation asks the origin for the one span we lack (with
        our strong validator as If-Range) and combines the 206 with what we hold; when that
        does not complete it (another representation, or no strong validator to tell), the
        whole representation is fetched.  Anything else (the client's own ranges, several
        gaps) goes to the origin as a miss.
        """
        assert entry.partial is not None
        req = ex.request
        missing = gaps(entry.partial)
        if "range" in req.headers or len(missing) != 1:
            return await self._miss(ex, nxt, key, url, req_cc, "partial", flight)
        first, last = missing[0]
        add = [("Range", f"bytes={first}-" if last == entry.partial.length - 1 else f"bytes={first}-{last}")]
        validator = strong_validator(entry)
        if validator is not None:
            add.append(("If-Range", validator))
        request_time = self.clock()
        resp = await self._forward(ex, nxt, _forward_request(req, _STORE_STRIP, add))
        self._counters["misses"] += 1
        found = self._from_origin(ex, resp, key, url, req_cc, "partial", None, request_time,
                                  flight, need_entry=True)
        out = found if isinstance(found, Response) else await found
        if out.status != 206:
            return out
        await close_body(out.body)
        return await self._miss(ex, nxt, key, url, req_cc, "partial", None)

    async def _revalidate(self, ex: Exchange, nxt: Handler, entry: Entry, key: str, url: str,
                          req_cc: Cc, fwd: str, flight: Flight | None) -> Response:
        req = ex.request
        fwd_req = _forward_request(req, _STORE_STRIP, revalidation_headers(entry))
        request_time = self.clock()
        forced = fwd == "request"
        try:
            resp = await self._forward(ex, nxt, fwd_req)
        except Exception as exc:
            stale = None if forced else self._stale_on_failure(ex, entry, fwd, None, True)
            if stale is not None:
                log.info("origin failed (%s); serving stale %s", type(exc).__name__, url)
                return stale
            if entry.no_stale:
                return self._gateway_timeout(ex, "must-revalidate")
            raise
        now = self.clock()
        # the Upstream's own 502/504: the origin could not be reached at all
        unreachable = "upstream_error" in ex.props
        if entry.no_stale and unreachable:
            # RFC 9111 §5.2.2.2
            await close_body(resp.body)
            return self._gateway_timeout(ex, "must-revalidate")
        if resp.status == 304 and self._validates(resp, entry):
            await close_body(resp.body)
            if "no-store" not in req_cc:
                refresh_entry(entry, resp.headers, request_time, now, self.cfg.heuristic_fraction,
                              self.cfg.heuristic_max, self.cfg.default_ttl)
                self.store.refresh(entry)
            if flight is not None:
                flight.done(entry)
            self._counters["revalidations"] += 1
            served = self._serve(ex, entry, now, "REVALIDATED",
                                 status.forwarded(self.cache_name, fwd, fwd_status=304,
                                                  ttl=entry.fresh_until - now))
            for cookie in resp.headers.getall("set-cookie", ()):  # this client's, never stored
                served.headers.add("Set-Cookie", cookie)
            return served
        if resp.status in _ORIGIN_ERRORS and not forced:
            stale = self._stale_on_failure(ex, entry, fwd, None if unreachable else resp.status,
                                           unreachable)
            if stale is not None:
                await close_body(resp.body)
                return stale
        if resp.status == 304:
            # a 304 for some other representation: fetch the full object instead
            await close_body(resp.body)
            fwd_req = _forward_request(req, _STORE_STRIP, [])
            request_time = self.clock()
            resp = await self._forward(ex, nxt, fwd_req)
        self._counters["misses"] += 1
        out = self._from_origin(ex, resp, key, url, req_cc, fwd, resp.status, request_time,
                                flight, need_entry=True)
        return out if isinstance(out, Response) else await out

    def _stale_on_failure(self, ex: Exchange, entry: Entry, fwd: str, fwd_status: int | None,
                          unreachable: bool) -> Response | None:
        """The stale entry as the answer to a failed revalidation, when that is allowed:
        within its stale-if-error window (RFC 5861 §4), or, when the origin could not be
        reached, within ``stale_if_unreachable`` (RFC 9111 §4.2.4 lets a disconnected
        cache serve stale); None otherwise."""
        now = self.clock()
        if entry.stale_on_error(now):
            detail = "stale-if-error"
        elif unreachable and entry.stale_on_error(now, self.cfg.stale_if_unreachable):
            detail = "origin-unreachable"
        else:
            return None
        self._counters["stale"] += 1
        return self._serve(ex, entry, now, "STALE", status.forwarded(
            self.cache_name, fwd, fwd_status=fwd_status, ttl=entry.fresh_until - now, detail=detail))

    @staticmethod
    def _validates(resp: Response, entry: Entry) -> bool:
        """RFC 9111 §4.3.4: a 304 whose ETag names a different representation refreshes nothing."""
        tag = resp.headers.get("etag")
        if tag is None or entry.etag is None:
            return True
        strip = lambda t: t.strip()[2:] if t.strip().startswith("W/") else t.strip()  # noqa: E731
        return strip(tag) == strip(entry.etag)


    # -- stale-while-revalidate ------------------------------------------------------------
    def _schedule_refresh(self, ex: Exchange, nxt: Handler, entry: Entry, key: str, url: str) -> None:
        """One background revalidation per key at a time, through the rest of the chain."""
        if key in self._refreshing:
            return
        req = ex.request
        headers = req.headers.copy()
        for name in _STORE_STRIP + ("cache-control",):
            headers.popall(name, None)
        bg = Exchange(Request("GET", req.target, headers, b"", req.version, req.scheme), ex.client, ex.local)
        bg.origin = ex.origin
        task = asyncio.get_running_loop().create_task(self._refresh(bg, nxt, entry, key, url))
        self._refreshing[key] = task
        task.add_done_callback(lambda _t: self._refreshing.pop(key, None))

    async def _refresh(self, bg: Exchange, nxt: Handler, entry: Entry, key: str, url: str) -> None:
        try:
            resp = await self._revalidate(bg, nxt, entry, key, url, {}, "stale", None)
            if not isinstance(resp.body, (bytes, bytearray)):
                async for _ in resp.body:
                    pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("background revalidation of %s failed", url, exc_info=True)
