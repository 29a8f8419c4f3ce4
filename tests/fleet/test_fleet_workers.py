"""A node with workers (``serve --workers 2`` as a real process tree) is one fleet member:
one purge consumer and heartbeat for the node, purges applied once through the node-wide
store and seen by every worker, rollouts in every worker, a restart that catches up
before any worker serves, and a master whose death takes the node out of the fleet."""

from __future__ import annotations

import os
import re
from pathlib import Path

from edgenode.config import StageConfig
from edgenode.fleet.bus import ControlBus
from edgenode.fleet.envelope import new_purge, seal
from edgenode.fleet.fleetconfig import FleetDoc
from edgenode.fleet.natsserver import NatsServer
from edgenode.fleet.rollout import publish, read_status

from fleet_support import (FLEET_KEY, SETTLE, SITE, WAT, Deadline, LinkProxy, eventually, get, per_worker,  # noqa: E402
                           rolled_out, stamp_chain, until)

KEY = FLEET_KEY.encode()
STAMP = [{"type": "wasm", "name": "stamp", "module": str(WAT / "stamp_a.wat")}, {"type": "cache", "name": "cache"}]
ONLY_CACHED = {"Cache-Control": "only-if-cached"}


def doc(module: str) -> FleetDoc:
    return FleetDoc(chain=[StageConfig("wasm", "stamp", {"module": str(WAT / module)}), StageConfig("cache", "cache")])


async def status_of(operator: ControlBus, node_id: str) -> dict:
    return {r["id"]: r for r in await read_status(operator, KEY, node_ttl=1.0)}.get(node_id, {})


async def test_two_worker_node_is_one_fleet_member(nats_server: NatsServer, make_fleet_node, make_worker_node,
                                                   operator: ControlBus) -> None:
    deadline = Deadline(2 * SETTLE)  # two nodes, two rollouts, a process tree: one budget for all
    link = LinkProxy(nats_server.port)  # the node's path to NATS, cut at the end
    await link.restore()
    multi = await make_worker_node(link.url, "multi", "shield", chain=STAMP, unsynced="revalidate")
    edge = await make_fleet_node(nats_server.url, "e1", chain=stamp_chain())
    await until(lambda: any(p.live for p in edge.upstream.tier.ring.parents.values()), deadline.left(),
                what="edge sees the shield")

    # one member, one line in fleet status, for the node and its two workers (a member is
    # listed while its last heartbeat is under node_ttl old: on a loaded machine one may be
    # late, so wait until both are listed, then check nothing else is)
    rows: list[dict] = []

    async def both_listed() -> bool:
        rows[:] = await read_status(operator, KEY, node_ttl=1.0)
        return {"e1", "multi"} <= {r["id"] for r in rows}

    await eventually(both_listed, deadline.left(), what="both nodes in fleet status")
    assert sorted(r["id"] for r in rows) == ["e1", "multi"]
    # both hops in Cache-Status and Via, named by node id whichever worker answered
    path, url = "/obj/w1?size=1k&ttl=300", f"http://{SITE}/obj/w1?size=1k&ttl=300"
    _, first, _ = await get(edge.port, path, Host=SITE)
    assert [m.strip().split(";")[0] for m in first["cache-status"].split(",")] == ["multi", "e1"]
    assert "1.1 multi" in first["via"] and "1.1 e1" in first["via"]
    conns = await per_worker(multi.port)
    for c in conns:
        status, headers, _ = await c.get(path, **ONLY_CACHED)
        assert status == 200 and headers["cache-status"].startswith("multi; hit")
        status, _, _ = await c.get("/obj/loop?size=10", **{"CDN-Loop": "test; node=multi"})
        assert status == 508  # the node's own CDN-Loop entry, from any of its workers

    # a purge sent to another node: applied once by the node, gone for both workers
    await edge.fleet.purge("url", [url], False)
    await eventually(lambda: _applied(multi, 1), deadline.left(), what="the node applied the purge")
    for c in conns:
        assert (await c.get(path, **ONLY_CACHED))[0] == 504, c.worker
    # a purge sent to the node's admin API: published once, applied once by the other node
    path2 = "/obj/w2?size=1k&ttl=300"
    await get(edge.port, path2, Host=SITE)
    out = await multi.admin("POST", "/purge", {"url": f"http://{SITE}{path2}"})
    assert out["purged"] == 1 and out["fleet"]["state"] == "published"
    await until(lambda: edge.fleet.purges.counts["applied"] == 2, deadline.left(), what="the edge applied it")
    stream = await operator.js.stream_info(operator.names.purge_stream)
    assert stream.state.messages == 2  # one per purge, not one per worker
    await eventually(lambda: _heartbeat(operator, "purges_applied", 2), deadline.left(),
                     what="purges in the heartbeat")
    for c in conns:
        assert (await c.get(path2, **ONLY_CACHED))[0] == 504, c.worker

    # a rollout reaches every worker; a broken version is refused by the node with the reason
    version = await publish(operator, KEY, doc("stamp_b.wat"), Path("/"))
    rows = await rolled_out(operator, version, deadline, {"multi", "e1"})
    assert all(r["version"] == version for r in rows), rows
    for c in conns:
        assert (await c.get("/obj/r?size=10&cc=no-store"))[1]["x-filter-version"] == "b", c.worker
    bad = await publish(operator, KEY, doc("refuse_config.wat"), Path("/"))
    rows = await rolled_out(operator, bad, deadline, {"multi"})
    assert rows[0]["version"] == version and rows[0]["refused"]["version"] == bad
    assert "stamp" in rows[0]["refused"]["reason"]
    for c in conns:
        assert (await c.get("/obj/r?size=10&cc=no-store"))[1]["x-filter-version"] == "b", c.worker
    # node-wide figures in its one heartbeat: both workers' requests
    stats = await multi.admin("GET", "/stats")
    await eventually(lambda: _heartbeat(operator, "requests", stats["requests"]), deadline.left(),
                     what="node-wide figures")

    # unsynced = "revalidate": sync lost for node_ttl marks the node's cache stale, for every worker
    path3 = "/obj/w3?size=1k&ttl=300"
    await conns[0].get(path3)
    await link.cut()
    await eventually(lambda: _stale_everywhere(conns, path3), deadline.left(), what="every worker revalidates")
    _, headers, _ = await conns[1].get(path3)
    assert "fwd=stale" in headers["cache-status"], headers["cache-status"]
    for c in conns:
        c.close()


