"""Whole-path behaviours through real sockets: purge, broken origin bodies, origin refusing
connections, collapsing, and a second third-party client (curl)."""

from __future__ import annotations

import asyncio
import shutil
import socket

import aiohttp
import pytest

from conformance_support import BOUND, Reply

FRESH = [("Cache-Control", "max-age=600")]


async def test_purge_url_then_miss(edge):
    edge.origin.script("/pu", Reply(headers=FRESH + [("Vary", "Foo")], body=b"x"))
    await edge.get("/pu?a=1", headers={"Foo": "1"})
    await edge.get("/pu?a=1", headers={"Foo": "2"})
    await edge.get("/pu?a=1", method="HEAD", headers={"Foo": "1"})
    assert edge.origin.hits["/pu"] == 2
    assert edge.store.purge_url(edge.client.url("/pu?a=1")) == 2
    got = await edge.get("/pu?a=1", headers={"Foo": "1"})
    assert edge.origin.hits["/pu"] == 3 and got.headers["X-Cache"] == "MISS"


async def test_soft_purge_revalidates(edge):
    edge.origin.script("/sp", Reply(headers=FRESH + [("ETag", '"s"')], body=b"x", conditional=True))
    await edge.get("/sp")
    assert edge.store.purge_url(edge.client.url("/sp"), soft=True) == 1
    got = await edge.get("/sp")
    assert edge.origin.statuses["/sp"] == [200, 304] and got.headers["X-Cache"] == "REVALIDATED"


async def test_surrogate_key_purge_and_fields_never_reach_clients(edge):
    edge.origin.script("/sk", Reply(headers=FRESH + [("Surrogate-Key", "k1 k2"), ("Surrogate-Control", "max-age=9")]))
    got = await edge.get("/sk")
    assert "Surrogate-Key" not in got.headers and "Surrogate-Control" not in got.headers
    got = await edge.get("/sk")
    assert "Surrogate-Key" not in got.headers and edge.origin.hits["/sk"] == 1
    assert edge.store.purge_keys(["k2"]) == 1
    await edge.get("/sk")
    assert edge.origin.hits["/sk"] == 2


async def test_origin_reset_mid_body_aborts_client_and_is_not_cached(edge):
    body = b"z" * 200_000
    edge.origin.script("/reset", Reply(headers=FRESH, body=body, reset_after=50_000))
    with pytest.raises(aiohttp.ClientPayloadError):
        await edge.get("/reset")
    edge.origin.script("/reset", Reply(headers=FRESH, body=body))
    got = await edge.get("/reset")
    assert got.body == body and edge.origin.hits["/reset"] == 2 and got.headers["X-Cache"] == "MISS"
    got = await edge.get("/reset")
    assert got.headers["X-Cache"] == "HIT" and edge.origin.hits["/reset"] == 2


async def test_chunked_origin_body_is_teed_into_the_store(edge):
    body = bytes(range(256)) * 100
    edge.origin.script("/chunked", Reply(headers=FRESH, body=body, chunked=True))
    got = await edge.get("/chunked")
    assert got.body == body and "stored" in got.headers["Cache-Status"]
    got = await edge.get("/chunked")
    assert got.body == body and got.headers["X-Cache"] == "HIT" and got.headers["Content-Length"] == str(len(body))
    assert edge.origin.hits["/chunked"] == 1


def _refused_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_stale_if_error_when_origin_refuses_connections(edge, make_edge, clock):
    edge.origin.script("/sie", Reply(headers=[("Cache-Control", "max-age=1, stale-if-error=300")], body=b"old"))
    await edge.get("/sie")
    edge.origin.script("/mr", Reply(headers=[("Cache-Control", "max-age=1, must-revalidate")], body=b"old"))
    await edge.get("/mr")
    # same store and clock, new upstream whose origin refuses connections
    dead = await make_edge(origin_port=_refused_port(), store=edge.store)
    clock.advance(10)
    got = await dead.get("/sie", headers={"Host": f"127.0.0.1:{edge.port}"})
    assert got.status == 200 and got.body == b"old" and "detail=stale-if-error" in got.headers["Cache-Status"]
    got = await dead.get("/mr", headers={"Host": f"127.0.0.1:{edge.port}"})
    assert got.status == 504 and got.body != b"old"                 # RFC 9111 §5.2.2.2
    assert got.headers["Cache-Status"] == "edgenode; detail=must-revalidate"
    clock.advance(1000)                       # past stale-if-error: disconnected operation
    got = await dead.get("/sie", headers={"Host": f"127.0.0.1:{edge.port}"})
    assert got.status == 200 and got.body == b"old"
    assert "detail=origin-unreachable" in got.headers["Cache-Status"]
    assert "fwd-status" not in got.headers["Cache-Status"]       # the origin sent nothing
    clock.advance(86400)                      # past stale_if_unreachable (one day)
    got = await dead.get("/sie", headers={"Host": f"127.0.0.1:{edge.port}"})
    assert got.status == 502


