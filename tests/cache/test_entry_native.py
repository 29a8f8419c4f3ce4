"""The usual miss's entry made in C (``_entry.UsualEntry``, ``policy.usual_entry``) against
the Python it stands in for (``policy._build_entry``), on generated origin responses."""

from __future__ import annotations

import random
from http import HTTPStatus

import pytest
from multidict import CIMultiDict

from edgenode.cache.codec import decode, decode_record, encode
from edgenode.cache.directives import format_http_date
from edgenode.cache.policy import Entry, _build_entry, build_entry, response_directives, usual_entry
from tests.entry_support import entry_slots, same_value

NOW = 1_700_000_000.0
_NAMES = ("Content-Type", "content-type", "Cache-Control", "ETag", "etag", "Last-Modified", "Date", "DATE",
          "Expires", "Server", "Age", "AGE", "Surrogate-Key", "surrogate-key", "Surrogate-Control",
          "X-Cache", "x-cache", "Vary", "Connection", "Keep-Alive", "TE", "Te", "Trailer",
          "Transfer-Encoding", "Upgrade", "Proxy-Authenticate", "Proxy-Authorization",
          "Proxy-Connection", "Content-Length", "X-Long-Name-Beyond-Any-Special-One", "Set-Cookie2",
          "Ag", "Ages", "Datex", "CDN-Cache-Control", "Repr-Digest")
#: the names of the responses ``usual_entry`` leaves to Python
_OTHER_PATH = {"vary", "connection"}
_CACHE_CONTROL = ("public, max-age=3600", "max-age=60", "s-maxage=10, must-revalidate", "no-cache",
                  'no-cache="set-cookie2"', 'private="x-cache"', "private", "public",
                  "max-age=0, stale-while-revalidate=30, stale-if-error=60", "proxy-revalidate",
                  "max-age=abc", "")
_NOISE = ("", " ", "a b  c", "x\xa0y", "tag1 tag2\ttag3", "\x85z", "ü", "line\r\nbreak", "\u20ac",
          "W/\"1\"", '"21cc9ed62e6315059089"', "text/plain", "7", " 30 ", "10, 20")


