"""Faults: NATS unreachable at start or cut later, a node restarted after missing purges,
malformed or unauthenticated control messages, the "revalidate" policy."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import nats
import pytest

from edgenode.fleet.bus import ControlBus
from edgenode.fleet.envelope import new_purge, seal
from edgenode.fleet.names import FleetNames
from edgenode.fleet.natsserver import NatsServer

from fleet_support import FLEET_KEY, SETTLE, SITE, LinkProxy, get, until  # noqa: E402

PATH = "/obj/fault?size=1k&ttl=300"
URL = f"http://{SITE}{PATH}"


async def cached(node, path: str = PATH) -> bool:
    status, _, _ = await get(node.port, path, Host=SITE, **{"Cache-Control": "only-if-cached"})
    return status == 200


async def healthz(node) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{node.admin_port}/healthz") as r:
            return await r.json()


async def test_unreachable_at_start_serves_then_catches_up(nats_server: NatsServer, make_fleet_node,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    link = LinkProxy(nats_server.port)
    await link.restore()
    await link.cut()  # the port is known, nothing listens
    caplog.set_level(logging.WARNING, "edgenode.fleet")
    # start-up must not wait for NATS: with the link down until restored below, a node that
    # waited would never start (the bound only keeps a broken node from hanging the suite)
    lonely = await asyncio.wait_for(make_fleet_node(link.url, "lonely", tier="shield", synced=False), SETTLE)
    assert "NATS unreachable" in caplog.text
    assert (await healthz(lonely))["fleet"]["state"] == "disconnected"
    await get(lonely.port, PATH, Host=SITE)
    assert await cached(lonely)
    other = await make_fleet_node(nats_server.url, "other", tier="shield")
    await other.fleet.purge("url", [URL], False)  # while "lonely" cannot hear it
    assert await cached(lonely)  # policy "serve": what it has, until it catches up
    await link.restore()
    await until(lambda: lonely.fleet.state() == "in-sync", timeout=SETTLE, what="reconnect and catch up")
    assert not await cached(lonely)
    assert (await healthz(lonely))["fleet"]["state"] == "in-sync"


async def test_cut_link_queues_admin_purges_and_catches_up(nats_server: NatsServer, make_fleet_node) -> None:
    link = LinkProxy(nats_server.port)
    await link.restore()
    cut_off = await make_fleet_node(link.url, "cut", tier="shield")
    peer = await make_fleet_node(nats_server.url, "peer", tier="shield")
    for n in (cut_off, peer):
        await get(n.port, PATH, Host=SITE)
        await get(n.port, "/obj/other?size=1k&ttl=300", Host=SITE)
    await link.cut()
    await until(lambda: not cut_off.fleet.bus.connected, what="disconnect noticed")
    await peer.fleet.purge("url", [URL], False)
    out = await cut_off.fleet.purge("url", [f"http://{SITE}/obj/other?size=1k&ttl=300"], False)
    assert out["fleet"]["state"].startswith("queued")
    assert await cached(cut_off)  # policy "serve": the peer's purge has not reached it
    assert await cached(peer, "/obj/other?size=1k&ttl=300")  # nor has the queued one left it
    await link.restore()
    await until(lambda: cut_off.fleet.state() == "in-sync" and not cut_off.fleet.purges._outbox,
                timeout=SETTLE, what="catch-up")
    await until(lambda: peer.fleet.purges.counts["applied"] == 2, what="queued purge reaches the peer")
    assert not await cached(cut_off)
    assert not await cached(peer, "/obj/other?size=1k&ttl=300")


async def test_restarted_node_applies_missed_purges_before_serving(nats_server: NatsServer,
                                                                   make_fleet_node) -> None:
    first = await make_fleet_node(nats_server.url, "again", tier="shield")
    await first.stop(0.5)
    publisher = ControlBus([nats_server.url], FleetNames("test"), client_name="test publisher")
    await publisher.open()
    try:
        for i in range(100):
            order = new_purge("url", [f"http://{SITE}/obj/p{i}"], False, "test")
            await publisher.js.publish(publisher.names.purge_subject, seal(FLEET_KEY.encode(), order.body()),
                                       headers={"Nats-Msg-Id": order.id})
    finally:
        await publisher.close()
    again = await make_fleet_node(nats_server.url, "again", tier="shield", start=False)
    listening_before: list[bool] = []
    real_start = again.frontend.start

    async def start_frontend(*a, **kw):
        listening_before.append(again.fleet.purges.counts["applied"] == 100)
        return await real_start(*a, **kw)

    again.frontend.start = start_frontend
    await again.start()
    assert listening_before == [True]  # all 100 applied before the listener opened
    assert again.fleet.purges.counts["applied"] == 100


async def test_malformed_and_forged_purges_are_dropped(nats_server: NatsServer, make_fleet_node,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    node = await make_fleet_node(nats_server.url, "strict", tier="shield")
    await get(node.port, PATH, Host=SITE)
    caplog.set_level(logging.WARNING, "edgenode.fleet")
    bus = ControlBus([nats_server.url], FleetNames("test"), client_name="test attacker")
    await bus.open()
    subject, key = bus.names.purge_subject, FLEET_KEY.encode()
    try:
        good = new_purge("url", [URL], False, "x")
        await bus.js.publish(subject, b"\x00garbage")
        await bus.js.publish(subject, seal(b"wrong-key-wrong-key", good.body()))
        await bus.js.publish(subject, seal(key, {**good.body(), "kind": "everything"}))
        await bus.js.publish(subject, seal(key, {**good.body(), "id": "x" * 20, "issued_at": 1.0}))
        assert await cached(node)
        await bus.js.publish(subject, seal(key, good.body()))
    finally:
        await bus.close()
    await until(lambda: node.fleet.purges.counts["applied"] == 1, what="the good purge")
    assert node.fleet.purges.counts["dropped"] == 4
    assert "bad signature" in caplog.text and "purge.kind" in caplog.text and "too old" in caplog.text
    assert not await cached(node)


async def test_revalidate_policy_marks_cache_stale_when_sync_is_lost(nats_server: NatsServer,
                                                                     make_fleet_node) -> None:
    link = LinkProxy(nats_server.port)
    await link.restore()
    node = await make_fleet_node(link.url, "careful", tier="shield", unsynced="revalidate")
    await get(node.port, PATH, Host=SITE)
    await link.cut()
    await until(lambda: node.cache.store.stats()["purged"] >= 1, what="soft purge of everything")
    _, headers, _ = await get(node.port, PATH, Host=SITE)
    assert "fwd=stale" in headers["cache-status"], headers["cache-status"]  # revalidated, not served as is


async def test_purge_whose_publish_failed_while_connected_is_retried(nats_server: NatsServer,
                                                                      make_fleet_node) -> None:
    """A publish can fail without a disconnection (a timeout on a busy server, a NATS
    cluster electing the stream's leader): the purge waits in the outbox and leaves as soon
    as NATS takes it, not at some later reconnection."""
    sender = await make_fleet_node(nats_server.url, "sender", tier="shield")
    peer = await make_fleet_node(nats_server.url, "peer", tier="shield")
    await get(peer.port, PATH, Host=SITE)
    js = sender.fleet.bus.js
    real_publish, failed = js.publish, []

    async def publish(subject: str, *args: Any, **kwargs: Any) -> Any:
        if subject == sender.fleet.bus.names.purge_subject and not failed:
            failed.append(subject)
            raise nats.errors.TimeoutError
        return await real_publish(subject, *args, **kwargs)

    js.publish = publish
    out = await sender.fleet.purge("url", [URL], False)
    assert failed and out["fleet"]["state"].startswith("queued")
    await until(lambda: peer.fleet.purges.counts["applied"] == 1, what="the purge, published on retry")
    assert sender.fleet.bus.connected and sender.fleet.purges.counts["published"] == 1
    assert not await cached(peer)
