"""The same nodes against a NATS cluster (three nats-server processes routed together on
loopback): nodes connected to different servers purge and roll out as one, the fleet's
stream and buckets are replicated, and a server's death moves its nodes to the others."""

from __future__ import annotations

import json
from pathlib import Path
from typing import AsyncIterator

import nats
import pytest

from edgenode.config import StageConfig
from edgenode.fleet.bus import ControlBus
from edgenode.fleet.fleetconfig import FleetDoc
from edgenode.fleet.names import FleetNames
from edgenode.fleet.natsserver import NatsCluster
from edgenode.fleet.rollout import publish, wait_for_version

from fleet_support import FLEET_KEY, SETTLE, SITE, WAT, eventually, get, stamp_chain, until  # noqa: E402

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


async def test_purge_reaches_a_node_whose_consumer_lost_its_leader(cluster: NatsCluster, make_fleet_node) -> None:
    """A server dies (SIGKILL) holding the leadership of a node's purge consumer: the
    consumer is silent until the survivors elect another leader (nats-server waits 4-9 s),
    so the node reads the purge from the stream's surviving replicas instead."""
    nodes = [await make_fleet_node(url, f"k{i}", tier="shield") for i, url in enumerate(cluster.urls)]
    node, bus = nodes[0], nodes[0].fleet.bus
    stream, consumer = bus.names.purge_stream, bus.names.consumer("k0")
    # the victim: neither the node's own server nor the stream's leader (the stream keeps
    # taking purges); the node's consumer is led from there
    leader = (await bus.js.stream_info(stream)).cluster.leader
    victim = next(s for s in cluster.servers[1:] if s.name != leader)
    sender = next(n for n, s in zip(nodes[1:], cluster.servers[1:]) if s is not victim)
    operator = await nats.connect(cluster.urls[0])
    try:
        if (await bus.js.consumer_info(stream, consumer)).cluster.leader != victim.name:
            answer = await operator.request(f"$JS.API.CONSUMER.LEADER.STEPDOWN.{stream}.{consumer}",
                                            json.dumps({"placement": {"preferred": victim.name}}).encode(), timeout=5)
            assert json.loads(answer.data).get("success"), answer.data
    finally:
        await operator.close()

    async def led_by_victim() -> bool:
        try:
            return (await bus.js.consumer_info(stream, consumer, timeout=1.0)).cluster.leader == victim.name
        except nats.errors.TimeoutError:  # between two leaders
            return False

    await eventually(led_by_victim, what="the consumer led from the victim")
    path = "/obj/leaderless?size=1k&ttl=300"
    await get(node.port, path, Host=SITE)
    assert await cached(node, path)
    await victim.kill()
    out = await sender.fleet.purge("url", [f"http://{SITE}{path}"], False)
    assert out["fleet"]["state"] == "published", out
    await until(lambda: node.fleet.purges.counts["applied"] == 1, what="the purge, without its consumer")
    assert node.fleet.purges.counts["read_directly"] == 1
    assert not await cached(node, path)
