"""A purge is never left waiting for the consumer's ack timer: a delivery lost in a dead
connection, or taken by a node that stopped before it acked, comes back at once on
reconnection or restart; a slow apply is not delivered twice; a failed one is retried.

The tests that need "at once" set the ack timer to an hour: only the rewind to the ack
floor can bring the purge back within the tests' deadline, however loaded the machine."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from edgenode.fleet import purges
from edgenode.fleet.host import PurgeIncomplete
from edgenode.fleet.natsserver import NatsServer

from fleet_support import SETTLE, SITE, LinkProxy, get, until  # noqa: E402

PATH = "/obj/late?size=1k&ttl=300"
URL = f"http://{SITE}{PATH}"
#: no redelivery by timer within any test's deadline
AN_HOUR = 3600.0


async def cached(node, path: str = PATH) -> bool:
    status, _, _ = await get(node.port, path, Host=SITE, **{"Cache-Control": "only-if-cached"})
    return status == 200


def hold_applies(node) -> tuple[asyncio.Event, list[str]]:
    """Make ``node``'s purges wait for the returned event; the ids that reached it."""
    release, reached = asyncio.Event(), []
    real = node.fleet.purges._apply_fn

    async def held(order: Any) -> int:
        reached.append(order.id)
        await release.wait()
        return await real(order)

    node.fleet.purges._apply_fn = held
    return release, reached



async def applied_before_listening(node: Any) -> list[int]:
    """Start ``node``; the purges it had applied when its front end began to listen."""
    seen: list[int] = []
    real_start = node.frontend.start

    async def start_frontend(*a: Any, **kw: Any) -> Any:
        seen.append(node.fleet.purges.counts["applied"])
        return await real_start(*a, **kw)

    node.frontend.start = start_frontend
    await asyncio.wait_for(node.start(), SETTLE)
    return seen

