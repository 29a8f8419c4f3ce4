"""RFC 9211 Cache-Status on every kind of answer, checked with a strict Structured Field
(RFC 8941 §3.1 List) parser written here, plus the member's meaning per situation."""

from __future__ import annotations

import asyncio
import re

import pytest

from conformance_support import Reply

_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_INT = re.compile(r"-?[0-9]{1,15}")
FWD = {"bypass", "method", "uri-miss", "vary-miss", "miss", "request", "stale", "partial"}
PARAM_TYPES = {"hit": bool, "fwd": "token", "fwd-status": int, "ttl": int, "stored": bool,
               "collapsed": bool, "key": str, "detail": ("token", str)}


class SFError(ValueError):
    pass


def _bare(s: str, i: int) -> tuple[object, int]:
    if s.startswith('"', i):
        j, out = i + 1, []
        while j < len(s):
            c = s[j]
            if c == "\\":
                if j + 1 >= len(s) or s[j + 1] not in '"\\':
                    raise SFError("bad escape")
                out.append(s[j + 1])
                j += 2
            elif c == '"':
                return "".join(out), j + 1
            elif not (0x20 <= ord(c) <= 0x7E):
                raise SFError("bad string char")
            else:
                out.append(c)
                j += 1
        raise SFError("unterminated string")
    if s.startswith("?", i):
        if s[i + 1:i + 2] in ("0", "1"):
            return s[i + 1] == "1", i + 2
        raise SFError("bad boolean")
    m = _INT.match(s, i)
    if m and not (m.end() < len(s) and s[m.end()] == "."):
        return int(m.group()), m.end()
    m = _TOKEN.match(s, i)
    if m:
        return ("token", m.group()), m.end()
    raise SFError(f"bad item at {i}: {s[i:]!r}")


def parse_sf_list(s: str) -> list[tuple[object, dict[str, object]]]:
    """RFC 8941 §4.2.1 List of Items with Parameters (no inner lists: RFC 9211 uses none)."""
    out, i, n = [], 0, len(s)
    while i < n and s[i] == " ":
        i += 1
    while i < n:
        item, i = _bare(s, i)
        params: dict[str, object] = {}
        while i < n and s[i] == ";":
            i += 1
            while i < n and s[i] == " ":
                i += 1
            m = _KEY.match(s, i)
            if not m:
                raise SFError("bad key")
            i = m.end()
            if i < n and s[i] == "=":
                value, i = _bare(s, i + 1)
            else:
                value = True
            params[m.group()] = value
        out.append((item, params))
        while i < n and s[i] in " \t":
            i += 1
        if i == n:
            break
        if s[i] != ",":
            raise SFError(f"expected comma at {i}: {s!r}")
        i += 1
        while i < n and s[i] in " \t":
            i += 1
        if i == n:
            raise SFError("trailing comma")
    return out


def ours(headers) -> dict[str, object]:
    """Our member (the last one: nearest the client), validated against RFC 9211 §2."""
    members = parse_sf_list(", ".join(headers.getall("Cache-Status")))
    item, params = members[-1]
    assert item == ("token", "edgenode")
    for name, value in params.items():
        kind = PARAM_TYPES[name]                 # KeyError = a parameter RFC 9211 does not define
        if kind is bool:
            assert value is True, name           # §2: boolean parameters are only ever true
        elif kind is int:
            assert isinstance(value, int) and not isinstance(value, bool), name
        elif kind == "token":
            assert isinstance(value, tuple), name
        elif kind is str:
            assert isinstance(value, str), name
        else:
            assert isinstance(value, (tuple, str)), name
    assert not ("hit" in params and "fwd" in params)
    if "fwd" in params:
        assert params["fwd"][1] in FWD  # type: ignore[index]
    if "stored" in params or "collapsed" in params:
        assert "fwd" in params
    return {k: (v[1] if isinstance(v, tuple) else v) for k, v in params.items()}


def test_sf_parser_rejects_garbage():
    for bad in ["a;", "a,", 'a; b="x', "a; B=1", "a b", "a; ttl=1.5.5"]:
        with pytest.raises(SFError):
            parse_sf_list(bad)
    assert parse_sf_list('x; hit, "y"; fwd=uri-miss; detail="a b"') == [
        (("token", "x"), {"hit": True}), ("y", {"fwd": ("token", "uri-miss"), "detail": "a b"})]


