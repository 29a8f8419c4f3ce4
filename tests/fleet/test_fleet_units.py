"""The I/O-free parts: signed envelopes, purge validation, circuit breaker, CDN-Loop
parsing, the ketama ring, [fleet] config validation, fleet config documents."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from edgenode.config import CacheConfig, ConfigError, FleetConfig, OriginConfig, ParentConfig, parse_config
from edgenode.control import ControlError
from edgenode.fleet.envelope import BadMessage, new_purge, open_sealed, parse_purge, seal
from edgenode.fleet.files import parse_tree
from edgenode.fleet.fleetconfig import cache_changes, parse_doc
from edgenode.fleet.host import PurgeIncomplete
from edgenode.fleet.master import MasterHost, merge_tiers
from edgenode.fleet.modules import ModuleError
from edgenode.proxy.tiers import CircuitBreaker, ParentRing, parse_cdn_loop
from edgenode.workers import FanoutAdmin

KEY = b"k" * 20


def test_envelope_roundtrip_and_tampering() -> None:
    order = new_purge("key", ["a", "b"], True, "me")
    data = seal(KEY, order.body())
    assert parse_purge(open_sealed(KEY, data, "purge")) == order
    with pytest.raises(BadMessage, match="bad signature"):
        open_sealed(b"x" * 20, data, "purge")
    with pytest.raises(BadMessage, match="bad signature"):
        open_sealed(KEY, data.replace(b'\\"a\\"', b'\\"z\\"'), "purge")
    with pytest.raises(BadMessage, match="expected a 'node' message"):
        open_sealed(KEY, data, "node")
    for junk in (b"", b"[]", b'{"v": 2}', b'{"v": 1, "body": 3, "sig": "x"}'):
        with pytest.raises(BadMessage):
            open_sealed(KEY, junk, "purge")


@pytest.mark.parametrize("change, reason", [
    ({"id": "short"}, "purge.id"), ({"kind": "regex"}, "purge.kind"), ({"values": [""]}, "purge.values"),
    ({"kind": "all"}, "empty for kind 'all'"), ({"soft": "yes"}, "purge.soft"),
    ({"issued_at": "now"}, "purge.issued_at"), ({"issued_at": time.time() - 30 * 86400}, "too old"),
])
def test_purge_validation(change: dict, reason: str) -> None:
    body = {**new_purge("url", ["http://x/"], False, "me").body(), **change}
    with pytest.raises(BadMessage, match=reason):
        parse_purge(body)


def test_circuit_breaker_opens_half_opens_and_closes() -> None:
    now = [0.0]
    b = CircuitBreaker(failures=2, cooldown=1.0, clock=lambda: now[0])
    assert b.allow() and b.state == "closed"
    b.failure()
    assert b.state == "closed"
    b.failure()
    assert b.state == "open" and not b.allow()
    now[0] = 1.0
    assert b.state == "half-open" and b.allow() and not b.allow()  # one trial at a time
    b.failure()  # trial failed: open again, cool-down doubled
    now[0] = 2.5
    assert not b.allow()
    now[0] = 3.0
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.allow()


def test_cdn_loop_parsing() -> None:
    got = parse_cdn_loop(['edgenode; node=edge-1, other-cdn; loops=2', 'x; a="q;, r"; B=1'])
    assert got == [("edgenode", {"node": "edge-1"}), ("other-cdn", {"loops": "2"}),
                   ("x", {"a": "q;, r", "b": "1"})]


def _ring(discover: bool = True, parents: list[ParentConfig] | None = None) -> ParentRing:
    cfg = FleetConfig(node_id="e", key=KEY, discover_parents=discover, parents=parents or [])
    return ParentRing(cfg, OriginConfig(name="o", url="http://127.0.0.1:1"))


def test_ring_moves_only_the_lost_shields_keys() -> None:
    ring = _ring()
    ring.update([("s1", "http://h:1"), ("s2", "http://h:2"), ("s3", "http://h:3")])
    keys = [f"www.example.com/obj/{i}" for i in range(3000)]
    before = {k: ring.owner(k) for k in keys}
    assert {v for v in before.values()} == {"s1", "s2", "s3"}
    assert min(list(before.values()).count(s) for s in ("s1", "s2", "s3")) > 600  # roughly even
    ring.update([("s1", "http://h:1"), ("s3", "http://h:3")])
    after = {k: ring.owner(k) for k in keys}
    assert all(after[k] == before[k] for k in keys if before[k] != "s2")
    assert {after[k] for k in keys if before[k] == "s2"} == {"s1", "s3"}
    assert [p.id for p in ring.candidates(keys[0])][0] == after[keys[0]]


def test_static_parents_stay_without_membership() -> None:
    ring = _ring(discover=False, parents=[ParentConfig("p1", "http://h:1"), ParentConfig("p2", "http://h:2")])
    assert {ring.owner(f"k{i}") for i in range(100)} == {"p1", "p2"}


@pytest.mark.parametrize("table, message", [
    ({"tier": "edge"}, "fleet.node_id: required"),
    ({"node_id": "a b"}, "fleet.node_id"),
    ({"node_id": "n", "key": "short"}, "fleet.key: required, at least 16"),
    ({"node_id": "n", "tier": "mid"}, "fleet.tier: must be one of edge, shield"),
    ({"node_id": "n", "nats": ["http://x"]}, "fleet.nats: expected nats://"),
    ({"node_id": "n", "tier": "shield", "parents": [{"id": "p", "url": "http://h:1"}]}, "only an edge"),
    ({"node_id": "n", "parents": [{"id": "p"}]}, r"fleet.parents\[0\]"),
    ({"node_id": "n", "heartbeat": "2s", "node_ttl": "1s"}, "fleet.node_ttl"),
    ({"node_id": "n", "unsynced": "drop"}, "fleet.unsynced"),
    ({"node_id": "n", "typo": 1}, "fleet.typo: unknown key"),
])
def test_fleet_config_errors_name_the_key(table: dict, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGENODE_FLEET_KEY", raising=False)
    table = {"key": "0123456789abcdef", **table}
    with pytest.raises(ConfigError, match=message):
        parse_config({"origins": {"default": {"url": "http://127.0.0.1:1"}}, "fleet": table})


def test_fleet_config_defaults_and_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGENODE_FLEET_KEY", "from-the-environment")
    cfg = parse_config({"origins": {"default": {"url": "http://127.0.0.1:1"}},
                        "fleet": {"node_id": "edge-1", "nats": "nats://10.0.0.1:4222"}})
    assert cfg.fleet is not None and cfg.fleet.key == b"from-the-environment"
    assert cfg.fleet.nats == ["nats://10.0.0.1:4222"] and cfg.fleet.tier == "edge"
    assert parse_config({"origins": {"default": {"url": "http://127.0.0.1:1"}}}).fleet is None


def test_fleet_documents() -> None:
    with pytest.raises(BadMessage, match="chain"):
        parse_doc({"chain": []})
    with pytest.raises(BadMessage, match=r"chain\[0\].module: expected sha256-<hex> or oci://"):
        parse_doc({"chain": [{"type": "wasm", "name": "f", "module": "f.wasm"}]})
    with pytest.raises(BadMessage, match=r"chain\[0\].component: expected sha256-<hex> or oci://"):
        parse_doc({"chain": [{"type": "function", "name": "f", "component": "f.wasm"}]})
    digest = "sha256-" + "0" * 64
    with pytest.raises(BadMessage, match=r"chain\[0\].files.rules: expected sha256-<hex> \(a published file tree\)"):
        parse_doc({"chain": [{"type": "wasm", "name": "f", "module": digest, "files": {"rules": "rules/"}}]})
    doc = parse_doc({"chain": [{"type": "wasm", "name": "f", "module": digest, "files": {"rules": digest}}]})
    assert doc.chain[0].options["files"] == {"rules": digest}
    with pytest.raises(BadMessage, match="cache.default_ttl"):
        parse_doc({"chain": [{"type": "cache"}], "cache": {"default_ttl": "soon"}})
    live, refuse = cache_changes({"default_ttl": "5s", "max_bytes": "1GiB", "collapse": True}, CacheConfig())
    assert live == {"default_ttl": 5.0} and refuse == ["cache.max_bytes: changing it needs a restart"]


@pytest.mark.parametrize("tree, reason", [
    (b"{}", "not a file tree"), (b'{"v": 2, "files": {}}', "not a file tree"),
    (b'{"v": 1, "files": {"../etc/passwd": "x"}}', "not a relative path"),
    (b'{"v": 1, "files": {"/etc/passwd": "x"}}', "not a relative path"),
    (b'{"v": 1, "files": {"a//b": "x"}}', "not a relative path"),
    (b'{"v": 1, "files": {"": "x", "b": "y"}}', "a single file and a directory at once"),
])
def test_file_trees_are_checked_before_anything_is_written(tree: bytes, reason: str) -> None:
    with pytest.raises(ModuleError, match=reason):
        parse_tree(tree)
    assert parse_tree(b'{"v": 1, "files": {"rules/a.conf": "x", "b.data": "y"}}') == {"rules/a.conf": "x", "b.data": "y"}


def test_workers_tier_figures_merge_into_the_nodes() -> None:
    def part(requests: int, circuit: str) -> dict:
        return {"tiers": {"tier": "edge", "retries": 1, "origin_fallbacks": 0, "parents": [
            {"id": "s1", "url": "http://s1", "live": True, "circuit": circuit, "requests": requests, "failures": 0}]}}

    merged = merge_tiers([part(3, "closed"), part(4, "open"), {}])
    assert merged is not None and merged["retries"] == 2
    assert merged["parents"] == [{"id": "s1", "url": "http://s1", "live": True, "circuit": "open", "requests": 7,
                                  "failures": 0}]
    assert merge_tiers([{}]) is None


async def test_master_purge_that_missed_a_worker_is_not_taken_as_applied(tmp_path: Path) -> None:
    """With per-worker stores the master's purge goes to every worker; one that did not
    answer makes the purge incomplete, so the fleet's delivery is not acked."""
    cfg = parse_config({"origins": {"default": {"url": "http://127.0.0.1:9"}}, "cache": {"store": "memory"},
                        "chain": [{"type": "cache"}]}, tmp_path)
    answers: list[Any] = [{"purged": 2}, ControlError("control socket refused")]

    class Workers:  # the worker processes' control sockets: the edge of the master's world
        config, count, store = cfg, 2, None

        async def each(self, method: str, path: str, body: dict[str, Any] | None = None) -> list[Any]:
            return answers

    sup = Workers()
    host = MasterHost(sup, tmp_path / "fleet-state.json", FanoutAdmin(sup))
    with pytest.raises(PurgeIncomplete) as info:
        await host.purge("url", ["http://site/a"], False)
    assert info.value.purged == 2 and info.value.errors == ["worker 1: control socket refused"]
    answers[1] = {"purged": 1}
    assert await host.purge("url", ["http://site/a"], False) == 3
