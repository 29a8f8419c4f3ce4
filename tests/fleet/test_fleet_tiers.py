"""Edge -> shield -> origin: consistent hashing over live shields, fall-back, Cache-Status
of both hops, loop protection, surrogate keys across tiers."""

from __future__ import annotations

import aiohttp

from edgenode.config import ParentConfig
from edgenode.fleet.natsserver import NatsServer

from fleet_support import SITE, get, until  # noqa: E402


def shields_seen(edge, n: int) -> bool:
    ring = edge.upstream.tier.ring
    return sum(1 for p in ring.parents.values() if p.live) == n


async def origin_paths(origin_url: str) -> dict[str, int]:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{origin_url}/__stats") as r:
            return (await r.json())["paths"]


async def test_edges_share_one_shield_per_object(nats_server: NatsServer, make_fleet_node, origin_url: str) -> None:
    shields = [await make_fleet_node(nats_server.url, f"shield-{i}", tier="shield") for i in range(2)]
    edges = [await make_fleet_node(nats_server.url, f"edge-{i}") for i in range(2)]
    for e in edges:
        await until(lambda e=e: shields_seen(e, 2), what="edges see both shields")
    paths = [f"/obj/t{i}?size=1k&ttl=300" for i in range(20)]
    for e in edges:
        for p in paths:
            status, headers, _ = await get(e.port, p, Host=SITE)
            assert status == 200
    # each object reached the origin once, though both edges missed it
    counts = await origin_paths(origin_url)
    assert all(counts.get(p.split("?")[0]) == 1 for p in paths), counts
    # the keys spread over both shields, and each edge picked the same owner
    owners = {edges[0].upstream.tier.ring.owner(f"{SITE}{p}") for p in paths}
    assert owners == {"shield-0", "shield-1"}
    served = [s.stats()["requests"] for s in shields]
    assert sum(served) == 40 and min(served) > 0


async def test_cache_status_lists_both_hops_and_via(nats_server: NatsServer, make_fleet_node) -> None:
    await make_fleet_node(nats_server.url, "shield-a", tier="shield")
    edge = await make_fleet_node(nats_server.url, "edge-a")
    await until(lambda: shields_seen(edge, 1), what="edge sees the shield")
    _, first, _ = await get(edge.port, "/obj/cs?size=1k&ttl=300", Host=SITE)
    members = [m.strip().split(";")[0] for m in first["cache-status"].split(",")]
    assert members == ["shield-a", "edge-a"], first["cache-status"]
    assert "fwd=uri-miss" in first["cache-status"].split(",")[0]
    assert "1.1 shield-a" in first["via"] and "1.1 edge-a" in first["via"]
    _, again, _ = await get(edge.port, "/obj/cs?size=1k&ttl=300", Host=SITE)
    last = again["cache-status"].split(",")[-1].strip()
    assert last.startswith("edge-a; hit")


async def test_killed_shield_moves_its_keys_to_the_survivor(nats_server: NatsServer, make_fleet_node,
                                                            origin_url: str) -> None:
    shields = {i: await make_fleet_node(nats_server.url, f"shield-{i}", tier="shield") for i in range(2)}
    edge = await make_fleet_node(nats_server.url, "edge-k")
    await until(lambda: shields_seen(edge, 2), what="edge sees both shields")
    ring = edge.upstream.tier.ring
    paths = [f"/obj/k{i}?size=1k&ttl=300" for i in range(30)]
    victim = [p for p in paths if ring.owner(f"{SITE}{p}") == "shield-1"]
    assert victim
    # the shield dies without leaving the fleet: its heartbeat just stops
    dead = shields[1]
    dead.fleet.membership.stop()
    await dead.frontend.shutdown(0.0)
    for p in paths:
        status, _, _ = await get(edge.port, p, Host=SITE)
        assert status == 200, p  # retried on the survivor, never an error
    status = {p["id"]: p for p in edge.upstream.tier.status()["parents"]}
    assert status["shield-1"]["failures"] >= 1
    await until(lambda: shields_seen(edge, 1), what="membership drops the dead shield")
    assert all(ring.owner(f"{SITE}{p}") == "shield-0" for p in victim)


async def test_loop_is_refused_with_508(nats_server: NatsServer, make_fleet_node) -> None:
    edge = await make_fleet_node(nats_server.url, "edge-l")
    status, _, body = await get(edge.port, "/obj/loop?size=1k", Host=SITE, **{"CDN-Loop": "test; node=edge-l"})
    assert status == 508 and b"loop detected" in body
    status, _, _ = await get(edge.port, "/obj/loop?size=1k", Host=SITE,
                             **{"CDN-Loop": "test; node=a, test; node=b, test; node=c"})
    assert status == 508
    status, _, _ = await get(edge.port, "/obj/loop?size=1k", Host=SITE, **{"CDN-Loop": "othercdn, test; node=x"})
    assert status == 200


async def test_static_parents_and_origin_fallback(nats_server: NatsServer, make_fleet_node) -> None:
    # a static parent nobody listens on: the breaker opens, requests go to the origin
    edge = await make_fleet_node(nats_server.url, "edge-s", parents=[ParentConfig("ghost", "http://127.0.0.1:9")],
                                 discover_parents=False)
    for i in range(4):
        status, _, _ = await get(edge.port, f"/obj/s{i}?size=1k", Host=SITE)
        assert status == 200
    tier = edge.upstream.tier.status()
    assert tier["origin_fallbacks"] == 4
    ghost = tier["parents"][0]
    assert ghost["circuit"] == "open" and ghost["failures"] == 2  # breaker_failures = 2: then skipped


async def test_surrogate_key_purge_reaches_both_tiers(nats_server: NatsServer, make_fleet_node) -> None:
    shield = await make_fleet_node(nats_server.url, "shield-sk", tier="shield")
    edge = await make_fleet_node(nats_server.url, "edge-sk")
    await until(lambda: shields_seen(edge, 1), what="edge sees the shield")
    path = "/obj/sk?size=1k&ttl=300&keys=prod-7"
    _, headers, _ = await get(edge.port, path, Host=SITE)
    assert "surrogate-key" not in headers and "edgenode-surrogate-key" not in headers
    assert edge.purge("key", ["prod-7"], False) == 1
    assert shield.purge("key", ["prod-7"], False) == 1
