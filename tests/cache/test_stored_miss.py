"""The usual miss decided and made in one C call (``policy.usual_stored``, the cache stage's
``_stored_miss``) against the Python it stands in for: ``_from_origin``'s decision
(``response_directives``, ``storability``, the length checks), ``_put``'s and the entry
``build_entry`` makes, on generated origin responses; and through the stage, the answer
and the stored entry equal to the Python path's."""

from __future__ import annotations

import random
import time
from typing import Any

from multidict import CIMultiDict, getversion

from edgenode.cache import storing
from edgenode.cache.directives import CC_MEMO, format_http_date, parse_cache_control
from edgenode.cache.policy import Entry, build_entry, response_directives, storability, usual_stored
from edgenode.cache.stage import CacheStage
from edgenode.config import CacheConfig
from edgenode.http.messages import FROM_BODY, Request, Response, made_response
from edgenode.pipeline.chain import Chain
from edgenode.pipeline.exchange import Exchange
from tests.entry_support import entry_slots, same_value

NOW = 1_700_000_000.0
MAX_BYTES = 4096
_NAMES = ("Content-Type", "Cache-Control", "cache-control", "ETag", "Last-Modified", "Date", "Expires",
          "Server", "Age", "Surrogate-Key", "Surrogate-Control", "CDN-Cache-Control", "Set-Cookie",
          "set-cookie2", "Content-Length", "content-length", "X-Cache", "Vary", "Connection",
          "Content-Range", "Repr-Digest", "Expiresx", "Cache-Controls")
#: the names of the usual response (half the generated ones draw from these only)
_USUAL_NAMES = ("Content-Type", "Cache-Control", "ETag", "Last-Modified", "Server", "Age", "Surrogate-Key",
                "Content-Length", "Repr-Digest", "Expires")
_CACHE_CONTROL = ("public, max-age=3600", "max-age=60", "s-maxage=10, must-revalidate", "no-cache",
                  'no-cache="set-cookie"', 'private="x"', "private", "public", "no-store",
                  "must-understand, no-store", "max-age=0", "max-age=0, stale-while-revalidate=30",
                  "max-age=abc", "", "immutable")
_STATUSES = (200, 200, 200, 203, 204, 206, 301, 302, 304, 404, 410, 500, 100)


def _value(rng: random.Random, name: str, body: bytes) -> str:
    low = name.lower()
    if low in ("date", "expires", "last-modified"):
        ts = NOW + rng.randint(-10 * 86400, 10)
        return rng.choice((format_http_date(ts), format_http_date(ts), "soon"))
    if low in ("cache-control", "cdn-cache-control", "surrogate-control"):
        return rng.choice(_CACHE_CONTROL)
    if low == "content-length":
        return rng.choice((str(len(body)), str(len(body)), str(len(body) + 1), "0" + str(len(body)), "abc",
                           "", " 5", "\xb2", "1" * 20))
    if low == "content-range":
        return rng.choice(("bytes 0-9/100", "bytes */100"))
    return rng.choice(("", "x", "a b", '"v1"', "text/plain", "ü"))


def _response(rng: random.Random) -> tuple[int, list[tuple[str, str]], bytes]:
    body = rng.randbytes(rng.choice((0, 10, 1024, MAX_BYTES, MAX_BYTES + 1)))
    names = _USUAL_NAMES if rng.random() < 0.5 else _NAMES
    fields = [(name, _value(rng, name, body)) for name in rng.sample(names, rng.randint(0, min(7, len(names))))]
    if rng.random() < 0.9:
        fields.insert(rng.randint(0, len(fields)), ("Date", format_http_date(NOW - rng.choice((0, 1, 5)))))
    return rng.choice(_STATUSES), fields, body