async def test_miss_stored_then_hit(edge):
    edge.origin.script("/a", Reply(headers=[("Cache-Control", "max-age=60")]))
    miss = ours((await edge.get("/a")).headers)
    assert miss == {"fwd": "uri-miss", "fwd-status": 200, "stored": True} or miss == {"fwd": "uri-miss", "stored": True}
    edge.clock.advance(10)
    hit = ours((await edge.get("/a")).headers)
    assert hit == {"hit": True, "ttl": 50}


async def test_uncacheable_has_detail_and_no_stored(edge):
    edge.origin.script("/u", Reply(headers=[("Cache-Control", "no-store")]))
    cs = ours((await edge.get("/u")).headers)
    assert cs["fwd"] == "uri-miss" and "stored" not in cs and cs["detail"] == "no-store"


async def test_origin_members_kept_and_ours_last(edge):
    edge.origin.script("/o", Reply(headers=[("Cache-Control", "max-age=60"), ("Cache-Status", "OriginCache; hit; ttl=5")]))
    got = await edge.get("/o")
    members = parse_sf_list(", ".join(got.headers.getall("Cache-Status")))
    assert [m[0] for m in members] == [("token", "OriginCache"), ("token", "edgenode")]
    got = await edge.get("/o")
    members = parse_sf_list(", ".join(got.headers.getall("Cache-Status")))
    assert len(members) == 2 and ours(got.headers)["hit"] is True


async def test_revalidated_and_stale_and_request(edge):
    edge.origin.script("/r", Reply(headers=[("Cache-Control", "max-age=2, stale-if-error=60"), ("ETag", '"r"')],
                                   conditional=True))
    await edge.get("/r")
    edge.clock.advance(3)
    cs = ours((await edge.get("/r")).headers)
    assert cs["fwd"] == "stale" and cs["fwd-status"] == 304 and isinstance(cs["ttl"], int)
    cs = ours((await edge.get("/r", headers={"Cache-Control": "no-cache"})).headers)
    assert cs["fwd"] == "request" and cs["fwd-status"] == 304
    edge.origin.script("/r", Reply(503))
    edge.clock.advance(10)
    got = await edge.get("/r")
    cs = ours(got.headers)
    assert got.status == 200 and cs["fwd"] == "stale" and cs["fwd-status"] == 503
    assert cs["detail"] == "stale-if-error" and cs["ttl"] < 0


async def test_stale_while_revalidate_is_a_hit_with_negative_ttl(edge):
    edge.origin.script("/swr", Reply(headers=[("Cache-Control", "max-age=1, stale-while-revalidate=60")]))
    await edge.get("/swr")
    edge.clock.advance(5)
    cs = ours((await edge.get("/swr")).headers)
    assert cs == {"hit": True, "ttl": -4, "detail": "stale-while-revalidate"}


async def test_vary_miss_method_and_only_if_cached(edge):
    edge.origin.script("/v", Reply(headers=[("Cache-Control", "max-age=60"), ("Vary", "Foo")]))
    await edge.get("/v", headers={"Foo": "1"})
    assert ours((await edge.get("/v", headers={"Foo": "2"})).headers)["fwd"] == "vary-miss"
    assert ours((await edge.get("/v", method="POST", data=b"x")).headers)["fwd"] == "method"
    got = await edge.get("/nothing", headers={"Cache-Control": "only-if-cached"})
    cs = ours(got.headers)
    assert got.status == 504 and "hit" not in cs and "fwd" not in cs and cs["detail"] == "only-if-cached"


async def test_head_miss_and_collapsed(edge):
    edge.origin.script("/h", Reply(headers=[("Cache-Control", "max-age=60")], delay=0.2))
    assert ours((await edge.get("/h", method="HEAD")).headers)["fwd"] == "uri-miss"
    results = await asyncio.gather(edge.get("/h"), edge.get("/h"), edge.get("/h"))
    members = [ours(r.headers) for r in results]
    assert sum(1 for m in members if "stored" in m) == 1
    assert sum(1 for m in members if m.get("collapsed") or m.get("hit")) == 2
    assert all(m.get("fwd") == "uri-miss" for m in members if m.get("collapsed"))
