"""Filters from an OCI registry (a real docker-registry): push, pull with digest
verification, the module cache, refusal of a moved tag, a registry that is down."""

from __future__ import annotations

import asyncio
import contextlib
import io
from pathlib import Path

import pytest
from wasmtime import wat2wasm

from edgenode.cli import main
from edgenode.config import ConfigError, StageConfig
from edgenode.fleet.bus import ControlBus
from edgenode.fleet.fleetconfig import FleetDoc
from edgenode.fleet.names import FleetNames
from edgenode.fleet.natsserver import NatsServer
from edgenode.fleet.oci import OciError, parse_ref, push_module
from edgenode.fleet.rollout import publish

from fleet_support import FLEET_KEY, SITE, WAT, get, stamp_chain, until  # noqa: E402


def wasm(tmp_path: Path, name: str) -> Path:
    out = tmp_path / f"{name}.wasm"
    out.write_bytes(bytes(wat2wasm((WAT / f"{name}.wat").read_text())))
    return out


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


def oci_chain(ref: str) -> list[StageConfig]:
    return [StageConfig("wasm", "stamp", {"module": ref}), StageConfig("cache", "cache")]


async def stamp(node) -> str:
    _, headers, _ = await get(node.port, "/obj/oci?size=1k&cc=no-store", Host=SITE)
    return headers.get("x-filter-version", "")


async def test_push_pull_cache_and_registry_down(nats_server: NatsServer, make_fleet_node, registry,
                                                 tmp_path: Path, module_cache: Path) -> None:
    status, out, _ = await asyncio.to_thread(cli, "filter", "push", str(wasm(tmp_path, "stamp_b")),
                                             f"oci://{registry.addr}/filters/stamp:v2", "--root-id", "stamp")
    assert status == 0
    ref = out.strip()
    assert parse_ref(ref).digest is not None and ref.startswith(f"oci://{registry.addr}/filters/stamp:v2@sha256:")
    node = await make_fleet_node(nats_server.url, "o1", tier="shield", chain=oci_chain(ref))
    assert await stamp(node) == "b"
    assert list((module_cache / "oci").glob("*.wasm"))
    registry.stop()  # the cached, verified copy serves restarts and new nodes
    again = await make_fleet_node(nats_server.url, "o2", tier="shield", chain=oci_chain(ref))
    assert await stamp(again) == "b"


async def test_moved_tag_is_refused_at_start(nats_server: NatsServer, make_fleet_node, registry,
                                             tmp_path: Path) -> None:
    target = f"oci://{registry.addr}/filters/stamp:v1"
    first = await asyncio.to_thread(push_module, wasm(tmp_path, "stamp_a"), target)
    await asyncio.to_thread(push_module, wasm(tmp_path, "stamp_b"), target)  # the tag moves
    with pytest.raises(ConfigError, match="digest mismatch: tag 'v1' now points to sha256:"):
        await make_fleet_node(nats_server.url, "m1", tier="shield", chain=oci_chain(first))
    with pytest.raises(ConfigError, match="pin the manifest digest"):
        await make_fleet_node(nats_server.url, "m2", tier="shield", chain=oci_chain(target))
    with pytest.raises(OciError, match="not a Wasm binary"):
        await asyncio.to_thread(push_module, WAT / "stamp_a.wat", target)


async def test_rollout_of_bad_oci_refs_keeps_the_running_module(nats_server: NatsServer, make_fleet_node,
                                                               registry, tmp_path: Path) -> None:
    node = await make_fleet_node(nats_server.url, "r1", tier="shield", chain=stamp_chain())
    operator = ControlBus([nats_server.url], FleetNames("test"), client_name="test operator")
    await operator.open()
    try:
        target = f"oci://{registry.addr}/filters/stamp:v1"
        pinned = await asyncio.to_thread(push_module, wasm(tmp_path, "stamp_b"), target)
        good = await publish(operator, FLEET_KEY.encode(),
                             FleetDoc(oci_chain(pinned)), Path("/"))
        await until(lambda: node.fleet.config.version == good, what="oci rollout applied")
        assert await stamp(node) == "b"
        lost = f"oci://{registry.addr}/filters/gone:v9@sha256:{'0' * 64}"
        v_lost = await publish(operator, FLEET_KEY.encode(), FleetDoc(oci_chain(lost)), Path("/"))
        await until(lambda: (node.fleet.config.refused or {}).get("version") == v_lost, what="refusal")
        assert "HTTP 404" in node.fleet.config.refused["reason"]
        registry.stop()
        other = f"oci://{registry.addr}/filters/other:v1@sha256:{'1' * 64}"
        v_down = await publish(operator, FLEET_KEY.encode(), FleetDoc(oci_chain(other)), Path("/"))
        await until(lambda: (node.fleet.config.refused or {}).get("version") == v_down, what="refusal")
        assert "registry unreachable" in node.fleet.config.refused["reason"]
        assert node.fleet.config.version == good and await stamp(node) == "b"
    finally:
        await operator.close()
