"""Storing what the origin sent, for the cache stage (``CacheStage`` runs these steps).

At header time the origin's response is decided on (RFC 9111 §3: storable or not, and
why); a body in memory is made into an entry, stored and answered from (the usual miss:
its decision, entry and answer are C calls, ``usual_stored`` and ``EntryAnswer``, with
this module's Python as their reference); a streamed body is teed into the store as it
passes on, or buffered first when the client's Range or validators must be answered
from the entry.  The lookups, collapsing, revalidation and the answers from a stored
entry stay in ``stage``.
"""

from __future__ import annotations

import functools
from typing import AsyncIterator, Callable, Mapping

from multidict import CIMultiDict, getversion

from edgenode.cache import status
from edgenode.cache._entry import EntryAnswer
from edgenode.cache.collapse import Collapser, Flight
from edgenode.cache.conditional import same_representation
from edgenode.cache.directives import CC_MEMO
from edgenode.cache.policy import (
    Entry, Headers, build_entry, response_directives, storability, usual_entry, usual_stored,
)
from edgenode.cache.ranges import Partial, combine, parse_content_range
from edgenode.cache.store import CacheStore
from edgenode.config import CacheConfig
from edgenode.http.messages import (
    FROM_BODY, PrebuiltResponse, Request, Response, TrailerRelay, close_body, trailers_of,
)
from edgenode.pipeline.chain import Outcome
from edgenode.pipeline.exchange import Exchange

__all__ = ["OriginStoring", "strip_surrogate", "entry_answer"]

Cc = Mapping[str, "str | None"]
_SURROGATE = ("surrogate-key", "surrogate-control")

#: a whole entry's common answer in one C call (None: ``CacheStage._whole_answer``, its
#: reference, makes it): ``(entry, now, cache_status, x_cache, head)``
entry_answer = EntryAnswer(Entry, PrebuiltResponse, FROM_BODY, getversion)

#: what an entry is made of besides its body (``OriginStoring._make_entry``), kept from header
#: time until a streamed body ends: key, URL, the request's fields, the origin's status,
#: reason and fields, a 206's span, the request and response times, the directives and
#: the origin client's plain pairs
_Made = tuple[str, str, Headers, int, str, Headers, "tuple[int, int, int] | None", float, float,
              "tuple[dict[str, str | None], bool]", "list[tuple[str, str]] | None"]


def strip_surrogate(resp: Response) -> None:
    """Surrogate-Key/-Control are for us (and purges), never for clients (as Fastly does)."""
    h = resp.headers
    if "surrogate-key" in h or "surrogate-control" in h:
        for name in _SURROGATE:
            h.popall(name, None)


