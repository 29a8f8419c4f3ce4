"""Versioned fleet config: rollout through KV + Object Store, refusal of a bad version
(reason shown in fleet status), rollback, and a node joining late."""

from __future__ import annotations

from pathlib import Path

from edgenode.config import StageConfig
from edgenode.fleet.bus import ControlBus
from edgenode.fleet.fleetconfig import FleetDoc
from edgenode.fleet.natsserver import NatsServer
from edgenode.fleet.rollout import publish, read_status, rollback

from fleet_support import FLEET_KEY, SITE, WAT, Deadline, get, rolled_out, stamp_chain, until  # noqa: E402

KEY = FLEET_KEY.encode()


def doc(module: str, **cache: object) -> FleetDoc:
    return FleetDoc(chain=[StageConfig("wasm", "stamp", {"module": str(WAT / module)}),
                           StageConfig("cache", "cache")], cache=dict(cache))


async def stamp(node, path: str = "/obj/r?size=1k&cc=no-store") -> str:
    _, headers, _ = await get(node.port, path, Host=SITE)
    return headers.get("x-filter-version", "")


async def test_rollout_refusal_status_and_rollback(nats_server: NatsServer, make_fleet_node,
                                                   operator: ControlBus) -> None:
    deadline = Deadline()
    nodes = [await make_fleet_node(nats_server.url, f"r{i}", tier="shield", chain=stamp_chain())
             for i in range(3)]
    ids = {"r0", "r1", "r2"}
    assert [await stamp(n) for n in nodes] == ["a"] * 3

    v1 = await publish(operator, KEY, doc("stamp_b.wat"), Path("/"))
    rows = await rolled_out(operator, v1, deadline, ids)
    assert all(r["version"] == v1 for r in rows)
    assert [await stamp(n) for n in nodes] == ["b"] * 3
    digests = {r["modules"]["stamp"] for r in rows}
    assert len(digests) == 1 and digests.pop().startswith("sha256:")

    # a module whose configure fails: every node refuses, says why, keeps serving v1
    bad = await publish(operator, KEY, doc("refuse_config.wat"), Path("/"))
    rows = await rolled_out(operator, bad, deadline, ids)
    assert all(r["version"] == v1 for r in rows)
    for r in rows:
        assert r["refused"]["version"] == bad and "stamp" in r["refused"]["reason"], r["refused"]
    assert [await stamp(n) for n in nodes] == ["b"] * 3

    new, old = await rollback(operator, KEY, to=None)  # back to the version before the bad one
    assert old == v1
    rows = await rolled_out(operator, new, deadline, ids)
    assert all(r["version"] == new and r["refused"] is None for r in rows)
    new2, old2 = await rollback(operator, KEY)
    assert old2 == bad  # the previous version is the refused one: it is refused again
    rows = await rolled_out(operator, new2, deadline, ids)
    assert all(r["version"] == new and r["refused"]["version"] == new2 for r in rows)
    assert [await stamp(n) for n in nodes] == ["b"] * 3


async def test_shape_change_and_cache_settings(nats_server: NatsServer, make_fleet_node,
                                               operator: ControlBus) -> None:
    node = await make_fleet_node(nats_server.url, "c0", tier="shield", chain=stamp_chain())
    other = FleetDoc(chain=[StageConfig("cache", "cache")])
    deadline = Deadline()
    v = await publish(operator, KEY, other, Path("/"))
    await until(lambda: node.fleet.config.refused is not None, deadline.left(), what="refusal")
    assert node.fleet.config.refused["version"] == v
    assert "adding, removing or reordering stages needs a restart" in node.fleet.config.refused["reason"]

    v = await publish(operator, KEY, doc("stamp_a.wat", max_bytes="512MiB"), Path("/"))
    await until(lambda: (node.fleet.config.refused or {}).get("version") == v, deadline.left(), what="refusal")
    assert "cache.max_bytes: changing it needs a restart" in node.fleet.config.refused["reason"]

    v = await publish(operator, KEY, doc("stamp_a.wat", default_ttl="7s"), Path("/"))
    await until(lambda: node.fleet.config.version == v, deadline.left(), what="applied")
    assert node.config.cache.default_ttl == 7.0


async def test_late_node_runs_current_version_before_serving(nats_server: NatsServer, make_fleet_node,
                                                            operator: ControlBus) -> None:
    v = await publish(operator, KEY, doc("stamp_b.wat"), Path("/"))
    node = await make_fleet_node(nats_server.url, "late", tier="shield", chain=stamp_chain())
    assert node.fleet.config.version == v  # applied inside start(), before the listener opened
    assert await stamp(node) == "b"
    rows = await read_status(operator, KEY, node_ttl=1.0)
    assert rows == [] or rows[0]["id"] == "late"


async def test_forged_config_is_refused(nats_server: NatsServer, make_fleet_node, operator: ControlBus) -> None:
    node = await make_fleet_node(nats_server.url, "f0", tier="shield", chain=stamp_chain())
    kv = await operator.config_kv()
    from edgenode.fleet.envelope import seal

    rev = await kv.put("current", seal(b"not-the-fleet-key-123", doc("stamp_b.wat").body()))
    await until(lambda: node.fleet.config.refused is not None, what="refusal")
    assert node.fleet.config.refused["version"] == rev
    assert "bad signature" in node.fleet.config.refused["reason"]
    assert await stamp(node) == "a"
