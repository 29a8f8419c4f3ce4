"""The simulated origin over real sockets: routes, validators, streaming, faults."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import tracemalloc

import aiohttp
import pytest
from PIL import Image

from edgenode.config import ConfigError
from edgenode.origin import content
from edgenode.origin.app import start_origin
from edgenode.origin.settings import OriginSettings, add_origin_arguments, settings_from_args


async def _origin(**kw):
    runner, port = await start_origin(OriginSettings(listen=("127.0.0.1", 0), **kw))
    return runner, f"http://127.0.0.1:{port}", port


@pytest.fixture
async def origin():
    runner, url, _ = await _origin()
    async with aiohttp.ClientSession(base_url=url) as session:
        yield session
    await runner.cleanup()


async def test_obj_body_and_cache_headers(origin):
    async with origin.get("/obj/hello?size=1k&keys=a,b&vary=Accept-Encoding&swr=30&sie=600") as r:
        body = await r.read()
        assert r.status == 200
        assert body == content.object_body("hello", 1024)
        assert r.headers["Cache-Control"] == "public, max-age=60, stale-while-revalidate=30, stale-if-error=600"
        assert r.headers["Surrogate-Key"] == "a b obj-hello"
        assert r.headers["Vary"] == "Accept-Encoding"
        assert r.headers["ETag"] == content.object_etag("hello", 1024)
        assert not r.headers["ETag"].startswith("W/")
        assert r.headers["Last-Modified"] == content.http_date(content.last_modified("hello"))
    async with origin.get("/obj/hello?size=1k&cc=private,%20max-age=5&ttl=9") as r:
        assert r.headers["Cache-Control"] == "private, max-age=5"
    async with origin.get("/obj/hello?ttl=7") as r:
        assert r.headers["Cache-Control"] == "public, max-age=7"
        assert len(await r.read()) == 1024  # default size


async def test_obj_is_deterministic_and_versioned(origin):
    async with origin.get("/obj/x?size=100k") as a, origin.get("/obj/x?size=100k") as b:
        assert await a.read() == await b.read()
        assert a.headers["ETag"] == b.headers["ETag"]
    async with origin.get("/obj/x?size=100k&v=2") as c:
        assert c.headers["ETag"] != a.headers["ETag"]
        assert len(await c.read()) == 100 * 1024


async def test_conditional_requests(origin):
    async with origin.get("/obj/c?size=2000") as r:
        etag, modified = r.headers["ETag"], r.headers["Last-Modified"]
    async with origin.get("/obj/c?size=2000", headers={"If-None-Match": f'"nope", {etag}'}) as r:
        assert r.status == 304
        assert await r.read() == b""
        assert r.headers["ETag"] == etag
    async with origin.get("/obj/c?size=2000", headers={"If-None-Match": f"W/{etag}"}) as r:
        assert r.status == 304  # weak comparison for If-None-Match
    async with origin.get("/obj/c?size=2000", headers={"If-None-Match": '"other"'}) as r:
        assert r.status == 200
    async with origin.get("/obj/c?size=2000", headers={"If-Modified-Since": modified}) as r:
        assert r.status == 304
    async with origin.get("/obj/c?size=2000",
                          headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}) as r:
        assert r.status == 200
    # If-None-Match wins over If-Modified-Since
    async with origin.get("/obj/c?size=2000",
                          headers={"If-None-Match": '"other"', "If-Modified-Since": modified}) as r:
        assert r.status == 200
    async with origin.get("/obj/c?size=2000", headers={"If-Modified-Since": "garbage"}) as r:
        assert r.status == 200


async def test_head_has_length_and_no_body(origin):
    async with origin.head("/obj/h?size=5000") as r:
        assert r.status == 200
        assert r.headers["Content-Length"] == "5000"
        assert await r.read() == b""


@pytest.mark.parametrize("query", ["size=lots", "size=300m", "ttl=-1", "ttl=x"])
async def test_bad_queries_are_400(origin, query):
    async with origin.get(f"/obj/b?{query}") as r:
        assert r.status == 400
        assert (await r.text()).split(":")[0] in ("size", "ttl")


async def test_stream_bytes_match_and_chunked(origin):
    size = 3 * 1024 * 1024 + 17
    async with origin.get(f"/stream/s?size={size}&chunk=7000&chunked=1") as r:
        assert r.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in r.headers
        assert await r.read() == content.object_body("s", size)
    async with origin.get("/stream?size=100k") as r:
        assert r.headers["Content-Length"] == str(100 * 1024)
        assert len(await r.read()) == 100 * 1024


async def test_stream_large_body_keeps_memory_bounded():
    """256 MiB pass through while the process never holds more than a few MiB of it."""
    runner, _, port = await _origin()
    size = 256 * 1024 * 1024
    tracemalloc.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /stream?size={size}&chunk=1m HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert f"Content-Length: {size}".encode() in head
        received = 0
        while received < size:
            piece = await reader.read(1 << 20)
            assert piece, "origin closed early"
            received += len(piece)
        writer.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await runner.cleanup()
    assert received == size
    assert peak < 32 * 1024 * 1024


@pytest.mark.parametrize("ext,fmt,ctype", [("jpg", "JPEG", "image/jpeg"), ("png", "PNG", "image/png"),
                                           ("webp", "WEBP", "image/webp")])
async def test_images_decode_at_requested_size(origin, ext, fmt, ctype):
    async with origin.get(f"/image/cat.{ext}?w=320&h=200") as r:
        data = await r.read()
        assert r.headers["Content-Type"] == ctype
        etag = r.headers["ETag"]
        assert "max-age=60" in r.headers["Cache-Control"]
    img = Image.open(io.BytesIO(data))
    assert img.format == fmt
    assert img.size == (320, 200)
    assert len(img.convert("RGB").getcolors(1 << 20)) > 10  # gradient and shapes, not a flat fill
    async with origin.get(f"/image/cat.{ext}?w=320&h=200") as again:
        assert await again.read() == data  # deterministic
    async with origin.get(f"/image/cat.{ext}?w=320&h=200", headers={"If-None-Match": etag}) as r304:
        assert r304.status == 304


async def test_image_default_size_and_bad_input(origin):
    async with origin.get("/image/big.jpg") as r:
        assert Image.open(io.BytesIO(await r.read())).size == (2000, 1500)
    async with origin.get("/image/x.jpg?w=0") as r:
        assert r.status == 400
    async with origin.get("/image/x.gif") as r:
        assert r.status == 404


async def test_error_injection_follows_the_seed():
    runner, url, _ = await _origin(error_rate=0.3, seed=7)
    try:
        async with aiohttp.ClientSession(base_url=url) as s:
            statuses = []
            for i in range(200):
                async with s.get(f"/obj/e{i}") as r:
                    statuses.append(r.status)
            async with s.get("/__stats") as r:
                stats = await r.json()
    finally:
        await runner.cleanup()
    rng = random.Random(7)
    expected = []
    for _ in range(200):
        expected.append(rng.choice((500, 503)) if rng.random() < 0.3 else 200)
    assert statuses == expected
    errors = sum(1 for s in statuses if s != 200)
    assert 40 <= errors <= 80
    assert {500, 503} <= set(statuses)
    assert stats["errors_injected"] == errors
    assert stats["total"] == 200  # /__stats itself is neither counted nor failed


async def test_forced_error_and_latency_query(origin):
    async with origin.get("/obj/f?error=503") as r:
        assert r.status == 503
        assert r.headers["Cache-Control"] == "no-store"
    async with origin.get("/obj/f?error=418") as r:
        assert r.status == 400
    async with origin.get("/obj/f?latency_ms=5") as r:
        assert r.status == 200


async def test_reset_mid_body_aborts_the_connection():
    runner, _, port = await _origin()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /reset-mid-body?size=200000 HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"Content-Length: 200000" in head
        body = b""
        try:
            while chunk := await reader.read(65536):
                body += chunk
        except ConnectionResetError:
            pass
        writer.close()
    finally:
        await runner.cleanup()
    assert 0 < len(body) < 200000


async def test_counter_and_stats(origin):
    for expected in ("1", "2", "3"):
        async with origin.get("/counter/k1") as r:
            assert await r.text() == expected
    async with origin.get("/counter/k2") as r:
        assert await r.text() == "1"
    async with origin.get("/__stats") as r:
        stats = await r.json()
    assert stats["counters"] == {"k1": 3, "k2": 1}
    assert stats["paths"]["/counter/k1"] == 3
    assert stats["total"] == 4
    async with origin.delete("/__stats") as r:
        assert r.status == 200
    async with origin.get("/__stats") as r:
        assert (await r.json())["total"] == 0


async def test_echo_reflects_the_request(origin):
    async with origin.post("/echo/some/path?q=1", data=b"payload",
                           headers={"X-Forwarded-For": "10.0.0.1", "Via": "1.1 edge"}) as r:
        doc = await r.json()
    assert doc["method"] == "POST"
    assert doc["path"] == "/echo/some/path"
    assert doc["query"] == "q=1"
    assert doc["body"] == "payload"
    assert doc["headers"]["x-forwarded-for"] == "10.0.0.1"
    assert ["Via", "1.1 edge"] in doc["header_list"]


async def test_misc_routes(origin):
    async with origin.get("/nocache") as r:
        assert r.headers["Cache-Control"] == "no-store"
    async with origin.get("/private") as r:
        assert r.headers["Cache-Control"].startswith("private")
    async with origin.get("/vary/Accept-Language", headers={"Accept-Language": "fr"}) as r:
        assert r.headers["Vary"] == "Accept-Language"
        assert await r.text() == "Accept-Language: fr\n"
    async with origin.get("/set-cookie") as r:
        assert r.headers["Set-Cookie"].startswith("session=")
    async with origin.get("/status/418") as r:
        assert r.status == 418
    async with origin.get("/status/99") as r:
        assert r.status == 400
    async with origin.get("/slow?delay_ms=1") as r:
        assert await r.text() == "slept 1 ms\n"


def test_settings_from_table_and_flags():
    s = OriginSettings.from_table({"listen": "127.0.0.1:9000", "latency": "20ms", "jitter": "5ms",
                                   "error_rate": 0.1, "max_age": 30, "seed": 3})
    assert s.listen == ("127.0.0.1", 9000)
    assert s.latency_ms == pytest.approx(20.0) and s.jitter_ms == pytest.approx(5.0)
    parser = argparse.ArgumentParser()
    add_origin_arguments(parser)
    s2 = settings_from_args(parser.parse_args(["--max-age", "5", "--latency", "1ms"]), s)
    assert (s2.max_age, s2.latency_ms, s2.seed) == (5, pytest.approx(1.0), 3)
    with pytest.raises(ConfigError, match=r"^origin\.error_rate: "):
        OriginSettings.from_table({"error_rate": 2})
    with pytest.raises(ConfigError, match=r"^origin\.lattency: unknown key"):
        OriginSettings.from_table({"lattency": "1ms"})
    with pytest.raises(ConfigError, match=r"^origin\.listen: "):
        OriginSettings.from_table({"listen": "nope"})


def test_size_parsing():
    assert content.parse_size("1k", 0, 10**9) == 1024
    assert content.parse_size("1m", 0, 10**9) == 1024 * 1024
    assert content.parse_size(None, 77, 10) == 77
    with pytest.raises(ValueError):
        content.parse_size("1x", 0, 10**9)


@pytest.mark.parametrize("path", ["/vary/x-bin", "/echo", "/obj/latin?size=10"])
async def test_header_bytes_outside_utf8_are_latin1(path) -> None:
    """obs-text in a header (``caf\\xe9 \\xff``, not UTF-8) is read as Latin-1, never a 500."""
    runner, _, port = await _origin()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: a\r\nX-Bin: caf\xe9 \xff\r\n"
                     b"If-None-Match: \"\xe9\"\r\nConnection: close\r\n\r\n")
        raw = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    finally:
        await runner.cleanup()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), raw[:200]
    if path == "/vary/x-bin":
        assert body.decode() == "x-bin: caf\xe9 \xff\n"
    elif path == "/echo":
        assert json.loads(body)["headers"]["x-bin"] == "caf\xe9 \xff"
