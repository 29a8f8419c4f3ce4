"""Ordinary URLs with query strings through the default chain (routing, WAF, image,
two cache stages): only the image filter's own path prefix takes image parameters."""

from __future__ import annotations

import io

import aiohttp
import pytest
from PIL import Image

from edgenode.node import Node
from edgenode.origin.content import object_body


@pytest.mark.parametrize("query", ["q=hello", "w=abc", "w=100&h=x&fit=stretch", "f=gif&dpr=nan",
                                   "format=webp&width=10", "sig=0123&quality=500", "q=hello&w=5000"])
async def test_query_strings_outside_the_image_prefix_reach_the_origin(node: Node, query: str) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{node.port}/obj/plain?size=1k&{query}") as r:
            assert r.status == 200, await r.text()
            assert await r.read() == object_body("plain", 1024, "1")


async def test_image_parameters_under_the_prefix_still_transform(node: Node) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{node.port}/img/image/q.jpg?w=200&f=png") as r:
            assert r.status == 200 and r.headers["Content-Type"] == "image/png"
            assert Image.open(io.BytesIO(await r.read())).size[0] == 200
        async with s.get(f"http://127.0.0.1:{node.port}/img/image/q.jpg?q=hello") as r:
            assert r.status == 400 and "q: expected an integer" in await r.text()
        # outside the prefix the origin's own image parameters apply
        async with s.get(f"http://127.0.0.1:{node.port}/image/q.jpg?w=120&h=90") as r:
            assert r.status == 200
            assert Image.open(io.BytesIO(await r.read())).size == (120, 90)