def _date(rng: random.Random) -> str:
    ts = NOW + rng.randint(-10 * 86400, 10)
    return rng.choice((format_http_date(ts), format_http_date(ts), format_http_date(ts).upper(),
                       "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "soon", ""))


def _value(rng: random.Random, low: str) -> str:
    if low in ("date", "expires", "last-modified", "datex"):
        return _date(rng)
    if low in ("cache-control", "cdn-cache-control", "surrogate-control"):
        return rng.choice(_CACHE_CONTROL)
    return rng.choice(_NOISE)


def _response(rng: random.Random, usual: bool) -> list[tuple[str, str]]:
    """Origin fields; ``usual``: a valid Date and none of the rare names most of the time."""
    fields = []
    for _ in range(rng.randint(0, 10)):
        name = rng.choice(_NAMES)
        if usual and name.lower() in _OTHER_PATH | {"cdn-cache-control", "surrogate-control"}:
            continue
        fields.append((name, _value(rng, name.lower())))
    if usual:
        fields.insert(rng.randint(0, len(fields)), ("Date", format_http_date(NOW - rng.choice((0, 1, 5)))))
    if rng.random() < 0.05:
        fields.append(("N\xe4me", "x"))  # a name beyond ASCII
    return fields


def _args(rng: random.Random, fields: list[tuple[str, str]]) -> dict[str, object]:
    headers = CIMultiDict(fields)
    return dict(key=rng.choice(("http://a/x", "http://a/" + "k" * rng.randint(0, 40))), url="http://a/x",
                status=rng.choice((200, 200, 203, 301, 404, 500, 302)), reason=rng.choice(("OK", "")),
                resp_headers=headers, body=rng.randbytes(rng.choice((0, 3, 1024, 5000))),
                req_headers=CIMultiDict(), request_time=NOW - rng.choice((0.0, 0.5)), response_time=NOW,
                heuristic_fraction=0.1, heuristic_max=86400.0, default_ttl=rng.choice((0.0, 30.0)),
                fields=fields, directives=response_directives(headers))


def _reference(kw: dict[str, object]) -> Entry:
    cc, targeted = kw["directives"]  # type: ignore[misc]
    return _build_entry(kw["key"], kw["url"], kw["status"], kw["reason"], kw["resp_headers"],  # type: ignore[arg-type]
                        kw["body"], kw["req_headers"], kw["request_time"], kw["response_time"],  # type: ignore[arg-type]
                        kw["heuristic_fraction"], kw["heuristic_max"], kw["default_ttl"], None, None,  # type: ignore[arg-type]
                        kw["fields"], cc, targeted)  # type: ignore[arg-type]


def _native(kw: dict[str, object]) -> Entry | None:
    cc, targeted = kw["directives"]  # type: ignore[misc]
    return usual_entry(kw["key"], kw["url"], kw["status"], kw["reason"], kw["fields"], kw["body"], cc, targeted,
                       kw["request_time"], kw["response_time"], kw["heuristic_fraction"], kw["heuristic_max"],
                       kw["default_ttl"])


def test_generated_responses_give_the_python_entry():
    rng = random.Random(9111)
    made = 0
    for i in range(5_000):
        kw = _args(rng, _response(rng, usual=i % 4 != 0))
        ours = _native(kw)
        theirs = entry_slots(_reference(kw))
        if ours is None:
            continue
        made += 1
        mine = entry_slots(ours)
        for name in Entry.__slots__:
            assert same_value(mine[name], theirs[name]), (name, kw["fields"], mine[name], theirs[name])
        assert decode_record(encode(ours)).values == decode_record(encode(_reference(kw))).values
        assert entry_slots(decode(decode_record(encode(ours)), ours.body))["headers"] == theirs["headers"]
    assert made > 2_000  # the usual responses are made in C


def test_usual_responses_are_made_in_c():
    """Every generated response without the rare cases below is made by the C call."""
    rng = random.Random(7)
    for _ in range(3_000):
        fields = [(n, v) for n, v in _response(rng, usual=True)
                  if n.isascii() and "\r" not in v and "\n" not in v and "\u20ac" not in v
                  and n.lower() not in ("date", "age")]
        fields.append(("Date", format_http_date(NOW)))
        kw = _args(rng, fields)
        cc, targeted = kw["directives"]  # type: ignore[misc]
        named = any(cc.get(d) for d in ("private", "no-cache"))
        assert (_native(kw) is None) == (targeted or named), (fields, cc)


@pytest.mark.parametrize("extra, why", [
    (("Vary", "Accept-Encoding"), "Vary: the variant's values"),
    (("Connection", "x-foo"), "Connection: the fields it names"),
    (("Cache-Control", 'private="x-foo"'), "fields private names"),
    (("Cache-Control", 'no-cache="x-foo"'), "fields no-cache names"),
    (("CDN-Cache-Control", "max-age=5"), "targeted directives"),
    (("X-Foo", "a\nb"), "a value the wire block cannot hold"),
    (("X-Foo", "\u20ac"), "a value beyond Latin-1"),
    (("X-F\xf6o", "a"), "a name beyond ASCII"),
    (("Age", "\xb2"), "an Age the facts leave to Python"),
])
def test_what_python_makes(extra, why):
    fields = [("Content-Type", "text/plain"), ("Cache-Control", "max-age=60"),
              ("Date", format_http_date(NOW)), extra]
    kw = _args(random.Random(1), fields)
    assert _native(kw) is None, why
    made = build_entry(**kw)  # type: ignore[arg-type]
    assert entry_slots(made) == entry_slots(_reference(kw))


def test_a_response_without_a_date_gets_one_from_python():
    kw = _args(random.Random(2), [("Cache-Control", "max-age=60"), ("Date", "soon")])
    assert _native(kw) is None
    made = build_entry(**kw)  # type: ignore[arg-type]
    assert made.headers[-1] == ("Date", format_http_date(NOW)) and made.wire is not None


def test_the_bench_response():
    """The in-process bench's origin fields: made in C, the wire block and size as Python's."""
    fields = [("Content-Type", "application/octet-stream"), ("Cache-Control", "public, max-age=3600"),
              ("Surrogate-Key", "obj-bench"), ("Repr-Digest", "sha-256=:FpNz=:"), ("ETag", '"21cc"'),
              ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"), ("Content-Length", "1024"),
              ("Date", format_http_date(NOW - 1)), ("Server", "Python/3.11")]
    kw = _args(random.Random(3), fields)
    kw["body"] = b"x" * 1024
    made = _native(kw)
    assert made is not None
    assert made.surrogate_keys == ("obj-bench",) and made.surrogate_control == ()
    assert made.headers[-1] == ("Content-Length", "1024")
    assert made.wire == b"".join(f"{n}: {v}\r\n".encode() for n, v in fields
                                 if n not in ("Surrogate-Key", "Content-Length"))
    assert entry_slots(made) == entry_slots(_reference(kw))


def test_other_argument_types_go_to_python():
    with pytest.raises(TypeError):
        usual_entry("k", "u", 200)
    date = [("Date", format_http_date(NOW))]
    usual = ("k", "u", 200, "OK", date, b"", {}, False, NOW, NOW, 0.1, 1.0, 0.0)
    assert usual_entry(*usual) is not None
    # a status that is an int subclass, pairs not a list, a body not bytes, directives not a
    # dict, times not floats: Python stores them as they are
    for at, other in ((2, HTTPStatus.OK), (4, tuple(date)), (5, bytearray()), (6, CIMultiDict()), (8, 1),
                      (9, 2), (0, None)):
        args = list(usual)
        args[at] = other
        assert usual_entry(*args) is None, (at, other)
    assert usual_entry("k", "u", 200, "OK", [("Date", format_http_date(NOW)), ("x",)], b"", {}, False,
                       NOW, NOW, 0.1, 1.0, 0.0) is None


async def test_the_stage_answers_as_without_the_c_entry(make_harness, origin, monkeypatch):
    """Through the cache stage (both stores): the miss, the hit, a 304 and a range answered
    from an entry the C call made are the answers of one ``_build_entry`` made."""
    from edgenode.cache import policy, storing

    origin.route("/a", body=b"a" * 1024, cache_control="public, max-age=60", etag='"e"',
                 last_modified="Mon, 01 Jan 2024 00:00:00 GMT", surrogate_key="t1 t2", x_note="caf\xe9")
    origin.route("/v", body=b"v", cache_control="max-age=60", vary="Accept-Encoding")
    asks = (("/a", {}), ("/a", {}), ("/a", {"if_none_match": '"e"'}), ("/a", {"range": "bytes=0-3"}),
            ("/v", {"accept_encoding": "gzip"}), ("/v", {"accept_encoding": "gzip"}))

    async def answers(harness) -> list[object]:
        out = []
        for target, headers in asks:
            r, body, _ = await harness.send(target, **headers)
            out.append((r.status, list(r.headers.items()), body))
        return out

    made: list[object] = []

    def counted(*args: object) -> object:
        entry = usual_entry(*args)
        made.append(entry)
        return entry

    monkeypatch.setattr(policy, "usual_entry", counted)
    monkeypatch.setattr(storing, "usual_entry", counted)
    ours = await answers(make_harness())
    assert any(e is not None for e in made) and any(e is None for e in made)  # /a in C, /v in Python
    monkeypatch.setattr(policy, "usual_entry", lambda *args: None)
    monkeypatch.setattr(storing, "usual_entry", lambda *args: None)
    assert await answers(make_harness()) == ours


@pytest.mark.parametrize("size", [0, 1, 9, 10, 99, 100, 1023, 1024, 65536, 1_000_000])
def test_the_stored_content_length_is_the_bodys_length_in_digits(size: int) -> None:
    """The C writes the length's digits itself (``decimal``): as ``str(len(body))``."""
    kw = _args(random.Random(4), [("Cache-Control", "max-age=60"), ("Date", format_http_date(NOW))])
    kw["body"] = b"b" * size
    made = _native(kw)
    assert made is not None and made.headers[-1] == ("Content-Length", str(size))
    assert entry_slots(made)["headers"] == entry_slots(_reference(kw))["headers"]
