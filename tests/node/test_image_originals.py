"""The default chain's second cache stage: one origin fetch per image for all its variants."""

from __future__ import annotations

import io

import aiohttp
from PIL import Image

from edgenode.node import Node


async def origin_count(s: aiohttp.ClientSession, origin_url: str, path: str) -> int:
    async with s.get(f"{origin_url}/__stats") as r:
        stats = await r.json()
    return stats["paths"].get(path, 0)


async def test_variants_share_one_origin_fetch(node: Node, origin_url: str) -> None:
    base = f"http://127.0.0.1:{node.port}"
    variants = ["/img/w=200,f=webp/image/cat.jpg", "/img/w=400,f=webp/image/cat.jpg",
                "/img/w=300,f=png/image/cat.jpg", "/img/image/cat.jpg?width=250&format=jpeg"]
    async with aiohttp.ClientSession() as s:
        widths = []
        for path in variants:
            async with s.get(base + path) as r:
                assert r.status == 200, await r.text()
                assert r.headers["X-Cache"] == "MISS"  # each variant is new to the outer cache
                with Image.open(io.BytesIO(await r.read())) as im:
                    widths.append(im.width)
                cache_status = ", ".join(r.headers.getall("Cache-Status"))
        assert widths == [200, 400, 300, 250]
        # the last variant's original came from the inner stage, named after it
        assert "edgenode-originals; hit" in cache_status
        assert await origin_count(s, origin_url, "/image/cat.jpg") == 1
        async with s.get(base + variants[0]) as r:  # a variant seen before: outer hit
            assert r.headers["X-Cache"] == "HIT"
            # as in a cache hierarchy, the stored response keeps the inner member it was
            # stored with; ours, the last member, is the hit
            assert r.headers.getall("Cache-Status")[-1].startswith("edgenode; hit")


async def test_plain_misses_are_looked_up_once(node: Node, origin_url: str) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{node.port}/obj/plain?size=2k") as r:
            assert r.status == 200 and r.headers["X-Cache"] == "MISS"
            # only the outer stage speaks: the inner one passed the already-missed key on
            assert len(r.headers.getall("Cache-Status")) == 1
        async with s.get(f"http://127.0.0.1:{node.port}/obj/plain?size=2k") as r:
            assert r.headers["X-Cache"] == "HIT"
        assert await origin_count(s, origin_url, "/obj/plain") == 1
