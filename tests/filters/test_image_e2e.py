"""The image filter end to end: client -> node (image-accept -> cache -> image) ->
a real aiohttp origin on 127.0.0.1, with the image service registered in the node."""

from __future__ import annotations

import io
from typing import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from edgenode.config import parse_config
from edgenode.images.service import IMAGE_UPSTREAM, ImageService
from tests.filters.conftest import ROOT


def _jpeg(size=(2000, 1500)) -> bytes:
    im = Image.linear_gradient("L").resize(size).convert("RGB")
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85)
    return buf.getvalue()


SOURCE = _jpeg()


@pytest.fixture
async def origin() -> AsyncIterator[tuple[str, list[str]]]:
    hits: list[str] = []

    async def photo(request: web.Request) -> web.Response:
        hits.append(request.path_qs)
        return web.Response(body=SOURCE, content_type="image/jpeg",
                            headers={"ETag": '"p1"', "Cache-Control": "max-age=300"})

    app = web.Application()
    app.router.add_get("/photo.jpg", photo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", hits
    finally:
        await runner.cleanup()


@pytest.fixture
async def node(build_filter, origin):
    from edgenode.node import Node

    wasm = str(build_filter("image"))
    cfg = {"allowed_widths": [200, 400], "path_prefix": "/img/"}
    config = parse_config({
        "server": {"listen": "127.0.0.1:0"},
        "admin": {"listen": "off"},
        "origins": {"default": {"url": origin[0]}},
        "chain": [
            {"type": "wasm", "name": "image-accept", "module": wasm, "root_id": "image-accept", "config": cfg},
            {"type": "cache"},
            {"type": "wasm", "name": "image", "module": wasm, "root_id": "image", "config": cfg},
        ],
        "log": {"access": "off"},
    }, ROOT)
    n = Node(config, admin=False)
    service = ImageService(workers=1)
    n.register_internal_upstream(IMAGE_UPSTREAM, service.handle)
    await n.start("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{n.port}"
    finally:
        await n.stop(1.0)
        await service.close()


async def fetch(session, url, **headers):
    async with session.get(url, headers=headers) as resp:
        return resp.status, resp.headers, await resp.read()


async def test_transform_then_cache_hit(node, origin) -> None:
    _, hits = origin
    async with aiohttp.ClientSession() as s:
        status, h1, body1 = await fetch(s, node + "/img/photo.jpg?w=400&f=webp")
        status2, h2, body2 = await fetch(s, node + "/img/photo.jpg?w=400&f=webp")
        status3, h3, body3 = await fetch(s, node + "/img/w=200,f=png/photo.jpg")
    assert status == status2 == status3 == 200
    im = Image.open(io.BytesIO(body1))
    assert (im.format, im.size) == ("WEBP", (400, 300))
    assert h1["Content-Type"] == "image/webp"
    assert int(h1["Content-Length"]) == len(body1)
    assert h1["X-Cache"] == "MISS" and h2["X-Cache"] == "HIT"
    assert body2 == body1 and h2["ETag"] == h1["ETag"] != '"p1"'
    assert Image.open(io.BytesIO(body3)).size == (200, 150)
    # both variants fetched the same origin URL, once each (the second request was a hit)
    assert hits == ["/photo.jpg", "/photo.jpg"]


async def test_auto_format_varies_on_normalised_accept(node, origin) -> None:
    _, hits = origin
    url = node + "/img/photo.jpg?w=200"
    async with aiohttp.ClientSession() as s:
        _, h1, b1 = await fetch(s, url, Accept="image/avif,image/webp,*/*;q=0.8")
        _, h2, b2 = await fetch(s, url, Accept="image/avif,image/webp,image/apng,*/*")  # same canonical
        _, h3, b3 = await fetch(s, url, Accept="text/html,*/*")
        _, h4, _ = await fetch(s, url, Accept="*/*")
    assert Image.open(io.BytesIO(b1)).format == "AVIF"
    assert "Accept" in h1["Vary"]
    assert (h2["X-Cache"], b2) == ("HIT", b1)
    assert Image.open(io.BytesIO(b3)).format == "JPEG"
    assert h3["X-Cache"] == "MISS" and h4["X-Cache"] == "HIT"
    assert len(hits) == 2


async def test_limit_violation_is_a_clear_400(node, origin) -> None:
    _, hits = origin
    async with aiohttp.ClientSession() as s:
        status, headers, body = await fetch(s, node + "/img/photo.jpg?w=300")
    assert status == 400
    assert b"width 300 is not in the allowed widths" in body
    assert hits == []