def _python(status: int, fields: list[tuple[str, str]], body: bytes) -> Entry | None:
    """What the stage's Python stores for a GET with no directives or credentials (None:
    it stores nothing), in ``_from_origin``'s, ``_make_entry``'s and ``_put``'s steps."""
    headers = CIMultiDict(fields)
    cc, targeted = response_directives(headers)
    if storability("GET", CIMultiDict(), {}, status, headers, cc, targeted) is not None or status == 206:
        return None
    cl = headers.get("content-length")
    expected = int(cl) if cl is not None and cl.isascii() and cl.isdigit() else None
    if len(body) > MAX_BYTES or (expected is not None and expected != len(body)):
        return None
    entry = build_entry(key="k", url="http://a/x", status=status, reason="OK", resp_headers=headers, body=body,
                        req_headers=CIMultiDict(), request_time=NOW - 0.5, response_time=NOW,
                        heuristic_fraction=0.1, heuristic_max=86400.0, default_ttl=0.0,
                        fields=list(fields), directives=(cc, targeted))
    if (entry.lifetime <= 0 and entry.etag is None and entry.last_modified is None and entry.swr <= 0
            and entry.sie <= 0):
        return None
    return entry


def _native(status: int, fields: list[tuple[str, str]], body: bytes) -> Entry | None:
    return usual_stored("k", "http://a/x", status, "OK", list(fields), body, CC_MEMO, MAX_BYTES, NOW - 0.5, NOW,
                        0.1, 86400.0, 0.0)


def test_generated_responses_are_stored_as_the_python_decides() -> None:
    rng = random.Random(9111)
    made = 0
    for _ in range(6_000):
        status, fields, body = _response(rng)
        theirs = _python(status, fields, body)  # (parses the Cache-Control values: the memo has them)
        ours = _native(status, fields, body)
        if ours is None:
            continue
        made += 1
        assert theirs is not None, (status, fields, len(body))
        mine, want = entry_slots(ours), entry_slots(theirs)
        for name in Entry.__slots__:
            assert same_value(mine[name], want[name]), (name, status, fields, mine[name], want[name])
    assert made > 500  # the usual responses are decided in C


def _usual(**extra: str) -> list[tuple[str, str]]:
    fields = [("Content-Type", "text/plain"), ("Cache-Control", "public, max-age=3600"), ("ETag", '"v1"'),
              ("Date", format_http_date(NOW)), ("Content-Length", "10")]
    fields += [(name.replace("_", "-"), value) for name, value in extra.items()]
    parse_cache_control([v for n, v in fields if n.lower() == "cache-control"])
    return fields


def test_the_usual_response_is_made_in_c() -> None:
    entry = _native(200, _usual(), b"0123456789")
    assert entry is not None and entry.lifetime == 3600.0 and entry.etag == '"v1"'


def test_what_the_c_call_leaves_to_python() -> None:
    body = b"0123456789"
    cases = {
        "set-cookie": (200, _usual(Set_Cookie="a=b"), body),
        "targeted cdn": (200, _usual(CDN_Cache_Control="max-age=5"), body),
        "surrogate-control": (200, _usual(Surrogate_Control="max-age=5"), body),
        "vary": (200, _usual(Vary="accept"), body),
        "length mismatch": (200, _usual(), body + b"!"),
        "too large": (200, [(n, v) for n, v in _usual() if n != "Content-Length"], b"x" * (MAX_BYTES + 1)),
        "partial": (206, _usual(Content_Range="bytes 0-9/100"), body),
        "not modified": (304, _usual(), body),
        "interim": (100, _usual(), body),
    }
    for directives in ("no-store", "private", "must-understand, max-age=60", 'no-cache="x"', "max-age=0"):
        fields = [(n, v) for n, v in _usual() if n not in ("Cache-Control", "ETag")] + [("Cache-Control", directives)]
        parse_cache_control([directives])
        cases[directives] = (200, fields, body)
    cases["no freshness information"] = (302, [(n, v) for n, v in _usual() if n != "Cache-Control"], body)
    for name, (status, fields, data) in cases.items():
        assert _native(status, fields, data) is None, name


def test_directives_not_in_the_memo_are_left_to_python() -> None:
    fields = _usual()
    fields[1] = ("Cache-Control", "max-age=77, public")
    CC_MEMO.pop(("max-age=77, public",), None)
    assert _native(200, fields, b"0123456789") is None
    parse_cache_control(["max-age=77, public"])
    entry = _native(200, fields, b"0123456789")
    assert entry is not None and entry.lifetime == 77.0


BODY = b"y" * 700


