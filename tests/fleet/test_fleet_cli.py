"""The operator's commands against a live fleet: edgenode purge, fleet rollout / status /
rollback, and `fleet up` end to end (a small fleet, a short run)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgenode.cli import main
from edgenode.fleet.natsserver import NatsServer

from fleet_support import FLEET_KEY, SITE, WAT, get, stamp_chain, until  # noqa: E402


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def fleet_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGENODE_FLEET_KEY", FLEET_KEY)


async def test_purge_command_waits_for_every_node(nats_server: NatsServer, make_fleet_node) -> None:
    nodes = [await make_fleet_node(nats_server.url, f"p{i}", tier="shield") for i in range(2)]
    await until(lambda: all(len(n.fleet.membership.live()) == 2 for n in nodes), what="membership")
    path = "/obj/cli?size=1k&ttl=300"
    for n in nodes:
        await get(n.port, path, Host=SITE)
    status, out, err = await asyncio.to_thread(cli, "purge", "--url", f"http://{SITE}{path}", "--wait", "5s",
                                               "--nats", nats_server.url, "--fleet", "test")
    assert status == 0, err
    assert "p0: applied after" in out and "p1: applied after" in out
    assert all(n.fleet.purges.counts["applied"] == 1 for n in nodes)


async def test_rollout_status_rollback_commands(nats_server: NatsServer, make_fleet_node, tmp_path: Path) -> None:
    nodes = [await make_fleet_node(nats_server.url, f"c{i}", tier="shield", chain=stamp_chain()) for i in range(2)]
    await until(lambda: all(len(n.fleet.membership.live()) == 2 for n in nodes), what="membership")
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    for path, module in ((good, "stamp_b.wat"), (bad, "refuse_config.wat")):
        path.write_text(f'[[chain]]\ntype = "wasm"\nname = "stamp"\nmodule = "{WAT / module}"\n\n'
                        '[[chain]]\ntype = "cache"\n')
    target = ("--nats", nats_server.url, "--fleet", "test")
    status, out, err = await asyncio.to_thread(cli, "fleet", "rollout", str(good), "--wait", "10s", *target)
    assert status == 0, err
    assert "2/2 live nodes on version 1" in out
    status, out, _ = await asyncio.to_thread(cli, "fleet", "rollout", str(bad), "--wait", "10s", *target)
    assert status == 1
    assert "0/2 live nodes on version 2" in out and "v2: filter 'stamp'" in out
    status, out, _ = await asyncio.to_thread(cli, "fleet", "status", "--json", *target)
    data = json.loads(out)
    assert data["version"] == 2
    assert {n["id"]: (n["version"], n["refused"]["version"]) for n in data["nodes"]} == {"c0": (1, 2), "c1": (1, 2)}
    status, out, _ = await asyncio.to_thread(cli, "fleet", "rollback", "--to", "1", "--wait", "10s", *target)
    assert status == 0 and "a copy of version 1" in out and "2/2 live nodes on version 3" in out


async def test_commands_need_the_fleet_key(nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGENODE_FLEET_KEY")
    status, _, err = await asyncio.to_thread(cli, "purge", "--all", "--nats", nats_server.url)
    assert status == 2 and "EDGENODE_FLEET_KEY" in err
    monkeypatch.setenv("EDGENODE_FLEET_KEY", FLEET_KEY)
    status, _, err = await asyncio.to_thread(cli, "fleet", "status", "--nats", "nats://127.0.0.1:1")
    assert status == 2 and "cannot reach NATS" in err


def test_fleet_up_small_run(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.toml"
    fleet.write_text('[fleet]\nname = "ci"\nshields = 2\nedges = 2\nheartbeat = "0.3s"\nnode_ttl = "1.5s"\n'
                     '[workload]\nobjects = 300\nzipf = 1.0\nconcurrency = 4\nttl = 3600\n'
                     '[purge]\ncount = 10\n')
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "edgenode", "fleet", "up", str(fleet), "--duration", "3s",
                           "--json", str(out), "--out", str(tmp_path / "report")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    for key in ("purge_p99_ms", "origin_requests_with_shield", "origin_requests_without_shield", "distinct_objects"):
        assert report[key] is not None, key
    assert report["purges"]["confirmed"] == 10 and report["purges"]["still_cached_after_purge"] == 0
    assert report["origin_requests_with_shield"] <= 1.1 * report["distinct_objects"]
    assert report["phases"]["with_shield"]["errors"] == 0
    assert (tmp_path / "report" / "fleet-report.png").stat().st_size > 10_000
    assert "origin requests per distinct object" in proc.stdout