async def _applied(node, n: int) -> bool:
    return (await node.admin("GET", "/healthz"))["fleet"]["purges"]["applied"] >= n


async def _heartbeat(operator: ControlBus, figure: str, at_least: int) -> bool:
    return (await status_of(operator, "multi")).get(figure, 0) >= at_least


async def _stale_everywhere(conns, path: str) -> bool:
    return all([(await c.get(path, **ONLY_CACHED))[0] == 504 for c in conns])


async def test_restarted_node_catches_up_before_its_workers_serve(nats_server: NatsServer, make_worker_node,
                                                                   operator: ControlBus) -> None:
    deadline = Deadline()
    node = await make_worker_node(nats_server.url, "again", "shield", chain=STAMP)
    paths = [f"/obj/m{i}?size=1k&ttl=300" for i in range(4)]
    for p in paths:
        await get(node.port, p, Host=SITE)
    await node.stop()
    # while it is down: 4 purges of what it holds, 21 others, and a new version
    for i in range(25):
        order = new_purge("url", [f"http://{SITE}{paths[i]}" if i < 3 else f"http://{SITE}/obj/x{i}"], False, "t")
        await operator.js.publish(operator.names.purge_subject, seal(KEY, order.body()),
                                  headers={"Nats-Msg-Id": order.id})
    version = await publish(operator, KEY, doc("stamp_b.wat"), Path("/"))

    await node.start()  # same config, same cache store: the objects are still on disk
    log = node.log_path.read_text().split("shutting down", 1)[1]  # the restart's start-up
    assert re.search(rf"caught up in \d+ ms \(25 purges applied, config version {version}\)", log), log
    assert log.index("caught up") < log.index("edgenode: serving")
    conns = await per_worker(node.port)
    for c in conns:  # every worker's first answers: purged objects gone, the rest served, new version
        for p in paths[:3]:
            assert (await c.get(p, **ONLY_CACHED))[0] == 504, (c.worker, p)
        status, headers, _ = await c.get(paths[3], **ONLY_CACHED)
        assert status == 200 and headers["x-filter-version"] == "b", (c.worker, headers)
        c.close()

    # the master dies: its workers die with it, and the fleet sees the node gone after node_ttl
    pids = [w["pid"] for w in (await node.admin("GET", "/stats"))["workers"]]
    assert (await status_of(operator, "again"))["live"]
    await node.kill(whole_node=False)  # the master alone
    await eventually(lambda: _gone(pids), deadline.left(), what="workers exit with their master")
    await eventually(lambda: _not_live(operator, "again"), deadline.left(), what="membership TTL")


async def _gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        return False
    return True


async def _not_live(operator: ControlBus, node_id: str) -> bool:
    return not (await status_of(operator, node_id)).get("live", False)
