"""Purge fan-out through JetStream: every node applies a purge sent to any node."""

from __future__ import annotations

import asyncio

import aiohttp

from edgenode.fleet.natsserver import NatsServer

from fleet_support import SITE, get, until  # noqa: E402


async def admin_purge(node, url: str) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{node.admin_port}/purge", json={"url": url},
                          headers={"Authorization": "Bearer test-token"}) as r:
            assert r.status == 200
            return await r.json()


async def test_purge_on_one_node_reaches_every_node(nats_server: NatsServer, make_fleet_node) -> None:
    nodes = [await make_fleet_node(nats_server.url, f"n{i}", tier="shield") for i in range(3)]
    path = "/obj/fanout?size=1k&ttl=300"
    for n in nodes:
        await get(n.port, path, Host=SITE)
        status, headers, _ = await get(n.port, path, Host=SITE)
        assert headers["x-cache"] == "HIT"
    out = await admin_purge(nodes[0], f"http://{SITE}{path}")
    assert out["purged"] == 1 and out["fleet"]["state"] == "published"
    await until(lambda: all(n.fleet.purges.counts["applied"] == 1 for n in nodes), what="purge on all nodes")
    for n in nodes:
        status, headers, _ = await get(n.port, path, Host=SITE, **{"Cache-Control": "only-if-cached"})
        assert status == 504, n.fleet.member_id