def _origin(fields: list[tuple[str, str]]) -> Any:
    """A terminal handler answering as the origin client does: the plain pairs with the head."""
    async def origin(ex: Exchange) -> Response:
        headers = CIMultiDict(fields)
        return made_response(200, headers, BODY, "Fine", (getversion(headers), list(fields)), FROM_BODY)
    return origin


async def _through(stage: CacheStage, fields: list[tuple[str, str]], request: dict[str, str]) -> Response:
    ex = Exchange(Request("GET", "/obj", CIMultiDict({"Host": "example.com", **request})))
    out = stage.handle(ex, Chain([], _origin(fields)))
    return out if isinstance(out, Response) else await out


async def test_the_stage_answers_and_stores_as_its_python_path(monkeypatch: Any) -> None:
    """The same miss through ``_stored_miss`` and, with the C call declining, through
    ``_from_origin``: the same answer, the same stored entry, the same counters."""
    date = format_http_date(time.time())
    usual = [("Content-Type", "text/plain"), ("Cache-Control", "max-age=600"), ("ETag", '"v1"'),
             ("Date", date), ("Content-Length", str(len(BODY))), ("Surrogate-Key", "a b")]
    parse_cache_control(["max-age=600"])
    real = storing.usual_stored
    for request in ({}, {"User-Agent": "t"}):
        answers = []
        for native in (True, False):
            calls: list[object] = []

            def spy(*args: Any, native: bool = native, calls: list[object] = calls) -> Entry | None:
                out = real(*args) if native else None
                calls.append(out)
                return out

            monkeypatch.setattr(storing, "usual_stored", spy)
            stage = CacheStage(CacheConfig())
            resp = await _through(stage, usual, request)
            entry, _ = stage.store.lookup(stage.keys.for_request(Request("GET", "/obj", CIMultiDict(
                {"Host": "example.com"})))[1], CIMultiDict())
            assert len(calls) == 1 and (calls[0] is not None) == native
            assert entry is not None
            answers.append((resp.status, resp.reason, list(resp.headers.items()), resp.body, resp._trailers,
                            resp.wire_head[1] if resp.wire_head else None,
                            {k: v for k, v in entry_slots(entry).items() if k not in ("hit", "request_time",
                                                                                 "response_time", "fresh_until", "age0")},
                            dict(stage.stats())))
        assert answers[0] == answers[1]
        assert "Surrogate-Key" not in dict(answers[0][2])


async def test_a_request_with_directives_or_credentials_takes_the_python_path(monkeypatch: Any) -> None:
    calls: list[object] = []
    real = storing.usual_stored
    monkeypatch.setattr(storing, "usual_stored", lambda *a: calls.append(a) or real(*a))
    fields = [("Cache-Control", "max-age=600"), ("Date", format_http_date(time.time()))]
    parse_cache_control(["max-age=600"])
    stage = CacheStage(CacheConfig())
    resp = await _through(stage, fields, {"Authorization": "Basic eDp5"})
    assert "fwd=uri-miss" in resp.headers["Cache-Status"] and "stored" not in resp.headers["Cache-Status"]
    resp = await _through(stage, fields, {"Cache-Control": "no-store"})
    assert "stored" not in resp.headers["Cache-Status"]
    assert calls == []
    resp = await _through(stage, fields, {})
    assert resp.headers["Cache-Status"] == "edgenode; fwd=uri-miss; stored" and len(calls) == 1


async def test_fields_changed_after_the_front_end_found_them_plain_are_honoured() -> None:
    """``Exchange.plain`` spares ``handle`` its checks only while the fields are the ones
    found plain: a directive added since (by a filter) is obeyed."""
    fields = [("Cache-Control", "max-age=600"), ("Date", format_http_date(time.time()))]
    stage = CacheStage(CacheConfig())
    for added, stored in (({}, True), ({"Cache-Control": "no-store"}, False)):
        ex = Exchange(Request("GET", f"/p{len(added)}", CIMultiDict({"Host": "example.com"})))
        ex.plain = getversion(ex.request.headers)
        for name, value in added.items():
            ex.request.headers[name] = value
        out = stage.handle(ex, Chain([], _origin(fields)))
        resp = out if isinstance(out, Response) else await out
        assert ("stored" in resp.headers["Cache-Status"]) == stored, added