class OriginStoring:
    """The cache stage's steps from the origin's response to the store and the answer
    (a base of ``CacheStage``, whose ``__init__`` sets what is declared here)."""

    cfg: CacheConfig
    store: CacheStore
    clock: Callable[[], float]
    cache_name: str
    collapser: Collapser
    _counters: dict[str, int]
    # (``CacheStage``'s: the answer from a stored entry, the marks on a passed-on response)
    _serve: Callable[..., Response]
    _mark: Callable[[Exchange, Response, str, str], None]
    _answers: Callable[[Entry, Request], bool]

    def _stored_miss(self, ex: Exchange, resp: Response, key: str, url: str, request_time: float,
                     flight: Flight | None, fwd: str, led_alone: bool = False) -> Response | None:
        """The answer to a GET with no directives, validators, Range or credentials whose
        origin response is the usual storable one (its body in memory, no trailers, its
        plain pairs current): the decision and the entry in one C call (``usual_stored``),
        stored and answered here, the flight ended (``led_alone``: the key's, led without a
        ``Flight``, ended in the flights table); None, nothing done: ``_from_origin``
        decides (its Python is the reference the C call is held to:
        tests/cache/test_stored_miss.py)."""
        plain = resp.fields
        if (plain is None or resp._trailers is not FROM_BODY or type(resp.body) is not bytes
                or plain[0] != getversion(resp.headers)):
            return None
        cfg = self.cfg
        now = self.clock()  # the response's time, and the answer's (its Age is 0)
        entry = usual_stored(key, url, resp.status, resp.reason, plain[1], resp.body, CC_MEMO,
                             cfg.max_object_bytes, request_time, now, cfg.heuristic_fraction,
                             cfg.heuristic_max, cfg.default_ttl)
        if entry is None:
            return None
        stored = self.store.put(entry)  # (``_put``'s checks: the C call made them)
        if led_alone:  # the key's flight (``_plain_miss``): a Flight if a waiter joined
            joined = self.collapser.flights.pop(key)
            if joined is not None:
                joined.done(entry if stored else None)
        elif flight is not None:
            flight.done(entry if stored else None)
        cache_status = status.forwarded(self.cache_name, fwd, stored=stored)
        # ``_serve``'s common answer: the request asks for neither a 304 nor a range
        resp = entry_answer(entry, now, cache_status, "MISS", False)
        if resp is None:
            return self._serve(ex, entry, now, "MISS", cache_status)
        ex.cache_status = cache_status
        ex.x_cache = "MISS"
        return resp

    def _from_origin(self, ex: Exchange, resp: Response, key: str, url: str, req_cc: Cc,
                     fwd: str, fwd_status: int | None, request_time: float,
                     flight: Flight | None, need_entry: bool,
                     names_target: bool = False) -> Outcome:
        """Decide at header time whether to store; store bytes now or tee a streamed body.

        The answer is a ``Response`` but where a streamed body must be buffered first
        (the client's Range or validators are answered from the entry): then the
        coroutine that does it, so the usual miss (a body read with its head) takes no
        coroutine of its own."""
        req = ex.request
        response_time = self.clock()
        resp_cc, targeted = response_directives(resp.headers)
        reason = storability(req.method, req.headers, req_cc, resp.status, resp.headers, resp_cc, targeted,
                             names_target)
        cl = resp.headers.get("content-length")
        expected = int(cl) if cl is not None and cl.isascii() and cl.isdigit() else None  # (not "²")
        # a storable 206 is combined with what we hold before it is stored: buffer it, and
        # check its body against its Content-Range
        span = None
        if resp.status == 206 and reason is None:
            span = parse_content_range(resp.headers.get("content-range"))
            assert span is not None  # storability checked it
            need_entry = True
            size = span[1] - span[0] + 1
            if expected is None:
                expected = size
            elif expected != size:
                reason = "length-mismatch"
        if reason is None and expected is not None and expected > self.cfg.max_object_bytes:
            reason = "too-large"

        # the entry's fields: a copy when the response's own may change before the entry is
        # made from them (a streamed body's, at its end) or lose Content-Range (a 206's)
        origin_headers = resp.headers
        in_memory = isinstance(resp.body, (bytes, bytearray))
        if reason is None and (span is not None or not in_memory):
            origin_headers = origin_headers.copy()
            if span is not None:
                origin_headers.popall("content-range")  # made per answer from what we hold
        # the origin client's plain pairs, while no one has changed the fields since
        plain = resp.fields
        fields = (plain[1] if plain is not None and span is None and plain[0] == getversion(resp.headers)
                  else None)
        made: _Made = (key, url, req.headers, resp.status, resp.reason, origin_headers, span, request_time,
                       response_time, (resp_cc, targeted), fields)

        if reason is None and in_memory:
            body = bytes(resp.body)  # type: ignore[arg-type]
            if len(body) <= self.cfg.max_object_bytes and (expected is None or expected == len(body)):
                trailers = resp._trailers  # ``resp.trailers`` without its two frames
                if trailers is FROM_BODY:
                    trailers = None if type(resp.body) is bytes else trailers_of(resp.body)
                return self._store_and_serve(ex, resp, self._make_entry(made, body, trailers), flight,
                                             fwd, fwd_status)
            reason = "too-large" if len(body) > self.cfg.max_object_bytes else "length-mismatch"
        if reason is None and need_entry:
            # the client's Range/validators must be answered from the entry: buffer it
            return self._buffered(ex, resp, made, flight, fwd, fwd_status, expected)
        return self._pass_on(ex, resp, made, flight, fwd, fwd_status, expected, reason)

    def _make_entry(self, made: _Made, body: bytes, trailers: CIMultiDict[str] | None) -> Entry:
        """The entry of the origin's response ``made`` describes, with ``body``; a 206's
        spans combined with the incomplete response we hold of the same representation."""
        key, url, req_headers, code, phrase, headers, span, request_time, response_time, directives, fields = made
        partial = None
        if span is not None:
            first, last, length = span
            spans: tuple[tuple[int, int], ...] = ((first, last),)
            base = self._combinable(key, req_headers, headers, length)
            if base is not None and base.partial is not None:
                spans, body = combine(base.partial, base.body, (first, last), body)
            if spans == ((0, length - 1),):
                code, phrase = 200, ""  # complete now: a whole response
            else:
                partial = Partial(length, spans)
        cfg = self.cfg
        if partial is None and fields is not None and not trailers:  # the usual miss: one C call
            entry = usual_entry(key, url, code, phrase, fields, body, directives[0], directives[1], request_time,
                                response_time, cfg.heuristic_fraction, cfg.heuristic_max, cfg.default_ttl)
            if entry is not None:
                return entry
        # (build_entry asks usual_entry again: only a response it left to Python pays that)
        return build_entry(key=key, url=url, status=code, reason=phrase, resp_headers=headers, body=body,
                           req_headers=req_headers, request_time=request_time, response_time=response_time,
                           heuristic_fraction=cfg.heuristic_fraction, heuristic_max=cfg.heuristic_max,
                           default_ttl=cfg.default_ttl, trailers=trailers, partial=partial,
                           fields=fields, directives=directives)

    async def _buffered(self, ex: Exchange, resp: Response, made: _Made, flight: Flight | None,
                        fwd: str, fwd_status: int | None, expected: int | None) -> Response:
        """A storable streamed body read whole first (up to ``max_object_bytes``), then
        stored and answered from; passed on uncached when longer or cut short."""
        source = resp.body
        buffered, rest = await self._buffer(source)  # type: ignore[arg-type]
        if rest is None and (expected is None or expected == len(buffered)):
            resp.body, resp.trailers = buffered, trailers_of(source)
            return self._store_and_serve(ex, resp, self._make_entry(made, buffered, resp.trailers), flight,
                                         fwd, fwd_status)
        if rest is not None:
            resp.body = TrailerRelay(self._chain(buffered, rest), source)
        else:
            resp.body, resp.trailers = buffered, trailers_of(source)
        reason = "too-large" if rest is not None else "length-mismatch"
        return self._pass_on(ex, resp, made, flight, fwd, fwd_status, expected, reason)

    def _pass_on(self, ex: Exchange, resp: Response, made: _Made, flight: Flight | None, fwd: str,
                 fwd_status: int | None, expected: int | None, reason: str | None) -> Response:
        """The origin's response as it is: uncached (``reason``), or a streamed body teed
        into the store as it passes."""
        strip_surrogate(resp)
        if reason is not None:
            if flight is not None:
                flight.release()
            self._counters["uncacheable"] += 1
            self._mark(ex, resp, "MISS", status.forwarded(self.cache_name, fwd, fwd_status=fwd_status,
                                                          detail=reason))
            return resp
        # storable and streamed: pass chunks through while keeping a copy
        if flight is not None:
            flight.handed_off = True
        source = resp.body
        make_entry = functools.partial(self._make_entry, made)
        resp.body = TrailerRelay(self._tee(source, make_entry, flight, expected), source)  # type: ignore[arg-type]
        self._mark(ex, resp, "MISS", status.forwarded(self.cache_name, fwd, fwd_status=fwd_status,
                                                      stored=True))
        return resp

    def _store_and_serve(self, ex: Exchange, resp: Response, entry: Entry, flight: Flight | None,
                         fwd: str, fwd_status: int | None) -> Response:
        """Store ``entry`` (made from ``resp``, whose body is in memory) and answer from it;
        ``resp`` itself when the entry holds no answer to the request (an origin's 206
        for other bytes than the client asked for)."""
        stored = self._put(entry)
        if flight is not None:
            flight.done(entry if stored else None)
        now = self.clock()
        cache_status = status.forwarded(self.cache_name, fwd, fwd_status=fwd_status, stored=stored)
        if entry.partial is None or self._answers(entry, ex.request):
            return self._serve(ex, entry, now, "MISS", cache_status)
        strip_surrogate(resp)
        self._mark(ex, resp, "MISS", cache_status)
        return resp

    def _combinable(self, key: str, req_headers: Headers, resp_headers: Headers,
                    length: int) -> Entry | None:
        """The stored incomplete response a new 206 for the same representation extends
        (RFC 9111 §3.4: matching strong validators), if any."""
        base, _ = self.store.lookup(key, req_headers)
        if (base is None or base.partial is None or base.partial.length != length
                or not same_representation(base, resp_headers)):
            return None
        return base

    def _put(self, entry: Entry) -> bool:
        """Store unless the entry could never be reused (no lifetime and nothing to revalidate)
        or combined partial content grew past ``max_object_bytes``."""
        if entry.lifetime <= 0 and entry.etag is None and entry.last_modified is None \
                and entry.swr <= 0 and entry.sie <= 0:
            self._counters["uncacheable"] += 1
            return False
        if len(entry.body) > self.cfg.max_object_bytes:
            self._counters["uncacheable"] += 1
            return False
        return self.store.put(entry)

    async def _buffer(self, body: AsyncIterator[bytes]) -> tuple[bytes, AsyncIterator[bytes] | None]:
        """Read up to max_object_bytes; ``rest`` is the unread iterator when it was longer."""
        parts: list[bytes] = []
        size = 0
        it = body.__aiter__()
        async for chunk in it:
            parts.append(chunk)
            size += len(chunk)
            if size > self.cfg.max_object_bytes:
                return b"".join(parts), it
        return b"".join(parts), None

    @staticmethod
    async def _chain(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        try:
            yield head
            async for chunk in rest:
                yield chunk
        finally:
            await close_body(rest)

    async def _tee(self, body: AsyncIterator[bytes],
                   make_entry: Callable[[bytes, CIMultiDict[str] | None], Entry],
                   flight: Flight | None, expected: int | None) -> AsyncIterator[bytes]:
        """Yield the origin's chunks; store the whole body only if it ended normally and complete."""
        parts: list[bytes] = []
        size = 0
        keep = True
        complete = False
        try:
            async for chunk in body:
                if keep:
                    size += len(chunk)
                    if size > self.cfg.max_object_bytes:
                        keep = False
                        parts = []
                        if flight is not None:
                            flight.release()
                    else:
                        parts.append(chunk)
                yield chunk
            complete = True
        finally:
            stored_entry = None
            if complete and keep and (expected is None or size == expected):
                entry = make_entry(b"".join(parts), trailers_of(body))
                if self._put(entry):
                    stored_entry = entry
            if flight is not None:
                flight.done(stored_entry)
            if not complete:
                await close_body(body)