@pytest.mark.parametrize("cc, window, served", [
    ("max-age=1", 86400, True),              # RFC 9111 §4.2.4: a disconnected cache may serve stale
    ("max-age=1", 5, False),                 # ... within stale_if_unreachable
    ("max-age=1", 0, False),                 # ... which 0 turns off
    ("max-age=1, no-cache", 86400, False),   # never when a directive forbids stale
    ("max-age=1, proxy-revalidate", 86400, False),
    ("max-age=1, s-maxage=1", 86400, False),
])
async def test_stale_served_when_origin_unreachable(edge, make_edge, clock, cc, window, served):
    """cache-tests stale-close and stale-close-*: the origin closes the connection."""
    edge.origin.script("/un", Reply(headers=[("Cache-Control", cc), ("ETag", '"u"')], body=b"old"))
    await edge.get("/un")
    dead = await make_edge(origin_port=_refused_port(), store=edge.store, stale_if_unreachable=window)
    clock.advance(10)
    got = await dead.get("/un", headers={"Host": f"127.0.0.1:{edge.port}"})
    assert (got.status == 200 and got.body == b"old") is served
    if served:
        assert got.headers["X-Cache"] == "STALE"
    else:
        assert got.status in (502, 504)


async def test_origin_5xx_is_not_unreachable(edge, clock):
    """An origin that answers (here 503) is reachable: only stale-if-error covers it."""
    edge.origin.script("/5", Reply(headers=[("Cache-Control", "max-age=1")], body=b"old"), Reply(503))
    await edge.get("/5")
    clock.advance(10)
    got = await edge.get("/5")
    assert got.status == 503


async def test_twenty_concurrent_requests_collapse_to_one(edge):
    edge.origin.script("/c", Reply(headers=FRESH, body=b"c" * 10_000, delay=0.3))
    results = await asyncio.gather(*(edge.get("/c") for _ in range(20)))
    assert edge.origin.hits["/c"] == 1
    assert all(r.status == 200 and r.body == b"c" * 10_000 for r in results)
    kinds = [r.headers["X-Cache"] for r in results]
    # one leader; the others waited on it (a straggler arriving after the store is a HIT)
    assert kinds.count("MISS") == 1 and kinds.count("COLLAPSED") + kinds.count("HIT") == 19


async def test_uncacheable_concurrent_requests_are_not_held(edge):
    edge.origin.script("/nc", Reply(headers=[("Cache-Control", "no-store")], delay=0.1))
    results = await asyncio.gather(*(edge.get("/nc") for _ in range(5)))
    assert all(r.status == 200 for r in results) and edge.origin.hits["/nc"] == 5


# -- curl -------------------------------------------------------------------------------------
async def curl(*args: str) -> tuple[int, dict[str, str], bytes]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-s", "-i", "--max-time", str(int(BOUND)), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), BOUND + 2)
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")


@needs_curl
async def test_curl_hit_head_range_conditional(edge):
    edge.origin.script("/curl", Reply(headers=FRESH + [("ETag", '"cu"')], body=b"0123456789"))
    url = edge.client.url("/curl")
    status, h, body = await curl(url)
    assert status == 200 and body == b"0123456789" and h["x-cache"] == "MISS"
    status, h, body = await curl(url)
    assert status == 200 and h["x-cache"] == "HIT" and int(h["age"]) >= 0
    status, h, body = await curl("-I", url)
    assert status == 200 and h["content-length"] == "10" and body == b""
    status, h, body = await curl("-r", "2-4", url)
    assert status == 206 and body == b"234" and h["content-range"] == "bytes 2-4/10"
    status, h, body = await curl("-H", 'If-None-Match: "cu"', url)
    assert status == 304 and body == b""
    assert edge.origin.hits["/curl"] == 1