async def test_purge_lost_on_a_silently_dead_path_comes_back_on_reconnection(
        nats_server: NatsServer, make_fleet_node, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(purges, "ACK_WAIT", AN_HOUR)
    link = LinkProxy(nats_server.port)
    await link.restore()
    node = await make_fleet_node(link.url, "behind", tier="shield")
    peer = await make_fleet_node(nats_server.url, "peer", tier="shield")
    await get(node.port, PATH, Host=SITE)
    link.stall()  # no reset, no packets: the server keeps delivering into the dead path
    await peer.fleet.purge("url", [URL], False)
    # the node's pings go unanswered: it knows within about node_ttl, and says so
    await until(lambda: node.fleet.state() == "disconnected", what="the dead path noticed")
    assert await cached(node)  # policy "serve": what it has, while it is cut off
    link.heal()
    await until(lambda: node.fleet.purges.counts["applied"] == 1 and node.fleet.state() == "in-sync",
                what="the lost delivery again, on reconnection")
    assert not await cached(node)


async def test_node_stopped_before_it_acked_applies_the_purge_before_serving_again(
        nats_server: NatsServer, make_fleet_node, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(purges, "ACK_WAIT", AN_HOUR)
    first = await make_fleet_node(nats_server.url, "busy", tier="shield")
    peer = await make_fleet_node(nats_server.url, "peer", tier="shield")
    release, reached = hold_applies(first)
    await peer.fleet.purge("url", [URL], False)
    await until(lambda: reached, what="the purge delivered to the busy node")
    await first.stop(0.5)  # stops with the purge delivered, not applied, not acked
    release.set()

    again = await make_fleet_node(nats_server.url, "busy", tier="shield", start=False)
    assert await applied_before_listening(again) == [1]
    assert again.fleet.state() == "in-sync"


async def test_node_restarted_while_the_server_still_holds_its_dead_connection(
        nats_server: NatsServer, make_fleet_node, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its host lost the network: the server keeps the old connection, bound to the node's
    consumer, for minutes; the node that starts again reads its purges anyway."""
    monkeypatch.setattr(purges, "ACK_WAIT", AN_HOUR)
    link = LinkProxy(nats_server.port)
    await link.restore()
    first = await make_fleet_node(link.url, "lost", tier="shield")
    peer = await make_fleet_node(nats_server.url, "peer", tier="shield")
    link.stall()
    await first.stop(0.5)  # the server is not told: the stalled path holds its connection
    await peer.fleet.purge("url", [URL], False)  # delivered into the dead connection

    again = await make_fleet_node(nats_server.url, "lost", tier="shield", start=False)
    assert await applied_before_listening(again) == [1]
    await link.cut()


async def test_consumer_of_an_older_version_keeps_its_position_and_takes_the_new_timers(
        nats_server: NatsServer, make_fleet_node, operator: Any) -> None:
    from nats.js.api import ConsumerConfig, DeliverPolicy

    names = operator.names
    await operator.js.add_consumer(names.purge_stream, ConsumerConfig(
        durable_name=names.consumer("old"), deliver_subject="_INBOX.old-node", deliver_policy=DeliverPolicy.NEW,
        ack_wait=30.0, max_ack_pending=10_000))
    peer = await make_fleet_node(nats_server.url, "peer", tier="shield")
    await peer.fleet.purge("url", [URL], False)  # missed by "old" while it was down
    node = await make_fleet_node(nats_server.url, "old", tier="shield")
    assert node.fleet.purges.counts["applied"] == 1
    info = await operator.js.consumer_info(names.purge_stream, names.consumer("old"))
    assert (info.config.ack_wait, info.config.max_ack_pending) == (purges.ACK_WAIT, purges.MAX_ACK_PENDING)


async def test_nats_server_restarted_mid_stream_loses_no_purge(
        make_fleet_node, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(purges, "ACK_WAIT", AN_HOUR)
    store = str(tmp_path / "nats")
    server = NatsServer(store_dir=store)
    await server.start()
    try:
        nodes = [await make_fleet_node(server.url, f"s{i}", tier="shield") for i in range(2)]
        release, reached = hold_applies(nodes[1])  # one node is mid-apply when the server goes
        sent = [(await nodes[0].fleet.purge("url", [f"http://{SITE}/obj/r{i}"], False))["fleet"]["id"]
                for i in range(5)]
        await until(lambda: reached, what="a purge delivered to s1")
        await server.stop()
        server = NatsServer(port=server.port, store_dir=store)
        await server.start()
        release.set()
        sent += [(await nodes[0].fleet.purge("url", [f"http://{SITE}/obj/r{i}"], False))["fleet"]["id"]
                 for i in range(5, 10)]
        await until(lambda: all(set(sent) <= set(n.fleet.purges._applied) and n.fleet.state() == "in-sync"
                                for n in nodes), what="every purge on every node, in sync")
        assert not nodes[0].fleet.purges._outbox
    finally:
        await server.stop()


async def test_slow_apply_is_not_delivered_twice(nats_server: NatsServer, make_fleet_node,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(purges, "ACK_WAIT", 0.3)
    node = await make_fleet_node(nats_server.url, "slow", tier="shield")
    peer = await make_fleet_node(nats_server.url, "peer", tier="shield")
    real = node.fleet.purges._apply_fn

    async def slow(order: Any) -> int:
        await asyncio.sleep(5 * purges.ACK_WAIT)  # a purge of a large store, a busy worker
        return await real(order)

    node.fleet.purges._apply_fn = slow
    await peer.fleet.purge("url", [URL], False)
    await until(lambda: node.fleet.purges.counts["applied"] == 1, what="the slow purge")
    info = await peer.fleet.bus.js.consumer_info(peer.fleet.names.purge_stream, peer.fleet.names.consumer("slow"))
    assert info.num_redelivered == 0 and node.fleet.purges.counts["duplicates"] == 0


async def test_failed_apply_is_retried_until_it_succeeds(nats_server: NatsServer, make_fleet_node) -> None:
    node = await make_fleet_node(nats_server.url, "flaky", tier="shield")
    peer = await make_fleet_node(nats_server.url, "peer", tier="shield")
    await get(node.port, PATH, Host=SITE)
    real, attempts = node.fleet.purges._apply_fn, []

    async def flaky(order: Any) -> int:
        attempts.append(order.id)
        if len(attempts) < 3:  # a worker restarting, say
            raise ConnectionError("control socket refused")
        return await real(order)

    node.fleet.purges._apply_fn = flaky
    await peer.fleet.purge("url", [URL], False)
    await until(lambda: node.fleet.purges.counts["applied"] == 1, what="the purge, on its third delivery")
    assert len(attempts) == 3 and not await cached(node)


async def test_server_without_consumer_reset_still_delivers_and_says_so_once(
        nats_server: NatsServer, make_fleet_node, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """nats-server before 2.14 has no consumer reset (and would not answer the request):
    the node does not ask, warns once, and relies on the ack timer."""
    from nats.aio.client import Client, ServerVersion

    monkeypatch.setattr(Client, "connected_server_version", property(lambda self: ServerVersion("2.10.22")))
    caplog.set_level(logging.WARNING, "edgenode.fleet")
    link = LinkProxy(nats_server.port)
    await link.restore()
    node = await make_fleet_node(link.url, "older", tier="shield")
    peer = await make_fleet_node(nats_server.url, "peer", tier="shield")
    await get(node.port, PATH, Host=SITE)
    await link.cut()
    await link.restore()
    await until(lambda: node.fleet.state() == "in-sync" and node.fleet.purges._rewind is False, what="reconnected")
    await peer.fleet.purge("url", [URL], False)
    await until(lambda: node.fleet.purges.counts["applied"] == 1, what="the purge")
    assert caplog.text.count("cannot reset a consumer") == 2  # once for each node, not per reconnection
    assert not await cached(node)


async def test_purge_that_fails_here_still_reaches_the_fleet_and_comes_back_here(
        nats_server: NatsServer, make_fleet_node) -> None:
    """An admin purge whose local apply fails (a worker that did not answer) is still
    published: the other nodes purge, the caller is told what failed, and the node's own
    delivery from the stream applies it here (the failed order is not remembered)."""
    node = await make_fleet_node(nats_server.url, "partial", tier="shield")
    peer = await make_fleet_node(nats_server.url, "peer", tier="shield")
    for n in (node, peer):
        await get(n.port, PATH, Host=SITE)
        assert await cached(n)
    real, attempts = node.fleet.purges._apply_fn, []

    async def partial(order: Any) -> int:
        attempts.append(order.id)
        if len(attempts) == 1:
            raise PurgeIncomplete(0, ["worker 1: control socket refused"])
        return await real(order)

    node.fleet.purges._apply_fn = partial
    out = await node.fleet.purge("url", [URL], False)
    assert out["errors"] == ["worker 1: control socket refused"] and out["purged"] == 0
    assert out["fleet"]["state"] == "published"
    await until(lambda: peer.fleet.purges.counts["applied"] == 1, what="the peer applied it")
    assert not await cached(peer)
    await until(lambda: node.fleet.purges.counts["applied"] == 1, what="its own delivery, applied here")
    assert len(attempts) == 2 and not await cached(node)
