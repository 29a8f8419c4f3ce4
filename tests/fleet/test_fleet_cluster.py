"""The same nodes against a NATS cluster (three nats-server processes routed together on
loopback): nodes connected to different servers purge and roll out as one, the fleet's
stream and buckets are replicated, and a server's death moves its nodes to the others."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest

from edgenode.config import StageConfig
from edgenode.fleet.bus import ControlBus
from edgenode.fleet.fleetconfig import FleetDoc
from edgenode.fleet.names import FleetNames
from edgenode.fleet.natsserver import NatsCluster
from edgenode.fleet.rollout import publish, wait_for_version

from fleet_support import FLEET_KEY, SETTLE, SITE, WAT, get, stamp_chain, until  # noqa: E402

KEY = FLEET_KEY.encode()


@pytest.fixture
async def cluster() -> AsyncIterator[NatsCluster]:
    c = NatsCluster(3, name="test-cluster")
    await c.start()
    yield c
    await c.stop()


async def cached(node, path: str) -> bool:
    return (await get(node.port, path, Host=SITE, **{"Cache-Control": "only-if-cached"}))[0] == 200


async def test_nodes_on_different_servers_act_as_one_fleet(cluster: NatsCluster, make_fleet_node) -> None:
    # each node knows one server only, a different one each
    nodes = [await make_fleet_node(url, f"c{i}", tier="shield", chain=stamp_chain())
             for i, url in enumerate(cluster.urls)]
    assert [n.fleet.bus.nc.connected_url.port for n in nodes] == [s.port for s in cluster.servers]
    operator = ControlBus([cluster.urls[0]], FleetNames("test"), client_name="test operator")
    await operator.open()
    try:
        info = await operator.js.stream_info(operator.names.purge_stream)
        assert info.config.num_replicas == 3  # the control plane outlives a server

        path = "/obj/cl1?size=1k&ttl=300"
        for n in nodes:
            await get(n.port, path, Host=SITE)
        await nodes[0].fleet.purge("url", [f"http://{SITE}{path}"], False)
        await until(lambda: all(n.fleet.purges.counts["applied"] == 1 for n in nodes), what="purge via 3 servers")
        assert not any([await cached(n, path) for n in nodes])

        # the third server dies: its node moves to a server it learnt from the cluster
        await cluster.servers[2].stop()
        await until(lambda: nodes[2].fleet.bus.connected and nodes[2].fleet.bus.nc.connected_url.port
                    != cluster.servers[2].port, what="failover to another server")
        path = "/obj/cl2?size=1k&ttl=300"
        for n in nodes:
            await get(n.port, path, Host=SITE)
        await nodes[1].fleet.purge("url", [f"http://{SITE}{path}"], False)
        await until(lambda: all(n.fleet.purges.counts["applied"] == 2 for n in nodes),
                    what="purge after the server died")
        assert not any([await cached(n, path) for n in nodes])
        doc = FleetDoc(chain=[StageConfig("wasm", "stamp", {"module": str(WAT / "stamp_b.wat")}),
                              StageConfig("cache", "cache")])
        version = await publish(operator, KEY, doc, Path("/"))
        rows, _ = await wait_for_version(operator, KEY, version, SETTLE, node_ttl=1.0, expect={"c0", "c1", "c2"})
        assert all(r["version"] == version for r in rows), [(r["id"], r["version"], r["state"]) for r in rows]
        assert [(await get(n.port, "/obj/s?size=10&cc=no-store", Host=SITE))[1]["x-filter-version"]
                for n in nodes] == ["b"] * 3
    finally:
        await operator.close()
