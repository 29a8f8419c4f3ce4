"""The foreign functions a node offers its filters, called from a real Wasm filter.

A node runs [probe filter, cache] in front of the simulated origin; the probe filter calls
the foreign function named by `x-ff` with the request body and answers with the result
(HTTP status 200 + the call's proxy_status_t).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest

from edgenode.config import Config, StageConfig, load_config, with_overrides
from edgenode.node import Node
from edgenode.node_functions import MAX_UNCOMPRESSED
from edgenode.origin.images import render_image
from edgenode.wasm.foreign import lookup_foreign_function

PROBE = Path(__file__).parent / "wat" / "foreign_probe.wat"


def probe_config(origin_url: str) -> Config:
    cfg = with_overrides(load_config(), listen="127.0.0.1:0", origin=origin_url, admin_listen="off")
    cfg.log.access = "off"
    cfg.chain = [StageConfig(type="wasm", name="probe", options={"module": str(PROBE)}),
                 StageConfig(type="cache", name="cache")]
    return cfg


@pytest.fixture
async def probe_node(origin_url: str) -> AsyncIterator[Node]:
    node = Node(probe_config(origin_url))
    await node.start()
    yield node
    await node.stop(1.0)


async def call(node: Node, name: str, args: bytes) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{node.port}/ff", data=args, headers={"x-ff": name}) as r:
            return r.status, await r.read()


async def test_compress_round_trip_is_zlib(probe_node: Node) -> None:
    data = b"edge " * 1000
    status, packed = await call(probe_node, "compress", data)
    assert status == 200 and zlib.decompress(packed) == data and len(packed) < len(data)
    status, unpacked = await call(probe_node, "uncompress", packed)
    assert status == 200 and unpacked == data


async def test_uncompress_refuses_bombs_and_garbage(probe_node: Node) -> None:
    bomb = zlib.compress(b"\0" * (MAX_UNCOMPRESSED + 1))
    assert (await call(probe_node, "uncompress", bomb))[0] == 210  # INTERNAL_FAILURE
    assert (await call(probe_node, "uncompress", b"not zlib"))[0] == 210
    assert (await call(probe_node, "uncompress", zlib.compress(b"x" * 100)[:-4]))[0] == 210


async def test_unknown_function_is_not_found(probe_node: Node) -> None:
    assert (await call(probe_node, "no.such.function", b"x"))[0] == 201  # NOT_FOUND


async def test_image_info_reads_the_header(probe_node: Node) -> None:
    jpeg, _ = render_image("probe", "jpg", 640, 480)
    status, body = await call(probe_node, "edgenode.image_info", jpeg)
    assert status == 200
    assert json.loads(body) == {"format": "JPEG", "width": 640, "height": 480, "mode": "RGB"}
    assert (await call(probe_node, "edgenode.image_info", b"plain text"))[0] == 210


async def test_purge_from_a_filter_empties_the_cache(probe_node: Node, origin_url: str) -> None:
    async with aiohttp.ClientSession() as s:
        url = f"http://127.0.0.1:{probe_node.port}/obj/p1?size=100&keys=grp"
        for expect in ("MISS", "HIT"):
            async with s.get(url) as r:
                assert r.headers["X-Cache"] == expect
    host = f"127.0.0.1:{probe_node.port}"
    status, body = await call(probe_node, "edgenode.purge", json.dumps({"keys": ["grp"]}).encode())
    assert status == 200 and json.loads(body) == {"purged": 1}
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://{host}/obj/p1?size=100&keys=grp") as r:
            assert r.headers["X-Cache"] == "MISS"
    assert (await call(probe_node, "edgenode.purge", b"[1]"))[0] == 210


async def test_functions_are_unregistered_when_the_node_stops(origin_url: str) -> None:
    node = Node(probe_config(origin_url))
    await node.start()
    assert lookup_foreign_function("edgenode.purge") is not None
    await node.stop(1.0)
    assert lookup_foreign_function("edgenode.purge") is None
